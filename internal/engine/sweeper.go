package engine

import (
	"context"
	"time"

	"github.com/google/uuid"
)

// SweeperLease is the lease whose holder fires due timers. One replica at a
// time holds it; when the holder dies, another takes over once it expires.
const SweeperLease = "engine-sweeper"

// SweeperConfig tunes RunSweeper.
type SweeperConfig struct {
	// Interval between scans for due timers (default 250ms).
	Interval time.Duration
	// LeaseTTL is how long the lease lasts without renewal (default 15s).
	LeaseTTL time.Duration
}

// RunSweeper fires due timers (approval and job timeouts) until ctx ends,
// while this replica holds the sweeper lease. It releases the lease when it
// returns, so that another replica takes over at once on a clean shutdown.
func (e *Engine) RunSweeper(ctx context.Context, c SweeperConfig) {
	if c.Interval <= 0 {
		c.Interval = 250 * time.Millisecond
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = 15 * time.Second
	}
	holder := "sweeper-" + uuid.NewString()
	defer func() {
		if err := e.store.ReleaseLease(context.WithoutCancel(ctx), SweeperLease, holder); err != nil {
			e.log.Warn("release sweeper lease", "err", err)
		}
	}()
	tick := time.NewTicker(c.Interval)
	defer tick.Stop()
	var renewedAt time.Time
	held := false
	for {
		if time.Since(renewedAt) > c.LeaseTTL/3 {
			ok, err := e.store.AcquireLease(ctx, SweeperLease, holder, c.LeaseTTL)
			if err != nil && ctx.Err() == nil {
				e.log.Warn("acquire sweeper lease", "err", err)
			}
			if ok != held {
				e.log.Info("sweeper lease", "held", ok)
			}
			held, renewedAt = ok && err == nil, time.Now()
		}
		if held {
			e.sweep(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// sweep fires the timers that are due now.
func (e *Engine) sweep(ctx context.Context) {
	timers, err := e.store.DueTimers(ctx, e.now(), 100)
	if err != nil {
		if ctx.Err() == nil {
			e.log.Warn("due timers", "err", err)
		}
		return
	}
	for _, tm := range timers {
		if err := e.fireTimer(ctx, tm); err != nil && ctx.Err() == nil {
			e.log.Error("fire timer", "timer", tm.ID, "pipeline", tm.Pipeline, "err", err)
		}
	}
}

// Finished returns a channel closed when the execution ends by a transition
// made in this process (tests and benchmarks; check the status after
// subscribing, since it may have ended already).
func (e *Engine) Finished(id string) <-chan struct{} { return e.signals.wait(id) }
