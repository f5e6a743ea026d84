package engine

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"time"

	"github.com/pipelined/pipelined/internal/wire"
)

// approvalExecutor runs Approval/AWS/Manual/1: it issues a token and waits
// for PutApprovalResult, or fails the action when its timeout passes.
type approvalExecutor struct {
	defaultTimeout time.Duration
}

const approvalTimer = "timeout"

func (approvalExecutor) Name() string { return "manual-approval" }

func (a approvalExecutor) Start(s *Step) error {
	timeout := a.defaultTimeout
	if s.Action.TimeoutInMinutes != nil {
		timeout = time.Duration(*s.Action.TimeoutInMinutes) * time.Minute
	}
	s.Run.Token = s.t.e.newID()
	s.Run.TokenExpires = s.Now().Add(timeout)
	return s.SetTimer(approvalTimer, s.Run.TokenExpires, nil)
}

func (approvalExecutor) Timer(s *Step, _ json.RawMessage) error {
	s.Fail("TimedOut", "The approval was not decided before it timed out", "")
	return nil
}

func (approvalExecutor) Abandon(s *Step) error { return s.CancelTimer(approvalTimer) }

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
		step, err := t.findApproval(d)
		if err != nil {
			return err
		}
		if step.Run.Status != StatusInProgress {
			return wire.Errorf(wire.ErrApprovalAlreadyCompleted, "The approval of action '%s' was already %s", d.Action, step.Run.Status)
		}
		if !step.Run.TokenExpires.IsZero() && t.now.After(step.Run.TokenExpires) {
			return wire.Errorf(wire.ErrInvalidApprovalToken, "The approval token has expired")
		}
		if err := step.CancelTimer(approvalTimer); err != nil {
			return err
		}
		at = t.now
		if d.Approved {
			step.Succeed(d.Summary, d.By, nil)
		} else {
			step.Run.Summary = d.Summary
			step.Fail("Rejected", "Rejected: "+d.Summary, d.By)
		}
		return t.advance(step.Execution)
	})
	return at, err
}

// findApproval finds the approval attempt a token belongs to, among the
// executions that ran the action last and those still active.
func (t *txn) findApproval(d ApprovalDecision) (*Step, error) {
	candidates := map[string]bool{}
	if id := t.runtime().slot(d.Stage).LastAction[d.Action]; id != "" {
		candidates[id] = true
	}
	active, err := t.tx.ActiveExecutions()
	if err != nil {
		return nil, err
	}
	for _, a := range active {
		candidates[a.ID] = true
	}
	for id := range candidates {
		x, err := t.exec(id)
		if err != nil {
			return nil, err
		}
		for si := range x.Stages {
			st := &x.Stages[si]
			if st.Name != d.Stage {
				continue
			}
			for ai := range st.Actions {
				run := &st.Actions[ai]
				if run.Name == d.Action && run.Token != "" && subtle.ConstantTimeCompare([]byte(run.Token), []byte(d.Token)) == 1 {
					decl, err := t.declOf(x)
					if err != nil {
						return nil, err
					}
					return &Step{t: t, Execution: x, Run: run, Action: findAction(decl, st.Name, run.Name)}, nil
				}
			}
		}
	}
	return nil, wire.Errorf(wire.ErrInvalidApprovalToken, "The token is not the token of a pending approval of action '%s'", d.Action)
}
