package storetest

import (
	"fmt"
	"sync"
	"testing"

	"github.com/pipelined/pipelined/internal/store"
)

// testEngineHashLegacyNonces: the clear nonces rows from before schema
// version 6 hold become NonceHash and are gone; rows without one are left
// alone; a second run finds nothing; concurrent runs (replicas starting
// together) hash each row once.
func testEngineHashLegacyNonces(t *testing.T, s *suite) {
	if s.h.LegacyNonce == nil {
		t.Skip("the harness cannot write a legacy (pre-00006) nonce")
	}
	st := s.open(t)
	ctx := t.Context()
	key := atKey("Build", "Custom", "Tool", "1")
	const legacy = 250 // more than one batch
	var jobs []store.Job
	for i := range legacy {
		jobs = append(jobs, newJob(fmt.Sprintf("legacy-%03d", i), key, "", store.JobDispatched, engineT0))
	}
	current := newJob("current", key, "", "InProgress", engineT0)
	current.NonceHash = "kept-hash"
	putJobs(t, st, "p1", append(jobs, current)...)
	for _, j := range jobs {
		s.h.LegacyNonce(t, st, j.ID, "clear-"+j.ID)
	}

	var (
		mu     sync.Mutex
		hashed = map[string]int{}
		wg     sync.WaitGroup
		total  [2]int
	)
	hash := func(j store.Job, nonce string) string {
		mu.Lock()
		defer mu.Unlock()
		hashed[j.ID]++
		if nonce != "clear-"+j.ID || j.Status != store.JobDispatched || j.ActionType != key || j.Pipeline != "p1" {
			t.Errorf("hash got job %+v, nonce %q", j, nonce)
		}
		return "legacy-hash(" + nonce + ")"
	}
	other := st
	if s.h.Reopen != nil {
		other = s.reopen(t, st)
	}
	for i, h := range []store.Store{st, other} {
		wg.Go(func() {
			n, err := h.HashLegacyNonces(ctx, hash)
			if err != nil {
				t.Errorf("HashLegacyNonces: %v", err)
			}
			total[i] = n
		})
	}
	wg.Wait()
	if n := total[0] + total[1]; n != legacy {
		t.Errorf("HashLegacyNonces replaced %d + %d nonces, want %d in all", total[0], total[1], legacy)
	}
	for _, j := range jobs {
		got, err := st.GetJob(ctx, j.ID)
		noErr(t, "GetJob", err)
		if want := "legacy-hash(clear-" + j.ID + ")"; got.NonceHash != want || got.Nonce != "" {
			t.Errorf("job %s: NonceHash %q, Nonce %q; want %q and none", j.ID, got.NonceHash, got.Nonce, want)
		}
	}
	got, err := st.GetJob(ctx, "current")
	noErr(t, "GetJob", err)
	if got.NonceHash != "kept-hash" {
		t.Errorf("a job without a legacy nonce changed: NonceHash %q", got.NonceHash)
	}
	if _, ok := hashed["current"]; ok {
		t.Error("hash was called for a job without a legacy nonce")
	}
	n, err := st.HashLegacyNonces(ctx, hash)
	if err != nil || n != 0 {
		t.Errorf("second HashLegacyNonces = %d, %v; want 0, nil", n, err)
	}
}
