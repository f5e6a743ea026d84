package executions

import (
	"context"

	"github.com/pipelined/pipelined/internal/engine"
	"github.com/pipelined/pipelined/internal/wire"
)

// maxTargetScan bounds how many of a pipeline's executions, newest first,
// ListDeployActionExecutionTargets looks through for the action execution.
const maxTargetScan = 1000

// ListDeployActionExecutionTargets lists what a deploy action execution
// deployed to: for the built-in S3 deploy, the bucket and key (or prefix) of
// the objects; other action types report no targets through the job
// protocol, so their list is empty.
func (s *Service) ListDeployActionExecutionTargets(ctx context.Context, in *wire.ListDeployActionExecutionTargetsInput) (*wire.ListDeployActionExecutionTargetsOutput, error) {
	if in.PipelineName == "" {
		return nil, wire.Errorf(wire.ErrValidation, "pipelineName: is required by pipelined to find action execution %s", in.ActionExecutionId)
	}
	decl, _, err := s.requirePipeline(ctx, in.PipelineName)
	if err != nil {
		return nil, err
	}
	if in.NextToken != "" {
		// One page holds every target (an action deploys to one location).
		return nil, wire.Errorf(wire.ErrInvalidNextToken, "nextToken: '%s' was not issued for this list", in.NextToken)
	}
	x, run, err := s.findActionRun(ctx, in.PipelineName, in.ActionExecutionId)
	if err != nil {
		return nil, err
	}
	if run == nil {
		return nil, wire.Errorf(wire.ErrActionExecutionNotFound, "Action execution %s does not exist in pipeline '%s'", in.ActionExecutionId, in.PipelineName)
	}
	out := &wire.ListDeployActionExecutionTargetsOutput{Targets: []wire.DeployActionExecutionTarget{}}
	ad := findDeclared(decl, run.Stage, run.Name)
	if x.PipelineVersion != 0 {
		if d, _, err := s.pipelines.Declaration(ctx, in.PipelineName, x.PipelineVersion); err == nil {
			ad = findDeclared(d, run.Stage, run.Name)
		}
	}
	if ad == nil || ad.ActionTypeId == nil || ad.ActionTypeId.Category != wire.ActionCategoryDeploy ||
		ad.ActionTypeId.Owner != wire.ActionOwnerAws || ad.ActionTypeId.Provider != "S3" {
		return out, nil
	}
	cfg := run.Resolved
	if cfg == nil {
		cfg = run.Config
	}
	target := "s3://" + cfg["BucketName"] + "/" + cfg["ObjectKey"]
	status := deployStatus(run.Status)
	tg := wire.DeployActionExecutionTarget{
		TargetId: target, TargetType: "S3Object", Status: status, StartTime: wire.TimeOf(run.Started),
		Events: []wire.DeployTargetEvent{{Name: "Deploy", Status: status, StartTime: wire.TimeOf(run.Started),
			Context: &wire.DeployTargetEventContext{Message: run.Summary + run.ErrorMessage}}},
	}
	if run.Finished() {
		tg.EndTime = wire.TimeOf(run.LastChange)
		tg.Events[0].EndTime = tg.EndTime
	}
	for _, f := range in.Filters {
		if f.Name == wire.TargetFilterNameTargetStatus && len(f.Values) > 0 && !contains(f.Values, status) {
			return out, nil
		}
	}
	out.Targets = append(out.Targets, tg)
	return out, nil
}

func deployStatus(s string) string {
	switch s {
	case engine.StatusInProgress:
		return "InProgress"
	case engine.StatusSucceeded:
		return "Succeeded"
	}
	return "Failed"
}

func contains(vs []string, v string) bool {
	for _, x := range vs {
		if x == v {
			return true
		}
	}
	return false
}

// findActionRun finds an action attempt by its id among a pipeline's most
// recent executions (retried attempts included).
func (s *Service) findActionRun(ctx context.Context, pipeline, id string) (*engine.Execution, *engine.ActionRun, error) {
	var before int64
	for scanned := 0; scanned < maxTargetScan; {
		xs, seqs, err := s.engine.Executions(ctx, pipeline, before, 100)
		if err != nil {
			return nil, nil, err
		}
		for i, x := range xs {
			for si := range x.Stages {
				for ai := range x.Stages[si].Actions {
					if x.Stages[si].Actions[ai].ExecutionID == id {
						return x, &x.Stages[si].Actions[ai], nil
					}
				}
			}
			for hi := range x.History {
				if x.History[hi].ExecutionID == id {
					return x, &x.History[hi], nil
				}
			}
			before = seqs[i]
		}
		scanned += len(xs)
		if len(xs) < 100 {
			break
		}
	}
	return nil, nil, nil
}
