package main

// A log-linear histogram of durations in microseconds: exact below 128 µs,
// then 64 buckets per power of two (at most 1.6% relative error), safe for
// concurrent recording.

import (
	"math/bits"
	"sync/atomic"
)

const (
	subBits    = 6 // 64 buckets per octave
	histOctave = 1 << subBits
	histMaxExp = 40 // values up to 2^46 µs
	histSize   = (histMaxExp + 2) * histOctave
)

type histogram struct {
	counts [histSize]uint64
	total  uint64
	max    uint64
}

func bucketOf(us uint64) int {
	e := bits.Len64(us) - (subBits + 1)
	if e < 0 {
		e = 0
	}
	if e > histMaxExp {
		return histSize - 1
	}
	return e*histOctave + int(us>>uint(e))
}

// bucketMid is the middle of bucket i's range, in µs.
func bucketMid(i int) float64 {
	if i < 2*histOctave {
		return float64(i)
	}
	e := i/histOctave - 1
	m := uint64(i - e*histOctave)
	lo := m << uint(e)
	return float64(lo) + float64(uint64(1)<<uint(e))/2
}

func (h *histogram) record(us uint64) {
	atomic.AddUint64(&h.counts[bucketOf(us)], 1)
	atomic.AddUint64(&h.total, 1)
	for {
		m := atomic.LoadUint64(&h.max)
		if us <= m || atomic.CompareAndSwapUint64(&h.max, m, us) {
			return
		}
	}
}

// quantile returns the value (µs) at quantile q in [0, 1]: the smallest
// bucket whose cumulative count reaches q of the total. 0 when empty.
func (h *histogram) quantile(q float64) float64 {
	total := atomic.LoadUint64(&h.total)
	if total == 0 {
		return 0
	}
	rank := uint64(q*float64(total) + 0.5)
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i := range h.counts {
		seen += atomic.LoadUint64(&h.counts[i])
		if seen >= rank {
			v := bucketMid(i)
			if m := float64(atomic.LoadUint64(&h.max)); v > m {
				v = m
			}
			return v
		}
	}
	return float64(atomic.LoadUint64(&h.max))
}
