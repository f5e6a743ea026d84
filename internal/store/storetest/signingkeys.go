package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/pipelined/pipelined/internal/store"
)

var signingKeyTests = []testCase{
	{"SigningKeysNotFound", testSigningKeysNotFound},
	{"SigningKeysFirstSwap", testSigningKeysFirstSwap},
	{"SigningKeysStaleSwap", testSigningKeysStaleSwap},
	{"SigningKeysBytes", testSigningKeysBytes},
	{"SigningKeysConcurrentSwap", testSigningKeysConcurrentSwap},
	{"SigningKeysAcrossReopen", testSigningKeysAcrossReopen},
	{"SigningKeysCanceledContext", testSigningKeysCanceledContext},
}

// checkSigningKeys compares a key set's version and doc (byte for byte).
func checkSigningKeys(t *testing.T, what string, got store.SigningKeys, version int64, doc []byte) {
	t.Helper()
	if got.Version != version || !bytes.Equal(got.Doc, doc) {
		t.Errorf("%s = version %d doc %q, want version %d doc %q", what, got.Version, got.Doc, version, doc)
	}
}

func mustSwapSigningKeys(t *testing.T, st store.Store, prev int64, doc []byte) store.SigningKeys {
	t.Helper()
	k, err := st.SwapSigningKeys(t.Context(), prev, doc)
	noErr(t, fmt.Sprintf("SwapSigningKeys from %d", prev), err)
	checkSigningKeys(t, fmt.Sprintf("SwapSigningKeys from %d", prev), k, prev+1, doc)
	return k
}

func testSigningKeysNotFound(t *testing.T, s *suite) {
	st := s.open(t)
	_, err := st.SigningKeys(t.Context())
	wantErr(t, "SigningKeys of an empty store", err, store.ErrNotFound)
}

func testSigningKeysFirstSwap(t *testing.T, s *suite) {
	st := s.open(t)
	doc := []byte(`{"keys":1}`)
	w := during()
	k := mustSwapSigningKeys(t, st, 0, doc)
	w.done()
	w.check(t, "SwapSigningKeys Updated", k.Updated)

	got, err := st.SigningKeys(t.Context())
	noErr(t, "SigningKeys", err)
	checkSigningKeys(t, "SigningKeys", got, 1, doc)
	if !sameTime(got.Updated, k.Updated) {
		t.Errorf("SigningKeys Updated = %v, want %v as SwapSigningKeys returned", got.Updated, k.Updated)
	}

	// The next version's Updated moves with it.
	w = during()
	k2 := mustSwapSigningKeys(t, st, 1, []byte(`{"keys":2}`))
	w.done()
	w.check(t, "second SwapSigningKeys Updated", k2.Updated)
}

// testSigningKeysStaleSwap: a swap from any version but the stored one
// fails with ErrConflict and changes nothing.
func testSigningKeysStaleSwap(t *testing.T, s *suite) {
	st := s.open(t)
	// With nothing stored, only prev 0 matches.
	for _, prev := range []int64{1, 2, -1} {
		_, err := st.SwapSigningKeys(t.Context(), prev, []byte(`{"stale":true}`))
		wantErr(t, fmt.Sprintf("SwapSigningKeys from %d of an empty store", prev), err, store.ErrConflict)
	}
	_, err := st.SigningKeys(t.Context())
	wantErr(t, "SigningKeys after failed swaps", err, store.ErrNotFound)

	v1 := mustSwapSigningKeys(t, st, 0, []byte(`{"v":1}`))
	v2doc := []byte(`{"v":2}`)
	v2 := mustSwapSigningKeys(t, st, v1.Version, v2doc)

	for _, prev := range []int64{0, 1, 3, 100} {
		_, err := st.SwapSigningKeys(t.Context(), prev, []byte(`{"stale":true}`))
		wantErr(t, fmt.Sprintf("SwapSigningKeys from %d at version 2", prev), err, store.ErrConflict)
	}
	got, err := st.SigningKeys(t.Context())
	noErr(t, "SigningKeys", err)
	checkSigningKeys(t, "SigningKeys after stale swaps", got, 2, v2doc)
	if !sameTime(got.Updated, v2.Updated) {
		t.Errorf("stale swaps moved Updated from %v to %v", v2.Updated, got.Updated)
	}
}

// testSigningKeysBytes: the doc is kept byte for byte, not normalized as
// JSON (the issuer may hash or compare it), and binary bytes survive.
func testSigningKeysBytes(t *testing.T, s *suite) {
	st := s.open(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), 16<<10) // 256 KiB
	docs := [][]byte{
		[]byte("{ \"b\" : 1,\n\t\"a\":[ 1.0, 1e2 ] , \"a\": \"dup\\u0041\" }  "),
		{0x00, 0xff, 0xfe, '{', 0x80, 0x00, '}'},
		big,
	}
	var prev int64
	for i, doc := range docs {
		k := mustSwapSigningKeys(t, st, prev, doc)
		prev = k.Version
		got, err := st.SigningKeys(t.Context())
		noErr(t, "SigningKeys", err)
		if got.Version != prev || !bytes.Equal(got.Doc, doc) {
			t.Errorf("doc %d: read back version %d and %d bytes, want version %d and the %d bytes stored",
				i, got.Version, len(got.Doc), prev, len(doc))
		}
	}
}

// testSigningKeysConcurrentSwap: of swaps from the same version, on two
// handles when the harness has them (as two replicas), exactly one wins;
// the others get ErrConflict and the winner's doc is the one stored.
func testSigningKeysConcurrentSwap(t *testing.T, s *suite) {
	a := s.open(t)
	b := a
	if s.h.Reopen != nil {
		b = s.reopen(t, a)
	}
	const n = 8
	for _, prev := range []int64{0, 1} {
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			won      []int
			otherErr error
		)
		for i := range n {
			st := a
			if i%2 == 1 {
				st = b
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := st.SwapSigningKeys(t.Context(), prev, fmt.Appendf(nil, `{"writer":%d}`, i))
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					won = append(won, i)
				case !errors.Is(err, store.ErrConflict):
					otherErr = err
				}
			}()
		}
		wg.Wait()
		if otherErr != nil {
			t.Fatalf("a concurrent SwapSigningKeys from %d failed: %v", prev, otherErr)
		}
		if len(won) != 1 {
			t.Fatalf("%d concurrent swaps from version %d succeeded (writers %v), want exactly 1", len(won), prev, won)
		}
		for _, st := range []store.Store{a, b} {
			got, err := st.SigningKeys(t.Context())
			noErr(t, "SigningKeys", err)
			checkSigningKeys(t, fmt.Sprintf("SigningKeys after swaps from %d", prev), got, prev+1,
				fmt.Appendf(nil, `{"writer":%d}`, won[0]))
		}
	}
}

// testSigningKeysAcrossReopen: the key set survives a restart.
func testSigningKeysAcrossReopen(t *testing.T, s *suite) {
	if s.h.Reopen == nil {
		t.Skip("Harness.Reopen is nil")
	}
	st, closeEarly := s.openClosable(t)
	mustSwapSigningKeys(t, st, 0, []byte(`{"v":1}`))
	k := mustSwapSigningKeys(t, st, 1, []byte(`{"v":2}`))
	closeEarly()

	again := s.reopen(t, st)
	got, err := again.SigningKeys(t.Context())
	noErr(t, "SigningKeys after reopen", err)
	checkSigningKeys(t, "SigningKeys after reopen", got, 2, []byte(`{"v":2}`))
	if !sameTime(got.Updated, k.Updated) {
		t.Errorf("Updated after reopen = %v, want %v", got.Updated, k.Updated)
	}
	_, err = again.SwapSigningKeys(t.Context(), 1, []byte(`{"stale":true}`))
	wantErr(t, "stale SwapSigningKeys after reopen", err, store.ErrConflict)
	mustSwapSigningKeys(t, again, 2, []byte(`{"v":3}`))
}

func testSigningKeysCanceledContext(t *testing.T, s *suite) {
	st := s.open(t)
	mustSwapSigningKeys(t, st, 0, []byte(`{"v":1}`))
	ctx := canceled(t)
	_, err := st.SigningKeys(ctx)
	wantErr(t, "SigningKeys", err, context.Canceled)
	_, err = st.SwapSigningKeys(ctx, 1, []byte(`{"v":2}`))
	wantErr(t, "SwapSigningKeys", err, context.Canceled)
	_, err = st.SwapSigningKeys(ctx, 0, []byte(`{"v":2}`))
	wantErr(t, "SwapSigningKeys from 0", err, context.Canceled)
	got, err := st.SigningKeys(t.Context())
	noErr(t, "SigningKeys", err)
	checkSigningKeys(t, "SigningKeys after canceled swaps", got, 1, []byte(`{"v":1}`))
}
