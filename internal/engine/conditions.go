package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pipelined/pipelined/internal/rules"
	"github.com/pipelined/pipelined/internal/store"
	"github.com/pipelined/pipelined/internal/wire"
)

// Condition kinds (the ConditionType of OverrideStageCondition, plus
// ON_FAILURE).
const (
	KindBeforeEntry = "BEFORE_ENTRY"
	KindOnSuccess   = "ON_SUCCESS"
	KindOnFailure   = "ON_FAILURE"
)

// Condition statuses (ConditionExecutionStatus); rules use StatusInProgress,
// StatusSucceeded, StatusFailed and StatusAbandoned.
const (
	StatusErrored    = "Errored"
	StatusOverridden = "Overridden"
)

// MaxAutoRetries is how many times onFailure RETRY retries a stage of one
// execution before the failure stands.
const MaxAutoRetries = 3

// ruleTimerExecutor names the rule timers in TimerPayload.Executor (no
// action executor has this name).
const ruleTimerExecutor = "engine/rule"

// ConditionRun is one evaluation of a declared condition in a stage run.
type ConditionRun struct {
	Kind       string    `json:"kind"`
	Index      int       `json:"index"`
	Status     string    `json:"status"`
	Summary    string    `json:"summary,omitempty"`
	Result     string    `json:"result,omitempty"` // the result that engaged, if any
	UpdatedBy  string    `json:"updatedBy,omitempty"`
	LastChange time.Time `json:"lastChange"`
	Rules      []RuleRun `json:"rules"`
}

// RuleRun is one evaluation of a rule.
type RuleRun struct {
	Name         string            `json:"name"`
	Stage        string            `json:"stage"`
	Kind         string            `json:"kind"`
	ExecutionID  string            `json:"executionId"`
	Provider     string            `json:"provider"`
	Version      string            `json:"version"`
	Status       string            `json:"status"`
	Summary      string            `json:"summary,omitempty"`
	ErrorCode    string            `json:"errorCode,omitempty"`
	ErrorMessage string            `json:"errorMessage,omitempty"`
	UpdatedBy    string            `json:"updatedBy,omitempty"`
	Started      time.Time         `json:"started"`
	LastChange   time.Time         `json:"lastChange"`
	Config       map[string]string `json:"config,omitempty"`
	Resolved     map[string]string `json:"resolved,omitempty"`
	Inputs       []string          `json:"inputs,omitempty"`
	Region       string            `json:"region,omitempty"`
	RoleArn      string            `json:"roleArn,omitempty"`
	// WaitUntil is when a DeploymentWindow rule looks again.
	WaitUntil time.Time `json:"waitUntil,omitzero"`
}

// gateOutcome is what a kind of condition decided.
type gateOutcome int

const (
	gateWait gateOutcome = iota // a rule is still in progress
	gatePass                    // every condition succeeded (or was overridden)
	gateFail                    // a condition failed
)

// ConditionsOf returns a stage run's condition runs of one kind.
func (st *StageRun) ConditionsOf(kind string) []*ConditionRun {
	var out []*ConditionRun
	for i := range st.Conditions {
		if st.Conditions[i].Kind == kind {
			out = append(out, &st.Conditions[i])
		}
	}
	return out
}

// gate evaluates (on first call) or reads the conditions of a kind for the
// execution's current stage run.
func (t *txn) gate(x *Execution, st *StageRun, kind string, conds []wire.Condition) (gateOutcome, error) {
	runs := st.ConditionsOf(kind)
	if len(runs) == 0 {
		for i := range conds {
			cr := ConditionRun{Kind: kind, Index: i, Status: StatusInProgress, LastChange: t.now}
			for ri := range conds[i].Rules {
				run, err := t.startRule(x, st, kind, &conds[i].Rules[ri])
				if err != nil {
					return gateWait, err
				}
				cr.Rules = append(cr.Rules, run)
			}
			st.Conditions = append(st.Conditions, cr)
		}
		t.touch(x)
		runs = st.ConditionsOf(kind)
		for _, cr := range runs {
			if err := t.settleCondition(cr); err != nil {
				return gateWait, err
			}
		}
	}
	out := gatePass
	for _, cr := range runs {
		switch cr.Status {
		case StatusFailed, StatusErrored, StatusCancelled:
			return gateFail, nil
		case StatusInProgress:
			out = gateWait
		}
	}
	return out, nil
}

// settleCondition derives a condition's status from its rules: a failed
// rule fails it (rules still in progress are abandoned); all succeeded
// succeed it.
func (t *txn) settleCondition(cr *ConditionRun) error {
	if cr.Status != StatusInProgress {
		return nil
	}
	failed, waiting := "", false
	for i := range cr.Rules {
		switch r := &cr.Rules[i]; r.Status {
		case StatusFailed:
			if failed == "" {
				failed = fmt.Sprintf("Rule '%s' failed: %s", r.Name, ruleMessage(r))
			}
		case StatusInProgress:
			waiting = true
		}
	}
	switch {
	case failed != "":
		for i := range cr.Rules {
			if err := t.abandonRule(&cr.Rules[i]); err != nil {
				return err
			}
		}
		cr.Status, cr.Summary, cr.LastChange = StatusFailed, failed, t.now
	case !waiting:
		cr.Status, cr.Summary, cr.LastChange = StatusSucceeded, "All rules succeeded", t.now
	}
	return nil
}

func ruleMessage(r *RuleRun) string {
	if r.ErrorMessage != "" {
		return r.ErrorMessage
	}
	return r.Summary
}

// abandonRule ends a rule still in progress without a result and removes
// its timer.
func (t *txn) abandonRule(r *RuleRun) error {
	if r.Status != StatusInProgress {
		return nil
	}
	r.Status, r.LastChange = StatusAbandoned, t.now
	return t.tx.DeleteTimer(ruleTimerID(r.ExecutionID))
}

func ruleTimerID(ruleExec string) string { return ruleExec + ":rule" }

// startRule evaluates a rule for the first time: resolved configuration,
// then the rule's check.
func (t *txn) startRule(x *Execution, st *StageRun, kind string, rd *wire.RuleDeclaration) (RuleRun, error) {
	r := RuleRun{
		Name: rd.Name, Stage: st.Name, Kind: kind, ExecutionID: t.e.newID(), Status: StatusInProgress,
		Started: t.now, LastChange: t.now, Config: rd.Configuration, Region: rd.Region, RoleArn: rd.RoleArn,
	}
	if rd.RuleTypeId != nil {
		r.Provider, r.Version = rd.RuleTypeId.Provider, rd.RuleTypeId.Version
	}
	if r.Version == "" {
		r.Version = "1"
	}
	for _, in := range rd.InputArtifacts {
		r.Inputs = append(r.Inputs, in.Name)
	}
	resolved, err := resolveConfig(x, rd.Configuration)
	if err != nil {
		r.fail(t.now, "ConfigurationError", err.Error())
		return r, nil
	}
	r.Resolved = resolved
	return r, t.evaluateRule(x, &r)
}

func (r *RuleRun) fail(now time.Time, code, msg string) {
	r.Status, r.ErrorCode, r.ErrorMessage, r.LastChange = StatusFailed, code, msg, now
}

func (r *RuleRun) succeed(now time.Time, summary string) {
	r.Status, r.Summary, r.LastChange, r.WaitUntil = StatusSucceeded, summary, now, time.Time{}
}

// evaluateRule runs a rule's check now. A DeploymentWindow outside its
// window stays in progress with a timer (a row) at the window's opening.
func (t *txn) evaluateRule(x *Execution, r *RuleRun) error {
	switch r.Provider {
	case rules.VariableCheck:
		op, err := rules.ParseOperator(r.Resolved["Operator"])
		if err != nil {
			r.fail(t.now, "ConfigurationError", err.Error())
			return nil
		}
		v, want := r.Resolved["Variable"], r.Resolved["Value"]
		ok, err := rules.Check(op, v, want)
		switch {
		case err != nil:
			r.fail(t.now, "ConfigurationError", err.Error())
		case ok:
			r.succeed(t.now, fmt.Sprintf("Variable %s ('%s') %s '%s': true", r.Config["Variable"], v, op, want))
		default:
			r.fail(t.now, "RuleCheckFailed", fmt.Sprintf("Variable %s ('%s') %s '%s': false", r.Config["Variable"], v, op, want))
		}
		return nil
	case rules.DeploymentWindow:
		w, err := rules.ParseWindow(r.Resolved["Cron"], r.Resolved["TimeZone"])
		if err != nil {
			r.fail(t.now, "ConfigurationError", err.Error())
			return nil
		}
		if w.Open(t.now) {
			r.succeed(t.now, fmt.Sprintf("The deployment window '%s' is open", w))
			return nil
		}
		next, ok := w.Next(t.now)
		if !ok {
			r.fail(t.now, "RuleCheckFailed", fmt.Sprintf("The deployment window '%s' never opens again", w))
			return nil
		}
		r.Summary, r.WaitUntil, r.LastChange = fmt.Sprintf("Waiting for the deployment window '%s' to open at %s", w, next.UTC().Format(time.RFC3339)), next, t.now
		return t.setTimer(ruleTimerID(r.ExecutionID), next, TimerPayload{Executor: ruleTimerExecutor, ExecutionID: x.ID, ActionExec: r.ExecutionID})
	}
	if why := rules.Unsupported(r.Provider); why != "" {
		r.fail(t.now, "RuleNotSupported", why)
		return nil
	}
	r.fail(t.now, "RuleNotSupported", fmt.Sprintf("pipelined does not know the rule type %s", r.Provider))
	return nil
}

// fireRuleTimer evaluates a waiting rule again when its timer is due.
func (t *txn) fireRuleTimer(x *Execution, ruleExec string) error {
	if !x.Active() || x.Stage >= len(x.Stages) {
		return nil
	}
	st := &x.Stages[x.Stage]
	for ci := range st.Conditions {
		cr := &st.Conditions[ci]
		for ri := range cr.Rules {
			r := &cr.Rules[ri]
			if r.ExecutionID != ruleExec || r.Status != StatusInProgress || cr.Status != StatusInProgress {
				continue
			}
			if err := t.evaluateRule(x, r); err != nil {
				return err
			}
			if err := t.settleCondition(cr); err != nil {
				return err
			}
			t.touch(x)
			return t.advance(x)
		}
	}
	return nil
}

// cancelConditions ends the conditions still in progress of a stage run
// (the execution stopped or ended while they waited).
func (t *txn) cancelConditions(x *Execution, st *StageRun) error {
	for ci := range st.Conditions {
		cr := &st.Conditions[ci]
		if cr.Status != StatusInProgress {
			continue
		}
		for ri := range cr.Rules {
			if err := t.abandonRule(&cr.Rules[ri]); err != nil {
				return err
			}
		}
		cr.Status, cr.LastChange = StatusCancelled, t.now
		t.touch(x)
	}
	return nil
}

// archiveConditions moves a kind's condition runs to the rule history, so
// that the kind is evaluated afresh (a stage retried).
func archiveConditions(x *Execution, st *StageRun, kind string) {
	kept := st.Conditions[:0:0]
	for _, cr := range st.Conditions {
		if kind != "" && cr.Kind != kind {
			kept = append(kept, cr)
			continue
		}
		x.RuleHistory = append(x.RuleHistory, cr.Rules...)
	}
	st.Conditions = kept
}

// archiveUnmet moves the condition runs that did not succeed (and every
// onFailure run) to the rule history: a manual retry evaluates them again.
func archiveUnmet(x *Execution, st *StageRun) {
	kept := st.Conditions[:0:0]
	for _, cr := range st.Conditions {
		if cr.Kind != KindOnFailure && (cr.Status == StatusSucceeded || cr.Status == StatusOverridden) {
			kept = append(kept, cr)
			continue
		}
		x.RuleHistory = append(x.RuleHistory, cr.Rules...)
	}
	st.Conditions = kept
}

// conditionSummary is the first failure message of a kind's conditions.
func conditionSummary(st *StageRun, kind string) string {
	for _, cr := range st.ConditionsOf(kind) {
		if cr.Status == StatusFailed || cr.Status == StatusErrored {
			return cr.Summary
		}
	}
	return ""
}

// beforeEntryResult is the result of a stage's beforeEntry condition (FAIL
// unless SKIP is declared).
func beforeEntryResult(sd *wire.StageDeclaration) wire.Result {
	for _, c := range sd.BeforeEntry.Conditions {
		if c.Result == wire.ResultSkip {
			return wire.ResultSkip
		}
	}
	return wire.ResultFail
}

func onSuccessResult(sd *wire.StageDeclaration) wire.Result {
	for _, c := range sd.OnSuccess.Conditions {
		if c.Result == wire.ResultRollback {
			return wire.ResultRollback
		}
	}
	return wire.ResultFail
}

func onFailureResult(sd *wire.StageDeclaration) wire.Result {
	if r := sd.OnFailure.Result; r != "" {
		return r
	}
	for _, c := range sd.OnFailure.Conditions {
		if c.Result != "" {
			return c.Result
		}
	}
	return ""
}

// hasConditions reports whether a condition kind declares any rule.
func hasRules(conds []wire.Condition) bool {
	for _, c := range conds {
		if len(c.Rules) > 0 {
			return true
		}
	}
	return false
}

// failureAction is what onFailure decided for a failed stage.
type failureAction int

const (
	failStands   failureAction = iota // the failure stands
	failWait                          // onFailure rules are in progress
	failRetried                       // the stage runs again
	failRollback                      // the failure stands and a rollback follows
)

// onFailure applies a stage's onFailure declaration to its failure. With
// rules, the result engages only when every rule succeeds; without, it
// engages at once.
func (t *txn) onFailure(x *Execution, st *StageRun, sd *wire.StageDeclaration) (failureAction, string, error) {
	of := sd.OnFailure
	if of == nil || x.Type == TypeRollback {
		return failStands, "", nil
	}
	if hasRules(of.Conditions) {
		out, err := t.gate(x, st, KindOnFailure, of.Conditions)
		if err != nil || out == gateWait {
			return failWait, "", err
		}
		if out == gateFail {
			return failStands, "", nil
		}
	}
	switch onFailureResult(sd) {
	case wire.ResultRetry:
		if st.AutoRetries >= MaxAutoRetries {
			return failStands, fmt.Sprintf(" (after %d automatic retries)", st.AutoRetries), nil
		}
		all := of.RetryConfiguration != nil && of.RetryConfiguration.RetryMode == wire.StageRetryModeAllActions
		st.AutoRetries++
		t.retryStage(x, st, all)
		archiveConditions(x, st, KindOnFailure)
		t.touch(x)
		return failRetried, "", nil
	case wire.ResultRollback:
		return failRollback, "", nil
	}
	return failStands, "", nil
}

// retryStage makes a failed stage run again: its failed actions, or all.
func (t *txn) retryStage(x *Execution, st *StageRun, allActions bool) {
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
	st.Status = StatusInProgress
}

// queueRollback starts an automatic rollback of a stage that an execution
// failed in: a ROLLBACK execution to the last execution that succeeded in
// the stage, first in line at the stage's inbound. It returns why there is
// none when there is none.
func (t *txn) queueRollback(x *Execution, stage string) (string, error) {
	if x.Mode == ModeParallel {
		return "rollback is not available in PARALLEL mode", nil
	}
	slot := t.runtime().slot(stage)
	if slot.Succeeded == "" || slot.Succeeded == x.ID {
		return "no earlier execution succeeded in the stage, so there is nothing to roll back to", nil
	}
	target, err := t.exec(slot.Succeeded)
	if errors.Is(err, store.ErrNotFound) {
		return "the last execution that succeeded in the stage is gone", nil
	}
	if err != nil {
		return "", err
	}
	if target.PipelineVersion != x.PipelineVersion {
		return fmt.Sprintf("the last execution that succeeded in the stage ran pipeline version %d, not %d", target.PipelineVersion, x.PipelineVersion), nil
	}
	r := t.newRollback(x.Pipeline, x.PipelineVersion, x.Mode, stage, target, wire.TriggerTypeAutomatedRollback, x.ID)
	r.Waiting = true
	t.touch(r)
	t.runtime().Active++
	slot.Waiting = append([]string{r.ID}, slot.Waiting...)
	return "", nil
}

// newRollback builds a ROLLBACK execution of one stage with the artifacts
// and variables of target.
func (t *txn) newRollback(pipeline string, version int, mode, stage string, target *Execution, trigger wire.TriggerType, detail string) *Execution {
	x := &Execution{
		ID: t.e.newID(), Pipeline: pipeline, PipelineVersion: version, Status: StatusInProgress, Mode: mode,
		Type: TypeRollback, TriggerType: string(trigger), TriggerDetail: detail, Variables: target.Variables,
		RollbackTarget: target.ID, Only: stage, Artifacts: target.Artifacts, Outputs: target.Outputs, Created: t.now,
	}
	for i, st := range target.Stages {
		x.Stages = append(x.Stages, StageRun{Name: st.Name})
		if st.Name == stage {
			x.Stage = i
		}
	}
	return x
}

// OverrideCondition overrides a condition in progress (BEFORE_ENTRY or
// ON_SUCCESS) of an execution's stage: its rules still in progress are
// abandoned and the stage goes on as if it had succeeded. by is recorded.
func (e *Engine) OverrideCondition(ctx context.Context, pipeline, stage, id, kind, by string) error {
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
			return wire.Errorf(wire.ErrPipelineExecutionNotFound, "Execution %s of pipeline '%s' does not exist", id, pipeline)
		}
		if err != nil {
			return err
		}
		if t.runtime().slot(stage).Latest != x.ID {
			return wire.Errorf(wire.ErrNotLatestPipelineExecution, "Execution %s is not the latest execution of stage '%s'", id, stage)
		}
		var pending []*ConditionRun
		if x.Active() && x.Stage == si && !x.Waiting {
			for _, cr := range x.Stages[si].ConditionsOf(kind) {
				if cr.Status == StatusInProgress {
					pending = append(pending, cr)
				}
			}
		}
		if len(pending) == 0 {
			return wire.Errorf(wire.ErrConditionNotOverridable, "Stage '%s' of execution %s has no %s condition in progress to override", stage, id, kind)
		}
		for _, cr := range pending {
			for ri := range cr.Rules {
				if err := t.abandonRule(&cr.Rules[ri]); err != nil {
					return err
				}
			}
			cr.Status, cr.UpdatedBy, cr.LastChange = StatusOverridden, by, t.now
			cr.Summary = "Overridden by " + by
		}
		t.touch(x)
		return t.advance(x)
	})
}

// RuleRuns returns the rule runs of an execution: the current ones of each
// stage, then those of conditions evaluated again.
func (x *Execution) RuleRuns() []RuleRun {
	var out []RuleRun
	for _, st := range x.Stages {
		for _, cr := range st.Conditions {
			out = append(out, cr.Rules...)
		}
	}
	return append(out, x.RuleHistory...)
}

// describeStatus joins condition summaries for an execution's summary.
func joinSummary(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, "; ")
}
