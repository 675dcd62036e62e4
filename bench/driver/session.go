package main

// One session's protocol state, acknowledging as client/session.ts does
// (protocol v2): ACK(nextOffset) as soon as nextOffset − lastAck ≥
// ⌈window/4⌉ (checked after every number), a keep-alive ACK(nextOffset) when
// no ACK went out for ackIntervalMs, ACK(count) on FINAL (after checking the
// checksums), close on DONE. Version 1 sends only the empty ACK after FINAL.
// No resume: a lost connection is a failed session, which is what a
// benchmark has to report. No socket here: bytes come in through `received`
// and go out through `out`; the event loop (loop.go) owns the socket.

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"time"
)

// outcome is how a session ended; see the counters in stats.
type outcome int

const (
	outcomePass      outcome = iota // DONE after FINAL with matching checksums
	outcomeBadSum                   // FINAL's checksums differ from the received values
	outcomeRefused                  // ERROR or GOAWAY from the server
	outcomeViolation                // a frame the protocol does not allow here
	outcomeConnect                  // could not connect or send HELLO
	outcomeLost                     // the connection ended or failed mid-session
	outcomeTimedOut                 // still running at the driver's deadline
)

var outcomeNames = [...]string{"pass", "badChecksum", "refused", "violation", "connectFailed", "lost", "timedOut"}

var (
	errViolation   = errors.New("protocol violation")
	errBadChecksum = errors.New("checksum mismatch")
	errRefused     = errors.New("refused by the server")
)

// outcomeOf classifies the error that ended a session.
func outcomeOf(err error) outcome {
	switch {
	case errors.Is(err, errBadChecksum):
		return outcomeBadSum
	case errors.Is(err, errRefused):
		return outcomeRefused
	case errors.Is(err, errViolation), errors.Is(err, errMalformed):
		return outcomeViolation
	default:
		return outcomeLost
	}
}

// sessionConfig is what every session shares.
type sessionConfig struct {
	version int
	count   uint32
	st      *stats
}

// session is one connection's protocol state.
type session struct {
	cfg     *sessionConfig
	out     io.Writer
	dec     decoder
	ack     [7]byte
	welcome welcome
	got     bool // WELCOME seen
	final   bool // FINAL seen and verified
	next    uint32
	lastAck uint32
	every   uint32
	// lastAckAt is when the last ACK (or WELCOME) was handled, from the epoch.
	lastAckAt time.Duration
	ackEvery  time.Duration
	// anchor is where offset 0 is due on the session's grid (from the epoch).
	anchor time.Duration
	sum    checksum
	// errCode is the ERROR code received, if any.
	errCode uint16
}

func newSession(cfg *sessionConfig, out io.Writer) *session {
	return &session{cfg: cfg, out: out}
}

// hello sends HELLO with a fresh random id (a version 4 UUID) and token.
func (s *session) hello() error {
	var id, token [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return err
	}
	id[6] = id[6]&0x0f | 0x40 // UUID version 4
	id[8] = id[8]&0x3f | 0x80 // RFC 9562 variant
	if _, err := rand.Read(token[:]); err != nil {
		return err
	}
	_, err := s.out.Write(encodeHello(s.cfg.version, id, s.cfg.count, token))
	return err
}

// received handles bytes that reached the socket at `at` and are handled
// at `now` (both from the epoch); done is true after DONE. Lateness uses
// `at`; the ACK clock uses `now`, as the client's does.
func (s *session) received(b []byte, at, now time.Duration) (done bool, err error) {
	err = s.dec.push(b, func(f frame) error {
		d, err := s.onFrame(f, at, now)
		done = done || d
		return err
	})
	return done, err
}

// keepAliveDue is when a keep-alive ACK is due, and whether one can be.
func (s *session) keepAliveDue() (time.Duration, bool) {
	if !s.got || s.cfg.version != 2 || s.final {
		return 0, false
	}
	return s.lastAckAt + s.ackEvery, true
}

// keepAlive sends ACK(next) when no ACK went out for ackIntervalMs.
func (s *session) keepAlive(now time.Duration) error {
	due, ok := s.keepAliveDue()
	if !ok || now < due {
		return nil
	}
	s.cfg.st.keptAlive()
	return s.sendAck(s.next, now)
}

func (s *session) onFrame(f frame, at, now time.Duration) (bool, error) {
	cfg := s.cfg
	switch f.typ {
	case typeWelcome:
		if s.got {
			return false, fmt.Errorf("%w: a second WELCOME", errViolation)
		}
		w, err := decodeWelcome(cfg.version, f.value)
		if err != nil {
			return false, err
		}
		if w.count != cfg.count || w.nextOffset != 0 {
			return false, fmt.Errorf("%w: WELCOME for count %d at %d, asked %d at 0", errViolation, w.count, w.nextOffset, cfg.count)
		}
		s.welcome, s.got = w, true
		s.every = 1
		if w.window > 0 {
			s.every = (w.window + 3) / 4
		}
		ai := w.ackIntervalMs
		if ai < 1 {
			ai = 1
		}
		s.ackEvery = time.Duration(ai) * time.Millisecond
		s.lastAckAt = now
		s.anchor = at
		cfg.st.welcomed(w)
		return false, nil
	case typeNumber, typeFinal:
		if !s.got {
			return false, fmt.Errorf("%w: a number before WELCOME", errViolation)
		}
		n, err := decodeNumber(f.typ, f.value)
		if err != nil {
			return false, err
		}
		isFinal := f.typ == typeFinal
		if n.offset != s.next || n.offset >= cfg.count || isFinal != (n.offset == cfg.count-1) {
			return false, fmt.Errorf("%w: offset %d (final %v), expected %d of %d", errViolation, n.offset, isFinal, s.next, cfg.count)
		}
		s.sum.update(n.value)
		s.next++
		s.recordLateness(n.offset, at)
		if isFinal {
			if n.sum != s.sum.sum || n.crc != s.sum.crc {
				return false, fmt.Errorf("%w: FINAL says sum %d crc %08x, the received values give sum %d crc %08x", errBadChecksum, n.sum, n.crc, s.sum.sum, s.sum.crc)
			}
			s.final = true
			cfg.st.verified()
			return false, s.sendAck(cfg.count, now)
		}
		if cfg.version == 2 && s.next-s.lastAck >= s.every {
			return false, s.sendAck(s.next, now)
		}
		return false, nil
	case typeDone:
		if !s.final {
			return false, fmt.Errorf("%w: DONE before FINAL", errViolation)
		}
		return true, nil
	case typeError:
		code, msg := decodeError(f.value)
		s.errCode = code
		return false, fmt.Errorf("%w: ERROR %d: %s", errRefused, code, msg)
	case typeGoaway:
		return false, fmt.Errorf("%w: GOAWAY", errRefused)
	default:
		return false, fmt.Errorf("%w: unknown frame type 0x%02x", errMalformed, f.typ)
	}
}

// recordLateness records how far behind its place on the session's grid
// (WELCOME's arrival + offset × intervalMs) a number arrived. A number that
// comes earlier than its place moves the grid's origin back, so a WELCOME
// that was read late does not hide the lateness of what follows.
func (s *session) recordLateness(offset uint32, at time.Duration) {
	interval := time.Duration(s.welcome.intervalMs) * time.Millisecond
	due := s.anchor + time.Duration(offset)*interval
	late := at - due
	if late < 0 {
		s.anchor += late
		late = 0
	}
	s.cfg.st.number(at, uint64(late/time.Microsecond))
}

func (s *session) sendAck(nextOffset uint32, now time.Duration) error {
	if s.cfg.version == 1 && nextOffset != s.cfg.count {
		return nil
	}
	s.lastAck = nextOffset
	s.lastAckAt = now
	s.cfg.st.acked()
	_, err := s.out.Write(putAck(&s.ack, s.cfg.version, nextOffset))
	return err
}
