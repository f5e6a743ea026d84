package httplimit

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Reject is the body of the 503 a connection beyond the cap gets, chosen
// from its request (nil when the request could not be read in time): the
// protocol's error shape (AWS JSON, S3 XML, text).
type Reject func(r *http.Request) (contentType string, body []byte)

// rejecters bounds the goroutines answering connections beyond the cap;
// beyond it a connection is closed without an answer.
const rejecters = 64

// rejectReadTimeout is how long a connection beyond the cap has to send its
// request line and headers before it is closed unanswered.
const rejectReadTimeout = time.Second

// Listener caps ln at max concurrent connections (max <= 0: no cap). A
// connection beyond the cap is answered "503 Service Unavailable" with
// reject's body and closed, so that clients see a retryable error rather
// than hang in the accept queue.
func Listener(ln net.Listener, max int, reject Reject, log *slog.Logger) net.Listener {
	if max <= 0 {
		return ln
	}
	return &listener{Listener: ln, max: int64(max), reject: reject, log: logger(log), sem: make(chan struct{}, rejecters)}
}

type listener struct {
	net.Listener
	max    int64
	open   atomic.Int64
	reject Reject
	log    *slog.Logger
	sem    chan struct{}
	// lastWarn throttles the log line about the cap to one a minute.
	lastWarn atomic.Int64
}

// Open is the number of connections the listener counts as open.
func (l *listener) Open() int64 { return l.open.Load() }

func (l *listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) <= l.max {
			return &conn{Conn: c, l: l}, nil
		}
		l.open.Add(-1)
		l.warn()
		select {
		case l.sem <- struct{}{}:
			go func() { defer func() { <-l.sem }(); l.refuse(c) }()
		default:
			c.Close()
		}
	}
}

func (l *listener) warn() {
	now := time.Now().UnixNano()
	last := l.lastWarn.Load()
	if now-last < int64(time.Minute) || !l.lastWarn.CompareAndSwap(last, now) {
		return
	}
	l.log.Warn("connection limit reached: answering new connections 503", "max_connections", l.max)
}

// refuse answers a connection beyond the cap: it reads the request's head
// (for the error's shape), writes the 503 and closes.
func (l *listener) refuse(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(rejectReadTimeout))
	req, _ := http.ReadRequest(bufio.NewReaderSize(io.LimitReader(c, MaxHeaderBytes), 4096))
	ctype, body := "text/plain; charset=utf-8", []byte("Service Unavailable: too many connections; retry later\n")
	if l.reject != nil {
		ctype, body = l.reject(req)
	}
	fmt.Fprintf(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: %s\r\nContent-Length: %d\r\nRetry-After: 1\r\nConnection: close\r\n\r\n", ctype, len(body))
	_, _ = c.Write(body)
	// Closing with unread request bytes would reset the connection and
	// could destroy the answer before the client reads it: half-close, and
	// drain what is left until the client closes or the deadline passes.
	if tc, ok := c.(interface{ CloseWrite() error }); ok {
		_ = tc.CloseWrite()
		_, _ = io.Copy(io.Discard, io.LimitReader(c, 1<<20))
	}
}

// conn gives its slot back when closed (once, however often Close is called).
type conn struct {
	net.Conn
	l    *listener
	once sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.open.Add(-1) })
	return err
}

// CloseWrite half-closes when the connection can (Go's server uses it to
// let a client read an answer before the connection closes).
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
