package storetest

import (
	"fmt"
	"slices"
	"testing"

	"github.com/pipelined/pipelined/internal/store"
)

var tagTests = []testCase{
	{"TagsSortedAndReplaced", testTagsSortedAndReplaced},
	{"TagsUpdateFnError", testTagsUpdateFnError},
	{"TagsOfPipeline", testTagsOfPipeline},
}

// Resource keys of the tag tests; the store treats them as opaque.
var (
	resWebhook = "webhook/hook1"
	resOther   = store.ActionTypeResource(atKey("Build", "Custom", "Tool", "1"))
)

func checkTags(t *testing.T, what string, got, want []store.Tag) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func setTags(t *testing.T, st store.Store, resource string, tags ...store.Tag) {
	t.Helper()
	noErr(t, "UpdateTags "+resource, st.UpdateTags(t.Context(), resource, func([]store.Tag) ([]store.Tag, error) {
		return tags, nil
	}))
}

func testTagsSortedAndReplaced(t *testing.T, s *suite) {
	st := s.open(t)
	ctx := t.Context()

	tags, err := st.Tags(ctx, resWebhook)
	noErr(t, "Tags of an untagged resource", err)
	checkTags(t, "tags of an untagged resource", tags, nil)

	// fn gets the current tags (none yet) and returns them in any order.
	noErr(t, "UpdateTags", st.UpdateTags(ctx, resWebhook, func(current []store.Tag) ([]store.Tag, error) {
		if len(current) != 0 {
			t.Errorf("fn's current = %v, want none", current)
		}
		return []store.Tag{{Key: "env", Value: "prod"}, {Key: "Team", Value: "x"}, {Key: "app", Value: ""}, {Key: "b", Value: "2"}}, nil
	}))
	setTags(t, st, resOther, store.Tag{Key: "other", Value: "1"})

	sorted := []store.Tag{{Key: "Team", Value: "x"}, {Key: "app", Value: ""}, {Key: "b", Value: "2"}, {Key: "env", Value: "prod"}}
	tags, err = st.Tags(ctx, resWebhook)
	noErr(t, "Tags", err)
	checkTags(t, "tags (sorted by key, byte order)", tags, sorted)

	// UpdateTags replaces the whole set; fn sees it sorted.
	noErr(t, "UpdateTags", st.UpdateTags(ctx, resWebhook, func(current []store.Tag) ([]store.Tag, error) {
		checkTags(t, "fn's current", current, sorted)
		return []store.Tag{{Key: "env", Value: "dev"}, {Key: "new", Value: "n"}}, nil
	}))
	tags, err = st.Tags(ctx, resWebhook)
	noErr(t, "Tags", err)
	checkTags(t, "tags after replace", tags, []store.Tag{{Key: "env", Value: "dev"}, {Key: "new", Value: "n"}})

	// Replacing with nothing removes them all.
	setTags(t, st, resWebhook)
	tags, err = st.Tags(ctx, resWebhook)
	noErr(t, "Tags", err)
	checkTags(t, "tags after removing all", tags, nil)

	// Other resources keep theirs throughout.
	tags, err = st.Tags(ctx, resOther)
	noErr(t, "Tags", err)
	checkTags(t, "other resource's tags", tags, []store.Tag{{Key: "other", Value: "1"}})
}

func testTagsUpdateFnError(t *testing.T, s *suite) {
	st := s.open(t)
	ctx := t.Context()
	want := []store.Tag{{Key: "a", Value: "1"}, {Key: "b", Value: "2"}}
	setTags(t, st, resWebhook, want...)

	err := st.UpdateTags(ctx, resWebhook, func(current []store.Tag) ([]store.Tag, error) {
		return []store.Tag{{Key: "never", Value: "stored"}}, fmt.Errorf("wrapped: %w", errFn)
	})
	wantErr(t, "UpdateTags with failing fn", err, errFn)
	tags, err := st.Tags(ctx, resWebhook)
	noErr(t, "Tags", err)
	checkTags(t, "tags after failed update", tags, want)
}

// testTagsOfPipeline checks the tags CreatePipeline stores: they are the
// tags of store.PipelineResource(p.Name), and no other resource's.
func testTagsOfPipeline(t *testing.T, s *suite) {
	st := s.open(t)
	ctx := t.Context()
	mustCreate(t, st, newPipeline("p1"), store.Tag{Key: "z", Value: "26"}, store.Tag{Key: "a", Value: "1"})
	mustCreate(t, st, newPipeline("p2"))

	tags, err := st.Tags(ctx, store.PipelineResource("p1"))
	noErr(t, "Tags(p1)", err)
	checkTags(t, "pipeline's tags", tags, []store.Tag{{Key: "a", Value: "1"}, {Key: "z", Value: "26"}})
	tags, err = st.Tags(ctx, store.PipelineResource("p2"))
	noErr(t, "Tags(p2)", err)
	checkTags(t, "untagged pipeline's tags", tags, nil)

	// The key is PipelineResource's, not the bare name.
	tags, err = st.Tags(ctx, "p1")
	noErr(t, "Tags(p1)", err)
	checkTags(t, "tags of the bare name", tags, nil)

	setTags(t, st, store.PipelineResource("p1"), store.Tag{Key: "m", Value: "13"})
	tags, err = st.Tags(ctx, store.PipelineResource("p1"))
	noErr(t, "Tags(p1)", err)
	checkTags(t, "pipeline's tags after UpdateTags", tags, []store.Tag{{Key: "m", Value: "13"}})

	// Updating the pipeline leaves its tags alone.
	_, err = st.UpdatePipeline(ctx, "p1", func(p store.Pipeline) (store.Pipeline, error) { return p, nil })
	noErr(t, "UpdatePipeline", err)
	tags, err = st.Tags(ctx, store.PipelineResource("p1"))
	noErr(t, "Tags(p1)", err)
	checkTags(t, "pipeline's tags after UpdatePipeline", tags, []store.Tag{{Key: "m", Value: "13"}})
}
