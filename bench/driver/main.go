// Command driver is a load driver for a seqstream server that cannot distort
// what it measures the way a driver on the server's own runtime can: a
// compiled Go program, one goroutine per session, GOMAXPROCS 1 by default.
//
// It opens -sessions sessions at -rate per second, speaks protocol version
// -proto (2, or 1 for the pre-acknowledgement server) as client/session.ts
// does, waits -settle after the last WELCOME, then measures a -steady window:
// numbers delivered, the lateness of each number against its session's grid
// (WELCOME's arrival + offset × intervalMs), its own CPU (getrusage) and,
// with -server-pid, the server's CPU and RSS from /proc. Every session runs to
// FINAL (whose checksums it verifies), ACK(count) and DONE. The summary is
// one JSON object on stdout; progress goes to stderr. Exit status 0 when
// every session passed, 1 when one did not, 2 for bad flags.
//
//	go build -o /tmp/seqstream-driver . && /tmp/seqstream-driver -addr 127.0.0.1:8080 -sessions 5000 -steady 60s -server-pid PID
//
// See README.md for the flags and the JSON fields.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/pprof"
	"sync/atomic"
	"time"
)

// maxSessions keeps the driver within the host's 20,000 file descriptors per
// process, with room for stdio and the runtime's own.
const maxSessions = 19_000

type options struct {
	addr      string
	sessions  int
	rate      float64
	proto     int
	interval  time.Duration
	count     int
	settle    time.Duration
	steady    time.Duration
	serverPid int
	procs     int
	dialTO    time.Duration
	grace     time.Duration
	quiet     bool
	cpuProf   string
	poll      time.Duration
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("driver", flag.ContinueOnError)
	fs.StringVar(&o.addr, "addr", "", "HOST:PORT of the server (required)")
	fs.IntVar(&o.sessions, "sessions", 100, "sessions to open, at most 19000 (one process's file descriptors)")
	fs.Float64Var(&o.rate, "rate", 1000, "sessions opened per second")
	fs.IntVar(&o.proto, "proto", 2, "protocol version the server speaks: 2, or 1 (before acknowledgements)")
	fs.DurationVar(&o.interval, "interval", time.Second, "the server's --interval (sizes the count; lateness uses WELCOME's)")
	fs.IntVar(&o.count, "count", 0, "numbers per session (default: enough to stream through ramp, settle and steady window)")
	fs.DurationVar(&o.settle, "settle", 5*time.Second, "wait after the last WELCOME before the steady window")
	fs.DurationVar(&o.steady, "steady", 60*time.Second, "length of the measured window (0: none, just run the sessions)")
	fs.IntVar(&o.serverPid, "server-pid", 0, "the server's pid, to read its CPU and RSS from /proc (0: not measured)")
	fs.IntVar(&o.procs, "procs", 1, "GOMAXPROCS of the driver")
	fs.DurationVar(&o.dialTO, "dial-timeout", 10*time.Second, "TCP connect timeout")
	fs.DurationVar(&o.grace, "grace", 30*time.Second, "how long past the expected end sessions may run before they count as timed out")
	fs.DurationVar(&o.poll, "poll", 2*time.Millisecond, "event-loop tick: sleep, then take every ready socket (0: block in epoll_wait, one wake-up per ready batch)")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress lines on stderr")
	fs.StringVar(&o.cpuProf, "cpuprofile", "", "write the driver's own Go CPU profile to this file")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case o.addr == "":
		return o, fmt.Errorf("-addr is required (HOST:PORT of the server)")
	case o.sessions < 1 || o.sessions > maxSessions:
		return o, fmt.Errorf("-sessions must be 1..%d (one process may hold 20,000 file descriptors), got %d", maxSessions, o.sessions)
	case !(o.rate > 0):
		return o, fmt.Errorf("-rate must be above 0, got %v", o.rate)
	case o.proto != 1 && o.proto != 2:
		return o, fmt.Errorf("-proto must be 1 or 2, got %d", o.proto)
	case o.interval <= 0 && o.count == 0:
		return o, fmt.Errorf("-interval must be above 0 unless -count is given")
	case o.count < 0 || o.count > 65535:
		return o, fmt.Errorf("-count must be 1..65535, got %d", o.count)
	case o.poll < 0:
		return o, fmt.Errorf("-poll must be 0 or more, got %v", o.poll)
	case o.procs < 1:
		return o, fmt.Errorf("-procs must be at least 1, got %d", o.procs)
	}
	if o.count == 0 {
		// The first session must still stream at the end of the window,
		// even if opening runs 50% slower than -rate.
		ramp := time.Duration(float64(o.sessions) / o.rate * float64(time.Second))
		span := ramp*3/2 + o.settle + o.steady + 10*time.Second
		o.count = int(math.Min(65535, math.Ceil(float64(span)/float64(o.interval))+1))
	}
	return o, nil
}

// quantiles is a lateness summary in milliseconds.
type quantiles struct {
	P50  float64 `json:"p50"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
	N    uint64  `json:"n"`
}

func summarize(h *histogram) quantiles {
	ms := func(us float64) float64 { return math.Round(us) / 1000 }
	return quantiles{
		P50: ms(h.quantile(0.5)), P99: ms(h.quantile(0.99)), P999: ms(h.quantile(0.999)),
		Max: ms(float64(atomic.LoadUint64(&h.max))), N: atomic.LoadUint64(&h.total),
	}
}

type serverFigures struct {
	CPUS             float64 `json:"cpuS"`
	CPUPct           float64 `json:"cpuPct"`
	UsPerNumber      float64 `json:"usPerNumber"`
	RSSKiBIdle       int64   `json:"rssKiBIdle"`
	RSSKiBSteadyEnd  int64   `json:"rssKiBSteadyEnd"`
	HWMKiB           int64   `json:"hwmKiB"`
	RSSKiBPerSession float64 `json:"rssKiBPerSession"`
}

type steadyFigures struct {
	Seconds           float64        `json:"seconds"`
	FromUnixMs        int64          `json:"fromUnixMs"`
	ToUnixMs          int64          `json:"toUnixMs"`
	Numbers           uint64         `json:"numbers"`
	NumbersPerSecond  float64        `json:"numbersPerSecond"`
	AcksPerNumber     float64        `json:"acksPerNumber"`
	KeepAlivesPerNum  float64        `json:"keepAlivesPerNumber"`
	Lateness          quantiles      `json:"latenessMs"`
	DriverCPUS        float64        `json:"driverCpuS"`
	DriverUsPerNumber float64        `json:"driverUsPerNumber"`
	Server            *serverFigures `json:"server,omitempty"`
}

type summary struct {
	OK               bool              `json:"ok"`
	Protocol         int               `json:"protocol"`
	Sessions         int               `json:"sessions"`
	Count            int               `json:"count"`
	IntervalMs       uint32            `json:"intervalMs"`
	Window           uint32            `json:"window"`
	AckIntervalMs    uint32            `json:"ackIntervalMs"`
	WelcomeMismatch  bool              `json:"welcomeMismatch"`
	RampS            float64           `json:"rampS"`
	Welcomed         uint64            `json:"welcomed"`
	Outcomes         map[string]uint64 `json:"outcomes"`
	ErrorCodes       map[string]uint64 `json:"errorCodes"`
	FirstErrors      map[string]string `json:"firstErrors"`
	ChecksumsOK      uint64            `json:"checksumsVerified"`
	NumbersExpected  uint64            `json:"numbersExpected"`
	NumbersDelivered uint64            `json:"numbersDelivered"`
	DeliveredPct     float64           `json:"deliveredPct"`
	Steady           *steadyFigures    `json:"steady,omitempty"`
	LatenessAll      quantiles         `json:"latenessAllMs"`
	DriverCPUS       float64           `json:"driverCpuS"`
	DriverMaxRSSKiB  int64             `json:"driverMaxRssKiB"`
	GOMAXPROCS       int               `json:"gomaxprocs"`
	PollMs           float64           `json:"pollMs"`
	// Reads that carried the kernel's receive timestamp, and reads that did
	// not (lateness then uses the time the driver read them).
	KernelStamped   uint64  `json:"kernelStampedReads"`
	KernelUnstamped uint64  `json:"unstampedReads"`
	ElapsedS        float64 `json:"elapsedS"`
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		if err != flag.ErrHelp {
			fmt.Fprintln(os.Stderr, "driver:", err)
		}
		os.Exit(2)
	}
	runtime.GOMAXPROCS(o.procs)
	if o.cpuProf != "" {
		f, err := os.Create(o.cpuProf)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "driver: -cpuprofile:", err)
			os.Exit(2)
		}
		defer f.Close()
	}
	sum, err := run(o)
	pprof.StopCPUProfile()
	if err != nil {
		fmt.Fprintln(os.Stderr, "driver:", err)
		os.Exit(2)
	}
	out, _ := json.Marshal(sum)
	fmt.Println(string(out))
	if !sum.OK {
		os.Exit(1)
	}
}

func (o options) logf(format string, a ...any) {
	if !o.quiet {
		fmt.Fprintf(os.Stderr, "driver: "+format+"\n", a...)
	}
}

func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}

type sample struct {
	at                      time.Time
	self                    float64
	server                  procSample
	numbers, acks, keepAliv uint64
}

func (o options) take(st *stats) sample {
	s := sample{at: time.Now(), self: selfCPUSeconds(),
		numbers: atomic.LoadUint64(&st.numbers), acks: atomic.LoadUint64(&st.acks), keepAliv: atomic.LoadUint64(&st.keepAlives)}
	if o.serverPid > 0 {
		if p, err := readProc(o.serverPid); err == nil {
			s.server = p
		} else {
			o.logf("cannot read the server's /proc: %v", err)
		}
	}
	return s
}

func run(o options) (summary, error) {
	st := newStats()
	rampD := time.Duration(float64(o.sessions) / o.rate * float64(time.Second))
	expectedEnd := rampD + time.Duration(o.count)*o.interval
	if o.steady > 0 && rampD+o.settle+o.steady > expectedEnd {
		expectedEnd = rampD + o.settle + o.steady
	}
	cfg := &sessionConfig{version: o.proto, count: uint32(o.count), st: st}
	l, err := newLoop(cfg, o.addr, o.sessions, time.Duration(float64(time.Second)/o.rate), o.dialTO, expectedEnd+o.grace, o.poll)
	if err != nil {
		return summary{}, err
	}
	epoch := time.Now()
	l.epoch = epoch
	idle := o.take(st)
	o.logf("%d sessions of %d numbers, protocol %d, opening %.0f/s", o.sessions, o.count, o.proto, o.rate)
	loopDone := make(chan struct{})
	go func() { defer close(loopDone); l.run() }()
	// All sessions welcomed (or ended) before the window starts.
	welcomeBy := time.Now().Add(o.dialTO + 20*time.Second)
	for atomic.LoadUint64(&st.nWelcomed)+st.ended() < uint64(o.sessions) && time.Now().Before(welcomeBy) {
		time.Sleep(10 * time.Millisecond)
	}
	ramp := time.Since(epoch)
	o.logf("%d of %d welcomed after %.1f s", atomic.LoadUint64(&st.nWelcomed), o.sessions, ramp.Seconds())

	var steady *steadyFigures
	if o.steady > 0 {
		time.Sleep(o.settle)
		a := o.take(st)
		atomic.StoreInt64(&st.steadyFrom, int64(a.at.Sub(epoch)))
		o.logf("steady window of %v starts", o.steady)
		time.Sleep(o.steady)
		atomic.StoreInt64(&st.steadyTo, int64(time.Since(epoch)))
		b := o.take(st)
		secs := b.at.Sub(a.at).Seconds()
		n := b.numbers - a.numbers
		per := func(x float64) float64 {
			if n == 0 {
				return 0
			}
			return x / float64(n)
		}
		steady = &steadyFigures{
			Seconds: round(secs, 3), FromUnixMs: a.at.UnixMilli(), ToUnixMs: b.at.UnixMilli(),
			Numbers: n, NumbersPerSecond: round(float64(n)/secs, 1),
			AcksPerNumber: round(per(float64(b.acks-a.acks)), 3), KeepAlivesPerNum: round(per(float64(b.keepAliv-a.keepAliv)), 3),
			Lateness:   summarize(&st.steady),
			DriverCPUS: round(b.self-a.self, 3), DriverUsPerNumber: round(per((b.self-a.self)*1e6), 2),
		}
		if o.serverPid > 0 {
			cpu := b.server.CPUSeconds - a.server.CPUSeconds
			steady.Server = &serverFigures{
				CPUS: round(cpu, 2), CPUPct: round(100*cpu/secs, 1), UsPerNumber: round(per(cpu*1e6), 2),
				RSSKiBIdle: idle.server.RSSKiB, RSSKiBSteadyEnd: b.server.RSSKiB, HWMKiB: b.server.HWMKiB,
				RSSKiBPerSession: round(float64(b.server.RSSKiB-idle.server.RSSKiB)/float64(o.sessions), 2),
			}
		}
		o.logf("steady window done: %d numbers, lateness p99 %.1f ms", n, steady.Lateness.P99)
	}
	<-loopDone

	total := st.ended()
	outcomes := map[string]uint64{}
	for i, name := range outcomeNames {
		outcomes[name] = atomic.LoadUint64(&st.outcomes[i])
	}
	st.mu.Lock()
	codes := map[string]uint64{}
	for c, n := range st.errCodes {
		codes[fmt.Sprint(c)] = n
	}
	w, mismatch, firstErrors := st.welcome, st.mismatch, st.firstError
	st.mu.Unlock()
	expected := uint64(o.sessions) * uint64(o.count)
	delivered := atomic.LoadUint64(&st.numbers)
	return summary{
		OK:       outcomes["pass"] == uint64(o.sessions) && total == uint64(o.sessions) && !mismatch,
		Protocol: o.proto, Sessions: o.sessions, Count: o.count,
		IntervalMs: w.intervalMs, Window: w.window, AckIntervalMs: w.ackIntervalMs, WelcomeMismatch: mismatch,
		RampS: round(ramp.Seconds(), 2), Welcomed: atomic.LoadUint64(&st.nWelcomed),
		Outcomes: outcomes, ErrorCodes: codes, FirstErrors: firstErrors,
		ChecksumsOK:     atomic.LoadUint64(&st.nVerified),
		NumbersExpected: expected, NumbersDelivered: delivered,
		DeliveredPct: round(100*float64(delivered)/float64(expected), 3),
		Steady:       steady, LatenessAll: summarize(&st.all),
		DriverCPUS: round(selfCPUSeconds(), 3), DriverMaxRSSKiB: selfMaxRSSKiB(),
		PollMs: float64(o.poll) / 1e6, KernelStamped: l.stamped, KernelUnstamped: l.unstamped,
		GOMAXPROCS: runtime.GOMAXPROCS(0), ElapsedS: round(time.Since(epoch).Seconds(), 2),
	}, nil
}
