package engine

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/pipelined/pipelined/internal/actiontypes"
	"github.com/pipelined/pipelined/internal/store"
	"github.com/pipelined/pipelined/internal/wire"
)

// StartRequest describes a new execution.
type StartRequest struct {
	Pipeline        string
	ClientToken     string
	Variables       []wire.PipelineVariable
	SourceOverrides map[string]string // source action name -> revision
	TriggerType     string
	TriggerDetail   string
}

// maxActive bounds the executions of one pipeline that may be in progress
// or waiting at once (ConcurrentPipelineExecutionsLimitExceededException).
const maxActive = 1000

// Start begins an execution and returns its id. A client token already used
// for the pipeline returns the execution it started.
func (e *Engine) Start(ctx context.Context, req StartRequest) (string, error) {
	var id string
	err := e.transact(ctx, req.Pipeline, func(t *txn) error {
		if req.ClientToken != "" {
			prev, err := t.tx.ExecutionByToken(req.ClientToken)
			if err == nil {
				id = prev.ID
				return nil
			}
			if !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		decl, err := t.def(0)
		if err != nil {
			return err
		}
		vars, err := resolveVariables(decl, req.Variables)
		if err != nil {
			return err
		}
		for action := range req.SourceOverrides {
			if !isSourceAction(decl, action) {
				return wire.Errorf(wire.ErrValidation, "sourceRevisions names action '%s', which is not a source action of pipeline '%s'", action, req.Pipeline)
			}
		}
		active, err := t.tx.ActiveExecutions()
		if err != nil {
			return err
		}
		if len(active) >= maxActive {
			return wire.Errorf(wire.ErrConcurrentPipelineExecutionsLimitExceeded, "Pipeline '%s' already has %d executions in progress or waiting", req.Pipeline, len(active))
		}
		x := &Execution{
			ID: e.newID(), Pipeline: req.Pipeline, PipelineVersion: t.latest, Status: StatusInProgress,
			Mode: string(decl.ExecutionMode), Type: TypeStandard, TriggerType: req.TriggerType, TriggerDetail: req.TriggerDetail,
			Variables: vars, ClientToken: req.ClientToken, SourceOverrides: req.SourceOverrides, Created: t.now,
		}
		for _, sd := range decl.Stages {
			x.Stages = append(x.Stages, StageRun{Name: sd.Name})
		}
		id = x.ID
		t.touch(x)
		if err := t.arrive(x); err != nil {
			return err
		}
		return t.advance(x)
	})
	if errors.Is(err, store.ErrAlreadyExists) {
		// A concurrent start with the same token won: answer its execution.
		return e.Start(ctx, req)
	}
	return id, err
}

func isSourceAction(decl *wire.PipelineDeclaration, action string) bool {
	if len(decl.Stages) == 0 {
		return false
	}
	for _, a := range decl.Stages[0].Actions {
		if a.Name == action {
			return true
		}
	}
	return false
}

// resolveVariables gives every declared pipeline variable its value: the
// given one, else its default. Names not declared, variables on a V1
// pipeline and declared variables without a default that are not given are
// errors.
func resolveVariables(decl *wire.PipelineDeclaration, given []wire.PipelineVariable) ([]Variable, error) {
	if len(given) > 0 && decl.PipelineType != wire.PipelineTypeV2 {
		return nil, wire.Errorf(wire.ErrValidation, "Pipeline '%s' is of type V1; pipeline variables need pipelineType V2", decl.Name)
	}
	values := map[string]string{}
	for _, g := range given {
		if _, dup := values[g.Name]; dup {
			return nil, wire.Errorf(wire.ErrValidation, "Pipeline variable '%s' is given more than once", g.Name)
		}
		values[g.Name] = g.Value
	}
	declared := map[string]bool{}
	var out []Variable
	for _, v := range decl.Variables {
		declared[v.Name] = true
		val, ok := values[v.Name]
		if !ok {
			if v.DefaultValue == "" {
				return nil, wire.Errorf(wire.ErrValidation, "Pipeline variable '%s' has no default value and must be given", v.Name)
			}
			val = v.DefaultValue
		}
		out = append(out, Variable{Name: v.Name, Value: val})
	}
	for name := range values {
		if !declared[name] {
			return nil, wire.Errorf(wire.ErrValidation, "Pipeline '%s' does not declare a variable named '%s'", decl.Name, name)
		}
	}
	return out, nil
}

// Job protocol errors.
func jobNotFound(id string) error {
	return wire.Errorf(wire.ErrJobNotFound, "Job %s does not exist", id)
}

// loadJob reads a job and its document inside a transition.
func (t *txn) loadJob(id string) (store.Job, *JobDoc, error) {
	j, err := t.tx.Job(id)
	if errors.Is(err, store.ErrNotFound) {
		return j, nil, jobNotFound(id)
	}
	if err != nil {
		return j, nil, err
	}
	var doc JobDoc
	if err := json.Unmarshal(j.Doc, &doc); err != nil {
		return j, nil, err
	}
	return j, &doc, nil
}

// Job statuses beyond the store's Queued and Dispatched.
const (
	JobInProgress = "InProgress"
	JobSucceeded  = "Succeeded"
	JobFailed     = "Failed"
	JobTimedOut   = "TimedOut"
	JobAbandoned  = "Abandoned"
)

// Acknowledge confirms a dispatched job to the worker that holds its nonce.
func (e *Engine) Acknowledge(ctx context.Context, pipeline, jobID, nonce string) (string, error) {
	var status string
	err := e.transact(ctx, pipeline, func(t *txn) error {
		j, doc, err := t.loadJob(jobID)
		if err != nil {
			return err
		}
		if subtle.ConstantTimeCompare([]byte(j.Nonce), []byte(nonce)) != 1 || j.Nonce == "" {
			return wire.Errorf(wire.ErrInvalidNonce, "The nonce is not the current nonce of job %s", jobID)
		}
		switch j.Status {
		case store.JobDispatched:
			if !j.Deadline.IsZero() && t.now.After(j.Deadline) {
				// Returned to the queue: another worker may hold a newer nonce.
				return wire.Errorf(wire.ErrInvalidNonce, "Job %s was not acknowledged in time and was returned to the queue", jobID)
			}
			j.Status, j.Updated = JobInProgress, t.now
			j.Deadline = t.now.Add(time.Duration(doc.TimeoutMinutes) * time.Minute)
			if err := t.tx.PutJob(j); err != nil {
				return err
			}
			if err := t.setTimer(timerID(timerJob, j.ID), j.Deadline, TimerPayload{Kind: timerJob, JobID: j.ID, ExecutionID: j.ExecutionID}); err != nil {
				return err
			}
		case JobInProgress:
			// Acknowledging twice with the right nonce is harmless.
		}
		status = j.Status
		return nil
	})
	return status, err
}

// JobResult is what a worker reports for a job.
type JobResult struct {
	Success           bool
	Summary           string
	ExternalID        string
	Percent           *int
	Revision          string
	ContinuationToken string
	OutputVariables   map[string]string
	FailureType       string
	FailureMessage    string
}

// CompleteJob records a worker's result for an in-progress job and moves
// the execution on. A continuation token completes this job and queues a
// new one for the same action attempt, carrying the token.
func (e *Engine) CompleteJob(ctx context.Context, pipeline, jobID string, r JobResult) error {
	return e.transact(ctx, pipeline, func(t *txn) error {
		j, doc, err := t.loadJob(jobID)
		if err != nil {
			return err
		}
		if j.Status != JobInProgress {
			return wire.Errorf(wire.ErrInvalidJobState, "Job %s is %s, not InProgress: it must be acknowledged first, and a result can be reported once", jobID, j.Status)
		}
		x, err := t.exec(j.ExecutionID)
		if err != nil {
			return err
		}
		_, run := x.actionRun(doc.ActionExec)
		if run == nil || run.Status != StatusInProgress || run.JobID != jobID {
			// The action was abandoned or stopped under the job.
			j.Status, j.Updated = JobAbandoned, t.now
			if err := t.tx.PutJob(j); err != nil {
				return err
			}
			return wire.Errorf(wire.ErrInvalidJobState, "Job %s no longer belongs to a running action", jobID)
		}
		if err := t.tx.DeleteTimer(timerID(timerJob, j.ID)); err != nil {
			return err
		}
		j.Updated = t.now
		run.ExternalID, run.Percent, run.LastChange = r.ExternalID, r.Percent, t.now
		if !r.Success {
			j.Status = JobFailed
			if err := t.tx.PutJob(j); err != nil {
				return err
			}
			t.fail(x, run, r.FailureType, r.FailureMessage, "")
			return t.advance(x)
		}
		j.Status = JobSucceeded
		if err := t.tx.PutJob(j); err != nil {
			return err
		}
		if r.Summary != "" {
			run.Summary = r.Summary
		}
		if r.ContinuationToken != "" {
			return t.continueJob(x, run, doc, r.ContinuationToken)
		}
		run.Revision = r.Revision
		if err := t.recordOutputs(x, run, doc, r.Revision); err != nil {
			return err
		}
		t.succeed(x, run, r.Summary, "", r.OutputVariables)
		return t.advance(x)
	})
}

// continueJob queues the next job of an action attempt.
func (t *txn) continueJob(x *Execution, run *ActionRun, prev *JobDoc, token string) error {
	decl, err := t.declOf(x)
	if err != nil {
		return t.orphan(x, err)
	}
	ad := findAction(decl, run.Stage, run.Name)
	if ad == nil {
		t.fail(x, run, "JobFailed", "The action no longer exists in the pipeline", "")
		return t.advance(x)
	}
	typ, err := t.actionType(actiontypes.KeyOf(ad.ActionTypeId))
	if err != nil {
		return err
	}
	if typ == nil {
		t.fail(x, run, "ActionTypeNotFound", "The action type no longer exists", "")
		return t.advance(x)
	}
	t.touch(x)
	return t.queueJob(x, ad, run, typ, token)
}

func findAction(decl *wire.PipelineDeclaration, stage, action string) *wire.ActionDeclaration {
	for si := range decl.Stages {
		if decl.Stages[si].Name != stage {
			continue
		}
		for ai := range decl.Stages[si].Actions {
			if decl.Stages[si].Actions[ai].Name == action {
				return &decl.Stages[si].Actions[ai]
			}
		}
	}
	return nil
}

// ApprovalDecision is a PutApprovalResult.
type ApprovalDecision struct {
	Pipeline, Stage, Action, Token string
	Approved                       bool
	Summary                        string
	By                             string // the caller's ARN
}

// Approve records a decision on a pending manual approval and returns when
// it was made.
func (e *Engine) Approve(ctx context.Context, d ApprovalDecision) (time.Time, error) {
	var at time.Time
	err := e.transact(ctx, d.Pipeline, func(t *txn) error {
		decl, err := t.def(0)
		if err != nil {
			return err
		}
		if findStage(decl, d.Stage) < 0 {
			return wire.Errorf(wire.ErrStageNotFound, "Stage '%s' does not exist in pipeline '%s'", d.Stage, d.Pipeline)
		}
		if findAction(decl, d.Stage, d.Action) == nil {
			return wire.Errorf(wire.ErrActionNotFound, "Action '%s' does not exist in stage '%s'", d.Action, d.Stage)
		}
		x, run, err := t.findApproval(d)
		if err != nil {
			return err
		}
		if run.Status != StatusInProgress {
			return wire.Errorf(wire.ErrApprovalAlreadyCompleted, "The approval of action '%s' was already %s", d.Action, run.Status)
		}
		if !run.TokenExpires.IsZero() && t.now.After(run.TokenExpires) {
			return wire.Errorf(wire.ErrInvalidApprovalToken, "The approval token has expired")
		}
		if err := t.tx.DeleteTimer(timerID(timerApproval, run.ExecutionID)); err != nil {
			return err
		}
		at = t.now
		if d.Approved {
			t.succeed(x, run, d.Summary, d.By, nil)
		} else {
			run.Summary = d.Summary
			t.fail(x, run, "Rejected", "Rejected: "+d.Summary, d.By)
		}
		return t.advance(x)
	})
	return at, err
}

// findApproval finds the approval run a token belongs to, among the
// pipeline's executions that ran the action.
func (t *txn) findApproval(d ApprovalDecision) (*Execution, *ActionRun, error) {
	bad := wire.Errorf(wire.ErrInvalidApprovalToken, "The token is not the token of a pending approval of action '%s'", d.Action)
	candidates := map[string]bool{}
	if id := t.rt.slot(d.Stage).LastAction[d.Action]; id != "" {
		candidates[id] = true
	}
	active, err := t.tx.ActiveExecutions()
	if err != nil {
		return nil, nil, err
	}
	for _, a := range active {
		candidates[a.ID] = true
	}
	for id := range candidates {
		x, err := t.exec(id)
		if err != nil {
			return nil, nil, err
		}
		for si := range x.Stages {
			st := &x.Stages[si]
			if st.Name != d.Stage {
				continue
			}
			for ai := range st.Actions {
				run := &st.Actions[ai]
				if run.Name == d.Action && run.Token != "" && subtle.ConstantTimeCompare([]byte(run.Token), []byte(d.Token)) == 1 {
					return x, run, nil
				}
			}
		}
	}
	return nil, nil, bad
}

func findStage(decl *wire.PipelineDeclaration, stage string) int {
	for i, s := range decl.Stages {
		if s.Name == stage {
			return i
		}
	}
	return -1
}

// Stop stops an execution: abandon, or let running actions finish.
func (e *Engine) Stop(ctx context.Context, pipeline, id string, abandon bool, reason string) error {
	return e.transact(ctx, pipeline, func(t *txn) error {
		x, err := t.exec(id)
		if errors.Is(err, store.ErrNotFound) {
			return wire.Errorf(wire.ErrPipelineExecutionNotStoppable, "Execution %s of pipeline '%s' does not exist", id, pipeline)
		}
		if err != nil {
			return err
		}
		switch {
		case x.Status == StatusStopping && (x.StopMode == "abandon" || !abandon):
			return wire.Errorf(wire.ErrDuplicatedStopRequest, "Execution %s is already stopping (%s); only stop and abandon may follow stop and wait", id, stopModeText(x.StopMode))
		case !x.Active():
			return wire.Errorf(wire.ErrPipelineExecutionNotStoppable, "Execution %s is %s and cannot be stopped", id, x.Status)
		}
		x.StopReason = reason
		if x.Waiting {
			t.finish(x, StatusStopped, reason)
			return nil
		}
		x.Status = StatusStopping
		x.StopMode = "wait"
		st := &x.Stages[x.Stage]
		st.Status = StatusStopping
		if abandon {
			x.StopMode = "abandon"
			for i := range st.Actions {
				run := &st.Actions[i]
				if run.Status != StatusInProgress {
					continue
				}
				if err := t.abandon(run); err != nil {
					return err
				}
			}
		}
		t.touch(x)
		return t.advance(x)
	})
}

func stopModeText(m string) string {
	if m == "abandon" {
		return "stop and abandon"
	}
	return "stop and wait"
}

// abandon ends a running action attempt without its result: its job can no
// longer report one and its timers are dropped.
func (t *txn) abandon(run *ActionRun) error {
	run.Status, run.LastChange = StatusAbandoned, t.now
	if err := t.tx.DeleteTimer(timerID(timerApproval, run.ExecutionID)); err != nil {
		return err
	}
	if run.JobID != "" {
		if err := t.tx.DeleteTimer(timerID(timerJob, run.JobID)); err != nil {
			return err
		}
		j, err := t.tx.Job(run.JobID)
		if err == nil {
			j.Status, j.Updated = JobAbandoned, t.now
			return t.tx.PutJob(j)
		}
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	return nil
}

// Retry runs a failed or stopped stage of an execution again.
func (e *Engine) Retry(ctx context.Context, pipeline, stage, id string, allActions bool) error {
	return e.transact(ctx, pipeline, func(t *txn) error {
		decl, err := t.def(0)
		if err != nil {
			return err
		}
		si := findStage(decl, stage)
		if si < 0 {
			return wire.Errorf(wire.ErrStageNotFound, "Stage '%s' does not exist in pipeline '%s'", stage, pipeline)
		}
		x, err := t.exec(id)
		if errors.Is(err, store.ErrNotFound) {
			return wire.Errorf(wire.ErrStageNotRetryable, "Execution %s of pipeline '%s' does not exist", id, pipeline)
		}
		if err != nil {
			return err
		}
		slot := t.rt.slot(stage)
		if slot.Latest != x.ID {
			return wire.Errorf(wire.ErrNotLatestPipelineExecution, "Execution %s is not the latest execution of stage '%s'", id, stage)
		}
		if x.Status != StatusFailed && x.Status != StatusStopped || x.Stage != si || x.Waiting ||
			(x.Stages[si].Status != StatusFailed && x.Stages[si].Status != StatusStopped) {
			return wire.Errorf(wire.ErrStageNotRetryable, "Stage '%s' of execution %s is not failed or stopped", stage, id)
		}
		if x.PipelineVersion != t.latest {
			return wire.Errorf(wire.ErrStageNotRetryable, "The pipeline was updated (version %d) since execution %s ran (version %d); start a new execution", t.latest, id, x.PipelineVersion)
		}
		if x.Mode != ModeParallel && slot.Holder != "" && slot.Holder != x.ID {
			return wire.Errorf(wire.ErrConflict, "Stage '%s' is in use by execution %s", stage, slot.Holder)
		}
		st := &x.Stages[si]
		kept := st.Actions[:0:0]
		for _, run := range st.Actions {
			if !allActions && run.Status == StatusSucceeded {
				kept = append(kept, run)
			} else {
				x.History = append(x.History, run)
			}
		}
		st.Actions = kept
		st.Attempt++
		st.Retries++
		st.Status = StatusInProgress
		x.Status, x.StatusSummary, x.StopMode, x.StopReason = StatusInProgress, "", "", ""
		if x.Mode != ModeParallel {
			slot.Holder = x.ID
		}
		t.touch(x)
		return t.advance(x)
	})
}

// Rollback starts an execution of type ROLLBACK that runs one stage with
// the artifacts and variables of an earlier execution that succeeded in it.
func (e *Engine) Rollback(ctx context.Context, pipeline, stage, target string) (string, error) {
	var id string
	err := e.transact(ctx, pipeline, func(t *txn) error {
		decl, err := t.def(0)
		if err != nil {
			return err
		}
		si := findStage(decl, stage)
		if si < 0 {
			return wire.Errorf(wire.ErrStageNotFound, "Stage '%s' does not exist in pipeline '%s'", stage, pipeline)
		}
		if decl.PipelineType != wire.PipelineTypeV2 {
			return wire.Errorf(wire.ErrUnableToRollbackStage, "Stage rollback needs a V2 pipeline; '%s' is V1", pipeline)
		}
		if decl.ExecutionMode == wire.ExecutionModeParallel {
			return wire.Errorf(wire.ErrUnableToRollbackStage, "Stage rollback is not available in PARALLEL mode")
		}
		tx, err := t.exec(target)
		if errors.Is(err, store.ErrNotFound) {
			return wire.Errorf(wire.ErrPipelineExecutionNotFound, "Execution %s of pipeline '%s' does not exist", target, pipeline)
		}
		if err != nil {
			return err
		}
		if tx.Stages[si].Status != StatusSucceeded {
			return wire.Errorf(wire.ErrUnableToRollbackStage, "Execution %s did not succeed in stage '%s'", target, stage)
		}
		if tx.PipelineVersion != t.latest {
			return wire.Errorf(wire.ErrPipelineExecutionOutdated, "Execution %s ran pipeline version %d; the pipeline is now version %d", target, tx.PipelineVersion, t.latest)
		}
		slot := t.rt.slot(stage)
		if slot.Holder != "" || len(slot.Waiting) > 0 {
			return wire.Errorf(wire.ErrUnableToRollbackStage, "Stage '%s' is in use; roll back when it is idle", stage)
		}
		if slot.Latest == target {
			return wire.Errorf(wire.ErrUnableToRollbackStage, "Execution %s is already the latest execution of stage '%s'", target, stage)
		}
		x := &Execution{
			ID: e.newID(), Pipeline: pipeline, PipelineVersion: t.latest, Status: StatusInProgress, Mode: string(decl.ExecutionMode),
			Type: TypeRollback, TriggerType: string(wire.TriggerTypeManualRollback), Variables: tx.Variables,
			RollbackTarget: target, Only: stage, Stage: si, Artifacts: tx.Artifacts, Outputs: tx.Outputs, Created: t.now,
		}
		for _, sd := range decl.Stages {
			x.Stages = append(x.Stages, StageRun{Name: sd.Name})
		}
		id = x.ID
		t.touch(x)
		if err := t.arrive(x); err != nil {
			return err
		}
		return t.advance(x)
	})
	return id, err
}

// SetTransition enables or disables a stage's inbound transition.
func (e *Engine) SetTransition(ctx context.Context, pipeline, stage string, enabled bool, reason, by string) error {
	return e.transact(ctx, pipeline, func(t *txn) error {
		decl, err := t.def(0)
		if err != nil {
			return err
		}
		if findStage(decl, stage) < 0 {
			return wire.Errorf(wire.ErrStageNotFound, "Stage '%s' does not exist in pipeline '%s'", stage, pipeline)
		}
		slot := t.rt.slot(stage)
		slot.ChangedAt, slot.ChangedBy = t.now, by
		if !enabled {
			slot.Disabled = &Disabled{Reason: reason}
			return nil
		}
		slot.Disabled = nil
		return t.admit(stage)
	})
}

// PipelineUpdated cancels the executions waiting at inbound transitions
// under an older version (those inside a stage finish it first).
func (e *Engine) PipelineUpdated(ctx context.Context, pipeline string) error {
	return e.transact(ctx, pipeline, func(t *txn) error {
		latest, err := t.latestVersion()
		if err != nil {
			return err
		}
		active, err := t.tx.ActiveExecutions()
		if err != nil {
			return err
		}
		for _, a := range active {
			x, err := t.exec(a.ID)
			if err != nil {
				return err
			}
			if x.Waiting && x.PipelineVersion != latest {
				t.finish(x, StatusCancelled, fmt.Sprintf("The pipeline was updated to version %d before this execution could complete", latest))
			}
		}
		return nil
	})
}

// fireTimer handles a due timer.
func (e *Engine) fireTimer(ctx context.Context, tm store.Timer) error {
	var p TimerPayload
	if err := json.Unmarshal(tm.Payload, &p); err != nil {
		return err
	}
	return e.transact(ctx, tm.Pipeline, func(t *txn) error {
		if err := t.tx.DeleteTimer(tm.ID); err != nil {
			return err
		}
		switch p.Kind {
		case timerApproval:
			x, err := t.exec(p.ExecutionID)
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			_, run := x.actionRun(p.ActionExec)
			if run == nil || run.Status != StatusInProgress {
				return nil
			}
			t.fail(x, run, "TimedOut", "The approval was not decided before it timed out", "")
			return t.advance(x)
		case timerJob:
			j, doc, err := t.loadJob(p.JobID)
			if err != nil {
				if e, ok := wire.AsError(err); ok && e.Code == wire.ErrJobNotFound {
					return nil
				}
				return err
			}
			if j.Status != JobInProgress {
				return nil
			}
			j.Status, j.Updated = JobTimedOut, t.now
			if err := t.tx.PutJob(j); err != nil {
				return err
			}
			x, err := t.exec(j.ExecutionID)
			if err != nil {
				return err
			}
			_, run := x.actionRun(doc.ActionExec)
			if run == nil || run.Status != StatusInProgress || run.JobID != j.ID {
				return nil
			}
			t.fail(x, run, "TimedOut", fmt.Sprintf("The job did not report a result within %d minutes", doc.TimeoutMinutes), "")
			return t.advance(x)
		}
		return nil
	})
}
