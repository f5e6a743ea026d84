package main

import (
	"context"
	"fmt"
	"log"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pipelined/pipelined/internal/store"
	"github.com/pipelined/pipelined/internal/store/postgres"
	"github.com/pipelined/pipelined/internal/store/sqlite"
)

// The job-throughput phase of the engine suite: how many jobs a second go
// through poll → acknowledge → success with 8 workers, against the rate of
// raw write transactions of the same database in the same run (every job
// step is a write transaction, so that rate is the ceiling's shape).
const (
	targetJobsPerSec = 1000 // on SQLite
	jobsExecutions   = 900  // executions of the 3-stage pipeline: 2,700 jobs (a few seconds on SQLite)
)

// jobsRow is the job throughput measured on one backend.
type jobsRow struct {
	backend   string
	jobs      int64
	took      time.Duration
	rawTx     float64 // write transactions/s of the same database, 8 goroutines
	errors    int64
	firstErr  string
	calls     map[string]callStats
	incorrect string // set when not every job was done
}

func (r jobsRow) jobsPerSec() float64 { return float64(r.jobs) / r.took.Seconds() }

// jobsOn queues the source jobs of jobsExecutions executions with no worker
// running, then lets -workers workers drain every job (3 per execution) and
// measures the time until the last is reported.
func (b *bench) jobsOn(ctx context.Context, be *backend) error {
	log.Printf("job throughput: %s, %d workers", be.name, b.o.workers)
	srv, err := b.startPipelined(ctx, be, 1)
	if err != nil {
		return err
	}
	defer srv.stop()
	c := newClient(b.o.workers*len(jobTypes)+4, srv.url)
	defer c.close()
	if err := registerActionTypes(ctx, c); err != nil {
		return fmt.Errorf("%s: %w", be.name, err)
	}
	const pipeline = "jobs"
	if _, err := c.call(ctx, apiCall("CreatePipeline", enginePipeline(pipeline, concurrentStages, true))); err != nil {
		return fmt.Errorf("%s: CreatePipeline: %w", be.name, err)
	}
	for range jobsExecutions - 1 { // plus the one CreatePipeline started
		if _, err := c.call(ctx, apiCall("StartPipelineExecution", startBody(pipeline))); err != nil {
			return fmt.Errorf("%s: StartPipelineExecution: %w", be.name, err)
		}
	}
	rec := newRecorder()
	rec.record(true)
	var jobs atomic.Int64
	var finished atomic.Int64
	stopPerf := b.startPerf("engine jobs "+be.name, srv)
	start := time.Now()
	stop := startWorkers(ctx, b.o.workers, jobWorker{c: c, rec: rec, idle: idlePoll, batch: 1,
		received: func(polledJob) { jobs.Add(1) },
		done:     func(string) { finished.Add(1) }})
	want := int64(jobsExecutions)
	deadline := start.Add(b.o.timeout)
	for finished.Load() < want && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	row := jobsRow{backend: be.name, jobs: jobs.Load(), took: time.Since(start)}
	stopPerf()
	stop()
	rec.record(false)
	if finished.Load() < want {
		row.incorrect = fmt.Sprintf("%d of %d executions finished before the timeout", finished.Load(), want)
	}
	row.calls = rec.stats()
	row.errors, row.firstErr = rec.errors()
	srv.stop()

	if row.rawTx, err = rawTxRate(ctx, be, b.o.workers, b.o.duration); err != nil {
		return fmt.Errorf("%s: raw transaction rate: %w", be.name, err)
	}
	b.engine.jobs = append(b.engine.jobs, row)
	return nil
}

// rawTxRate measures, for d, how many write transactions a second the same
// database commits through the store with n goroutines: each takes a
// pipeline's engine lock and writes its runtime document, the smallest
// write an engine transition makes.
func rawTxRate(ctx context.Context, be *backend, n int, d time.Duration) (float64, error) {
	var st store.Store
	var err error
	if be.database != "" {
		st, err = postgres.Open(ctx, be.database)
	} else {
		st, err = sqlite.Open(ctx, filepath.Join(be.dataDir, "rawtx.db"))
	}
	if err != nil {
		return 0, err
	}
	defer st.Close()
	var count atomic.Int64
	var firstErr error
	var mu sync.Mutex
	end := time.Now().Add(d)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			pipeline := fmt.Sprintf("rawtx-%d", i) // different pipelines: no lock contention
			doc := []byte(`{"stages":{}}`)
			for time.Now().Before(end) && ctx.Err() == nil {
				err := st.InPipeline(ctx, pipeline, func(tx store.PipelineTx) error { return tx.SetRuntime(doc) })
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				count.Add(1)
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return 0, firstErr
	}
	return float64(count.Load()) / d.Seconds(), nil
}
