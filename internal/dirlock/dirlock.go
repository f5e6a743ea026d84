// Package dirlock holds an exclusive advisory lock on a file for the life of
// a process: the guard that keeps two pipelined processes from serving one
// SQLite database (each would answer from its own cache, so what one wrote
// the other would not list).
//
// The lock is flock(2) on a lock file. The kernel releases it when the last
// descriptor closes, which includes the process dying by SIGKILL, so a crash
// never leaves a stale lock behind; the pid written into the file is only
// there to name the holder in the refusal message. The descriptor is opened
// close-on-exec, so processes the server starts (job runners) never inherit,
// and so never prolong, the lock.
package dirlock

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Lock is a held lock; Release gives it up.
type Lock struct {
	f    *os.File
	path string
}

// HeldError says that another process (or another open of the file in this
// one) holds the lock.
type HeldError struct {
	Path string
	// PID is the holder's pid as it wrote it into the lock file (0 when the
	// file holds none, for example while the holder is still writing it).
	PID int
}

func (e *HeldError) Error() string {
	holder := "another process"
	if e.PID > 0 {
		holder = fmt.Sprintf("another process (pid %d)", e.PID)
	}
	return fmt.Sprintf("lock file %s is held by %s", e.Path, holder)
}

// ErrNotSupported is returned on platforms without flock.
var ErrNotSupported = errors.New("dirlock: advisory file locks are not supported on this platform")

// Acquire takes the lock on path (created with mode 0600 when missing)
// without waiting: when another holds it, the error is a *HeldError. On
// success the file holds this process's pid.
func Acquire(path string) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock file %s: %w", path, err)
	}
	if err := tryLock(f); err != nil {
		pid := readPID(f)
		f.Close()
		if errors.Is(err, errWouldBlock) {
			return nil, &HeldError{Path: path, PID: pid}
		}
		return nil, fmt.Errorf("lock file %s: %w", path, err)
	}
	// Only the holder writes, so the pid in the file is always the holder's
	// (or empty for the moment between these two calls).
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Lock{f: f, path: path}, nil
}

// Path is the lock file's path.
func (l *Lock) Path() string { return l.path }

// Release gives the lock up. The file stays (removing it would race with a
// process that has opened it and is about to lock it). Release on a nil Lock
// does nothing.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	_ = l.f.Truncate(0)
	err := l.f.Close() // closing the only descriptor releases the flock
	l.f = nil
	return err
}

func readPID(f *os.File) int {
	buf := make([]byte, 32)
	n, _ := f.ReadAt(buf, 0)
	pid, err := strconv.Atoi(strings.TrimSpace(string(buf[:n])))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}
