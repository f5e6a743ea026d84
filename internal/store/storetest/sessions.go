package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pipelined/pipelined/internal/store"
)

var sessionTests = []testCase{
	{"SessionCreateGet", testSessionCreateGet},
	{"SessionUnique", testSessionUnique},
	{"SessionLatest", testSessionLatest},
	{"SessionDeleteExpired", testSessionDeleteExpired},
	{"SessionAcrossHandles", testSessionAcrossHandles},
	{"SessionCanceledContext", testSessionCanceledContext},
}

// newSession is a session credential of a job, expiring at expires.
func newSession(id, job string, expires time.Time) store.SessionCredential {
	return store.SessionCredential{
		AccessKeyID: id, JobID: job,
		SealedSecret: "sealed:v1:secret of " + id, SealedToken: "sealed:v1:token of " + id,
		Scope:   []byte(`{"bucket": "artifacts", "read": ["a/b/c"],   "write": ["d/e/f"]}`),
		Expires: expires,
	}
}

func mustCreateSession(t *testing.T, st store.Store, c store.SessionCredential) store.SessionCredential {
	t.Helper()
	got, err := st.CreateSessionCredential(t.Context(), c)
	noErr(t, "CreateSessionCredential "+c.AccessKeyID, err)
	return got
}

// checkSession compares everything but Created.
func checkSession(t *testing.T, what string, got, want store.SessionCredential) {
	t.Helper()
	if got.AccessKeyID != want.AccessKeyID || got.JobID != want.JobID || got.SealedSecret != want.SealedSecret ||
		got.SealedToken != want.SealedToken || !equalBytes(got.Scope, want.Scope) {
		t.Errorf("%s = %+v, want %+v", what, got, want)
	}
	if !sameTime(got.Expires, want.Expires) {
		t.Errorf("%s Expires = %v, want %v", what, got.Expires, want.Expires)
	}
}

func testSessionCreateGet(t *testing.T, s *suite) {
	st := s.open(t)
	want := newSession("ASIA1", "job-1", time.Date(2031, 2, 3, 4, 5, 6, 789e6, time.UTC))
	in := want
	in.Created = time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC) // ignored
	w := during()
	got := mustCreateSession(t, st, in)
	w.done()
	checkSession(t, "CreateSessionCredential", got, want)
	w.check(t, "CreateSessionCredential Created", got.Created)

	read, err := st.GetSessionCredential(t.Context(), "ASIA1")
	noErr(t, "GetSessionCredential", err)
	checkSession(t, "GetSessionCredential", read, want)
	if !sameTime(read.Created, got.Created) {
		t.Errorf("GetSessionCredential Created = %v, want %v", read.Created, got.Created)
	}
	// Access key ids are compared exactly.
	for _, id := range []string{"nope", "asia1", "ASIA1 ", ""} {
		_, err = st.GetSessionCredential(t.Context(), id)
		wantErr(t, fmt.Sprintf("GetSessionCredential(%q)", id), err, store.ErrNotFound)
	}

	// An expired credential is still there until deleted; an empty scope
	// comes back empty.
	old := newSession("ASIA2", "job-1", time.Now().Add(-time.Hour))
	old.Scope = nil
	mustCreateSession(t, st, old)
	read, err = st.GetSessionCredential(t.Context(), "ASIA2")
	noErr(t, "GetSessionCredential of an expired credential", err)
	if len(read.Scope) != 0 || !sameTime(read.Expires, old.Expires) {
		t.Errorf("GetSessionCredential of an expired credential = %+v", read)
	}
}

func testSessionUnique(t *testing.T, s *suite) {
	st := s.open(t)
	exp := time.Now().Add(time.Hour)
	mustCreateSession(t, st, newSession("ASIA1", "job-1", exp))
	_, err := st.CreateSessionCredential(t.Context(), newSession("ASIA1", "job-2", exp))
	wantErr(t, "CreateSessionCredential with a taken access key id", err, store.ErrAlreadyExists)
	read, err := st.GetSessionCredential(t.Context(), "ASIA1")
	noErr(t, "GetSessionCredential", err)
	if read.JobID != "job-1" {
		t.Errorf("a refused create changed the credential: job %s", read.JobID)
	}
	// A job may hold several credentials.
	mustCreateSession(t, st, newSession("ASIA2", "job-1", exp))
}

func testSessionLatest(t *testing.T, s *suite) {
	st := s.open(t)
	_, err := st.LatestSessionCredential(t.Context(), "job-1")
	wantErr(t, "LatestSessionCredential of a job without credentials", err, store.ErrNotFound)

	base := time.Now().Truncate(time.Millisecond)
	mustCreateSession(t, st, newSession("ASIA-B", "job-1", base.Add(30*time.Minute)))
	mustCreateSession(t, st, newSession("ASIA-A", "job-1", base.Add(50*time.Minute)))
	mustCreateSession(t, st, newSession("ASIA-C", "job-1", base.Add(-time.Minute)))
	mustCreateSession(t, st, newSession("ASIA-D", "job-2", base.Add(2*time.Hour)))
	got, err := st.LatestSessionCredential(t.Context(), "job-1")
	noErr(t, "LatestSessionCredential", err)
	if got.AccessKeyID != "ASIA-A" {
		t.Errorf("LatestSessionCredential = %s, want ASIA-A (expires last)", got.AccessKeyID)
	}
	// Ties: the greater access key id.
	mustCreateSession(t, st, newSession("ASIA-Z", "job-1", base.Add(50*time.Minute)))
	mustCreateSession(t, st, newSession("ASIA-0", "job-1", base.Add(50*time.Minute)))
	got, err = st.LatestSessionCredential(t.Context(), "job-1")
	noErr(t, "LatestSessionCredential", err)
	if got.AccessKeyID != "ASIA-Z" {
		t.Errorf("LatestSessionCredential of a tie = %s, want ASIA-Z", got.AccessKeyID)
	}
	// Expired ones count too, when they are all there is.
	got, err = st.LatestSessionCredential(t.Context(), "job-3")
	wantErr(t, "LatestSessionCredential of another job", err, store.ErrNotFound)
	mustCreateSession(t, st, newSession("ASIA-E", "job-3", base.Add(-time.Hour)))
	got, err = st.LatestSessionCredential(t.Context(), "job-3")
	noErr(t, "LatestSessionCredential of an expired one", err)
	if got.AccessKeyID != "ASIA-E" {
		t.Errorf("LatestSessionCredential = %s, want ASIA-E", got.AccessKeyID)
	}
}

func testSessionDeleteExpired(t *testing.T, s *suite) {
	st := s.open(t)
	base := time.Now().Truncate(time.Millisecond)
	for i := range 5 {
		mustCreateSession(t, st, newSession(fmt.Sprintf("ASIA-OLD%d", i), "job-1", base.Add(-time.Duration(i+1)*time.Minute)))
	}
	mustCreateSession(t, st, newSession("ASIA-EDGE", "job-1", base))
	mustCreateSession(t, st, newSession("ASIA-NEW", "job-1", base.Add(time.Millisecond)))

	n, err := st.DeleteSessionCredentials(t.Context(), base, 4)
	noErr(t, "DeleteSessionCredentials", err)
	if n != 4 {
		t.Errorf("DeleteSessionCredentials with limit 4 deleted %d", n)
	}
	n, err = st.DeleteSessionCredentials(t.Context(), base, 100)
	noErr(t, "DeleteSessionCredentials", err)
	if n != 2 {
		t.Errorf("DeleteSessionCredentials deleted %d more, want 2 (one old, and the one expiring at the time given)", n)
	}
	n, err = st.DeleteSessionCredentials(t.Context(), base, 100)
	noErr(t, "DeleteSessionCredentials", err)
	if n != 0 {
		t.Errorf("DeleteSessionCredentials with nothing expired deleted %d", n)
	}
	for i := range 5 {
		_, err = st.GetSessionCredential(t.Context(), fmt.Sprintf("ASIA-OLD%d", i))
		wantErr(t, "GetSessionCredential of a deleted credential", err, store.ErrNotFound)
	}
	_, err = st.GetSessionCredential(t.Context(), "ASIA-EDGE")
	wantErr(t, "GetSessionCredential of a credential expired at the time given", err, store.ErrNotFound)
	_, err = st.GetSessionCredential(t.Context(), "ASIA-NEW")
	noErr(t, "GetSessionCredential of an unexpired credential", err)
}

func testSessionAcrossHandles(t *testing.T, s *suite) {
	if s.h.Reopen == nil {
		t.Skip("the harness cannot reopen a store")
	}
	st := s.open(t)
	c := mustCreateSession(t, st, newSession("ASIA1", "job-1", time.Now().Add(time.Hour)))
	other := s.reopen(t, st)
	read, err := other.GetSessionCredential(t.Context(), "ASIA1")
	noErr(t, "GetSessionCredential on another handle", err)
	checkSession(t, "GetSessionCredential on another handle", read, c)
	latest, err := other.LatestSessionCredential(t.Context(), "job-1")
	noErr(t, "LatestSessionCredential on another handle", err)
	checkSession(t, "LatestSessionCredential on another handle", latest, c)
}

func testSessionCanceledContext(t *testing.T, s *suite) {
	st := s.open(t)
	mustCreateSession(t, st, newSession("ASIA1", "job-1", time.Now().Add(time.Hour)))
	ctx := canceled(t)
	_, err := st.CreateSessionCredential(ctx, newSession("ASIA2", "job-1", time.Now().Add(time.Hour)))
	wantErr(t, "CreateSessionCredential", err, context.Canceled)
	_, err = st.GetSessionCredential(ctx, "ASIA1")
	wantErr(t, "GetSessionCredential", err, context.Canceled)
	_, err = st.LatestSessionCredential(ctx, "job-1")
	wantErr(t, "LatestSessionCredential", err, context.Canceled)
	_, err = st.DeleteSessionCredentials(ctx, time.Now().Add(2*time.Hour), 10)
	wantErr(t, "DeleteSessionCredentials", err, context.Canceled)
}
