package storetest

import (
	"context"
	"testing"
	"time"
)

var notifyTests = []testCase{
	{"NotifyAcrossHandles", testNotifyAcrossHandles},
	{"NotifyChannelsSeparate", testNotifyChannelsSeparate},
	{"ListenEndsWithContext", testListenEndsWithContext},
}

// receive waits up to notifyWait for a value on ch.
func receive(t *testing.T, what string, ch <-chan string) (string, time.Duration) {
	t.Helper()
	start := time.Now()
	select {
	case v, ok := <-ch:
		if !ok {
			t.Fatalf("%s: channel closed, want a notification", what)
		}
		return v, time.Since(start)
	case <-time.After(notifyWait):
		t.Fatalf("%s: no notification within %v", what, notifyWait)
	}
	return "", 0
}

// testNotifyAcrossHandles: a notification sent through one handle reaches
// the listeners of every handle, including the sender's own.
func testNotifyAcrossHandles(t *testing.T, s *suite) {
	a, b := s.openPair(t)
	ctx := t.Context()
	channel := uniq("wake")

	onB, err := b.Listen(ctx, channel)
	noErr(t, "Listen on B", err)
	onB2, err := b.Listen(ctx, channel)
	noErr(t, "second Listen on B", err)
	onA, err := a.Listen(ctx, channel)
	noErr(t, "Listen on A", err)

	// Nobody listening is fine too.
	noErr(t, "Notify without listeners", a.Notify(ctx, uniq("nobody"), "x"))

	sent := time.Now()
	noErr(t, "Notify through A", a.Notify(ctx, channel, "payload-1"))
	for _, l := range []struct {
		name string
		ch   <-chan string
	}{{"B", onB}, {"B's second listener", onB2}, {"A", onA}} {
		got, _ := receive(t, "listener on "+l.name, l.ch)
		if got != "payload-1" {
			t.Errorf("listener on %s got %q, want payload-1", l.name, got)
		}
		t.Logf("listener on %s received after %v", l.name, time.Since(sent))
	}

	// And the other way round.
	sent = time.Now()
	noErr(t, "Notify through B", b.Notify(ctx, channel, "payload-2"))
	if got, _ := receive(t, "listener on A", onA); got != "payload-2" {
		t.Errorf("listener on A got %q, want payload-2", got)
	}
	t.Logf("B to A latency: %v", time.Since(sent))
}

func testNotifyChannelsSeparate(t *testing.T, s *suite) {
	a, b := s.openPair(t)
	ctx := t.Context()
	x, y := uniq("x"), uniq("y")
	onX, err := b.Listen(ctx, x)
	noErr(t, "Listen", err)

	noErr(t, "Notify y", a.Notify(ctx, y, "for-y"))
	noErr(t, "Notify x", a.Notify(ctx, x, "for-x"))
	if got, _ := receive(t, "listener on x", onX); got != "for-x" {
		t.Fatalf("listener on x got %q, want for-x", got)
	}
	select {
	case v := <-onX:
		t.Errorf("listener on x also got %q", v)
	case <-time.After(50 * time.Millisecond):
	}
}

// testListenEndsWithContext: when the listener's context ends, its channel
// is closed; other listeners go on.
func testListenEndsWithContext(t *testing.T, s *suite) {
	st := s.open(t)
	channel := uniq("wake")
	ctx, cancel := context.WithCancel(t.Context())
	ch, err := st.Listen(ctx, channel)
	noErr(t, "Listen", err)
	other, err := st.Listen(t.Context(), channel)
	noErr(t, "Listen", err)

	cancel()
	deadline := time.After(notifyWait)
	for closed := false; !closed; {
		select {
		case _, ok := <-ch:
			closed = !ok
		case <-deadline:
			t.Fatalf("channel not closed within %v of the context's end", notifyWait)
		}
	}

	noErr(t, "Notify", st.Notify(t.Context(), channel, "still"))
	if got, _ := receive(t, "remaining listener", other); got != "still" {
		t.Errorf("remaining listener got %q, want still", got)
	}
}
