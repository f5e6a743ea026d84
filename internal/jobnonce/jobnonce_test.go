package jobnonce

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func keeper(t *testing.T, b byte) *Keeper {
	t.Helper()
	k, err := New(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestNonceIsKeptHashedAndVerifies(t *testing.T) {
	k := keeper(t, 1)
	nonce, stored := k.New("job-1", false)
	if len(nonce) < 32 || len(nonce) > 50 {
		t.Fatalf("nonce %q: want 32 to 50 characters (the model allows 50)", nonce)
	}
	if strings.Contains(stored, nonce) {
		t.Fatalf("stored value %q contains the nonce", stored)
	}
	if !k.Verify("job-1", stored, nonce) {
		t.Error("the nonce does not verify")
	}
	for _, c := range []struct{ what, job, stored, nonce string }{
		{"another nonce", "job-1", stored, nonce + "x"},
		{"an empty nonce", "job-1", stored, ""},
		{"another job's id", "job-2", stored, nonce},
		{"no stored value", "job-1", "", nonce},
		{"a stored clear nonce", "job-1", nonce, nonce},
		{"a mangled hash", "job-1", hashPrefix + "!!", nonce},
	} {
		if k.Verify(c.job, c.stored, c.nonce) {
			t.Errorf("%s verifies", c.what)
		}
	}
	if k2 := keeper(t, 2); k2.Verify("job-1", stored, nonce) {
		t.Error("the hash verifies under another master key: it is not keyed")
	}
	if _, err := k.Reveal("job-1", stored); !errors.Is(err, ErrNotRevealable) {
		t.Errorf("Reveal of a custom job's nonce: err = %v, want ErrNotRevealable", err)
	}
	if n2, _ := k.New("job-1", false); n2 == nonce {
		t.Error("two nonces are equal")
	}
}

func TestRevealableNonce(t *testing.T) {
	k := keeper(t, 1)
	nonce, stored := k.New("job-1", true)
	if strings.Contains(stored, nonce) {
		t.Fatalf("stored value %q contains the nonce", stored)
	}
	if !k.Verify("job-1", stored, nonce) {
		t.Error("the nonce does not verify")
	}
	got, err := k.Reveal("job-1", stored)
	if err != nil || got != nonce {
		t.Errorf("Reveal = %q, %v; want %q", got, err, nonce)
	}
	if _, err := k.Reveal("job-2", stored); err == nil {
		t.Error("the sealed copy opens for another job")
	}
	if _, err := keeper(t, 2).Reveal("job-1", stored); err == nil {
		t.Error("the sealed copy opens under another master key")
	}
	// Store re-hashes a given (legacy) nonce the same way.
	if again := k.Store("job-1", nonce, false); !k.Verify("job-1", again, nonce) {
		t.Error("Store of a given nonce does not verify")
	}
}

// FuzzVerify: what the store holds is parsed by Verify and Reveal; no
// value that the keeper did not make for (job, nonce) verifies it.
func FuzzVerify(f *testing.F) {
	k := keeper(&testing.T{}, 1)
	nonce, stored := k.New("job-1", true)
	f.Add("job-1", stored, nonce+"x")
	f.Add("job-2", stored, nonce)
	f.Add("job-1", hashPrefix+";sealed:v1:", nonce)
	f.Add("job-1", "", "")
	f.Fuzz(func(t *testing.T, jobID, stored, nonce string) {
		if k.Verify(jobID, stored, nonce) && stored != k.Store(jobID, nonce, false) &&
			!strings.HasPrefix(stored, k.Store(jobID, nonce, false)+sealedSep) {
			t.Fatalf("Verify(%q, %q, %q) accepted a value the keeper did not make", jobID, stored, nonce)
		}
		_, _ = k.Reveal(jobID, stored)
	})
}
