package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
)

// listenBuffer is how many notifications a listener may fall behind before
// further ones are dropped for it. Listen is a hint, not a log.
const listenBuffer = 64

// hub is what the handles on one database file share in this process: the
// notification subscribers, a lock that serializes their migrations, and
// the read cache with its write generation.
// SQLite has no LISTEN/NOTIFY; since a database file belongs to one process,
// an in-process broadcaster is all replicas there are.
type hub struct {
	migrateMu sync.Mutex

	// reads caches pipeline reads, valid until the next write.
	reads readCache

	mu   sync.Mutex
	subs map[string]map[*subscription]struct{} // by channel
}

type subscription struct {
	ch      chan string
	channel string
	owner   *Store
}

// hubs maps a cleaned absolute path to its hub and the number of open
// handles on it; the last Close removes the entry.
var hubs = struct {
	sync.Mutex
	m map[string]*hubRef
}{m: make(map[string]*hubRef)}

type hubRef struct {
	hub  *hub
	refs int
}

func acquireHub(path string) *hub {
	hubs.Lock()
	defer hubs.Unlock()
	r := hubs.m[path]
	if r == nil {
		r = &hubRef{hub: &hub{subs: make(map[string]map[*subscription]struct{})}}
		hubs.m[path] = r
	}
	r.refs++
	return r.hub
}

func releaseHub(path string) {
	hubs.Lock()
	defer hubs.Unlock()
	if r := hubs.m[path]; r != nil {
		if r.refs--; r.refs <= 0 {
			delete(hubs.m, path)
		}
	}
}

// migrate applies the migrations, one handle of this process at a time.
func (h *hub) migrate(ctx context.Context, db *sql.DB) error {
	h.migrateMu.Lock()
	defer h.migrateMu.Unlock()
	return migrate(ctx, db)
}

// Notify wakes every listener of channel on this database file in this
// process, without waiting for slow ones.
func (s *Store) Notify(ctx context.Context, channel, payload string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sqlite: notify %q: %w", channel, err)
	}
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	for sub := range h.subs[channel] {
		select {
		case sub.ch <- payload:
		default: // full: drop; the listener polls anyway
		}
	}
	return nil
}

// Listen subscribes to channel until ctx ends or the Store is closed; then
// the returned channel is closed.
func (s *Store) Listen(ctx context.Context, channel string) (<-chan string, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: listen %q: %w", channel, err)
	}
	select {
	case <-s.done:
		return nil, fmt.Errorf("sqlite: listen %q: store closed", channel)
	default:
	}
	sub := &subscription{ch: make(chan string, listenBuffer), channel: channel, owner: s}
	h := s.hub
	h.mu.Lock()
	if h.subs[channel] == nil {
		h.subs[channel] = make(map[*subscription]struct{})
	}
	h.subs[channel][sub] = struct{}{}
	h.mu.Unlock()

	go func() {
		select {
		case <-ctx.Done():
		case <-s.done:
		}
		h.unsubscribe(sub)
	}()
	return sub.ch, nil
}

// unsubscribe removes sub and closes its channel, once. Sends happen under
// the same lock, so none can hit the closed channel.
func (h *hub) unsubscribe(sub *subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	subs := h.subs[sub.channel]
	if _, ok := subs[sub]; !ok {
		return
	}
	delete(subs, sub)
	if len(subs) == 0 {
		delete(h.subs, sub.channel)
	}
	close(sub.ch)
}

// unsubscribeAll ends every listener of s (Close).
func (h *hub) unsubscribeAll(s *Store) {
	h.mu.Lock()
	var mine []*subscription
	for _, subs := range h.subs {
		for sub := range subs {
			if sub.owner == s {
				mine = append(mine, sub)
			}
		}
	}
	h.mu.Unlock()
	for _, sub := range mine {
		h.unsubscribe(sub)
	}
}
