package storetest

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pipelined/pipelined/internal/store"
)

// store.Counter: the counts metrics read. Both stores implement it.
var countTests = []testCase{
	{"CountOpenJobs", testCountOpenJobs},
	{"CountTimers", testCountTimers},
}

func counter(t *testing.T, st store.Store) store.Counter {
	t.Helper()
	c, ok := st.(store.Counter)
	if !ok {
		t.Fatalf("%T does not implement store.Counter", st)
	}
	return c
}

func testCountOpenJobs(t *testing.T, s *suite) {
	st := s.open(t)
	c := counter(t, st)
	got, err := c.OpenJobs(t.Context())
	noErr(t, "OpenJobs (empty)", err)
	if len(got) != 0 {
		t.Errorf("OpenJobs of an empty store = %v", got)
	}
	build, deploy := atKey("Build", "Custom", "Tool", "1"), atKey("Deploy", "ThirdParty", "Ship", "2")
	putJobs(t, st, "p1",
		newJob("a", build, "", store.JobQueued, engineT0),
		newJob("b", build, "", store.JobQueued, engineT0),
		newJob("c", build, "", store.JobDispatched, engineT0),
		newJob("d", build, "", "InProgress", engineT0),
		newJob("e", build, "", "Succeeded", engineT0),
		newJob("f", build, "", "Failed", engineT0),
	)
	putJobs(t, st, "p2",
		newJob("g", deploy, "", "InProgress", engineT0),
		newJob("h", deploy, "", "TimedOut", engineT0),
		newJob("i", deploy, "", "Abandoned", engineT0),
	)
	got, err = c.OpenJobs(t.Context())
	noErr(t, "OpenJobs", err)
	key := func(j store.JobCount) string {
		return strings.Join([]string{j.ActionType.Category, j.ActionType.Owner, j.ActionType.Provider, j.ActionType.Version, j.Status}, "/")
	}
	slices.SortFunc(got, func(a, b store.JobCount) int { return strings.Compare(key(a), key(b)) })
	jc := func(k store.ActionTypeKey, status string, n int) store.JobCount {
		return store.JobCount{ActionType: k, Status: status, Count: n}
	}
	want := []store.JobCount{
		jc(build, "Dispatched", 1), jc(build, "InProgress", 1), jc(build, "Queued", 2),
		jc(deploy, "InProgress", 1),
	}
	if !slices.Equal(got, want) {
		t.Errorf("OpenJobs = %v, want %v", got, want)
	}
}

func testCountTimers(t *testing.T, s *suite) {
	st := s.open(t)
	c := counter(t, st)
	inPipeline(t, st, "p1", func(tx store.PipelineTx) error {
		for _, id := range []string{"a1:timeout", "a2:timeout", "a3:job-timeout", "timeout", "a4:timeout:x"} {
			if err := tx.PutTimer(store.Timer{ID: id, Due: engineT0.Add(time.Hour), Payload: []byte(`{}`)}); err != nil {
				return err
			}
		}
		return nil
	})
	inPipeline(t, st, "p2", func(tx store.PipelineTx) error {
		return tx.PutTimer(store.Timer{ID: "b1:timeout", Due: engineT0, Payload: []byte(`{}`)})
	})
	for suffix, want := range map[string]int{":timeout": 3, "timeout": 5, ":job-timeout": 1, "%": 0, "_timeout": 0, ":x": 1} {
		n, err := c.CountTimers(t.Context(), suffix)
		noErr(t, "CountTimers("+suffix+")", err)
		if n != want {
			t.Errorf("CountTimers(%q) = %d, want %d", suffix, n, want)
		}
	}
	if _, err := c.CountTimers(t.Context(), ""); err == nil {
		t.Error("CountTimers(\"\") succeeded")
	}
	for suffix, want := range map[string]map[string]int{":timeout": {"p1": 2, "p2": 1}, ":job-timeout": {"p1": 1}, "%": {}} {
		got, err := c.CountTimersByPipeline(t.Context(), suffix)
		noErr(t, "CountTimersByPipeline("+suffix+")", err)
		if !maps.Equal(got, want) {
			t.Errorf("CountTimersByPipeline(%q) = %v, want %v", suffix, got, want)
		}
	}
}
