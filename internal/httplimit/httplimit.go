// Package httplimit bounds what slow, stalled or numerous clients can hold
// of a server: time (a deadline for reading each request, with a minimum
// rate for big bodies), connections (a cap, beyond which a connection is
// answered 503 and closed) and memory (a shared budget for request bodies
// read before they are authenticated, see Budget).
//
// The read deadline is http.Server.ReadTimeout: Go's server starts it at a
// request's first byte and clears it once the body has been read (when it
// starts reading ahead for the next request), so long polls (PollForJobs
// waits after reading its body) and long downloads are not cut off by it;
// TestTricklingRequestsAreCutOff in internal/server pins that. Handler adds
// the minimum-rate rule for big bodies.
package httplimit

import (
	"io"
	"log/slog"
	"net/http"
	"time"
)

// Defaults (Config's zero values take them).
const (
	DefaultReadTimeout    = 30 * time.Second
	DefaultMinBodyRate    = 64 << 10 // bytes per second
	DefaultIdleTimeout    = 120 * time.Second
	DefaultMaxConnections = 1024
	// MaxHeaderBytes bounds a request's line and headers (Go's default is
	// 1 MiB, which a slow client may fill on every connection). S3's own
	// limit is 8 KiB of headers; presigned URLs with session tokens stay
	// well within 64 KiB.
	MaxHeaderBytes = 64 << 10
)

// Config bounds the server's connections and requests.
type Config struct {
	// ReadTimeout is how long a request's headers and body may take to
	// arrive, counted from its first byte. Zero: DefaultReadTimeout.
	ReadTimeout time.Duration
	// MinBodyRate (bytes per second) lets a big body take longer than
	// ReadTimeout as long as it keeps arriving at this average rate: a body
	// of Content-Length above ReadTimeout × MinBodyRate (or of unknown
	// length) must be read within ReadTimeout + received/MinBodyRate of the
	// end of its headers. Zero: DefaultMinBodyRate; negative: no extension,
	// ReadTimeout bounds every request.
	MinBodyRate int64
	// IdleTimeout closes a keep-alive connection with no request for this
	// long. Zero: DefaultIdleTimeout.
	IdleTimeout time.Duration
	// MaxConnections caps concurrent connections; one beyond it is answered
	// 503 and closed. Zero: DefaultMaxConnections; negative: no cap.
	MaxConnections int
}

// WithDefaults is c with its zero values replaced by the defaults.
func (c Config) WithDefaults() Config {
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.MinBodyRate == 0 {
		c.MinBodyRate = DefaultMinBodyRate
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = DefaultMaxConnections
	}
	return c
}

// Server is an http.Server for h with c's timeouts; h is wrapped in
// Handler. The caller sets the rest (ErrorLog, ...) and serves on a
// Listener.
func Server(h http.Handler, c Config) *http.Server {
	c = c.WithDefaults()
	return &http.Server{
		Handler: Handler(h, c),
		// Go's server starts both clocks at a request's first byte (on a
		// keep-alive connection, when the next request begins to arrive).
		ReadHeaderTimeout: c.ReadTimeout,
		ReadTimeout:       c.ReadTimeout,
		IdleTimeout:       c.IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
	}
}

// Handler extends the read deadline of big bodies (Content-Length above
// c.ReadTimeout × c.MinBodyRate, or unknown) as they arrive: a body that
// keeps arriving at c.MinBodyRate on average is never cut off, however big
// (a multipart upload's 5 GiB part from a fast worker), while one that
// stalls or trickles is, as a small one is by the plain deadline.
func Handler(h http.Handler, c Config) http.Handler {
	c = c.WithDefaults()
	if c.MinBodyRate < 0 {
		return h
	}
	bigBody := int64(c.ReadTimeout/time.Second) * c.MinBodyRate
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody && (r.ContentLength < 0 || r.ContentLength > bigBody) {
			// A copy of the request: Go's server looks at the original's
			// Body after the handler to decide whether an unread rest is
			// small enough to discard or the connection must close; it must
			// keep seeing its own type there.
			paced := &paced{rc: http.NewResponseController(w), r: r.Body, rate: c.MinBodyRate, base: time.Now().Add(c.ReadTimeout)}
			r = r.WithContext(r.Context())
			r.Body = paced
		}
		h.ServeHTTP(w, r)
	})
}

// paced moves the read deadline out as a body's bytes arrive: to base (the
// end of the headers plus ReadTimeout) plus one second per rate bytes
// received.
type paced struct {
	rc   *http.ResponseController
	r    io.ReadCloser
	rate int64     // bytes per second
	base time.Time // the deadline with nothing received
	n    int64
	set  time.Time // the deadline last set (moved a second at a time, not on every read)
}

func (b *paced) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n += int64(n)
	if err == nil && n > 0 {
		d := b.base.Add(time.Duration(float64(b.n) / float64(b.rate) * float64(time.Second)))
		if d.Sub(b.set) >= time.Second {
			b.set = d
			_ = b.rc.SetReadDeadline(d)
		}
	}
	return n, err
}

func (b *paced) Close() error { return b.r.Close() }

// logger is a nil-safe slog.Logger.
func logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
