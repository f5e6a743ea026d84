// Package runner runs Compute/AWS/Commands/1 actions: it polls pipelined
// for Commands jobs over the job protocol, runs each job's commands as one
// bash script in its own process group and temporary work directory, with
// a clean environment, ships the output to pipelined's job logs, and
// reports the result with output variables and the output artifact.
//
// One implementation serves two ways of running: embedded in
// `pipelined serve` (Server is the executions service itself, called in
// process) and remote, as `pipelined runner` on another machine (Server is
// an HTTP client signing with a worker key confined to the Commands type;
// see remote.go). Either way the runner holds nothing but the job's own
// credentials while it runs a job: the job's nonce (heartbeats, logs, ID
// tokens) and its scoped artifact credentials (inputs and output).
//
// A job's lifecycle: polled → acknowledged → preparing (inputs unpacked) →
// running (heartbeats renew the job's lease; a heartbeat answered "stop"
// cancels it) → finalizing (output variables, output artifact, last log
// flush) → reported. Cancelling sends SIGTERM to the job's process group,
// waits the grace period, then SIGKILL; no process of the job's group
// outlives it.
package runner

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/pipelined/pipelined/internal/commandspec"
	"github.com/pipelined/pipelined/internal/wire"
)

// Server is what a runner needs of pipelined: the job protocol (the
// executions service's methods, in process or over HTTP) and heartbeats.
type Server interface {
	PollForJobs(ctx context.Context, in *wire.PollForJobsInput) (*wire.PollForJobsOutput, error)
	AcknowledgeJob(ctx context.Context, in *wire.AcknowledgeJobInput) (*wire.AcknowledgeJobOutput, error)
	GetJobDetails(ctx context.Context, in *wire.GetJobDetailsInput) (*wire.GetJobDetailsOutput, error)
	PutJobSuccessResult(ctx context.Context, in *wire.PutJobSuccessResultInput) error
	PutJobFailureResult(ctx context.Context, in *wire.PutJobFailureResultInput) error
	// Heartbeat renews the job's lease and says whether to stop it.
	Heartbeat(ctx context.Context, jobID, nonce string) (stop bool, err error)
}

// LogSink receives a job's output: bytes at offset, answered with the
// length the server holds (the runner resends from there). An error
// wrapping ErrLogsRefused stops shipping the job's output (the server
// has no log endpoint, or refuses the job's).
type LogSink interface {
	AppendLog(ctx context.Context, jobID, nonce string, offset int64, data []byte) (acked int64, err error)
}

// ErrLogsRefused: the server will not take the job's output.
var ErrLogsRefused = errors.New("the server refuses the job's log")

// Options configure a Runner.
type Options struct {
	// Slots is how many jobs run at once (0: the number of CPUs).
	Slots int
	// Labels are the runner's labels in commandspec's canonical form: it
	// takes the Commands actions whose ComputeType/EnvironmentType labels
	// are exactly these ("" : actions without labels).
	Labels string
	// WorkDir holds the jobs' temporary directories ("": os.TempDir()).
	WorkDir string
	// Once makes Run return after one job (ephemeral runners); Slots is 1.
	Once bool

	// PublicURL is the server's public URL, for the jobs' ID token
	// request URL.
	PublicURL string
	// S3Endpoint is where the artifact bucket is ("" : AWS's own), Region
	// signs S3 requests, HTTPClient carries them (nil: a default one).
	S3Endpoint string
	Region     string
	HTTPClient *http.Client

	// Logs receives the jobs' output (nil: output is only kept for the
	// failure message).
	Logs LogSink

	// HeartbeatInterval is how often a running job's lease is renewed and
	// its stop flag read (0: 10s).
	HeartbeatInterval time.Duration
	// KillGrace is how long a cancelled job's processes get between
	// SIGTERM and SIGKILL (0: 10s).
	KillGrace time.Duration
	// MaxJobTimeout caps every job's run time below its own timeout
	// (0: the job's timeout only).
	MaxJobTimeout time.Duration
	// MaxOutputBytes caps a job's output (0: 1 GiB); beyond it the output
	// is dropped, with a note in the log.
	MaxOutputBytes int64
	// MaxInputBytes and MaxInputFiles bound what is unpacked from the
	// input artifacts of one job (0: 4 GiB, 100,000 files);
	// MaxArtifactBytes bounds the output artifact (0: 4 GiB).
	MaxInputBytes    int64
	MaxInputFiles    int
	MaxArtifactBytes int64
	// Shell runs the script (""; "bash").
	Shell string

	Logger *slog.Logger
	// OnStart, when set, is called with a job's process group id once its
	// script started (tests check that no process of it remains).
	OnStart func(jobID string, pgid int)
}

// Runner polls for Commands jobs and runs them.
type Runner struct {
	srv Server
	o   Options
	log *slog.Logger
}

// New returns a Runner.
func New(srv Server, o Options) *Runner {
	if o.Slots <= 0 {
		o.Slots = runtime.NumCPU()
	}
	if o.Once {
		o.Slots = 1
	}
	if o.WorkDir == "" {
		o.WorkDir = os.TempDir()
	}
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = 10 * time.Second
	}
	if o.KillGrace <= 0 {
		o.KillGrace = 10 * time.Second
	}
	if o.MaxOutputBytes <= 0 {
		o.MaxOutputBytes = 1 << 30
	}
	if o.MaxInputBytes <= 0 {
		o.MaxInputBytes = 4 << 30
	}
	if o.MaxInputFiles <= 0 {
		o.MaxInputFiles = 100000
	}
	if o.MaxArtifactBytes <= 0 {
		o.MaxArtifactBytes = 4 << 30
	}
	if o.Shell == "" {
		o.Shell = "bash"
	}
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Runner{srv: srv, o: o, log: o.Logger.With("component", "runner")}
}

// Run polls for jobs until pollCtx ends (jobs in flight go on), and
// returns when every job it took has been reported. When jobCtx ends,
// running jobs are cancelled (SIGTERM, grace, SIGKILL) and reported as
// failed. With Once, Run returns after one job.
func (r *Runner) Run(pollCtx, jobCtx context.Context) {
	pollCtx, stopPolling := context.WithCancel(pollCtx)
	defer stopPolling()
	var wg sync.WaitGroup
	for slot := range r.o.Slots {
		wg.Go(func() { r.slot(pollCtx, jobCtx, stopPolling, slot) })
	}
	wg.Wait()
}

// slot polls for one job at a time, and runs it.
func (r *Runner) slot(pollCtx, jobCtx context.Context, stopPolling func(), slot int) {
	in := &wire.PollForJobsInput{ActionTypeId: commandspec.Key.ID(), MaxBatchSize: wire.Ptr(1)}
	if r.o.Labels != "" {
		in.QueryParam = map[string]string{commandspec.LabelsParam: r.o.Labels}
	}
	backoff := time.Second
	for pollCtx.Err() == nil {
		out, err := r.srv.PollForJobs(pollCtx, in)
		if err != nil {
			if pollCtx.Err() != nil {
				return
			}
			r.log.Warn("poll for jobs", "slot", slot, "err", err)
			sleep(pollCtx, backoff+rand.N(backoff/2))
			backoff = min(backoff*2, 30*time.Second)
			continue
		}
		backoff = time.Second
		for _, j := range out.Jobs {
			// A job handed out is run even if polling stopped meanwhile:
			// left alone it would wait for the acknowledgement timeout.
			r.runJob(jobCtx, j)
			if r.o.Once {
				stopPolling()
				return
			}
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// isFinal reports whether a job protocol error means the job is gone for
// this runner (retrying cannot help).
func isFinal(err error) bool {
	var e *wire.Error
	if errors.As(err, &e) {
		switch e.Code {
		case wire.ErrJobNotFound, wire.ErrInvalidNonce, wire.ErrInvalidJobState, wire.ErrAccessDenied, wire.ErrValidation:
			return true
		}
	}
	return false
}
