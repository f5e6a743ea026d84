package server

import (
	"context"
	"net/http"
	"time"

	"github.com/pipelined/pipelined/internal/identity"
	"github.com/pipelined/pipelined/internal/joblogs"
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
		Identity:      identity.New(identity.Config{Store: s.store}),
		Retention:     retention,
		SweepInterval: s.cfg.Logs.SweepInterval,
		Logger:        s.log,
	})
	mux.Handle(joblogs.Path, s.jobLogs.Handler())
}

// runLogSweeper finishes, compacts and expires job logs until ctx is done
// (one replica at a time, under a lease).
func (s *Server) runLogSweeper(ctx context.Context) { s.jobLogs.Run(ctx) }

// JobLogs returns the job log service (the embedded runner appends
// through it).
func (s *Server) JobLogs() *joblogs.Service { return s.jobLogs }
