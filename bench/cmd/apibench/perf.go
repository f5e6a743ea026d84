package main

import (
	"errors"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// startPerf, when -perf is set and servers are given, attaches
// `perf record -g` to them for the measurement and returns the function that
// stops it. Profiling is auxiliary: a failure is logged, never fatal. perf
// samples the servers from outside, so they need no profiling hook.
func (b *bench) startPerf(label string, servers ...*server) (stop func()) {
	noop := func() {}
	if b.o.perfDir == "" || len(servers) == 0 {
		return noop
	}
	pids := make([]string, len(servers))
	for i, s := range servers {
		pids[i] = strconv.Itoa(s.cmd.Process.Pid)
	}
	if err := os.MkdirAll(b.o.perfDir, 0o755); err != nil {
		log.Printf("perf: %v", err)
		return noop
	}
	file, err := filepath.Abs(filepath.Join(b.o.perfDir, slug(label)+".perf.data"))
	if err != nil {
		log.Printf("perf: %v", err)
		return noop
	}
	cmd := exec.Command("perf", "record", "-F", "499", "-g", "-o", file, "-p", strings.Join(pids, ","))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	logFile, err := os.Create(file + ".log")
	if err != nil {
		log.Printf("perf: %v", err)
		return noop
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		log.Printf("perf: %v", err)
		return noop
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	return func() {
		defer logFile.Close()
		// perf writes its file when interrupted, as after ctrl-C.
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case err := <-done:
			if err != nil && !isSignalExit(err) {
				log.Printf("perf for %s: %v (see %s.log)", label, err, file)
				return
			}
		case <-time.After(stopTimeout):
			_ = cmd.Process.Kill()
			<-done
			log.Printf("perf for %s did not stop; killed", label)
			return
		}
		b.perfFiles = append(b.perfFiles, file)
	}
}

// isSignalExit reports whether err is the exit of a process killed by the
// SIGINT that stopped it.
func isSignalExit(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGINT
}

// slug makes a label a file name.
func slug(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}
