package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/pipelined/pipelined/internal/admin"
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

// stallTimeout ends a job-throughput measurement early when calls have
// failed and no job has been handed out for this long: the failures (say,
// AccessDenied on every acknowledgement) keep the executions from
// finishing, and waiting for -timeout would only delay the report.
const stallTimeout = 15 * time.Second

// jobsRow is the job throughput measured on one backend with one kind of
// credentials.
type jobsRow struct {
	backend    string
	workerKeys bool // the workers signed with worker keys, not the root credentials
	jobs       int64
	took       time.Duration
	rawTx      float64 // write transactions/s of the same database, 8 goroutines
	errors     int64
	firstErr   string
	calls      map[string]callStats
	incorrect  string // set when not every job was done
}

func (r jobsRow) jobsPerSec() float64 { return float64(r.jobs) / r.took.Seconds() }

// label names the row in the report: the backend for the root credentials
// (the row the target is judged on), with ", worker keys" for the other.
func (r jobsRow) label() string {
	if r.workerKeys {
		return r.backend + ", worker keys"
	}
	return r.backend
}

// jobsOn measures the job throughput on one server: with the workers
// signing with the root credentials, then (with -worker-keys) again on the
// same server with each poller signing with its action type's worker key.
// Both measurements are the same but for the credentials, each on a
// pipeline of its own; the raw transaction rate is measured once, after
// both, and stands beside both rows.
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
	root, err := b.jobsPhase(ctx, be, srv, c, "jobs", nil)
	if err != nil {
		return err
	}
	rows := []jobsRow{root}
	if b.o.workerKeys {
		log.Printf("job throughput: %s, %d workers, worker keys", be.name, b.o.workers)
		keys, err := issueWorkerKeys(ctx, c)
		if err != nil {
			return fmt.Errorf("%s: %w", be.name, err)
		}
		wk, err := b.jobsPhase(ctx, be, srv, c, "jobs-worker-keys", keys)
		if err != nil {
			return err
		}
		rows = append(rows, wk)
	}
	srv.stop()

	raw, err := rawTxRate(ctx, be, b.o.workers, b.o.duration)
	if err != nil {
		return fmt.Errorf("%s: raw transaction rate: %w", be.name, err)
	}
	for i := range rows {
		rows[i].rawTx = raw
	}
	b.engine.jobs = append(b.engine.jobs, rows...)
	return nil
}

// jobsPhase queues the source jobs of jobsExecutions executions of a new
// pipeline with no worker running, then lets -workers workers drain every
// job (3 per execution) and measures the time until the last is reported.
// The pipeline is created and started with c's (root) credentials; the
// workers sign with keys[t] for action type t, or with c when keys is nil.
// Only jobs of this pipeline are counted.
func (b *bench) jobsPhase(ctx context.Context, be *backend, srv *server, c *client, pipeline string, keys map[actionTypeID]*client) (jobsRow, error) {
	row := jobsRow{backend: be.name, workerKeys: keys != nil}
	if _, err := c.call(ctx, apiCall("CreatePipeline", enginePipeline(pipeline, concurrentStages, true))); err != nil {
		return row, fmt.Errorf("%s: CreatePipeline %s: %w", be.name, pipeline, err)
	}
	for range jobsExecutions - 1 { // plus the one CreatePipeline started
		if _, err := c.call(ctx, apiCall("StartPipelineExecution", startBody(pipeline))); err != nil {
			return row, fmt.Errorf("%s: StartPipelineExecution %s: %w", be.name, pipeline, err)
		}
	}
	rec := newRecorder()
	rec.record(true)
	var jobs atomic.Int64
	var finished atomic.Int64
	var ours sync.Map // the executions of this pipeline whose last job was handed out
	stopPerf := b.startPerf("engine jobs "+row.label(), srv)
	start := time.Now()
	stop := startWorkers(ctx, b.o.workers, jobWorker{c: c, clients: keys, rec: rec, idle: idlePoll, batch: 1,
		received: func(j polledJob) {
			if pc := j.Data.PipelineContext; pc.PipelineName == pipeline {
				jobs.Add(1)
				if pc.Stage.Name == lastStage {
					ours.Store(pc.PipelineExecutionID, true)
				}
			}
		},
		done: func(id string) {
			if _, ok := ours.Load(id); ok {
				finished.Add(1)
			}
		}})
	want := int64(jobsExecutions)
	deadline := start.Add(b.o.timeout)
	seen, progress := int64(0), start // jobs handed out, and when the last was
	stalled := false
	for finished.Load() < want && time.Now().Before(deadline) && ctx.Err() == nil {
		if n := jobs.Load(); n != seen {
			seen, progress = n, time.Now()
		} else if n, _ := rec.errors(); n > 0 && time.Since(progress) > stallTimeout {
			stalled = true
			break
		}
		time.Sleep(time.Millisecond)
	}
	row.jobs, row.took = jobs.Load(), time.Since(start)
	stopPerf()
	stop()
	rec.record(false)
	switch {
	case finished.Load() >= want:
	case stalled:
		row.incorrect = fmt.Sprintf("%d of %d executions finished; calls had failed and no job was handed out for %s, so the measurement was given up", finished.Load(), want, stallTimeout)
	default:
		row.incorrect = fmt.Sprintf("%d of %d executions finished before the timeout", finished.Load(), want)
	}
	row.calls = rec.stats()
	row.errors, row.firstErr = rec.errors()
	return row, nil
}

// issueWorkerKeys issues, through the admin API with c's (root)
// credentials, one worker key for each of jobTypes, and returns for each
// type a client that signs with its key and shares c's connections and
// signer.
func issueWorkerKeys(ctx context.Context, c *client) (map[actionTypeID]*client, error) {
	keys := make(map[actionTypeID]*client, len(jobTypes))
	for _, t := range jobTypes {
		body, err := c.call(ctx, adminCall("worker-keys", mustJSON(map[string]any{"actionTypeId": t, "description": "apibench job workers"})))
		if err != nil {
			return nil, fmt.Errorf("create a worker key for %s/%s/%s: %w", t.Category, t.Owner, t.Provider, err)
		}
		var out admin.CreateWorkerKeyOutput
		if err := json.Unmarshal(body, &out); err != nil {
			return nil, fmt.Errorf("decode the worker key for %s/%s/%s: %w", t.Category, t.Owner, t.Provider, err)
		}
		if out.WorkerKey.AccessKeyID == "" || out.SecretAccessKey == "" {
			return nil, fmt.Errorf("the worker key for %s/%s/%s came without an access key id or secret: %s", t.Category, t.Owner, t.Provider, body)
		}
		keys[t] = c.as(aws.Credentials{AccessKeyID: out.WorkerKey.AccessKeyID, SecretAccessKey: out.SecretAccessKey, Source: "apibench worker key"})
	}
	return keys, nil
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
