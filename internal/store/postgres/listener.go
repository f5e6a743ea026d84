package postgres

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

const (
	// listenBuffer is how many notifications a subscriber may fall behind
	// before further ones are dropped for it. Listen is a hint, not a log.
	listenBuffer = 64
	// healthInterval is how long the listener waits for a notification
	// before it pings its connection: a connection that died silently (no
	// RST, e.g. a network partition) would otherwise wait for ever.
	healthInterval = 30 * time.Second
	// listenOpTimeout bounds connecting, LISTEN, UNLISTEN and the ping.
	listenOpTimeout = 10 * time.Second
	// Reconnect backoff: exponential between these, with jitter, so that
	// replicas do not all reconnect at the same instant after a restart.
	backoffMin = 100 * time.Millisecond
	backoffMax = 10 * time.Second
	// A connection that drops sooner than this after it was made counts as
	// a failed attempt, so a flapping server is retried with backoff; one
	// that was up longer is replaced at once.
	minHealthyConn = time.Second
)

// listener owns a Store's dedicated LISTEN connection and fans the
// notifications out to the subscriptions. A single goroutine (run) uses the
// connection; subscribe and unsubscribe only change the desired set of
// channels under mu and interrupt the goroutine's wait, and the goroutine
// then LISTENs or UNLISTENs to match. It starts with the first subscription.
type listener struct {
	cfg *pgx.ConnConfig
	// health is healthInterval; tests shorten it.
	health time.Duration

	ctx    context.Context // the goroutine's lifetime; cancelled by close
	cancel context.CancelFunc
	done   chan struct{} // closed when the goroutine has exited
	wake   chan struct{} // (capacity 1) cuts a reconnect backoff short

	mu      sync.Mutex
	started bool
	closed  bool
	// subs are the subscriptions by PostgreSQL channel name: the channels
	// the connection should listen on.
	subs map[string]map[*subscription]struct{}
	// listening are the channels LISTENed on the current connection.
	listening map[string]bool
	// waiters are subscribe calls waiting for their channel's LISTEN.
	waiters map[string][]chan error
	// cancelWait interrupts the goroutine's WaitForNotification; nil when
	// it is not waiting.
	cancelWait context.CancelFunc
	// pid is the server process of the current connection (0: none); for
	// tests and debugging.
	pid uint32
}

type subscription struct {
	ch      chan string
	channel string
	stop    func() bool // unregisters the ctx.Done hook
}

func newListener(cfg *pgx.ConnConfig) *listener {
	// Tell it apart from the pool's connections in pg_stat_activity.
	cfg.RuntimeParams["application_name"] += " listener"
	ctx, cancel := context.WithCancel(context.Background())
	return &listener{
		cfg:       cfg,
		health:    healthInterval,
		ctx:       ctx,
		cancel:    cancel,
		done:      make(chan struct{}),
		wake:      make(chan struct{}, 1),
		subs:      make(map[string]map[*subscription]struct{}),
		listening: make(map[string]bool),
		waiters:   make(map[string][]chan error),
	}
}

// subscribe adds a subscription to channel (a PostgreSQL channel name) and
// returns once the connection LISTENs on it; the subscription ends, and
// its channel is closed, when ctx ends or the listener is closed.
func (l *listener) subscribe(ctx context.Context, channel string) (<-chan string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sub := &subscription{ch: make(chan string, listenBuffer), channel: channel}

	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, errClosed
	}
	if l.subs[channel] == nil {
		l.subs[channel] = make(map[*subscription]struct{})
	}
	l.subs[channel][sub] = struct{}{}
	var wait chan error
	if !l.listening[channel] {
		wait = make(chan error, 1)
		l.waiters[channel] = append(l.waiters[channel], wait)
		l.interruptLocked()
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
	if !l.started {
		l.started = true
		go l.run()
	}
	l.mu.Unlock()

	if wait != nil {
		select {
		case err := <-wait:
			if err != nil {
				l.unsubscribe(sub)
				return nil, err
			}
		case <-ctx.Done():
			l.unsubscribe(sub)
			return nil, ctx.Err()
		}
	}

	stop := context.AfterFunc(ctx, func() { l.unsubscribe(sub) })
	l.mu.Lock()
	sub.stop = stop // close reads it under mu
	l.mu.Unlock()
	return sub.ch, nil
}

// unsubscribe removes sub and closes its channel, once. Sends happen under
// the same lock, so none can hit the closed channel.
func (l *listener) unsubscribe(sub *subscription) {
	l.mu.Lock()
	defer l.mu.Unlock()
	subs := l.subs[sub.channel]
	if _, ok := subs[sub]; !ok {
		return
	}
	delete(subs, sub)
	if len(subs) == 0 {
		delete(l.subs, sub.channel)
		l.interruptLocked() // to UNLISTEN
	}
	close(sub.ch)
}

// close stops the goroutine, closes the connection and ends every
// subscription.
func (l *listener) close() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	started := l.started
	l.cancel()
	l.mu.Unlock()

	if started {
		<-l.done
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, subs := range l.subs {
		for sub := range subs {
			if sub.stop != nil {
				sub.stop()
			}
			close(sub.ch)
		}
	}
	clear(l.subs)
}

// interruptLocked makes the goroutine stop waiting for a notification and
// look at the subscriptions again.
func (l *listener) interruptLocked() {
	if l.cancelWait != nil {
		l.cancelWait()
		l.cancelWait = nil
	}
}

// backendPID returns the server process id of the current connection, 0
// when there is none.
func (l *listener) backendPID() uint32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pid
}

// run is the goroutine that owns the connection: (re)connect, bring the
// LISTENed channels in line with the subscriptions, wait for a
// notification or an interruption, repeat.
func (l *listener) run() {
	defer close(l.done)
	var (
		conn     *pgx.Conn
		since    time.Time // when conn was made
		failures int       // consecutive failed attempts
	)
	defer func() {
		if conn != nil {
			closeConn(conn)
		}
		l.mu.Lock()
		l.failWaitersLocked(errClosed)
		l.pid = 0
		l.mu.Unlock()
	}()

	for l.ctx.Err() == nil {
		if conn == nil {
			if failures > 0 && !l.sleep(backoff(failures)) {
				return
			}
			c, err := l.connect()
			if err != nil {
				failures++
				l.mu.Lock()
				l.failWaitersLocked(err)
				l.mu.Unlock()
				continue
			}
			conn, since = c, time.Now()
			l.mu.Lock()
			clear(l.listening) // a new session listens on nothing
			l.pid = c.PgConn().PID()
			l.mu.Unlock()
		}

		err := l.sync(conn)
		if err == nil {
			err = l.wait(conn)
		}
		if err != nil && l.ctx.Err() == nil {
			// Lost (or unusable) connection: everything sent to our
			// channels until the next one LISTENs is lost.
			closeConn(conn)
			conn = nil
			if time.Since(since) < minHealthyConn {
				failures++
			} else {
				failures = 0
			}
			l.mu.Lock()
			l.pid = 0
			l.mu.Unlock()
		}
	}
}

// connect opens the dedicated connection.
func (l *listener) connect() (*pgx.Conn, error) {
	// Whoever woke us is served by this attempt.
	select {
	case <-l.wake:
	default:
	}
	ctx, cancel := context.WithTimeout(l.ctx, listenOpTimeout)
	defer cancel()
	return pgx.ConnectConfig(ctx, l.cfg)
}

// sync LISTENs on the channels that have subscriptions and UNLISTENs the
// ones that no longer have any, answering the waiting subscribe calls.
func (l *listener) sync(conn *pgx.Conn) error {
	l.mu.Lock()
	var listen, unlisten []string
	for ch := range l.subs {
		if !l.listening[ch] {
			listen = append(listen, ch)
		}
	}
	for ch := range l.listening {
		if _, ok := l.subs[ch]; !ok {
			unlisten = append(unlisten, ch)
		}
	}
	l.mu.Unlock()

	for _, ch := range listen {
		if err := l.exec(conn, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
			if !conn.IsClosed() {
				// The server refused this channel; a new connection
				// would not help the ones waiting for it.
				l.mu.Lock()
				l.answerLocked(ch, err)
				l.mu.Unlock()
			}
			return err
		}
		l.mu.Lock()
		l.listening[ch] = true
		l.answerLocked(ch, nil)
		l.mu.Unlock()
	}
	for _, ch := range unlisten {
		l.mu.Lock()
		_, resubscribed := l.subs[ch]
		if !resubscribed {
			// From now on a new subscriber waits for the next LISTEN.
			delete(l.listening, ch)
		}
		l.mu.Unlock()
		if resubscribed {
			continue
		}
		if err := l.exec(conn, "UNLISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
			return err
		}
	}

	// Waiters whose subscription ended before its LISTEN: nobody reads
	// the answer, but drop them.
	l.mu.Lock()
	for ch := range l.waiters {
		if _, ok := l.subs[ch]; !ok {
			l.answerLocked(ch, errClosed)
		}
	}
	l.mu.Unlock()
	return nil
}

// wait waits for one notification and fans it out. It returns nil when a
// notification came, when it was interrupted (subscriptions changed, or
// close), or when it timed out and the connection answered a ping; an error
// means the connection is lost.
func (l *listener) wait(conn *pgx.Conn) error {
	l.mu.Lock()
	if l.dirtyLocked() {
		// Changed while we were syncing: sync again first.
		l.mu.Unlock()
		return nil
	}
	ctx, cancel := context.WithTimeout(l.ctx, l.health)
	defer cancel()
	l.cancelWait = cancel
	l.mu.Unlock()

	n, err := conn.WaitForNotification(ctx)

	l.mu.Lock()
	l.cancelWait = nil
	l.mu.Unlock()

	switch {
	case err == nil:
		l.dispatch(n)
		return nil
	case conn.IsClosed():
		return err
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		pctx, pcancel := context.WithTimeout(l.ctx, listenOpTimeout)
		defer pcancel()
		return conn.Ping(pctx)
	case ctx.Err() != nil:
		// Interrupted. A timed-out read leaves the connection usable.
		return nil
	default:
		return err
	}
}

// dirtyLocked reports whether the LISTENed channels differ from the
// subscribed ones.
func (l *listener) dirtyLocked() bool {
	if len(l.subs) != len(l.listening) {
		return true
	}
	for ch := range l.subs {
		if !l.listening[ch] {
			return true
		}
	}
	return false
}

// dispatch hands a notification to every subscriber of its channel without
// waiting: a subscriber whose buffer is full misses it.
func (l *listener) dispatch(n *pgconn.Notification) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for sub := range l.subs[n.Channel] {
		select {
		case sub.ch <- n.Payload:
		default:
		}
	}
}

// exec runs a LISTEN or UNLISTEN with the simple protocol: nothing to
// prepare, and nothing left in pgx's statement cache per channel.
func (l *listener) exec(conn *pgx.Conn, sql string) error {
	ctx, cancel := context.WithTimeout(l.ctx, listenOpTimeout)
	defer cancel()
	_, err := conn.PgConn().Exec(ctx, sql).ReadAll()
	return err
}

// answerLocked answers the subscribe calls waiting for channel.
func (l *listener) answerLocked(channel string, err error) {
	for _, w := range l.waiters[channel] {
		w <- err // buffered, one answer each
	}
	delete(l.waiters, channel)
}

// failWaitersLocked answers every waiting subscribe call with err.
func (l *listener) failWaitersLocked(err error) {
	for ch := range l.waiters {
		l.answerLocked(ch, err)
	}
}

// sleep waits for d, or less when a new subscription wants a connection;
// false when the listener is closing.
func (l *listener) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-l.wake:
	case <-l.ctx.Done():
		return false
	}
	return true
}

// backoff returns the pause before reconnect attempt number failures+1:
// doubling from backoffMin to backoffMax, the upper half of it random.
func backoff(failures int) time.Duration {
	d := backoffMax
	if failures <= 10 {
		d = min(backoffMin<<(failures-1), backoffMax)
	}
	return d/2 + rand.N(d/2+1)
}

// closeConn closes conn, not waiting long for a server that is gone.
func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = conn.Close(ctx) // the connection is being abandoned either way
}
