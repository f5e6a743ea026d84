package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"
)

// The calls the engine suite makes, as the report names them.
const (
	callStart     = "StartPipelineExecution"
	callPollJob   = "PollForJobs that returned a job (long-poll wait included)"
	callPollEmpty = "PollForJobs that returned none"
	callAck       = "AcknowledgeJob"
	callPut       = "PutJobSuccessResult"
)

// engineCalls is the report order of the calls.
var engineCalls = []string{callStart, callPollJob, callPollEmpty, callAck, callPut}

// recorder collects the outcome of every call of a measurement: the count
// of successful calls, the latency of those made while recording is on, and
// the failures. It is shared by the workers and the starters.
type recorder struct {
	mu    sync.Mutex
	on    bool
	calls map[string]int64
	lat   map[string][]time.Duration
	errs  map[string]int64
	first string // the first failure, for the report
}

func newRecorder() *recorder {
	return &recorder{calls: map[string]int64{}, lat: map[string][]time.Duration{}, errs: map[string]int64{}}
}

// record switches latency sampling and counting on or off.
func (r *recorder) record(on bool) {
	r.mu.Lock()
	r.on = on
	r.mu.Unlock()
}

func (r *recorder) ok(call string, d time.Duration) {
	r.mu.Lock()
	if r.on {
		r.calls[call]++
		r.lat[call] = append(r.lat[call], d)
	}
	r.mu.Unlock()
}

// fail counts a failed call, whether or not recording is on: a failure
// anywhere in the run is reported. A call made with ctx that failed after
// ctx ended is not counted: the end of the measurement cut it off.
func (r *recorder) fail(ctx context.Context, call string, err error) {
	if ctx.Err() != nil {
		return
	}
	r.mu.Lock()
	r.errs[call]++
	if r.first == "" {
		r.first = call + ": " + err.Error()
	}
	r.mu.Unlock()
}

// callStats is the summary of one call in a measurement.
type callStats struct {
	N        int64
	P50, P99 time.Duration
	Errors   int64
}

// stats summarises what was recorded, by call.
func (r *recorder) stats() map[string]callStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]callStats{}
	for call, n := range r.calls {
		s := slices.Clone(r.lat[call])
		slices.Sort(s)
		out[call] = callStats{N: n, P50: percentile(s, 50), P99: percentile(s, 99)}
	}
	for call, n := range r.errs {
		s := out[call]
		s.Errors = n
		out[call] = s
	}
	return out
}

func (r *recorder) errors() (int64, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var n int64
	for _, v := range r.errs {
		n += v
	}
	return n, r.first
}

// timedCall makes one signed call and records its latency or its failure.
// The response body is valid until buf is reused.
func timedCall(ctx context.Context, c *client, rec *recorder, call, op string, body []byte, buf *bytes.Buffer) (response, error) {
	start := time.Now()
	resp, err := c.do(ctx, apiCall(op, body), buf)
	elapsed := time.Since(start)
	if err := callErr(resp, err); err != nil {
		rec.fail(ctx, call, err)
		return resp, err
	}
	rec.ok(call, elapsed)
	return resp, nil
}

// jobWorker is a job worker as a custom action's would be, in goroutines
// of the load generator: one poller per action type, each polling its type
// for a job, acknowledging it with its nonce and reporting success at once,
// then polling again. pipelined long-polls (a poll with nothing queued
// waits, up to --job-poll-wait, for a job of its type), hence a poller per
// type: one goroutine polling both types in turn would sit in the wait of
// one while the other's jobs queue. After an empty answer (the wait ran
// out, or a server that does not long-poll) a poller sleeps for idle.
type jobWorker struct {
	c *client
	// clients, when set, holds the client each action type's poller signs
	// its calls with (one with that type's worker key) instead of c.
	clients map[actionTypeID]*client
	rec     *recorder
	idle    time.Duration
	batch   int // maxBatchSize of PollForJobs
	// received, when set, is called when a poll returns a job.
	received func(j polledJob)
	// done is called after a job of the last stage was reported: the
	// execution it belongs to has Succeeded.
	done func(executionID string)
}

// polledJob is what the worker reads of a job.
type polledJob struct {
	ID    string `json:"id"`
	Nonce string `json:"nonce"`
	Data  struct {
		PipelineContext struct {
			PipelineName        string `json:"pipelineName"`
			PipelineExecutionID string `json:"pipelineExecutionId"`
			Stage               struct {
				Name string `json:"name"`
			} `json:"stage"`
		} `json:"pipelineContext"`
	} `json:"data"`
}

// retries is how often a worker tries a call that failed on the server's
// side (5xx) or in transport before giving up on the job.
const retries = 3

// run polls every action type, each in its own goroutine, until ctx ends.
func (w *jobWorker) run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, t := range jobTypes {
		c := w.c
		if w.clients != nil {
			c = w.clients[t]
		}
		poll := mustJSON(map[string]any{"actionTypeId": t, "maxBatchSize": w.batch})
		wg.Go(func() { w.pollLoop(ctx, c, poll) })
	}
	wg.Wait()
}

func (w *jobWorker) pollLoop(ctx context.Context, c *client, poll []byte) {
	var buf bytes.Buffer
	for ctx.Err() == nil {
		jobs, err := w.poll(ctx, c, poll, &buf)
		if err != nil || len(jobs) == 0 {
			select {
			case <-ctx.Done():
			case <-time.After(w.idle):
			}
			continue
		}
		for _, j := range jobs {
			if w.received != nil {
				w.received(j)
			}
			w.handle(ctx, c, j, &buf)
		}
	}
}

func (w *jobWorker) poll(ctx context.Context, c *client, body []byte, buf *bytes.Buffer) ([]polledJob, error) {
	start := time.Now()
	resp, err := c.do(ctx, apiCall("PollForJobs", body), buf)
	elapsed := time.Since(start)
	if err := callErr(resp, err); err != nil {
		w.rec.fail(ctx, "PollForJobs", err)
		return nil, err
	}
	var out struct {
		Jobs []polledJob `json:"jobs"`
	}
	if err := json.Unmarshal(resp.body, &out); err != nil {
		w.rec.fail(ctx, "PollForJobs", fmt.Errorf("decode: %w", err))
		return nil, err
	}
	if len(out.Jobs) == 0 {
		w.rec.ok(callPollEmpty, elapsed)
	} else {
		w.rec.ok(callPollJob, elapsed)
	}
	return out.Jobs, nil
}

// handle acknowledges a job and reports its success. A call that failed on
// the server's side is retried (as a worker would); a refusal (4xx) is not.
func (w *jobWorker) handle(ctx context.Context, c *client, j polledJob, buf *bytes.Buffer) {
	ack := mustJSON(map[string]string{"jobId": j.ID, "nonce": j.Nonce})
	if err := w.retry(ctx, c, callAck, "AcknowledgeJob", ack, buf); err != nil {
		return
	}
	put := mustJSON(map[string]any{"jobId": j.ID, "executionDetails": map[string]any{"summary": "done by apibench", "percentComplete": 100}})
	if err := w.retry(ctx, c, callPut, "PutJobSuccessResult", put, buf); err != nil {
		return
	}
	if j.Data.PipelineContext.Stage.Name == lastStage && w.done != nil {
		w.done(j.Data.PipelineContext.PipelineExecutionID)
	}
}

func (w *jobWorker) retry(ctx context.Context, c *client, call, op string, body []byte, buf *bytes.Buffer) error {
	var err error
	for range retries {
		var resp response
		resp, err = timedCall(ctx, c, w.rec, call, op, body, buf)
		if err == nil || ctx.Err() != nil || (resp.status >= 400 && resp.status < 500) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
	return err
}
