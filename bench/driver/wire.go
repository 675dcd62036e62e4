package main

// The seqstream wire format as PROTOCOL.md describes it, for versions 1 and 2:
// frames are type (u8), length (u16 BE) and value; integers are big-endian.
// Pure: no sockets, no clock.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Frame types (PROTOCOL.md §4).
const (
	typeHello   = 0x01
	typeAck     = 0x03
	typeWelcome = 0x81
	typeNumber  = 0x82
	typeFinal   = 0x83
	typeDone    = 0x84
	typeGoaway  = 0x85
	typeError   = 0x86
)

// maxFrameValue is MAX_FRAME_VALUE: the largest value length on the wire.
const maxFrameValue = 1024

// welcomeLen is the WELCOME value length of each protocol version.
var welcomeLen = map[int]int{1: 32, 2: 40}

// errMalformed marks bytes that are not a valid frame.
var errMalformed = errors.New("malformed frame")

// frame is one decoded frame; value aliases the decoder's buffer until the next push.
type frame struct {
	typ   byte
	value []byte
}

// decoder reassembles frames from a byte stream split anywhere.
type decoder struct {
	buf []byte
}

// push appends bytes and calls fn for every complete frame. It stops at the
// first error from fn or at a malformed header.
func (d *decoder) push(b []byte, fn func(frame) error) error {
	d.buf = append(d.buf, b...)
	i := 0
	for len(d.buf)-i >= 3 {
		n := int(binary.BigEndian.Uint16(d.buf[i+1:]))
		if n > maxFrameValue {
			return fmt.Errorf("%w: value length %d exceeds %d", errMalformed, n, maxFrameValue)
		}
		if len(d.buf)-i < 3+n {
			break
		}
		if err := fn(frame{typ: d.buf[i], value: d.buf[i+3 : i+3+n]}); err != nil {
			return err
		}
		i += 3 + n
	}
	// Keep only the partial frame, reusing the buffer's storage.
	rest := copy(d.buf, d.buf[i:])
	d.buf = d.buf[:rest]
	return nil
}

// encodeHello is HELLO: version, 16-byte id, count, 16-byte token (same layout in v1 and v2).
func encodeHello(version int, id [16]byte, count uint32, token [16]byte) []byte {
	b := make([]byte, 3+37)
	b[0] = typeHello
	binary.BigEndian.PutUint16(b[1:], 37)
	b[3] = byte(version)
	copy(b[4:20], id[:])
	binary.BigEndian.PutUint32(b[20:], count)
	copy(b[24:40], token[:])
	return b
}

// putAck writes ACK into b and returns the frame: v2 carries nextOffset (4
// bytes); v1's ACK is empty and only completes the session.
func putAck(b *[7]byte, version int, nextOffset uint32) []byte {
	b[0] = typeAck
	if version == 1 {
		b[1], b[2] = 0, 0
		return b[:3]
	}
	binary.BigEndian.PutUint16(b[1:], 4)
	binary.BigEndian.PutUint32(b[3:], nextOffset)
	return b[:7]
}

// welcome is the part of WELCOME the driver uses.
type welcome struct {
	count, nextOffset, intervalMs uint32
	window, ackIntervalMs         uint32 // v2 only
}

func decodeWelcome(version int, v []byte) (welcome, error) {
	if len(v) != welcomeLen[version] {
		return welcome{}, fmt.Errorf("%w: WELCOME of %d bytes, want %d for version %d", errMalformed, len(v), welcomeLen[version], version)
	}
	w := welcome{
		count:      binary.BigEndian.Uint32(v[0:]),
		nextOffset: binary.BigEndian.Uint32(v[4:]),
		intervalMs: binary.BigEndian.Uint32(v[24:]),
	}
	if version == 2 {
		w.window = binary.BigEndian.Uint32(v[32:])
		w.ackIntervalMs = binary.BigEndian.Uint32(v[36:])
	}
	return w, nil
}

// number is NUMBER or FINAL; sum and crc are set for FINAL only.
type number struct {
	offset, value uint32
	sum           uint64
	crc           uint32
}

func decodeNumber(typ byte, v []byte) (number, error) {
	want := 8
	if typ == typeFinal {
		want = 20
	}
	if len(v) != want {
		return number{}, fmt.Errorf("%w: frame 0x%02x of %d bytes, want %d", errMalformed, typ, len(v), want)
	}
	n := number{offset: binary.BigEndian.Uint32(v[0:]), value: binary.BigEndian.Uint32(v[4:])}
	if typ == typeFinal {
		n.sum = binary.BigEndian.Uint64(v[8:])
		n.crc = binary.BigEndian.Uint32(v[16:])
	}
	return n, nil
}

// decodeError returns ERROR's code and message.
func decodeError(v []byte) (uint16, string) {
	if len(v) < 2 {
		return 0, ""
	}
	return binary.BigEndian.Uint16(v), string(v[2:])
}

// checksum is the running {sum, crc} of PROTOCOL.md §6: the exact sum of the
// values, and CRC-32/IEEE over each value as 4 big-endian bytes.
type checksum struct {
	sum uint64
	crc uint32
}

func (c *checksum) update(value uint32) {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], value)
	c.sum += uint64(value)
	c.crc = crc32.Update(c.crc, crc32.IEEETable, b[:])
}
