package engine

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/pipelined/pipelined/internal/actiontypes"
	"github.com/pipelined/pipelined/internal/wire"
)

// Executor runs the actions of some action types. The engine starts an
// action attempt by calling Start; the executor either finishes it at once
// (Step.Succeed or Step.Fail) or leaves it in progress and arranges for a
// later event: a timer it set (Timer), a request that reaches the engine
// through its own entry point (PutApprovalResult, PutJobSuccessResult...), or
// nothing, until the action is abandoned (Abandon).
//
// Every call runs inside the pipeline's transition transaction: an executor
// does its I/O through the Step, never on its own, so that what it creates
// commits or rolls back with the transition.
type Executor interface {
	// Name identifies the executor in stored timers; it must not change.
	Name() string
	Start(s *Step) error
	// Timer handles a timer the executor set for an attempt still in progress.
	Timer(s *Step, data json.RawMessage) error
	// Abandon ends an in-progress attempt without its result (stop and
	// abandon): the executor releases what it created.
	Abandon(s *Step) error
}

// Step is one action attempt as an executor sees it.
type Step struct {
	t *txn
	// Execution, Run and Action are the attempt, its execution and the
	// action's declaration (in the execution's pipeline version).
	Execution *Execution
	Run       *ActionRun
	Action    *wire.ActionDeclaration
}

// Now is the transition's time.
func (s *Step) Now() time.Time { return s.t.now }

// Succeed finishes the attempt successfully.
func (s *Step) Succeed(summary, by string, outputVariables map[string]string) {
	s.t.succeed(s.Execution, s.Run, summary, by, outputVariables)
}

// Fail finishes the attempt as failed.
func (s *Step) Fail(code, message, by string) {
	s.t.fail(s.Execution, s.Run, code, message, by)
}

// SetTimer arranges for Timer to be called at due with data, unless the
// attempt ended by then. Setting a timer of the same name again moves it.
func (s *Step) SetTimer(name string, due time.Time, data any) error {
	raw, err := json.Marshal(data)
	if err != nil {
		return err
	}
	ex := s.t.e.executorFor(actiontypes.KeyOf(s.Action.ActionTypeId))
	if ex == nil {
		return fmt.Errorf("engine: no executor for %s", actiontypes.KeyOf(s.Action.ActionTypeId))
	}
	return s.t.setAttemptTimer(ex.Name(), s.Execution.ID, s.Run.ExecutionID, name, due, raw)
}

// setAttemptTimer sets a named timer of an action attempt for an executor.
func (t *txn) setAttemptTimer(executor, executionID, actionExec, name string, due time.Time, data json.RawMessage) error {
	return t.setTimer(actionExec+":"+name, due, TimerPayload{
		Executor: executor, ExecutionID: executionID, ActionExec: actionExec, Data: data,
	})
}

// CancelTimer removes a timer set with SetTimer.
func (s *Step) CancelTimer(name string) error {
	return s.t.tx.DeleteTimer(stepTimerID(s.Run, name))
}

func stepTimerID(run *ActionRun, name string) string { return run.ExecutionID + ":" + name }

// ActionType resolves the attempt's action type (nil when it no longer exists).
func (s *Step) ActionType() (*actiontypes.Type, error) {
	return s.t.actionType(actiontypes.KeyOf(s.Action.ActionTypeId))
}

// executorFor finds the executor of an action type: one registered for the
// exact type, else one registered for its owner.
func (e *Engine) executorFor(k actiontypes.Key) Executor {
	if ex, ok := e.byType[k]; ok {
		return ex
	}
	return e.byOwner[k.Owner]
}

func (e *Engine) register(ex Executor) {
	if e.byName == nil {
		e.byName = map[string]Executor{}
	}
	e.byName[ex.Name()] = ex
}

// RegisterExecutor makes ex run the actions of an action type. Call it
// before the engine runs (tests register test executors this way; the
// built-in ones are registered by New).
func (e *Engine) RegisterExecutor(k actiontypes.Key, ex Executor) {
	e.byType[k] = ex
	e.register(ex)
}

// RegisterOwnerExecutor makes ex run the actions of every type of an owner
// that has no executor of its own.
func (e *Engine) RegisterOwnerExecutor(owner string, ex Executor) {
	e.byOwner[owner] = ex
	e.register(ex)
}
