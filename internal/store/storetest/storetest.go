// Package storetest is the conformance suite of store.Store. Every
// implementation runs it unchanged from its own tests:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, storetest.Harness{New: ..., Reopen: ...})
//	}
//
// The suite tests the contract documented in package store, plus the points
// store.go leaves open, which it settles as follows (an implementation must
// do the same):
//
//   - The store assigns Version, Created and Updated. CreatePipeline stores
//     version 1 with Created = Updated = now, whatever the argument says;
//     UpdatePipeline stores version latest+1 under the same name with
//     latest's Created and Updated = now, whatever fn returns for them.
//     PutActionType stores under the key it was given, keeps the stored
//     Created (now when there is none) and sets Updated = now.
//   - Definition and Payload round-trip byte for byte (the suite's
//     definitions are valid JSON, but a column that normalizes JSON, such
//     as PostgreSQL's jsonb, does not keep the bytes).
//   - "Name order" and "ordered by key" are byte order (Go's string
//     comparison), on every backend; action types sort by (Category, Owner,
//     Provider, Version).
//   - Timestamps are compared with a tolerance of maxSkew against the test
//     process's clock, so a backend may use the database's clock instead of
//     Go's, and may keep them at millisecond precision (a value returned by
//     a write may differ from the value read back by less than 1ms).
//   - Listen has subscribed when it returns: a notification sent after that
//     reaches the listener (unless dropped for a full buffer).
//   - A claim, or lease, whose expiry time has been reached is expired. An
//     owner whose claim expired but was not taken over may still Complete.
//   - PutActionType whose fn returns nil returns the stored action type
//     unchanged (nil when there is none).
//   - UpdatePipeline does not call fn for a pipeline that does not exist.
//   - fn's own errors come back from UpdatePipeline, UpdateTags and
//     PutActionType so that errors.Is finds them.
//   - A method called with a canceled context fails with an error that
//     errors.Is(err, context.Canceled) recognizes.
//
// Timing tests use short TTLs (leaseTTL) and never assert on a result whose
// timing the machine's load made ambiguous: they skip instead, so a slow CI
// machine gets a weaker test, not a flaky one.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/pipelined/pipelined/internal/store"
)

// Harness opens stores for the suite.
//
// New returns an empty store for one test. Each test gets its own, and the
// tests run in parallel (t.Parallel), so New must be safe to call
// concurrently.
//
// Reopen returns a second, independent handle on the SAME database as s: a
// second connection pool, as a second replica or a restarted process would
// have. It is used by the restart, cross-handle claim, lease and notify
// tests, which are skipped when Reopen is nil. s may already be closed.
//
// The suite closes every store it gets, once, before the cleanups that New
// or Reopen registered with t.Cleanup run (so those may drop the database).
//
// LegacyNonce makes job jobID of s look as a row written before schema
// version 6 does after migration 00006: its clear nonce in the legacy
// column, no NonceHash (backend SQL: the interface cannot write one). The
// HashLegacyNonces test is skipped when it is nil.
type Harness struct {
	New         func(t *testing.T) store.Store
	Reopen      func(t *testing.T, s store.Store) store.Store
	LegacyNonce func(t *testing.T, s store.Store, jobID, nonce string)
}

const (
	// maxSkew is how far the store's timestamps may be from the test's
	// clock: room for a database clock that is not the test process's.
	maxSkew = 2 * time.Second
	// leaseTTL is the short lease and claim duration of the expiry tests.
	leaseTTL = 200 * time.Millisecond
	// notifyWait is how long a notification may take to arrive.
	notifyWait = time.Second
)

type testCase struct {
	name string
	fn   func(t *testing.T, s *suite)
}

// Run runs the whole suite, every test in parallel with its own store.
func Run(t *testing.T, h Harness) {
	if h.New == nil {
		t.Fatal("storetest: Harness.New is nil")
	}
	s := &suite{h: h}
	var tests []testCase
	tests = append(tests, pipelineTests...)
	tests = append(tests, tagTests...)
	tests = append(tests, actionTypeTests...)
	tests = append(tests, queueTests...)
	tests = append(tests, leaseTests...)
	tests = append(tests, notifyTests...)
	tests = append(tests, handleTests...)
	tests = append(tests, engineTests...)
	tests = append(tests, clientTests...)
	tests = append(tests, signingKeyTests...)
	tests = append(tests, workerKeyTests...)
	tests = append(tests, logTests...)
	tests = append(tests, countTests...)
	tests = append(tests, consoleUserTests...)
	tests = append(tests, gitConnectionTests...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, s)
		})
	}
}

type suite struct {
	h Harness
}

// open returns a new, empty store, closed when the test ends.
func (s *suite) open(t *testing.T) store.Store {
	st, _ := s.openClosable(t)
	return st
}

// openClosable is open, and also returns a function that closes the store
// early (the cleanup then does nothing).
func (s *suite) openClosable(t *testing.T) (store.Store, func()) {
	t.Helper()
	st := s.h.New(t)
	if st == nil {
		t.Fatal("Harness.New returned nil")
	}
	return st, closeAtCleanup(t, st)
}

// reopen returns a second handle on st's database, closed when the test
// ends; it skips the test when the harness cannot reopen.
func (s *suite) reopen(t *testing.T, st store.Store) store.Store {
	t.Helper()
	if s.h.Reopen == nil {
		t.Skip("Harness.Reopen is nil")
	}
	other := s.h.Reopen(t, st)
	if other == nil {
		t.Fatal("Harness.Reopen returned nil")
	}
	closeAtCleanup(t, other)
	return other
}

// openPair returns a new store and a second handle on its database.
func (s *suite) openPair(t *testing.T) (a, b store.Store) {
	t.Helper()
	if s.h.Reopen == nil {
		t.Skip("Harness.Reopen is nil")
	}
	a = s.open(t)
	return a, s.reopen(t, a)
}

func closeAtCleanup(t *testing.T, st store.Store) func() {
	var once sync.Once
	closeFn := func() {
		once.Do(func() {
			if err := st.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	t.Cleanup(closeFn)
	return closeFn
}

// uniq returns prefix with a random suffix: for names that a backend may
// share between the tests' databases (PostgreSQL's notification channels).
func uniq(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // never fails
	return prefix + "_" + hex.EncodeToString(b[:])
}

// window is the interval in which a timestamp the store assigned during a
// call must lie: [before-maxSkew, after+maxSkew].
type window struct{ lo, hi time.Time }

// during returns the window of a call that starts now; end it with done.
func during() *window { return &window{lo: time.Now()} }

func (w *window) done() *window { w.hi = time.Now(); return w }

func (w *window) check(t *testing.T, what string, got time.Time) {
	t.Helper()
	if got.Before(w.lo.Add(-maxSkew)) || got.After(w.hi.Add(maxSkew)) {
		t.Errorf("%s = %v, want within %v of [%v, %v]", what, got, maxSkew, w.lo, w.hi)
	}
}

// sameTime reports whether a and b are equal at the precision a backend may
// keep (1ms).
func sameTime(a, b time.Time) bool {
	d := a.Sub(b)
	return d > -time.Millisecond && d < time.Millisecond
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: err = %v, want %v", what, err, want)
	}
}

func noErr(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func equalBytes(a, b []byte) bool { return bytes.Equal(a, b) }

func errorsIs(err, target error) bool { return errors.Is(err, target) }

// errFn is the error the tests' callbacks fail with.
var errFn = errors.New("storetest: fn failed")

func canceled(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	return ctx
}
