package engine

import (
	"time"

	"github.com/pipelined/pipelined/internal/actiontypes"
	"github.com/pipelined/pipelined/internal/store"
)

// What the engine did, for metrics and logs. A transition does not report
// its events as it goes: the engine compares what it read with what it
// writes (execution, stage and action statuses; job statuses) and reports
// the differences once the transition committed, so that a rolled-back
// transition reports nothing and no state-changing code needs a hook.

// Event kinds.
const (
	EventExecutionStarted  = "execution.started"
	EventExecutionFinished = "execution.finished"
	EventStage             = "stage"  // a stage run's status changed
	EventAction            = "action" // an action attempt started or its status changed
	EventJobQueued         = "job.queued"
	EventJobContinued      = "job.continued" // queued with a worker's continuation token
	EventJobFinished       = "job.finished"
	EventApprovalDecided   = "approval.decided"
)

// Event is one thing the engine did.
type Event struct {
	Kind        string
	Pipeline    string
	ExecutionID string
	// Status is the new status (of the execution, stage, action or job;
	// Approved or Rejected for an approval).
	Status string
	// TriggerType and TriggerDetail (the caller's ARN, or the source) of a
	// started execution.
	TriggerType, TriggerDetail string
	Stage, Action              string
	// ActionType is Owner/Category/Provider/Version of actions and jobs.
	ActionType string
	JobID      string
	// Continuation is the worker's continuation token of a continued job.
	Continuation string
	// By is who decided an approval (the caller's ARN).
	By string
	// Duration: of a finished execution (since it was created), of a
	// finished job (since it was queued).
	Duration time.Duration
	// Summary is a finished execution's status summary.
	Summary string
}

// ApprovalTimerSuffix ends the ID of the timer of a pending manual
// approval (one per pending approval): counting the timers with it counts
// the pending approvals, on any replica.
const ApprovalTimerSuffix = ":" + approvalTimer

// Observer receives the engine's events after their transition committed:
// the job events first, then the execution, stage and action events. It
// must not block: it runs on the request or sweeper that made the
// transition.
type Observer interface {
	Observe(Event)
}

// snapshot is what a transition read of an execution: its statuses.
type snapshot struct {
	status  string
	stages  []string
	actions map[string]string // action execution id -> status
}

func snapshotOf(x *Execution) *snapshot {
	s := &snapshot{status: x.Status, stages: make([]string, len(x.Stages)), actions: map[string]string{}}
	for i := range x.Stages {
		s.stages[i] = x.Stages[i].Status
		for _, a := range x.Stages[i].Actions {
			s.actions[a.ExecutionID] = a.Status
		}
	}
	return s
}

// observing says whether transitions collect events.
func (t *txn) observing() bool { return t.e.observer != nil }

// read records an execution as the transition read it.
func (t *txn) read(x *Execution) {
	if !t.observing() {
		return
	}
	if t.snaps == nil {
		t.snaps = map[string]*snapshot{}
	}
	if _, ok := t.snaps[x.ID]; !ok {
		t.snaps[x.ID] = snapshotOf(x)
	}
}

// diff turns what the transition changed into events; it runs inside the
// transaction (declarations may need reading), before the writes.
func (t *txn) diff() {
	if !t.observing() {
		return
	}
	for id := range t.dirty {
		x := t.execs[id]
		before := t.snaps[id]
		if before == nil {
			t.events = append(t.events, Event{Kind: EventExecutionStarted, Pipeline: x.Pipeline, ExecutionID: x.ID,
				Status: StatusInProgress, TriggerType: x.TriggerType, TriggerDetail: x.TriggerDetail})
			before = &snapshot{status: StatusInProgress, actions: map[string]string{}}
		}
		for i := range x.Stages {
			st := &x.Stages[i]
			old := ""
			if i < len(before.stages) {
				old = before.stages[i]
			}
			if st.Status != old && st.Status != "" {
				t.events = append(t.events, Event{Kind: EventStage, Pipeline: x.Pipeline, ExecutionID: x.ID, Stage: st.Name, Status: st.Status})
			}
			for _, run := range st.Actions {
				if before.actions[run.ExecutionID] == run.Status {
					continue
				}
				typ := t.actionTypeOf(x, run.Stage, run.Name)
				t.events = append(t.events, Event{Kind: EventAction, Pipeline: x.Pipeline, ExecutionID: x.ID,
					Stage: run.Stage, Action: run.Name, ActionType: typ, Status: run.Status})
				if run.Token != "" && run.UpdatedBy != "" && (run.Status == StatusSucceeded || run.Status == StatusFailed) {
					result := "Approved"
					if run.Status == StatusFailed {
						result = "Rejected"
					}
					t.events = append(t.events, Event{Kind: EventApprovalDecided, Pipeline: x.Pipeline, ExecutionID: x.ID,
						Stage: run.Stage, Action: run.Name, ActionType: typ, Status: result, By: run.UpdatedBy})
				}
			}
		}
		wasActive := before.status == StatusInProgress || before.status == StatusStopping
		if wasActive && !x.Active() {
			t.events = append(t.events, Event{Kind: EventExecutionFinished, Pipeline: x.Pipeline, ExecutionID: x.ID,
				Status: x.Status, Summary: x.StatusSummary, Duration: t.now.Sub(x.Created)})
		}
	}
}

// actionTypeOf names an action's type from the execution's declaration
// ("" when it cannot be read).
func (t *txn) actionTypeOf(x *Execution, stage, action string) string {
	decl, err := t.declOf(x)
	if err != nil {
		return ""
	}
	ad := findAction(decl, stage, action)
	if ad == nil {
		return ""
	}
	return JobTypeKey(actiontypes.KeyOf(ad.ActionTypeId))
}

// notify reports a committed transition's events.
func (e *Engine) notify(events []Event) {
	for _, ev := range events {
		e.observer.Observe(ev)
	}
}

// jobWatch wraps a transition's store transaction to see job changes:
// the statuses jobs were read with, and what is written.
type jobWatch struct {
	store.PipelineTx
	t    *txn
	seen map[string]string // job id -> status as read or last written
}

func (w *jobWatch) Job(id string) (store.Job, error) {
	j, err := w.PipelineTx.Job(id)
	if err == nil {
		if _, ok := w.seen[id]; !ok {
			w.seen[id] = j.Status
		}
	}
	return j, err
}

func (w *jobWatch) PutJob(j store.Job) error {
	if err := w.PipelineTx.PutJob(j); err != nil {
		return err
	}
	old, known := w.seen[j.ID]
	w.seen[j.ID] = j.Status
	typ := j.ActionType.Owner + "/" + j.ActionType.Category + "/" + j.ActionType.Provider + "/" + j.ActionType.Version
	ev := Event{Pipeline: j.Pipeline, ExecutionID: j.ExecutionID, JobID: j.ID, ActionType: typ, Status: j.Status}
	switch {
	case !known && j.Status == store.JobQueued:
		ev.Kind = EventJobQueued
		if doc := w.t.e.jobDocs.get(j.ID, j.Doc); doc != nil {
			ev.Stage, ev.Action = doc.Stage, doc.Action
			if doc.Continuation != "" {
				ev.Kind, ev.Continuation = EventJobContinued, doc.Continuation
			}
		}
	case finishedJob(j.Status) && !finishedJob(old):
		ev.Kind = EventJobFinished
		ev.Duration = w.t.now.Sub(j.Created)
	default:
		return nil
	}
	w.t.events = append(w.t.events, ev)
	return nil
}

func finishedJob(status string) bool {
	switch status {
	case JobSucceeded, JobFailed, JobTimedOut, JobAbandoned:
		return true
	}
	return false
}
