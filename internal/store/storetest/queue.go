package storetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pipelined/pipelined/internal/store"
)

var queueTests = []testCase{
	{"QueueClaimOldestFirst", testQueueClaimOldestFirst},
	{"QueueClaimExpiry", testQueueClaimExpiry},
	{"QueueComplete", testQueueComplete},
	{"QueueConcurrentClaimers", testQueueConcurrentClaimers},
}

func enqueue(t *testing.T, st store.Store, queue, payload string) int64 {
	t.Helper()
	id, err := st.Enqueue(t.Context(), queue, []byte(payload))
	noErr(t, "Enqueue", err)
	return id
}

func claim(t *testing.T, st store.Store, queue, owner string, max int, leaseFor time.Duration) []store.WorkItem {
	t.Helper()
	items, err := st.Claim(t.Context(), queue, owner, max, leaseFor)
	noErr(t, fmt.Sprintf("Claim(%s, %s, %d)", queue, owner, max), err)
	if len(items) > max {
		t.Fatalf("Claim(max %d) returned %d items", max, len(items))
	}
	return items
}

func payloads(items []store.WorkItem) []string {
	var ps []string
	for _, it := range items {
		ps = append(ps, string(it.Payload))
	}
	return ps
}

func testQueueClaimOldestFirst(t *testing.T, s *suite) {
	st := s.open(t)

	if items := claim(t, st, "q", "w1", 10, time.Minute); len(items) != 0 {
		t.Fatalf("Claim on an empty queue = %v", payloads(items))
	}

	w := during()
	ids := map[int64]string{}
	for i := range 5 {
		p := fmt.Sprint(i)
		id := enqueue(t, st, "q", p)
		if prev, dup := ids[id]; dup {
			t.Fatalf("Enqueue returned id %d for both %s and %s", id, prev, p)
		}
		ids[id] = p
		if i < 2 {
			ids[enqueue(t, st, "other", "other"+p)] = "other" + p
		}
	}
	w.done()

	cw := during()
	first := claim(t, st, "q", "w1", 2, time.Minute)
	cw.done()
	if got := payloads(first); !slices.Equal(got, []string{"0", "1"}) {
		t.Fatalf("first Claim(max 2) = %q, want [0 1] (oldest first)", got)
	}
	for _, it := range first {
		if ids[it.ID] != string(it.Payload) {
			t.Errorf("claimed item %d has payload %q, Enqueue returned that id for %q", it.ID, it.Payload, ids[it.ID])
		}
		if it.Queue != "q" || it.ClaimedBy != "w1" || it.Attempts != 1 {
			t.Errorf("claimed item = {queue %q, by %q, attempts %d}, want {q, w1, 1}", it.Queue, it.ClaimedBy, it.Attempts)
		}
		w.check(t, "Created", it.Created)
		(&window{lo: cw.lo.Add(time.Minute), hi: cw.hi.Add(time.Minute)}).check(t, "ClaimedUntil", it.ClaimedUntil)
	}

	// Claimed items are not handed out again while claimed.
	rest := claim(t, st, "q", "w2", 10, time.Minute)
	if got := payloads(rest); !slices.Equal(got, []string{"2", "3", "4"}) {
		t.Errorf("second Claim = %q, want [2 3 4]", got)
	}
	for _, it := range rest {
		if it.ClaimedBy != "w2" {
			t.Errorf("item %s ClaimedBy = %q, want w2", it.Payload, it.ClaimedBy)
		}
	}
	if items := claim(t, st, "q", "w3", 10, time.Minute); len(items) != 0 {
		t.Errorf("Claim with everything claimed = %q, want none", payloads(items))
	}

	// Other queues are separate.
	other := claim(t, st, "other", "w1", 10, time.Minute)
	if got := payloads(other); !slices.Equal(got, []string{"other0", "other1"}) {
		t.Errorf("Claim(other) = %q, want [other0 other1]", got)
	}
}

// testQueueClaimExpiry claims through one handle and takes over through the
// other once the claim expired.
func testQueueClaimExpiry(t *testing.T, s *suite) {
	a, b := s.openPair(t)
	ctx := t.Context()
	id := enqueue(t, a, "q", "x")

	start := time.Now()
	items := claim(t, a, "q", "w1", 10, leaseTTL)
	claimed := time.Now()
	if len(items) != 1 || items[0].ID != id {
		t.Fatalf("Claim = %v, want item %d", items, id)
	}

	// The claim lasts until at least start+leaseTTL; a claim that returned
	// before then must come back empty.
	again := claim(t, b, "q", "w2", 10, leaseTTL)
	if len(again) != 0 {
		if time.Since(start) < leaseTTL {
			t.Fatalf("item claimed again before its claim expired: %v", again)
		}
		t.Skip("machine too slow for this timing test: the claim expired before the second claimer looked")
	}

	// The claim ends by claimed+leaseTTL; then another owner can take it.
	time.Sleep(time.Until(claimed.Add(leaseTTL + 20*time.Millisecond)))
	taken := claim(t, b, "q", "w2", 10, time.Minute)
	if len(taken) != 1 || taken[0].ID != id {
		t.Fatalf("Claim after expiry = %v, want item %d", taken, id)
	}
	if taken[0].Attempts != 2 || taken[0].ClaimedBy != "w2" || string(taken[0].Payload) != "x" {
		t.Errorf("re-claimed item = {attempts %d, by %q, payload %q}, want {2, w2, x}",
			taken[0].Attempts, taken[0].ClaimedBy, taken[0].Payload)
	}

	// The first owner's claim is gone: it cannot complete the item.
	wantErr(t, "Complete by the expired owner", a.Complete(ctx, id, "w1"), store.ErrNotFound)
	noErr(t, "Complete by the new owner", a.Complete(ctx, id, "w2"))
	wantErr(t, "second Complete", b.Complete(ctx, id, "w2"), store.ErrNotFound)
	if items := claim(t, b, "q", "w3", 10, leaseTTL); len(items) != 0 {
		t.Errorf("Claim after Complete = %v, want none", items)
	}

	// An expired claim nobody took over is still its owner's to complete.
	id2 := enqueue(t, a, "q", "y")
	claim(t, a, "q", "w1", 10, leaseTTL)
	claimed = time.Now()
	time.Sleep(time.Until(claimed.Add(leaseTTL + 20*time.Millisecond)))
	noErr(t, "Complete of an expired, untaken claim", b.Complete(ctx, id2, "w1"))
}

func testQueueComplete(t *testing.T, s *suite) {
	st := s.open(t)
	ctx := t.Context()

	wantErr(t, "Complete of an unknown id", st.Complete(ctx, 987654321, "w1"), store.ErrNotFound)

	id := enqueue(t, st, "q", "x")
	wantErr(t, "Complete of an unclaimed item", st.Complete(ctx, id, "w1"), store.ErrNotFound)

	claim(t, st, "q", "w1", 1, time.Minute)
	wantErr(t, "Complete by a non-owner", st.Complete(ctx, id, "w2"), store.ErrNotFound)
	noErr(t, "Complete by the owner", st.Complete(ctx, id, "w1"))
	wantErr(t, "second Complete", st.Complete(ctx, id, "w1"), store.ErrNotFound)

	// A completed item is gone for good, also once its claim would have
	// expired.
	if items := claim(t, st, "q", "w1", 10, time.Minute); len(items) != 0 {
		t.Errorf("Claim after Complete = %v, want none", items)
	}
}

// testQueueConcurrentClaimers has claimers on two handles drain a queue of
// 500 items: each item must go to exactly one claimer, and none be lost.
func testQueueConcurrentClaimers(t *testing.T, s *suite) {
	a, b := s.openPair(t)
	ctx := t.Context()
	const (
		items     = 500
		claimers  = 4 // per handle
		batch     = 5
		queueName = "many"
	)
	handles := []store.Store{a, b}

	var (
		mu       sync.Mutex
		enqueued = map[int64]bool{}
		wg       sync.WaitGroup
	)
	for h, st := range handles {
		wg.Go(func() {
			for i := range items / len(handles) {
				id, err := st.Enqueue(ctx, queueName, []byte(fmt.Sprintf("h%d-%d", h, i)))
				if err != nil {
					t.Errorf("Enqueue: %v", err)
					return
				}
				mu.Lock()
				if enqueued[id] {
					t.Errorf("Enqueue returned id %d twice", id)
				}
				enqueued[id] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(enqueued) != items {
		t.Fatalf("enqueued %d items, want %d", len(enqueued), items)
	}

	claimedBy := map[int64]string{}
	start := time.Now()
	for h, st := range handles {
		for c := range claimers {
			owner := fmt.Sprintf("h%d-c%d", h, c)
			wg.Go(func() {
				for {
					got, err := st.Claim(ctx, queueName, owner, batch, time.Minute)
					if err != nil {
						t.Errorf("Claim (%s): %v", owner, err)
						return
					}
					if len(got) == 0 {
						return
					}
					if len(got) > batch {
						t.Errorf("Claim(max %d) returned %d", batch, len(got))
					}
					mu.Lock()
					for _, it := range got {
						if prev, dup := claimedBy[it.ID]; dup {
							t.Errorf("item %d claimed by both %s and %s", it.ID, prev, owner)
						}
						claimedBy[it.ID] = owner
						if it.Attempts != 1 {
							t.Errorf("item %d Attempts = %d, want 1", it.ID, it.Attempts)
						}
					}
					mu.Unlock()
					for _, it := range got {
						if err := st.Complete(ctx, it.ID, owner); err != nil {
							t.Errorf("Complete(%d, %s): %v", it.ID, owner, err)
						}
					}
				}
			})
		}
	}
	wg.Wait()
	t.Logf("%d items claimed and completed by %d claimers in %v", len(claimedBy), claimers*len(handles), time.Since(start))

	if len(claimedBy) != items {
		t.Errorf("%d items claimed, want %d", len(claimedBy), items)
	}
	for id := range enqueued {
		if _, ok := claimedBy[id]; !ok {
			t.Errorf("item %d was never claimed (lost)", id)
		}
	}
	if left := claim(t, a, queueName, "late", items, time.Minute); len(left) != 0 {
		t.Errorf("%d items left after draining", len(left))
	}
}
