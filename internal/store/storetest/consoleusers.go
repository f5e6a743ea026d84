package storetest

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/pipelined/pipelined/internal/store"
)

var consoleUserTests = []testCase{
	{"ConsoleUserCreateGetList", testConsoleUserCreateGetList},
	{"ConsoleUserUpdate", testConsoleUserUpdate},
	{"ConsoleSessions", testConsoleSessions},
	{"ConsoleSessionsEndWithPassword", testConsoleSessionsEndWithPassword},
	{"ConsoleSessionsStale", testConsoleSessionsStale},
	{"ConsoleSessionAcrossHandles", testConsoleSessionAcrossHandles},
}

func newConsoleUser(name, role string) store.ConsoleUser {
	return store.ConsoleUser{Name: name, Role: role, PasswordHash: "$argon2id$v=19$m=65536,t=1,p=2$c2FsdA$" + name}
}

func testConsoleUserCreateGetList(t *testing.T, s *suite) {
	st := s.open(t)
	ctx := t.Context()
	before := time.Now()
	for _, u := range []store.ConsoleUser{newConsoleUser("zoe", "viewer"), newConsoleUser("Ann", "admin"), newConsoleUser("bob", "approver")} {
		got, err := st.CreateConsoleUser(ctx, u)
		noErr(t, "CreateConsoleUser "+u.Name, err)
		if got.Name != u.Name || got.Role != u.Role || got.PasswordHash != u.PasswordHash || got.Disabled {
			t.Errorf("created %+v, want %+v", got, u)
		}
		if got.Created.Sub(before) < -maxSkew || time.Since(got.Created) > maxSkew {
			t.Errorf("Created = %v, want about now", got.Created)
		}
	}
	_, err := st.CreateConsoleUser(ctx, newConsoleUser("bob", "admin"))
	wantErr(t, "CreateConsoleUser of a taken name", err, store.ErrAlreadyExists)
	got, err := st.GetConsoleUser(ctx, "bob")
	noErr(t, "GetConsoleUser", err)
	if got.Role != "approver" {
		t.Errorf("bob's role = %q after a refused re-create, want approver", got.Role)
	}
	_, err = st.GetConsoleUser(ctx, "nobody")
	wantErr(t, "GetConsoleUser of nobody", err, store.ErrNotFound)
	list, err := st.ListConsoleUsers(ctx)
	noErr(t, "ListConsoleUsers", err)
	var names []string
	for _, u := range list {
		names = append(names, u.Name)
	}
	if want := []string{"Ann", "bob", "zoe"}; len(names) != 3 || names[0] != want[0] || names[1] != want[1] || names[2] != want[2] {
		t.Errorf("ListConsoleUsers = %v, want %v (byte order)", names, want)
	}
}

func testConsoleUserUpdate(t *testing.T, s *suite) {
	st := s.open(t)
	ctx := t.Context()
	_, err := st.CreateConsoleUser(ctx, newConsoleUser("carol", "viewer"))
	noErr(t, "CreateConsoleUser", err)
	u, err := st.UpdateConsoleUser(ctx, "carol", func(u *store.ConsoleUser) error {
		u.Role = "operator"
		u.Name = "mallory" // the name is the store's: ignored
		return nil
	})
	noErr(t, "UpdateConsoleUser", err)
	if u.Name != "carol" || u.Role != "operator" {
		t.Errorf("updated = %+v, want carol as operator", u)
	}
	boom := errors.New("boom")
	_, err = st.UpdateConsoleUser(ctx, "carol", func(u *store.ConsoleUser) error { u.Role = "admin"; return boom })
	if !errors.Is(err, boom) {
		t.Errorf("UpdateConsoleUser whose fn fails = %v, want its error", err)
	}
	got, err := st.GetConsoleUser(ctx, "carol")
	noErr(t, "GetConsoleUser", err)
	if got.Role != "operator" {
		t.Errorf("role = %q after a failed update, want operator (nothing written)", got.Role)
	}
	_, err = st.UpdateConsoleUser(ctx, "nobody", func(*store.ConsoleUser) error { return nil })
	wantErr(t, "UpdateConsoleUser of nobody", err, store.ErrNotFound)
}

func testConsoleSessions(t *testing.T, s *suite) {
	st := s.open(t)
	ctx := t.Context()
	_, err := st.CreateConsoleUser(ctx, newConsoleUser("dave", "approver"))
	noErr(t, "CreateConsoleUser", err)
	exp := time.Now().Add(12 * time.Hour).UTC().Truncate(time.Millisecond)
	id := []byte("hash-of-a-session-id-0123456789ab")
	cs, err := st.CreateConsoleSession(ctx, store.ConsoleSession{IDHash: id, User: "dave", Expires: exp})
	noErr(t, "CreateConsoleSession", err)
	if !cs.Expires.Equal(exp) || cs.User != "dave" {
		t.Errorf("session = %+v, want dave's expiring at %v", cs, exp)
	}
	_, err = st.CreateConsoleSession(ctx, store.ConsoleSession{IDHash: id, User: "dave", Expires: exp})
	wantErr(t, "CreateConsoleSession of a taken id", err, store.ErrAlreadyExists)
	_, err = st.CreateConsoleSession(ctx, store.ConsoleSession{IDHash: []byte("other"), User: "nobody", Expires: exp})
	wantErr(t, "CreateConsoleSession of nobody", err, store.ErrNotFound)
	got, err := st.GetConsoleSession(ctx, id)
	noErr(t, "GetConsoleSession", err)
	if !bytes.Equal(got.IDHash, id) || got.User != "dave" || !got.Expires.Equal(exp) {
		t.Errorf("GetConsoleSession = %+v", got)
	}
	time.Sleep(5 * time.Millisecond)
	noErr(t, "TouchConsoleSession", st.TouchConsoleSession(ctx, id))
	touched, err := st.GetConsoleSession(ctx, id)
	noErr(t, "GetConsoleSession", err)
	if !touched.LastSeen.After(got.LastSeen) {
		t.Errorf("LastSeen %v not after %v once touched", touched.LastSeen, got.LastSeen)
	}
	wantErr(t, "TouchConsoleSession of none", st.TouchConsoleSession(ctx, []byte("none")), store.ErrNotFound)
	noErr(t, "DeleteConsoleSession", st.DeleteConsoleSession(ctx, id))
	noErr(t, "DeleteConsoleSession again", st.DeleteConsoleSession(ctx, id))
	_, err = st.GetConsoleSession(ctx, id)
	wantErr(t, "GetConsoleSession after delete", err, store.ErrNotFound)
}

// testConsoleSessionsEndWithPassword: a new password or disabling signs the
// user out everywhere; a role change does not.
func testConsoleSessionsEndWithPassword(t *testing.T, s *suite) {
	st := s.open(t)
	ctx := t.Context()
	for _, n := range []string{"erin", "frank"} {
		_, err := st.CreateConsoleUser(ctx, newConsoleUser(n, "viewer"))
		noErr(t, "CreateConsoleUser", err)
	}
	exp := time.Now().Add(time.Hour)
	mk := func(id, user string) {
		_, err := st.CreateConsoleSession(ctx, store.ConsoleSession{IDHash: []byte(id), User: user, Expires: exp})
		noErr(t, "CreateConsoleSession "+id, err)
	}
	exists := func(id string) bool {
		_, err := st.GetConsoleSession(ctx, []byte(id))
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Fatal(err)
		}
		return err == nil
	}
	mk("e1", "erin")
	mk("e2", "erin")
	mk("f1", "frank")
	_, err := st.UpdateConsoleUser(ctx, "erin", func(u *store.ConsoleUser) error { u.Role = "admin"; return nil })
	noErr(t, "role change", err)
	if !exists("e1") || !exists("e2") {
		t.Fatal("a role change ended erin's sessions")
	}
	_, err = st.UpdateConsoleUser(ctx, "erin", func(u *store.ConsoleUser) error { u.PasswordHash += "x"; return nil })
	noErr(t, "password change", err)
	if exists("e1") || exists("e2") {
		t.Error("erin's sessions survived a password change")
	}
	if !exists("f1") {
		t.Error("erin's password change ended frank's session")
	}
	_, err = st.UpdateConsoleUser(ctx, "frank", func(u *store.ConsoleUser) error { u.Disabled = true; return nil })
	noErr(t, "disable", err)
	if exists("f1") {
		t.Error("frank's session survived disabling him")
	}
}

func testConsoleSessionsStale(t *testing.T, s *suite) {
	st := s.open(t)
	ctx := t.Context()
	_, err := st.CreateConsoleUser(ctx, newConsoleUser("gina", "viewer"))
	noErr(t, "CreateConsoleUser", err)
	now := time.Now()
	for id, exp := range map[string]time.Time{"expired": now.Add(-time.Minute), "live": now.Add(time.Hour)} {
		_, err := st.CreateConsoleSession(ctx, store.ConsoleSession{IDHash: []byte(id), User: "gina", Expires: exp})
		noErr(t, "CreateConsoleSession", err)
	}
	n, err := st.DeleteStaleConsoleSessions(ctx, now, now.Add(-time.Hour))
	noErr(t, "DeleteStaleConsoleSessions", err)
	if n != 1 {
		t.Errorf("deleted %d stale sessions, want 1 (the expired one)", n)
	}
	if _, err := st.GetConsoleSession(ctx, []byte("live")); err != nil {
		t.Errorf("live session: %v", err)
	}
	// Idle: last seen before the cut-off.
	n, err = st.DeleteStaleConsoleSessions(ctx, now, time.Now().Add(maxSkew+time.Second))
	noErr(t, "DeleteStaleConsoleSessions idle", err)
	if n != 1 {
		t.Errorf("deleted %d idle sessions, want 1", n)
	}
}

// testConsoleSessionAcrossHandles: a session made on one replica signs in
// on another (and after a restart).
func testConsoleSessionAcrossHandles(t *testing.T, s *suite) {
	st := s.open(t)
	ctx := t.Context()
	_, err := st.CreateConsoleUser(ctx, newConsoleUser("hank", "operator"))
	noErr(t, "CreateConsoleUser", err)
	_, err = st.CreateConsoleSession(ctx, store.ConsoleSession{IDHash: []byte("h1"), User: "hank", Expires: time.Now().Add(time.Hour)})
	noErr(t, "CreateConsoleSession", err)
	other := s.reopen(t, st)
	got, err := other.GetConsoleSession(ctx, []byte("h1"))
	noErr(t, "GetConsoleSession on another handle", err)
	if got.User != "hank" {
		t.Errorf("session user = %q, want hank", got.User)
	}
}
