package server

import (
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pipelined/pipelined/internal/store"
	"github.com/pipelined/pipelined/internal/telemetry"
)

// Metrics and event logs (internal/telemetry): the engine reports its
// transitions to tel, the store wrapped by tel reports job dispatches, and
// the gauges of open jobs and pending approvals are counted in the
// database at scrape time (at most every Config.MetricsCountInterval).

// observeStore wraps the store for telemetry; raw stays the store itself
// (its counts).
func observeStore(st store.Store, log *slog.Logger) (wrapped store.Store, tel *telemetry.Telemetry) {
	tel = telemetry.New(log)
	return tel.Store(st), tel
}

// registerTelemetry registers the metrics of tel, the store's gauges and
// the embedded artifact store's metrics.
func (s *Server) registerTelemetry(reg prometheus.Registerer, tel *telemetry.Telemetry, raw store.Store) {
	tel.Register(reg)
	if c, ok := raw.(store.Counter); ok {
		every := s.cfg.MetricsCountInterval
		switch {
		case every == 0:
			every = 5 * time.Second
		case every < 0:
			every = 0
		}
		telemetry.NewGauges(reg, c, s.log, every)
	}
	if s.s3 != nil {
		s.s3.RegisterMetrics(reg)
	}
}
