package consoleusers

import (
	"sync"
	"time"
)

// Sign-in rate limit: after maxUserFailures failed sign-ins for one name,
// or maxAddrFailures from one address, within failureWindow, further
// attempts are refused without checking the password until the window
// that began with the first failure has passed. Counting per name stops
// guessing one user's password from many addresses; per address stops
// trying many names from one. The counts are per replica (in memory): with
// n replicas an attacker gets at most n times the budget, which is still a
// handful of guesses a minute.
const (
	maxUserFailures = 5
	maxAddrFailures = 20
	failureWindow   = 15 * time.Minute
	// maxTracked bounds the memory the counters take: when full, the
	// oldest windows are dropped first.
	maxTracked = 10000
)

type window struct {
	start    time.Time
	failures int
}

type limiter struct {
	mu    sync.Mutex
	now   func() time.Time
	users map[string]*window
	addrs map[string]*window
}

func newLimiter(now func() time.Time) *limiter {
	return &limiter{now: now, users: map[string]*window{}, addrs: map[string]*window{}}
}

// blocked says how long sign-ins for name from addr must wait (0: allowed).
func (l *limiter) blocked(name, addr string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	wait := time.Duration(0)
	for _, c := range []struct {
		m   map[string]*window
		key string
		max int
	}{{l.users, name, maxUserFailures}, {l.addrs, addr, maxAddrFailures}} {
		w := c.m[c.key]
		if w == nil {
			continue
		}
		left := w.start.Add(failureWindow).Sub(now)
		if left <= 0 {
			delete(c.m, c.key)
			continue
		}
		if w.failures >= c.max && left > wait {
			wait = left
		}
	}
	return wait
}

func (l *limiter) fail(name, addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for _, c := range []struct {
		m   map[string]*window
		key string
	}{{l.users, name}, {l.addrs, addr}} {
		w := c.m[c.key]
		if w == nil || now.Sub(w.start) >= failureWindow {
			if len(c.m) >= maxTracked {
				evictOldest(c.m)
			}
			w = &window{start: now}
			c.m[c.key] = w
		}
		w.failures++
	}
}

// succeed clears a name's failures (not the address's: one right password
// must not reset a sweep over many names).
func (l *limiter) succeed(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.users, name)
}

func evictOldest(m map[string]*window) {
	var oldest string
	var at time.Time
	for k, w := range m {
		if oldest == "" || w.start.Before(at) {
			oldest, at = k, w.start
		}
	}
	delete(m, oldest)
}
