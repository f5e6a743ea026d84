package storetest

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pipelined/pipelined/internal/store"
)

var pipelineTests = []testCase{
	{"PipelineCreateGet", testPipelineCreateGet},
	{"PipelineCreateExisting", testPipelineCreateExisting},
	{"PipelineUpdateVersions", testPipelineUpdateVersions},
	{"PipelineUpdateFnError", testPipelineUpdateFnError},
	{"PipelineUpdateNotFound", testPipelineUpdateNotFound},
	{"PipelineUpdateConcurrent", testPipelineUpdateConcurrent},
	{"PipelineDelete", testPipelineDelete},
	{"PipelineList", testPipelineList},
	{"PipelineListByteOrder", testPipelineListByteOrder},
	{"PipelineCount", testPipelineCount},
}

func newPipeline(name string) store.Pipeline {
	return store.Pipeline{
		Name:          name,
		PipelineType:  "V2",
		ExecutionMode: "QUEUED",
		Definition:    []byte(fmt.Sprintf(`{"name":%q,"stages":[]}`, name)),
	}
}

func mustCreate(t *testing.T, st store.Store, p store.Pipeline, tags ...store.Tag) {
	t.Helper()
	noErr(t, "CreatePipeline "+p.Name, st.CreatePipeline(t.Context(), p, tags))
}

func mustGet(t *testing.T, st store.Store, name string, version int) store.Pipeline {
	t.Helper()
	p, err := st.GetPipeline(t.Context(), name, version)
	noErr(t, fmt.Sprintf("GetPipeline(%q, %d)", name, version), err)
	return p
}

// checkPipeline compares everything but the timestamps.
func checkPipeline(t *testing.T, what string, got, want store.Pipeline) {
	t.Helper()
	if got.Name != want.Name || got.Version != want.Version ||
		got.PipelineType != want.PipelineType || got.ExecutionMode != want.ExecutionMode ||
		!equalBytes(got.Definition, want.Definition) {
		t.Errorf("%s = {%q v%d %s %s %s}, want {%q v%d %s %s %s}", what,
			got.Name, got.Version, got.PipelineType, got.ExecutionMode, got.Definition,
			want.Name, want.Version, want.PipelineType, want.ExecutionMode, want.Definition)
	}
}

func testPipelineCreateGet(t *testing.T, s *suite) {
	st := s.open(t)
	ctx := t.Context()

	p := newPipeline("p1")
	// The store assigns these; the arguments are ignored.
	p.Version = 7
	p.Created = time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	p.Updated = p.Created
	w := during()
	mustCreate(t, st, p)
	w.done()

	want := p
	want.Version = 1
	for _, v := range []int{0, 1} {
		got := mustGet(t, st, "p1", v)
		checkPipeline(t, fmt.Sprintf("GetPipeline(p1, %d)", v), got, want)
		w.check(t, "Created", got.Created)
		if !got.Updated.Equal(got.Created) {
			t.Errorf("version 1: Updated = %v, want Created = %v", got.Updated, got.Created)
		}
	}

	for _, v := range []int{2, -1} {
		_, err := st.GetPipeline(ctx, "p1", v)
		wantErr(t, fmt.Sprintf("GetPipeline(p1, %d)", v), err, store.ErrNotFound)
	}
	for _, v := range []int{0, 1} {
		_, err := st.GetPipeline(ctx, "nope", v)
		wantErr(t, fmt.Sprintf("GetPipeline(nope, %d)", v), err, store.ErrNotFound)
	}

	// Definition round-trips byte for byte, however large.
	big := newPipeline("big")
	big.Definition = []byte(`{"stages":[` + strings.Repeat(`{"k":"0123456789abcdef"}, `, 20000) + `{}]}`)
	mustCreate(t, st, big)
	if got := mustGet(t, st, "big", 0); !equalBytes(got.Definition, big.Definition) {
		t.Errorf("large Definition: got %d bytes, want %d", len(got.Definition), len(big.Definition))
	}
}

func testPipelineCreateExisting(t *testing.T, s *suite) {
	st := s.open(t)
	ctx := t.Context()
	p := newPipeline("p1")
	mustCreate(t, st, p, store.Tag{Key: "a", Value: "1"})

	again := p
	again.Definition = []byte(`{"other":true}`)
	err := st.CreatePipeline(ctx, again, []store.Tag{{Key: "b", Value: "2"}})
	wantErr(t, "second CreatePipeline", err, store.ErrAlreadyExists)

	// Nothing of the failed create was written.
	got := mustGet(t, st, "p1", 0)
	checkPipeline(t, "after failed create", got, store.Pipeline{
		Name: "p1", Version: 1, PipelineType: p.PipelineType, ExecutionMode: p.ExecutionMode, Definition: p.Definition,
	})
	tags, err := st.Tags(ctx, store.PipelineResource("p1"))
	noErr(t, "Tags", err)
	checkTags(t, "tags after failed create", tags, []store.Tag{{Key: "a", Value: "1"}})
}

func testPipelineUpdateVersions(t *testing.T, s *suite) {
	st := s.open(t)
	ctx := t.Context()
	mustCreate(t, st, newPipeline("p1"))
	v1 := mustGet(t, st, "p1", 1)
	// Let the clock move on, so that keeping Created is observable even at
	// millisecond precision.
	time.Sleep(5 * time.Millisecond)

	want := []store.Pipeline{v1}
	for v := 2; v <= 4; v++ {
		calls := 0
		w := during()
		got, err := st.UpdatePipeline(ctx, "p1", func(latest store.Pipeline) (store.Pipeline, error) {
			calls++
			// fn sees the latest version, Definition included.
			checkPipeline(t, "fn's latest", latest, want[len(want)-1])
			next := latest
			next.Definition = []byte(fmt.Sprintf(`{"v":%d}`, v))
			next.ExecutionMode = []string{"SUPERSEDED", "QUEUED", "PARALLEL"}[v%3]
			// The store assigns these; fn's values are ignored.
			next.Name = "renamed"
			next.Version = 100
			next.Created = time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
			next.Updated = next.Created
			return next, nil
		})
		w.done()
		noErr(t, fmt.Sprintf("UpdatePipeline to v%d", v), err)
		if calls < 1 {
			t.Fatalf("UpdatePipeline did not call fn")
		}
		exp := store.Pipeline{
			Name: "p1", Version: v, PipelineType: "V2",
			ExecutionMode: []string{"SUPERSEDED", "QUEUED", "PARALLEL"}[v%3],
			Definition:    []byte(fmt.Sprintf(`{"v":%d}`, v)),
		}
		checkPipeline(t, "UpdatePipeline's result", got, exp)
		if !sameTime(got.Created, v1.Created) {
			t.Errorf("v%d Created = %v, want version 1's %v", v, got.Created, v1.Created)
		}
		w.check(t, "Updated", got.Updated)
		if got.Updated.Before(want[len(want)-1].Updated.Add(-time.Millisecond)) {
			t.Errorf("v%d Updated = %v, before the previous version's %v", v, got.Updated, want[len(want)-1].Updated)
		}
		stored := mustGet(t, st, "p1", v)
		checkPipeline(t, "stored version", stored, exp)
		if !sameTime(stored.Created, got.Created) || !sameTime(stored.Updated, got.Updated) {
			t.Errorf("stored v%d times = %v/%v, UpdatePipeline returned %v/%v",
				v, stored.Created, stored.Updated, got.Created, got.Updated)
		}
		want = append(want, stored)
	}

	// Every version stays readable as it was; 0 is the latest.
	for _, w := range want {
		got := mustGet(t, st, "p1", w.Version)
		checkPipeline(t, fmt.Sprintf("version %d", w.Version), got, w)
		if !got.Created.Equal(w.Created) || !got.Updated.Equal(w.Updated) {
			t.Errorf("version %d times changed: %v/%v, were %v/%v", w.Version, got.Created, got.Updated, w.Created, w.Updated)
		}
	}
	checkPipeline(t, "latest", mustGet(t, st, "p1", 0), want[len(want)-1])
	if _, err := st.GetPipeline(ctx, "p1", 5); !errorsIs(err, store.ErrNotFound) {
		t.Errorf("GetPipeline(p1, 5): err = %v, want ErrNotFound", err)
	}
}

func testPipelineUpdateFnError(t *testing.T, s *suite) {
	st := s.open(t)
	ctx := t.Context()
	p := newPipeline("p1")
	mustCreate(t, st, p)

	_, err := st.UpdatePipeline(ctx, "p1", func(latest store.Pipeline) (store.Pipeline, error) {
		latest.Definition = []byte(`{"never":"stored"}`)
		return latest, fmt.Errorf("wrapped: %w", errFn)
	})
	wantErr(t, "UpdatePipeline with failing fn", err, errFn)

	checkPipeline(t, "latest after failed update", mustGet(t, st, "p1", 0), store.Pipeline{
		Name: "p1", Version: 1, PipelineType: p.PipelineType, ExecutionMode: p.ExecutionMode, Definition: p.Definition,
	})
	_, err = st.GetPipeline(ctx, "p1", 2)
	wantErr(t, "GetPipeline(p1, 2) after failed update", err, store.ErrNotFound)

	// The pipeline is still updatable: the failed call left no lock behind.
	got, err := st.UpdatePipeline(ctx, "p1", func(latest store.Pipeline) (store.Pipeline, error) { return latest, nil })
	noErr(t, "UpdatePipeline after failed update", err)
	if got.Version != 2 {
		t.Errorf("next update made version %d, want 2", got.Version)
	}
}

func testPipelineUpdateNotFound(t *testing.T, s *suite) {
	st := s.open(t)
	called := false
	_, err := st.UpdatePipeline(t.Context(), "nope", func(latest store.Pipeline) (store.Pipeline, error) {
		called = true
		return latest, nil
	})
	wantErr(t, "UpdatePipeline(nope)", err, store.ErrNotFound)
	if called {
		t.Error("UpdatePipeline called fn for a pipeline that does not exist")
	}
	if _, err := st.GetPipeline(t.Context(), "nope", 0); !errorsIs(err, store.ErrNotFound) {
		t.Errorf("GetPipeline(nope) after UpdatePipeline: err = %v, want ErrNotFound", err)
	}
}

// testPipelineUpdateConcurrent races UpdatePipeline from two handles and
// several goroutines each. Every call must succeed or fail with ErrConflict;
// the successful ones must have made exactly the versions 2..N+1, each one
// holding exactly the output of the call that returned it, computed from the
// version just before it (no lost update).
func testPipelineUpdateConcurrent(t *testing.T, s *suite) {
	a, b := s.openPair(t)
	ctx := t.Context()
	mustCreate(t, a, newPipeline("p1"))

	const (
		goroutines = 6 // per handle
		calls      = 5 // per goroutine
	)
	type body struct {
		Call string `json:"call"`
		Prev int    `json:"prev"`
	}
	var (
		mu        sync.Mutex
		won       = map[int]string{} // version -> call
		conflicts int
		wg        sync.WaitGroup
	)
	for h, st := range []store.Store{a, b} {
		for g := range goroutines {
			wg.Go(func() {
				for c := range calls {
					call := fmt.Sprintf("h%dg%dc%d", h, g, c)
					got, err := st.UpdatePipeline(ctx, "p1", func(latest store.Pipeline) (store.Pipeline, error) {
						def, err := json.Marshal(body{Call: call, Prev: latest.Version})
						if err != nil {
							return store.Pipeline{}, err
						}
						latest.Definition = def
						return latest, nil
					})
					mu.Lock()
					switch {
					case err == nil:
						if prev, dup := won[got.Version]; dup {
							t.Errorf("version %d returned to both %s and %s", got.Version, prev, call)
						}
						won[got.Version] = call
					case errorsIs(err, store.ErrConflict):
						conflicts++
					default:
						t.Errorf("UpdatePipeline (%s): %v, want nil or ErrConflict", call, err)
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	t.Logf("%d updates succeeded, %d conflicted", len(won), conflicts)
	if len(won) == 0 {
		t.Fatal("no update succeeded")
	}

	latest := mustGet(t, b, "p1", 0)
	if latest.Version != len(won)+1 {
		t.Errorf("latest version = %d, want %d (1 + successful updates)", latest.Version, len(won)+1)
	}
	for v := 2; v <= len(won)+1; v++ {
		call, ok := won[v]
		if !ok {
			t.Errorf("no successful call returned version %d (gap)", v)
			continue
		}
		p := mustGet(t, a, "p1", v)
		var got body
		if err := json.Unmarshal(p.Definition, &got); err != nil {
			t.Fatalf("version %d: bad Definition %q: %v", v, p.Definition, err)
		}
		if got.Call != call {
			t.Errorf("version %d holds the output of %s, but was returned to %s", v, got.Call, call)
		}
		if got.Prev != v-1 {
			t.Errorf("version %d was computed from version %d, want %d (lost update)", v, got.Prev, v-1)
		}
	}
	if _, err := a.GetPipeline(ctx, "p1", len(won)+2); !errorsIs(err, store.ErrNotFound) {
		t.Errorf("GetPipeline past the last version: err = %v, want ErrNotFound", err)
	}
}

func testPipelineDelete(t *testing.T, s *suite) {
	st := s.open(t)
	ctx := t.Context()
	mustCreate(t, st, newPipeline("p1"), store.Tag{Key: "a", Value: "1"})
	// p10: its resource key has p1's as a prefix.
	mustCreate(t, st, newPipeline("p10"), store.Tag{Key: "b", Value: "2"})
	setTags(t, st, resWebhook, store.Tag{Key: "w", Value: "1"})
	for range 2 {
		_, err := st.UpdatePipeline(ctx, "p1", func(p store.Pipeline) (store.Pipeline, error) { return p, nil })
		noErr(t, "UpdatePipeline", err)
	}

	noErr(t, "DeletePipeline(p1)", st.DeletePipeline(ctx, "p1"))
	for v := range 4 {
		_, err := st.GetPipeline(ctx, "p1", v)
		wantErr(t, fmt.Sprintf("GetPipeline(p1, %d) after delete", v), err, store.ErrNotFound)
	}
	tags, err := st.Tags(ctx, store.PipelineResource("p1"))
	noErr(t, "Tags(p1)", err)
	checkTags(t, "tags after delete", tags, nil)
	n, err := st.CountPipelines(ctx)
	noErr(t, "CountPipelines", err)
	if n != 1 {
		t.Errorf("CountPipelines after delete = %d, want 1", n)
	}
	list, err := st.ListPipelines(ctx, "", 10)
	noErr(t, "ListPipelines", err)
	if names := pipelineNames(list); !slices.Equal(names, []string{"p10"}) {
		t.Errorf("ListPipelines after delete = %q, want [p10]", names)
	}
	// The other pipeline is untouched.
	mustGet(t, st, "p10", 1)
	tags, err = st.Tags(ctx, store.PipelineResource("p10"))
	noErr(t, "Tags(p10)", err)
	checkTags(t, "other pipeline's tags", tags, []store.Tag{{Key: "b", Value: "2"}})
	tags, err = st.Tags(ctx, resWebhook)
	noErr(t, "Tags", err)
	checkTags(t, "other resource's tags", tags, []store.Tag{{Key: "w", Value: "1"}})

	wantErr(t, "second DeletePipeline(p1)", st.DeletePipeline(ctx, "p1"), store.ErrNotFound)
	wantErr(t, "DeletePipeline(nope)", st.DeletePipeline(ctx, "nope"), store.ErrNotFound)

	// The name is free again, and starts over at version 1 with new tags.
	re := newPipeline("p1")
	re.Definition = []byte(`{"recreated":true}`)
	mustCreate(t, st, re, store.Tag{Key: "c", Value: "3"})
	checkPipeline(t, "re-created", mustGet(t, st, "p1", 0), store.Pipeline{
		Name: "p1", Version: 1, PipelineType: re.PipelineType, ExecutionMode: re.ExecutionMode, Definition: re.Definition,
	})
	_, err = st.GetPipeline(ctx, "p1", 2)
	wantErr(t, "GetPipeline(p1, 2) after re-create", err, store.ErrNotFound)
	tags, err = st.Tags(ctx, store.PipelineResource("p1"))
	noErr(t, "Tags(p1)", err)
	checkTags(t, "tags after re-create", tags, []store.Tag{{Key: "c", Value: "3"}})
}

func pipelineNames(ps []store.Pipeline) []string {
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.Name
	}
	return names
}

func testPipelineList(t *testing.T, s *suite) {
	st := s.open(t)
	ctx := t.Context()

	empty, err := st.ListPipelines(ctx, "", 10)
	noErr(t, "ListPipelines on an empty store", err)
	if len(empty) != 0 {
		t.Errorf("ListPipelines on an empty store = %d pipelines", len(empty))
	}

	var names []string
	for i := range 25 {
		names = append(names, fmt.Sprintf("pipe-%02d", i))
	}
	created := slices.Clone(names)
	rand.Shuffle(len(created), func(i, j int) { created[i], created[j] = created[j], created[i] })
	for _, n := range created {
		mustCreate(t, st, newPipeline(n))
	}
	// Give some pipelines later versions, with a different mode.
	latest := map[string]store.Pipeline{}
	for i, n := range names {
		for range i % 3 {
			_, err := st.UpdatePipeline(ctx, n, func(p store.Pipeline) (store.Pipeline, error) {
				p.ExecutionMode = "PARALLEL"
				p.Definition = append(p.Definition, ' ')
				return p, nil
			})
			noErr(t, "UpdatePipeline "+n, err)
		}
		latest[n] = mustGet(t, st, n, 0)
	}

	// Page through with limit 10: 10, 10, 5, then nothing.
	var (
		all   []store.Pipeline
		after string
		sizes []int
	)
	for range 10 {
		page, err := st.ListPipelines(ctx, after, 10)
		noErr(t, fmt.Sprintf("ListPipelines(%q, 10)", after), err)
		sizes = append(sizes, len(page))
		if len(page) == 0 {
			break
		}
		all = append(all, page...)
		after = page[len(page)-1].Name
	}
	if !slices.Equal(sizes, []int{10, 10, 5, 0}) {
		t.Errorf("page sizes = %v, want [10 10 5 0]", sizes)
	}
	if got := pipelineNames(all); !slices.Equal(got, names) {
		t.Fatalf("listed names = %q, want %q", got, names)
	}
	for _, p := range all {
		want := latest[p.Name]
		if len(p.Definition) != 0 {
			t.Errorf("ListPipelines returned a Definition for %s", p.Name)
		}
		want.Definition = nil
		checkPipeline(t, "listed "+p.Name, p, want)
		if !p.Created.Equal(want.Created) || !p.Updated.Equal(want.Updated) {
			t.Errorf("listed %s times = %v/%v, GetPipeline says %v/%v", p.Name, p.Created, p.Updated, want.Created, want.Updated)
		}
	}

	// after need not be a stored name; the page starts after it.
	page, err := st.ListPipelines(ctx, "pipe-10a", 3)
	noErr(t, "ListPipelines(pipe-10a, 3)", err)
	if got := pipelineNames(page); !slices.Equal(got, []string{"pipe-11", "pipe-12", "pipe-13"}) {
		t.Errorf("ListPipelines(pipe-10a, 3) = %q, want [pipe-11 pipe-12 pipe-13]", got)
	}
	// A limit past the end returns the rest.
	page, err = st.ListPipelines(ctx, "pipe-20", 100)
	noErr(t, "ListPipelines(pipe-20, 100)", err)
	if got := pipelineNames(page); !slices.Equal(got, names[21:]) {
		t.Errorf("ListPipelines(pipe-20, 100) = %q, want %q", got, names[21:])
	}
	page, err = st.ListPipelines(ctx, "pipe-24", 10)
	noErr(t, "ListPipelines(pipe-24, 10)", err)
	if len(page) != 0 {
		t.Errorf("ListPipelines after the last name = %q, want none", pipelineNames(page))
	}
}

// testPipelineListByteOrder checks that names sort in byte order (Go's
// string order), which on PostgreSQL needs COLLATE "C".
func testPipelineListByteOrder(t *testing.T, s *suite) {
	st := s.open(t)
	ctx := t.Context()
	names := []string{"a_b", "B", "a", "Z9", "a-b", ".z", "a.b", "_x", "-y", "b", "A", "aB", "ab", "9", "@at"}
	for _, n := range names {
		mustCreate(t, st, newPipeline(n))
	}
	slices.Sort(names)

	var got []string
	after := ""
	for {
		page, err := st.ListPipelines(ctx, after, 4)
		noErr(t, "ListPipelines", err)
		if len(page) == 0 {
			break
		}
		got = append(got, pipelineNames(page)...)
		after = page[len(page)-1].Name
		if len(got) > len(names) {
			break
		}
	}
	if !slices.Equal(got, names) {
		t.Errorf("ListPipelines order = %q, want byte order %q", got, names)
	}
}

func testPipelineCount(t *testing.T, s *suite) {
	st := s.open(t)
	ctx := t.Context()
	count := func(want int) {
		t.Helper()
		n, err := st.CountPipelines(ctx)
		noErr(t, "CountPipelines", err)
		if n != want {
			t.Errorf("CountPipelines = %d, want %d", n, want)
		}
	}
	count(0)
	for _, n := range []string{"a", "b", "c"} {
		mustCreate(t, st, newPipeline(n))
	}
	// Versions do not count, pipelines do.
	_, err := st.UpdatePipeline(ctx, "a", func(p store.Pipeline) (store.Pipeline, error) { return p, nil })
	noErr(t, "UpdatePipeline", err)
	count(3)
	noErr(t, "DeletePipeline", st.DeletePipeline(ctx, "b"))
	count(2)
}
