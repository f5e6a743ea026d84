package dirlock

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestAcquireIsExclusiveAndReleasable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	l, err := Acquire(path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
		t.Errorf("lock file holds %q, want this pid %d", b, os.Getpid())
	}
	// A second open of the same file, even in this process, is refused.
	_, err = Acquire(path)
	var held *HeldError
	if !errors.As(err, &held) {
		t.Fatalf("second Acquire: %v, want a *HeldError", err)
	}
	if held.PID != os.Getpid() || held.Path != path {
		t.Errorf("HeldError = %+v, want pid %d and path %s", held, os.Getpid(), path)
	}
	if msg := err.Error(); !strings.Contains(msg, path) || !strings.Contains(msg, strconv.Itoa(os.Getpid())) {
		t.Errorf("message %q does not name the lock file and the holder's pid", msg)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	l2, err := Acquire(path)
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	defer l2.Release()
	var nilLock *Lock
	if err := nilLock.Release(); err != nil {
		t.Errorf("Release of a nil lock: %v", err)
	}
}

func TestAcquireReportsAnUnopenablePath(t *testing.T) {
	_, err := Acquire(filepath.Join(t.TempDir(), "missing", "x.lock"))
	var held *HeldError
	if err == nil || errors.As(err, &held) {
		t.Fatalf("Acquire in a missing dir: %v, want an open error", err)
	}
}
