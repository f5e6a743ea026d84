package httplimit

import (
	"sync"
	"testing"
)

func TestBudget(t *testing.T) {
	b := NewBudget(100)
	if !b.TryAcquire(60) || b.TryAcquire(41) || !b.TryAcquire(40) {
		t.Fatal("the budget did not grant exactly its size")
	}
	b.Release(60)
	if b.InUse() != 40 || !b.TryAcquire(60) {
		t.Fatalf("after a release: %d in use", b.InUse())
	}
	b.Release(100)
	// Concurrent reservations never exceed the budget.
	var wg sync.WaitGroup
	var mu sync.Mutex
	granted := 0
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if b.TryAcquire(7) {
				mu.Lock()
				granted++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if granted != 100/7 || b.InUse() != int64(granted*7) {
		t.Errorf("%d reservations of 7 granted from 100 (%d in use), want %d", granted, b.InUse(), 100/7)
	}
	var none *Budget
	if !none.TryAcquire(1 << 40) {
		t.Error("a nil budget refused")
	}
	if NewBudget(0).max != DefaultBudget {
		t.Error("NewBudget(0) is not the default size")
	}
}
