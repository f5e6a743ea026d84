package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pipelined/pipelined/internal/store"
)

// The engine's storage: InPipeline and its PipelineTx, executions, timers
// and jobs. Points store.go leaves open, settled here:
//
//   - A PipelineTx's PutExecution, PutTimer and PutJob store under the
//     transaction's pipeline whatever the record's Pipeline says, and fail
//     with ErrAlreadyExists for an ID that another pipeline's record has
//     (leaving that record alone); Execution, Job and DeleteTimer do not see
//     other pipelines' records.
//   - A PipelineTx method's error does not end the transaction: fn may
//     carry on (after PutExecution's ErrAlreadyExists for a taken token, it
//     looks the token up) and commit.
//   - ExecutionByToken("") is ErrNotFound.
//   - SetRuntime(nil) leaves no runtime (Runtime returns nil again); an
//     empty document comes back empty, not nil.
//   - Timestamps of executions, timers and jobs come back as stored (equal
//     to what PutExecution returns), within 1ms of what was given; a zero
//     time comes back zero.
//   - ClaimJobs compares a dispatched job's Deadline with the clock of the
//     process that calls it (the engine's, which set the Deadline).
//   - An InPipeline that fails with ErrConflict may be retried by the
//     caller; the suite does so.
var engineTests = []testCase{
	{"EngineRuntime", testEngineRuntime},
	{"EngineExecutions", testEngineExecutions},
	{"EngineExecutionsOtherPipeline", testEngineExecutionsOtherPipeline},
	{"EngineGetListExecutions", testEngineGetListExecutions},
	{"EngineRollback", testEngineRollback},
	{"EngineLockExcludes", testEngineLockExcludes},
	{"EngineConcurrentRuntime", testEngineConcurrentRuntime},
	{"EngineOtherPipelinesProceed", testEngineOtherPipelinesProceed},
	{"EngineTimers", testEngineTimers},
	{"EngineJobs", testEngineJobs},
	{"EngineReadsInTransaction", testEngineReadsInTransaction},
	{"EngineReadsNeedNoSecondConnection", testEngineReadsNeedNoSecondConnection},
	{"EngineClaimJobs", testEngineClaimJobs},
	{"EngineClaimJobsRedeliver", testEngineClaimJobsRedeliver},
	{"EngineClaimJobsConcurrent", testEngineClaimJobsConcurrent},
	{"EngineHashLegacyNonces", testEngineHashLegacyNonces},
	{"EngineDeletePipeline", testEngineDeletePipeline},
	{"EngineDeleteWaitsForTransition", testEngineDeleteWaitsForTransition},
	{"EngineCanceledContext", testEngineCanceledContext},
	{"EnginePanicRollsBack", testEnginePanicRollsBack},
}

// engineT0 has a sub-millisecond part on purpose: the store keeps
// milliseconds.
var engineT0 = time.Date(2024, 5, 1, 12, 0, 0, 123_456_789, time.UTC)

// inPipeline runs fn in InPipeline and fails the test on an error. fn must
// not call t.Fatal (it would leave the transaction open): it returns an
// error instead.
func inPipeline(t *testing.T, st store.Store, pipeline string, fn func(tx store.PipelineTx) error) {
	t.Helper()
	noErr(t, "InPipeline("+pipeline+")", st.InPipeline(t.Context(), pipeline, fn))
}

func newExecution(id, token string, active bool) store.Execution {
	return store.Execution{
		ID:          id,
		Pipeline:    "ignored: the transaction's pipeline is used",
		Seq:         999999, // assigned by the store
		Status:      "InProgress",
		Active:      active,
		ClientToken: token,
		// Not in any normal JSON form: must come back byte for byte.
		Doc:     []byte(fmt.Sprintf(`{"id": %q,  "stages":[ ], "a":1}`, id)),
		Created: engineT0,
		Updated: engineT0.Add(1500 * time.Microsecond),
	}
}

// checkExecution compares got with want; the times within 1ms, Seq only
// when want has one.
func checkExecution(t *testing.T, what string, got, want store.Execution) {
	t.Helper()
	if got.ID != want.ID || got.Pipeline != want.Pipeline || (want.Seq != 0 && got.Seq != want.Seq) ||
		got.Status != want.Status || got.Active != want.Active || got.ClientToken != want.ClientToken ||
		!equalBytes(got.Doc, want.Doc) || !sameTime(got.Created, want.Created) || !sameTime(got.Updated, want.Updated) {
		t.Errorf("%s = {%s %s seq %d %s active %v token %q %s %v %v},\nwant {%s %s seq %d %s active %v token %q %s %v %v}", what,
			got.ID, got.Pipeline, got.Seq, got.Status, got.Active, got.ClientToken, got.Doc, got.Created, got.Updated,
			want.ID, want.Pipeline, want.Seq, want.Status, want.Active, want.ClientToken, want.Doc, want.Created, want.Updated)
	}
}

// sameStored: a value read back equals the one the write returned.
func sameStored(t *testing.T, what string, read, written store.Execution) {
	t.Helper()
	checkExecution(t, what, read, written)
	if read.Seq != written.Seq || !read.Created.Equal(written.Created) || !read.Updated.Equal(written.Updated) {
		t.Errorf("%s: read seq %d, %v, %v; PutExecution returned %d, %v, %v", what,
			read.Seq, read.Created, read.Updated, written.Seq, written.Created, written.Updated)
	}
}

func executionIDs(es []store.Execution) []string {
	ids := []string{}
	for _, e := range es {
		ids = append(ids, e.ID)
	}
	return ids
}

func testEngineRuntime(t *testing.T, s *suite) {
	st := s.open(t)
	// The pipeline need not exist in the pipelines table.
	doc := []byte(`{"stages": {"Build": "e1"},  "waiting":[]}`)
	inPipeline(t, st, "p1", func(tx store.PipelineTx) error {
		got, err := tx.Runtime()
		if err != nil {
			return err
		}
		if got != nil {
			return fmt.Errorf("Runtime before any SetRuntime = %q, want nil", got)
		}
		if err := tx.SetRuntime(doc); err != nil {
			return err
		}
		// The transaction reads its own write.
		if got, err := tx.Runtime(); err != nil || !equalBytes(got, doc) {
			return fmt.Errorf("Runtime after SetRuntime = %q, %v; want %q", got, err, doc)
		}
		return nil
	})
	inPipeline(t, st, "p1", func(tx store.PipelineTx) error {
		got, err := tx.Runtime()
		if err != nil {
			return err
		}
		if !equalBytes(got, doc) {
			return fmt.Errorf("Runtime in a later transaction = %q, want %q", got, doc)
		}
		got[0] = 'X' // the caller owns what it gets
		if again, _ := tx.Runtime(); !equalBytes(again, doc) {
			return fmt.Errorf("Runtime shares memory with the caller: %q", again)
		}
		return tx.SetRuntime([]byte(`{"v":2}`))
	})
	inPipeline(t, st, "p1", func(tx store.PipelineTx) error {
		if got, err := tx.Runtime(); err != nil || string(got) != `{"v":2}` {
			return fmt.Errorf("Runtime after replacing = %q, %v", got, err)
		}
		return tx.SetRuntime([]byte{})
	})
	// An empty document is a document; nil is none.
	inPipeline(t, st, "p1", func(tx store.PipelineTx) error {
		if got, err := tx.Runtime(); err != nil || got == nil || len(got) != 0 {
			return fmt.Errorf("Runtime after SetRuntime(empty) = %#v, %v; want empty, not nil", got, err)
		}
		return tx.SetRuntime(nil)
	})
	inPipeline(t, st, "p1", func(tx store.PipelineTx) error {
		if got, err := tx.Runtime(); err != nil || got != nil {
			return fmt.Errorf("Runtime after SetRuntime(nil) = %#v, %v; want nil", got, err)
		}
		return nil
	})
	// Other pipelines have their own.
	inPipeline(t, st, "p2", func(tx store.PipelineTx) error {
		if got, err := tx.Runtime(); err != nil || got != nil {
			return fmt.Errorf("Runtime of another pipeline = %q, %v; want nil", got, err)
		}
		return nil
	})
}

func testEngineExecutions(t *testing.T, s *suite) {
	st := s.open(t)
	ctx := t.Context()

	var e1, e2, e3, o1 store.Execution
	inPipeline(t, st, "p1", func(tx store.PipelineTx) error {
		var err error
		if e1, err = tx.PutExecution(newExecution("e1", "tok1", true)); err != nil {
			return err
		}
		if e2, err = tx.PutExecution(newExecution("e2", "", false)); err != nil {
			return err
		}
		return nil
	})
	// Seq increases across the whole store.
	inPipeline(t, st, "p2", func(tx store.PipelineTx) error {
		var err error
		// The same token in another pipeline is fine.
		o1, err = tx.PutExecution(newExecution("o1", "tok1", true))
		return err
	})
	inPipeline(t, st, "p1", func(tx store.PipelineTx) error {
		var err error
		e3, err = tx.PutExecution(newExecution("e3", "tok3", true))
		return err
	})
	if !(e1.Seq > 0 && e1.Seq < e2.Seq && e2.Seq < o1.Seq && o1.Seq < e3.Seq) {
		t.Fatalf("Seq of e1, e2, o1, e3 = %d, %d, %d, %d; want positive and increasing", e1.Seq, e2.Seq, o1.Seq, e3.Seq)
	}
	want := newExecution("e1", "tok1", true)
	want.Pipeline, want.Seq = "p1", e1.Seq
	checkExecution(t, "PutExecution's result", e1, want)
	if o1.Pipeline != "p2" {
		t.Errorf("execution put in p2 has Pipeline %q", o1.Pipeline)
	}

	inPipeline(t, st, "p1", func(tx store.PipelineTx) error {
		got, err := tx.Execution("e1")
		if err != nil {
			return err
		}
		sameStored(t, "Execution(e1)", got, e1)
		if _, err := tx.Execution("o1"); !errorsIs(err, store.ErrNotFound) {
			return fmt.Errorf("Execution of another pipeline's execution: err = %v, want ErrNotFound", err)
		}
		if _, err := tx.Execution("nope"); !errorsIs(err, store.ErrNotFound) {
			return fmt.Errorf("Execution(nope): err = %v, want ErrNotFound", err)
		}

		// By token.
		got, err = tx.ExecutionByToken("tok1")
		if err != nil {
			return fmt.Errorf("ExecutionByToken(tok1): %w", err)
		}
		sameStored(t, "ExecutionByToken(tok1)", got, e1)
		for _, tok := range []string{"nope", ""} {
			if _, err := tx.ExecutionByToken(tok); !errorsIs(err, store.ErrNotFound) {
				return fmt.Errorf("ExecutionByToken(%q): err = %v, want ErrNotFound", tok, err)
			}
		}

		// A taken token is ErrAlreadyExists, and the transaction goes on:
		// the engine then returns the execution the token started.
		if _, err := tx.PutExecution(newExecution("e4", "tok1", true)); !errorsIs(err, store.ErrAlreadyExists) {
			return fmt.Errorf("PutExecution with a taken ClientToken: err = %v, want ErrAlreadyExists", err)
		}
		if got, err := tx.ExecutionByToken("tok1"); err != nil || got.ID != "e1" {
			return fmt.Errorf("ExecutionByToken after the failed put = %s, %v; want e1", got.ID, err)
		}
		// Updating to another execution's token is refused too.
		if _, err := tx.PutExecution(newExecution("e2", "tok3", false)); !errorsIs(err, store.ErrAlreadyExists) {
			return fmt.Errorf("update to a taken ClientToken: err = %v, want ErrAlreadyExists", err)
		}

		// Active ones only, by Seq.
		active, err := tx.ActiveExecutions()
		if err != nil {
			return err
		}
		if ids := executionIDs(active); !slices.Equal(ids, []string{"e1", "e3"}) {
			return fmt.Errorf("ActiveExecutions = %v, want [e1 e3]", ids)
		}
		sameStored(t, "ActiveExecutions[0]", active[0], e1)

		// Update: keeps Seq, replaces the rest.
		upd := e1
		upd.Seq = 1 // ignored
		upd.Status, upd.Active = "Succeeded", false
		upd.Doc = []byte(`{"done": true}`)
		upd.Created = engineT0.Add(-time.Hour) // the engine's, kept as given
		upd.Updated = engineT0.Add(time.Hour)
		stored, err := tx.PutExecution(upd)
		if err != nil {
			return fmt.Errorf("PutExecution update: %w", err)
		}
		upd.Seq = e1.Seq
		checkExecution(t, "PutExecution update's result", stored, upd)
		e1 = stored
		got, err = tx.Execution("e1")
		if err != nil {
			return err
		}
		sameStored(t, "Execution(e1) after update", got, e1)
		active, err = tx.ActiveExecutions()
		if err != nil {
			return err
		}
		if ids := executionIDs(active); !slices.Equal(ids, []string{"e3"}) {
			return fmt.Errorf("ActiveExecutions after e1 finished = %v, want [e3]", ids)
		}
		return nil
	})
	// The transaction with failed statements committed.
	got, err := st.GetExecution(ctx, "p1", "e1")
	noErr(t, "GetExecution(e1)", err)
	sameStored(t, "e1 after commit", got, e1)
	_, err = st.GetExecution(ctx, "p1", "e4")
	wantErr(t, "GetExecution of the execution whose put failed", err, store.ErrNotFound)
	got, err = st.GetExecution(ctx, "p1", "e2")
	noErr(t, "GetExecution(e2)", err)
	sameStored(t, "e2, whose update failed", got, e2)

	// The token stays e1's after e1 finished.
	inPipeline(t, st, "p1", func(tx store.PipelineTx) error {
		if _, err := tx.PutExecution(newExecution("e5", "tok1", true)); !errorsIs(err, store.ErrAlreadyExists) {
			return fmt.Errorf("PutExecution with the token of a finished execution: err = %v, want ErrAlreadyExists", err)
		}
		return nil
	})
}

// testEngineExecutionsOtherPipeline: IDs belong to one pipeline; another
// pipeline's transaction can neither see nor take them.
func testEngineExecutionsOtherPipeline(t *testing.T, s *suite) {
	st := s.open(t)
	ctx := t.Context()
	var o1 store.Execution
	inPipeline(t, st, "p2", func(tx store.PipelineTx) error {
		var err error
		if o1, err = tx.PutExecution(newExecution("x", "", true)); err != nil {
			return err
		}
		if err := tx.PutTimer(store.Timer{ID: "x", Due: engineT0, Payload: []byte("p2")}); err != nil {
			return err
		}
		return tx.PutJob(newJob("x", atKey("Build", "Custom", "T", "1"), "", store.JobQueued, engineT0))
	})
	inPipeline(t, st, "p1", func(tx store.PipelineTx) error {
		if _, err := tx.PutExecution(newExecution("x", "", false)); !errorsIs(err, store.ErrAlreadyExists) {
			return fmt.Errorf("PutExecution with another pipeline's ID: err = %v, want ErrAlreadyExists", err)
		}
		if err := tx.PutTimer(store.Timer{ID: "x", Due: engineT0.Add(time.Hour), Payload: []byte("p1")}); !errorsIs(err, store.ErrAlreadyExists) {
			return fmt.Errorf("PutTimer with another pipeline's ID: err = %v, want ErrAlreadyExists", err)
		}
		if err := tx.PutJob(newJob("x", atKey("Build", "Custom", "T", "1"), "", "Failed", engineT0)); !errorsIs(err, store.ErrAlreadyExists) {
			return fmt.Errorf("PutJob with another pipeline's ID: err = %v, want ErrAlreadyExists", err)
		}
		if _, err := tx.Job("x"); !errorsIs(err, store.ErrNotFound) {
			return fmt.Errorf("Job of another pipeline's job: err = %v, want ErrNotFound", err)
		}
		if err := tx.DeleteTimer("x"); err != nil {
			return fmt.Errorf("DeleteTimer of another pipeline's timer: %w", err)
		}
		// The transaction is still usable.
		_, err := tx.PutExecution(newExecution("y", "", true))
		return err
	})
	got, err := st.GetExecution(ctx, "p2", "x")
	noErr(t, "GetExecution(p2, x)", err)
	sameStored(t, "p2's execution", got, o1)
	_, err = st.GetExecution(ctx, "p1", "x")
	wantErr(t, "GetExecution(p1, x)", err, store.ErrNotFound)
	timers, err := st.DueTimers(ctx, engineT0.Add(2*time.Hour), 10)
	noErr(t, "DueTimers", err)
	if len(timers) != 1 || timers[0].Pipeline != "p2" || string(timers[0].Payload) != "p2" {
		t.Errorf("timers = %+v, want only p2's, unchanged", timers)
	}
	j, err := st.GetJob(ctx, "x")
	noErr(t, "GetJob(x)", err)
	if j.Pipeline != "p2" || j.Status != store.JobQueued {
		t.Errorf("job x = pipeline %q, status %q; want p2's, unchanged", j.Pipeline, j.Status)
	}
	_, err = st.GetExecution(ctx, "p1", "y")
	noErr(t, "GetExecution(p1, y)", err)
}

func testEngineGetListExecutions(t *testing.T, s *suite) {
	st := s.open(t)
	ctx := t.Context()
	var p1 []store.Execution // in insertion order
	for i := range 7 {
		inPipeline(t, st, "p1", func(tx store.PipelineTx) error {
			e, err := tx.PutExecution(newExecution(fmt.Sprintf("e%d", i), "", i%2 == 0))
			p1 = append(p1, e)
			return err
		})
		// Another pipeline's executions in between.
		inPipeline(t, st, "p2", func(tx store.PipelineTx) error {
			_, err := tx.PutExecution(newExecution(fmt.Sprintf("o%d", i), "", true))
			return err
		})
	}
	newest := slices.Clone(p1)
	slices.Reverse(newest)

	got, err := st.GetExecution(ctx, "p1", "e3")
	noErr(t, "GetExecution(p1, e3)", err)
	sameStored(t, "GetExecution(p1, e3)", got, p1[3])
	_, err = st.GetExecution(ctx, "p2", "e3")
	wantErr(t, "GetExecution of p1's execution as p2's", err, store.ErrNotFound)
	_, err = st.GetExecution(ctx, "p1", "nope")
	wantErr(t, "GetExecution(p1, nope)", err, store.ErrNotFound)

	all, err := st.ListExecutions(ctx, "p1", 0, 100)
	noErr(t, "ListExecutions", err)
	if ids, want := executionIDs(all), executionIDs(newest); !slices.Equal(ids, want) {
		t.Fatalf("ListExecutions(p1) = %v, want %v (newest first, p1's only)", ids, want)
	}
	for i := range all {
		sameStored(t, "listed execution", all[i], newest[i])
	}

	// Paging: pages of 3 by the last Seq seen.
	var paged []string
	before := int64(0)
	for {
		page, err := st.ListExecutions(ctx, "p1", before, 3)
		noErr(t, "ListExecutions page", err)
		if len(page) > 3 {
			t.Fatalf("ListExecutions(limit 3) returned %d", len(page))
		}
		if len(page) == 0 {
			break
		}
		paged = append(paged, executionIDs(page)...)
		before = page[len(page)-1].Seq
	}
	if want := executionIDs(newest); !slices.Equal(paged, want) {
		t.Errorf("paged = %v, want %v", paged, want)
	}
	// beforeSeq is exclusive.
	page, err := st.ListExecutions(ctx, "p1", p1[4].Seq, 2)
	noErr(t, "ListExecutions", err)
	if ids := executionIDs(page); !slices.Equal(ids, []string{"e3", "e2"}) {
		t.Errorf("ListExecutions(before e4's Seq, 2) = %v, want [e3 e2]", ids)
	}
	for _, limit := range []int{0, -1} {
		page, err := st.ListExecutions(ctx, "p1", 0, limit)
		noErr(t, "ListExecutions", err)
		if len(page) != 0 {
			t.Errorf("ListExecutions(limit %d) = %v, want none", limit, executionIDs(page))
		}
	}
	page, err = st.ListExecutions(ctx, "nope", 0, 10)
	noErr(t, "ListExecutions(nope)", err)
	if len(page) != 0 {
		t.Errorf("ListExecutions of an unknown pipeline = %v", executionIDs(page))
	}
}

// testEngineRollback: when fn fails, nothing it wrote is kept, and fn's
// error comes back.
func testEngineRollback(t *testing.T, s *suite) {
	st := s.open(t)
	ctx := t.Context()
	key := atKey("Build", "Custom", "T", "1")
	var e1 store.Execution
	inPipeline(t, st, "p1", func(tx store.PipelineTx) error {
		var err error
		if err = tx.SetRuntime([]byte("before")); err != nil {
			return err
		}
		e1, err = tx.PutExecution(newExecution("e1", "tok", true))
		if err != nil {
			return err
		}
		if err := tx.PutTimer(store.Timer{ID: "t1", Due: engineT0, Payload: []byte("before")}); err != nil {
			return err
		}
		return tx.PutJob(newJob("j1", key, "", "InProgress", engineT0))
	})

	wrapped := fmt.Errorf("transition: %w", errFn)
	err := st.InPipeline(ctx, "p1", func(tx store.PipelineTx) error {
		if err := tx.SetRuntime([]byte("after")); err != nil {
			return err
		}
		upd := e1
		upd.Status = "Failed"
		if _, err := tx.PutExecution(upd); err != nil {
			return err
		}
		if _, err := tx.PutExecution(newExecution("e2", "tok2", true)); err != nil {
			return err
		}
		if err := tx.DeleteTimer("t1"); err != nil {
			return err
		}
		if err := tx.PutTimer(store.Timer{ID: "t2", Due: engineT0, Payload: []byte("after")}); err != nil {
			return err
		}
		if err := tx.PutJob(newJob("j1", key, "", store.JobQueued, engineT0)); err != nil {
			return err
		}
		if err := tx.PutJob(newJob("j2", key, "", store.JobQueued, engineT0)); err != nil {
			return err
		}
		return wrapped
	})
	if !errors.Is(err, errFn) {
		t.Fatalf("InPipeline whose fn failed: err = %v, want fn's error", err)
	}

	inPipeline(t, st, "p1", func(tx store.PipelineTx) error {
		if got, err := tx.Runtime(); err != nil || string(got) != "before" {
			return fmt.Errorf("Runtime after a rolled back transaction = %q, %v; want before", got, err)
		}
		if _, err := tx.ExecutionByToken("tok2"); !errorsIs(err, store.ErrNotFound) {
			return fmt.Errorf("ExecutionByToken of a rolled back execution: err = %v, want ErrNotFound", err)
		}
		return nil
	})
	got, err := st.GetExecution(ctx, "p1", "e1")
	noErr(t, "GetExecution(e1)", err)
	sameStored(t, "e1 after the rollback", got, e1)
	_, err = st.GetExecution(ctx, "p1", "e2")
	wantErr(t, "GetExecution of a rolled back execution", err, store.ErrNotFound)
	timers, err := st.DueTimers(ctx, engineT0.Add(time.Hour), 10)
	noErr(t, "DueTimers", err)
	if len(timers) != 1 || timers[0].ID != "t1" || string(timers[0].Payload) != "before" {
		t.Errorf("timers after the rollback = %+v, want only t1 as before", timers)
	}
	j, err := st.GetJob(ctx, "j1")
	noErr(t, "GetJob(j1)", err)
	if j.Status != "InProgress" {
		t.Errorf("j1 status after the rollback = %q, want InProgress", j.Status)
	}
	_, err = st.GetJob(ctx, "j2")
	wantErr(t, "GetJob of a rolled back job", err, store.ErrNotFound)
	// Nothing of the rollback is claimable.
	jobs, err := st.ClaimJobs(ctx, key, nil, 10, newNonces().next, time.Now().Add(time.Minute))
	noErr(t, "ClaimJobs", err)
	if len(jobs) != 0 {
		t.Errorf("ClaimJobs after the rollback = %d jobs, want none", len(jobs))
	}

	// A rolled back first transaction of a pipeline leaves no runtime.
	err = st.InPipeline(ctx, "p3", func(tx store.PipelineTx) error {
		if err := tx.SetRuntime([]byte("x")); err != nil {
			return err
		}
		return errFn
	})
	wantErr(t, "InPipeline(p3)", err, errFn)
	inPipeline(t, st, "p3", func(tx store.PipelineTx) error {
		if got, err := tx.Runtime(); err != nil || got != nil {
			return fmt.Errorf("Runtime after a rolled back SetRuntime = %q, %v; want nil", got, err)
		}
		return nil
	})
}

// testEngineLockExcludes: a transaction of a pipeline does not start while
// another handle's transaction of the same pipeline runs, and sees what it
// committed.
func testEngineLockExcludes(t *testing.T, s *suite) {
	a, b := s.openPair(t)
	ctx := t.Context()
	// The pipeline has a runtime already (whatever a backend locks exists).
	inPipeline(t, a, "p1", func(tx store.PipelineTx) error { return tx.SetRuntime([]byte("zero")) })
	var (
		firstDone atomic.Bool
		started   = make(chan struct{})
		wg        sync.WaitGroup
	)
	wg.Go(func() {
		err := a.InPipeline(ctx, "p1", func(tx store.PipelineTx) error {
			// Only read before the second one starts: the lock must exclude
			// it, not the row a write locks.
			if _, err := tx.Runtime(); err != nil {
				return err
			}
			close(started)
			time.Sleep(150 * time.Millisecond) // the second one tries meanwhile
			if err := tx.SetRuntime([]byte("first")); err != nil {
				return err
			}
			firstDone.Store(true)
			return nil
		})
		if err != nil {
			t.Errorf("first InPipeline: %v", err)
		}
	})
	<-started
	err := b.InPipeline(ctx, "p1", func(tx store.PipelineTx) error {
		if !firstDone.Load() {
			return errors.New("second transaction of p1 ran while the first held the lock")
		}
		got, err := tx.Runtime()
		if err != nil {
			return err
		}
		if string(got) != "first" {
			return fmt.Errorf("second transaction reads runtime %q, want the first's", got)
		}
		return nil
	})
	noErr(t, "second InPipeline", err)
	wg.Wait()
}

// testEngineConcurrentRuntime: read-modify-write of one pipeline's runtime
// from two handles at once loses no update, and every execution inserted
// along gets its own Seq.
func testEngineConcurrentRuntime(t *testing.T, s *suite) {
	a, b := s.openPair(t)
	ctx := t.Context()
	const (
		workers = 4 // per handle
		rounds  = 10
	)
	var (
		wg        sync.WaitGroup
		conflicts atomic.Int64
	)
	for h, st := range []store.Store{a, b} {
		for w := range workers {
			wg.Go(func() {
				for r := range rounds {
					id := fmt.Sprintf("h%d-w%d-r%d", h, w, r)
					for {
						err := st.InPipeline(ctx, "p1", func(tx store.PipelineTx) error {
							doc, err := tx.Runtime()
							if err != nil {
								return err
							}
							n := 0
							if doc != nil {
								if n, err = strconv.Atoi(string(doc)); err != nil {
									return err
								}
							}
							if _, err := tx.PutExecution(newExecution(id, id, true)); err != nil {
								return err
							}
							return tx.SetRuntime([]byte(strconv.Itoa(n + 1)))
						})
						if errors.Is(err, store.ErrConflict) {
							conflicts.Add(1)
							continue
						}
						if err != nil {
							t.Errorf("InPipeline: %v", err)
							return
						}
						break
					}
				}
			})
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	const want = 2 * workers * rounds
	inPipeline(t, a, "p1", func(tx store.PipelineTx) error {
		doc, err := tx.Runtime()
		if err != nil {
			return err
		}
		if string(doc) != strconv.Itoa(want) {
			return fmt.Errorf("counter = %s after %d increments (lost updates)", doc, want)
		}
		return nil
	})
	all, err := b.ListExecutions(ctx, "p1", 0, 2*want)
	noErr(t, "ListExecutions", err)
	if len(all) != want {
		t.Fatalf("%d executions, want %d", len(all), want)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Seq >= all[i-1].Seq {
			t.Fatalf("ListExecutions not strictly by decreasing Seq at %d: %d then %d", i, all[i-1].Seq, all[i].Seq)
		}
	}
	t.Logf("%d transactions, %d conflicts retried", want, conflicts.Load())
}

// testEngineOtherPipelinesProceed: a transaction of another pipeline is not
// held up for ever by a long one. (On PostgreSQL it runs meanwhile; on
// SQLite, whose write transaction is every pipeline's lock, it runs right
// after.)
func testEngineOtherPipelinesProceed(t *testing.T, s *suite) {
	a, b := s.openPair(t)
	ctx := t.Context()
	var (
		started   = make(chan struct{})
		otherDone = make(chan struct{})
		wg        sync.WaitGroup
		parallel  atomic.Bool
	)
	wg.Go(func() {
		err := a.InPipeline(ctx, "p1", func(tx store.PipelineTx) error {
			if err := tx.SetRuntime([]byte("p1")); err != nil {
				return err
			}
			close(started)
			select {
			case <-otherDone:
				parallel.Store(true)
			case <-time.After(300 * time.Millisecond):
			}
			return nil
		})
		if err != nil {
			t.Errorf("InPipeline(p1): %v", err)
		}
	})
	<-started
	done := make(chan error, 1)
	go func() {
		done <- b.InPipeline(ctx, "p2", func(tx store.PipelineTx) error {
			return tx.SetRuntime([]byte("p2"))
		})
		close(otherDone)
	}()
	select {
	case err := <-done:
		noErr(t, "InPipeline(p2)", err)
	case <-time.After(10 * time.Second):
		t.Fatal("InPipeline(p2) still blocked 10s after p1's transaction began")
	}
	wg.Wait()
	for p, want := range map[string]string{"p1": "p1", "p2": "p2"} {
		inPipeline(t, a, p, func(tx store.PipelineTx) error {
			if got, err := tx.Runtime(); err != nil || string(got) != want {
				return fmt.Errorf("runtime of %s = %q, %v", p, got, err)
			}
			return nil
		})
	}
	t.Logf("other pipeline's transaction ran alongside: %v", parallel.Load())
}

func timerIDs(ts []store.Timer) []string {
	ids := []string{}
	for _, t := range ts {
		ids = append(ids, t.ID)
	}
	return ids
}

func dueTimers(t *testing.T, st store.Store, now time.Time, limit int) []store.Timer {
	t.Helper()
	ts, err := st.DueTimers(t.Context(), now, limit)
	noErr(t, "DueTimers", err)
	if len(ts) > limit {
		t.Fatalf("DueTimers(limit %d) returned %d", limit, len(ts))
	}
	return ts
}

func testEngineTimers(t *testing.T, s *suite) {
	st := s.open(t)
	now := engineT0.Truncate(time.Millisecond)
	inPipeline(t, st, "p1", func(tx store.PipelineTx) error {
		for _, tm := range []store.Timer{
			{ID: "t1", Due: now.Add(-2 * time.Second), Payload: []byte(`{"t": 1}`)},
			{ID: "t2", Due: now.Add(-1 * time.Second), Payload: []byte(`{"t": 2}`)},
			{ID: "t3", Due: now.Add(time.Hour), Payload: []byte(`{"t": 3}`)},
			{ID: "t5", Due: now, Payload: []byte(`{"t": 5}`), Pipeline: "ignored"},
		} {
			if err := tx.PutTimer(tm); err != nil {
				return err
			}
		}
		// Replace t2: earlier, new payload.
		return tx.PutTimer(store.Timer{ID: "t2", Due: now.Add(-5*time.Second + 700*time.Microsecond), Payload: []byte(`{"t": "2b"}`)})
	})
	inPipeline(t, st, "p2", func(tx store.PipelineTx) error {
		return tx.PutTimer(store.Timer{ID: "t4", Due: now.Add(-3 * time.Second), Payload: []byte(`{"t": 4}`)})
	})

	// Due at or before now, earliest first.
	got := dueTimers(t, st, now, 10)
	if ids := timerIDs(got); !slices.Equal(ids, []string{"t2", "t4", "t1", "t5"}) {
		t.Fatalf("DueTimers(now) = %v, want [t2 t4 t1 t5]", ids)
	}
	want := map[string]store.Timer{
		"t2": {Pipeline: "p1", Due: now.Add(-5 * time.Second), Payload: []byte(`{"t": "2b"}`)},
		"t4": {Pipeline: "p2", Due: now.Add(-3 * time.Second), Payload: []byte(`{"t": 4}`)},
		"t1": {Pipeline: "p1", Due: now.Add(-2 * time.Second), Payload: []byte(`{"t": 1}`)},
		"t5": {Pipeline: "p1", Due: now, Payload: []byte(`{"t": 5}`)},
	}
	for _, tm := range got {
		w := want[tm.ID]
		if tm.Pipeline != w.Pipeline || !sameTime(tm.Due, w.Due) || !equalBytes(tm.Payload, w.Payload) {
			t.Errorf("timer %s = {%s %v %s}, want {%s %v %s}", tm.ID, tm.Pipeline, tm.Due, tm.Payload, w.Pipeline, w.Due, w.Payload)
		}
	}
	if ids := timerIDs(dueTimers(t, st, now, 2)); !slices.Equal(ids, []string{"t2", "t4"}) {
		t.Errorf("DueTimers(now, 2) = %v, want [t2 t4]", ids)
	}
	if ids := timerIDs(dueTimers(t, st, now.Add(-time.Millisecond), 10)); !slices.Equal(ids, []string{"t2", "t4", "t1"}) {
		t.Errorf("DueTimers(now-1ms) = %v, want [t2 t4 t1]", ids)
	}
	if ids := timerIDs(dueTimers(t, st, now.Add(-time.Hour), 10)); len(ids) != 0 {
		t.Errorf("DueTimers an hour ago = %v, want none", ids)
	}
	if ids := timerIDs(dueTimers(t, st, now.Add(2*time.Hour), 10)); !slices.Equal(ids, []string{"t2", "t4", "t1", "t5", "t3"}) {
		t.Errorf("DueTimers(now+2h) = %v, want [t2 t4 t1 t5 t3]", ids)
	}
	if ts := dueTimers(t, st, now, 0); len(ts) != 0 {
		t.Errorf("DueTimers(limit 0) = %v", timerIDs(ts))
	}

	inPipeline(t, st, "p1", func(tx store.PipelineTx) error {
		if err := tx.DeleteTimer("t1"); err != nil {
			return err
		}
		if err := tx.DeleteTimer("t1"); err != nil {
			return fmt.Errorf("DeleteTimer of a deleted timer: %w", err)
		}
		return tx.DeleteTimer("never")
	})
	if ids := timerIDs(dueTimers(t, st, now, 10)); !slices.Equal(ids, []string{"t2", "t4", "t5"}) {
		t.Errorf("DueTimers after deleting t1 = %v, want [t2 t4 t5]", ids)
	}
}

// newJob is a job of pipeline-independent content (the transaction sets
// the pipeline).
func newJob(id string, key store.ActionTypeKey, queryValue, status string, created time.Time) store.Job {
	return store.Job{
		ID:          id,
		ActionType:  key,
		QueryValue:  queryValue,
		Pipeline:    "ignored",
		ExecutionID: "exec-" + id,
		Status:      status,
		Doc:         []byte(fmt.Sprintf(`{"job": %q,  "data":{}}`, id)),
		Created:     created,
		Updated:     created.Add(time.Second),
	}
}

func checkJob(t *testing.T, what string, got, want store.Job) {
	t.Helper()
	if got.ID != want.ID || got.ActionType != want.ActionType || got.QueryValue != want.QueryValue ||
		got.Pipeline != want.Pipeline || got.ExecutionID != want.ExecutionID || got.Status != want.Status ||
		got.NonceHash != want.NonceHash || got.Nonce != want.Nonce || !equalBytes(got.Doc, want.Doc) || !sameTime(got.Deadline, want.Deadline) ||
		got.Deadline.IsZero() != want.Deadline.IsZero() ||
		!sameTime(got.Created, want.Created) || !sameTime(got.Updated, want.Updated) {
		t.Errorf("%s = %+v,\nwant %+v", what, got, want)
	}
}

func putJobs(t *testing.T, st store.Store, pipeline string, jobs ...store.Job) {
	t.Helper()
	inPipeline(t, st, pipeline, func(tx store.PipelineTx) error {
		for _, j := range jobs {
			if err := tx.PutJob(j); err != nil {
				return err
			}
		}
		return nil
	})
}

func testEngineJobs(t *testing.T, s *suite) {
	st := s.open(t)
	ctx := t.Context()
	key := atKey("Build", "Custom", "Tool", "1")
	j1 := newJob("j1", key, "proj", store.JobQueued, engineT0) // zero Deadline
	j1.NonceHash = "h0"
	// The clear nonce is never stored: PutJob ignores it.
	withClear := j1
	withClear.Nonce = "clear-nonce"
	putJobs(t, st, "p1", withClear)
	j1.Pipeline = "p1"

	got, err := st.GetJob(ctx, "j1")
	noErr(t, "GetJob(j1)", err)
	checkJob(t, "GetJob(j1)", got, j1)
	_, err = st.GetJob(ctx, "nope")
	wantErr(t, "GetJob(nope)", err, store.ErrNotFound)

	// Replace by ID, and read in the transaction.
	j1b := j1
	j1b.Status, j1b.NonceHash = "InProgress", "h1"
	j1b.Deadline = engineT0.Add(time.Hour + 300*time.Microsecond)
	j1b.ActionType.Version = "2"
	j1b.QueryValue, j1b.ExecutionID = "", "exec-2"
	j1b.Doc = []byte(`{"replaced": 1}`)
	j1b.Updated = engineT0.Add(time.Minute)
	inPipeline(t, st, "p1", func(tx store.PipelineTx) error {
		if err := tx.PutJob(j1b); err != nil {
			return err
		}
		got, err := tx.Job("j1")
		if err != nil {
			return err
		}
		checkJob(t, "Job(j1) after replace", got, j1b)
		if _, err := tx.Job("nope"); !errorsIs(err, store.ErrNotFound) {
			return fmt.Errorf("Job(nope): err = %v, want ErrNotFound", err)
		}
		return nil
	})
	got, err = st.GetJob(ctx, "j1")
	noErr(t, "GetJob(j1)", err)
	checkJob(t, "GetJob(j1) after replace", got, j1b)
	inPipeline(t, st, "p2", func(tx store.PipelineTx) error {
		if _, err := tx.Job("j1"); !errorsIs(err, store.ErrNotFound) {
			return fmt.Errorf("Job of another pipeline's job: err = %v, want ErrNotFound", err)
		}
		return nil
	})
}

// testEngineReadsInTransaction: PipelineTx.Pipeline reads the
// transaction's pipeline's versions, PipelineTx.ActionType action types
// (deleted ones included); a miss is ErrNotFound and the transaction goes
// on.
func testEngineReadsInTransaction(t *testing.T, s *suite) {
	st := s.open(t)
	ctx := t.Context()
	mustCreate(t, st, newPipeline("p1"))
	v2, err := st.UpdatePipeline(ctx, "p1", func(p store.Pipeline) (store.Pipeline, error) {
		p.Definition = []byte(`{"v": 2}`)
		return p, nil
	})
	noErr(t, "UpdatePipeline", err)
	mustCreate(t, st, newPipeline("p2"))
	key := atKey("Build", "Custom", "Tool", "1")
	at := putActionType(t, st, key, `{"at": 1}`, false)
	gone := atKey("Build", "Custom", "Gone", "1")
	deleted := putActionType(t, st, gone, `{"at": 2}`, true)

	inPipeline(t, st, "p1", func(tx store.PipelineTx) error {
		got, err := tx.Pipeline(0)
		if err != nil {
			return fmt.Errorf("Pipeline(0): %w", err)
		}
		checkPipeline(t, "Pipeline(0)", got, v2)
		if !sameTime(got.Created, v2.Created) || !sameTime(got.Updated, v2.Updated) {
			t.Errorf("Pipeline(0) times = %v/%v, want %v/%v", got.Created, got.Updated, v2.Created, v2.Updated)
		}
		got, err = tx.Pipeline(1)
		if err != nil {
			return fmt.Errorf("Pipeline(1): %w", err)
		}
		checkPipeline(t, "Pipeline(1)", got, store.Pipeline{
			Name: "p1", Version: 1, PipelineType: "V2", ExecutionMode: "QUEUED", Definition: newPipeline("p1").Definition,
		})
		for _, v := range []int{3, -1} {
			if _, err := tx.Pipeline(v); !errorsIs(err, store.ErrNotFound) {
				return fmt.Errorf("Pipeline(%d): err = %v, want ErrNotFound", v, err)
			}
		}
		a, err := tx.ActionType(key)
		if err != nil {
			return fmt.Errorf("ActionType: %w", err)
		}
		checkActionType(t, "ActionType", a, *at)
		a, err = tx.ActionType(gone)
		if err != nil {
			return fmt.Errorf("ActionType of a deleted one: %w", err)
		}
		checkActionType(t, "ActionType of a deleted one", a, *deleted)
		if _, err := tx.ActionType(atKey("Build", "Custom", "Nope", "1")); !errorsIs(err, store.ErrNotFound) {
			return fmt.Errorf("ActionType(unknown): err = %v, want ErrNotFound", err)
		}
		// The misses did not end the transaction.
		return tx.SetRuntime([]byte("after the misses"))
	})
	inPipeline(t, st, "nope", func(tx store.PipelineTx) error {
		if _, err := tx.Pipeline(0); !errorsIs(err, store.ErrNotFound) {
			return fmt.Errorf("Pipeline(0) of a pipeline that does not exist: err = %v, want ErrNotFound", err)
		}
		return nil
	})
}

// testEngineReadsNeedNoSecondConnection runs more transitions at once than
// a backend's pool is likely to have connections, each reading its
// pipeline and an action type while it holds its transaction: reads that
// went to a second connection would deadlock.
func testEngineReadsNeedNoSecondConnection(t *testing.T, s *suite) {
	st := s.open(t)
	const n = 16
	key := atKey("Build", "Custom", "Tool", "1")
	putActionType(t, st, key, `{}`, false)
	for i := range n {
		mustCreate(t, st, newPipeline(fmt.Sprintf("p%02d", i)))
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			name := fmt.Sprintf("p%02d", i)
			err := st.InPipeline(ctx, name, func(tx store.PipelineTx) error {
				time.Sleep(10 * time.Millisecond) // let the others take their connections
				p, err := tx.Pipeline(0)
				if err != nil {
					return err
				}
				if p.Name != name {
					return fmt.Errorf("Pipeline(0) in %s's transaction = %s", name, p.Name)
				}
				_, err = tx.ActionType(key)
				return err
			})
			if err != nil {
				t.Errorf("InPipeline(%s): %v", name, err)
			}
		})
	}
	wg.Wait()
}

// nonces is a newNonce for ClaimJobs that counts its calls.
type nonces struct {
	prefix string
	n      atomic.Int64
}

func newNonces() *nonces { return &nonces{prefix: uniq("nonce")} }

// next returns a new nonce and its "hash" (any string the store must keep
// as given: here one that shows which job and nonce it was made for).
func (n *nonces) next(jobID string) (nonce, hash string) {
	nonce = fmt.Sprintf("%s-%d", n.prefix, n.n.Add(1))
	return nonce, nonceHash(jobID, nonce)
}

func nonceHash(jobID, nonce string) string { return "hash(" + jobID + "," + nonce + ")" }

func claimJobs(t *testing.T, st store.Store, key store.ActionTypeKey, queryValue *string, max int, nn *nonces, deadline time.Time) []store.Job {
	t.Helper()
	before := nn.n.Load()
	jobs, err := st.ClaimJobs(t.Context(), key, queryValue, max, nn.next, deadline)
	noErr(t, "ClaimJobs", err)
	if len(jobs) > max {
		t.Fatalf("ClaimJobs(max %d) returned %d jobs", max, len(jobs))
	}
	if calls := nn.n.Load() - before; calls != int64(len(jobs)) {
		t.Errorf("ClaimJobs called newNonce %d times for %d jobs", calls, len(jobs))
	}
	return jobs
}

func jobIDs(jobs []store.Job) []string {
	ids := []string{}
	for _, j := range jobs {
		ids = append(ids, j.ID)
	}
	return ids
}

func ptr(s string) *string { return &s }

func testEngineClaimJobs(t *testing.T, s *suite) {
	st := s.open(t)
	ctx := t.Context()
	key := atKey("Build", "Custom", "Tool", "1")
	other := atKey("Build", "Custom", "Tool", "2")
	t0 := engineT0
	jobs := map[string]store.Job{
		"j4":     newJob("j4", key, "", store.JobQueued, t0.Add(4*time.Second)),
		"j1":     newJob("j1", key, "", store.JobQueued, t0.Add(1*time.Second)),
		"j3":     newJob("j3", key, "b", store.JobQueued, t0.Add(3*time.Second)),
		"j2":     newJob("j2", key, "a", store.JobQueued, t0.Add(2*time.Second)),
		"done":   newJob("done", key, "", "Succeeded", t0),
		"run":    newJob("run", key, "a", "InProgress", t0),
		"otherj": newJob("otherj", other, "", store.JobQueued, t0),
	}
	// Inserted out of Created order, in two pipelines.
	putJobs(t, st, "p1", jobs["j4"], jobs["j1"], jobs["done"], jobs["otherj"])
	putJobs(t, st, "p2", jobs["j3"], jobs["j2"], jobs["run"])

	nn := newNonces()
	deadline := time.Now().Add(time.Minute)
	first := claimJobs(t, st, key, nil, 2, nn, deadline)
	if ids := jobIDs(first); !slices.Equal(ids, []string{"j1", "j2"}) {
		t.Fatalf("ClaimJobs(max 2) = %v, want [j1 j2] (oldest first)", ids)
	}
	seen := map[string]bool{}
	for _, j := range first {
		want := jobs[j.ID]
		want.Pipeline = map[string]string{"j1": "p1", "j2": "p2"}[j.ID]
		want.Status, want.Nonce, want.Deadline = store.JobDispatched, j.Nonce, deadline
		want.NonceHash = nonceHash(j.ID, j.Nonce) // newNonce was called with the job's ID
		want.Updated = j.Updated                  // the store's to set
		checkJob(t, "claimed "+j.ID, j, want)
		if j.Nonce == "" || seen[j.Nonce] {
			t.Errorf("claimed %s has nonce %q (empty or repeated)", j.ID, j.Nonce)
		}
		seen[j.Nonce] = true
		// The store keeps the hash, never the nonce.
		stored, err := st.GetJob(ctx, j.ID)
		noErr(t, "GetJob", err)
		want.Nonce = ""
		checkJob(t, "stored "+j.ID, stored, want)
	}

	// Query values.
	if ids := jobIDs(claimJobs(t, st, key, ptr("b"), 10, nn, deadline)); !slices.Equal(ids, []string{"j3"}) {
		t.Errorf("ClaimJobs(query b) = %v, want [j3]", ids)
	}
	if ids := jobIDs(claimJobs(t, st, key, ptr("zzz"), 10, nn, deadline)); len(ids) != 0 {
		t.Errorf("ClaimJobs(query zzz) = %v, want none", ids)
	}
	if ids := jobIDs(claimJobs(t, st, key, ptr(""), 10, nn, deadline)); !slices.Equal(ids, []string{"j4"}) {
		t.Errorf("ClaimJobs(query \"\") = %v, want [j4]", ids)
	}
	// Everything of key is dispatched, finished or the engine's.
	if ids := jobIDs(claimJobs(t, st, key, nil, 10, nn, deadline)); len(ids) != 0 {
		t.Errorf("ClaimJobs with every job dispatched = %v, want none", ids)
	}
	if ids := jobIDs(claimJobs(t, st, other, nil, 10, nn, deadline)); !slices.Equal(ids, []string{"otherj"}) {
		t.Errorf("ClaimJobs(other action type) = %v, want [otherj]", ids)
	}
	if ids := jobIDs(claimJobs(t, st, atKey("Build", "Custom", "Nope", "1"), nil, 10, nn, deadline)); len(ids) != 0 {
		t.Errorf("ClaimJobs(unknown action type) = %v, want none", ids)
	}
	if ids := jobIDs(claimJobs(t, st, other, nil, 0, nn, deadline)); len(ids) != 0 {
		t.Errorf("ClaimJobs(max 0) = %v", ids)
	}
	// The engine's statuses stay as they are.
	for _, id := range []string{"done", "run"} {
		j, err := st.GetJob(ctx, id)
		noErr(t, "GetJob", err)
		if j.Status != jobs[id].Status || j.NonceHash != "" {
			t.Errorf("job %s = status %q, nonce hash %q; want untouched", id, j.Status, j.NonceHash)
		}
	}

	// The engine puts a job back in the queue: claimable again.
	requeued := jobs["j1"]
	putJobs(t, st, "p1", requeued)
	if ids := jobIDs(claimJobs(t, st, key, nil, 10, nn, deadline)); !slices.Equal(ids, []string{"j1"}) {
		t.Errorf("ClaimJobs after re-queueing j1 = %v, want [j1]", ids)
	}
}

// testEngineClaimJobsRedeliver: a dispatched job is not handed out again
// until its Deadline passes; then it is, with a new nonce.
func testEngineClaimJobsRedeliver(t *testing.T, s *suite) {
	a, b := s.openPair(t)
	key := atKey("Build", "Custom", "Tool", "1")
	putJobs(t, a, "p1", newJob("j1", key, "", store.JobQueued, engineT0))
	nn := newNonces()

	start := time.Now()
	first := claimJobs(t, a, key, nil, 10, nn, start.Add(leaseTTL))
	if ids := jobIDs(first); !slices.Equal(ids, []string{"j1"}) {
		t.Fatalf("ClaimJobs = %v, want [j1]", ids)
	}
	again := claimJobs(t, b, key, nil, 10, nn, time.Now().Add(time.Minute))
	if len(again) != 0 {
		if time.Since(start) < leaseTTL {
			t.Fatalf("job dispatched again before its Deadline: %v", jobIDs(again))
		}
		t.Skip("machine too slow for this timing test: the Deadline passed before the second claimer looked")
	}

	time.Sleep(time.Until(start.Add(leaseTTL + 20*time.Millisecond)))
	deadline := time.Now().Add(time.Minute)
	second := claimJobs(t, b, key, nil, 10, nn, deadline)
	if ids := jobIDs(second); !slices.Equal(ids, []string{"j1"}) {
		t.Fatalf("ClaimJobs after the Deadline = %v, want [j1]", ids)
	}
	if second[0].Nonce == first[0].Nonce || second[0].NonceHash != nonceHash("j1", second[0].Nonce) || second[0].Status != store.JobDispatched || !sameTime(second[0].Deadline, deadline) {
		t.Errorf("re-dispatched job = nonce %q (was %q), status %q, deadline %v; want a new nonce, Dispatched, %v",
			second[0].Nonce, first[0].Nonce, second[0].Status, second[0].Deadline, deadline)
	}
	if left := claimJobs(t, a, key, nil, 10, nn, deadline); len(left) != 0 {
		t.Errorf("ClaimJobs right after the re-dispatch = %v, want none", jobIDs(left))
	}
}

// testEngineClaimJobsConcurrent: claimers on two handles drain 300 jobs;
// each job is dispatched exactly once, none is lost.
func testEngineClaimJobsConcurrent(t *testing.T, s *suite) {
	a, b := s.openPair(t)
	ctx := t.Context()
	const (
		pipelines = 3
		perPipe   = 100
		claimers  = 8 // per handle
		batch     = 5
	)
	key := atKey("Build", "Custom", "Tool", "1")
	for p := range pipelines {
		for chunk := 0; chunk < perPipe; chunk += 50 {
			var js []store.Job
			for i := chunk; i < chunk+50; i++ {
				js = append(js, newJob(fmt.Sprintf("p%d-j%03d", p, i), key, "", store.JobQueued, engineT0.Add(time.Duration(i)*time.Millisecond)))
			}
			putJobs(t, a, fmt.Sprintf("p%d", p), js...)
		}
	}

	var (
		mu         sync.Mutex
		dispatched = map[string]string{} // job -> nonce hash
		wg         sync.WaitGroup
	)
	nn := newNonces()
	start := time.Now()
	for _, st := range []store.Store{a, b} {
		for range claimers {
			wg.Go(func() {
				for {
					got, err := st.ClaimJobs(ctx, key, nil, batch, nn.next, time.Now().Add(time.Minute))
					if err != nil {
						t.Errorf("ClaimJobs: %v", err)
						return
					}
					if len(got) == 0 {
						return
					}
					if len(got) > batch {
						t.Errorf("ClaimJobs(max %d) returned %d", batch, len(got))
					}
					mu.Lock()
					for _, j := range got {
						if _, dup := dispatched[j.ID]; dup {
							t.Errorf("job %s dispatched twice", j.ID)
						}
						if j.NonceHash != nonceHash(j.ID, j.Nonce) {
							t.Errorf("job %s: nonce %q, hash %q", j.ID, j.Nonce, j.NonceHash)
						}
						dispatched[j.ID] = j.NonceHash
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	t.Logf("%d jobs dispatched to %d claimers in %v", len(dispatched), 2*claimers, time.Since(start))
	const total = pipelines * perPipe
	if len(dispatched) != total {
		t.Errorf("%d jobs dispatched, want %d", len(dispatched), total)
	}
	if n := nn.n.Load(); n != total {
		t.Errorf("newNonce called %d times for %d jobs", n, total)
	}
	for id, nonce := range dispatched {
		j, err := b.GetJob(ctx, id)
		noErr(t, "GetJob", err)
		if j.Status != store.JobDispatched || j.NonceHash != nonce || j.Nonce != "" {
			t.Errorf("job %s = status %q, nonce hash %q, nonce %q; its claimer got hash %q", id, j.Status, j.NonceHash, j.Nonce, nonce)
		}
	}
	if left := claimJobs(t, a, key, nil, total, nn, time.Now().Add(time.Minute)); len(left) != 0 {
		t.Errorf("%d jobs left after draining", len(left))
	}
}

func testEngineDeletePipeline(t *testing.T, s *suite) {
	st := s.open(t)
	ctx := t.Context()
	key := atKey("Build", "Custom", "Tool", "1")
	for _, p := range []string{"p1", "p2"} {
		mustCreate(t, st, newPipeline(p))
		inPipeline(t, st, p, func(tx store.PipelineTx) error {
			if err := tx.SetRuntime([]byte("runtime of " + p)); err != nil {
				return err
			}
			if _, err := tx.PutExecution(newExecution(p+"-e0", "tok", true)); err != nil {
				return err
			}
			if _, err := tx.PutExecution(newExecution(p+"-e1", "", false)); err != nil {
				return err
			}
			if err := tx.PutTimer(store.Timer{ID: p + "-t", Due: engineT0, Payload: []byte(p)}); err != nil {
				return err
			}
			return tx.PutJob(newJob(p+"-j", key, "", store.JobQueued, engineT0))
		})
	}

	noErr(t, "DeletePipeline(p1)", st.DeletePipeline(ctx, "p1"))

	_, err := st.GetExecution(ctx, "p1", "p1-e0")
	wantErr(t, "GetExecution of a deleted pipeline's execution", err, store.ErrNotFound)
	if es, err := st.ListExecutions(ctx, "p1", 0, 10); err != nil || len(es) != 0 {
		t.Errorf("ListExecutions(p1) after delete = %v, %v", executionIDs(es), err)
	}
	_, err = st.GetJob(ctx, "p1-j")
	wantErr(t, "GetJob of a deleted pipeline's job", err, store.ErrNotFound)
	if ids := timerIDs(dueTimers(t, st, engineT0.Add(time.Hour), 10)); !slices.Equal(ids, []string{"p2-t"}) {
		t.Errorf("DueTimers after deleting p1 = %v, want [p2-t]", ids)
	}
	if ids := jobIDs(claimJobs(t, st, key, nil, 10, newNonces(), time.Now().Add(time.Minute))); !slices.Equal(ids, []string{"p2-j"}) {
		t.Errorf("ClaimJobs after deleting p1 = %v, want [p2-j]", ids)
	}

	// p2 keeps everything.
	if es, err := st.ListExecutions(ctx, "p2", 0, 10); err != nil || len(es) != 2 {
		t.Errorf("ListExecutions(p2) = %v, %v; want p2's execution", executionIDs(es), err)
	}
	inPipeline(t, st, "p2", func(tx store.PipelineTx) error {
		if got, err := tx.Runtime(); err != nil || string(got) != "runtime of p2" {
			return fmt.Errorf("p2's runtime after deleting p1 = %q, %v", got, err)
		}
		return nil
	})

	// A pipeline re-created under the name starts from nothing; its old
	// client token is free again.
	mustCreate(t, st, newPipeline("p1"))
	inPipeline(t, st, "p1", func(tx store.PipelineTx) error {
		if got, err := tx.Runtime(); err != nil || got != nil {
			return fmt.Errorf("runtime of the re-created p1 = %q, %v; want nil", got, err)
		}
		if active, err := tx.ActiveExecutions(); err != nil || len(active) != 0 {
			return fmt.Errorf("active executions of the re-created p1 = %v, %v", executionIDs(active), err)
		}
		_, err := tx.PutExecution(newExecution("p1-e9", "tok", true))
		return err
	})
}

// testEngineDeleteWaitsForTransition: DeletePipeline does not interleave
// with a transition of the pipeline under way (here its first, which
// creates its state): it deletes what the transition committed.
func testEngineDeleteWaitsForTransition(t *testing.T, s *suite) {
	a, b := s.openPair(t)
	ctx := t.Context()
	key := atKey("Build", "Custom", "Tool", "1")
	mustCreate(t, a, newPipeline("p1"))
	started := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		err := a.InPipeline(ctx, "p1", func(tx store.PipelineTx) error {
			if err := tx.SetRuntime([]byte("r")); err != nil {
				return err
			}
			if _, err := tx.PutExecution(newExecution("e1", "", true)); err != nil {
				return err
			}
			if err := tx.PutTimer(store.Timer{ID: "t1", Due: engineT0}); err != nil {
				return err
			}
			if err := tx.PutJob(newJob("j1", key, "", store.JobQueued, engineT0)); err != nil {
				return err
			}
			close(started)
			time.Sleep(150 * time.Millisecond) // DeletePipeline starts meanwhile
			return nil
		})
		if err != nil {
			t.Errorf("InPipeline: %v", err)
		}
	})
	<-started
	noErr(t, "DeletePipeline", b.DeletePipeline(ctx, "p1"))
	wg.Wait()

	_, err := a.GetExecution(ctx, "p1", "e1")
	wantErr(t, "GetExecution of the transition's execution", err, store.ErrNotFound)
	_, err = a.GetJob(ctx, "j1")
	wantErr(t, "GetJob of the transition's job", err, store.ErrNotFound)
	if ts := dueTimers(t, a, engineT0.Add(time.Hour), 10); len(ts) != 0 {
		t.Errorf("timers left after DeletePipeline: %v", timerIDs(ts))
	}
	inPipeline(t, a, "p1", func(tx store.PipelineTx) error {
		if got, err := tx.Runtime(); err != nil || got != nil {
			return fmt.Errorf("runtime after DeletePipeline = %q, %v; want nil", got, err)
		}
		return nil
	})
}

// testEngineCanceledContext: the engine's calls honour their context.
func testEngineCanceledContext(t *testing.T, s *suite) {
	st := s.open(t)
	key := atKey("Build", "Custom", "Tool", "1")
	putJobs(t, st, "p1", newJob("j1", key, "", store.JobQueued, engineT0))
	ctx := canceled(t)
	calls := map[string]func() error{
		"InPipeline": func() error {
			return st.InPipeline(ctx, "p1", func(tx store.PipelineTx) error { return tx.SetRuntime([]byte("x")) })
		},
		"GetExecution": func() error { _, err := st.GetExecution(ctx, "p1", "e1"); return err },
		"ListExecutions": func() error {
			_, err := st.ListExecutions(ctx, "p1", 0, 10)
			return err
		},
		"DueTimers": func() error { _, err := st.DueTimers(ctx, time.Now(), 10); return err },
		"ClaimJobs": func() error {
			_, err := st.ClaimJobs(ctx, key, nil, 10, newNonces().next, time.Now().Add(time.Minute))
			return err
		},
		"GetJob": func() error { _, err := st.GetJob(ctx, "j1"); return err },
	}
	for name, call := range calls {
		if err := call(); !errorsIs(err, context.Canceled) {
			t.Errorf("%s with a canceled context: err = %v, want context.Canceled", name, err)
		}
	}
	// Nothing was written.
	j, err := st.GetJob(t.Context(), "j1")
	noErr(t, "GetJob", err)
	if j.Status != store.JobQueued {
		t.Errorf("job status after a canceled ClaimJobs = %q", j.Status)
	}
	inPipeline(t, st, "p1", func(tx store.PipelineTx) error {
		if got, err := tx.Runtime(); err != nil || got != nil {
			return fmt.Errorf("runtime after a canceled InPipeline = %q, %v", got, err)
		}
		return nil
	})
}

// testEnginePanicRollsBack: when fn panics, the panic goes on to the
// caller (a server may recover it), nothing fn wrote is kept, and the
// store is not left holding the pipeline's lock.
func testEnginePanicRollsBack(t *testing.T, s *suite) {
	st := s.open(t)
	func() {
		defer func() {
			if r := recover(); r != "storetest: panic" {
				t.Errorf("recovered %v, want fn's panic", r)
			}
		}()
		_ = st.InPipeline(t.Context(), "p1", func(tx store.PipelineTx) error {
			if err := tx.SetRuntime([]byte("never")); err != nil {
				return err
			}
			panic("storetest: panic")
		})
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	err := st.InPipeline(ctx, "p1", func(tx store.PipelineTx) error {
		if got, err := tx.Runtime(); err != nil || got != nil {
			return fmt.Errorf("Runtime after a panicking transaction = %q, %v; want nil", got, err)
		}
		return nil
	})
	noErr(t, "InPipeline after a panicking one", err)
}
