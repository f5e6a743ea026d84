package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/pipelined/pipelined/internal/store"
)

var handleTests = []testCase{
	{"Reopen", testReopen},
	{"CrossHandleReadsLatest", testCrossHandleReadsLatest},
	{"Ping", testPing},
	{"CanceledContext", testCanceledContext},
}

// testReopen is the restart case: what one handle wrote, a new handle on the
// same database reads after the first one is closed.
func testReopen(t *testing.T, s *suite) {
	a, closeA := s.openClosable(t)
	ctx := t.Context()

	mustCreate(t, a, newPipeline("p1"), store.Tag{Key: "k", Value: "v"})
	v2, err := a.UpdatePipeline(ctx, "p1", func(p store.Pipeline) (store.Pipeline, error) {
		p.Definition = []byte(`{"v":2}`)
		return p, nil
	})
	noErr(t, "UpdatePipeline", err)
	setTags(t, a, resWebhook, store.Tag{Key: "hook", Value: "1"})
	key := atKey("Build", "Custom", "Tool", "1")
	at := putActionType(t, a, key, `{"at":1}`, false)
	claimedID := enqueue(t, a, "q", "claimed")
	claim(t, a, "q", "w1", 1, time.Minute)
	freeID := enqueue(t, a, "q", "free")
	if !acquire(t, a, "leader", "r1", time.Minute) {
		t.Fatal("AcquireLease of a free lease = false")
	}

	b := s.reopen(t, a)
	closeA()

	got := mustGet(t, b, "p1", 0)
	checkPipeline(t, "latest after reopen", got, v2)
	if !sameTime(got.Created, v2.Created) || !sameTime(got.Updated, v2.Updated) {
		t.Errorf("times after reopen = %v/%v, were %v/%v", got.Created, got.Updated, v2.Created, v2.Updated)
	}
	checkPipeline(t, "version 1 after reopen", mustGet(t, b, "p1", 1), store.Pipeline{
		Name: "p1", Version: 1, PipelineType: "V2", ExecutionMode: "QUEUED", Definition: newPipeline("p1").Definition,
	})
	tags, err := b.Tags(ctx, store.PipelineResource("p1"))
	noErr(t, "Tags", err)
	checkTags(t, "pipeline tags after reopen", tags, []store.Tag{{Key: "k", Value: "v"}})
	tags, err = b.Tags(ctx, resWebhook)
	noErr(t, "Tags", err)
	checkTags(t, "resource tags after reopen", tags, []store.Tag{{Key: "hook", Value: "1"}})
	checkActionType(t, "action type after reopen", mustGetActionType(t, b, key), *at)
	n, err := b.CountPipelines(ctx)
	noErr(t, "CountPipelines", err)
	if n != 1 {
		t.Errorf("CountPipelines after reopen = %d, want 1", n)
	}

	// The claim survived; the unclaimed item is still there.
	items := claim(t, b, "q", "w2", 10, time.Minute)
	if len(items) != 1 || items[0].ID != freeID {
		t.Errorf("Claim after reopen = %v, want only item %d", payloads(items), freeID)
	}
	noErr(t, "Complete by the owner from before the restart", b.Complete(ctx, claimedID, "w1"))
	// The lease survived.
	if acquire(t, b, "leader", "r2", time.Minute) {
		t.Error("a lease taken before the restart was free after it")
	}
}

// testCrossHandleReadsLatest: a write through one handle is visible through
// the other at once (no stale caches).
func testCrossHandleReadsLatest(t *testing.T, s *suite) {
	a, b := s.openPair(t)
	ctx := t.Context()
	mustCreate(t, a, newPipeline("p1"))
	mustGet(t, a, "p1", 0) // warm whatever a caches
	mustGet(t, b, "p1", 0)

	for v := 2; v <= 4; v++ {
		writer, reader := a, b
		if v%2 == 0 {
			writer, reader = b, a
		}
		_, err := writer.UpdatePipeline(ctx, "p1", func(p store.Pipeline) (store.Pipeline, error) { return p, nil })
		noErr(t, "UpdatePipeline", err)
		if got := mustGet(t, reader, "p1", 0); got.Version != v {
			t.Errorf("other handle reads version %d right after the update to %d", got.Version, v)
		}
		list, err := reader.ListPipelines(ctx, "", 10)
		noErr(t, "ListPipelines", err)
		if len(list) != 1 || list[0].Version != v {
			t.Errorf("other handle lists %v right after the update to %d", list, v)
		}
	}

	noErr(t, "DeletePipeline", b.DeletePipeline(ctx, "p1"))
	_, err := a.GetPipeline(ctx, "p1", 0)
	wantErr(t, "GetPipeline on the other handle after delete", err, store.ErrNotFound)
	mustCreate(t, a, newPipeline("p1"))
	if got := mustGet(t, b, "p1", 0); got.Version != 1 {
		t.Errorf("other handle reads version %d of the re-created pipeline, want 1", got.Version)
	}
}

func testPing(t *testing.T, s *suite) {
	st := s.open(t)
	noErr(t, "Ping", st.Ping(t.Context()))
}

// testCanceledContext: every kind of call honours its context.
func testCanceledContext(t *testing.T, s *suite) {
	st := s.open(t)
	mustCreate(t, st, newPipeline("p1"))
	ctx := canceled(t)

	calls := map[string]func(context.Context) error{
		"CreatePipeline": func(ctx context.Context) error { return st.CreatePipeline(ctx, newPipeline("p2"), nil) },
		"GetPipeline": func(ctx context.Context) error {
			_, err := st.GetPipeline(ctx, "p1", 0)
			return err
		},
		"UpdatePipeline": func(ctx context.Context) error {
			_, err := st.UpdatePipeline(ctx, "p1", func(p store.Pipeline) (store.Pipeline, error) { return p, nil })
			return err
		},
		"ListPipelines": func(ctx context.Context) error {
			_, err := st.ListPipelines(ctx, "", 10)
			return err
		},
		"Enqueue": func(ctx context.Context) error {
			_, err := st.Enqueue(ctx, "q", nil)
			return err
		},
		"Claim": func(ctx context.Context) error {
			_, err := st.Claim(ctx, "q", "w1", 1, time.Minute)
			return err
		},
		"AcquireLease": func(ctx context.Context) error {
			_, err := st.AcquireLease(ctx, "leader", "r1", time.Minute)
			return err
		},
	}
	for name, call := range calls {
		if err := call(ctx); !errorsIs(err, context.Canceled) {
			t.Errorf("%s with a canceled context: err = %v, want context.Canceled", name, err)
		}
	}
	// Nothing was written.
	if _, err := st.GetPipeline(t.Context(), "p2", 0); !errorsIs(err, store.ErrNotFound) {
		t.Errorf("GetPipeline(p2) after a canceled create: err = %v, want ErrNotFound", err)
	}
	if got := mustGet(t, st, "p1", 0); got.Version != 1 {
		t.Errorf("p1 is at version %d after a canceled update, want 1", got.Version)
	}
}
