package executions

import (
	"testing"

	"github.com/pipelined/pipelined/internal/engine"
)

func woken(wt *waiter) bool {
	select {
	case <-wt.ch:
		return true
	default:
		return false
	}
}

// TestWakeupsWakeOneWaiterPerJob: a notification of n jobs wakes the n
// oldest waiters of the type and no one else; a woken waiter that leaves
// without looking passes its wake-up on.
func TestWakeupsWakeOneWaiterPerJob(t *testing.T) {
	var w wakeups
	a, b, c := w.wait("T"), w.wait("T"), w.wait("T")
	other := w.wait("U")

	w.wake(engine.ParseJobsNotification(engine.JobsNotification("T", 1)))
	if !woken(a) || woken(b) || woken(c) || woken(other) {
		t.Fatalf("one job woke a=%v b=%v c=%v other=%v, want only a", woken(a), woken(b), woken(c), woken(other))
	}
	// a had already found a job on its own: its wake-up goes to b.
	w.done(a)
	if !woken(b) || woken(c) {
		t.Fatalf("a's unused wake-up: b=%v c=%v, want b", woken(b), woken(c))
	}
	// c gives up without being woken: nothing is passed on.
	w.done(c)
	d := w.wait("T")
	w.wake(engine.ParseJobsNotification(engine.JobsNotification("T", 2)))
	if !woken(d) {
		t.Fatal("two jobs did not wake the one waiter left")
	}
	if woken(other) {
		t.Fatal("jobs of another type woke U's waiter")
	}
	w.wakeAll()
	if !woken(other) {
		t.Fatal("wakeAll left a waiter asleep")
	}
	if len(w.waiters) != 0 {
		t.Fatalf("waiters left registered: %v", w.waiters)
	}
}

func TestJobsNotificationRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		payload string
		key     string
		n       int
	}{
		{engine.JobsNotification("Custom/Build/X/1", 1), "Custom/Build/X/1", 1},
		{engine.JobsNotification("Custom/Build/X/1", 3), "Custom/Build/X/1", 3},
		{"Custom/Build/X/1#junk", "Custom/Build/X/1", 1},
		{"Custom/Build/X/1#0", "Custom/Build/X/1", 1},
	} {
		if k, n := engine.ParseJobsNotification(tc.payload); k != tc.key || n != tc.n {
			t.Errorf("%q: %q %d, want %q %d", tc.payload, k, n, tc.key, tc.n)
		}
	}
}
