package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Log shipping: the child's output goes through the redactor into an
// append-only spool file; a shipper sends what the server has not
// acknowledged every second, or sooner once 256 KiB wait, so the child
// never waits on the network. A failed send is retried from the server's
// acknowledged length.
const (
	shipInterval = time.Second
	shipChunk    = 256 << 10
	// finalFlush bounds the last sends after the job ended.
	finalFlush = 5 * time.Second
	// tailBytes is how much of the end of the output is kept in memory
	// for a failure message, and tailLines how many lines of it are used.
	tailBytes = 8 << 10
	tailLines = 20
)

// output is a job's output: redacted, capped, kept as a tail for failure
// messages and spooled for the shipper.
type output struct {
	mu        sync.Mutex
	red       *redactor
	sink      *capped
	flushed   bool
	shipper   *shipper
	truncNote string
}

// capped counts and caps output after redaction.
type capped struct {
	o       *output
	max     int64
	written int64
	dropped bool
	ring    []byte
}

func newOutput(s *shipper, secrets []string, max int64) *output {
	o := &output{shipper: s}
	o.sink = &capped{o: o, max: max}
	o.red = newRedactor(o.sink, secrets)
	return o
}

// Write takes a piece of the child's output.
func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	_, _ = o.red.Write(p)
	return len(p), nil
}

func (c *capped) Write(p []byte) (int, error) {
	if c.dropped {
		return len(p), nil
	}
	if left := c.max - c.written; int64(len(p)) > left {
		p = p[:max(left, 0)]
		c.dropped = true
	}
	c.written += int64(len(p))
	c.keepTail(p)
	c.o.shipper.append(p)
	if c.dropped {
		note := fmt.Sprintf("\n[pipelined: output truncated: a job's output is limited to %d bytes]\n", c.max)
		c.keepTail([]byte(note))
		c.o.shipper.append([]byte(note))
	}
	return len(p), nil
}

func (c *capped) keepTail(p []byte) {
	c.ring = append(c.ring, p...)
	if len(c.ring) > 2*tailBytes {
		c.ring = append(c.ring[:0], c.ring[len(c.ring)-tailBytes:]...)
	}
}

// note adds a line of the runner's own to the output.
func (o *output) note(line string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	_ = o.red.Flush()
	_, _ = o.red.Write([]byte("[" + strings.TrimPrefix(line, "[") + "]\n"))
}

// close flushes what the redactor holds back: the output is complete.
func (o *output) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.flushed {
		_ = o.red.Flush()
		o.flushed = true
	}
}

// tail is the last lines of the output.
func (o *output) tail() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	b := o.sink.ring
	if len(b) > tailBytes {
		b = b[len(b)-tailBytes:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	b = bytes.TrimRight(b, "\n")
	lines := strings.Split(string(b), "\n")
	if len(lines) > tailLines {
		lines = lines[len(lines)-tailLines:]
	}
	return strings.Join(lines, "\n")
}

// shipper sends the spooled output to the log sink.
type shipper struct {
	j    *job
	sink LogSink
	f    *os.File

	mu   sync.Mutex
	size int64

	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	acked   int64 // the loop's, then close's
	warned  bool
	refused bool
}

// newShipper starts shipping a job's output (an inert shipper without a
// sink, or when the spool cannot be created).
func newShipper(j *job, sink LogSink) *shipper {
	s := &shipper{j: j}
	if sink == nil {
		return s
	}
	f, err := os.OpenFile(filepath.Join(j.dir, "output.log"), os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
	if err != nil {
		j.log.Warn("create the output spool; the job's output is not shipped", "err", err)
		return s
	}
	s.sink, s.f = sink, f
	s.kick, s.stop, s.done = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	go s.loop()
	return s
}

// append spools output (called with the output's lock held).
func (s *shipper) append(p []byte) {
	if s.f == nil || len(p) == 0 {
		return
	}
	if _, err := s.f.Write(p); err != nil {
		if !s.warned {
			s.j.log.Warn("write the output spool", "err", err)
			s.warned = true
		}
		return
	}
	s.mu.Lock()
	if s.refused {
		s.mu.Unlock()
		return
	}
	s.size += int64(len(p))
	big := s.size-s.acked >= shipChunk
	s.mu.Unlock()
	if big {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

func (s *shipper) loop() {
	defer close(s.done)
	t := time.NewTicker(shipInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		case <-s.kick:
		}
		s.ship(context.Background(), shipInterval*5)
	}
}

// ship sends everything not yet acknowledged, and returns at the first
// error (the next round resends from the acknowledged length).
func (s *shipper) ship(ctx context.Context, perCall time.Duration) bool {
	buf := make([]byte, shipChunk)
	for {
		s.mu.Lock()
		size, acked := s.size, s.acked
		s.mu.Unlock()
		if acked >= size {
			return true
		}
		n, err := s.f.ReadAt(buf[:min(int64(shipChunk), size-acked)], acked)
		if err != nil && n == 0 {
			s.j.log.Warn("read the output spool", "err", err)
			return false
		}
		cctx, cancel := context.WithTimeout(ctx, perCall)
		got, err := s.sink.AppendLog(cctx, s.j.id, s.j.nonce, acked, buf[:n])
		cancel()
		if errors.Is(err, ErrLogsRefused) {
			s.j.log.Warn("the server does not take the job's output; it is not shipped", "err", err)
			s.mu.Lock()
			s.acked, s.size = size, size // nothing more to send
			s.refused = true
			s.mu.Unlock()
			return true
		}
		if err != nil {
			if ctx.Err() == nil {
				s.j.log.Warn("ship output", "offset", acked, "err", err)
			}
			return false
		}
		s.mu.Lock()
		s.acked = got
		s.mu.Unlock()
		if got <= acked && got < acked+int64(n) && got == acked {
			return false // nothing taken: try again next round
		}
	}
}

// close stops the loop and sends what is left, within finalFlush.
func (s *shipper) close() {
	if s.f == nil {
		return
	}
	close(s.stop)
	<-s.done
	ctx, cancel := context.WithTimeout(context.Background(), finalFlush)
	defer cancel()
	for ctx.Err() == nil && !s.ship(ctx, finalFlush) {
		sleep(ctx, 200*time.Millisecond)
	}
	_ = s.f.Close()
}
