package main

// The event loop that carries every session: one goroutine, one epoll
// instance, non-blocking sockets, level-triggered, one recvmsg per readiness
// event. It polls: every `poll` tick it sleeps, then takes every
// ready socket at once with a non-blocking epoll_wait, so its cost is one
// wake-up per tick plus one recvmsg per number, however many sessions run.
// (Go's net package would wake a goroutine per number and read twice: the
// data, then EAGAIN; a Deno driver wakes per number too, on the server's
// cores.) Polling does not blur lateness: each read carries the kernel's
// receive timestamp (SO_TIMESTAMPNS), taken when the server's bytes reached
// the socket, not when the driver looked. With poll 0 the loop blocks in
// epoll_wait instead (one wake-up per ready batch). Linux only.

import (
	"container/heap"
	"errors"
	"fmt"
	"net"
	"runtime"
	"syscall"
	"time"
)

// conn is one session's socket.
type conn struct {
	fd         int
	s          *session
	connecting bool
	closed     bool
	// kaDue is the keep-alive time armed in the timer heap (0: none).
	kaDue time.Duration
}

var errSendBlocked = errors.New("the socket's send buffer is full (the server does not read)")

// Write sends b at once: frames from the driver are a few bytes, so a
// partial write means the server stopped reading for a long time.
func (c *conn) Write(b []byte) (int, error) {
	n, err := rawWrite(c.fd, b)
	if err == syscall.EAGAIN || (err == nil && n < len(b)) {
		return n, errSendBlocked
	}
	return n, err
}

const (
	timerKeepAlive = iota
	timerConnect
)

type timerEntry struct {
	due  time.Duration
	c    *conn
	kind int
}

type timerHeap []timerEntry

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].due < h[j].due }
func (h timerHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)        { *h = append(*h, x.(timerEntry)) }
func (h *timerHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// loop opens `total` sessions, one every `every`, and runs them to their end
// or to `deadline`; times are from `epoch`, which the caller sets before run.
type loop struct {
	cfg      *sessionConfig
	addr     syscall.SockaddrInet4
	epoch    time.Time
	total    int
	every    time.Duration
	dialTO   time.Duration
	deadline time.Duration

	// stampFd keeps the host's receive timestamps on (see newLoop); -1 if none.
	stampFd int
	// poll is the tick between non-blocking epoll_waits (0: block instead).
	poll time.Duration

	epfd   int
	conns  []*conn // by fd
	timers timerHeap
	opened int
	live   int
	rx     rxState
	events [1024]syscall.EpollEvent
	// stamped and unstamped count reads with and without a kernel timestamp.
	stamped, unstamped uint64
}

func newLoop(cfg *sessionConfig, addr string, total int, every, dialTO, deadline, poll time.Duration) (*loop, error) {
	ta, err := net.ResolveTCPAddr("tcp4", addr)
	if err != nil {
		return nil, fmt.Errorf("-addr %q: %w", addr, err)
	}
	ip4 := ta.IP.To4()
	if ip4 == nil {
		return nil, fmt.Errorf("-addr %q: an IPv4 address is needed", addr)
	}
	// The kernel turns receive timestamps on for the whole host lazily (a
	// deferred static-key switch) when the first socket asks, and off when
	// the last one closes: hold one socket that asks for the whole run, and
	// give the switch a moment before the first session.
	stampFd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err == nil {
		_ = syscall.SetsockoptInt(stampFd, syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
		time.Sleep(50 * time.Millisecond)
	}
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	l := &loop{stampFd: stampFd, cfg: cfg, total: total, every: every, dialTO: dialTO, deadline: deadline, poll: poll, epfd: epfd}
	l.rx.init()
	l.addr.Port = ta.Port
	copy(l.addr.Addr[:], ip4)
	return l, nil
}

func (l *loop) now() time.Duration { return time.Since(l.epoch) }

// run is the loop; it returns when every session has ended. Each turn reads
// what arrived before it fires due timers, so a keep-alive never overtakes
// the number that would have made it unnecessary.
func (l *loop) run() {
	defer syscall.Close(l.epfd)
	if l.stampFd >= 0 {
		defer syscall.Close(l.stampFd)
	}
	for {
		now := l.now()
		for l.opened < l.total && time.Duration(l.opened)*l.every <= now {
			l.open(now)
		}
		full := false
		if l.poll > 0 {
			n := l.wait(0)
			full = n == len(l.events)
			now = l.now()
		}
		for len(l.timers) > 0 && l.timers[0].due <= now {
			l.fire(heap.Pop(&l.timers).(timerEntry), now)
		}
		if now >= l.deadline {
			for _, c := range l.conns {
				if c != nil && !c.closed {
					l.end(c, outcomeTimedOut, errors.New("still running at the driver's deadline"))
				}
			}
			return
		}
		if l.opened == l.total && l.live == 0 {
			return
		}
		wake := l.deadline
		if l.opened < l.total {
			wake = minDuration(wake, time.Duration(l.opened)*l.every)
		}
		if len(l.timers) > 0 {
			wake = minDuration(wake, l.timers[0].due)
		}
		if l.poll == 0 {
			// epoll_wait counts whole milliseconds: round up, never spin.
			ms := int((wake - now + time.Millisecond - 1) / time.Millisecond)
			if ms > 1000 {
				ms = 1000
			}
			l.wait(ms)
			continue
		}
		if full {
			continue // more may be ready: no nap
		}
		// Let the main goroutine's timers run (GOMAXPROCS is 1 and this
		// goroutine never blocks in the runtime), then nap.
		runtime.Gosched()
		if d := minDuration(l.poll, wake-l.now()); d > 0 {
			l.rx.nap(d)
		}
	}
}

// wait takes the ready sockets (waiting up to ms milliseconds; 0 polls) and
// handles each; it returns how many were ready.
func (l *loop) wait(ms int) int {
	var n int
	var err error
	if ms == 0 {
		n, err = pollWait(l.epfd, l.events[:])
	} else {
		n, err = syscall.EpollWait(l.epfd, l.events[:], ms)
	}
	if err != nil && err != syscall.EINTR {
		panic(fmt.Sprintf("epoll_wait: %v", err))
	}
	for i := 0; i < n; i++ {
		if fd := int(l.events[i].Fd); fd < len(l.conns) && l.conns[fd] != nil {
			l.ready(l.conns[fd], l.events[i].Events)
		}
	}
	return n
}

func minDuration(a, b time.Duration) time.Duration {
	if a < b {
		return a
	}
	return b
}

// open starts one session: a non-blocking connect, then HELLO once connected.
func (l *loop) open(now time.Duration) {
	l.opened++
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		l.cfg.st.end(outcomeConnect, 0)
		l.cfg.st.noteError(outcomeConnect, fmt.Errorf("socket: %w", err))
		return
	}
	// As Go's net package and Deno do: no Nagle delay on the small ACKs.
	_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
	// The kernel's receive time on every read: lateness as the socket saw it.
	_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
	c := &conn{fd: fd, connecting: true}
	c.s = newSession(l.cfg, c)
	for fd >= len(l.conns) {
		l.conns = append(l.conns, make([]*conn, len(l.conns)+1024)...)
	}
	l.conns[fd] = c
	l.live++
	err = syscall.Connect(fd, &l.addr)
	if err != nil && err != syscall.EINPROGRESS {
		l.end(c, outcomeConnect, fmt.Errorf("connect: %w", err))
		return
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLOUT, Fd: int32(fd)}
	if err := syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		l.end(c, outcomeConnect, fmt.Errorf("epoll_ctl: %w", err))
		return
	}
	heap.Push(&l.timers, timerEntry{due: now + l.dialTO, c: c, kind: timerConnect})
}

func (l *loop) ready(c *conn, events uint32) {
	if c.connecting {
		errno, err := syscall.GetsockoptInt(c.fd, syscall.SOL_SOCKET, syscall.SO_ERROR)
		if err == nil && errno != 0 {
			err = syscall.Errno(errno)
		}
		if err != nil {
			l.end(c, outcomeConnect, fmt.Errorf("connect: %w", err))
			return
		}
		if events&syscall.EPOLLOUT == 0 {
			return
		}
		c.connecting = false
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(c.fd)}
		if err := syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_MOD, c.fd, &ev); err != nil {
			l.end(c, outcomeConnect, fmt.Errorf("epoll_ctl: %w", err))
			return
		}
		if err := c.s.hello(); err != nil {
			l.end(c, outcomeConnect, fmt.Errorf("HELLO: %w", err))
			return
		}
		l.cfg.st.opened()
		return
	}
	n, stamp, ok, err := l.rx.recv(c.fd)
	now := l.now()
	at := now
	if ok {
		l.stamped++
		at = stamp.Sub(l.epoch)
	} else if err == nil && n > 0 {
		l.unstamped++
	}
	switch {
	case err == syscall.EAGAIN || err == syscall.EINTR:
		return
	case err != nil:
		l.end(c, outcomeLost, fmt.Errorf("after %d of %d numbers: %w", c.s.next, l.cfg.count, err))
		return
	case n == 0:
		l.end(c, outcomeLost, fmt.Errorf("the server closed after %d of %d numbers", c.s.next, l.cfg.count))
		return
	}
	done, err := c.s.received(l.rx.buf[:n], at, now)
	if err != nil {
		l.end(c, outcomeOf(err), err)
		return
	}
	if done {
		l.end(c, outcomePass, nil)
		return
	}
	l.armKeepAlive(c)
}

// armKeepAlive puts the session's next keep-alive in the heap when it moved.
// Entries it replaces stay in the heap and are skipped when they come up.
func (l *loop) armKeepAlive(c *conn) {
	due, ok := c.s.keepAliveDue()
	if !ok {
		c.kaDue = 0
		return
	}
	if due != c.kaDue {
		c.kaDue = due
		heap.Push(&l.timers, timerEntry{due: due, c: c, kind: timerKeepAlive})
	}
}

func (l *loop) fire(e timerEntry, now time.Duration) {
	c := e.c
	if c.closed {
		return
	}
	switch e.kind {
	case timerConnect:
		if c.connecting {
			l.end(c, outcomeConnect, fmt.Errorf("connect: no answer within %v", l.dialTO))
		}
	case timerKeepAlive:
		if e.due != c.kaDue {
			return // replaced by a later ACK
		}
		c.kaDue = 0
		if err := c.s.keepAlive(now); err != nil {
			l.end(c, outcomeLost, fmt.Errorf("keep-alive ACK: %w", err))
			return
		}
		l.armKeepAlive(c)
	}
}

// end closes a session's socket and records how it ended.
func (l *loop) end(c *conn, o outcome, err error) {
	if c.closed {
		return
	}
	c.closed = true
	l.live--
	l.conns[c.fd] = nil
	_ = syscall.Close(c.fd)
	l.cfg.st.end(o, c.s.errCode)
	if err != nil {
		l.cfg.st.noteError(o, err)
	}
}
