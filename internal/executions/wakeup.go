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
type wakeups struct {
	mu  sync.Mutex
	chs map[string]chan struct{} // by job type key; closed on a wake-up
}

// wait returns a channel closed at the next wake-up for key. Take it
// before looking for work, so that a job queued in between is not missed.
func (w *wakeups) wait(key string) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.chs == nil {
		w.chs = map[string]chan struct{}{}
	}
	ch := w.chs[key]
	if ch == nil {
		ch = make(chan struct{})
		w.chs[key] = ch
	}
	return ch
}

func (w *wakeups) wake(key string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if ch := w.chs[key]; ch != nil {
		close(ch)
		delete(w.chs, key)
	}
}

// wakeAll wakes every poller (after the notification stream was broken,
// when wake-ups may have been lost).
func (w *wakeups) wakeAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for k, ch := range w.chs {
		close(ch)
		delete(w.chs, k)
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
		for key := range ch {
			s.wake.wake(key)
		}
		// The stream ended (connection lost): wake everyone to look again.
		s.wake.wakeAll()
	}
}
