package server_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline/types"

	"github.com/pipelined/pipelined/internal/server"
	"github.com/pipelined/pipelined/internal/server/servertest"
)

// Custom action types the engine tests run through a Go job worker.
var (
	srcType   = &types.ActionTypeId{Category: types.ActionCategorySource, Owner: types.ActionOwnerCustom, Provider: aws.String("TestSource"), Version: aws.String("1")}
	buildType = &types.ActionTypeId{Category: types.ActionCategoryBuild, Owner: types.ActionOwnerCustom, Provider: aws.String("TestBuild"), Version: aws.String("1")}
	approval  = &types.ActionTypeId{Category: types.ActionCategoryApproval, Owner: types.ActionOwnerAws, Provider: aws.String("Manual"), Version: aws.String("1")}
)

func registerTestTypes(t testing.TB, c *codepipeline.Client) {
	t.Helper()
	ctx := context.Background()
	for _, in := range []*codepipeline.CreateCustomActionTypeInput{
		{Category: types.ActionCategorySource, Provider: aws.String("TestSource"), Version: aws.String("1"),
			ConfigurationProperties: []types.ActionConfigurationProperty{{Name: aws.String("Repo"), Required: true, Key: true, Queryable: true}},
			InputArtifactDetails:    &types.ArtifactDetails{MinimumCount: 0, MaximumCount: 0}, OutputArtifactDetails: &types.ArtifactDetails{MinimumCount: 1, MaximumCount: 1}},
		{Category: types.ActionCategoryBuild, Provider: aws.String("TestBuild"), Version: aws.String("1"),
			ConfigurationProperties: []types.ActionConfigurationProperty{
				{Name: aws.String("Command"), Required: true, Key: true},
				{Name: aws.String("Token"), Required: false, Secret: true},
			},
			InputArtifactDetails: &types.ArtifactDetails{MinimumCount: 0, MaximumCount: 5}, OutputArtifactDetails: &types.ArtifactDetails{MinimumCount: 0, MaximumCount: 5}},
	} {
		if _, err := c.CreateCustomActionType(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
}

// runPipeline is Source → Build (two actions at runOrder 1, one at 2) →
// Approve → Ship.
func runPipeline(name string, mode types.ExecutionMode) *types.PipelineDeclaration {
	build := func(n, cmd string, ro int32, in, out string) types.ActionDeclaration {
		a := types.ActionDeclaration{Name: aws.String(n), ActionTypeId: buildType, RunOrder: aws.Int32(ro),
			Configuration: map[string]string{"Command": cmd}, InputArtifacts: []types.InputArtifact{{Name: aws.String(in)}}}
		if out != "" {
			a.OutputArtifacts = []types.OutputArtifact{{Name: aws.String(out)}}
		}
		return a
	}
	unit := build("Unit", "test #{SourceVars.Commit}", 1, "Code", "")
	unit.Configuration["Token"] = "s3cr3t-build-token"
	p := &types.PipelineDeclaration{
		Name: aws.String(name), RoleArn: aws.String("arn:aws:iam::123456789012:role/r"), ExecutionMode: mode,
		ArtifactStore: &types.ArtifactStore{Type: types.ArtifactStoreTypeS3, Location: aws.String("artifacts")},
		Stages: []types.StageDeclaration{
			{Name: aws.String("Source"), Actions: []types.ActionDeclaration{{Name: aws.String("Checkout"), ActionTypeId: srcType, Namespace: aws.String("SourceVars"),
				Configuration: map[string]string{"Repo": "app"}, OutputArtifacts: []types.OutputArtifact{{Name: aws.String("Code")}}}}},
			{Name: aws.String("Build"), Actions: []types.ActionDeclaration{
				build("Compile", "make #{codepipeline.PipelineExecutionId}", 1, "Code", "Bin"), unit, build("Package", "tar", 2, "Bin", "Pkg"),
			}},
			{Name: aws.String("Approve"), Actions: []types.ActionDeclaration{{Name: aws.String("Gate"), ActionTypeId: approval}}},
			{Name: aws.String("Ship"), Actions: []types.ActionDeclaration{build("Deploy", "deploy", 1, "Pkg", "")}},
		},
	}
	if mode != "" && mode != types.ExecutionModeSuperseded {
		p.PipelineType = types.PipelineTypeV2
	}
	return p
}

// worker polls both custom types and answers every job with fn's verdict.
type worker struct {
	c    *codepipeline.Client
	mu   sync.Mutex
	seen []types.Job // every job acknowledged, in order
	// fail, when it returns a message, fails the job with it.
	fail func(j types.Job) string
}

func (w *worker) run(ctx context.Context, t *testing.T) {
	for ctx.Err() == nil {
		worked := false
		for _, typ := range []*types.ActionTypeId{srcType, buildType} {
			out, err := w.c.PollForJobs(ctx, &codepipeline.PollForJobsInput{ActionTypeId: typ, MaxBatchSize: aws.Int32(5)})
			if err != nil {
				if ctx.Err() == nil {
					t.Errorf("poll: %v", err)
				}
				return
			}
			for _, j := range out.Jobs {
				worked = true
				w.handle(ctx, t, j)
			}
		}
		if !worked {
			select {
			case <-ctx.Done():
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
}

func (w *worker) handle(ctx context.Context, t *testing.T, j types.Job) {
	if _, err := w.c.AcknowledgeJob(ctx, &codepipeline.AcknowledgeJobInput{JobId: j.Id, Nonce: j.Nonce}); err != nil {
		if ctx.Err() == nil {
			t.Errorf("ack %s: %v", aws.ToString(j.Id), err)
		}
		return
	}
	w.mu.Lock()
	w.seen = append(w.seen, j)
	fail := w.fail
	w.mu.Unlock()
	if fail != nil {
		if msg := fail(j); msg != "" {
			_, err := w.c.PutJobFailureResult(ctx, &codepipeline.PutJobFailureResultInput{JobId: j.Id,
				FailureDetails: &types.FailureDetails{Type: types.FailureTypeJobFailed, Message: aws.String(msg)}})
			if err != nil && ctx.Err() == nil {
				t.Errorf("failure result: %v", err)
			}
			return
		}
	}
	in := &codepipeline.PutJobSuccessResultInput{JobId: j.Id, ExecutionDetails: &types.ExecutionDetails{Summary: aws.String("done by the test worker"), ExternalExecutionId: aws.String("ext-" + aws.ToString(j.Id)[:8])}}
	if j.Data.ActionTypeId.Category == types.ActionCategorySource {
		in.CurrentRevision = &types.CurrentRevision{Revision: aws.String("rev-1"), ChangeIdentifier: aws.String("rev-1")}
		in.OutputVariables = map[string]string{"Commit": "abc123"}
	}
	if _, err := w.c.PutJobSuccessResult(ctx, in); err != nil && ctx.Err() == nil {
		t.Errorf("success result: %v", err)
	}
}

func (w *worker) jobs() []types.Job {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]types.Job(nil), w.seen...)
}

func startWorker(t *testing.T, c *codepipeline.Client, fail func(types.Job) string) *worker {
	ctx, cancel := context.WithCancel(context.Background())
	w := &worker{c: c, fail: fail}
	done := make(chan struct{})
	go func() { defer close(done); w.run(ctx, t) }()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

// waitFor polls until cond holds (or fails the test after 15s).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func execStatus(t *testing.T, c *codepipeline.Client, pipeline, id string) types.PipelineExecutionStatus {
	t.Helper()
	out, err := c.GetPipelineExecution(context.Background(), &codepipeline.GetPipelineExecutionInput{PipelineName: aws.String(pipeline), PipelineExecutionId: aws.String(id)})
	if err != nil {
		t.Fatal(err)
	}
	return out.PipelineExecution.Status
}

func waitStatus(t *testing.T, c *codepipeline.Client, pipeline, id string, want types.PipelineExecutionStatus) {
	t.Helper()
	var last types.PipelineExecutionStatus
	waitFor(t, fmt.Sprintf("execution %s to be %s", id, want), func() bool {
		last = execStatus(t, c, pipeline, id)
		return last == want
	})
}

// pendingApproval returns the token of the pending approval in a stage.
func pendingApproval(t *testing.T, c *codepipeline.Client, pipeline, stage string) (token, execID string) {
	t.Helper()
	waitFor(t, "a pending approval in "+stage, func() bool {
		st, err := c.GetPipelineState(context.Background(), &codepipeline.GetPipelineStateInput{Name: aws.String(pipeline)})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range st.StageStates {
			if aws.ToString(s.StageName) != stage {
				continue
			}
			for _, a := range s.ActionStates {
				if a.LatestExecution != nil && a.LatestExecution.Status == types.ActionExecutionStatusInProgress && a.LatestExecution.Token != nil {
					token = aws.ToString(a.LatestExecution.Token)
					execID = owningExecution(t, c, pipeline, aws.ToString(a.LatestExecution.ActionExecutionId))
					return true
				}
			}
		}
		return false
	})
	return token, execID
}

// owningExecution finds the pipeline execution of an action execution.
func owningExecution(t *testing.T, c *codepipeline.Client, pipeline, actionExec string) string {
	t.Helper()
	out, err := c.ListActionExecutions(context.Background(), &codepipeline.ListActionExecutionsInput{PipelineName: aws.String(pipeline)})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range out.ActionExecutionDetails {
		if aws.ToString(d.ActionExecutionId) == actionExec {
			return aws.ToString(d.PipelineExecutionId)
		}
	}
	t.Fatalf("no action execution %s", actionExec)
	return ""
}

func approve(t *testing.T, c *codepipeline.Client, pipeline, token string, status types.ApprovalStatus) (*codepipeline.PutApprovalResultOutput, error) {
	t.Helper()
	return c.PutApprovalResult(context.Background(), &codepipeline.PutApprovalResultInput{
		PipelineName: aws.String(pipeline), StageName: aws.String("Approve"), ActionName: aws.String("Gate"), Token: aws.String(token),
		Result: &types.ApprovalResult{Status: status, Summary: aws.String("checked by a test")},
	})
}

// engineServer starts a server with a fast sweeper and the test types.
func engineServer(t *testing.T, backend servertest.Options, more ...servertest.Options) (*servertest.Instance, *codepipeline.Client) {
	opts := append([]servertest.Options{backend, func(c *server.Config) { c.SweepInterval = 20 * time.Millisecond }}, more...)
	srv := servertest.Start(t, opts...)
	c := srv.Client()
	registerTestTypes(t, c)
	return srv, c
}

func TestExecutionRunsToSuccess(t *testing.T) {
	servertest.EachBackend(t, func(t *testing.T, backend servertest.Options) {
		srv, c := engineServer(t, backend)
		ctx := context.Background()
		w := startWorker(t, c, nil)
		if _, err := c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: runPipeline("app", "")}); err != nil {
			t.Fatal(err)
		}
		// Creating a pipeline starts it, as in CodePipeline.
		list, err := c.ListPipelineExecutions(ctx, &codepipeline.ListPipelineExecutionsInput{PipelineName: aws.String("app")})
		if err != nil || len(list.PipelineExecutionSummaries) != 1 {
			t.Fatalf("executions after create: %+v %v", list, err)
		}
		first := list.PipelineExecutionSummaries[0]
		if first.Trigger.TriggerType != types.TriggerTypeCreatePipeline {
			t.Errorf("trigger = %s, want CreatePipeline", first.Trigger.TriggerType)
		}
		id := aws.ToString(first.PipelineExecutionId)

		token, onApproval := pendingApproval(t, c, "app", "Approve")
		if onApproval != id {
			t.Fatalf("approval pending for %s, want %s", onApproval, id)
		}
		if status := execStatus(t, c, "app", id); status != types.PipelineExecutionStatusInProgress {
			t.Fatalf("status at the approval = %s", status)
		}
		_, err = approve(t, c, "app", "00000000-0000-0000-0000-000000000000", types.ApprovalStatusApproved)
		wantCode(t, err, "InvalidApprovalTokenException")
		res, err := approve(t, c, "app", token, types.ApprovalStatusApproved)
		if err != nil {
			t.Fatal(err)
		}
		if res.ApprovedAt == nil || time.Since(*res.ApprovedAt) > time.Minute {
			t.Errorf("approvedAt = %v", res.ApprovedAt)
		}
		_, err = approve(t, c, "app", token, types.ApprovalStatusApproved)
		wantCode(t, err, "ApprovalAlreadyCompletedException")
		waitStatus(t, c, "app", id, types.PipelineExecutionStatusSucceeded)

		// Every custom action ran once, in stage and runOrder order.
		var order []string
		for _, j := range w.jobs() {
			order = append(order, aws.ToString(j.Data.PipelineContext.Action.Name))
		}
		if got := strings.Join(order, ","); got != "Checkout,Compile,Unit,Package,Deploy" && got != "Checkout,Unit,Compile,Package,Deploy" {
			t.Errorf("jobs ran in order %s", got)
		}
		// Job data: variables resolved, the secret in clear for the worker
		// only, artifacts flowing from outputs to inputs.
		byName := map[string]types.Job{}
		for _, j := range w.jobs() {
			byName[aws.ToString(j.Data.PipelineContext.Action.Name)] = j
		}
		unit := byName["Unit"].Data
		if cfg := unit.ActionConfiguration.Configuration; cfg["Command"] != "test abc123" || cfg["Token"] != "s3cr3t-build-token" {
			t.Errorf("Unit's configuration = %v", cfg)
		}
		if cmd := byName["Compile"].Data.ActionConfiguration.Configuration["Command"]; cmd != "make "+id {
			t.Errorf("Compile's command = %q", cmd)
		}
		if aws.ToString(unit.PipelineContext.PipelineExecutionId) != id || aws.ToString(unit.PipelineContext.PipelineArn) != "arn:aws:codepipeline:us-east-1:123456789012:app" {
			t.Errorf("pipeline context = %+v", unit.PipelineContext)
		}
		codeOut := byName["Checkout"].Data.OutputArtifacts[0].Location.S3Location
		codeIn := byName["Compile"].Data.InputArtifacts[0]
		if aws.ToString(codeIn.Location.S3Location.ObjectKey) != aws.ToString(codeOut.ObjectKey) || aws.ToString(codeOut.BucketName) != "artifacts" || aws.ToString(codeIn.Revision) != "rev-1" {
			t.Errorf("artifact did not flow: out %+v, in %+v", codeOut, codeIn)
		}

		// The read APIs.
		state, err := c.GetPipelineState(ctx, &codepipeline.GetPipelineStateInput{Name: aws.String("app")})
		if err != nil {
			t.Fatal(err)
		}
		gate := state.StageStates[2].ActionStates[0].LatestExecution
		if gate.Status != types.ActionExecutionStatusSucceeded || aws.ToString(gate.LastUpdatedBy) != "arn:aws:iam::123456789012:root" || aws.ToString(gate.Summary) != "checked by a test" || gate.Token != nil {
			t.Errorf("approval state = %+v", gate)
		}
		for _, s := range state.StageStates {
			if s.LatestExecution == nil || s.LatestExecution.Status != types.StageExecutionStatusSucceeded || aws.ToString(s.LatestExecution.PipelineExecutionId) != id || !s.InboundTransitionState.Enabled {
				t.Errorf("stage %s state = %+v", aws.ToString(s.StageName), s)
			}
		}
		ex, err := c.GetPipelineExecution(ctx, &codepipeline.GetPipelineExecutionInput{PipelineName: aws.String("app"), PipelineExecutionId: aws.String(id)})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToInt32(ex.PipelineExecution.PipelineVersion) != 1 || ex.PipelineExecution.ExecutionMode != types.ExecutionModeSuperseded || len(ex.PipelineExecution.ArtifactRevisions) != 3 {
			t.Errorf("execution = %+v", ex.PipelineExecution)
		}
		acts, err := c.ListActionExecutions(ctx, &codepipeline.ListActionExecutionsInput{PipelineName: aws.String("app"), Filter: &types.ActionExecutionFilter{PipelineExecutionId: aws.String(id)}})
		if err != nil {
			t.Fatal(err)
		}
		if len(acts.ActionExecutionDetails) != 6 {
			t.Fatalf("%d action executions, want 6", len(acts.ActionExecutionDetails))
		}
		for _, d := range acts.ActionExecutionDetails {
			if aws.ToString(d.ActionName) == "Unit" {
				if d.Input.Configuration["Token"] != "****" || d.Input.ResolvedConfiguration["Token"] != "****" || d.Input.ResolvedConfiguration["Command"] != "test abc123" {
					t.Errorf("Unit input = %+v", d.Input)
				}
			}
		}
		if strings.Contains(srv.Logs(), "s3cr3t-build-token") {
			t.Error("the secret reached the logs")
		}
	})
}
