package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/pipelined/pipelined/internal/store"
)

var actionTypeTests = []testCase{
	{"ActionTypeCreate", testActionTypeCreate},
	{"ActionTypeNilLeavesUnchanged", testActionTypeNilLeavesUnchanged},
	{"ActionTypeReplace", testActionTypeReplace},
	{"ActionTypeDeleteAndRestore", testActionTypeDeleteAndRestore},
	{"ActionTypeFnError", testActionTypeFnError},
	{"ActionTypeGetNotFound", testActionTypeGetNotFound},
	{"ActionTypeList", testActionTypeList},
}

func atKey(category, owner, provider, version string) store.ActionTypeKey {
	return store.ActionTypeKey{Category: category, Owner: owner, Provider: provider, Version: version}
}

// putActionType stores an action type with the given definition and
// deleted mark, whatever is there.
func putActionType(t *testing.T, st store.Store, key store.ActionTypeKey, def string, deleted bool) *store.ActionType {
	t.Helper()
	at, err := st.PutActionType(t.Context(), key, func(*store.ActionType) (*store.ActionType, error) {
		return &store.ActionType{ActionTypeKey: key, Definition: []byte(def), Deleted: deleted}, nil
	})
	noErr(t, fmt.Sprintf("PutActionType %v", key), err)
	if at == nil {
		t.Fatalf("PutActionType %v returned nil after storing", key)
	}
	return at
}

func mustGetActionType(t *testing.T, st store.Store, key store.ActionTypeKey) store.ActionType {
	t.Helper()
	at, err := st.GetActionType(t.Context(), key)
	noErr(t, fmt.Sprintf("GetActionType %v", key), err)
	return at
}

func checkActionType(t *testing.T, what string, got, want store.ActionType) {
	t.Helper()
	if got.ActionTypeKey != want.ActionTypeKey || got.Deleted != want.Deleted || !equalBytes(got.Definition, want.Definition) {
		t.Errorf("%s = {%v deleted=%v %s}, want {%v deleted=%v %s}", what,
			got.ActionTypeKey, got.Deleted, got.Definition, want.ActionTypeKey, want.Deleted, want.Definition)
	}
	if !want.Created.IsZero() && !sameTime(got.Created, want.Created) {
		t.Errorf("%s Created = %v, want %v", what, got.Created, want.Created)
	}
	if !want.Updated.IsZero() && !sameTime(got.Updated, want.Updated) {
		t.Errorf("%s Updated = %v, want %v", what, got.Updated, want.Updated)
	}
}

func testActionTypeCreate(t *testing.T, s *suite) {
	st := s.open(t)
	key := atKey("Build", "Custom", "Tool", "1")
	w := during()
	got, err := st.PutActionType(t.Context(), key, func(current *store.ActionType) (*store.ActionType, error) {
		if current != nil {
			t.Errorf("fn's current = %+v, want nil", current)
		}
		// The store uses the key it was given and assigns the times.
		return &store.ActionType{
			ActionTypeKey: atKey("x", "y", "z", "9"),
			Definition:    []byte(`{"v":1}`),
			Created:       time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC),
		}, nil
	})
	w.done()
	noErr(t, "PutActionType", err)
	if got == nil {
		t.Fatal("PutActionType returned nil after creating")
	}
	checkActionType(t, "PutActionType's result", *got, store.ActionType{ActionTypeKey: key, Definition: []byte(`{"v":1}`)})
	w.check(t, "Created", got.Created)
	if !got.Updated.Equal(got.Created) {
		t.Errorf("new action type: Updated = %v, want Created = %v", got.Updated, got.Created)
	}
	checkActionType(t, "stored", mustGetActionType(t, st, key), *got)
	if _, err := st.GetActionType(t.Context(), atKey("x", "y", "z", "9")); !errorsIs(err, store.ErrNotFound) {
		t.Errorf("GetActionType of fn's key: err = %v, want ErrNotFound", err)
	}
}

func testActionTypeNilLeavesUnchanged(t *testing.T, s *suite) {
	st := s.open(t)
	ctx := t.Context()

	// None stored, nil returned: still none.
	key := atKey("Build", "Custom", "Tool", "1")
	got, err := st.PutActionType(ctx, key, func(*store.ActionType) (*store.ActionType, error) { return nil, nil })
	noErr(t, "PutActionType returning nil", err)
	if got != nil {
		t.Errorf("PutActionType returning nil on none = %+v, want nil", got)
	}
	_, err = st.GetActionType(ctx, key)
	wantErr(t, "GetActionType after nil put", err, store.ErrNotFound)

	// One stored, nil returned: unchanged, and returned as stored.
	stored := putActionType(t, st, key, `{"v":1}`, false)
	got, err = st.PutActionType(ctx, key, func(current *store.ActionType) (*store.ActionType, error) {
		if current == nil {
			t.Error("fn's current = nil, want the stored action type")
		}
		return nil, nil
	})
	noErr(t, "PutActionType returning nil", err)
	if got == nil {
		t.Fatal("PutActionType returning nil on a stored one = nil, want the stored one")
	}
	checkActionType(t, "PutActionType's result", *got, *stored)
	checkActionType(t, "stored", mustGetActionType(t, st, key), *stored)
}

func testActionTypeReplace(t *testing.T, s *suite) {
	st := s.open(t)
	key := atKey("Deploy", "ThirdParty", "Thing", "2")
	first := putActionType(t, st, key, `{"v":1}`, false)
	time.Sleep(5 * time.Millisecond) // so that Updated can differ from Created

	w := during()
	got, err := st.PutActionType(t.Context(), key, func(current *store.ActionType) (*store.ActionType, error) {
		if current == nil {
			t.Error("fn's current = nil, want the stored action type")
			return nil, errFn
		}
		checkActionType(t, "fn's current", *current, *first)
		next := *current
		next.Definition = []byte(`{"v":2}`)
		return &next, nil
	})
	w.done()
	noErr(t, "PutActionType", err)
	want := store.ActionType{ActionTypeKey: key, Definition: []byte(`{"v":2}`), Created: first.Created}
	checkActionType(t, "replaced", *got, want)
	w.check(t, "Updated", got.Updated)
	if got.Updated.Before(first.Updated) {
		t.Errorf("Updated went back: %v, was %v", got.Updated, first.Updated)
	}
	want.Updated = got.Updated
	checkActionType(t, "stored", mustGetActionType(t, st, key), want)
}

func testActionTypeDeleteAndRestore(t *testing.T, s *suite) {
	st := s.open(t)
	ctx := t.Context()
	key := atKey("Build", "Custom", "Tool", "1")
	first := putActionType(t, st, key, `{"v":1}`, false)

	// Delete: mark it.
	got, err := st.PutActionType(ctx, key, func(current *store.ActionType) (*store.ActionType, error) {
		if current == nil {
			t.Error("fn's current = nil, want the stored action type")
			return nil, errFn
		}
		next := *current
		next.Deleted = true
		return &next, nil
	})
	noErr(t, "PutActionType marking deleted", err)
	want := store.ActionType{ActionTypeKey: key, Definition: []byte(`{"v":1}`), Deleted: true, Created: first.Created}
	checkActionType(t, "deleted", *got, want)
	checkActionType(t, "GetActionType of a deleted one", mustGetActionType(t, st, key), want)
	list, err := st.ListActionTypes(ctx, "", nil, 10)
	noErr(t, "ListActionTypes", err)
	if len(list) != 0 {
		t.Errorf("ListActionTypes lists deleted action types: %v", list)
	}

	// fn sees the deleted one, and restores it.
	_, err = st.PutActionType(ctx, key, func(current *store.ActionType) (*store.ActionType, error) {
		if current == nil {
			t.Error("fn's current = nil for a deleted action type, want it with Deleted")
			return nil, errFn
		}
		if !current.Deleted {
			t.Error("fn's current.Deleted = false, want true")
		}
		next := *current
		next.Deleted = false
		return &next, nil
	})
	noErr(t, "PutActionType restoring", err)
	want.Deleted = false
	checkActionType(t, "restored", mustGetActionType(t, st, key), want)
	list, err = st.ListActionTypes(ctx, "", nil, 10)
	noErr(t, "ListActionTypes", err)
	if len(list) != 1 || list[0].ActionTypeKey != key {
		t.Errorf("ListActionTypes after restore = %v, want [%v]", list, key)
	}
}

func testActionTypeFnError(t *testing.T, s *suite) {
	st := s.open(t)
	ctx := t.Context()
	fail := func(*store.ActionType) (*store.ActionType, error) {
		return &store.ActionType{Definition: []byte(`{"never":"stored"}`)}, fmt.Errorf("wrapped: %w", errFn)
	}

	none := atKey("Build", "Custom", "None", "1")
	_, err := st.PutActionType(ctx, none, fail)
	wantErr(t, "PutActionType with failing fn", err, errFn)
	_, err = st.GetActionType(ctx, none)
	wantErr(t, "GetActionType after failed create", err, store.ErrNotFound)

	key := atKey("Build", "Custom", "Tool", "1")
	stored := putActionType(t, st, key, `{"v":1}`, false)
	_, err = st.PutActionType(ctx, key, fail)
	wantErr(t, "PutActionType with failing fn", err, errFn)
	checkActionType(t, "after failed replace", mustGetActionType(t, st, key), *stored)
}

func testActionTypeGetNotFound(t *testing.T, s *suite) {
	st := s.open(t)
	putActionType(t, st, atKey("Build", "Custom", "Tool", "1"), `{}`, false)
	for _, key := range []store.ActionTypeKey{
		atKey("Build", "Custom", "Tool", "2"),
		atKey("Test", "Custom", "Tool", "1"),
		atKey("Build", "ThirdParty", "Tool", "1"),
		atKey("Build", "Custom", "Other", "1"),
		{},
	} {
		_, err := st.GetActionType(t.Context(), key)
		wantErr(t, fmt.Sprintf("GetActionType %v", key), err, store.ErrNotFound)
	}
}

func testActionTypeList(t *testing.T, s *suite) {
	st := s.open(t)
	ctx := t.Context()
	keys := []store.ActionTypeKey{
		atKey("Test", "Custom", "Tool", "1"),
		atKey("Build", "ThirdParty", "Vendor", "1"),
		atKey("Build", "Custom", "Tool", "2"),
		atKey("Build", "Custom", "Tool", "1"),
		atKey("Deploy", "Custom", "Ship", "1"),
		atKey("Build", "Custom", "Alpha", "1"),
		atKey("Source", "ThirdParty", "Repo", "3"),
	}
	deleted := atKey("Build", "Custom", "Gone", "1")
	for _, k := range keys {
		putActionType(t, st, k, fmt.Sprintf(`{"p":%q}`, k.Provider), false)
	}
	putActionType(t, st, deleted, `{}`, true)

	sorted := slices.Clone(keys)
	slices.SortFunc(sorted, compareKeys)
	list := func(owner string, after *store.ActionTypeKey, limit int) []store.ActionTypeKey {
		t.Helper()
		ats, err := st.ListActionTypes(ctx, owner, after, limit)
		noErr(t, "ListActionTypes", err)
		var ks []store.ActionTypeKey
		for _, at := range ats {
			if at.Deleted {
				t.Errorf("ListActionTypes returned deleted %v", at.ActionTypeKey)
			}
			if want := fmt.Sprintf(`{"p":%q}`, at.Provider); string(at.Definition) != want {
				t.Errorf("listed %v Definition = %s, want %s", at.ActionTypeKey, at.Definition, want)
			}
			if at.Created.IsZero() || at.Updated.IsZero() {
				t.Errorf("listed %v has zero timestamps", at.ActionTypeKey)
			}
			ks = append(ks, at.ActionTypeKey)
		}
		return ks
	}

	if got := list("", nil, 100); !slices.Equal(got, sorted) {
		t.Errorf("ListActionTypes(all) = %v, want %v", got, sorted)
	}
	var custom []store.ActionTypeKey
	for _, k := range sorted {
		if k.Owner == "Custom" {
			custom = append(custom, k)
		}
	}
	if got := list("Custom", nil, 100); !slices.Equal(got, custom) {
		t.Errorf("ListActionTypes(Custom) = %v, want %v", got, custom)
	}
	if got := list("AWS", nil, 100); len(got) != 0 {
		t.Errorf("ListActionTypes(AWS) = %v, want none", got)
	}

	// Paging: limit 2, continuing after the last key of each page.
	for _, owner := range []string{"", "Custom"} {
		want := sorted
		if owner != "" {
			want = custom
		}
		var (
			all   []store.ActionTypeKey
			after *store.ActionTypeKey
		)
		for range 10 {
			page := list(owner, after, 2)
			if len(page) > 2 {
				t.Fatalf("ListActionTypes(limit 2) returned %d", len(page))
			}
			if len(page) == 0 {
				break
			}
			all = append(all, page...)
			last := page[len(page)-1]
			after = &last
		}
		if !slices.Equal(all, want) {
			t.Errorf("paged ListActionTypes(%q) = %v, want %v", owner, all, want)
		}
	}

	// after need not be a stored key.
	after := atKey("Build", "Custom", "Tool", "10")
	if got, want := list("", &after, 2), []store.ActionTypeKey{atKey("Build", "Custom", "Tool", "2"), atKey("Build", "ThirdParty", "Vendor", "1")}; !slices.Equal(got, want) {
		t.Errorf("ListActionTypes after %v = %v, want %v", after, got, want)
	}
}

func compareKeys(a, b store.ActionTypeKey) int {
	for _, c := range [][2]string{{a.Category, b.Category}, {a.Owner, b.Owner}, {a.Provider, b.Provider}, {a.Version, b.Version}} {
		if c[0] != c[1] {
			if c[0] < c[1] {
				return -1
			}
			return 1
		}
	}
	return 0
}
