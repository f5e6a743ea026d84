package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// cpuSplit is where the machine's CPU time went over an interval: the
// pipelined servers, a PostgreSQL on this machine, the load generator (this
// process: workers, starters, signing) and everything else. On a shared
// machine "other" is the neighbours; idle is what nobody used.
type cpuSplit struct {
	Wall     time.Duration
	CPUs     int
	Server   time.Duration // the pipelined process(es)
	Database time.Duration // the postgres backends serving the servers' connections
	AllDB    time.Duration // every process named postgres (its background processes, other users' backends)
	HasDB    bool          // processes named postgres were found
	LoadGen  time.Duration // this process
	Busy     time.Duration // all CPUs, from /proc/stat: everything but idle and iowait
}

// Capacity is the CPU time the machine had over the interval.
func (s cpuSplit) Capacity() time.Duration { return s.Wall * time.Duration(s.CPUs) }

// Other is the busy time of everything but the server, the database and
// the load generator.
func (s cpuSplit) Other() time.Duration {
	return max(0, s.Busy-s.Server-s.AllDB-s.LoadGen)
}

// Idle is the capacity nobody used.
func (s cpuSplit) Idle() time.Duration { return max(0, s.Capacity()-s.Busy) }

// cpuSnap is one reading of the counters a cpuSplit is the difference of.
type cpuSnap struct {
	at      time.Time
	server  time.Duration
	loadGen time.Duration
	busy    time.Duration
	db      map[string]time.Duration // by /proc/PID of each postgres process
	ours    map[string]bool          // the postgres backends of the servers' connections
}

// snapCPU reads the CPU time of the servers, of every postgres process, of
// this process, and of the machine. Only the servers' must be readable: the
// rest is context for the report and falls back to zero.
func snapCPU(servers ...*server) (cpuSnap, error) {
	s := cpuSnap{at: time.Now(), db: map[string]time.Duration{}}
	for _, srv := range servers {
		t, err := srv.cpuTime()
		if err != nil {
			return s, err
		}
		s.server += t
	}
	if _, t, err := statCPU("/proc/self/stat"); err == nil {
		s.loadGen = t
	}
	s.busy = machineBusy()
	ports := map[string]bool{}
	for _, srv := range servers {
		for _, p := range tcpLocalPorts(srv.cmd.Process.Pid) {
			ports[p] = true
		}
	}
	s.ours = map[string]bool{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, dir := range dirs {
		comm, t, err := statCPU(dir + "/stat")
		if err != nil || comm != "postgres" {
			continue
		}
		s.db[dir] = t
		if port := backendClientPort(dir); port != "" && ports[port] {
			s.ours[dir] = true
		}
	}
	return s, nil
}

// backendClientPort is the client's TCP port of a PostgreSQL backend,
// from the title it sets: "postgres: 15/main: USER DB 127.0.0.1(PORT) idle".
// Empty for the background processes and Unix-socket clients.
func backendClientPort(procDir string) string {
	b, err := os.ReadFile(procDir + "/cmdline")
	if err != nil {
		return ""
	}
	title := string(b)
	open := strings.LastIndexByte(title, '(')
	end := strings.IndexByte(title[open+1:], ')')
	if open < 0 || end < 0 {
		return ""
	}
	port := title[open+1 : open+1+end]
	if _, err := strconv.Atoi(port); err != nil {
		return ""
	}
	return port
}

// tcpLocalPorts lists the local ports of the TCP sockets a process has
// open: its socket inodes (from /proc/PID/fd) looked up in /proc/net/tcp
// and tcp6.
func tcpLocalPorts(pid int) []string {
	fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
	inodes := map[string]bool{}
	for _, fd := range fds {
		if link, err := os.Readlink(fd); err == nil && strings.HasPrefix(link, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	var ports []string
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || !inodes[f[9]] {
				continue
			}
			_, hexPort, ok := strings.Cut(f[1], ":") // local_address, ADDR:PORT in hex
			if n, err := strconv.ParseUint(hexPort, 16, 16); ok && err == nil {
				ports = append(ports, strconv.FormatUint(n, 10))
			}
		}
	}
	return ports
}

// to is the split from a to b. A postgres process that started within
// the interval counts from zero; one that exited is lost (PostgreSQL keeps
// its backends for the life of a connection, and the servers' pools keep
// theirs).
func (a cpuSnap) to(b cpuSnap) cpuSplit {
	s := cpuSplit{
		Wall: b.at.Sub(a.at), CPUs: runtime.NumCPU(),
		Server: b.server - a.server, LoadGen: b.loadGen - a.loadGen, Busy: b.busy - a.busy,
		HasDB: len(b.db) > 0,
	}
	for path, t := range b.db {
		s.AllDB += t - a.db[path]
		if b.ours[path] || a.ours[path] {
			s.Database += t - a.db[path]
		}
	}
	return s
}

// machineBusy is the time all CPUs spent not idle since boot, from the
// first line of /proc/stat (user nice system idle iowait irq softirq steal
// ...; guest time is already in user). 0 when unreadable.
func machineBusy() time.Duration {
	line := firstLine("/proc/stat")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var ticks int64
	for i, v := range f[1:9] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick
}

// share is d as a percentage of the split's capacity, for the report.
func (s cpuSplit) share(d time.Duration) string {
	if s.Capacity() <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f s (%.0f%%)", d.Seconds(), 100*float64(d)/float64(s.Capacity()))
}
