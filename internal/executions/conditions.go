package executions

import (
	"context"
	"errors"
	"sort"

	"github.com/pipelined/pipelined/internal/engine"
	"github.com/pipelined/pipelined/internal/store"
	"github.com/pipelined/pipelined/internal/wire"
)

// OverrideStageCondition overrides a BEFORE_ENTRY or ON_SUCCESS condition
// in progress; the caller is recorded as who did it.
func (s *Service) OverrideStageCondition(ctx context.Context, in *wire.OverrideStageConditionInput) error {
	if _, _, err := s.requirePipeline(ctx, in.PipelineName); err != nil {
		return err
	}
	err := s.engine.OverrideCondition(ctx, in.PipelineName, in.StageName, in.PipelineExecutionId, string(in.ConditionType), callerARN(ctx))
	return s.mapNotFound(in.PipelineName, err)
}

// PutActionRevision gives a source action a new revision, which starts an
// execution unless the action already ran with it.
func (s *Service) PutActionRevision(ctx context.Context, in *wire.PutActionRevisionInput) (*wire.PutActionRevisionOutput, error) {
	if _, _, err := s.requirePipeline(ctx, in.PipelineName); err != nil {
		return nil, err
	}
	id, isNew, err := s.engine.PutActionRevision(ctx, in.PipelineName, in.StageName, in.ActionName, in.ActionRevision.RevisionId, callerARN(ctx))
	if err != nil {
		return nil, s.mapNotFound(in.PipelineName, err)
	}
	return &wire.PutActionRevisionOutput{NewRevision: wire.Ptr(isNew), PipelineExecutionId: id}, nil
}

// stageConditionState is GetPipelineState's view of a stage run's
// conditions of one kind (nil when none were evaluated).
func stageConditionState(st *engine.StageRun, kind string) *wire.StageConditionState {
	runs := st.ConditionsOf(kind)
	if len(runs) == 0 {
		return nil
	}
	out := &wire.StageConditionState{LatestExecution: &wire.StageConditionsExecution{}}
	status, summary := engine.StatusSucceeded, ""
	for _, cr := range runs {
		cs := wire.ConditionState{
			LatestExecution: &wire.ConditionExecution{Status: wire.ConditionExecutionStatus(cr.Status), Summary: cr.Summary, LastStatusChange: wire.TimeOf(cr.LastChange)},
			RuleStates:      make([]wire.RuleState, 0, len(cr.Rules)),
		}
		for i := range cr.Rules {
			r := &cr.Rules[i]
			cs.RuleStates = append(cs.RuleStates, wire.RuleState{RuleName: r.Name, LatestExecution: ruleExecution(r)})
		}
		out.ConditionStates = append(out.ConditionStates, cs)
		// The stage's view: the worst status of its conditions.
		switch {
		case cr.Status == engine.StatusFailed || cr.Status == engine.StatusErrored:
			status, summary = cr.Status, cr.Summary
		case status == engine.StatusFailed || status == engine.StatusErrored:
		case cr.Status == engine.StatusInProgress || cr.Status == engine.StatusCancelled:
			status, summary = cr.Status, cr.Summary
		case cr.Status == engine.StatusOverridden && status == engine.StatusSucceeded:
			status, summary = cr.Status, cr.Summary
		}
	}
	if summary == "" && status == engine.StatusSucceeded {
		summary = "All conditions succeeded"
	}
	out.LatestExecution.Status, out.LatestExecution.Summary = wire.ConditionExecutionStatus(status), summary
	return out
}

func ruleExecution(r *engine.RuleRun) *wire.RuleExecution {
	re := &wire.RuleExecution{
		RuleExecutionId: r.ExecutionID, Status: wire.RuleExecutionStatus(r.Status), Summary: r.Summary,
		LastStatusChange: wire.TimeOf(r.LastChange), LastUpdatedBy: r.UpdatedBy,
	}
	if r.ErrorCode != "" || r.ErrorMessage != "" {
		re.ErrorDetails = &wire.ErrorDetails{Code: r.ErrorCode, Message: r.ErrorMessage}
	}
	return re
}

const defaultRuleExecutionsPage = 100

// ListRuleExecutions lists rule evaluations, newest first: of one execution
// with a filter, else of the pipeline's 100 most recent executions.
func (s *Service) ListRuleExecutions(ctx context.Context, in *wire.ListRuleExecutionsInput) (*wire.ListRuleExecutionsOutput, error) {
	if _, _, err := s.requirePipeline(ctx, in.PipelineName); err != nil {
		return nil, err
	}
	limit := defaultRuleExecutionsPage
	if in.MaxResults != nil {
		limit = *in.MaxResults
	}
	skip := int64(0)
	if in.NextToken != "" {
		var err error
		if skip, err = decodeToken("rules", in.NextToken); err != nil {
			return nil, err
		}
	}
	var xs []*engine.Execution
	if in.Filter != nil && (in.Filter.PipelineExecutionId != "" || in.Filter.LatestInPipelineExecution != nil) {
		id := in.Filter.PipelineExecutionId
		if in.Filter.LatestInPipelineExecution != nil {
			id = in.Filter.LatestInPipelineExecution.PipelineExecutionId
		}
		x, err := s.engine.Execution(ctx, in.PipelineName, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil, wire.Errorf(wire.ErrPipelineExecutionNotFound, "Pipeline execution %s of pipeline '%s' does not exist", id, in.PipelineName)
		}
		if err != nil {
			return nil, err
		}
		xs = []*engine.Execution{x}
	} else {
		var err error
		if xs, _, err = s.engine.Executions(ctx, in.PipelineName, 0, 100); err != nil {
			return nil, err
		}
	}
	type ruleOf struct {
		x   *engine.Execution
		run engine.RuleRun
	}
	var all []ruleOf
	for _, x := range xs {
		for _, r := range x.RuleRuns() {
			all = append(all, ruleOf{x, r})
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].run.Started.After(all[j].run.Started) })
	out := &wire.ListRuleExecutionsOutput{RuleExecutionDetails: []wire.RuleExecutionDetail{}}
	for i := int(skip); i < len(all); i++ {
		if len(out.RuleExecutionDetails) == limit {
			out.NextToken = encodeToken("rules", int64(i))
			break
		}
		x, r := all[i].x, &all[i].run
		d := wire.RuleExecutionDetail{
			PipelineExecutionId: x.ID, PipelineVersion: wire.Ptr(x.PipelineVersion), RuleExecutionId: r.ExecutionID,
			RuleName: r.Name, StageName: r.Stage, StartTime: wire.TimeOf(r.Started), LastUpdateTime: wire.TimeOf(r.LastChange),
			Status: wire.RuleExecutionStatus(r.Status), UpdatedBy: r.UpdatedBy,
			Input: &wire.RuleExecutionInput{
				RuleTypeId:    &wire.RuleTypeId{Category: wire.RuleCategoryRule, Owner: wire.RuleOwnerAws, Provider: r.Provider, Version: r.Version},
				Configuration: s.pipelines.MaskSecrets(r.Config), ResolvedConfiguration: s.pipelines.MaskSecrets(r.Resolved),
				Region: r.Region, RoleArn: r.RoleArn,
			},
			Output: &wire.RuleExecutionOutput{ExecutionResult: &wire.RuleExecutionResult{ExternalExecutionSummary: r.Summary}},
		}
		for _, name := range r.Inputs {
			d.Input.InputArtifacts = append(d.Input.InputArtifacts, artifactDetail(x, name))
		}
		if r.ErrorCode != "" || r.ErrorMessage != "" {
			d.Output.ExecutionResult.ErrorDetails = &wire.ErrorDetails{Code: r.ErrorCode, Message: r.ErrorMessage}
		}
		out.RuleExecutionDetails = append(out.RuleExecutionDetails, d)
	}
	return out, nil
}
