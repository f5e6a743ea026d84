package storetest

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/pipelined/pipelined/internal/store"
)

var gitConnectionTests = []testCase{
	{"GitHostCreateGetDelete", testGitHostCreateGetDelete},
	{"GitHostList", testGitHostList},
	{"GitConnectionCreateGet", testGitConnectionCreateGet},
	{"GitConnectionHostRules", testGitConnectionHostRules},
	{"GitConnectionUpdate", testGitConnectionUpdate},
	{"GitConnectionListFilter", testGitConnectionListFilter},
	{"GitConnectionAcrossHandles", testGitConnectionAcrossHandles},
	{"GitConnectionCanceledContext", testGitConnectionCanceledContext},
}

func testGitHostCreateGetDelete(t *testing.T, s *suite) {
	st := s.open(t)
	ctx := t.Context()
	vpc := []byte(`{"VpcId":"vpc-1","SubnetIds":["s"],"SecurityGroupIds":["g"]}`)
	h := store.GitHost{ID: "forge-1a2b3c4d", Name: "forge", ProviderType: "GitLabSelfManaged", Endpoint: "https://git.example.com", VPC: vpc}
	w := during()
	got, err := st.CreateGitHost(ctx, h, []store.Tag{{Key: "team", Value: "a"}})
	noErr(t, "CreateGitHost", err)
	w.done().check(t, "Created", got.Created)
	_, err = st.CreateGitHost(ctx, h, nil)
	wantErr(t, "CreateGitHost again", err, store.ErrAlreadyExists)
	read, err := st.GetGitHost(ctx, h.ID)
	noErr(t, "GetGitHost", err)
	if read.Name != h.Name || read.ProviderType != h.ProviderType || read.Endpoint != h.Endpoint || !bytes.Equal(read.VPC, vpc) {
		t.Fatalf("GetGitHost = %+v, want %+v", read, h)
	}
	plain, err := st.CreateGitHost(ctx, store.GitHost{ID: "plain-00000000", Name: "plain", ProviderType: "GitHubEnterpriseServer", Endpoint: "http://x"}, nil)
	noErr(t, "CreateGitHost without VPC", err)
	if read, _ := st.GetGitHost(ctx, plain.ID); read.VPC != nil {
		t.Fatalf("VPC of a host without one = %q, want nil", read.VPC)
	}
	tags, err := st.Tags(ctx, store.GitHostResource(h.ID))
	noErr(t, "Tags", err)
	if len(tags) != 1 || tags[0] != (store.Tag{Key: "team", Value: "a"}) {
		t.Fatalf("tags = %v", tags)
	}
	noErr(t, "DeleteGitHost", st.DeleteGitHost(ctx, h.ID))
	_, err = st.GetGitHost(ctx, h.ID)
	wantErr(t, "GetGitHost after delete", err, store.ErrNotFound)
	wantErr(t, "DeleteGitHost again", st.DeleteGitHost(ctx, h.ID), store.ErrNotFound)
	tags, err = st.Tags(ctx, store.GitHostResource(h.ID))
	noErr(t, "Tags after delete", err)
	if len(tags) != 0 {
		t.Fatalf("tags after delete = %v", tags)
	}
}

func testGitHostList(t *testing.T, s *suite) {
	st := s.open(t)
	ctx := t.Context()
	ids := []string{"b-2", "a-1", "c-3", "B-0"}
	for _, id := range ids {
		_, err := st.CreateGitHost(ctx, store.GitHost{ID: id, Name: id, ProviderType: "GitLabSelfManaged", Endpoint: "https://h"}, nil)
		noErr(t, "CreateGitHost", err)
	}
	var seen []string
	after := ""
	for {
		page, err := st.ListGitHosts(ctx, after, 3)
		noErr(t, "ListGitHosts", err)
		if len(page) > 3 {
			t.Fatalf("page of %d, limit 3", len(page))
		}
		if len(page) == 0 {
			break
		}
		for _, h := range page {
			seen = append(seen, h.ID)
		}
		after = page[len(page)-1].ID
	}
	want := slices.Clone(ids)
	slices.Sort(want) // byte order: "B-0" before "a-1"
	if !slices.Equal(seen, want) {
		t.Fatalf("listed %v, want %v", seen, want)
	}
}

func newGitConn(id string) store.GitConnection {
	return store.GitConnection{ID: id, Name: "conn " + id, ProviderType: "GitHub", Status: "PENDING"}
}

func testGitConnectionCreateGet(t *testing.T, s *suite) {
	st := s.open(t)
	ctx := t.Context()
	c := newGitConn("0b8e9a3c-0000-4000-8000-000000000001")
	c.SealedCredentials = "v1:sealed:abc"
	w := during()
	got, err := st.CreateGitConnection(ctx, c, []store.Tag{{Key: "k", Value: ""}})
	noErr(t, "CreateGitConnection", err)
	w.done().check(t, "Created", got.Created)
	if !sameTime(got.Updated, got.Created) {
		t.Errorf("Updated %v != Created %v on create", got.Updated, got.Created)
	}
	_, err = st.CreateGitConnection(ctx, c, nil)
	wantErr(t, "CreateGitConnection again", err, store.ErrAlreadyExists)
	read, err := st.GetGitConnection(ctx, c.ID)
	noErr(t, "GetGitConnection", err)
	if read.Name != c.Name || read.ProviderType != c.ProviderType || read.Status != c.Status || read.SealedCredentials != c.SealedCredentials || read.HostID != "" {
		t.Fatalf("GetGitConnection = %+v, want %+v", read, c)
	}
	tags, err := st.Tags(ctx, store.GitConnectionResource(c.ID))
	noErr(t, "Tags", err)
	if len(tags) != 1 || tags[0] != (store.Tag{Key: "k"}) {
		t.Fatalf("tags = %v", tags)
	}
	noErr(t, "DeleteGitConnection", st.DeleteGitConnection(ctx, c.ID))
	_, err = st.GetGitConnection(ctx, c.ID)
	wantErr(t, "GetGitConnection after delete", err, store.ErrNotFound)
	wantErr(t, "DeleteGitConnection again", st.DeleteGitConnection(ctx, c.ID), store.ErrNotFound)
	tags, _ = st.Tags(ctx, store.GitConnectionResource(c.ID))
	if len(tags) != 0 {
		t.Fatalf("tags after delete = %v", tags)
	}
}

// A connection on a host needs the host; a host in use cannot be deleted.
func testGitConnectionHostRules(t *testing.T, s *suite) {
	st := s.open(t)
	ctx := t.Context()
	c := newGitConn("c-on-host")
	c.HostID, c.ProviderType = "forge-1", "GitLabSelfManaged"
	_, err := st.CreateGitConnection(ctx, c, nil)
	wantErr(t, "CreateGitConnection on a missing host", err, store.ErrNotFound)
	_, err = st.CreateGitHost(ctx, store.GitHost{ID: "forge-1", Name: "forge", ProviderType: "GitLabSelfManaged", Endpoint: "https://h"}, nil)
	noErr(t, "CreateGitHost", err)
	got, err := st.CreateGitConnection(ctx, c, nil)
	noErr(t, "CreateGitConnection", err)
	if got.HostID != "forge-1" {
		t.Fatalf("HostID = %q", got.HostID)
	}
	wantErr(t, "DeleteGitHost in use", st.DeleteGitHost(ctx, "forge-1"), store.ErrConflict)
	noErr(t, "DeleteGitConnection", st.DeleteGitConnection(ctx, c.ID))
	noErr(t, "DeleteGitHost unused", st.DeleteGitHost(ctx, "forge-1"))
}

func testGitConnectionUpdate(t *testing.T, s *suite) {
	st := s.open(t)
	ctx := t.Context()
	c, err := st.CreateGitConnection(ctx, newGitConn("u-1"), nil)
	noErr(t, "CreateGitConnection", err)
	w := during()
	got, err := st.UpdateGitConnection(ctx, c.ID, func(cur store.GitConnection) (store.GitConnection, error) {
		if cur.Status != "PENDING" {
			t.Errorf("fn got status %q", cur.Status)
		}
		cur.Status, cur.SealedCredentials = "AVAILABLE", "v1:sealed:new"
		cur.ID, cur.HostID, cur.Created = "other", "h", cur.Created.Add(-1e12) // ignored
		return cur, nil
	})
	noErr(t, "UpdateGitConnection", err)
	if got.ID != c.ID || got.HostID != "" || !sameTime(got.Created, c.Created) || got.Status != "AVAILABLE" || got.SealedCredentials != "v1:sealed:new" {
		t.Fatalf("UpdateGitConnection = %+v", got)
	}
	w.done().check(t, "Updated", got.Updated)
	read, _ := st.GetGitConnection(ctx, c.ID)
	if read.Status != "AVAILABLE" || read.SealedCredentials != "v1:sealed:new" {
		t.Fatalf("read back %+v", read)
	}
	boom := errors.New("boom")
	_, err = st.UpdateGitConnection(ctx, c.ID, func(store.GitConnection) (store.GitConnection, error) { return store.GitConnection{}, boom })
	wantErr(t, "UpdateGitConnection fn error", err, boom)
	called := false
	_, err = st.UpdateGitConnection(ctx, "missing", func(c store.GitConnection) (store.GitConnection, error) { called = true; return c, nil })
	wantErr(t, "UpdateGitConnection missing", err, store.ErrNotFound)
	if called {
		t.Fatal("fn called for a missing connection")
	}
}

func testGitConnectionListFilter(t *testing.T, s *suite) {
	st := s.open(t)
	ctx := t.Context()
	_, err := st.CreateGitHost(ctx, store.GitHost{ID: "h-1", Name: "h", ProviderType: "GitLabSelfManaged", Endpoint: "https://h"}, nil)
	noErr(t, "CreateGitHost", err)
	mk := func(id, provider, host string) {
		c := newGitConn(id)
		c.ProviderType, c.HostID = provider, host
		_, err := st.CreateGitConnection(ctx, c, nil)
		noErr(t, "CreateGitConnection "+id, err)
	}
	mk("c1", "GitHub", "")
	mk("c2", "GitLabSelfManaged", "h-1")
	mk("c3", "GitHub", "")
	mk("c4", "GitLabSelfManaged", "h-1")
	mk("c5", "Bitbucket", "")
	ids := func(f store.GitConnectionFilter, limit int) []string {
		var out []string
		after := ""
		for {
			page, err := st.ListGitConnections(ctx, f, after, limit)
			noErr(t, "ListGitConnections", err)
			if len(page) == 0 {
				return out
			}
			for _, c := range page {
				out = append(out, c.ID)
			}
			after = page[len(page)-1].ID
		}
	}
	for _, tc := range []struct {
		f    store.GitConnectionFilter
		want []string
	}{
		{store.GitConnectionFilter{}, []string{"c1", "c2", "c3", "c4", "c5"}},
		{store.GitConnectionFilter{ProviderType: "GitHub"}, []string{"c1", "c3"}},
		{store.GitConnectionFilter{HostID: "h-1"}, []string{"c2", "c4"}},
		{store.GitConnectionFilter{ProviderType: "GitHub", HostID: "h-1"}, nil},
	} {
		if got := ids(tc.f, 2); !slices.Equal(got, tc.want) {
			t.Errorf("filter %+v: %v, want %v", tc.f, got, tc.want)
		}
	}
}

func testGitConnectionAcrossHandles(t *testing.T, s *suite) {
	a, b := s.openPair(t)
	ctx := t.Context()
	_, err := a.CreateGitConnection(ctx, newGitConn("x-1"), nil)
	noErr(t, "CreateGitConnection", err)
	_, err = b.UpdateGitConnection(ctx, "x-1", func(c store.GitConnection) (store.GitConnection, error) {
		c.Status = "AVAILABLE"
		return c, nil
	})
	noErr(t, "UpdateGitConnection on the other handle", err)
	got, err := a.GetGitConnection(ctx, "x-1")
	noErr(t, "GetGitConnection", err)
	if got.Status != "AVAILABLE" {
		t.Fatalf("status seen by the first handle: %q", got.Status)
	}
}

func testGitConnectionCanceledContext(t *testing.T, s *suite) {
	st := s.open(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := st.CreateGitConnection(ctx, newGitConn("z"), nil)
	wantErr(t, "CreateGitConnection", err, context.Canceled)
	_, err = st.GetGitConnection(ctx, "z")
	wantErr(t, "GetGitConnection", err, context.Canceled)
	_, err = st.ListGitHosts(ctx, "", 10)
	wantErr(t, "ListGitHosts", err, context.Canceled)
}
