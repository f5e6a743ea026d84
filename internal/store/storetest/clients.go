package storetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pipelined/pipelined/internal/store"
)

var clientTests = []testCase{
	{"ClientCreateGet", testClientCreateGet},
	{"ClientUnique", testClientUnique},
	{"ClientLookups", testClientLookups},
	{"ClientRevoke", testClientRevoke},
	{"ClientConcurrentRevoke", testClientConcurrentRevoke},
	{"ClientList", testClientList},
	{"ClientAcrossHandles", testClientAcrossHandles},
	{"ClientConcurrentIssue", testClientConcurrentIssue},
	{"ClientCanceledContext", testClientCanceledContext},
}

// tokenHash is a test client's token hash: distinct per seed.
func tokenHash(seed string) []byte {
	h := sha256.Sum256([]byte(seed))
	return h[:]
}

// newClient is a client of pipeline/stage/action with a token hash derived
// from its id.
func newClient(id, pipeline, stage, action string) store.ThirdPartyClient {
	return store.ThirdPartyClient{
		ID: id, Pipeline: pipeline, Stage: stage, Action: action,
		ActionType:      atKey("Deploy", "ThirdParty", "Partner", "1"),
		PipelineCreated: time.Date(2024, 5, 6, 7, 8, 9, 123e6, time.UTC),
		TokenHash:       tokenHash("token of " + id),
	}
}

func mustCreateClient(t *testing.T, st store.Store, c store.ThirdPartyClient) store.ThirdPartyClient {
	t.Helper()
	got, err := st.CreateClient(t.Context(), c)
	noErr(t, "CreateClient "+c.ID, err)
	return got
}

// checkClient compares everything but the store-assigned times.
func checkClient(t *testing.T, what string, got, want store.ThirdPartyClient) {
	t.Helper()
	if got.ID != want.ID || got.Pipeline != want.Pipeline || got.Stage != want.Stage || got.Action != want.Action ||
		got.ActionType != want.ActionType || !equalBytes(got.TokenHash, want.TokenHash) {
		t.Errorf("%s = %+v, want %+v", what, got, want)
	}
	if !sameTime(got.PipelineCreated, want.PipelineCreated) {
		t.Errorf("%s PipelineCreated = %v, want %v", what, got.PipelineCreated, want.PipelineCreated)
	}
}

func testClientCreateGet(t *testing.T, s *suite) {
	st := s.open(t)
	want := newClient("c1", "app", "Deploy", "Ship")
	// The store assigns Created and ignores a Revoked it is given.
	in := want
	in.Created = time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	in.Revoked = time.Date(2002, 1, 1, 0, 0, 0, 0, time.UTC)
	w := during()
	got := mustCreateClient(t, st, in)
	w.done()
	checkClient(t, "CreateClient", got, want)
	w.check(t, "CreateClient Created", got.Created)
	if !got.Active() {
		t.Errorf("a new client is revoked at %v", got.Revoked)
	}
	read, err := st.GetClient(t.Context(), "c1")
	noErr(t, "GetClient", err)
	checkClient(t, "GetClient", read, want)
	if !sameTime(read.Created, got.Created) || !read.Active() {
		t.Errorf("GetClient = created %v revoked %v, want created %v and active", read.Created, read.Revoked, got.Created)
	}
	_, err = st.GetClient(t.Context(), "nope")
	wantErr(t, "GetClient of an unknown id", err, store.ErrNotFound)
}

func testClientUnique(t *testing.T, s *suite) {
	st := s.open(t)
	first := mustCreateClient(t, st, newClient("c1", "app", "Deploy", "Ship"))

	sameID := newClient("c1", "other", "S", "A")
	_, err := st.CreateClient(t.Context(), sameID)
	wantErr(t, "CreateClient with a taken id", err, store.ErrAlreadyExists)

	sameHash := newClient("c2", "other", "S", "A")
	sameHash.TokenHash = first.TokenHash
	_, err = st.CreateClient(t.Context(), sameHash)
	wantErr(t, "CreateClient with a taken token hash", err, store.ErrAlreadyExists)

	sameAction := newClient("c3", "app", "Deploy", "Ship")
	_, err = st.CreateClient(t.Context(), sameAction)
	wantErr(t, "CreateClient for an action with an active client", err, store.ErrAlreadyExists)

	// Another action of the same stage, or the same names in another
	// pipeline, are other actions.
	mustCreateClient(t, st, newClient("c4", "app", "Deploy", "Other"))
	mustCreateClient(t, st, newClient("c5", "app2", "Deploy", "Ship"))

	// Once revoked, the action may have a new client.
	_, err = st.RevokeClient(t.Context(), "c1")
	noErr(t, "RevokeClient", err)
	mustCreateClient(t, st, sameAction)
	active, err := st.ActionClient(t.Context(), "app", "Deploy", "Ship")
	noErr(t, "ActionClient", err)
	if active.ID != "c3" {
		t.Errorf("ActionClient after re-issue = %s, want c3", active.ID)
	}
}

func testClientLookups(t *testing.T, s *suite) {
	st := s.open(t)
	c := mustCreateClient(t, st, newClient("c1", "app", "Deploy", "Ship"))
	mustCreateClient(t, st, newClient("c2", "app", "Deploy", "Other"))

	byHash, err := st.ClientByTokenHash(t.Context(), tokenHash("token of c1"))
	noErr(t, "ClientByTokenHash", err)
	checkClient(t, "ClientByTokenHash", byHash, c)
	_, err = st.ClientByTokenHash(t.Context(), tokenHash("a token nobody has"))
	wantErr(t, "ClientByTokenHash of an unknown hash", err, store.ErrNotFound)
	_, err = st.ClientByTokenHash(t.Context(), nil)
	wantErr(t, "ClientByTokenHash of no hash", err, store.ErrNotFound)

	byAction, err := st.ActionClient(t.Context(), "app", "Deploy", "Ship")
	noErr(t, "ActionClient", err)
	checkClient(t, "ActionClient", byAction, c)
	for _, k := range [][3]string{{"app", "Deploy", "Nope"}, {"app", "Nope", "Ship"}, {"nope", "Deploy", "Ship"}, {"App", "Deploy", "Ship"}} {
		_, err = st.ActionClient(t.Context(), k[0], k[1], k[2])
		wantErr(t, fmt.Sprintf("ActionClient%v", k), err, store.ErrNotFound)
	}

	// A revoked client is no action's client any more, but its token
	// still finds it (so that callers can tell a revoked token apart).
	_, err = st.RevokeClient(t.Context(), "c1")
	noErr(t, "RevokeClient", err)
	_, err = st.ActionClient(t.Context(), "app", "Deploy", "Ship")
	wantErr(t, "ActionClient after revoke", err, store.ErrNotFound)
	byHash, err = st.ClientByTokenHash(t.Context(), tokenHash("token of c1"))
	noErr(t, "ClientByTokenHash of a revoked client", err)
	if byHash.ID != "c1" || byHash.Active() {
		t.Errorf("ClientByTokenHash of a revoked client = %s revoked %v", byHash.ID, byHash.Revoked)
	}
}

func testClientRevoke(t *testing.T, s *suite) {
	st := s.open(t)
	c := mustCreateClient(t, st, newClient("c1", "app", "Deploy", "Ship"))
	w := during()
	got, err := st.RevokeClient(t.Context(), "c1")
	w.done()
	noErr(t, "RevokeClient", err)
	checkClient(t, "RevokeClient", got, c)
	if got.Active() {
		t.Fatal("RevokeClient returned an active client")
	}
	w.check(t, "Revoked", got.Revoked)
	if !sameTime(got.Created, c.Created) {
		t.Errorf("RevokeClient changed Created: %v, was %v", got.Created, c.Created)
	}

	time.Sleep(5 * time.Millisecond)
	again, err := st.RevokeClient(t.Context(), "c1")
	noErr(t, "RevokeClient again", err)
	if !sameTime(again.Revoked, got.Revoked) {
		t.Errorf("revoking twice moved Revoked from %v to %v", got.Revoked, again.Revoked)
	}
	read, err := st.GetClient(t.Context(), "c1")
	noErr(t, "GetClient", err)
	if !sameTime(read.Revoked, got.Revoked) {
		t.Errorf("GetClient Revoked = %v, want %v", read.Revoked, got.Revoked)
	}

	_, err = st.RevokeClient(t.Context(), "nope")
	wantErr(t, "RevokeClient of an unknown id", err, store.ErrNotFound)
}

// testClientConcurrentRevoke: revokes racing each other, through two
// handles, all answer the client revoked at one time (none answers it
// active).
func testClientConcurrentRevoke(t *testing.T, s *suite) {
	a := s.open(t)
	mustCreateClient(t, a, newClient("c1", "app", "Deploy", "Ship"))
	concurrentRevokes(t, s, a, "RevokeClient", func(st store.Store) (time.Time, error) {
		c, err := st.RevokeClient(t.Context(), "c1")
		return c.Revoked, err
	})
}

func testClientList(t *testing.T, s *suite) {
	st := s.open(t)
	if got, err := st.ListClients(t.Context(), ""); err != nil || len(got) != 0 {
		t.Fatalf("ListClients of an empty store = %v, %v", got, err)
	}
	// Created in an order that is not the listing order; names in byte
	// order ("B" < "a").
	for _, c := range []store.ThirdPartyClient{
		newClient("c1", "b-app", "Deploy", "Ship"),
		newClient("c2", "a-app", "a", "x"),
		newClient("c3", "a-app", "B", "x"),
		newClient("c4", "a-app", "a", "W"),
	} {
		mustCreateClient(t, st, c)
	}
	_, err := st.RevokeClient(t.Context(), "c2")
	noErr(t, "RevokeClient", err)
	time.Sleep(2 * time.Millisecond) // a later Created than c2's
	mustCreateClient(t, st, newClient("c5", "a-app", "a", "x"))

	ids := func(cs []store.ThirdPartyClient) []string {
		out := []string{}
		for _, c := range cs {
			out = append(out, c.ID)
		}
		return out
	}
	all, err := st.ListClients(t.Context(), "")
	noErr(t, "ListClients", err)
	if got, want := fmt.Sprint(ids(all)), "[c3 c4 c2 c5 c1]"; got != want {
		t.Errorf("ListClients(\"\") = %s, want %s", got, want)
	}
	for _, c := range all {
		if (c.ID == "c2") == c.Active() {
			t.Errorf("ListClients: %s active = %v", c.ID, c.Active())
		}
	}
	one, err := st.ListClients(t.Context(), "a-app")
	noErr(t, "ListClients(a-app)", err)
	if got, want := fmt.Sprint(ids(one)), "[c3 c4 c2 c5]"; got != want {
		t.Errorf("ListClients(a-app) = %s, want %s", got, want)
	}
	none, err := st.ListClients(t.Context(), "A-APP")
	noErr(t, "ListClients(A-APP)", err)
	if len(none) != 0 {
		t.Errorf("ListClients(A-APP) = %v, want none", ids(none))
	}
}

// testClientAcrossHandles: clients written through one handle are seen
// through another, as by a restarted process or another replica.
func testClientAcrossHandles(t *testing.T, s *suite) {
	a, b := s.openPair(t)
	c := mustCreateClient(t, a, newClient("c1", "app", "Deploy", "Ship"))
	got, err := b.ClientByTokenHash(t.Context(), c.TokenHash)
	noErr(t, "ClientByTokenHash on the other handle", err)
	checkClient(t, "ClientByTokenHash on the other handle", got, c)
	_, err = b.RevokeClient(t.Context(), "c1")
	noErr(t, "RevokeClient on the other handle", err)
	_, err = a.ActionClient(t.Context(), "app", "Deploy", "Ship")
	wantErr(t, "ActionClient after a revoke on the other handle", err, store.ErrNotFound)
}

// testClientConcurrentIssue: of concurrent creates for one action, on two
// handles, exactly one wins.
func testClientConcurrentIssue(t *testing.T, s *suite) {
	a, b := s.openPair(t)
	const n = 8
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		won      []string
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
			id := fmt.Sprintf("c%d", i)
			_, err := st.CreateClient(t.Context(), newClient(id, "app", "Deploy", "Ship"))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won = append(won, id)
			case !errors.Is(err, store.ErrAlreadyExists):
				otherErr = err
			}
		}()
	}
	wg.Wait()
	if otherErr != nil {
		t.Fatalf("a concurrent CreateClient failed: %v", otherErr)
	}
	if len(won) != 1 {
		t.Fatalf("%d concurrent creates for one action succeeded (%v), want exactly 1", len(won), won)
	}
	got, err := a.ActionClient(t.Context(), "app", "Deploy", "Ship")
	noErr(t, "ActionClient", err)
	if got.ID != won[0] {
		t.Errorf("ActionClient = %s, want the winner %s", got.ID, won[0])
	}
}

func testClientCanceledContext(t *testing.T, s *suite) {
	st := s.open(t)
	mustCreateClient(t, st, newClient("c1", "app", "Deploy", "Ship"))
	ctx := canceled(t)
	_, err := st.CreateClient(ctx, newClient("c2", "app", "Deploy", "Other"))
	wantErr(t, "CreateClient", err, context.Canceled)
	_, err = st.GetClient(ctx, "c1")
	wantErr(t, "GetClient", err, context.Canceled)
	_, err = st.ClientByTokenHash(ctx, tokenHash("token of c1"))
	wantErr(t, "ClientByTokenHash", err, context.Canceled)
	_, err = st.ActionClient(ctx, "app", "Deploy", "Ship")
	wantErr(t, "ActionClient", err, context.Canceled)
	_, err = st.RevokeClient(ctx, "c1")
	wantErr(t, "RevokeClient", err, context.Canceled)
	_, err = st.ListClients(ctx, "")
	wantErr(t, "ListClients", err, context.Canceled)
}
