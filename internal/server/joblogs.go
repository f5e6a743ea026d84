package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/pipelined/pipelined/internal/awsjson"
	"github.com/pipelined/pipelined/internal/identity"
	"github.com/pipelined/pipelined/internal/joblogs"
	"github.com/pipelined/pipelined/internal/logsapi"
	"github.com/pipelined/pipelined/internal/runner"
	"github.com/pipelined/pipelined/internal/sigv4"
	"github.com/pipelined/pipelined/internal/wire"
)

// LogConfig configures job logs (internal/joblogs).
type LogConfig struct {
	// Retention is how long a job's log is kept after the job ended (0:
	// DefaultLogRetention; negative: forever).
	Retention time.Duration
	// SweepInterval is how often ended jobs' logs are compacted and
	// expired ones deleted (0: 5s).
	SweepInterval time.Duration
}

// DefaultLogRetention is how long job logs are kept by default.
const DefaultLogRetention = 30 * 24 * time.Hour

// setupJobLogs builds the log service and routes its append endpoint.
func (s *Server) setupJobLogs(mux *http.ServeMux) {
	retention := s.cfg.Logs.Retention
	switch {
	case retention == 0:
		retention = DefaultLogRetention
	case retention < 0:
		retention = 0 // forever
	}
	s.jobLogs = joblogs.New(joblogs.Config{
		Store: s.store,
		// Authenticate reads only the store: the job and its nonce.
		Identity:      identity.New(identity.Config{Store: s.store, Nonces: s.engine.Nonces()}),
		Retention:     retention,
		SweepInterval: s.cfg.Logs.SweepInterval,
		Logger:        s.log,
	})
	mux.Handle(joblogs.Path, s.jobLogs.Handler())
	s.executions.SetLogStreamARN(s.commandsLogStreamARN)
	days := 0
	if retention > 0 && retention%(24*time.Hour) == 0 {
		days = int(retention / (24 * time.Hour))
	}
	s.logsAPI = logsapi.New(logsapi.Config{
		Store: s.store, Logs: s.jobLogs, Region: s.cfg.Region, AccountID: s.cfg.AccountID, RetentionDays: days, Logger: s.log,
		// Root credentials only: worker keys confine to job protocols.
		Auth: awsjson.SigV4{Verifier: &sigv4.Verifier{Region: s.cfg.Region, Service: logsapi.SigningService, Lookup: s.rootLookup}},
	})
}

// commandsLogStreamARN is the logStreamARN ListActionExecutions shows: the
// stream of a Commands action execution, as on AWS (other action types
// write no log there).
func (s *Server) commandsLogStreamARN(pipeline, actionExecutionID string, t *wire.ActionTypeId) string {
	if t == nil || t.Owner != "AWS" || t.Category != "Compute" || t.Provider != "Commands" || actionExecutionID == "" {
		return ""
	}
	return logsapi.StreamARN(s.cfg.Region, s.cfg.AccountID, pipeline, actionExecutionID)
}

// embeddedLogSink is the embedded runner's log sink: the job log service,
// in process (set up after the runner; called only once serving). Its
// answers are the HTTP endpoint's: a gap answers the acked length, a
// refusal (job not in progress, no such job, too large) stops shipping.
type embeddedLogSink struct{ s *Server }

func (e embeddedLogSink) AppendLog(ctx context.Context, jobID, _ string, offset int64, data []byte) (int64, error) {
	acked, err := e.s.jobLogs.Append(ctx, jobID, offset, data)
	var gap *joblogs.GapError
	switch {
	case errors.As(err, &gap):
		return gap.Acked, nil
	case errors.Is(err, joblogs.ErrJobNotRunning), errors.Is(err, joblogs.ErrNoJob), errors.Is(err, joblogs.ErrTooLarge), errors.Is(err, joblogs.ErrBadOffset):
		return 0, fmt.Errorf("%w: %w", runner.ErrLogsRefused, err)
	}
	return acked, err
}

// routeLogs sends CloudWatch Logs requests (by their X-Amz-Target) to the
// logs API and everything else to next.
func (s *Server) routeLogs(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" && logsapi.IsLogsRequest(r) {
			s.logsAPI.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// runLogSweeper finishes, compacts and expires job logs until ctx is done
// (one replica at a time, under a lease).
func (s *Server) runLogSweeper(ctx context.Context) { s.jobLogs.Run(ctx) }

// JobLogs returns the job log service (the embedded runner appends
// through it).
func (s *Server) JobLogs() *joblogs.Service { return s.jobLogs }
