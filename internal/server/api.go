package server

import (
	"context"

	"github.com/pipelined/pipelined/internal/executions"
	"github.com/pipelined/pipelined/internal/pipelines"
	"github.com/pipelined/pipelined/internal/wire"
)

// api routes each operation to the service that owns it: pipeline
// definitions, action types and tags to pipelines.Service (which answers
// every operation nobody serves yet with UnsupportedOperationException),
// executions, approvals and jobs to executions.Service.
type api struct {
	*pipelines.Service
	ex *executions.Service
}

var _ wire.API = api{}

func (a api) StartPipelineExecution(ctx context.Context, in *wire.StartPipelineExecutionInput) (*wire.StartPipelineExecutionOutput, error) {
	return a.ex.StartPipelineExecution(ctx, in)
}

func (a api) StopPipelineExecution(ctx context.Context, in *wire.StopPipelineExecutionInput) (*wire.StopPipelineExecutionOutput, error) {
	return a.ex.StopPipelineExecution(ctx, in)
}

func (a api) RetryStageExecution(ctx context.Context, in *wire.RetryStageExecutionInput) (*wire.RetryStageExecutionOutput, error) {
	return a.ex.RetryStageExecution(ctx, in)
}

func (a api) RollbackStage(ctx context.Context, in *wire.RollbackStageInput) (*wire.RollbackStageOutput, error) {
	return a.ex.RollbackStage(ctx, in)
}

func (a api) DisableStageTransition(ctx context.Context, in *wire.DisableStageTransitionInput) error {
	return a.ex.DisableStageTransition(ctx, in)
}

func (a api) EnableStageTransition(ctx context.Context, in *wire.EnableStageTransitionInput) error {
	return a.ex.EnableStageTransition(ctx, in)
}

func (a api) PutApprovalResult(ctx context.Context, in *wire.PutApprovalResultInput) (*wire.PutApprovalResultOutput, error) {
	return a.ex.PutApprovalResult(ctx, in)
}

func (a api) GetPipelineState(ctx context.Context, in *wire.GetPipelineStateInput) (*wire.GetPipelineStateOutput, error) {
	return a.ex.GetPipelineState(ctx, in)
}

func (a api) GetPipelineExecution(ctx context.Context, in *wire.GetPipelineExecutionInput) (*wire.GetPipelineExecutionOutput, error) {
	return a.ex.GetPipelineExecution(ctx, in)
}

func (a api) ListPipelineExecutions(ctx context.Context, in *wire.ListPipelineExecutionsInput) (*wire.ListPipelineExecutionsOutput, error) {
	return a.ex.ListPipelineExecutions(ctx, in)
}

func (a api) ListActionExecutions(ctx context.Context, in *wire.ListActionExecutionsInput) (*wire.ListActionExecutionsOutput, error) {
	return a.ex.ListActionExecutions(ctx, in)
}

func (a api) PollForJobs(ctx context.Context, in *wire.PollForJobsInput) (*wire.PollForJobsOutput, error) {
	return a.ex.PollForJobs(ctx, in)
}

// The third-party job protocol (internal/executions/thirdparty.go).

func (a api) PollForThirdPartyJobs(ctx context.Context, in *wire.PollForThirdPartyJobsInput) (*wire.PollForThirdPartyJobsOutput, error) {
	return a.ex.PollThirdPartyJobs(ctx, in)
}

func (a api) GetThirdPartyJobDetails(ctx context.Context, in *wire.GetThirdPartyJobDetailsInput) (*wire.GetThirdPartyJobDetailsOutput, error) {
	return a.ex.GetThirdPartyJobDetails(ctx, in)
}

func (a api) AcknowledgeThirdPartyJob(ctx context.Context, in *wire.AcknowledgeThirdPartyJobInput) (*wire.AcknowledgeThirdPartyJobOutput, error) {
	return a.ex.AcknowledgeThirdPartyJob(ctx, in)
}

func (a api) PutThirdPartyJobSuccessResult(ctx context.Context, in *wire.PutThirdPartyJobSuccessResultInput) error {
	return a.ex.PutThirdPartyJobSuccessResult(ctx, in)
}

func (a api) PutThirdPartyJobFailureResult(ctx context.Context, in *wire.PutThirdPartyJobFailureResultInput) error {
	return a.ex.PutThirdPartyJobFailureResult(ctx, in)
}

func (a api) AcknowledgeJob(ctx context.Context, in *wire.AcknowledgeJobInput) (*wire.AcknowledgeJobOutput, error) {
	return a.ex.AcknowledgeJob(ctx, in)
}

func (a api) GetJobDetails(ctx context.Context, in *wire.GetJobDetailsInput) (*wire.GetJobDetailsOutput, error) {
	return a.ex.GetJobDetails(ctx, in)
}

func (a api) PutJobSuccessResult(ctx context.Context, in *wire.PutJobSuccessResultInput) error {
	return a.ex.PutJobSuccessResult(ctx, in)
}

func (a api) PutJobFailureResult(ctx context.Context, in *wire.PutJobFailureResultInput) error {
	return a.ex.PutJobFailureResult(ctx, in)
}

// Stage conditions, rules and the remaining operations
// (internal/executions/conditions.go and targets.go).

func (a api) OverrideStageCondition(ctx context.Context, in *wire.OverrideStageConditionInput) error {
	return a.ex.OverrideStageCondition(ctx, in)
}

func (a api) ListRuleExecutions(ctx context.Context, in *wire.ListRuleExecutionsInput) (*wire.ListRuleExecutionsOutput, error) {
	return a.ex.ListRuleExecutions(ctx, in)
}

func (a api) PutActionRevision(ctx context.Context, in *wire.PutActionRevisionInput) (*wire.PutActionRevisionOutput, error) {
	return a.ex.PutActionRevision(ctx, in)
}

func (a api) ListDeployActionExecutionTargets(ctx context.Context, in *wire.ListDeployActionExecutionTargetsInput) (*wire.ListDeployActionExecutionTargetsOutput, error) {
	return a.ex.ListDeployActionExecutionTargets(ctx, in)
}
