package executions

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/pipelined/pipelined/internal/engine"
)

// wakeups lets long polls sleep until a job of their action type is
// queued, on this replica or another (through the store's notifications).
// A notification only wakes pollers up; they then claim from the store, so a
// lost one costs at most the fallback interval.
//
// A notification of n jobs wakes n waiters of the type, oldest first, not
// all of them: with many workers long-polling one type, a broadcast woke
// every one of them for each job, and all but one found nothing (a store
// read and two goroutine switches each, for nothing). A waiter that was
// woken but leaves without having looked (its caller gave up, or it had
// already found a job) passes the wake-up on, so that a job is never left
// waiting for the fallback because its wake-up went to the wrong poller.
type wakeups struct {
	mu      sync.Mutex
	waiters map[string][]*waiter // by job type key, oldest first
}

// waiter is one long poll waiting for a wake-up.
type waiter struct {
	key   string
	ch    chan struct{} // closed when woken
	woken bool
}

// wait registers a waiter for key. Register before looking for work, so
// that a job queued in between is not missed; call done when leaving.
func (w *wakeups) wait(key string) *waiter {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.waiters == nil {
		w.waiters = map[string][]*waiter{}
	}
	wt := &waiter{key: key, ch: make(chan struct{})}
	w.waiters[key] = append(w.waiters[key], wt)
	return wt
}

// done unregisters a waiter that did not use its wake-up: one that found a
// job without it, or gave up. A wake-up it received goes to the next
// waiter. A waiter that was woken and is about to look again needs no done.
func (w *wakeups) done(wt *waiter) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if wt.woken {
		w.wakeLocked(wt.key, 1)
		return
	}
	q := w.waiters[wt.key]
	for i, o := range q {
		if o == wt {
			w.waiters[wt.key] = append(q[:i:i], q[i+1:]...)
			break
		}
	}
	if len(w.waiters[wt.key]) == 0 {
		delete(w.waiters, wt.key)
	}
}

// wake wakes up to n waiters of key, oldest first.
func (w *wakeups) wake(key string, n int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.wakeLocked(key, n)
}

func (w *wakeups) wakeLocked(key string, n int) {
	q := w.waiters[key]
	for n > 0 && len(q) > 0 {
		wt := q[0]
		q = q[1:]
		wt.woken = true
		close(wt.ch)
		n--
	}
	if len(q) == 0 {
		delete(w.waiters, key)
	} else {
		w.waiters[key] = q
	}
}

// wakeAll wakes every poller (after the notification stream was broken,
// when wake-ups may have been lost).
func (w *wakeups) wakeAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for key, q := range w.waiters {
		for _, wt := range q {
			wt.woken = true
			close(wt.ch)
		}
		delete(w.waiters, key)
	}
}

// RunWakeups relays job notifications to long polls until ctx ends.
func (s *Service) RunWakeups(ctx context.Context, log *slog.Logger) {
	for ctx.Err() == nil {
		ch, err := s.store.Listen(ctx, engine.JobsChannel)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("listen for job notifications; long polls fall back to polling", "err", err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		for payload := range ch {
			s.wake.wake(engine.ParseJobsNotification(payload))
		}
		// The stream ended (connection lost): wake everyone to look again.
		s.wake.wakeAll()
	}
}
