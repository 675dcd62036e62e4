package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"
)

// The worked example of PROTOCOL.md §10: values d0453436 eeb3e74e 8c942b3d,
// sum 9857484481, CRC-32 a48dda9f.
func TestChecksumMatchesTheWorkedExample(t *testing.T) {
	var c checksum
	for _, v := range []uint32{0xd0453436, 0xeeb3e74e, 0x8c942b3d} {
		c.update(v)
	}
	if c.sum != 9857484481 || c.crc != 0xa48dda9f {
		t.Fatalf("sum %d crc %08x, want 9857484481 a48dda9f", c.sum, c.crc)
	}
}

func TestDecoderReassemblesFramesSplitIntoOneByteChunks(t *testing.T) {
	stream := []byte{0x82, 0, 8, 0, 0, 0, 1, 0xee, 0xb3, 0xe7, 0x4e, 0x84, 0, 0}
	var d decoder
	var got []byte
	for i := range stream {
		if err := d.push(stream[i:i+1], func(f frame) error {
			got = append(got, f.typ, byte(len(f.value)))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, []byte{0x82, 8, 0x84, 0}) {
		t.Fatalf("frames %x", got)
	}
}

func TestDecoderRejectsAnOversizedLengthAtTheHeader(t *testing.T) {
	var d decoder
	err := d.push([]byte{0x82, 0x04, 0x01}, func(frame) error { return nil })
	if !errors.Is(err, errMalformed) {
		t.Fatalf("err %v, want malformed", err)
	}
}

func TestHelloAndAckBytesFollowTheSpec(t *testing.T) {
	id := [16]byte{0, 0, 0, 0, 0, 0, 0x40, 0, 0x80, 0, 0, 0, 0, 0, 0, 1}
	var token [16]byte
	for i := range token {
		token[i] = 0xa0 + byte(i)
	}
	h := encodeHello(2, id, 3, token)
	want := append([]byte{0x01, 0x00, 0x25, 0x02}, id[:]...)
	want = append(want, 0, 0, 0, 3)
	want = append(want, token[:]...)
	if !bytes.Equal(h, want) {
		t.Fatalf("HELLO %x\nwant  %x", h, want)
	}
	var b [7]byte
	if a := putAck(&b, 2, 10); !bytes.Equal(a, []byte{0x03, 0, 4, 0, 0, 0, 0x0a}) {
		t.Fatalf("v2 ACK %x", a)
	}
	if a := putAck(&b, 1, 3); !bytes.Equal(a, []byte{0x03, 0, 0}) {
		t.Fatalf("v1 ACK %x", a)
	}
}

// fakeOut records what a session writes.
type fakeOut struct{ frames [][]byte }

func (f *fakeOut) Write(b []byte) (int, error) {
	f.frames = append(f.frames, append([]byte(nil), b...))
	return len(b), nil
}

func welcomeFrame(count, intervalMs, window, ackIntervalMs uint32) []byte {
	v := make([]byte, 40)
	binary.BigEndian.PutUint32(v[0:], count)
	binary.BigEndian.PutUint32(v[24:], intervalMs)
	binary.BigEndian.PutUint32(v[28:], 30000)
	binary.BigEndian.PutUint32(v[32:], window)
	binary.BigEndian.PutUint32(v[36:], ackIntervalMs)
	return append([]byte{typeWelcome, 0, 40}, v...)
}

func numberFrame(offset, value uint32) []byte {
	b := []byte{typeNumber, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[3:], offset)
	binary.BigEndian.PutUint32(b[7:], value)
	return b
}

func finalFrame(offset, value uint32, c checksum) []byte {
	b := make([]byte, 23)
	b[0], b[2] = typeFinal, 20
	binary.BigEndian.PutUint32(b[3:], offset)
	binary.BigEndian.PutUint32(b[7:], value)
	binary.BigEndian.PutUint64(b[11:], c.sum)
	binary.BigEndian.PutUint32(b[19:], c.crc)
	return b
}

// A session of 10 numbers with window 8: ACK every ⌈8/4⌉ = 2 numbers, as
// client/session.ts does, then ACK(count) after a verified FINAL.
func TestSessionAcksEveryQuarterWindowAndVerifiesFinal(t *testing.T) {
	out := &fakeOut{}
	s := newSession(&sessionConfig{version: 2, count: 10, st: newStats()}, out)
	ms := time.Millisecond
	feed := func(b []byte, at time.Duration) bool {
		done, err := s.received(b, at, at)
		if err != nil {
			t.Fatal(err)
		}
		return done
	}
	feed(welcomeFrame(10, 100, 8, 5000), 0)
	var c checksum
	for i := uint32(0); i < 9; i++ {
		c.update(i * 7)
		feed(numberFrame(i, i*7), time.Duration(i)*100*ms)
	}
	c.update(99)
	feed(finalFrame(9, 99, c), 900*ms)
	if !feed([]byte{typeDone, 0, 0}, 901*ms) {
		t.Fatal("DONE did not end the session")
	}
	var acks []uint32
	for _, f := range out.frames {
		acks = append(acks, binary.BigEndian.Uint32(f[3:]))
	}
	want := []uint32{2, 4, 6, 8, 10}
	if len(acks) != len(want) {
		t.Fatalf("ACKs %v, want %v", acks, want)
	}
	for i := range want {
		if acks[i] != want[i] {
			t.Fatalf("ACKs %v, want %v", acks, want)
		}
	}
}

func TestSessionReportsAFinalWhoseChecksumsDoNotMatch(t *testing.T) {
	s := newSession(&sessionConfig{version: 2, count: 2, st: newStats()}, &fakeOut{})
	if _, err := s.received(append(welcomeFrame(2, 100, 8, 5000), numberFrame(0, 5)...), 0, 0); err != nil {
		t.Fatal(err)
	}
	_, err := s.received(finalFrame(1, 6, checksum{sum: 12, crc: 1}), 0, 0)
	if outcomeOf(err) != outcomeBadSum {
		t.Fatalf("err %v, want a checksum mismatch", err)
	}
}

func TestSessionRejectsAnOffsetOutOfOrder(t *testing.T) {
	s := newSession(&sessionConfig{version: 2, count: 5, st: newStats()}, &fakeOut{})
	_, err := s.received(append(welcomeFrame(5, 100, 8, 5000), numberFrame(1, 5)...), 0, 0)
	if outcomeOf(err) != outcomeViolation {
		t.Fatalf("err %v, want a violation", err)
	}
}

// Lateness is measured against WELCOME's arrival + offset × interval.
func TestLatenessIsAgainstTheSessionsGrid(t *testing.T) {
	st := newStats()
	s := newSession(&sessionConfig{version: 2, count: 5, st: st}, &fakeOut{})
	ms := time.Millisecond
	s.received(welcomeFrame(5, 100, 8, 5000), 10*ms, 10*ms)
	s.received(numberFrame(0, 1), 10*ms, 10*ms)   // on time
	s.received(numberFrame(1, 1), 113*ms, 113*ms) // 3 ms late
	s.received(numberFrame(2, 1), 210*ms, 210*ms) // on time
	if st.all.total != 3 || st.all.max != 3000 {
		t.Fatalf("%d numbers, max lateness %d µs; want 3 and 3000", st.all.total, st.all.max)
	}
}

func TestHistogramQuantilesWithinTwoPercent(t *testing.T) {
	var h histogram
	for v := uint64(1); v <= 100000; v++ {
		h.record(v)
	}
	for _, q := range []float64{0.5, 0.99, 0.999} {
		want := q * 100000
		if got := h.quantile(q); got < want*0.98 || got > want*1.02 {
			t.Fatalf("quantile %v = %v, want about %v", q, got, want)
		}
	}
}
