// Package executions serves the CodePipeline operations that run pipelines:
// starting, stopping, retrying and rolling back executions, stage
// transitions, manual approvals, the custom-action job protocol, and the
// read operations that show it all (GetPipelineState, GetPipelineExecution,
// ListPipelineExecutions, ListActionExecutions). The engine does the work;
// this package validates requests and shapes answers as CodePipeline does.
package executions

import (
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/pipelined/pipelined/internal/actiontypes"
	"github.com/pipelined/pipelined/internal/artifacts"
	"github.com/pipelined/pipelined/internal/caller"
	"github.com/pipelined/pipelined/internal/engine"
	"github.com/pipelined/pipelined/internal/store"
	"github.com/pipelined/pipelined/internal/wire"
)

// Pipelines is what this service needs of the pipeline-definition service.
type Pipelines interface {
	engine.Definitions
	// Declaration reads a version of a pipeline (0: the latest), secrets
	// sealed. store.ErrNotFound when absent.
	Declaration(ctx context.Context, name string, version int) (*wire.PipelineDeclaration, store.Pipeline, error)
	// ActionType resolves an action type (nil when absent or deleted).
	ActionType(ctx context.Context, k actiontypes.Key) (*actiontypes.Type, error)
	// OpenSecret returns the clear value of a sealed configuration value.
	OpenSecret(pipeline, value string) (string, error)
	// MaskSecrets replaces sealed values of a configuration with the mask.
	MaskSecrets(cfg map[string]string) map[string]string
}

// Service implements the execution operations of the CodePipeline API.
type Service struct {
	engine    *engine.Engine
	store     store.Store
	pipelines Pipelines
	account   string
	pollWait  time.Duration
	wake      wakeups
	draining  chan struct{} // closed when the server shuts down
	drainOnce sync.Once
	// minter issues artifactCredentials (nil: none); see artifacts.go.
	minter artifacts.Minter
	log    *slog.Logger
	// index: the pipelines of the jobs this replica handed out (jobindex.go).
	index jobIndex
	// logStreamARN names an action execution's log stream (logstream.go).
	logStreamARN func(pipeline, actionExecutionID string, t *wire.ActionTypeId) string
}

// New returns a Service. pollWait is how long PollForJobs waits for a job
// when none is queued (0: it answers at once).
func New(e *engine.Engine, st store.Store, p Pipelines, accountID string, pollWait time.Duration) *Service {
	return &Service{engine: e, store: st, pipelines: p, account: accountID, pollWait: pollWait, draining: make(chan struct{})}
}

// Drain ends the long polls in progress (with no jobs) and makes new ones
// answer at once, so that a graceful shutdown does not wait for them.
func (s *Service) Drain() { s.drainOnce.Do(func() { close(s.draining) }) }

func (s *Service) pipelineNotFound(name string) error {
	return wire.Errorf(wire.ErrPipelineNotFound, "Account '%s' does not have a pipeline with name '%s'", s.account, name)
}

// mapNotFound turns a missing pipeline into PipelineNotFoundException.
func (s *Service) mapNotFound(name string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return s.pipelineNotFound(name)
	}
	return err
}

func (s *Service) requirePipeline(ctx context.Context, name string) (*wire.PipelineDeclaration, store.Pipeline, error) {
	d, rec, err := s.pipelines.Declaration(ctx, name, 0)
	if err != nil {
		return nil, rec, s.mapNotFound(name, err)
	}
	return d, rec, nil
}

func callerARN(ctx context.Context) string {
	if c, ok := caller.From(ctx); ok {
		return c.ARN
	}
	return ""
}

// StartPipelineExecution starts an execution (idempotent by clientRequestToken).
func (s *Service) StartPipelineExecution(ctx context.Context, in *wire.StartPipelineExecutionInput) (*wire.StartPipelineExecutionOutput, error) {
	if _, _, err := s.requirePipeline(ctx, in.Name); err != nil {
		return nil, err
	}
	overrides := map[string]string{}
	for _, o := range in.SourceRevisions {
		if _, dup := overrides[o.ActionName]; dup {
			return nil, wire.Errorf(wire.ErrValidation, "sourceRevisions names action '%s' more than once", o.ActionName)
		}
		overrides[o.ActionName] = o.RevisionValue
	}
	if len(overrides) == 0 {
		overrides = nil
	}
	id, err := s.engine.Start(ctx, engine.StartRequest{
		Pipeline: in.Name, ClientToken: in.ClientRequestToken, Variables: in.Variables, SourceOverrides: overrides,
		TriggerType: string(wire.TriggerTypeStartPipelineExecution), TriggerDetail: callerARN(ctx),
	})
	if err != nil {
		return nil, s.mapNotFound(in.Name, err)
	}
	return &wire.StartPipelineExecutionOutput{PipelineExecutionId: id}, nil
}

// StartOnCreate starts the execution CodePipeline starts when a pipeline is
// created.
func (s *Service) StartOnCreate(ctx context.Context, pipeline string) error {
	_, err := s.engine.Start(ctx, engine.StartRequest{Pipeline: pipeline, TriggerType: string(wire.TriggerTypeCreatePipeline), TriggerDetail: callerARN(ctx)})
	return err
}

// StopPipelineExecution stops an execution, waiting for or abandoning its
// running actions.
func (s *Service) StopPipelineExecution(ctx context.Context, in *wire.StopPipelineExecutionInput) (*wire.StopPipelineExecutionOutput, error) {
	if _, _, err := s.requirePipeline(ctx, in.PipelineName); err != nil {
		return nil, err
	}
	abandon := in.Abandon != nil && *in.Abandon
	if err := s.engine.Stop(ctx, in.PipelineName, in.PipelineExecutionId, abandon, in.Reason); err != nil {
		return nil, s.mapNotFound(in.PipelineName, err)
	}
	return &wire.StopPipelineExecutionOutput{PipelineExecutionId: in.PipelineExecutionId}, nil
}

// RetryStageExecution retries the failed (or all) actions of a stage.
func (s *Service) RetryStageExecution(ctx context.Context, in *wire.RetryStageExecutionInput) (*wire.RetryStageExecutionOutput, error) {
	if _, _, err := s.requirePipeline(ctx, in.PipelineName); err != nil {
		return nil, err
	}
	all := in.RetryMode == wire.StageRetryModeAllActions
	if err := s.engine.Retry(ctx, in.PipelineName, in.StageName, in.PipelineExecutionId, all); err != nil {
		return nil, s.mapNotFound(in.PipelineName, err)
	}
	return &wire.RetryStageExecutionOutput{PipelineExecutionId: in.PipelineExecutionId}, nil
}

// RollbackStage starts a rollback execution of a stage.
func (s *Service) RollbackStage(ctx context.Context, in *wire.RollbackStageInput) (*wire.RollbackStageOutput, error) {
	if _, _, err := s.requirePipeline(ctx, in.PipelineName); err != nil {
		return nil, err
	}
	id, err := s.engine.Rollback(ctx, in.PipelineName, in.StageName, in.TargetPipelineExecutionId)
	if err != nil {
		return nil, s.mapNotFound(in.PipelineName, err)
	}
	return &wire.RollbackStageOutput{PipelineExecutionId: id}, nil
}

// transitionStage maps a transition to the stage whose inbound transition
// it is: a stage's outbound transition is the next stage's inbound one.
func transitionStage(decl *wire.PipelineDeclaration, stage string, typ wire.StageTransitionType) (string, error) {
	for i, st := range decl.Stages {
		if st.Name != stage {
			continue
		}
		if typ == wire.StageTransitionTypeInbound {
			return stage, nil
		}
		if i+1 == len(decl.Stages) {
			return "", wire.Errorf(wire.ErrValidation, "Stage '%s' is the last stage and has no outbound transition", stage)
		}
		return decl.Stages[i+1].Name, nil
	}
	return "", wire.Errorf(wire.ErrStageNotFound, "Stage '%s' does not exist in pipeline '%s'", stage, decl.Name)
}

// DisableStageTransition holds executions at a transition.
func (s *Service) DisableStageTransition(ctx context.Context, in *wire.DisableStageTransitionInput) error {
	decl, _, err := s.requirePipeline(ctx, in.PipelineName)
	if err != nil {
		return err
	}
	stage, err := transitionStage(decl, in.StageName, in.TransitionType)
	if err != nil {
		return err
	}
	return s.mapNotFound(in.PipelineName, s.engine.SetTransition(ctx, in.PipelineName, stage, false, in.Reason, callerARN(ctx)))
}

// EnableStageTransition lets held executions through.
func (s *Service) EnableStageTransition(ctx context.Context, in *wire.EnableStageTransitionInput) error {
	decl, _, err := s.requirePipeline(ctx, in.PipelineName)
	if err != nil {
		return err
	}
	stage, err := transitionStage(decl, in.StageName, in.TransitionType)
	if err != nil {
		return err
	}
	return s.mapNotFound(in.PipelineName, s.engine.SetTransition(ctx, in.PipelineName, stage, true, "", callerARN(ctx)))
}

// PutApprovalResult approves or rejects a pending manual approval.
func (s *Service) PutApprovalResult(ctx context.Context, in *wire.PutApprovalResultInput) (*wire.PutApprovalResultOutput, error) {
	if _, _, err := s.requirePipeline(ctx, in.PipelineName); err != nil {
		return nil, err
	}
	at, err := s.engine.Approve(ctx, engine.ApprovalDecision{
		Pipeline: in.PipelineName, Stage: in.StageName, Action: in.ActionName, Token: in.Token,
		Approved: in.Result.Status == wire.ApprovalStatusApproved, Summary: in.Result.Summary, By: callerARN(ctx),
	})
	if err != nil {
		return nil, s.mapNotFound(in.PipelineName, err)
	}
	return &wire.PutApprovalResultOutput{ApprovedAt: wire.TimeOf(at)}, nil
}

// Tokens of the list operations are typed, like the pipelines service's.
func encodeToken(kind string, n int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(kind + "\x00" + strconv.FormatInt(n, 10)))
}

func decodeToken(kind, token string) (int64, error) {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err == nil {
		if k, pos, ok := cutZero(string(raw)); ok && k == kind {
			if n, err := strconv.ParseInt(pos, 10, 64); err == nil && n > 0 {
				return n, nil
			}
		}
	}
	return 0, wire.Errorf(wire.ErrInvalidNextToken, "The next token is not valid")
}

func cutZero(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return s[:i], s[i+1:], true
		}
	}
	return "", "", false
}
