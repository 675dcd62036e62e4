package main

// Raw system calls for the event loop. They skip the Go runtime's
// enter/exit-syscall bookkeeping (a handoff of the scheduler's P, and a futex
// wake-up on the way back, for any call that blocks): the loop's calls are
// non-blocking, or a nanosleep of one poll tick. Every pointer passed to the
// kernel is into the loop's own heap-allocated state, never the stack.

import (
	"encoding/binary"
	"syscall"
	"time"
	"unsafe"
)

// rxState is what recvmsg needs; it lives inside the loop, on the heap.
type rxState struct {
	buf [64 << 10]byte
	oob [64]byte
	iov syscall.Iovec
	msg syscall.Msghdr
	ts  syscall.Timespec
}

func (r *rxState) init() {
	r.iov.Base = &r.buf[0]
	r.iov.SetLen(len(r.buf))
	r.msg.Iov = &r.iov
	r.msg.Iovlen = 1
}

// recv reads once from fd; stamp is the kernel's receive time of the data
// (SO_TIMESTAMPNS, wall clock), ok false when the kernel gave none.
func (r *rxState) recv(fd int) (n int, stamp time.Time, ok bool, err error) {
	r.msg.Control = &r.oob[0]
	r.msg.SetControllen(len(r.oob))
	r.msg.Flags = 0
	got, _, e := syscall.RawSyscall(syscall.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(&r.msg)), 0)
	if e != 0 {
		return 0, time.Time{}, false, e
	}
	n = int(got)
	// One cmsghdr {len u64, level i32, type i32} and a timespec {sec, nsec i64}.
	if r.msg.Controllen >= 32 {
		level := int32(binary.LittleEndian.Uint32(r.oob[8:]))
		typ := int32(binary.LittleEndian.Uint32(r.oob[12:]))
		if level == syscall.SOL_SOCKET && typ == syscall.SCM_TIMESTAMPNS {
			sec := int64(binary.LittleEndian.Uint64(r.oob[16:]))
			nsec := int64(binary.LittleEndian.Uint64(r.oob[24:]))
			return n, time.Unix(sec, nsec), true, nil
		}
	}
	return n, time.Time{}, false, nil
}

// rawWrite writes to a non-blocking socket.
func rawWrite(fd int, b []byte) (int, error) {
	n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// pollWait is epoll_wait without blocking (timeout 0).
func pollWait(epfd int, events []syscall.EpollEvent) (int, error) {
	n, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_WAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// nap sleeps for d on this thread (an interrupted sleep just ends early).
func (r *rxState) nap(d time.Duration) {
	r.ts = syscall.NsecToTimespec(int64(d))
	syscall.RawSyscall(syscall.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&r.ts)), 0, 0)
}
