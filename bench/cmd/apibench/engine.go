package main

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// The shapes of the engine suite's pipelines.
const (
	overheadStages   = 10 // the orchestration-overhead pipeline
	concurrentStages = 3  // the PARALLEL pipeline
)

// execTimeout bounds the wait for one execution of the overhead run, whose
// ten instant actions take milliseconds: a longer wait means a call failed
// and the execution is stuck.
const execTimeout = 30 * time.Second

// idlePoll is how long a worker sleeps after a round of empty polls:
// PollForJobs answers at once when there is no job.
const idlePoll = time.Millisecond

// runEngine runs the engine suite: the HTTP floor (the no-op server), the
// orchestration overhead on each backend, then the concurrent executions
// on each backend. Every measurement gets a fresh server process.
func (b *bench) runEngine(ctx context.Context) (err error) {
	defer func() {
		b.failed = err != nil
		b.engine.perfFiles = b.perfFiles
	}()
	b.engine.machine = machineInfo(ctx)
	if err := b.build(ctx); err != nil {
		return err
	}
	backends := []*backend{{name: "SQLite", dataDir: filepath.Join(b.tmp, "sqlite")}}
	if b.o.postgres != "" {
		s, err := createSchema(ctx, b.o.postgres)
		if err != nil {
			return err
		}
		b.schema = s
		log.Printf("PostgreSQL schema %s", s.name)
		backends = append(backends, &backend{name: "PostgreSQL", dataDir: filepath.Join(b.tmp, "pg"), database: s.DSN})
	}
	b.engine.started = time.Now()
	defer func() { b.engine.finished = time.Now() }()

	if err := b.engineFloor(ctx); err != nil {
		return err
	}
	for _, be := range backends {
		if err := b.overheadOn(ctx, be); err != nil {
			return err
		}
	}
	for _, be := range backends {
		if err := b.concurrentOn(ctx, be); err != nil {
			return err
		}
	}
	for _, be := range backends {
		if err := b.jobsOn(ctx, be); err != nil {
			return err
		}
	}
	return nil
}

// engineFloor measures the no-op server with PutJobSuccessResult-shaped
// requests, one after another on one connection: the latency and the
// server CPU per request of the HTTP path and the signing client alone.
func (b *bench) engineFloor(ctx context.Context) error {
	log.Printf("HTTP floor: no-op server")
	srv, err := b.startNoop(ctx)
	if err != nil {
		return err
	}
	defer srv.stop()
	c := newClient(1, srv.url)
	defer c.close()
	req := apiCall("PutJobSuccessResult", mustJSON(map[string]any{
		"jobId": "00000000-0000-4000-8000-000000000000", "executionDetails": map[string]any{"summary": "done by apibench", "percentComplete": 100},
	}))
	l, err := measureLatency(ctx, c, b.o.duration, fixedCall(req), cpuOf(srv))
	if err != nil {
		return fmt.Errorf("no-op floor: %w", err)
	}
	b.engine.floor = &l
	return nil
}

// startWorkers runs n copies of the job worker proto until the returned
// stop is called.
func startWorkers(ctx context.Context, n int, proto jobWorker) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for range n {
		w := proto
		wg.Go(func() { w.run(ctx) })
	}
	return func() { cancel(); wg.Wait() }
}

// overheadRow is the orchestration overhead measured on one backend.
type overheadRow struct {
	backend    string
	executions int             // measured (after the warm-up)
	walls      []time.Duration // per execution, sorted
	wakes      []time.Duration // per execution, StartPipelineExecution sent → source job received; sorted
	cpu        cpuSplit        // over the measured executions
	calls      map[string]callStats
	errors     int64
	firstErr   string
	verified   statusCount // every execution of the pipeline, listed at the end
	mem        memory
}

// overheadOn runs executions of the 10-stage pipeline one at a time with
// one worker, for -duration after a warm-up, and measures each
// execution's wall time, the server's CPU time over the measured ones, and
// the latency of every call.
func (b *bench) overheadOn(ctx context.Context, be *backend) error {
	log.Printf("orchestration overhead: %s", be.name)
	srv, err := b.startPipelined(ctx, be, 1)
	if err != nil {
		return err
	}
	defer srv.stop()
	c := newClient(1+len(jobTypes), srv.url) // the driver's connection and the worker's pollers'
	defer c.close()
	if err := registerActionTypes(ctx, c); err != nil {
		return fmt.Errorf("%s: %w", be.name, err)
	}

	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rec := newRecorder()
	done := make(chan string, 64)
	sourceAt := make(chan time.Time, 64) // when the worker got each execution's source job
	stopWorker := startWorkers(rctx, 1, jobWorker{
		c: c, rec: rec, idle: idlePoll, batch: 1,
		received: func(j polledJob) {
			if j.Data.PipelineContext.Stage.Name == "Source" {
				sourceAt <- time.Now()
			}
		},
		done: func(id string) { done <- id },
	})
	defer stopWorker()

	const pipeline = "overhead"
	var buf bytes.Buffer
	// await waits for the worker to report the last job of execution id.
	await := func(id string) error {
		timeout := time.After(execTimeout)
		for {
			select {
			case got := <-done:
				if id == "" || got == id {
					return nil
				}
				return fmt.Errorf("execution %s finished while waiting for %s, which should have been the only one running", got, id)
			case <-timeout:
				n, first := rec.errors()
				return fmt.Errorf("execution %s not finished after %s (%d failed calls; first: %s)", id, execTimeout, n, first)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	if _, err := c.call(ctx, apiCall("CreatePipeline", enginePipeline(pipeline, overheadStages, false))); err != nil {
		return fmt.Errorf("%s: CreatePipeline: %w", be.name, err)
	}
	if err := await(""); err != nil { // the execution CreatePipeline starts
		return fmt.Errorf("%s: the CreatePipeline execution: %w", be.name, err)
	}
	<-sourceAt
	// one runs an execution and returns its wall time and how long after
	// the start the worker had the source job in hand.
	one := func() (wall, wake time.Duration, err error) {
		start := time.Now()
		resp, err := timedCall(ctx, c, rec, callStart, "StartPipelineExecution", startBody(pipeline), &buf)
		if err != nil {
			return 0, 0, err
		}
		id, err := executionID(resp.body)
		if err != nil {
			return 0, 0, err
		}
		if err := await(id); err != nil {
			return 0, 0, err
		}
		wall = time.Since(start)
		select {
		case at := <-sourceAt: // one source job per execution, got before its last job
			wake = at.Sub(start)
		default:
			return 0, 0, fmt.Errorf("execution %s finished, but its source job was not seen", id)
		}
		return wall, wake, nil
	}

	total := 1 // executions of the pipeline so far
	for end := time.Now().Add(warmup(b.o.duration)); time.Now().Before(end); total++ {
		if _, _, err := one(); err != nil {
			return fmt.Errorf("%s: warm-up: %w", be.name, err)
		}
	}

	row := overheadRow{backend: be.name}
	stopPerf := b.startPerf("engine overhead "+be.name, srv)
	before, err := snapCPU(srv)
	if err != nil {
		stopPerf()
		return err
	}
	rec.record(true)
	for start := time.Now(); time.Since(start) < b.o.duration; total++ {
		wall, wake, err := one()
		if err != nil {
			stopPerf()
			return fmt.Errorf("%s: %w", be.name, err)
		}
		row.walls = append(row.walls, wall)
		row.wakes = append(row.wakes, wake)
	}
	rec.record(false)
	after, err := snapCPU(srv)
	stopPerf()
	if err != nil {
		return err
	}
	stopWorker()

	row.executions = len(row.walls)
	slices.Sort(row.walls)
	slices.Sort(row.wakes)
	row.cpu = before.to(after)
	row.calls = rec.stats()
	row.errors, row.firstErr = rec.errors()
	if row.verified, err = waitSucceeded(ctx, c, pipeline, total, 10*time.Second); err != nil {
		return fmt.Errorf("%s: %w", be.name, err)
	}
	if row.mem, err = srv.memory(); err != nil {
		return err
	}
	b.engine.overhead = append(b.engine.overhead, row)
	return nil
}

// concurrentRow is the concurrent-executions run on one backend.
type concurrentRow struct {
	backend                     string
	executions, workers, starts int   // asked for; workers; starters
	started                     int64 // starts answered 200
	startsTook                  time.Duration
	lastReported                time.Duration // until the workers reported the last job
	total                       time.Duration // until ListPipelineExecutions showed all Succeeded
	peakInFlight                int64
	complete                    bool
	final                       statusCount // of every execution of the pipeline, at the end
	finalErr                    string      // why the run is not complete
	cpu                         cpuSplit
	mem                         memory
	calls                       map[string]callStats
	errors                      int64
	firstErr                    string
}

// executionsPerSec is the rate at which the started executions ran to
// Succeeded, from the first start to the confirmation.
func (r concurrentRow) executionsPerSec() float64 {
	if !r.complete || r.total <= 0 {
		return 0
	}
	return float64(r.started) / r.total.Seconds()
}

// concurrentOn starts -executions executions of a PARALLEL pipeline as
// fast as -starters goroutines can, while -workers workers drain their
// jobs, and measures until all of them have Succeeded.
func (b *bench) concurrentOn(ctx context.Context, be *backend) error {
	log.Printf("concurrent executions: %s, %d executions, %d workers", be.name, b.o.executions, b.o.workers)
	srv, err := b.startPipelined(ctx, be, 1)
	if err != nil {
		return err
	}
	defer srv.stop()
	c := newClient(b.o.workers*len(jobTypes)+b.o.starters+1, srv.url)
	defer c.close()
	if err := registerActionTypes(ctx, c); err != nil {
		return fmt.Errorf("%s: %w", be.name, err)
	}

	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rec := newRecorder()
	var finished atomic.Int64
	stopWorkers := startWorkers(rctx, b.o.workers, jobWorker{c: c, rec: rec, idle: idlePoll, batch: 1, done: func(string) { finished.Add(1) }})
	defer stopWorkers()

	const pipeline = "parallel"
	if _, err := c.call(ctx, apiCall("CreatePipeline", enginePipeline(pipeline, concurrentStages, true))); err != nil {
		return fmt.Errorf("%s: CreatePipeline: %w", be.name, err)
	}
	// The execution CreatePipeline starts runs to its end first: the
	// engine admits at most 1,000 active executions per pipeline, and the
	// measurement is of -executions started together.
	if _, err := waitSucceeded(ctx, c, pipeline, 1, execTimeout); err != nil {
		return fmt.Errorf("%s: the CreatePipeline execution: %w", be.name, err)
	}
	for wait := time.Now().Add(execTimeout); finished.Load() < 1; { // the worker counts it just after the server did
		if time.Now().After(wait) {
			return fmt.Errorf("%s: the worker never reported the CreatePipeline execution's last job", be.name)
		}
		time.Sleep(time.Millisecond)
	}

	row := concurrentRow{backend: be.name, executions: b.o.executions, workers: b.o.workers, starts: b.o.starters}
	stopPerf := b.startPerf("engine concurrent "+be.name, srv)
	before, err := snapCPU(srv)
	if err != nil {
		stopPerf()
		return err
	}
	rec.record(true)
	start := time.Now()
	base := finished.Load()
	var (
		next, started atomic.Int64
		sg            sync.WaitGroup
		startersDone  = make(chan struct{})
	)
	for range b.o.starters {
		sg.Go(func() {
			var buf bytes.Buffer
			for next.Add(1) <= int64(b.o.executions) && rctx.Err() == nil {
				if _, err := timedCall(rctx, c, rec, callStart, "StartPipelineExecution", startBody(pipeline), &buf); err == nil {
					started.Add(1)
				}
			}
		})
	}
	go func() { sg.Wait(); close(startersDone) }()

	deadline := start.Add(b.o.timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	startersRunning := true
	for {
		fin := finished.Load() - base
		row.peakInFlight = max(row.peakInFlight, started.Load()-fin)
		if !startersRunning && fin >= started.Load() {
			row.lastReported = time.Since(start)
			break
		}
		if time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-startersDone:
			if startersRunning {
				startersRunning = false
				row.startsTook = time.Since(start)
				startersDone = nil // a nil channel blocks: take this case once
			}
		case <-tick.C:
		}
	}
	row.started = started.Load()
	counts, werr := waitSucceeded(ctx, c, pipeline, int(1+row.started), max(time.Until(deadline), 10*time.Second))
	row.total = time.Since(start)
	row.final = counts
	row.complete = werr == nil && row.lastReported > 0
	if werr != nil {
		row.finalErr = werr.Error()
	} else if !row.complete {
		row.finalErr = fmt.Sprintf("the workers had not reported every execution's last job after %s", b.o.timeout)
	}
	after, err := snapCPU(srv)
	stopPerf()
	if err != nil {
		return err
	}
	rec.record(false)
	cancel() // cut off the starters if the run timed out
	sg.Wait()
	stopWorkers()

	row.cpu = before.to(after)
	row.calls = rec.stats()
	row.errors, row.firstErr = rec.errors()
	if row.mem, err = srv.memory(); err != nil {
		return err
	}
	b.engine.concurrent = append(b.engine.concurrent, row)
	return nil
}
