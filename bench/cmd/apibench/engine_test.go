package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestEnginePipeline(t *testing.T) {
	var in struct {
		Pipeline struct {
			Name          string `json:"name"`
			PipelineType  string `json:"pipelineType"`
			ExecutionMode string `json:"executionMode"`
			Stages        []struct {
				Name    string `json:"name"`
				Actions []struct {
					ActionTypeID actionTypeID        `json:"actionTypeId"`
					Inputs       []map[string]string `json:"inputArtifacts"`
					Outputs      []map[string]string `json:"outputArtifacts"`
				} `json:"actions"`
			} `json:"stages"`
		} `json:"pipeline"`
	}
	if err := json.Unmarshal(enginePipeline("p", 10, false), &in); err != nil {
		t.Fatal(err)
	}
	p := in.Pipeline
	if len(p.Stages) != 10 || p.PipelineType != "" || p.ExecutionMode != "" {
		t.Fatalf("10-stage pipeline: %d stages, type %q, mode %q", len(p.Stages), p.PipelineType, p.ExecutionMode)
	}
	first, last := p.Stages[0], p.Stages[9]
	if first.Actions[0].ActionTypeID != sourceType || len(first.Actions[0].Inputs) != 0 || first.Actions[0].Outputs[0]["name"] != "A01" {
		t.Errorf("first stage %+v is not a source making A01", first)
	}
	if last.Name != lastStage || last.Actions[0].ActionTypeID != buildType || last.Actions[0].Inputs[0]["name"] != "A09" {
		t.Errorf("last stage %+v is not %s building from A09", last, lastStage)
	}
	if err := json.Unmarshal(enginePipeline("q", 3, true), &in); err != nil {
		t.Fatal(err)
	}
	if in.Pipeline.PipelineType != "V2" || in.Pipeline.ExecutionMode != "PARALLEL" || len(in.Pipeline.Stages) != 3 {
		t.Errorf("parallel pipeline: type %q, mode %q, %d stages", in.Pipeline.PipelineType, in.Pipeline.ExecutionMode, len(in.Pipeline.Stages))
	}
}

func TestStatCPUAndBackendPort(t *testing.T) {
	comm, _, err := statCPU("/proc/self/stat")
	if err != nil || comm == "" {
		t.Fatalf("statCPU(/proc/self/stat) = %q, %v", comm, err)
	}
	dir := t.TempDir()
	for title, want := range map[string]string{
		"postgres: 15/main: postgres test 127.0.0.1(54321) idle": "54321",
		"postgres: 15/main: checkpointer   ":                     "",
		"postgres: 15/main: postgres test [local] idle":          "",
	} {
		if err := os.WriteFile(filepath.Join(dir, "cmdline"), []byte(title), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := backendClientPort(dir); got != want {
			t.Errorf("backendClientPort(%q) = %q, want %q", title, got, want)
		}
	}
}

// fakeJobs is a server that hands out a fixed list of jobs and checks the
// protocol: acknowledge with the nonce it gave, then report success once.
type fakeJobs struct {
	mu      sync.Mutex
	queue   []polledJob
	acked   map[string]bool
	put     map[string]bool
	polls   int
	failPut bool // answer the first PutJobSuccessResult with a 500
}

func (f *fakeJobs) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var in map[string]any
	body, _ := io.ReadAll(r.Body)
	_ = json.Unmarshal(body, &in)
	f.mu.Lock()
	defer f.mu.Unlock()
	switch strings.TrimPrefix(r.Header.Get("X-Amz-Target"), targetPrefix) {
	case "PollForJobs":
		f.polls++
		var out []polledJob
		if len(f.queue) > 0 {
			out, f.queue = f.queue[:1], f.queue[1:]
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"jobs": out})
	case "AcknowledgeJob":
		if in["nonce"] != "n-"+in["jobId"].(string) {
			http.Error(w, `{"__type":"InvalidNonceException"}`, http.StatusBadRequest)
			return
		}
		f.acked[in["jobId"].(string)] = true
		_, _ = io.WriteString(w, `{"status":"InProgress"}`)
	case "PutJobSuccessResult":
		id := in["jobId"].(string)
		if f.failPut {
			f.failPut = false
			http.Error(w, `{"__type":"InternalFailure"}`, http.StatusInternalServerError)
			return
		}
		if !f.acked[id] || f.put[id] {
			http.Error(w, `{"__type":"InvalidJobStateException"}`, http.StatusBadRequest)
			return
		}
		f.put[id] = true
		_, _ = io.WriteString(w, `{}`)
	default:
		http.Error(w, "unexpected call", http.StatusBadRequest)
	}
}

func TestJobWorker(t *testing.T) {
	f := &fakeJobs{acked: map[string]bool{}, put: map[string]bool{}, failPut: true}
	for i, stage := range []string{"Source", "Build02", lastStage} {
		var j polledJob
		j.ID = string(rune('a' + i))
		j.Nonce = "n-" + j.ID
		j.Data.PipelineContext.PipelineExecutionID = "exec-1"
		j.Data.PipelineContext.Stage.Name = stage
		f.queue = append(f.queue, j)
	}
	srv := httptest.NewServer(f)
	defer srv.Close()
	c := newClient(1, srv.URL)
	defer c.close()

	rec := newRecorder()
	rec.record(true)
	done := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	stop := startWorkers(ctx, 1, jobWorker{c: c, rec: rec, idle: time.Millisecond, batch: 1, done: func(id string) { done <- id }})
	select {
	case id := <-done:
		if id != "exec-1" {
			t.Errorf("done(%q), want exec-1", id)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the worker never reported the last stage's job")
	}
	// The pollers run concurrently: the last stage's job may be reported
	// before the one whose first report was refused.
	// Wait on the recorder, not the fake server: the server counts a result
	// before the worker records its answer.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		n := rec.stats()[callPut].N
		if n == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d jobs reported, want 3", n)
		}
	}
	cancel()
	stop()
	st := rec.stats()
	if st[callAck].N != 3 || st[callPut].N != 3 || st[callPollJob].N != 3 {
		t.Errorf("recorded %+v; want 3 acks, 3 puts, 3 polls with a job", st)
	}
	// The 500 is retried, and counted.
	if n, first := rec.errors(); n != 1 || !strings.Contains(first, "InternalFailure") {
		t.Errorf("errors %d (%s), want the one 500", n, first)
	}
}

func TestEngineReportTargets(t *testing.T) {
	o := &options{duration: time.Second, executions: 1000, workers: 8, starters: 4}
	r := newEngineReport(o)
	r.floor = &latency{N: 1000, P50: 100 * time.Microsecond, P99: 300 * time.Microsecond, ServerCPU: 30 * time.Millisecond}
	r.overhead = []overheadRow{{
		backend: "SQLite", executions: 100, walls: []time.Duration{20 * time.Millisecond},
		cpu:   cpuSplit{Wall: 2 * time.Second, CPUs: 2, Server: 2 * time.Second, Busy: 3 * time.Second},
		calls: map[string]callStats{callPut: {N: 1000, P50: time.Millisecond, P99: 6 * time.Millisecond}, callPollJob: {N: 1000}},
	}}
	r.concurrent = []concurrentRow{{
		backend: "SQLite", executions: 1000, started: 1000, complete: true, total: 5 * time.Second,
		final: statusCount{"Succeeded": 1001}, mem: memory{HWM: 30 << 20},
	}}
	var b strings.Builder
	r.write(&b)
	out := b.String()
	for _, want := range []string{
		"| SQLite: orchestration overhead < 50 ms of pipelined time per execution (10 stages) | 20.00 ms of pipelined CPU per execution",
		"PutJobSuccessResult p99 6.000 ms (p50 1.000 ms, 1000 calls) | **MISSED** |",
		"200 executions/s, peak RSS 30.0 MB | met |",
		"| SQLite | 100 | 20.00 | 20.00 | 20.00 | **20.00** | – | 20.0 (0.0) | 2.00, 0.60 | 0 |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if r.totalErrors() != 0 {
		t.Errorf("totalErrors = %d, want 0", r.totalErrors())
	}
	r.concurrent[0].complete = false
	r.concurrent[0].final = statusCount{"Succeeded": 901, "InProgress": 100}
	if got := r.totalErrors(); got != 100 {
		t.Errorf("totalErrors with 100 unfinished = %d, want 100", got)
	}
}
