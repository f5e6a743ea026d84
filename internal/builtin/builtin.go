// Package builtin runs the built-in S3 actions, Source/AWS/S3/1 and
// Deploy/AWS/S3/1, inside the server.
//
// Their actions become jobs like any custom action's (the engine's
// JobExecutor): in-server workers claim them from the store (woken by the
// store's job notifications, with a fallback interval), acknowledge them,
// do the S3 I/O outside any engine transaction, and report the result with
// Engine.CompleteJob, exactly as an external job worker would. A job is
// therefore run once by one replica, and a pipeline's lock is never held
// while bytes are copied.
//
// A source poller (one replica at a time, under a lease) checks the objects
// of Source/AWS/S3/1 actions with PollForSourceChanges (the default) and
// starts an execution when one changed. What it compares against is kept
// durably in the executions themselves: the revision the newest execution's
// source action recorded (VersionId, else ETag).
package builtin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/pipelined/pipelined/internal/actiontypes"
	"github.com/pipelined/pipelined/internal/engine"
	"github.com/pipelined/pipelined/internal/gitsource"
	"github.com/pipelined/pipelined/internal/store"
	"github.com/pipelined/pipelined/internal/wire"
)

// The action types this package runs.
var (
	SourceKey = actiontypes.Key{Category: "Source", Owner: "AWS", Provider: "S3", Version: "1"}
	DeployKey = actiontypes.Key{Category: "Deploy", Owner: "AWS", Provider: "S3", Version: "1"}
)

// Keys are the action types whose actions the server must turn into jobs
// (engine.JobExecutor) for this package's workers to run.
func Keys() []actiontypes.Key { return []actiontypes.Key{SourceKey, DeployKey, GitSourceKey} }

// Options configure the workers: where S3 is and how they sign for it.
type Options struct {
	// Endpoint is the S3 endpoint URL, addressed path-style (the embedded
	// store at the server's public URL, or an external S3 such as MinIO).
	// "" uses AWS's own regional endpoints.
	Endpoint string
	// Region signs S3 requests (default us-east-1).
	Region string
	// Credentials sign S3 requests (nil: anonymous requests).
	Credentials aws.CredentialsProvider
	// HTTPClient carries S3 requests (nil: the SDK's default).
	HTTPClient *http.Client
	// EnsureArtifactBucket, when set, makes sure the pipeline's artifact
	// bucket exists before a Source writes its output artifact (the
	// embedded store creates it on first use, as it does for job workers;
	// an external S3's artifact bucket must exist already).
	EnsureArtifactBucket func(ctx context.Context, bucket string) error

	// PollInterval is how often Source/AWS/S3/1 objects with
	// PollForSourceChanges are checked (0: one minute; negative: never).
	PollInterval time.Duration
	// ClaimInterval is how often workers look for jobs when no
	// notification woke them (0: 2 seconds).
	ClaimInterval time.Duration
	// Concurrency is how many jobs of each type run at once (0: 4).
	Concurrency int
	// ShutdownGrace is how long jobs in flight may still finish once Run's
	// context ends (0: 10 seconds); then they are interrupted and fail.
	ShutdownGrace time.Duration
	// MaxExtractFiles and MaxExtractBytes bound what Deploy with
	// Extract=true unpacks from one artifact (0: 50,000 files, 4 GiB).
	MaxExtractFiles int
	MaxExtractBytes int64
	// TempDir holds artifacts while they are copied ("" : os.TempDir()).
	TempDir string

	// Connections and GitCache serve the Git source action (git.go); nil:
	// its jobs fail with a configuration error.
	Connections Connections
	GitCache    *gitsource.Cache

	Logger *slog.Logger
}

// Pipelines is what the workers need of the pipelines service.
type Pipelines interface {
	// OpenSecret returns a configuration value in clear.
	OpenSecret(pipeline, value string) (string, error)
	// Declaration reads a version of a pipeline (0: the latest).
	Declaration(ctx context.Context, name string, version int) (*wire.PipelineDeclaration, store.Pipeline, error)
}

// Runner runs the built-in S3 actions' jobs and the source poller.
type Runner struct {
	eng *engine.Engine
	st  store.Store
	pl  Pipelines
	o   Options
	s3  *s3.Client
	log *slog.Logger
	// transport is the S3 client's own, when Options gave no HTTPClient:
	// its idle connections are closed when Run ends, so that none holds up
	// the shutdown of a server whose listener they reach (the embedded S3).
	transport *http.Transport

	wakeMu sync.Mutex
	wake   map[string]chan struct{} // by engine.JobTypeKey, buffered 1

	pollErrMu sync.Mutex
	pollErrs  map[string]string // last poll error per source object, to log changes only
}

// New returns a Runner; Run starts it.
func New(eng *engine.Engine, st store.Store, pl Pipelines, o Options) *Runner {
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	if o.PollInterval == 0 {
		o.PollInterval = time.Minute
	}
	if o.ClaimInterval <= 0 {
		o.ClaimInterval = 2 * time.Second
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	if o.ShutdownGrace <= 0 {
		o.ShutdownGrace = 10 * time.Second
	}
	if o.MaxExtractFiles <= 0 {
		o.MaxExtractFiles = 50000
	}
	if o.MaxExtractBytes <= 0 {
		o.MaxExtractBytes = 4 << 30
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Runner{eng: eng, st: st, pl: pl, o: o, log: o.Logger.With("component", "builtin-s3"),
		wake: map[string]chan struct{}{}, pollErrs: map[string]string{}}
	if o.HTTPClient == nil {
		r.transport = awshttp.NewBuildableClient().GetTransport()
		o.HTTPClient = &http.Client{Transport: r.transport}
	}
	r.s3 = newS3Client(o)
	for _, k := range Keys() {
		r.wake[engine.JobTypeKey(k)] = make(chan struct{}, 1)
	}
	return r
}

// Run works until ctx ends, then lets jobs in flight finish (up to
// ShutdownGrace) and returns. Call it once.
func (r *Runner) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { r.listen(ctx) })
	wg.Go(func() { r.work(ctx, SourceKey, r.runSource) })
	wg.Go(func() { r.work(ctx, DeployKey, r.runDeploy) })
	wg.Go(func() { r.work(ctx, GitSourceKey, r.runGitSource) })
	if r.o.PollInterval > 0 {
		wg.Go(func() { r.poll(ctx) })
	}
	wg.Wait()
	if r.transport != nil {
		r.transport.CloseIdleConnections()
	}
}

// listen relays the store's job notifications to the workers.
func (r *Runner) listen(ctx context.Context) {
	for ctx.Err() == nil {
		ch, err := r.st.Listen(ctx, engine.JobsChannel)
		if err != nil {
			if ctx.Err() == nil {
				r.log.Warn("listen for job notifications; workers fall back to polling", "err", err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		for payload := range ch {
			key, _ := engine.ParseJobsNotification(payload)
			r.signal(key)
		}
		for key := range r.wake { // the stream broke: look again
			r.signal(key)
		}
	}
}

func (r *Runner) signal(key string) {
	if ch, ok := r.wake[key]; ok {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// result is what an action's run reports.
type result struct {
	ok       bool
	summary  string
	revision string
	vars     map[string]string
	failType wire.FailureType
	message  string
}

func failure(t wire.FailureType, format string, args ...any) result {
	return result{failType: t, message: fmt.Sprintf(format, args...)}
}

// job is a claimed job with its data decoded and configuration in clear.
type job struct {
	store.Job
	doc    *engine.JobDoc
	data   wire.JobData
	config map[string]string
}

type runFunc func(ctx context.Context, j *job) result

// work claims and runs the jobs of one action type until ctx ends.
func (r *Runner) work(ctx context.Context, key actiontypes.Key, run runFunc) {
	wake := r.wake[engine.JobTypeKey(key)]
	slots := make(chan struct{}, r.o.Concurrency)
	freed := make(chan struct{}, 1)
	// Jobs run under their own context: they outlive ctx by the grace period.
	jobCtx, interrupt := context.WithCancel(context.WithoutCancel(ctx))
	defer interrupt()
	var inflight sync.WaitGroup
	for ctx.Err() == nil {
		if free := cap(slots) - len(slots); free > 0 {
			jobs, err := r.st.ClaimJobs(ctx, store.ActionTypeKey(key), nil, free,
				func(id string) (string, string) { return r.eng.Nonces().New(id, false) }, time.Now().Add(r.eng.AckTimeout()))
			if err != nil && ctx.Err() == nil {
				r.log.Warn("claim jobs", "type", engine.JobTypeKey(key), "err", err)
			}
			for _, j := range jobs {
				slots <- struct{}{}
				inflight.Go(func() {
					defer func() {
						<-slots
						select {
						case freed <- struct{}{}:
						default:
						}
					}()
					r.runJob(jobCtx, j, run)
				})
			}
			if len(jobs) == free && len(jobs) > 0 {
				continue // there may be more
			}
		}
		timer := time.NewTimer(r.o.ClaimInterval)
		select {
		case <-ctx.Done():
		case <-wake:
		case <-freed:
		case <-timer.C:
		}
		timer.Stop()
	}
	done := make(chan struct{})
	go func() { inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(r.o.ShutdownGrace):
		r.log.Warn("interrupting built-in S3 jobs still running at shutdown", "type", engine.JobTypeKey(key))
		interrupt()
		<-done
	}
}

// errInterrupted is the cause of a job's context when the server shuts down.
var errInterrupted = errors.New("interrupted")

// runJob acknowledges a claimed job, runs it and reports its result.
func (r *Runner) runJob(ctx context.Context, sj store.Job, run runFunc) {
	log := r.log.With("job", sj.ID, "pipeline", sj.Pipeline)
	j, err := r.decode(sj)
	if err != nil {
		// Acknowledge so that the failure can be reported: the job is
		// unusable, and left alone it would come back after every ack timeout.
		log.Error("decode job", "err", err)
		if _, aerr := r.eng.Acknowledge(ctx, sj.Pipeline, sj.ID, sj.Nonce); aerr == nil {
			r.complete(log, sj, failure(wire.FailureTypeJobFailed, "pipelined could not read the job: %v", err))
		}
		return
	}
	status, err := r.eng.Acknowledge(ctx, sj.Pipeline, sj.ID, sj.Nonce)
	if err != nil {
		log.Warn("acknowledge job", "err", err)
		return
	}
	if status != engine.JobInProgress {
		return // abandoned meanwhile
	}
	log = log.With("stage", j.doc.Stage, "action", j.doc.Action)
	timeout := time.Duration(j.doc.TimeoutSeconds) * time.Second
	if timeout <= 0 {
		timeout = time.Hour
	}
	runCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res := r.safeRun(runCtx, j, run)
	if !res.ok {
		switch {
		case ctx.Err() != nil:
			res = failure(wire.FailureTypeSystemUnavailable, "The action was interrupted because pipelined shut down while it ran; retry the stage")
		case runCtx.Err() != nil:
			res = failure(wire.FailureTypeJobFailed, "The action did not finish within %s", timeout)
		}
	}
	if res.ok {
		log.Info("built-in action succeeded", "summary", res.summary)
	} else {
		log.Info("built-in action failed", "type", res.failType, "message", res.message)
	}
	r.complete(log, sj, res)
}

func (r *Runner) safeRun(ctx context.Context, j *job, run runFunc) (res result) {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error("built-in action panicked", "job", j.ID, "panic", p, "stack", string(debug.Stack()))
			res = failure(wire.FailureTypeJobFailed, "pipelined failed internally while running the action")
		}
	}()
	return run(ctx, j)
}

func (r *Runner) decode(sj store.Job) (*job, error) {
	doc, err := engine.DecodeJob(sj)
	if err != nil {
		return nil, err
	}
	j := &job{Job: sj, doc: doc}
	if err := json.Unmarshal(doc.Data, &j.data); err != nil {
		return nil, fmt.Errorf("decode job data: %w", err)
	}
	j.config = map[string]string{}
	if j.data.ActionConfiguration != nil {
		for k, v := range j.data.ActionConfiguration.Configuration {
			clear, err := r.pl.OpenSecret(sj.Pipeline, v)
			if err != nil {
				return nil, fmt.Errorf("open configuration %s: %w", k, err)
			}
			j.config[k] = clear
		}
	}
	return j, nil
}

// complete reports a result, retrying while the store fails (a result
// that never arrives would leave the action waiting for its timeout).
func (r *Runner) complete(log *slog.Logger, sj store.Job, res result) {
	jr := engine.JobResult{Success: res.ok, Summary: res.summary, Revision: res.revision, OutputVariables: res.vars}
	if !res.ok {
		jr.FailureType, jr.FailureMessage = string(res.failType), truncate(res.message, 5000)
	}
	delay := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := r.eng.CompleteJob(ctx, sj.Pipeline, sj.ID, jr)
		cancel()
		if err == nil {
			return
		}
		if _, ok := wire.AsError(err); ok || attempt == 6 {
			// The job was abandoned, or the pipeline deleted, under us.
			log.Warn("report job result", "err", err)
			return
		}
		log.Warn("report job result; retrying", "attempt", attempt, "err", err)
		time.Sleep(delay)
		delay *= 2
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
