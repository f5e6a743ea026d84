package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

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
		var err error
		id, err = t.start(req)
		return err
	})
	if errors.Is(err, store.ErrAlreadyExists) {
		// A concurrent start with the same token won: answer its execution.
		return e.Start(ctx, req)
	}
	return id, err
}

// start begins an execution inside a transition.
func (t *txn) start(req StartRequest) (string, error) {
	if req.ClientToken != "" {
		prev, err := t.tx.ExecutionByToken(req.ClientToken)
		if err == nil {
			return prev.ID, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return "", err
		}
	}
	decl, err := t.def(0)
	if err != nil {
		return "", err
	}
	vars, err := resolveVariables(decl, req.Variables)
	if err != nil {
		return "", err
	}
	for action := range req.SourceOverrides {
		if !isSourceAction(decl, action) {
			return "", wire.Errorf(wire.ErrValidation, "sourceRevisions names action '%s', which is not a source action of pipeline '%s'", action, req.Pipeline)
		}
	}
	if t.runtime().Active >= maxActive {
		return "", wire.Errorf(wire.ErrConcurrentPipelineExecutionsLimitExceeded, "Pipeline '%s' already has %d executions in progress or waiting", req.Pipeline, t.runtime().Active)
	}
	x := &Execution{
		ID: t.e.newID(), Pipeline: req.Pipeline, PipelineVersion: t.latest, Status: StatusInProgress,
		Mode: string(decl.ExecutionMode), Type: TypeStandard, TriggerType: req.TriggerType, TriggerDetail: req.TriggerDetail,
		Variables: vars, ClientToken: req.ClientToken, SourceOverrides: req.SourceOverrides, Created: t.now,
	}
	for _, sd := range decl.Stages {
		x.Stages = append(x.Stages, StageRun{Name: sd.Name})
	}
	t.touch(x)
	t.runtime().Active++
	if err := t.arrive(x); err != nil {
		return "", err
	}
	return x.ID, t.advance(x)
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
				if err := t.abandon(x, run); err != nil {
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
		slot := t.runtime().slot(stage)
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
		archiveUnmet(x, st)
		st.Attempt++
		st.Retries++
		st.Status = StatusInProgress
		x.Status, x.StatusSummary, x.StopMode, x.StopReason = StatusInProgress, "", "", ""
		t.runtime().Active++
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
		slot := t.runtime().slot(stage)
		if slot.Holder != "" || len(slot.Waiting) > 0 {
			return wire.Errorf(wire.ErrUnableToRollbackStage, "Stage '%s' is in use; roll back when it is idle", stage)
		}
		if slot.Latest == target {
			return wire.Errorf(wire.ErrUnableToRollbackStage, "Execution %s is already the latest execution of stage '%s'", target, stage)
		}
		x := t.newRollback(pipeline, t.latest, string(decl.ExecutionMode), stage, tx, wire.TriggerTypeManualRollback, "")
		id = x.ID
		t.touch(x)
		t.runtime().Active++
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
		slot := t.runtime().slot(stage)
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

func findStage(decl *wire.PipelineDeclaration, stage string) int {
	for i, s := range decl.Stages {
		if s.Name == stage {
			return i
		}
	}
	return -1
}

// abandon ends a running action attempt without its result; its executor
// releases what it created (a job, timers).
func (t *txn) abandon(x *Execution, run *ActionRun) error {
	decl, err := t.declOf(x)
	if err != nil {
		return err
	}
	ad := findAction(decl, run.Stage, run.Name)
	run.Status, run.LastChange = StatusAbandoned, t.now
	t.touch(x)
	if ad == nil {
		return nil
	}
	if ex := t.e.executorFor(actiontypes.KeyOf(ad.ActionTypeId)); ex != nil {
		return ex.Abandon(&Step{t: t, Execution: x, Run: run, Action: ad})
	}
	return nil
}

// fireTimer handles a due timer: the executor that set it acts on the
// attempt, if the attempt is still in progress.
func (e *Engine) fireTimer(ctx context.Context, tm store.Timer) error {
	var p TimerPayload
	if err := json.Unmarshal(tm.Payload, &p); err != nil {
		return err
	}
	return e.transact(ctx, tm.Pipeline, func(t *txn) error {
		if err := t.tx.DeleteTimer(tm.ID); err != nil {
			return err
		}
		x, err := t.exec(p.ExecutionID)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if p.Executor == ruleTimerExecutor {
			return t.fireRuleTimer(x, p.ActionExec)
		}
		_, run := x.actionRun(p.ActionExec)
		if run == nil || run.Status != StatusInProgress {
			return nil
		}
		ex := e.byName[p.Executor]
		if ex == nil {
			return fmt.Errorf("engine: timer %s names executor %q, which is not registered", tm.ID, p.Executor)
		}
		decl, err := t.declOf(x)
		if err != nil {
			return t.orphan(x, err)
		}
		ad := findAction(decl, run.Stage, run.Name)
		if ad == nil {
			return nil
		}
		if err := ex.Timer(&Step{t: t, Execution: x, Run: run, Action: ad}, p.Data); err != nil {
			return err
		}
		t.touch(x)
		return t.advance(x)
	})
}
