package executions

import (
	"context"
	"errors"
	"sort"

	"github.com/pipelined/pipelined/internal/actiontypes"
	"github.com/pipelined/pipelined/internal/engine"
	"github.com/pipelined/pipelined/internal/store"
	"github.com/pipelined/pipelined/internal/wire"
)

// GetPipelineState shows, per stage of the latest version: the inbound
// transition, who waits at it, the latest execution of the stage and the
// latest execution of each action.
func (s *Service) GetPipelineState(ctx context.Context, in *wire.GetPipelineStateInput) (*wire.GetPipelineStateOutput, error) {
	snap, err := s.engine.Snapshot(ctx, in.Name)
	if err != nil {
		return nil, s.mapNotFound(in.Name, err)
	}
	out := &wire.GetPipelineStateOutput{
		PipelineName: in.Name, PipelineVersion: wire.Ptr(snap.Record.Version),
		Created: wire.TimeOf(snap.Record.Created), Updated: wire.TimeOf(snap.Record.Updated),
		StageStates: make([]wire.StageState, 0, len(snap.Declaration.Stages)),
	}
	types := s.typeCache(ctx)
	for _, sd := range snap.Declaration.Stages {
		slot := snap.Runtime.Stages[sd.Name]
		if slot == nil {
			slot = &engine.StageSlot{}
		}
		ss := wire.StageState{
			StageName:              sd.Name,
			InboundTransitionState: &wire.TransitionState{Enabled: wire.Ptr(slot.Disabled == nil)},
			ActionStates:           make([]wire.ActionState, 0, len(sd.Actions)),
		}
		if slot.Disabled != nil {
			ss.InboundTransitionState.DisabledReason = slot.Disabled.Reason
		}
		if !slot.ChangedAt.IsZero() {
			ss.InboundTransitionState.LastChangedAt = wire.TimeOf(slot.ChangedAt)
			ss.InboundTransitionState.LastChangedBy = slot.ChangedBy
		}
		for i, id := range slot.Waiting {
			x := snap.Executions[id]
			if x == nil {
				continue
			}
			se := wire.StageExecution{PipelineExecutionId: id, Status: wire.StageExecutionStatus(x.Status), Type: wire.ExecutionType(x.Type)}
			if i == 0 {
				ss.InboundExecution = &se
			}
			ss.InboundExecutions = append(ss.InboundExecutions, se)
		}
		if x := snap.Executions[slot.Latest]; x != nil {
			if st := stageRun(x, sd.Name); st != nil && st.Status != "" {
				ss.LatestExecution = &wire.StageExecution{PipelineExecutionId: x.ID, Status: wire.StageExecutionStatus(st.Status), Type: wire.ExecutionType(x.Type)}
				if st.Retries > 0 {
					ss.RetryStageMetadata = &wire.RetryStageMetadata{ManualStageRetryAttempt: wire.Ptr(st.Retries), LatestRetryTrigger: wire.RetryTriggerManualStageRetry}
				}
				if st.AutoRetries > 0 { // conditions.go
					if ss.RetryStageMetadata == nil {
						ss.RetryStageMetadata = &wire.RetryStageMetadata{LatestRetryTrigger: wire.RetryTriggerAutomatedStageRetry}
					}
					ss.RetryStageMetadata.AutoStageRetryAttempt = wire.Ptr(st.AutoRetries)
				}
				ss.BeforeEntryConditionState = stageConditionState(st, engine.KindBeforeEntry)
				ss.OnSuccessConditionState = stageConditionState(st, engine.KindOnSuccess)
				ss.OnFailureConditionState = stageConditionState(st, engine.KindOnFailure)
			}
		}
		for _, ad := range sd.Actions {
			as := wire.ActionState{ActionName: ad.Name}
			typ := types.of(ad.ActionTypeId)
			run := shownRun(snap, slot, sd.Name, ad.Name)
			if run != nil {
				as.LatestExecution = s.actionExecution(typ, run)
				if run.Revision != "" {
					as.CurrentRevision = &wire.ActionRevision{RevisionId: run.Revision, RevisionChangeId: run.Revision, Created: wire.TimeOf(run.LastChange)}
				}
			}
			actionURLs(&as, typ, &ad, run)
			ss.ActionStates = append(ss.ActionStates, as)
		}
		out.StageStates = append(out.StageStates, ss)
	}
	return out, nil
}

// shownRun is the action attempt GetPipelineState shows: the most recently
// started one; but when that one has finished while an older execution's
// attempt is still in progress (PARALLEL mode), the one in progress, so that
// a pending approval's token is always reachable.
func shownRun(snap *engine.Snapshot, slot *engine.StageSlot, stage, action string) *engine.ActionRun {
	var latest *engine.ActionRun
	if x := snap.Executions[slot.LastAction[action]]; x != nil {
		if st := stageRun(x, stage); st != nil {
			latest = findRun(st, action)
		}
	}
	if latest != nil && latest.Status == engine.StatusInProgress {
		return latest
	}
	for i := len(snap.Active) - 1; i >= 0; i-- {
		if st := stageRun(snap.Active[i], stage); st != nil {
			if run := findRun(st, action); run != nil && run.Status == engine.StatusInProgress {
				return run
			}
		}
	}
	return latest
}

func stageRun(x *engine.Execution, stage string) *engine.StageRun {
	for i := range x.Stages {
		if x.Stages[i].Name == stage {
			return &x.Stages[i]
		}
	}
	return nil
}

func findRun(st *engine.StageRun, action string) *engine.ActionRun {
	for i := range st.Actions {
		if st.Actions[i].Name == action {
			return &st.Actions[i]
		}
	}
	return nil
}

// actionExecution is GetPipelineState's view of an action attempt. The
// approval token is shown only while the approval is pending.
func (s *Service) actionExecution(typ *actiontypes.Type, run *engine.ActionRun) *wire.ActionExecution {
	ae := &wire.ActionExecution{
		ActionExecutionId: run.ExecutionID, Status: wire.ActionExecutionStatus(run.Status), Summary: run.Summary,
		LastStatusChange: wire.TimeOf(run.LastChange), LastUpdatedBy: run.UpdatedBy,
		ExternalExecutionId: run.ExternalID, ExternalExecutionUrl: executionURL(typ, run), PercentComplete: run.Percent,
	}
	if run.Status == engine.StatusInProgress {
		ae.Token = run.Token
	}
	if run.ErrorCode != "" || run.ErrorMessage != "" {
		ae.ErrorDetails = &wire.ErrorDetails{Code: run.ErrorCode, Message: run.ErrorMessage}
	}
	return ae
}

// GetPipelineExecution describes one execution.
func (s *Service) GetPipelineExecution(ctx context.Context, in *wire.GetPipelineExecutionInput) (*wire.GetPipelineExecutionOutput, error) {
	if _, _, err := s.requirePipeline(ctx, in.PipelineName); err != nil {
		return nil, err
	}
	x, err := s.engine.Execution(ctx, in.PipelineName, in.PipelineExecutionId)
	if errors.Is(err, store.ErrNotFound) {
		return nil, wire.Errorf(wire.ErrPipelineExecutionNotFound, "Pipeline execution %s of pipeline '%s' does not exist", in.PipelineExecutionId, in.PipelineName)
	}
	if err != nil {
		return nil, err
	}
	pe := &wire.PipelineExecution{
		PipelineName: x.Pipeline, PipelineVersion: wire.Ptr(x.PipelineVersion), PipelineExecutionId: x.ID,
		Status: wire.PipelineExecutionStatus(x.Status), StatusSummary: x.StatusSummary,
		ExecutionMode: wire.ExecutionMode(x.Mode), ExecutionType: wire.ExecutionType(x.Type),
		Trigger:           &wire.ExecutionTrigger{TriggerType: wire.TriggerType(x.TriggerType), TriggerDetail: x.TriggerDetail},
		ArtifactRevisions: artifactRevisions(x),
	}
	for _, v := range x.Variables {
		pe.Variables = append(pe.Variables, wire.ResolvedPipelineVariable{Name: v.Name, ResolvedValue: v.Value})
	}
	if x.RollbackTarget != "" {
		pe.RollbackMetadata = &wire.PipelineRollbackMetadata{RollbackTargetPipelineExecutionId: x.RollbackTarget}
	}
	return &wire.GetPipelineExecutionOutput{PipelineExecution: pe}, nil
}

func artifactRevisions(x *engine.Execution) []wire.ArtifactRevision {
	names := make([]string, 0, len(x.Artifacts))
	for n := range x.Artifacts {
		names = append(names, n)
	}
	sort.Strings(names)
	out := []wire.ArtifactRevision{}
	for _, n := range names {
		a := x.Artifacts[n]
		out = append(out, wire.ArtifactRevision{Name: n, RevisionId: a.Revision, Created: wire.TimeOf(a.Created)})
	}
	return out
}

const defaultExecutionsPage = 100

// ListPipelineExecutions lists executions, newest first.
func (s *Service) ListPipelineExecutions(ctx context.Context, in *wire.ListPipelineExecutionsInput) (*wire.ListPipelineExecutionsOutput, error) {
	if _, _, err := s.requirePipeline(ctx, in.PipelineName); err != nil {
		return nil, err
	}
	limit := defaultExecutionsPage
	if in.MaxResults != nil {
		limit = *in.MaxResults
	}
	var before int64
	if in.NextToken != "" {
		var err error
		if before, err = decodeToken("executions", in.NextToken); err != nil {
			return nil, err
		}
	}
	var stageFilter string
	if in.Filter != nil && in.Filter.SucceededInStage != nil {
		stageFilter = in.Filter.SucceededInStage.StageName
	}
	out := &wire.ListPipelineExecutionsOutput{PipelineExecutionSummaries: []wire.PipelineExecutionSummary{}}
	for {
		xs, seqs, err := s.engine.Executions(ctx, in.PipelineName, before, limit+1)
		if err != nil {
			return nil, err
		}
		for i, x := range xs {
			if stageFilter != "" {
				if st := stageRun(x, stageFilter); st == nil || st.Status != engine.StatusSucceeded {
					before = seqs[i]
					continue
				}
			}
			if len(out.PipelineExecutionSummaries) == limit {
				out.NextToken = encodeToken("executions", before)
				return out, nil
			}
			out.PipelineExecutionSummaries = append(out.PipelineExecutionSummaries, summary(x))
			before = seqs[i]
		}
		if len(xs) <= limit {
			return out, nil
		}
	}
}

func summary(x *engine.Execution) wire.PipelineExecutionSummary {
	sum := wire.PipelineExecutionSummary{
		PipelineExecutionId: x.ID, Status: wire.PipelineExecutionStatus(x.Status), StatusSummary: x.StatusSummary,
		StartTime: wire.TimeOf(x.Created), LastUpdateTime: wire.TimeOf(x.Updated),
		ExecutionMode: wire.ExecutionMode(x.Mode), ExecutionType: wire.ExecutionType(x.Type),
		Trigger:         &wire.ExecutionTrigger{TriggerType: wire.TriggerType(x.TriggerType), TriggerDetail: x.TriggerDetail},
		SourceRevisions: []wire.SourceRevision{},
	}
	if x.StopReason != "" || x.Status == engine.StatusStopped || x.Status == engine.StatusStopping {
		sum.StopTrigger = &wire.StopExecutionTrigger{Reason: x.StopReason}
	}
	if x.RollbackTarget != "" {
		sum.RollbackMetadata = &wire.PipelineRollbackMetadata{RollbackTargetPipelineExecutionId: x.RollbackTarget}
	}
	if len(x.Stages) > 0 {
		for _, run := range x.Stages[0].Actions {
			if run.Revision != "" {
				sum.SourceRevisions = append(sum.SourceRevisions, wire.SourceRevision{ActionName: run.Name, RevisionId: run.Revision})
			}
		}
	}
	return sum
}

const defaultActionExecutionsPage = 100

// ListActionExecutions lists action attempts (all attempts, retried ones
// included), newest first; secret configuration values are masked.
func (s *Service) ListActionExecutions(ctx context.Context, in *wire.ListActionExecutionsInput) (*wire.ListActionExecutionsOutput, error) {
	decl, _, err := s.requirePipeline(ctx, in.PipelineName)
	if err != nil {
		return nil, err
	}
	limit := defaultActionExecutionsPage
	if in.MaxResults != nil {
		limit = *in.MaxResults
	}
	skip := int64(0)
	if in.NextToken != "" {
		if skip, err = decodeToken("actions", in.NextToken); err != nil {
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
		// The most recent executions; older ones are reached through a filter.
		if xs, _, err = s.engine.Executions(ctx, in.PipelineName, 0, 100); err != nil {
			return nil, err
		}
	}
	latestOnly := in.Filter != nil && in.Filter.LatestInPipelineExecution != nil
	var runs []actionRunOf
	for _, x := range xs {
		for _, st := range x.Stages {
			for _, run := range st.Actions {
				runs = append(runs, actionRunOf{x, run})
			}
		}
		if !latestOnly {
			for _, run := range x.History {
				runs = append(runs, actionRunOf{x, run})
			}
		}
	}
	sort.SliceStable(runs, func(i, j int) bool { return runs[i].run.Started.After(runs[j].run.Started) })
	out := &wire.ListActionExecutionsOutput{ActionExecutionDetails: []wire.ActionExecutionDetail{}}
	types := s.typeCache(ctx)
	for i := int(skip); i < len(runs); i++ {
		if len(out.ActionExecutionDetails) == limit {
			out.NextToken = encodeToken("actions", int64(i))
			break
		}
		out.ActionExecutionDetails = append(out.ActionExecutionDetails, s.actionDetail(types, decl, runs[i].x, &runs[i].run))
	}
	return out, nil
}

type actionRunOf struct {
	x   *engine.Execution
	run engine.ActionRun
}

func (s *Service) actionDetail(types *typeCache, decl *wire.PipelineDeclaration, x *engine.Execution, run *engine.ActionRun) wire.ActionExecutionDetail {
	d := wire.ActionExecutionDetail{
		PipelineExecutionId: x.ID, ActionExecutionId: run.ExecutionID, PipelineVersion: wire.Ptr(x.PipelineVersion),
		StageName: run.Stage, ActionName: run.Name, StartTime: wire.TimeOf(run.Started), LastUpdateTime: wire.TimeOf(run.LastChange),
		UpdatedBy: run.UpdatedBy, Status: wire.ActionExecutionStatus(run.Status),
		Input: &wire.ActionExecutionInput{
			Configuration: s.pipelines.MaskSecrets(run.Config), ResolvedConfiguration: s.pipelines.MaskSecrets(run.Resolved),
			Namespace: run.Namespace,
		},
		Output: &wire.ActionExecutionOutput{
			ExecutionResult: &wire.ActionExecutionResult{ExternalExecutionId: run.ExternalID, ExternalExecutionSummary: run.Summary},
			OutputVariables: run.OutputVariables,
		},
	}
	if run.ErrorCode != "" || run.ErrorMessage != "" {
		d.Output.ExecutionResult.ErrorDetails = &wire.ErrorDetails{Code: run.ErrorCode, Message: run.ErrorMessage}
	}
	if ad := findDeclared(decl, run.Stage, run.Name); ad != nil {
		d.Input.ActionTypeId, d.Input.RoleArn, d.Input.Region = ad.ActionTypeId, ad.RoleArn, ad.Region
		d.Output.ExecutionResult.ExternalExecutionUrl = executionURL(types.of(ad.ActionTypeId), run)
		if s.logStreamARN != nil {
			d.Output.ExecutionResult.LogStreamARN = s.logStreamARN(x.Pipeline, run.ExecutionID, ad.ActionTypeId)
		}
	} else {
		d.Output.ExecutionResult.ExternalExecutionUrl = run.ExternalURL
	}
	for _, name := range run.Inputs {
		d.Input.InputArtifacts = append(d.Input.InputArtifacts, artifactDetail(x, name))
	}
	if run.Status == engine.StatusSucceeded {
		for _, name := range run.Outputs {
			d.Output.OutputArtifacts = append(d.Output.OutputArtifacts, artifactDetail(x, name))
		}
	}
	return d
}

func artifactDetail(x *engine.Execution, name string) wire.ArtifactDetail {
	a := wire.ArtifactDetail{Name: name}
	if ref, ok := x.Artifacts[name]; ok {
		a.S3location = &wire.S3Location{Bucket: ref.Bucket, Key: ref.Key}
	}
	return a
}

func findDeclared(decl *wire.PipelineDeclaration, stage, action string) *wire.ActionDeclaration {
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
