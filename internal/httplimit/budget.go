package httplimit

import "sync/atomic"

// Budget bounds the bytes of request bodies held in memory before their
// requests are authenticated, across all requests: a transport reserves
// what it reads beyond a small per-request allowance and releases it once
// the signature is verified (or the request fails). When the budget is
// spent a request is refused with 503 at once, rather than waiting, since a
// wait would let slow senders hold everyone else's requests.
type Budget struct {
	max  int64
	used atomic.Int64
}

// DefaultBudget is the budget's default size.
const DefaultBudget = 64 << 20

// NewBudget returns a budget of max bytes (max <= 0: DefaultBudget).
func NewBudget(max int64) *Budget {
	if max <= 0 {
		max = DefaultBudget
	}
	return &Budget{max: max}
}

// TryAcquire reserves n bytes if the budget has them. A nil Budget always
// grants.
func (b *Budget) TryAcquire(n int64) bool {
	if b == nil {
		return true
	}
	for {
		used := b.used.Load()
		if used+n > b.max {
			return false
		}
		if b.used.CompareAndSwap(used, used+n) {
			return true
		}
	}
}

// Release gives back n bytes acquired before.
func (b *Budget) Release(n int64) {
	if b != nil && n != 0 {
		b.used.Add(-n)
	}
}

// InUse is the number of bytes reserved now.
func (b *Budget) InUse() int64 {
	if b == nil {
		return 0
	}
	return b.used.Load()
}
