package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/pipelined/pipelined/internal/commandspec"
	"github.com/pipelined/pipelined/internal/engine"
	"github.com/pipelined/pipelined/internal/identity"
	"github.com/pipelined/pipelined/internal/runner"
	"github.com/pipelined/pipelined/internal/wire"
)

// RunnerConfig configures the Commands action: the embedded runner
// (internal/runner) and the runner lease every runner's jobs hold.
type RunnerConfig struct {
	// Slots is how many Commands jobs the embedded runner runs at once
	// (0: no embedded runner; remote runners may still serve).
	Slots int
	// Labels are the embedded runner's labels (commandspec canonical form).
	Labels string
	// WorkDir holds the embedded runner's job directories ("": the
	// system's temporary directory).
	WorkDir string
	// Lease is how long a runner's job lives without a heartbeat before it
	// fails with RunnerLost (0: 30s).
	Lease time.Duration
	// HeartbeatInterval, KillGrace and MaxJobTimeout tune the embedded
	// runner (zero: the runner's defaults; tests shorten them).
	HeartbeatInterval time.Duration
	KillGrace         time.Duration
	MaxJobTimeout     time.Duration
	// OnStart is passed to the embedded runner (tests).
	OnStart func(jobID string, pgid int)
	// Logs, when set, receives the embedded runner's job output.
	Logs runner.LogSink
}

// DefaultRunnerLease is the lease of a runner's job without heartbeats.
const DefaultRunnerLease = 30 * time.Second

// setupRunner makes Commands actions jobs with a runner lease, and builds
// the embedded runner when it has slots.
func (s *Server) setupRunner() {
	lease := s.cfg.Runner.Lease
	if lease <= 0 {
		lease = DefaultRunnerLease
	}
	s.engine.RegisterExecutor(commandspec.Key, engine.JobExecutor())
	s.engine.SetJobLease(commandspec.Key, lease)
	rc := s.cfg.Runner
	if rc.Slots <= 0 {
		return
	}
	s3 := s.PublicURL
	if s.cfg.ArtifactS3Endpoint != "" {
		s3 = s.cfg.ArtifactS3Endpoint
	}
	s.runnerHTTP = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	s.runner = runner.New(embeddedServer{s.executions}, runner.Options{
		Slots: rc.Slots, Labels: rc.Labels, WorkDir: rc.WorkDir,
		PublicURL: s.PublicURL, S3Endpoint: s3, Region: s.cfg.Region, HTTPClient: s.runnerHTTP,
		Logs: rc.Logs, HeartbeatInterval: rc.HeartbeatInterval, KillGrace: rc.KillGrace, MaxJobTimeout: rc.MaxJobTimeout,
		Logger: s.log, OnStart: rc.OnStart,
	})
}

// runRunner runs the embedded runner until pollCtx ends; its jobs are
// cancelled when jobCtx ends. It returns at once without one.
func (s *Server) runRunner(pollCtx, jobCtx context.Context) {
	if s.runner == nil {
		return
	}
	s.runner.Run(pollCtx, jobCtx)
	s.runnerHTTP.CloseIdleConnections()
}

// embeddedServer is the embedded runner's view of pipelined: the
// executions service, called in process.
type embeddedServer struct {
	ex interface {
		PollForJobs(ctx context.Context, in *wire.PollForJobsInput) (*wire.PollForJobsOutput, error)
		AcknowledgeJob(ctx context.Context, in *wire.AcknowledgeJobInput) (*wire.AcknowledgeJobOutput, error)
		GetJobDetails(ctx context.Context, in *wire.GetJobDetailsInput) (*wire.GetJobDetailsOutput, error)
		PutJobSuccessResult(ctx context.Context, in *wire.PutJobSuccessResultInput) error
		PutJobFailureResult(ctx context.Context, in *wire.PutJobFailureResultInput) error
		Heartbeat(ctx context.Context, jobID, nonce string) (bool, error)
	}
}

func (e embeddedServer) PollForJobs(ctx context.Context, in *wire.PollForJobsInput) (*wire.PollForJobsOutput, error) {
	return e.ex.PollForJobs(ctx, in)
}
func (e embeddedServer) AcknowledgeJob(ctx context.Context, in *wire.AcknowledgeJobInput) (*wire.AcknowledgeJobOutput, error) {
	return e.ex.AcknowledgeJob(ctx, in)
}
func (e embeddedServer) GetJobDetails(ctx context.Context, in *wire.GetJobDetailsInput) (*wire.GetJobDetailsOutput, error) {
	return e.ex.GetJobDetails(ctx, in)
}
func (e embeddedServer) PutJobSuccessResult(ctx context.Context, in *wire.PutJobSuccessResultInput) error {
	return e.ex.PutJobSuccessResult(ctx, in)
}
func (e embeddedServer) PutJobFailureResult(ctx context.Context, in *wire.PutJobFailureResultInput) error {
	return e.ex.PutJobFailureResult(ctx, in)
}
func (e embeddedServer) Heartbeat(ctx context.Context, jobID, nonce string) (bool, error) {
	return e.ex.Heartbeat(ctx, jobID, nonce)
}

// HeartbeatPath is the runner heartbeat endpoint's pattern.
const HeartbeatPath = "POST /runner/v1/jobs/{jobId}/heartbeat"

// routeRunner adds the runner endpoints: POST
// /runner/v1/jobs/{jobId}/heartbeat, authenticated with
// "Authorization: Bearer <jobId>:<nonce>", answers {"stop": bool}: true
// once the job is no longer in progress (stopped, abandoned, superseded,
// timed out or reported). Unknown jobs and wrong nonces get 401 alike.
func (s *Server) routeRunner(mux *http.ServeMux) {
	mux.HandleFunc(HeartbeatPath, func(w http.ResponseWriter, r *http.Request) {
		jobID := r.PathValue("jobId")
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		id, nonce, ok2 := identity.ParseRequestToken(tok)
		if !ok || !ok2 || id != jobID || nonce == "" {
			writeRunnerError(w, http.StatusUnauthorized, "the heartbeat must carry Authorization: Bearer <jobId>:<nonce> of the job in the path")
			return
		}
		stop, err := s.executions.Heartbeat(r.Context(), jobID, nonce)
		var we *wire.Error
		switch {
		case errors.As(err, &we) && (we.Code == wire.ErrJobNotFound || we.Code == wire.ErrInvalidNonce):
			writeRunnerError(w, http.StatusUnauthorized, "not a running job's id and nonce")
			return
		case err != nil:
			if r.Context().Err() == nil {
				s.log.Warn("runner heartbeat", "job", jobID, "err", err)
			}
			writeRunnerError(w, http.StatusServiceUnavailable, "the heartbeat could not be recorded; send it again")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]bool{"stop": stop})
	})
}

func writeRunnerError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": msg})
}
