package main

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// worker is one closed-loop client goroutine and its private state.
type worker struct {
	id       int
	c        *client
	buf      bytes.Buffer // response buffer, reused across requests
	pipeline string       // the pipeline this worker owns (UpdatePipeline)
	version  int          // the latest version of it the server returned
	seq      int          // requests sent by this worker (unique names)
}

// workload is what a worker does: setup once before the clock starts
// (optional), then step again and again. step returns an error for a
// failed request.
type workload struct {
	setup func(ctx context.Context, w *worker) error
	step  func(ctx context.Context, w *worker) error
}

// window is a measurement's time frame: requests before warm are warm-up
// (connections dialled, caches and the server's pools filled) and not
// counted; the measurement runs from warm to end.
type window struct {
	warm, end time.Time
}

func newWindow(d time.Duration) window {
	now := time.Now()
	warm := now.Add(warmup(d))
	return window{warm: warm, end: warm.Add(d)}
}

// warmup is a tenth of the measurement, at most half a second: enough to
// open the connections and touch the code paths, short enough that the whole
// run stays within a few minutes.
func warmup(d time.Duration) time.Duration {
	return min(d/10, 500*time.Millisecond)
}

// rate is the outcome of a throughput measurement.
type rate struct {
	Requests  int64 // completed successfully within the window
	Errors    int64 // failed within the window (and during warm-up)
	Elapsed   time.Duration
	FirstErr  string
	ServerCPU time.Duration // CPU the server processes used within the window; 0 if unknown
}

// CPUPerRequest is the servers' CPU time per successful request: on a
// shared machine it moves less with other load than the rate does.
func (r rate) CPUPerRequest() time.Duration {
	if r.Requests == 0 || r.ServerCPU <= 0 {
		return 0
	}
	return r.ServerCPU / time.Duration(r.Requests)
}

// cpuProbe reports the total CPU time used so far by the servers measured.
type cpuProbe func() (time.Duration, error)

// cpuOf is the probe of the given servers' processes.
func cpuOf(servers ...*server) cpuProbe {
	return func() (time.Duration, error) {
		var total time.Duration
		for _, s := range servers {
			t, err := s.cpuTime()
			if err != nil {
				return 0, err
			}
			total += t
		}
		return total, nil
	}
}

// sampleCPU reads probe at the start and at the end of the window, in the
// background, and returns a function that waits and returns the
// difference (0 without a probe or when a read failed: the CPU column is
// auxiliary and must not fail a measurement).
func sampleCPU(probe cpuProbe, win window) func() time.Duration {
	if probe == nil {
		return func() time.Duration { return 0 }
	}
	done := make(chan time.Duration, 1)
	go func() {
		time.Sleep(time.Until(win.warm))
		start, err := probe()
		time.Sleep(time.Until(win.end))
		end, err2 := probe()
		if err != nil || err2 != nil {
			done <- 0
			return
		}
		done <- end - start
	}()
	return func() time.Duration { return <-done }
}

// PerSec is the successful request rate.
func (r rate) PerSec() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Elapsed.Seconds()
}

// errTally collects failures across workers, keeping the first message.
type errTally struct {
	mu    sync.Mutex
	n     int64
	first string
}

func (t *errTally) add(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n++
	if t.first == "" {
		t.first = err.Error()
	}
}

// throughput runs conns workers in a closed loop (each sends its next
// request as soon as the previous one is answered) for d after a warm-up
// and counts the requests that complete within the window; probe, if not
// nil, measures the servers' CPU time over the window. A failed setup or a
// cancelled context is an error; failed requests are counted, not fatal,
// so that the report shows them.
func throughput(ctx context.Context, c *client, conns int, d time.Duration, wl workload, probe cpuProbe) (rate, error) {
	workers := make([]*worker, conns)
	for i := range workers {
		workers[i] = &worker{id: i, c: c}
		if wl.setup != nil {
			if err := wl.setup(ctx, workers[i]); err != nil {
				return rate{}, fmt.Errorf("worker %d setup: %w", i, err)
			}
		}
	}

	var (
		wg     sync.WaitGroup
		errs   errTally
		counts = make([]int64, conns) // one slot per worker: no shared counter to contend on
		win    = newWindow(d)
		cpu    = sampleCPU(probe, win)
	)
	for i, w := range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				err := wl.step(ctx, w)
				now := time.Now()
				if now.After(win.end) {
					return
				}
				switch {
				case err != nil:
					errs.add(err)
				case now.After(win.warm):
					counts[i]++
				}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return rate{}, err
	}
	var total int64
	for _, n := range counts {
		total += n
	}
	return rate{Requests: total, Errors: errs.n, Elapsed: d, FirstErr: errs.first, ServerCPU: cpu()}, nil
}

// latency is the outcome of a sequential latency measurement.
type latency struct {
	N         int
	P50, P99  time.Duration
	Errors    int64
	FirstErr  string
	ServerCPU time.Duration // CPU the server used within the window; 0 without a probe
}

// measureLatency sends requests one after another on one connection for d
// after a warm-up and returns the percentiles of the successful ones. One
// connection and no concurrency measure the server's service time without
// queueing behind other requests. probe, if not nil, measures the server's
// CPU time over the window.
func measureLatency(ctx context.Context, c *client, d time.Duration, wl workload, probe cpuProbe) (latency, error) {
	w := &worker{c: c}
	if wl.setup != nil {
		if err := wl.setup(ctx, w); err != nil {
			return latency{}, fmt.Errorf("setup: %w", err)
		}
	}
	var (
		samples []time.Duration
		errs    errTally
		win     = newWindow(d)
		cpu     = sampleCPU(probe, win)
	)
	for ctx.Err() == nil {
		start := time.Now()
		if start.After(win.end) {
			break
		}
		err := wl.step(ctx, w)
		elapsed := time.Since(start)
		switch {
		case err != nil:
			errs.add(err)
		case start.After(win.warm):
			samples = append(samples, elapsed)
		}
	}
	if err := ctx.Err(); err != nil {
		return latency{}, err
	}
	slices.Sort(samples)
	return latency{
		N: len(samples), P50: percentile(samples, 50), P99: percentile(samples, 99),
		Errors: errs.n, FirstErr: errs.first, ServerCPU: cpu(),
	}, nil
}

// percentile is the nearest-rank percentile of sorted samples.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := (p*len(sorted) + 99) / 100 // ceil(p/100 * n)
	return sorted[max(rank, 1)-1]
}

// fixedCall is the workload of sending the same request over and over
// (GetPipeline, ListPipelines): the body is the same for every target.
func fixedCall(r request) workload {
	return workload{step: func(ctx context.Context, w *worker) error {
		resp, err := w.c.do(ctx, r, &w.buf)
		return callErr(resp, err)
	}}
}
