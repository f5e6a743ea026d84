package server_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline/types"

	"github.com/pipelined/pipelined/internal/server"
	"github.com/pipelined/pipelined/internal/server/servertest"
)

// gatePipeline is Source → Approve → Ship.
func gatePipeline(name string, mode types.ExecutionMode) *types.PipelineDeclaration {
	p := runPipeline(name, mode)
	p.Stages = []types.StageDeclaration{p.Stages[0], p.Stages[2], p.Stages[3]}
	p.Stages[2].Actions[0].InputArtifacts[0].Name = aws.String("Code")
	return p
}

func create(t *testing.T, c *codepipeline.Client, p *types.PipelineDeclaration) string {
	t.Helper()
	ctx := context.Background()
	if _, err := c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: p}); err != nil {
		t.Fatal(err)
	}
	list, err := c.ListPipelineExecutions(ctx, &codepipeline.ListPipelineExecutionsInput{PipelineName: p.Name})
	if err != nil || len(list.PipelineExecutionSummaries) != 1 {
		t.Fatalf("executions after create: %+v %v", list, err)
	}
	return aws.ToString(list.PipelineExecutionSummaries[0].PipelineExecutionId)
}

func start(t *testing.T, c *codepipeline.Client, pipeline string) string {
	t.Helper()
	out, err := c.StartPipelineExecution(context.Background(), &codepipeline.StartPipelineExecutionInput{Name: aws.String(pipeline)})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.PipelineExecutionId)
}

func stageState(t *testing.T, c *codepipeline.Client, pipeline, stage string) types.StageState {
	t.Helper()
	st, err := c.GetPipelineState(context.Background(), &codepipeline.GetPipelineStateInput{Name: aws.String(pipeline)})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st.StageStates {
		if aws.ToString(s.StageName) == stage {
			return s
		}
	}
	t.Fatalf("no stage %s", stage)
	return types.StageState{}
}

func TestFailureAndRetry(t *testing.T) {
	servertest.EachBackend(t, func(t *testing.T, backend servertest.Options) {
		_, c := engineServer(t, backend)
		ctx := context.Background()
		var failing atomic.Bool
		failing.Store(true)
		startWorker(t, c, func(j types.Job) string {
			if aws.ToString(j.Data.PipelineContext.Action.Name) == "Unit" && failing.Load() {
				return "3 tests failed"
			}
			return ""
		})
		id := create(t, c, runPipeline("flaky", ""))
		waitStatus(t, c, "flaky", id, types.PipelineExecutionStatusFailed)
		ex, _ := c.GetPipelineExecution(ctx, &codepipeline.GetPipelineExecutionInput{PipelineName: aws.String("flaky"), PipelineExecutionId: aws.String(id)})
		if !strings.Contains(aws.ToString(ex.PipelineExecution.StatusSummary), "3 tests failed") {
			t.Errorf("statusSummary = %q", aws.ToString(ex.PipelineExecution.StatusSummary))
		}
		build := stageState(t, c, "flaky", "Build")
		if build.LatestExecution.Status != types.StageExecutionStatusFailed {
			t.Fatalf("Build stage = %+v", build.LatestExecution)
		}
		var unitErr *types.ErrorDetails
		for _, a := range build.ActionStates {
			if aws.ToString(a.ActionName) == "Unit" {
				unitErr = a.LatestExecution.ErrorDetails
			}
			if aws.ToString(a.ActionName) == "Package" && a.LatestExecution != nil {
				t.Error("runOrder 2 started although runOrder 1 failed")
			}
		}
		if unitErr == nil || aws.ToString(unitErr.Code) != "JobFailed" || aws.ToString(unitErr.Message) != "3 tests failed" {
			t.Errorf("Unit error = %+v", unitErr)
		}

		// Retrying a stage that did not fail, or in a wrong way, is refused.
		_, err := c.RetryStageExecution(ctx, &codepipeline.RetryStageExecutionInput{PipelineName: aws.String("flaky"), StageName: aws.String("Source"), PipelineExecutionId: aws.String(id), RetryMode: types.StageRetryModeFailedActions})
		wantCode(t, err, "StageNotRetryableException")
		_, err = c.RetryStageExecution(ctx, &codepipeline.RetryStageExecutionInput{PipelineName: aws.String("flaky"), StageName: aws.String("Nope"), PipelineExecutionId: aws.String(id), RetryMode: types.StageRetryModeFailedActions})
		wantCode(t, err, "StageNotFoundException")

		attempts := func() map[string]int {
			acts, err := c.ListActionExecutions(ctx, &codepipeline.ListActionExecutionsInput{PipelineName: aws.String("flaky"), Filter: &types.ActionExecutionFilter{PipelineExecutionId: aws.String(id)}})
			if err != nil {
				t.Fatal(err)
			}
			count := map[string]int{}
			for _, d := range acts.ActionExecutionDetails {
				count[aws.ToString(d.ActionName)]++
			}
			return count
		}
		// FAILED_ACTIONS re-runs only the failed action (which fails again).
		if _, err := c.RetryStageExecution(ctx, &codepipeline.RetryStageExecutionInput{PipelineName: aws.String("flaky"), StageName: aws.String("Build"), PipelineExecutionId: aws.String(id), RetryMode: types.StageRetryModeFailedActions}); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, c, "flaky", id, types.PipelineExecutionStatusFailed)
		if n := attempts(); n["Compile"] != 1 || n["Unit"] != 2 || n["Package"] != 0 {
			t.Errorf("after a FAILED_ACTIONS retry, attempts per action = %v", n)
		}
		// ALL_ACTIONS re-runs every action of the stage.
		failing.Store(false)
		if _, err := c.RetryStageExecution(ctx, &codepipeline.RetryStageExecutionInput{PipelineName: aws.String("flaky"), StageName: aws.String("Build"), PipelineExecutionId: aws.String(id), RetryMode: types.StageRetryModeAllActions}); err != nil {
			t.Fatal(err)
		}
		token, _ := pendingApproval(t, c, "flaky", "Approve")
		if n := attempts(); n["Compile"] != 2 || n["Unit"] != 3 || n["Package"] != 1 {
			t.Errorf("after an ALL_ACTIONS retry, attempts per action = %v", n)
		}
		build = stageState(t, c, "flaky", "Build")
		if build.RetryStageMetadata == nil || aws.ToInt32(build.RetryStageMetadata.ManualStageRetryAttempt) != 2 {
			t.Errorf("retry metadata = %+v", build.RetryStageMetadata)
		}
		if _, err := approve(t, c, "flaky", token, types.ApprovalStatusApproved); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, c, "flaky", id, types.PipelineExecutionStatusSucceeded)
	})
}

func TestRejectionTimeoutAndNotLatest(t *testing.T) {
	servertest.EachBackend(t, func(t *testing.T, backend servertest.Options) {
		_, c := engineServer(t, backend, func(cfg *server.Config) { cfg.ApprovalTimeout = 300 * time.Millisecond })
		ctx := context.Background()
		startWorker(t, c, nil)
		// The approval of the execution started on create times out.
		first := create(t, c, gatePipeline("gated", ""))
		pendingApproval(t, c, "gated", "Approve")
		waitStatus(t, c, "gated", first, types.PipelineExecutionStatusFailed)
		gate := stageState(t, c, "gated", "Approve").ActionStates[0].LatestExecution
		if gate.ErrorDetails == nil || aws.ToString(gate.ErrorDetails.Code) != "TimedOut" {
			t.Errorf("timed-out approval = %+v", gate)
		}

		// A second execution is rejected by a person.
		second := start(t, c, "gated")
		token, on := pendingApproval(t, c, "gated", "Approve")
		if on != second {
			t.Fatalf("approval pending for %s, want %s", on, second)
		}
		if _, err := approve(t, c, "gated", token, types.ApprovalStatusRejected); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, c, "gated", second, types.PipelineExecutionStatusFailed)
		gate = stageState(t, c, "gated", "Approve").ActionStates[0].LatestExecution
		if gate.Status != types.ActionExecutionStatusFailed || aws.ToString(gate.LastUpdatedBy) != "arn:aws:iam::123456789012:root" {
			t.Errorf("rejected approval = %+v", gate)
		}
		// The first execution is no longer the latest in the stage.
		_, err := c.RetryStageExecution(ctx, &codepipeline.RetryStageExecutionInput{PipelineName: aws.String("gated"), StageName: aws.String("Approve"), PipelineExecutionId: aws.String(first), RetryMode: types.StageRetryModeAllActions})
		wantCode(t, err, "NotLatestPipelineExecutionException")
		_, err = approve(t, c, "gated", token, types.ApprovalStatusApproved)
		wantCode(t, err, "ApprovalAlreadyCompletedException")
		_, err = c.PutApprovalResult(ctx, &codepipeline.PutApprovalResultInput{PipelineName: aws.String("gated"), StageName: aws.String("Nope"), ActionName: aws.String("Gate"), Token: aws.String(token), Result: &types.ApprovalResult{Status: types.ApprovalStatusApproved, Summary: aws.String("x")}})
		wantCode(t, err, "StageNotFoundException")
		_, err = c.PutApprovalResult(ctx, &codepipeline.PutApprovalResultInput{PipelineName: aws.String("gated"), StageName: aws.String("Approve"), ActionName: aws.String("Nope"), Token: aws.String(token), Result: &types.ApprovalResult{Status: types.ApprovalStatusApproved, Summary: aws.String("x")}})
		wantCode(t, err, "ActionNotFoundException")
		_, err = c.PutApprovalResult(ctx, &codepipeline.PutApprovalResultInput{PipelineName: aws.String("nope"), StageName: aws.String("Approve"), ActionName: aws.String("Gate"), Token: aws.String(token), Result: &types.ApprovalResult{Status: types.ApprovalStatusApproved, Summary: aws.String("x")}})
		wantCode(t, err, "PipelineNotFoundException")
		_, err = c.PutApprovalResult(ctx, &codepipeline.PutApprovalResultInput{PipelineName: aws.String("gated"), StageName: aws.String("Approve"), ActionName: aws.String("Gate"), Token: aws.String("not-a-uuid"), Result: &types.ApprovalResult{Status: types.ApprovalStatusApproved, Summary: aws.String("x")}})
		wantCode(t, err, "ValidationException")

		// Retry of the rejected approval (the latest) asks again.
		if _, err := c.RetryStageExecution(ctx, &codepipeline.RetryStageExecutionInput{PipelineName: aws.String("gated"), StageName: aws.String("Approve"), PipelineExecutionId: aws.String(second), RetryMode: types.StageRetryModeFailedActions}); err != nil {
			t.Fatal(err)
		}
		again, _ := pendingApproval(t, c, "gated", "Approve")
		if again == token {
			t.Error("a retried approval reused its old token")
		}
	})
}

func TestStopWaitAndAbandon(t *testing.T) {
	servertest.EachBackend(t, func(t *testing.T, backend servertest.Options) {
		_, c := engineServer(t, backend)
		ctx := context.Background()
		// No worker yet: the source job waits, acknowledged by hand.
		id := create(t, c, gatePipeline("stoppable", ""))
		var job types.Job
		waitFor(t, "the source job", func() bool {
			out, err := c.PollForJobs(ctx, &codepipeline.PollForJobsInput{ActionTypeId: srcType, QueryParam: map[string]string{"Repo": "app"}})
			if err != nil {
				t.Fatal(err)
			}
			if len(out.Jobs) == 1 {
				job = out.Jobs[0]
			}
			return len(out.Jobs) == 1
		})
		if _, err := c.AcknowledgeJob(ctx, &codepipeline.AcknowledgeJobInput{JobId: job.Id, Nonce: job.Nonce}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.StopPipelineExecution(ctx, &codepipeline.StopPipelineExecutionInput{PipelineName: aws.String("stoppable"), PipelineExecutionId: aws.String(id), Reason: aws.String("wrong branch")}); err != nil {
			t.Fatal(err)
		}
		if s := execStatus(t, c, "stoppable", id); s != types.PipelineExecutionStatusStopping {
			t.Fatalf("after stop and wait: %s", s)
		}
		_, err := c.StopPipelineExecution(ctx, &codepipeline.StopPipelineExecutionInput{PipelineName: aws.String("stoppable"), PipelineExecutionId: aws.String(id)})
		wantCode(t, err, "DuplicatedStopRequestException")
		// The running action finishes; nothing new starts.
		if _, err := c.PutJobSuccessResult(ctx, &codepipeline.PutJobSuccessResultInput{JobId: job.Id}); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, c, "stoppable", id, types.PipelineExecutionStatusStopped)
		if st := stageState(t, c, "stoppable", "Approve"); st.LatestExecution != nil {
			t.Errorf("a stopped execution entered the next stage: %+v", st.LatestExecution)
		}
		list, _ := c.ListPipelineExecutions(ctx, &codepipeline.ListPipelineExecutionsInput{PipelineName: aws.String("stoppable")})
		if st := list.PipelineExecutionSummaries[0].StopTrigger; st == nil || aws.ToString(st.Reason) != "wrong branch" {
			t.Errorf("stopTrigger = %+v", st)
		}
		_, err = c.StopPipelineExecution(ctx, &codepipeline.StopPipelineExecutionInput{PipelineName: aws.String("stoppable"), PipelineExecutionId: aws.String(id), Abandon: true})
		wantCode(t, err, "PipelineExecutionNotStoppableException")

		// Stop and abandon: the running job can no longer report.
		second := start(t, c, "stoppable")
		waitFor(t, "the second source job", func() bool {
			out, err := c.PollForJobs(ctx, &codepipeline.PollForJobsInput{ActionTypeId: srcType})
			if err != nil {
				t.Fatal(err)
			}
			if len(out.Jobs) == 1 {
				job = out.Jobs[0]
			}
			return len(out.Jobs) == 1
		})
		if _, err := c.AcknowledgeJob(ctx, &codepipeline.AcknowledgeJobInput{JobId: job.Id, Nonce: job.Nonce}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.StopPipelineExecution(ctx, &codepipeline.StopPipelineExecutionInput{PipelineName: aws.String("stoppable"), PipelineExecutionId: aws.String(second), Abandon: true}); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, c, "stoppable", second, types.PipelineExecutionStatusStopped)
		src := stageState(t, c, "stoppable", "Source").ActionStates[0].LatestExecution
		if src.Status != types.ActionExecutionStatusAbandoned {
			t.Errorf("abandoned action status = %s", src.Status)
		}
		_, err = c.PutJobSuccessResult(ctx, &codepipeline.PutJobSuccessResultInput{JobId: job.Id})
		wantCode(t, err, "InvalidJobStateException")
		// A stopped stage can be retried.
		startWorker(t, c, nil)
		if _, err := c.RetryStageExecution(ctx, &codepipeline.RetryStageExecutionInput{PipelineName: aws.String("stoppable"), StageName: aws.String("Source"), PipelineExecutionId: aws.String(second), RetryMode: types.StageRetryModeFailedActions}); err != nil {
			t.Fatal(err)
		}
		pendingApproval(t, c, "stoppable", "Approve")
	})
}

func TestExecutionModes(t *testing.T) {
	servertest.EachBackend(t, func(t *testing.T, backend servertest.Options) {
		_, c := engineServer(t, backend)
		startWorker(t, c, nil)

		t.Run("SUPERSEDED", func(t *testing.T) {
			first := create(t, c, gatePipeline("sup", ""))
			token, _ := pendingApproval(t, c, "sup", "Approve")
			second := start(t, c, "sup")
			waitFor(t, "the second execution to wait at Approve", func() bool {
				in := stageState(t, c, "sup", "Approve").InboundExecution
				return in != nil && aws.ToString(in.PipelineExecutionId) == second
			})
			third := start(t, c, "sup")
			waitStatus(t, c, "sup", second, types.PipelineExecutionStatusSuperseded)
			if _, err := approve(t, c, "sup", token, types.ApprovalStatusApproved); err != nil {
				t.Fatal(err)
			}
			waitStatus(t, c, "sup", first, types.PipelineExecutionStatusSucceeded)
			token3, on := pendingApproval(t, c, "sup", "Approve")
			if on != third {
				t.Fatalf("after the first, %s entered Approve, want %s", on, third)
			}
			if _, err := approve(t, c, "sup", token3, types.ApprovalStatusApproved); err != nil {
				t.Fatal(err)
			}
			waitStatus(t, c, "sup", third, types.PipelineExecutionStatusSucceeded)
		})

		t.Run("QUEUED", func(t *testing.T) {
			first := create(t, c, gatePipeline("queued", types.ExecutionModeQueued))
			pendingApproval(t, c, "queued", "Approve")
			second, third := start(t, c, "queued"), start(t, c, "queued")
			waitFor(t, "two executions queued at Approve", func() bool {
				return len(stageState(t, c, "queued", "Approve").InboundExecutions) == 2
			})
			inbound := stageState(t, c, "queued", "Approve").InboundExecutions
			if aws.ToString(inbound[0].PipelineExecutionId) != second || aws.ToString(inbound[1].PipelineExecutionId) != third {
				t.Fatalf("queue order = %+v", inbound)
			}
			for _, want := range []string{first, second, third} {
				token, on := pendingApproval(t, c, "queued", "Approve")
				if on != want {
					t.Fatalf("%s at the approval, want %s", on, want)
				}
				if _, err := approve(t, c, "queued", token, types.ApprovalStatusApproved); err != nil {
					t.Fatal(err)
				}
				waitStatus(t, c, "queued", want, types.PipelineExecutionStatusSucceeded)
			}
		})

		t.Run("PARALLEL", func(t *testing.T) {
			first := create(t, c, gatePipeline("parallel", types.ExecutionModeParallel))
			second := start(t, c, "parallel")
			// Both reach the approval at once: two pending tokens.
			ctx := context.Background()
			started := map[string]time.Time{} // execution -> when its Gate started
			waitFor(t, "both executions at the approval", func() bool {
				for _, id := range []string{first, second} {
					acts, err := c.ListActionExecutions(ctx, &codepipeline.ListActionExecutionsInput{PipelineName: aws.String("parallel"), Filter: &types.ActionExecutionFilter{PipelineExecutionId: aws.String(id)}})
					if err != nil {
						t.Fatal(err)
					}
					for _, d := range acts.ActionExecutionDetails {
						if aws.ToString(d.ActionName) == "Gate" && d.Status == types.ActionExecutionStatusInProgress {
							started[id] = aws.ToTime(d.StartTime)
						}
					}
				}
				return len(started) == 2
			})
			// The state shows the newest pending approval (the Gate that
			// started last: the worker may finish either execution's build
			// first); once decided, the other one.
			order := []string{second, first}
			if started[second].Before(started[first]) {
				order = []string{first, second}
			}
			for i, want := range order {
				token, on := pendingApproval(t, c, "parallel", "Approve")
				if i == 0 && on != want && started[first].Equal(started[second]) {
					want, order[1] = on, want // started in the same millisecond: either is the newest
				}
				if on != want {
					t.Fatalf("pending approval of %s shown, want %s (Gate started: %v)", on, want, started)
				}
				if _, err := approve(t, c, "parallel", token, types.ApprovalStatusApproved); err != nil {
					t.Fatal(err)
				}
				waitStatus(t, c, "parallel", on, types.PipelineExecutionStatusSucceeded)
			}
			waitStatus(t, c, "parallel", first, types.PipelineExecutionStatusSucceeded)
			waitStatus(t, c, "parallel", second, types.PipelineExecutionStatusSucceeded)
		})
	})
}

func TestTransitionsVariablesAndTokens(t *testing.T) {
	servertest.EachBackend(t, func(t *testing.T, backend servertest.Options) {
		_, c := engineServer(t, backend)
		ctx := context.Background()
		startWorker(t, c, nil)
		p := gatePipeline("vars", types.ExecutionModeQueued)
		p.Variables = []types.PipelineVariableDeclaration{{Name: aws.String("env"), DefaultValue: aws.String("staging")}, {Name: aws.String("region")}}
		p.Stages[2].Actions[0].Configuration["Command"] = "deploy #{variables.env} #{variables.region}"
		if _, err := c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: p}); err != nil {
			t.Fatal(err)
		}
		// The start on create has no value for 'region' and fails to start.
		list, _ := c.ListPipelineExecutions(ctx, &codepipeline.ListPipelineExecutionsInput{PipelineName: aws.String("vars")})
		if len(list.PipelineExecutionSummaries) != 0 {
			t.Fatalf("an execution started without a required variable: %+v", list.PipelineExecutionSummaries)
		}
		_, err := c.StartPipelineExecution(ctx, &codepipeline.StartPipelineExecutionInput{Name: aws.String("vars")})
		wantCode(t, err, "ValidationException")
		_, err = c.StartPipelineExecution(ctx, &codepipeline.StartPipelineExecutionInput{Name: aws.String("vars"), Variables: []types.PipelineVariable{{Name: aws.String("region"), Value: aws.String("eu")}, {Name: aws.String("nope"), Value: aws.String("x")}}})
		wantCode(t, err, "ValidationException")
		_, err = c.StartPipelineExecution(ctx, &codepipeline.StartPipelineExecutionInput{Name: aws.String("missing")})
		wantCode(t, err, "PipelineNotFoundException")

		// Hold executions at the Approve stage's inbound transition.
		if _, err := c.DisableStageTransition(ctx, &codepipeline.DisableStageTransitionInput{PipelineName: aws.String("vars"), StageName: aws.String("Approve"), TransitionType: types.StageTransitionTypeInbound, Reason: aws.String("change freeze")}); err != nil {
			t.Fatal(err)
		}
		in := &codepipeline.StartPipelineExecutionInput{Name: aws.String("vars"), ClientRequestToken: aws.String("release-42"),
			Variables: []types.PipelineVariable{{Name: aws.String("region"), Value: aws.String("eu")}}}
		id := aws.ToString(must(c.StartPipelineExecution(ctx, in)).PipelineExecutionId)
		again := aws.ToString(must(c.StartPipelineExecution(ctx, in)).PipelineExecutionId)
		if again != id {
			t.Fatalf("the same clientRequestToken started %s and %s", id, again)
		}
		waitFor(t, "the execution held at the disabled transition", func() bool {
			s := stageState(t, c, "vars", "Approve")
			return s.InboundExecution != nil && aws.ToString(s.InboundExecution.PipelineExecutionId) == id
		})
		s := stageState(t, c, "vars", "Approve")
		if s.InboundTransitionState.Enabled || aws.ToString(s.InboundTransitionState.DisabledReason) != "change freeze" || aws.ToString(s.InboundTransitionState.LastChangedBy) == "" {
			t.Errorf("transition state = %+v", s.InboundTransitionState)
		}
		if _, err := c.EnableStageTransition(ctx, &codepipeline.EnableStageTransitionInput{PipelineName: aws.String("vars"), StageName: aws.String("Approve"), TransitionType: types.StageTransitionTypeInbound}); err != nil {
			t.Fatal(err)
		}
		token, on := pendingApproval(t, c, "vars", "Approve")
		if on != id {
			t.Fatalf("%s entered, want %s", on, id)
		}
		if _, err := approve(t, c, "vars", token, types.ApprovalStatusApproved); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, c, "vars", id, types.PipelineExecutionStatusSucceeded)
		ex := must(c.GetPipelineExecution(ctx, &codepipeline.GetPipelineExecutionInput{PipelineName: aws.String("vars"), PipelineExecutionId: aws.String(id)}))
		vars := map[string]string{}
		for _, v := range ex.PipelineExecution.Variables {
			vars[aws.ToString(v.Name)] = aws.ToString(v.ResolvedValue)
		}
		if vars["env"] != "staging" || vars["region"] != "eu" {
			t.Errorf("variables = %v", vars)
		}
		acts := must(c.ListActionExecutions(ctx, &codepipeline.ListActionExecutionsInput{PipelineName: aws.String("vars"), Filter: &types.ActionExecutionFilter{PipelineExecutionId: aws.String(id)}}))
		for _, d := range acts.ActionExecutionDetails {
			if aws.ToString(d.ActionName) == "Deploy" && d.Input.ResolvedConfiguration["Command"] != "deploy staging eu" {
				t.Errorf("resolved = %v", d.Input.ResolvedConfiguration)
			}
		}
		_, err = c.DisableStageTransition(ctx, &codepipeline.DisableStageTransitionInput{PipelineName: aws.String("vars"), StageName: aws.String("Nope"), TransitionType: types.StageTransitionTypeInbound, Reason: aws.String("x")})
		wantCode(t, err, "StageNotFoundException")
	})
}

func TestUnresolvableVariableFailsTheAction(t *testing.T) {
	_, c := engineServer(t, servertest.Backends[0].Options(t))
	startWorker(t, c, nil)
	p := gatePipeline("badref", "")
	p.Stages[2].Actions[0].Configuration["Command"] = "deploy #{Nowhere.Thing}"
	p.Stages = append(p.Stages[:1], p.Stages[2]) // no approval
	id := create(t, c, p)
	waitStatus(t, c, "badref", id, types.PipelineExecutionStatusFailed)
	a := stageState(t, c, "badref", "Ship").ActionStates[0].LatestExecution
	if a.ErrorDetails == nil || !strings.Contains(aws.ToString(a.ErrorDetails.Message), "#{Nowhere.Thing}") {
		t.Errorf("error = %+v", a.ErrorDetails)
	}
}

func TestRollbackAndUpdateDuringExecution(t *testing.T) {
	servertest.EachBackend(t, func(t *testing.T, backend servertest.Options) {
		_, c := engineServer(t, backend)
		ctx := context.Background()
		w := startWorker(t, c, nil)
		p := gatePipeline("rb", types.ExecutionModeQueued)
		p.Stages = append(p.Stages[:1], p.Stages[2]) // Source → Ship
		first := create(t, c, p)
		waitStatus(t, c, "rb", first, types.PipelineExecutionStatusSucceeded)
		second := start(t, c, "rb")
		waitStatus(t, c, "rb", second, types.PipelineExecutionStatusSucceeded)

		_, err := c.RollbackStage(ctx, &codepipeline.RollbackStageInput{PipelineName: aws.String("rb"), StageName: aws.String("Ship"), TargetPipelineExecutionId: aws.String(second)})
		wantCode(t, err, "UnableToRollbackStageException") // already the latest in the stage
		rb := aws.ToString(must(c.RollbackStage(ctx, &codepipeline.RollbackStageInput{PipelineName: aws.String("rb"), StageName: aws.String("Ship"), TargetPipelineExecutionId: aws.String(first)})).PipelineExecutionId)
		waitStatus(t, c, "rb", rb, types.PipelineExecutionStatusSucceeded)
		ex := must(c.GetPipelineExecution(ctx, &codepipeline.GetPipelineExecutionInput{PipelineName: aws.String("rb"), PipelineExecutionId: aws.String(rb)}))
		if ex.PipelineExecution.ExecutionType != types.ExecutionTypeRollback || aws.ToString(ex.PipelineExecution.RollbackMetadata.RollbackTargetPipelineExecutionId) != first {
			t.Errorf("rollback execution = %+v", ex.PipelineExecution)
		}
		// The rollback deployed the first execution's artifact, and ran only Ship.
		var firstKey, rbKey string
		sources := 0
		for _, j := range w.jobs() {
			pc := j.Data.PipelineContext
			switch {
			case aws.ToString(pc.Action.Name) == "Deploy" && aws.ToString(pc.PipelineExecutionId) == first:
				firstKey = aws.ToString(j.Data.InputArtifacts[0].Location.S3Location.ObjectKey)
			case aws.ToString(pc.Action.Name) == "Deploy" && aws.ToString(pc.PipelineExecutionId) == rb:
				rbKey = aws.ToString(j.Data.InputArtifacts[0].Location.S3Location.ObjectKey)
			case aws.ToString(pc.PipelineExecutionId) == rb:
				sources++
			}
		}
		if firstKey == "" || rbKey != firstKey || sources != 0 {
			t.Errorf("rollback deployed %q (first deployed %q), ran %d other actions", rbKey, firstKey, sources)
		}
		_, err = c.RollbackStage(ctx, &codepipeline.RollbackStageInput{PipelineName: aws.String("rb"), StageName: aws.String("Ship"), TargetPipelineExecutionId: aws.String("00000000-0000-0000-0000-000000000000")})
		wantCode(t, err, "PipelineExecutionNotFoundException")

		// Updating the pipeline cancels executions of the old version that
		// wait at a transition, and makes old targets outdated.
		if _, err := c.DisableStageTransition(ctx, &codepipeline.DisableStageTransitionInput{PipelineName: aws.String("rb"), StageName: aws.String("Ship"), TransitionType: types.StageTransitionTypeInbound, Reason: aws.String("hold")}); err != nil {
			t.Fatal(err)
		}
		held := start(t, c, "rb")
		waitFor(t, "the held execution", func() bool { return stageState(t, c, "rb", "Ship").InboundExecution != nil })
		got := must(c.GetPipeline(ctx, &codepipeline.GetPipelineInput{Name: aws.String("rb")}))
		got.Pipeline.Stages[1].Actions[0].Configuration["Command"] = "deploy v2"
		if _, err := c.UpdatePipeline(ctx, &codepipeline.UpdatePipelineInput{Pipeline: got.Pipeline}); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, c, "rb", held, types.PipelineExecutionStatusCancelled)
		if _, err := c.EnableStageTransition(ctx, &codepipeline.EnableStageTransitionInput{PipelineName: aws.String("rb"), StageName: aws.String("Ship"), TransitionType: types.StageTransitionTypeInbound}); err != nil {
			t.Fatal(err)
		}
		// An execution inside a stage when the pipeline changes finishes
		// that stage, then ends Cancelled instead of entering the next.
		w.mu.Lock()
		w.fail = func(j types.Job) string { time.Sleep(150 * time.Millisecond); return "" }
		w.mu.Unlock()
		inStage := start(t, c, "rb")
		waitFor(t, "the execution inside Source", func() bool {
			s := stageState(t, c, "rb", "Source")
			return s.LatestExecution != nil && aws.ToString(s.LatestExecution.PipelineExecutionId) == inStage
		})
		got = must(c.GetPipeline(ctx, &codepipeline.GetPipelineInput{Name: aws.String("rb")}))
		got.Pipeline.Stages[1].Actions[0].Configuration["Command"] = "deploy v3"
		if _, err := c.UpdatePipeline(ctx, &codepipeline.UpdatePipelineInput{Pipeline: got.Pipeline}); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, c, "rb", inStage, types.PipelineExecutionStatusCancelled)
		if src := stageState(t, c, "rb", "Source"); src.LatestExecution.Status != types.StageExecutionStatusSucceeded {
			t.Errorf("the cancelled execution's stage = %s, want Succeeded", src.LatestExecution.Status)
		}
		_, err = c.RollbackStage(ctx, &codepipeline.RollbackStageInput{PipelineName: aws.String("rb"), StageName: aws.String("Ship"), TargetPipelineExecutionId: aws.String(first)})
		wantCode(t, err, "PipelineExecutionOutdatedException")
	})
}

func TestJobProtocolErrors(t *testing.T) {
	servertest.EachBackend(t, func(t *testing.T, backend servertest.Options) {
		srv, c := engineServer(t, backend, func(cfg *server.Config) { cfg.JobAckTimeout = 300 * time.Millisecond })
		ctx := context.Background()
		p := gatePipeline("jobs", "")
		create(t, c, p)
		poll := func() types.Job {
			var job types.Job
			waitFor(t, "a source job", func() bool {
				out := must(c.PollForJobs(ctx, &codepipeline.PollForJobsInput{ActionTypeId: srcType}))
				if len(out.Jobs) > 0 {
					job = out.Jobs[0]
				}
				return len(out.Jobs) > 0
			})
			return job
		}
		job := poll()
		// A result before the acknowledgement is refused.
		_, err := c.PutJobSuccessResult(ctx, &codepipeline.PutJobSuccessResultInput{JobId: job.Id})
		wantCode(t, err, "InvalidJobStateException")
		_, err = c.AcknowledgeJob(ctx, &codepipeline.AcknowledgeJobInput{JobId: job.Id, Nonce: aws.String("not-the-nonce")})
		wantCode(t, err, "InvalidNonceException")
		_, err = c.AcknowledgeJob(ctx, &codepipeline.AcknowledgeJobInput{JobId: aws.String("00000000-0000-0000-0000-000000000000"), Nonce: job.Nonce})
		wantCode(t, err, "JobNotFoundException")
		// Not acknowledged in time: the job returns to the queue with a new nonce.
		again := poll()
		if aws.ToString(again.Id) != aws.ToString(job.Id) || aws.ToString(again.Nonce) == aws.ToString(job.Nonce) {
			t.Fatalf("re-dispatched job %s nonce %s (was %s %s)", aws.ToString(again.Id), aws.ToString(again.Nonce), aws.ToString(job.Id), aws.ToString(job.Nonce))
		}
		_, err = c.AcknowledgeJob(ctx, &codepipeline.AcknowledgeJobInput{JobId: job.Id, Nonce: job.Nonce})
		wantCode(t, err, "InvalidNonceException")
		ack := must(c.AcknowledgeJob(ctx, &codepipeline.AcknowledgeJobInput{JobId: again.Id, Nonce: again.Nonce}))
		if ack.Status != types.JobStatusInProgress {
			t.Errorf("ack status = %s", ack.Status)
		}
		details := must(c.GetJobDetails(ctx, &codepipeline.GetJobDetailsInput{JobId: again.Id}))
		if aws.ToString(details.JobDetails.Id) != aws.ToString(again.Id) || details.JobDetails.Data.PipelineContext == nil {
			t.Errorf("job details = %+v", details.JobDetails)
		}
		big := map[string]string{"blob": strings.Repeat("x", 130000)}
		_, err = c.PutJobSuccessResult(ctx, &codepipeline.PutJobSuccessResultInput{JobId: again.Id, OutputVariables: big})
		wantCode(t, err, "OutputVariablesSizeExceededException")

		// A continuation token completes this job and queues the next.
		if _, err := c.PutJobSuccessResult(ctx, &codepipeline.PutJobSuccessResultInput{JobId: again.Id, ContinuationToken: aws.String("step-2")}); err != nil {
			t.Fatal(err)
		}
		_, err = c.PutJobSuccessResult(ctx, &codepipeline.PutJobSuccessResultInput{JobId: again.Id})
		wantCode(t, err, "InvalidJobStateException")
		next := poll()
		if aws.ToString(next.Id) == aws.ToString(again.Id) || aws.ToString(next.Data.ContinuationToken) != "step-2" {
			t.Fatalf("continuation job = %s token %q", aws.ToString(next.Id), aws.ToString(next.Data.ContinuationToken))
		}
		logLine(t, srv.Logs(), "job continued", "job_id="+aws.ToString(next.Id), "pipeline=jobs", "continuation_token=step-2")
		must(c.AcknowledgeJob(ctx, &codepipeline.AcknowledgeJobInput{JobId: next.Id, Nonce: next.Nonce}))
		if _, err := c.PutJobSuccessResult(ctx, &codepipeline.PutJobSuccessResultInput{JobId: next.Id, CurrentRevision: &types.CurrentRevision{Revision: aws.String("r2"), ChangeIdentifier: aws.String("r2")}}); err != nil {
			t.Fatal(err)
		}
		pendingApproval(t, c, "jobs", "Approve")

		// Polling a type that does not exist, or with a wrong query property.
		_, err = c.PollForJobs(ctx, &codepipeline.PollForJobsInput{ActionTypeId: &types.ActionTypeId{Category: types.ActionCategoryBuild, Owner: types.ActionOwnerCustom, Provider: aws.String("Ghost"), Version: aws.String("1")}})
		wantCode(t, err, "ActionTypeNotFoundException")
		_, err = c.PollForJobs(ctx, &codepipeline.PollForJobsInput{ActionTypeId: srcType, QueryParam: map[string]string{"Nope": "x"}})
		wantCode(t, err, "ValidationException")
		// A query value that matches no job finds none.
		start(t, c, "jobs")
		time.Sleep(50 * time.Millisecond)
		if out := must(c.PollForJobs(ctx, &codepipeline.PollForJobsInput{ActionTypeId: srcType, QueryParam: map[string]string{"Repo": "other"}})); len(out.Jobs) != 0 {
			t.Errorf("queryParam Repo=other matched %d jobs", len(out.Jobs))
		}
	})
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// An acknowledged job that reports nothing within its timeout fails its
// action; a late result is refused.
func TestJobTimeout(t *testing.T) {
	servertest.EachBackend(t, func(t *testing.T, backend servertest.Options) {
		_, c := engineServer(t, backend, func(cfg *server.Config) { cfg.JobTimeout = 300 * time.Millisecond })
		ctx := context.Background()
		id := create(t, c, gatePipeline("slow", ""))
		var job types.Job
		waitFor(t, "the source job", func() bool {
			out := must(c.PollForJobs(ctx, &codepipeline.PollForJobsInput{ActionTypeId: srcType}))
			if len(out.Jobs) > 0 {
				job = out.Jobs[0]
			}
			return len(out.Jobs) > 0
		})
		must(c.AcknowledgeJob(ctx, &codepipeline.AcknowledgeJobInput{JobId: job.Id, Nonce: job.Nonce}))
		waitStatus(t, c, "slow", id, types.PipelineExecutionStatusFailed)
		a := stageState(t, c, "slow", "Source").ActionStates[0].LatestExecution
		if a.ErrorDetails == nil || aws.ToString(a.ErrorDetails.Code) != "TimedOut" {
			t.Errorf("timed-out job's action = %+v", a)
		}
		_, err := c.PutJobSuccessResult(ctx, &codepipeline.PutJobSuccessResultInput{JobId: job.Id})
		wantCode(t, err, "InvalidJobStateException")
	})
}
