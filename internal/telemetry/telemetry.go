// Package telemetry turns what pipelined does into Prometheus metrics and
// log lines: the engine's events (executions, stages, actions, jobs,
// approvals), job dispatches, and gauges counted from the store so that
// every replica reports the same numbers and a restart loses none.
//
// Label cardinality is bounded: pipelines (at most --max-pipelines), action
// types, statuses and trigger types; never an execution or job id.
package telemetry

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pipelined/pipelined/internal/engine"
	"github.com/pipelined/pipelined/internal/store"
)

// Telemetry records the server's events.
type Telemetry struct {
	log *slog.Logger

	executionsStarted  *prometheus.CounterVec
	executionsFinished *prometheus.CounterVec
	stages             *prometheus.CounterVec
	actions            *prometheus.CounterVec
	jobsQueued         *prometheus.CounterVec
	jobsDispatched     *prometheus.CounterVec
	jobsFinished       *prometheus.CounterVec
	jobWait            *prometheus.HistogramVec
	approvals          *prometheus.CounterVec
}

// New returns a Telemetry that logs with log; Register registers its
// metrics (they count from New on).
func New(log *slog.Logger) *Telemetry {
	t := &Telemetry{
		log: log,
		executionsStarted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pipelined_executions_started_total", Help: "Pipeline executions started, by pipeline and trigger type.",
		}, []string{"pipeline", "trigger"}),
		executionsFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pipelined_executions_finished_total", Help: "Pipeline executions that ended, by pipeline and status (an execution whose stage is retried can end again).",
		}, []string{"pipeline", "status"}),
		stages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pipelined_stage_transitions_total", Help: "Stage runs that changed status, by the new status.",
		}, []string{"status"}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pipelined_action_transitions_total", Help: "Action attempts started (InProgress) or ended, by action type and status.",
		}, []string{"action_type", "status"}),
		jobsQueued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pipelined_jobs_queued_total", Help: "Jobs queued for workers, by action type (continuations included).",
		}, []string{"action_type"}),
		jobsDispatched: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pipelined_jobs_dispatched_total", Help: "Jobs handed to a worker by a poll, by action type (a job not acknowledged in time is dispatched again).",
		}, []string{"action_type"}),
		jobsFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pipelined_jobs_finished_total", Help: "Jobs that ended, by action type and status (Succeeded, Failed, TimedOut, Abandoned).",
		}, []string{"action_type", "status"}),
		jobWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "pipelined_job_wait_seconds", Help: "Time from a job being queued to a worker's poll dispatching it, by action type.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600},
		}, []string{"action_type"}),
		approvals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pipelined_approvals_decided_total", Help: "Manual approvals decided by PutApprovalResult, by result (Approved, Rejected).",
		}, []string{"result"}),
	}
	return t
}

// Register registers the metrics with reg.
func (t *Telemetry) Register(reg prometheus.Registerer) {
	reg.MustRegister(t.executionsStarted, t.executionsFinished, t.stages, t.actions,
		t.jobsQueued, t.jobsDispatched, t.jobsFinished, t.jobWait, t.approvals)
}

// Observe implements engine.Observer: one metric update and at most one
// log line per event. Stage and action transitions and queued jobs are
// logged at debug level (there are many); the rest at info.
func (t *Telemetry) Observe(ev engine.Event) {
	switch ev.Kind {
	case engine.EventExecutionStarted:
		t.executionsStarted.WithLabelValues(ev.Pipeline, ev.TriggerType).Inc()
		t.log.Info("execution started", "pipeline", ev.Pipeline, "execution_id", ev.ExecutionID,
			"trigger", ev.TriggerType, "caller", ev.TriggerDetail)
	case engine.EventExecutionFinished:
		t.executionsFinished.WithLabelValues(ev.Pipeline, ev.Status).Inc()
		attrs := []any{"pipeline", ev.Pipeline, "execution_id", ev.ExecutionID, "status", ev.Status, "duration", ev.Duration.Round(time.Millisecond)}
		if ev.Summary != "" {
			attrs = append(attrs, "summary", ev.Summary)
		}
		t.log.Info("execution finished", attrs...)
	case engine.EventStage:
		t.stages.WithLabelValues(ev.Status).Inc()
		t.log.Debug("stage", "pipeline", ev.Pipeline, "execution_id", ev.ExecutionID, "stage", ev.Stage, "status", ev.Status)
	case engine.EventAction:
		t.actions.WithLabelValues(ev.ActionType, ev.Status).Inc()
		t.log.Debug("action", "pipeline", ev.Pipeline, "execution_id", ev.ExecutionID, "stage", ev.Stage, "action", ev.Action,
			"action_type", ev.ActionType, "status", ev.Status)
	case engine.EventJobQueued:
		t.jobsQueued.WithLabelValues(ev.ActionType).Inc()
		t.log.Debug("job queued", "job_id", ev.JobID, "pipeline", ev.Pipeline, "execution_id", ev.ExecutionID,
			"stage", ev.Stage, "action", ev.Action, "action_type", ev.ActionType)
	case engine.EventJobContinued:
		t.jobsQueued.WithLabelValues(ev.ActionType).Inc()
		t.log.Info("job continued", "job_id", ev.JobID, "pipeline", ev.Pipeline, "execution_id", ev.ExecutionID,
			"stage", ev.Stage, "action", ev.Action, "action_type", ev.ActionType, "continuation_token", ev.Continuation)
	case engine.EventJobFinished:
		t.jobsFinished.WithLabelValues(ev.ActionType, ev.Status).Inc()
		t.log.Info("job finished", "job_id", ev.JobID, "pipeline", ev.Pipeline, "execution_id", ev.ExecutionID,
			"action_type", ev.ActionType, "status", ev.Status, "duration", ev.Duration.Round(time.Millisecond))
	case engine.EventApprovalDecided:
		t.approvals.WithLabelValues(ev.Status).Inc()
		t.log.Info("approval decided", "pipeline", ev.Pipeline, "execution_id", ev.ExecutionID, "stage", ev.Stage,
			"action", ev.Action, "result", ev.Status, "by", ev.By)
	}
}

// Dispatched records jobs a poll handed to a worker.
func (t *Telemetry) Dispatched(jobs []store.Job, now time.Time) {
	for _, j := range jobs {
		typ := actionType(j.ActionType)
		wait := max(now.Sub(j.Created), 0)
		t.jobsDispatched.WithLabelValues(typ).Inc()
		t.jobWait.WithLabelValues(typ).Observe(wait.Seconds())
		t.log.Info("job dispatched", "job_id", j.ID, "pipeline", j.Pipeline, "execution_id", j.ExecutionID,
			"action_type", typ, "waited", wait.Round(time.Millisecond))
	}
}

func actionType(k store.ActionTypeKey) string {
	return k.Owner + "/" + k.Category + "/" + k.Provider + "/" + k.Version
}

// Store wraps st so that its ClaimJobs, which every poller uses (the
// CodePipeline job protocol, third-party polls, the built-in workers),
// reports dispatches.
func (t *Telemetry) Store(st store.Store) store.Store { return &dispatchStore{Store: st, t: t} }

type dispatchStore struct {
	store.Store
	t *Telemetry
}

func (s *dispatchStore) ClaimJobs(ctx context.Context, key store.ActionTypeKey, queryValue *string, max int, newNonce func() string, ackDeadline time.Time) ([]store.Job, error) {
	jobs, err := s.Store.ClaimJobs(ctx, key, queryValue, max, newNonce, ackDeadline)
	if len(jobs) > 0 {
		s.t.Dispatched(jobs, time.Now())
	}
	return jobs, err
}

// Gauges counts state from the store for each scrape, at most every
// cacheFor (a scrape storm costs the database one count per interval),
// each count bounded by a timeout. A count that fails keeps the last
// value and is logged; pipelined_store_count_errors_total counts them.
type Gauges struct {
	counter  store.Counter
	log      *slog.Logger
	cacheFor time.Duration

	jobsDesc, approvalsDesc *prometheus.Desc
	errors                  prometheus.Counter

	mu        sync.Mutex
	at        time.Time
	jobs      []store.JobCount
	approvals int
}

// NewGauges registers the store-derived gauges with reg.
func NewGauges(reg prometheus.Registerer, c store.Counter, log *slog.Logger, cacheFor time.Duration) *Gauges {
	g := &Gauges{
		counter: c, log: log, cacheFor: cacheFor,
		jobsDesc: prometheus.NewDesc("pipelined_jobs", "Jobs now queued, dispatched (awaiting acknowledgement) or in progress, by action type and state, counted in the database.",
			[]string{"action_type", "state"}, nil),
		approvalsDesc: prometheus.NewDesc("pipelined_approvals_pending", "Manual approvals now waiting for a decision, counted in the database.", nil, nil),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pipelined_store_count_errors_total", Help: "Store counts behind pipelined_jobs and pipelined_approvals_pending that failed (the last values were reported).",
		}),
	}
	if reg != nil {
		reg.MustRegister(g, g.errors)
	}
	return g
}

// Describe implements prometheus.Collector.
func (g *Gauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- g.jobsDesc
	ch <- g.approvalsDesc
}

// Collect implements prometheus.Collector.
func (g *Gauges) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.at.IsZero() || time.Since(g.at) >= g.cacheFor {
		g.refresh()
	}
	// Every state of every type with open jobs; a type whose jobs all
	// finished reports nothing (a count of 0 would stay forever).
	byType := map[string]map[string]int{}
	for _, c := range g.jobs {
		typ := actionType(c.ActionType)
		if byType[typ] == nil {
			byType[typ] = map[string]int{}
		}
		byType[typ][c.Status] += c.Count
	}
	for typ, states := range byType {
		for _, s := range store.OpenJobStatuses {
			ch <- prometheus.MustNewConstMetric(g.jobsDesc, prometheus.GaugeValue, float64(states[s]), typ, s)
		}
	}
	ch <- prometheus.MustNewConstMetric(g.approvalsDesc, prometheus.GaugeValue, float64(g.approvals))
}

// countTimeout bounds one count: a scrape must not hang on the database.
const countTimeout = 2 * time.Second

func (g *Gauges) refresh() {
	ctx, cancel := context.WithTimeout(context.Background(), countTimeout)
	defer cancel()
	jobs, err := g.counter.OpenJobs(ctx)
	if err != nil {
		g.errors.Inc()
		g.log.Warn("metrics: counting open jobs failed", "err", err)
	} else {
		g.jobs = jobs
	}
	n, err := g.counter.CountTimers(ctx, engine.ApprovalTimerSuffix)
	if err != nil {
		g.errors.Inc()
		g.log.Warn("metrics: counting pending approvals failed", "err", err)
	} else {
		g.approvals = n
	}
	g.at = time.Now()
}
