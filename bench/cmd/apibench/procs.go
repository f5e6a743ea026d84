package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// stopTimeout is how long a child gets to exit after SIGTERM before it is
// killed. pipelined's graceful shutdown finishes at once when idle, so this
// only matters for a hung child.
const stopTimeout = 10 * time.Second

// readyTimeout bounds how long a server may take to become ready. moto_server
// needs a few seconds to import; pipelined on PostgreSQL runs migrations.
const readyTimeout = 60 * time.Second

// proc is one child server process.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
	waitErr error         // valid after done is closed
}

// procSet tracks every child started, so that all of them are stopped at the
// end of the run, including after an error or a signal.
type procSet struct {
	mu    sync.Mutex
	procs []*proc
}

// start launches argv as a child process in its own process group, with its
// output going to logPath. Its own process group keeps a terminal's ctrl-C
// from reaching it directly: apibench stops it itself, in order. Pdeathsig
// makes the kernel kill it if apibench dies without cleaning up.
func (s *procSet) start(name, logPath string, env []string, argv ...string) (*proc, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own copy of the descriptor

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	s.mu.Lock()
	s.procs = append(s.procs, p)
	s.mu.Unlock()
	return p, nil
}

// stopAll stops every child still running, newest first.
func (s *procSet) stopAll() error {
	s.mu.Lock()
	procs := s.procs
	s.procs = nil
	s.mu.Unlock()
	var errs []error
	for i := len(procs) - 1; i >= 0; i-- {
		errs = append(errs, procs[i].stop())
	}
	return errors.Join(errs...)
}

// exited reports whether the process has already exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the child's process group (moto_server starts via a
// pyenv shim, so the group catches whatever it execs), waits, and kills the
// group if it does not exit in time. Stopping an exited process is a no-op.
func (p *proc) stop() error {
	if p.exited() {
		return nil
	}
	pgid := p.cmd.Process.Pid // Setpgid: the group id is the child's pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(stopTimeout):
	}
	log.Printf("%s did not stop within %s of SIGTERM; killing it", p.name, stopTimeout)
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-p.done
	return nil
}

// exitError describes an unexpected exit, with the end of the child's log.
func (p *proc) exitError() error {
	return fmt.Errorf("%s exited early (%v); last lines of %s:\n%s", p.name, p.waitErr, p.logPath, tail(p.logPath, 20))
}

// memory is a process's resident set size now and at its peak.
type memory struct {
	RSS, HWM int64 // bytes
}

// memory reads VmRSS and VmHWM from /proc/PID/status.
func (p *proc) memory() (memory, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return memory{}, err
	}
	defer f.Close()
	var m memory
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		if err != nil {
			return memory{}, fmt.Errorf("parse %s %q: %w", key, val, err)
		}
		if key == "VmRSS" {
			m.RSS = kb << 10
		} else {
			m.HWM = kb << 10
		}
	}
	if err := sc.Err(); err != nil {
		return memory{}, err
	}
	if m.RSS == 0 || m.HWM == 0 {
		return memory{}, fmt.Errorf("no VmRSS/VmHWM in /proc/%d/status", p.cmd.Process.Pid)
	}
	return m, nil
}

// clockTick is the unit of utime and stime in /proc/PID/stat: USER_HZ,
// which is 100 on every Linux architecture Go supports (reading it needs
// sysconf, that is cgo).
const clockTick = 10 * time.Millisecond

// cpuTime is the CPU time (user and system) the process has used so far,
// from /proc/PID/stat, with its threads.
func (p *proc) cpuTime() (time.Duration, error) {
	_, t, err := statCPU(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	return t, err
}

// statCPU reads a /proc/PID/stat file: the command name and the CPU time
// (user and system, with its threads) the process has used so far.
func statCPU(path string) (comm string, cpu time.Duration, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", 0, err
	}
	// The command name (field 2) is in parentheses and may contain spaces;
	// fields are counted from the ')' that closes it. utime and stime are
	// fields 14 and 15.
	open, i := strings.IndexByte(string(b), '('), strings.LastIndexByte(string(b), ')')
	if open < 0 || i < open {
		return "", 0, fmt.Errorf("malformed %s", path)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return "", 0, fmt.Errorf("malformed %s", path)
	}
	var ticks int64
	for _, field := range f[11:13] {
		n, err := strconv.ParseInt(field, 10, 64)
		if err != nil {
			return "", 0, fmt.Errorf("%s: %w", path, err)
		}
		ticks += n
	}
	return string(b[open+1 : i]), time.Duration(ticks) * clockTick, nil
}

// waitReady polls check until it succeeds, the child exits, or readyTimeout
// passes.
func (p *proc) waitReady(ctx context.Context, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	var last error
	for {
		if p.exited() {
			return p.exitError()
		}
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		last = check(cctx)
		ccancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s: %v (log: %s)", p.name, readyTimeout, last, p.logPath)
		case <-p.done:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// healthz is the readiness check of pipelined and the no-op server.
func healthz(baseURL string) func(context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/healthz", nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /healthz: %s", resp.Status)
		}
		return nil
	}
}

// freeAddr picks a free loopback port. Another process could take it
// before the child binds it; the child then fails to start and says so.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

// tail returns the last n lines of a file, for error messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
