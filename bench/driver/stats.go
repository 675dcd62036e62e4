package main

// Counters shared by all sessions, and the steady window's lateness.

import (
	"sync"
	"sync/atomic"
	"time"
)

type stats struct {
	numbers, acks, keepAlives     uint64
	nOpened, nWelcomed, nVerified uint64
	outcomes                      [len(outcomeNames)]uint64
	// The steady window as offsets from the epoch; numbers arriving inside
	// it go to `steady` as well as to `all`.
	steadyFrom, steadyTo int64
	all, steady          histogram

	mu         sync.Mutex
	errCodes   map[uint16]uint64
	firstError map[string]string
	welcome    welcome
	mismatch   bool // sessions saw different WELCOME settings
}

func newStats() *stats {
	s := &stats{errCodes: map[uint16]uint64{}, firstError: map[string]string{}}
	atomic.StoreInt64(&s.steadyFrom, 1<<62)
	atomic.StoreInt64(&s.steadyTo, 1<<62)
	return s
}

func (s *stats) opened()    { atomic.AddUint64(&s.nOpened, 1) }
func (s *stats) acked()     { atomic.AddUint64(&s.acks, 1) }
func (s *stats) keptAlive() { atomic.AddUint64(&s.keepAlives, 1) }
func (s *stats) verified()  { atomic.AddUint64(&s.nVerified, 1) }

func (s *stats) welcomed(w welcome) {
	if atomic.AddUint64(&s.nWelcomed, 1) == 1 {
		s.mu.Lock()
		s.welcome = w
		s.mu.Unlock()
		return
	}
	s.mu.Lock()
	if w.intervalMs != s.welcome.intervalMs || w.window != s.welcome.window || w.ackIntervalMs != s.welcome.ackIntervalMs {
		s.mismatch = true
	}
	s.mu.Unlock()
}

func (s *stats) number(at time.Duration, lateUs uint64) {
	atomic.AddUint64(&s.numbers, 1)
	s.all.record(lateUs)
	if t := int64(at); t >= atomic.LoadInt64(&s.steadyFrom) && t < atomic.LoadInt64(&s.steadyTo) {
		s.steady.record(lateUs)
	}
}

func (s *stats) end(o outcome, code uint16) {
	atomic.AddUint64(&s.outcomes[o], 1)
	if code != 0 {
		s.mu.Lock()
		s.errCodes[code]++
		s.mu.Unlock()
	}
}

// noteError keeps the first error message of each outcome, for the report.
func (s *stats) noteError(o outcome, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.firstError[outcomeNames[o]]; !ok {
		s.firstError[outcomeNames[o]] = err.Error()
	}
}

func (s *stats) ended() uint64 {
	var n uint64
	for i := range s.outcomes {
		n += atomic.LoadUint64(&s.outcomes[i])
	}
	return n
}
