package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func openTest(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "w.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.write(t.Context(), func(w *wtx) error {
		_, err := w.exec("CREATE TABLE t_writer (k TEXT PRIMARY KEY)")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return s
}

func insert(w *wtx, k string) error {
	_, err := w.exec("INSERT INTO t_writer (k) VALUES (?)", k)
	return err
}

func keys(t *testing.T, s *Store) map[string]bool {
	t.Helper()
	rows, err := s.rdb.QueryContext(t.Context(), "SELECT k FROM t_writer")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]bool{}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		got[k] = true
	}
	return got
}

// TestGroupCommitIsolatesWrites: writes committed together still succeed
// or fail one by one. A failing write, a panicking one and one whose
// statement breaks a constraint leave nothing behind; the others commit.
func TestGroupCommitIsolatesWrites(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	// Hold the writer so that the writes below queue up and are taken as
	// one batch when it is released.
	hold, held := make(chan struct{}), make(chan struct{})
	blockerDone := make(chan error, 1)
	go func() {
		blockerDone <- s.write(ctx, func(w *wtx) error {
			close(held)
			<-hold
			return insert(w, "blocker")
		})
	}()
	<-held
	before := s.commits.Load()

	const ok = 20
	errBoom := errors.New("boom")
	var wg sync.WaitGroup
	results := make(map[string]any)
	var mu sync.Mutex
	run := func(name string, fn func(w *wtx) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if v := recover(); v != nil {
					mu.Lock()
					results[name] = fmt.Sprintf("panic: %v", v)
					mu.Unlock()
				}
			}()
			err := s.write(ctx, fn)
			mu.Lock()
			results[name] = err
			mu.Unlock()
		}()
	}
	for i := range ok {
		k := fmt.Sprintf("ok-%d", i)
		run(k, func(w *wtx) error { return insert(w, k) })
	}
	run("fails", func(w *wtx) error {
		if err := insert(w, "fails"); err != nil {
			return err
		}
		return errBoom
	})
	run("panics", func(w *wtx) error {
		if err := insert(w, "panics"); err != nil {
			return err
		}
		panic("write panicked")
	})
	run("duplicate", func(w *wtx) error {
		if err := insert(w, "dup-first"); err != nil {
			return err
		}
		return insert(w, "blocker") // the blocker's key: a constraint failure
	})
	time.Sleep(200 * time.Millisecond) // let every write queue behind the blocker
	close(hold)
	if err := <-blockerDone; err != nil {
		t.Fatalf("blocker: %v", err)
	}
	wg.Wait()

	for i := range ok {
		k := fmt.Sprintf("ok-%d", i)
		if results[k] != nil {
			t.Errorf("%s: %v", k, results[k])
		}
	}
	if err, _ := results["fails"].(error); !errors.Is(err, errBoom) {
		t.Errorf("failing write returned %v, want its own error", results["fails"])
	}
	if results["panics"] != "panic: write panicked" {
		t.Errorf("panicking write: %v, want its panic raised in its caller", results["panics"])
	}
	if err, _ := results["duplicate"].(error); err == nil || !isUniqueViolation(err) {
		t.Errorf("duplicate write returned %v, want a unique violation", results["duplicate"])
	}
	got := keys(t, s)
	for i := range ok {
		if !got[fmt.Sprintf("ok-%d", i)] {
			t.Errorf("ok-%d was not stored", i)
		}
	}
	for _, k := range []string{"fails", "panics", "dup-first"} {
		if got[k] {
			t.Errorf("%s was stored by a write that failed", k)
		}
	}
	// The blocker committed alone; the 23 queued writes in far fewer
	// transactions than writes.
	if n := s.commits.Load() - before; n >= ok {
		t.Errorf("%d commits for %d queued writes: they were not grouped", n, ok+3)
	}
}

// TestWriteCanceledContext: a write whose context is done before it runs
// fails with the context's error and writes nothing, also when it waited
// in a batch behind another write.
func TestWriteCanceledContext(t *testing.T) {
	s := openTest(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.write(ctx, func(w *wtx) error { return insert(w, "early") }); !errors.Is(err, context.Canceled) {
		t.Fatalf("write with a canceled context: %v", err)
	}

	hold, held := make(chan struct{}), make(chan struct{})
	go func() {
		_ = s.write(t.Context(), func(w *wtx) error { close(held); <-hold; return nil })
	}()
	<-held
	ctx2, cancel2 := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- s.write(ctx2, func(w *wtx) error { return insert(w, "late") }) }()
	time.Sleep(100 * time.Millisecond)
	cancel2()
	close(hold)
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("write canceled while queued: %v", err)
	}
	if got := keys(t, s); got["early"] || got["late"] {
		t.Fatalf("canceled writes stored %v", got)
	}
}

// TestWriteAfterClose fails instead of hanging.
func TestWriteAfterClose(t *testing.T) {
	s := openTest(t)
	s.Close()
	done := make(chan error, 1)
	go func() { done <- s.write(context.Background(), func(w *wtx) error { return nil }) }()
	select {
	case err := <-done:
		if !errors.Is(err, errClosed) {
			t.Fatalf("write after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("write after Close hangs")
	}
}
