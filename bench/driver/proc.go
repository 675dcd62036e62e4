package main

// CPU and memory of a process: the driver's own (getrusage) and, given its
// pid, the server's (/proc/PID/stat and /proc/PID/status).

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// selfCPUSeconds is this process's user + system CPU time.
func selfCPUSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// selfMaxRSSKiB is this process's peak RSS (KiB).
func selfMaxRSSKiB() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Maxrss
}

// userHz is USER_HZ, the unit of /proc/PID/stat times (100 on Linux).
const userHz = 100

// procSample is one reading of another process.
type procSample struct {
	CPUSeconds float64 `json:"cpuS"`
	RSSKiB     int64   `json:"rssKiB"`
	HWMKiB     int64   `json:"hwmKiB"`
}

// readProc reads pid's CPU time (utime + stime) and its RSS and peak RSS.
func readProc(pid int) (procSample, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procSample{}, err
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	s := string(stat)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return procSample{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	// utime and stime are fields 14 and 15 of stat; f[0] is field 3.
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return procSample{}, fmt.Errorf("/proc/%d/stat: bad times", pid)
	}
	out := procSample{CPUSeconds: float64(ut+st) / userHz}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procSample{}, err
	}
	for _, l := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			out.RSSKiB = n
		case "VmHWM":
			out.HWMKiB = n
		}
	}
	return out, nil
}
