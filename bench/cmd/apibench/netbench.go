package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// The net suite (-suite net) measures what the server's connection and
// read limits cost and what they protect (issue 11):
//
//  1. read throughput of GetPipeline and ListPipelines beside the no-op
//     ceiling, in the same run (as the api suite's first phase);
//  2. signed-request latency (GetPipeline, one connection, sequential) with
//     the server idle, then again while slowConns slow connections are held
//     open against it: a quarter trickle their request headers a byte a
//     second, a quarter their headers and then the body a byte a second, and
//     half send a 4 MiB API body but its last byte (signed with a known
//     access key and a wrong signature, which passes every check made
//     before the body is read) and stall.

const slowConns = 200

type netReport struct {
	o                 *options
	command           string
	machine           machine
	started, finished time.Time
	reads             []readRow
	idle, held        latency
	openAtEnd         int // slow connections the server still held after the measurement
	answered          int // slow connections the server had answered (refused) by then
	mem               memory
}

func (r *netReport) hasData() bool { return len(r.reads) > 0 }

func (r *netReport) totalErrors() int64 {
	n := r.idle.Errors + r.held.Errors
	for _, x := range r.reads {
		n += x.rate.Errors
	}
	return n
}

func (r *netReport) write(w io.Writer) {
	fmt.Fprintln(w, "## pipelined connection-limits benchmark (-suite net)")
	fmt.Fprintln(w)
	r.machine.write(w, r.started, r.finished, r.command)
	fmt.Fprintln(w)
	noop := 0.0
	for _, x := range r.reads {
		if x.target == "no-op" {
			noop = x.rate.PerSec()
		}
	}
	fmt.Fprintf(w, "### Read throughput (10 pipelines stored, %d connections)\n\n", r.o.conns)
	fmt.Fprintln(w, "| target | call | req/s | of no-op | server CPU µs/req | errors |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, x := range r.reads {
		fmt.Fprintf(w, "| %s | %s | %.0f | %s | %s | %d |\n", x.target, x.call, x.rate.PerSec(), percentOf(x.rate.PerSec(), noop), us(x.rate.CPUPerRequest()), x.rate.Errors)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "### Signed GetPipeline latency, idle and with %d slow connections held (1 connection, sequential; ms)\n\n", slowConns)
	fmt.Fprintln(w, "| | requests | p50 | p99 | errors |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	fmt.Fprintf(w, "| idle | %d | %s | %s | %d |\n", r.idle.N, ms(r.idle.P50), ms(r.idle.P99), r.idle.Errors)
	fmt.Fprintf(w, "| %d slow connections held | %d | %s | %s | %d |\n", slowConns, r.held.N, ms(r.held.P50), ms(r.held.P99), r.held.Errors)
	fmt.Fprintf(w, "| ratio held/idle | | %s | %s | |\n\n", ratio(r.held.P50, r.idle.P50), ratio(r.held.P99, r.idle.P99))
	fmt.Fprintf(w, "After the measurement the server still held %d of the %d slow connections open and had answered (refused) %d; its memory: VmRSS %s, VmHWM %s.\n\n",
		r.openAtEnd, slowConns, r.answered, mb(r.mem.RSS), mb(r.mem.HWM))
	fmt.Fprintln(w, "### Targets")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| target | measured | verdict |")
	fmt.Fprintln(w, "|---|---|---|")
	for _, x := range r.reads {
		if x.target == "no-op" {
			continue
		}
		share := x.rate.PerSec() / noop
		fmt.Fprintf(w, "| %s ≥ 50%% of no-op | %.0f req/s = %s of no-op (%.0f req/s) | %s |\n", x.call, x.rate.PerSec(), percentOf(x.rate.PerSec(), noop), noop, verdict(share >= 0.5, x.rate.Errors == 0))
	}
	p99ratio := float64(r.held.P99) / float64(max(r.idle.P99, 1))
	fmt.Fprintf(w, "| p99 with %d slow connections within 2× of idle | %s ms vs %s ms = %.2f× | %s |\n", slowConns, ms(r.held.P99), ms(r.idle.P99), p99ratio,
		verdict(p99ratio <= 2, r.idle.Errors+r.held.Errors == 0))
	if r.totalErrors() > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "### Errors")
		fmt.Fprintln(w)
		for _, x := range r.reads {
			if x.rate.Errors > 0 {
				fmt.Fprintf(w, "- %s %s: %d, first: %s\n", x.target, x.call, x.rate.Errors, x.rate.FirstErr)
			}
		}
		for name, l := range map[string]latency{"idle": r.idle, "held": r.held} {
			if l.Errors > 0 {
				fmt.Fprintf(w, "- latency %s: %d, first: %s\n", name, l.Errors, l.FirstErr)
			}
		}
	}
}

// runNet runs the net suite.
func (b *bench) runNet(ctx context.Context) (err error) {
	defer func() { b.failed = err != nil }()
	b.net.machine = machineInfo(ctx)
	if err := b.build(ctx); err != nil {
		return err
	}
	sqlite := &backend{name: "SQLite", dataDir: filepath.Join(b.tmp, "sqlite")}
	b.net.started = time.Now()
	defer func() { b.net.finished = time.Now() }()

	if err := b.readNoop(ctx); err != nil {
		return err
	}
	if err := b.readPipelined(ctx, sqlite); err != nil {
		return err
	}
	b.net.reads = b.report.reads

	srv, err := b.startPipelined(ctx, sqlite, 1)
	if err != nil {
		return err
	}
	defer srv.stop()
	one := newClient(1, srv.url)
	defer one.close()
	log.Printf("latency: idle")
	if b.net.idle, err = measureLatency(ctx, one, b.o.duration, fixedCall(getReq), cpuOf(srv)); err != nil {
		return err
	}
	held, err := holdSlowConnections(strings.TrimPrefix(srv.url, "http://"))
	if err != nil {
		return err
	}
	defer held.close()
	log.Printf("latency: with %d slow connections held", slowConns)
	if b.net.held, err = measureLatency(ctx, one, b.o.duration, fixedCall(getReq), cpuOf(srv)); err != nil {
		return err
	}
	b.net.openAtEnd, b.net.answered = held.status()
	b.net.mem, _ = srv.memory()
	return nil
}

// slowSet is the slow connections held open against a server.
type slowSet struct {
	conns []net.Conn
	stop  chan struct{}
	wg    sync.WaitGroup
}

func (s *slowSet) close() {
	close(s.stop)
	for _, c := range s.conns {
		c.Close()
	}
	s.wg.Wait()
}

// status counts the connections still open (no answer, no close) and the
// ones the server answered.
func (s *slowSet) status() (open, answered int) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range s.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			var b [1]byte
			n, err := c.Read(b[:])
			mu.Lock()
			defer mu.Unlock()
			switch {
			case n > 0:
				answered++
			case err != nil && isTimeout(err):
				open++
			}
		}()
	}
	wg.Wait()
	return open, answered
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// holdSlowConnections opens slowConns connections to host as described at
// the top of this file, and waits until every 4 MiB body has been sent or
// refused.
func holdSlowConnections(host string) (*slowSet, error) {
	const size = 4 << 20
	big := bytes.Repeat([]byte("x"), size-1)
	bigHead, err := rawHead(host, "CreatePipeline", append(big, 'x'), true)
	if err != nil {
		return nil, err
	}
	small := []byte(`{"name":"bench-00000"}`)
	smallHead, err := rawHead(host, "GetPipeline", small, false)
	if err != nil {
		return nil, err
	}
	s := &slowSet{stop: make(chan struct{})}
	var sent sync.WaitGroup
	trickle := func(c net.Conn, data []byte) {
		defer s.wg.Done()
		for _, b := range data {
			select {
			case <-s.stop:
				return
			case <-time.After(time.Second):
			}
			if _, err := c.Write([]byte{b}); err != nil {
				return
			}
		}
	}
	for i := range slowConns {
		c, err := net.Dial("tcp", host)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("slow connection %d: %w", i, err)
		}
		s.conns = append(s.conns, c)
		s.wg.Add(1)
		switch i % 4 {
		case 0: // request line and headers, a byte a second
			go trickle(c, smallHead)
		case 1: // headers at once, then the body a byte a second
			if _, err := c.Write(smallHead); err != nil {
				s.wg.Done()
				continue
			}
			go trickle(c, small)
		default: // a 4 MiB body but its last byte, then nothing
			sent.Add(1)
			go func() {
				defer s.wg.Done()
				defer sent.Done()
				_ = c.SetWriteDeadline(time.Now().Add(60 * time.Second))
				if _, err := c.Write(bigHead); err == nil {
					_, _ = c.Write(big)
				}
			}()
		}
	}
	sent.Wait()
	return s, nil
}

// rawHead is a JSON API request head (request line and headers) for body,
// signed with the bench's root key; badSig spoils the signature (the key
// stays known).
func rawHead(host, op string, body []byte, badSig bool) ([]byte, error) {
	req, err := http.NewRequest(http.MethodPost, "http://"+host+"/", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", jsonType)
	req.Header.Set("X-Amz-Target", targetPrefix+op)
	req.ContentLength = int64(len(body))
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: accessKeyID, SecretAccessKey: secretKey}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "codepipeline", region, time.Now()); err != nil {
		return nil, err
	}
	if badSig {
		a := req.Header.Get("Authorization")
		req.Header.Set("Authorization", a[:len(a)-8]+"00000000")
	}
	var h bytes.Buffer
	fmt.Fprintf(&h, "POST / HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n", host, len(body))
	for k, vs := range req.Header {
		for _, v := range vs {
			fmt.Fprintf(&h, "%s: %s\r\n", k, v)
		}
	}
	h.WriteString("\r\n")
	return h.Bytes(), nil
}
