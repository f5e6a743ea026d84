package storetest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pipelined/pipelined/internal/store"
)

var workerKeyTests = []testCase{
	{"WorkerKeyCreateGet", testWorkerKeyCreateGet},
	{"WorkerKeyUnique", testWorkerKeyUnique},
	{"WorkerKeyRevoke", testWorkerKeyRevoke},
	{"WorkerKeyConcurrentRevoke", testWorkerKeyConcurrentRevoke},
	{"WorkerKeyList", testWorkerKeyList},
	{"WorkerKeyAcrossHandles", testWorkerKeyAcrossHandles},
	{"WorkerKeyCanceledContext", testWorkerKeyCanceledContext},
}

// newWorkerKey is a key of a Custom action type with a sealed secret
// derived from its id.
func newWorkerKey(id string) store.WorkerKey {
	return store.WorkerKey{
		AccessKeyID:  id,
		SealedSecret: "v1:sealed:" + id + ":QUJD+/=",
		ActionType:   atKey("Build", "Custom", "Builder", "2"),
		Description:  "build hosts of " + id,
	}
}

func mustCreateWorkerKey(t *testing.T, st store.Store, k store.WorkerKey) store.WorkerKey {
	t.Helper()
	got, err := st.CreateWorkerKey(t.Context(), k)
	noErr(t, "CreateWorkerKey "+k.AccessKeyID, err)
	return got
}

// checkWorkerKey compares everything but the store-assigned times.
func checkWorkerKey(t *testing.T, what string, got, want store.WorkerKey) {
	t.Helper()
	if got.AccessKeyID != want.AccessKeyID || got.SealedSecret != want.SealedSecret ||
		got.ActionType != want.ActionType || got.Description != want.Description {
		t.Errorf("%s = %+v, want %+v", what, got, want)
	}
}

func workerKeyIDs(ks []store.WorkerKey) []string {
	out := []string{}
	for _, k := range ks {
		out = append(out, k.AccessKeyID)
	}
	return out
}

func testWorkerKeyCreateGet(t *testing.T, s *suite) {
	st := s.open(t)
	want := newWorkerKey("AKIDWORKER1")
	// A secret with every kind of byte a sealed secret may hold (and a
	// trailing space and newline, which a trimming column would lose).
	want.SealedSecret = "v1.\x01\x7f.AbC+/=~é😀 \t\n"
	want.Description = "Déploiement: \"partner\" build hosts\n"
	// The store assigns Created and ignores a Revoked it is given.
	in := want
	in.Created = time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	in.Revoked = time.Date(2002, 1, 1, 0, 0, 0, 0, time.UTC)
	w := during()
	got := mustCreateWorkerKey(t, st, in)
	w.done()
	checkWorkerKey(t, "CreateWorkerKey", got, want)
	w.check(t, "CreateWorkerKey Created", got.Created)
	if !got.Active() {
		t.Errorf("a new key is revoked at %v", got.Revoked)
	}
	read, err := st.GetWorkerKey(t.Context(), "AKIDWORKER1")
	noErr(t, "GetWorkerKey", err)
	checkWorkerKey(t, "GetWorkerKey", read, want)
	if read.SealedSecret != want.SealedSecret {
		t.Errorf("GetWorkerKey SealedSecret = %q, want %q", read.SealedSecret, want.SealedSecret)
	}
	if !sameTime(read.Created, got.Created) || !read.Active() {
		t.Errorf("GetWorkerKey = created %v revoked %v, want created %v and active", read.Created, read.Revoked, got.Created)
	}

	// A key with empty optional fields round-trips too.
	bare := store.WorkerKey{AccessKeyID: "AKIDBARE", SealedSecret: "s", ActionType: atKey("Deploy", "ThirdParty", "Partner", "1")}
	mustCreateWorkerKey(t, st, bare)
	read, err = st.GetWorkerKey(t.Context(), "AKIDBARE")
	noErr(t, "GetWorkerKey of a key without description", err)
	checkWorkerKey(t, "GetWorkerKey of a key without description", read, bare)

	for _, id := range []string{"nope", "akidworker1", "AKIDWORKER", ""} {
		_, err = st.GetWorkerKey(t.Context(), id)
		wantErr(t, fmt.Sprintf("GetWorkerKey(%q)", id), err, store.ErrNotFound)
	}
}

func testWorkerKeyUnique(t *testing.T, s *suite) {
	st := s.open(t)
	first := mustCreateWorkerKey(t, st, newWorkerKey("AKID1"))

	dup := newWorkerKey("AKID1")
	dup.SealedSecret = "another secret"
	dup.ActionType = atKey("Deploy", "ThirdParty", "Other", "9")
	dup.Description = "another key"
	_, err := st.CreateWorkerKey(t.Context(), dup)
	wantErr(t, "CreateWorkerKey with a taken id", err, store.ErrAlreadyExists)

	read, err := st.GetWorkerKey(t.Context(), "AKID1")
	noErr(t, "GetWorkerKey", err)
	checkWorkerKey(t, "GetWorkerKey after a duplicate create", read, first)
	if !sameTime(read.Created, first.Created) || !read.Active() {
		t.Errorf("GetWorkerKey after a duplicate create = created %v revoked %v, want created %v and active",
			read.Created, read.Revoked, first.Created)
	}

	// A revoked key's id stays taken.
	_, err = st.RevokeWorkerKey(t.Context(), "AKID1")
	noErr(t, "RevokeWorkerKey", err)
	_, err = st.CreateWorkerKey(t.Context(), dup)
	wantErr(t, "CreateWorkerKey with a revoked key's id", err, store.ErrAlreadyExists)
	read, err = st.GetWorkerKey(t.Context(), "AKID1")
	noErr(t, "GetWorkerKey", err)
	checkWorkerKey(t, "GetWorkerKey after re-creating a revoked key", read, first)
	if read.Active() {
		t.Error("re-creating a revoked key made it active")
	}

	// Ids are compared byte for byte.
	mustCreateWorkerKey(t, st, newWorkerKey("akid1"))
}

func testWorkerKeyRevoke(t *testing.T, s *suite) {
	st := s.open(t)
	k := mustCreateWorkerKey(t, st, newWorkerKey("AKID1"))
	other := mustCreateWorkerKey(t, st, newWorkerKey("AKID2"))
	w := during()
	got, err := st.RevokeWorkerKey(t.Context(), "AKID1")
	w.done()
	noErr(t, "RevokeWorkerKey", err)
	checkWorkerKey(t, "RevokeWorkerKey", got, k)
	if got.Active() {
		t.Fatal("RevokeWorkerKey returned an active key")
	}
	w.check(t, "Revoked", got.Revoked)
	if !sameTime(got.Created, k.Created) {
		t.Errorf("RevokeWorkerKey changed Created: %v, was %v", got.Created, k.Created)
	}

	time.Sleep(5 * time.Millisecond)
	again, err := st.RevokeWorkerKey(t.Context(), "AKID1")
	noErr(t, "RevokeWorkerKey again", err)
	checkWorkerKey(t, "RevokeWorkerKey again", again, k)
	if !sameTime(again.Revoked, got.Revoked) || !sameTime(again.Created, k.Created) {
		t.Errorf("revoking twice = created %v revoked %v, want created %v revoked %v",
			again.Created, again.Revoked, k.Created, got.Revoked)
	}
	read, err := st.GetWorkerKey(t.Context(), "AKID1")
	noErr(t, "GetWorkerKey", err)
	checkWorkerKey(t, "GetWorkerKey of a revoked key", read, k)
	if !sameTime(read.Revoked, got.Revoked) {
		t.Errorf("GetWorkerKey Revoked = %v, want %v", read.Revoked, got.Revoked)
	}

	// The other key is untouched.
	read, err = st.GetWorkerKey(t.Context(), "AKID2")
	noErr(t, "GetWorkerKey of the other key", err)
	if !read.Active() || !sameTime(read.Created, other.Created) {
		t.Errorf("revoking AKID1 changed AKID2: created %v revoked %v", read.Created, read.Revoked)
	}

	_, err = st.RevokeWorkerKey(t.Context(), "nope")
	wantErr(t, "RevokeWorkerKey of an unknown id", err, store.ErrNotFound)
	if _, err := st.GetWorkerKey(t.Context(), "nope"); !errorsIs(err, store.ErrNotFound) {
		t.Errorf("RevokeWorkerKey of an unknown id created it: GetWorkerKey err = %v", err)
	}
}

// testWorkerKeyConcurrentRevoke: concurrent revokes of one key, on two
// handles when the harness can reopen, all succeed and agree on Revoked.
func testWorkerKeyConcurrentRevoke(t *testing.T, s *suite) {
	a := s.open(t)
	mustCreateWorkerKey(t, a, newWorkerKey("AKID1"))
	revoked := concurrentRevokes(t, s, a, "RevokeWorkerKey", func(st store.Store) (time.Time, error) {
		k, err := st.RevokeWorkerKey(t.Context(), "AKID1")
		return k.Revoked, err
	})
	read, rerr := a.GetWorkerKey(t.Context(), "AKID1")
	noErr(t, "GetWorkerKey", rerr)
	if !sameTime(read.Revoked, revoked) {
		t.Errorf("GetWorkerKey Revoked = %v, want %v", read.Revoked, revoked)
	}
}

// concurrentRevokes runs 8 revokes of one record at once, alternating
// between a and a second handle when the harness can reopen, and checks
// that all succeed and answer the same, non-zero, revocation time (none
// answers the record still active); it returns that time.
func concurrentRevokes(t *testing.T, s *suite, a store.Store, what string, revoke func(store.Store) (time.Time, error)) time.Time {
	t.Helper()
	b := a
	if s.h.Reopen != nil {
		b = s.reopen(t, a)
	}
	const n = 8
	var (
		wg   sync.WaitGroup
		got  [n]time.Time
		errs [n]error
	)
	for i := range n {
		st := []store.Store{a, b}[i%2]
		wg.Go(func() { got[i], errs[i] = revoke(st) })
	}
	wg.Wait()
	for i := range n {
		noErr(t, fmt.Sprintf("concurrent %s %d", what, i), errs[i])
		if got[i].IsZero() || !sameTime(got[i], got[0]) {
			t.Errorf("concurrent %s %d: Revoked = %v, want %v", what, i, got[i], got[0])
		}
	}
	return got[0]
}

func testWorkerKeyList(t *testing.T, s *suite) {
	st := s.open(t)
	if got, err := st.ListWorkerKeys(t.Context()); err != nil || len(got) != 0 {
		t.Fatalf("ListWorkerKeys of an empty store = %v, %v", got, err)
	}
	// Created one after another in an order that is not the ids' order;
	// ids in byte order ("B" < "a").
	created := map[string]store.WorkerKey{}
	for _, id := range []string{"k-c", "k-a", "k-B", "k-b"} {
		created[id] = mustCreateWorkerKey(t, st, newWorkerKey(id))
		time.Sleep(2 * time.Millisecond) // distinct Created times
	}
	_, err := st.RevokeWorkerKey(t.Context(), "k-a")
	noErr(t, "RevokeWorkerKey", err)

	all, err := st.ListWorkerKeys(t.Context())
	noErr(t, "ListWorkerKeys", err)
	if got, want := fmt.Sprint(workerKeyIDs(all)), "[k-c k-a k-B k-b]"; got != want {
		t.Errorf("ListWorkerKeys = %s, want %s (creation order)", got, want)
	}
	for _, k := range all {
		c, ok := created[k.AccessKeyID]
		if !ok {
			continue
		}
		checkWorkerKey(t, "ListWorkerKeys "+k.AccessKeyID, k, c)
		if !sameTime(k.Created, c.Created) {
			t.Errorf("ListWorkerKeys %s Created = %v, want %v", k.AccessKeyID, k.Created, c.Created)
		}
		if (k.AccessKeyID == "k-a") == k.Active() {
			t.Errorf("ListWorkerKeys: %s active = %v", k.AccessKeyID, k.Active())
		}
	}

	// Keys created at once may share a Created time: they are then in id
	// byte order. Whatever times the store gave them, the listing is
	// sorted by (Created, AccessKeyID).
	var wg sync.WaitGroup
	for _, id := range []string{"t-b", "t-a", "t-B", "t-A"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := st.CreateWorkerKey(t.Context(), newWorkerKey(id))
			if err != nil {
				t.Errorf("CreateWorkerKey %s: %v", id, err)
			}
		}()
	}
	wg.Wait()
	all, err = st.ListWorkerKeys(t.Context())
	noErr(t, "ListWorkerKeys", err)
	if len(all) != 8 {
		t.Fatalf("ListWorkerKeys = %v, want 8 keys", workerKeyIDs(all))
	}
	sorted := slices.IsSortedFunc(all, func(x, y store.WorkerKey) int {
		if c := x.Created.Compare(y.Created); c != 0 {
			return c
		}
		return strings.Compare(x.AccessKeyID, y.AccessKeyID)
	})
	if !sorted {
		for _, k := range all {
			t.Logf("%s created %v", k.AccessKeyID, k.Created)
		}
		t.Errorf("ListWorkerKeys = %v, not ordered by Created, then AccessKeyID", workerKeyIDs(all))
	}
}

// testWorkerKeyAcrossHandles: keys written through one handle are seen
// through another, as by a restarted process or another replica.
func testWorkerKeyAcrossHandles(t *testing.T, s *suite) {
	a, b := s.openPair(t)
	k := mustCreateWorkerKey(t, a, newWorkerKey("AKID1"))
	got, err := b.GetWorkerKey(t.Context(), "AKID1")
	noErr(t, "GetWorkerKey on the other handle", err)
	checkWorkerKey(t, "GetWorkerKey on the other handle", got, k)
	revoked, err := b.RevokeWorkerKey(t.Context(), "AKID1")
	noErr(t, "RevokeWorkerKey on the other handle", err)
	got, err = a.GetWorkerKey(t.Context(), "AKID1")
	noErr(t, "GetWorkerKey after a revoke on the other handle", err)
	if got.Active() || !sameTime(got.Revoked, revoked.Revoked) {
		t.Errorf("GetWorkerKey after a revoke on the other handle: Revoked = %v, want %v", got.Revoked, revoked.Revoked)
	}
	list, err := a.ListWorkerKeys(t.Context())
	noErr(t, "ListWorkerKeys", err)
	if len(list) != 1 || list[0].AccessKeyID != "AKID1" || list[0].Active() {
		t.Errorf("ListWorkerKeys = %+v, want the revoked AKID1", list)
	}
}

func testWorkerKeyCanceledContext(t *testing.T, s *suite) {
	st := s.open(t)
	mustCreateWorkerKey(t, st, newWorkerKey("AKID1"))
	ctx := canceled(t)
	_, err := st.CreateWorkerKey(ctx, newWorkerKey("AKID2"))
	wantErr(t, "CreateWorkerKey", err, context.Canceled)
	_, err = st.GetWorkerKey(ctx, "AKID1")
	wantErr(t, "GetWorkerKey", err, context.Canceled)
	_, err = st.ListWorkerKeys(ctx)
	wantErr(t, "ListWorkerKeys", err, context.Canceled)
	_, err = st.RevokeWorkerKey(ctx, "AKID1")
	wantErr(t, "RevokeWorkerKey", err, context.Canceled)
	got, err := st.GetWorkerKey(t.Context(), "AKID1")
	noErr(t, "GetWorkerKey", err)
	if !got.Active() {
		t.Error("a canceled RevokeWorkerKey revoked the key")
	}
	_, err = st.GetWorkerKey(t.Context(), "AKID2")
	wantErr(t, "GetWorkerKey of a canceled create", err, store.ErrNotFound)
}
