package executions_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline/types"
	"github.com/aws/smithy-go"
	"github.com/google/uuid"

	"github.com/pipelined/pipelined/internal/admin"
	"github.com/pipelined/pipelined/internal/server"
	"github.com/pipelined/pipelined/internal/server/servertest"
	"github.com/pipelined/pipelined/internal/wire"
)

// The third-party action types of these tests.
var (
	tpSource = &types.ActionTypeId{Category: types.ActionCategorySource, Owner: types.ActionOwnerThirdParty, Provider: aws.String("PartnerSource"), Version: aws.String("1")}
	tpDeploy = &types.ActionTypeId{Category: types.ActionCategoryDeploy, Owner: types.ActionOwnerThirdParty, Provider: aws.String("PartnerDeploy"), Version: aws.String("1")}
)

func adminClient(srv *servertest.Instance) *admin.Client {
	return &admin.Client{
		Endpoint: srv.URL, Region: servertest.Region, HTTP: srv.HTTP,
		Credentials: credentials.NewStaticCredentialsProvider(servertest.AccessKeyID, servertest.SecretAccessKey, ""),
	}
}

func registerTypes(t *testing.T, adm *admin.Client) {
	t.Helper()
	ctx := context.Background()
	for _, in := range []*admin.RegisterActionTypeInput{
		{CreateCustomActionTypeInput: wire.CreateCustomActionTypeInput{
			Category: "Source", Provider: "PartnerSource", Version: "1",
			ConfigurationProperties: []wire.ActionConfigurationProperty{{Name: "Repo", Required: wire.Ptr(true), Key: wire.Ptr(true), Secret: wire.Ptr(false)}},
			InputArtifactDetails:    &wire.ArtifactDetails{MinimumCount: wire.Ptr(0), MaximumCount: wire.Ptr(0)},
			OutputArtifactDetails:   &wire.ArtifactDetails{MinimumCount: wire.Ptr(1), MaximumCount: wire.Ptr(1)},
		}},
		{CreateCustomActionTypeInput: wire.CreateCustomActionTypeInput{
			Category: "Deploy", Provider: "PartnerDeploy", Version: "1",
			ConfigurationProperties: []wire.ActionConfigurationProperty{
				{Name: "Environment", Required: wire.Ptr(true), Key: wire.Ptr(true), Secret: wire.Ptr(false)},
				{Name: "ApiKey", Required: wire.Ptr(false), Key: wire.Ptr(false), Secret: wire.Ptr(true)},
			},
			InputArtifactDetails:  &wire.ArtifactDetails{MinimumCount: wire.Ptr(1), MaximumCount: wire.Ptr(1)},
			OutputArtifactDetails: &wire.ArtifactDetails{MinimumCount: wire.Ptr(0), MaximumCount: wire.Ptr(0)},
		}, JobTimeoutInMinutes: wire.Ptr(30)},
	} {
		if _, err := adm.RegisterActionType(ctx, in); err != nil {
			t.Fatalf("register %s: %v", in.Provider, err)
		}
	}
}

// partnerPipeline is Source (PartnerSource) → Deploy (PartnerDeploy).
func partnerPipeline(name string) *types.PipelineDeclaration {
	return &types.PipelineDeclaration{
		Name: aws.String(name), RoleArn: aws.String("arn:aws:iam::123456789012:role/r"),
		ArtifactStore: &types.ArtifactStore{Type: types.ArtifactStoreTypeS3, Location: aws.String("artifacts")},
		Stages: []types.StageDeclaration{
			{Name: aws.String("Source"), Actions: []types.ActionDeclaration{{Name: aws.String("Fetch"), ActionTypeId: tpSource,
				Configuration: map[string]string{"Repo": "app"}, OutputArtifacts: []types.OutputArtifact{{Name: aws.String("Code")}}}}},
			{Name: aws.String("Deploy"), Actions: []types.ActionDeclaration{{Name: aws.String("Ship"), ActionTypeId: tpDeploy,
				Configuration:  map[string]string{"Environment": "prod", "ApiKey": "partner-api-key-s3cr3t"},
				InputArtifacts: []types.InputArtifact{{Name: aws.String("Code")}}}}},
		},
	}
}

// setup starts a server with the partner types and creates pipeline name,
// which starts its first execution.
func setup(t *testing.T, backend servertest.Options, name string, more ...servertest.Options) (*servertest.Instance, *codepipeline.Client, *admin.Client) {
	t.Helper()
	opts := append([]servertest.Options{backend, func(c *server.Config) { c.SweepInterval = 20 * time.Millisecond }}, more...)
	srv := servertest.Start(t, opts...)
	c, adm := srv.Client(), adminClient(srv)
	registerTypes(t, adm)
	if _, err := c.CreatePipeline(context.Background(), &codepipeline.CreatePipelineInput{Pipeline: partnerPipeline(name)}); err != nil {
		t.Fatal(err)
	}
	return srv, c, adm
}

func issue(t *testing.T, adm *admin.Client, pipeline, stage, action string) *admin.ThirdPartyClient {
	t.Helper()
	cl, err := adm.IssueClient(context.Background(), pipeline, stage, action)
	if err != nil {
		t.Fatalf("issue client for %s/%s/%s: %v", pipeline, stage, action, err)
	}
	if cl.ClientID == "" || len(cl.ClientToken) < 40 {
		t.Fatalf("issued client = %+v", cl)
	}
	return cl
}

// pollOne polls a type until it hands out one job (or fails after 15s).
func pollOne(t *testing.T, c *codepipeline.Client, typ *types.ActionTypeId) types.ThirdPartyJob {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, err := c.PollForThirdPartyJobs(context.Background(), &codepipeline.PollForThirdPartyJobsInput{ActionTypeId: typ, MaxBatchSize: aws.Int32(1)})
		if err != nil {
			t.Fatalf("poll %s: %v", aws.ToString(typ.Provider), err)
		}
		if len(out.Jobs) == 1 {
			return out.Jobs[0]
		}
		if len(out.Jobs) > 1 {
			t.Fatalf("poll with maxBatchSize 1 gave %d jobs", len(out.Jobs))
		}
		if time.Now().After(deadline) {
			t.Fatalf("no job of %s within 15s", aws.ToString(typ.Provider))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func details(t *testing.T, c *codepipeline.Client, jobID, token string) *types.ThirdPartyJobDetails {
	t.Helper()
	out, err := c.GetThirdPartyJobDetails(context.Background(), &codepipeline.GetThirdPartyJobDetailsInput{JobId: aws.String(jobID), ClientToken: aws.String(token)})
	if err != nil {
		t.Fatalf("GetThirdPartyJobDetails %s: %v", jobID, err)
	}
	return out.JobDetails
}

func ack(t *testing.T, c *codepipeline.Client, jobID, nonce, token string) {
	t.Helper()
	out, err := c.AcknowledgeThirdPartyJob(context.Background(), &codepipeline.AcknowledgeThirdPartyJobInput{JobId: aws.String(jobID), Nonce: aws.String(nonce), ClientToken: aws.String(token)})
	if err != nil {
		t.Fatalf("AcknowledgeThirdPartyJob %s: %v", jobID, err)
	}
	if out.Status != types.JobStatusInProgress {
		t.Fatalf("AcknowledgeThirdPartyJob status = %s, want InProgress", out.Status)
	}
}

func succeed(t *testing.T, c *codepipeline.Client, in *codepipeline.PutThirdPartyJobSuccessResultInput) {
	t.Helper()
	if _, err := c.PutThirdPartyJobSuccessResult(context.Background(), in); err != nil {
		t.Fatalf("PutThirdPartyJobSuccessResult %s: %v", aws.ToString(in.JobId), err)
	}
}

// wantCode checks that err is the API error code.
func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != code {
		t.Fatalf("%s: err = %v, want %s", what, err, code)
	}
}

// action returns the latest execution of an action in GetPipelineState.
func action(t *testing.T, c *codepipeline.Client, pipeline, stage, name string) *types.ActionExecution {
	t.Helper()
	st, err := c.GetPipelineState(context.Background(), &codepipeline.GetPipelineStateInput{Name: aws.String(pipeline)})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st.StageStates {
		if aws.ToString(s.StageName) != stage {
			continue
		}
		for _, a := range s.ActionStates {
			if aws.ToString(a.ActionName) == name {
				return a.LatestExecution
			}
		}
	}
	return nil
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func latestExecution(t *testing.T, c *codepipeline.Client, pipeline string) types.PipelineExecutionSummary {
	t.Helper()
	out, err := c.ListPipelineExecutions(context.Background(), &codepipeline.ListPipelineExecutionsInput{PipelineName: aws.String(pipeline)})
	if err != nil || len(out.PipelineExecutionSummaries) == 0 {
		t.Fatalf("ListPipelineExecutions: %+v %v", out, err)
	}
	return out.PipelineExecutionSummaries[0]
}

// TestThirdPartyWorkerRunsPipeline: a partner's worker, with the SDK's
// CodePipeline client and the client pairs the operator issued, runs a
// whole pipeline of third-party actions: poll, details with its token,
// acknowledge, success (once with a continuation token).
func TestThirdPartyWorkerRunsPipeline(t *testing.T) {
	servertest.EachBackend(t, func(t *testing.T, backend servertest.Options) {
		// Long polls that wait: the deploy job must reach a waiting poll fast.
		_, c, adm := setup(t, backend, "partner", func(cfg *server.Config) { cfg.JobPollWait = 5 * time.Second })
		ctx := context.Background()
		src := issue(t, adm, "partner", "Source", "Fetch")
		dep := issue(t, adm, "partner", "Deploy", "Ship")
		if src.ClientID == dep.ClientID || src.ClientToken == dep.ClientToken {
			t.Fatal("two actions got the same client")
		}

		// Source.
		job := pollOne(t, c, tpSource)
		if aws.ToString(job.ClientId) != src.ClientID {
			t.Fatalf("source job's clientId = %s, want %s", aws.ToString(job.ClientId), src.ClientID)
		}
		d := details(t, c, aws.ToString(job.JobId), src.ClientToken)
		if aws.ToString(d.Id) != aws.ToString(job.JobId) || aws.ToString(d.Nonce) == "" {
			t.Fatalf("details = id %s nonce %q", aws.ToString(d.Id), aws.ToString(d.Nonce))
		}
		pc := d.Data.PipelineContext
		if aws.ToString(pc.PipelineName) != "partner" || aws.ToString(pc.Stage.Name) != "Source" || aws.ToString(pc.Action.Name) != "Fetch" ||
			aws.ToString(pc.Action.ActionExecutionId) == "" {
			t.Errorf("pipeline context = %+v", pc)
		}
		if pc.PipelineArn != nil || pc.PipelineExecutionId != nil {
			t.Errorf("a third-party job shows pipelineArn %v / pipelineExecutionId %v", aws.ToString(pc.PipelineArn), aws.ToString(pc.PipelineExecutionId))
		}
		if d.Data.ActionConfiguration.Configuration["Repo"] != "app" || len(d.Data.OutputArtifacts) != 1 {
			t.Errorf("source job data = %+v", d.Data)
		}
		ack(t, c, aws.ToString(job.JobId), aws.ToString(d.Nonce), src.ClientToken)

		// A poll for the deploy type waits; the source result queues its job.
		type polled struct {
			out *codepipeline.PollForThirdPartyJobsOutput
			err error
			at  time.Time
		}
		pollDone := make(chan polled, 1)
		go func() {
			out, err := c.PollForThirdPartyJobs(ctx, &codepipeline.PollForThirdPartyJobsInput{ActionTypeId: tpDeploy, MaxBatchSize: aws.Int32(5)})
			pollDone <- polled{out, err, time.Now()}
		}()
		time.Sleep(200 * time.Millisecond) // the poll is waiting
		reported := time.Now()
		succeed(t, c, &codepipeline.PutThirdPartyJobSuccessResultInput{
			JobId: job.JobId, ClientToken: aws.String(src.ClientToken),
			CurrentRevision:  &types.CurrentRevision{Revision: aws.String("rev-42"), ChangeIdentifier: aws.String("rev-42")},
			ExecutionDetails: &types.ExecutionDetails{Summary: aws.String("fetched by the partner"), ExternalExecutionId: aws.String("partner-src-1")},
		})
		p := <-pollDone
		if p.err != nil {
			t.Fatalf("long poll: %v", p.err)
		}
		if len(p.out.Jobs) != 1 {
			t.Fatalf("long poll gave %d jobs, want the deploy job", len(p.out.Jobs))
		}
		if waited := p.at.Sub(reported); waited > 3*time.Second {
			t.Errorf("the waiting poll got the deploy job %v after it was queued", waited)
		}

		// Deploy, in two steps with a continuation token.
		job = p.out.Jobs[0]
		if aws.ToString(job.ClientId) != dep.ClientID {
			t.Fatalf("deploy job's clientId = %s, want %s", aws.ToString(job.ClientId), dep.ClientID)
		}
		d = details(t, c, aws.ToString(job.JobId), dep.ClientToken)
		cfg := d.Data.ActionConfiguration.Configuration
		if cfg["ApiKey"] != "partner-api-key-s3cr3t" || cfg["Environment"] != "prod" {
			t.Errorf("deploy configuration = %v, want the secret in clear", cfg)
		}
		if in := d.Data.InputArtifacts; len(in) != 1 || aws.ToString(in[0].Name) != "Code" || aws.ToString(in[0].Revision) != "rev-42" {
			t.Errorf("deploy input artifacts = %+v", in)
		}
		ack(t, c, aws.ToString(job.JobId), aws.ToString(d.Nonce), dep.ClientToken)
		succeed(t, c, &codepipeline.PutThirdPartyJobSuccessResultInput{
			JobId: job.JobId, ClientToken: aws.String(dep.ClientToken), ContinuationToken: aws.String("step-2"),
			ExecutionDetails: &types.ExecutionDetails{Summary: aws.String("half way"), PercentComplete: aws.Int32(50)},
		})
		next := pollOne(t, c, tpDeploy)
		if aws.ToString(next.ClientId) != dep.ClientID || aws.ToString(next.JobId) == aws.ToString(job.JobId) {
			t.Fatalf("continued job = %+v", next)
		}
		d = details(t, c, aws.ToString(next.JobId), dep.ClientToken)
		if aws.ToString(d.Data.ContinuationToken) != "step-2" {
			t.Errorf("continued job's continuationToken = %q, want step-2", aws.ToString(d.Data.ContinuationToken))
		}
		ack(t, c, aws.ToString(next.JobId), aws.ToString(d.Nonce), dep.ClientToken)
		succeed(t, c, &codepipeline.PutThirdPartyJobSuccessResultInput{
			JobId: next.JobId, ClientToken: aws.String(dep.ClientToken),
			ExecutionDetails: &types.ExecutionDetails{Summary: aws.String("deployed by the partner"), ExternalExecutionId: aws.String("partner-dep-1")},
		})

		waitFor(t, "the execution to succeed", func() bool {
			return latestExecution(t, c, "partner").Status == types.PipelineExecutionStatusSucceeded
		})
		ship := action(t, c, "partner", "Deploy", "Ship")
		if ship == nil || aws.ToString(ship.Summary) != "deployed by the partner" || aws.ToString(ship.ExternalExecutionId) != "partner-dep-1" {
			t.Errorf("Ship's latest execution = %+v", ship)
		}
	})
}

// TestThirdPartyJobErrors: every way a partner can get a call wrong is
// answered with the error the model lists, and changes nothing.
func TestThirdPartyJobErrors(t *testing.T) {
	servertest.EachBackend(t, func(t *testing.T, backend servertest.Options) {
		const ackTimeout = time.Second
		srv, c, adm := setup(t, backend, "neg", func(cfg *server.Config) { cfg.JobAckTimeout = ackTimeout })
		ctx := context.Background()
		src := issue(t, adm, "neg", "Source", "Fetch")
		dep := issue(t, adm, "neg", "Deploy", "Ship")

		job := pollOne(t, c, tpSource)
		polledAt := time.Now()
		id := aws.ToString(job.JobId)
		first := details(t, c, id, src.ClientToken)

		getDetails := func(jobID, token string) error {
			_, err := c.GetThirdPartyJobDetails(ctx, &codepipeline.GetThirdPartyJobDetailsInput{JobId: aws.String(jobID), ClientToken: aws.String(token)})
			return err
		}
		wantCode(t, "details with a wrong token", getDetails(id, "not-a-token"), "InvalidClientTokenException")
		wantCode(t, "details with another client's token", getDetails(id, dep.ClientToken), "InvalidJobException")
		wantCode(t, "details of an unknown job", getDetails(uuid.NewString(), src.ClientToken), "JobNotFoundException")
		_, err := c.AcknowledgeThirdPartyJob(ctx, &codepipeline.AcknowledgeThirdPartyJobInput{JobId: job.JobId, Nonce: first.Nonce, ClientToken: aws.String(dep.ClientToken)})
		wantCode(t, "acknowledge with another client's token", err, "InvalidClientTokenException")
		_, err = c.AcknowledgeThirdPartyJob(ctx, &codepipeline.AcknowledgeThirdPartyJobInput{JobId: job.JobId, Nonce: first.Nonce, ClientToken: aws.String("not-a-token")})
		wantCode(t, "acknowledge with a wrong token", err, "InvalidClientTokenException")
		_, err = c.PutThirdPartyJobSuccessResult(ctx, &codepipeline.PutThirdPartyJobSuccessResultInput{JobId: job.JobId, ClientToken: aws.String(src.ClientToken)})
		wantCode(t, "success before acknowledging", err, "InvalidJobStateException")

		// Not acknowledged in time: the job goes back to the queue, and the
		// next poll hands it out under a new nonce; the old one is stale.
		time.Sleep(time.Until(polledAt.Add(ackTimeout + 100*time.Millisecond)))
		again := pollOne(t, c, tpSource)
		if aws.ToString(again.JobId) != id {
			t.Fatalf("re-polled job %s, want %s", aws.ToString(again.JobId), id)
		}
		second := details(t, c, id, src.ClientToken)
		if aws.ToString(second.Nonce) == aws.ToString(first.Nonce) {
			t.Fatal("the re-polled job kept its nonce")
		}
		_, err = c.AcknowledgeThirdPartyJob(ctx, &codepipeline.AcknowledgeThirdPartyJobInput{JobId: job.JobId, Nonce: first.Nonce, ClientToken: aws.String(src.ClientToken)})
		wantCode(t, "acknowledge with a stale nonce", err, "InvalidNonceException")
		ack(t, c, id, aws.ToString(second.Nonce), src.ClientToken)

		// Results with the wrong token change nothing.
		_, err = c.PutThirdPartyJobSuccessResult(ctx, &codepipeline.PutThirdPartyJobSuccessResultInput{JobId: job.JobId, ClientToken: aws.String(dep.ClientToken)})
		wantCode(t, "success with another client's token", err, "InvalidClientTokenException")
		_, err = c.PutThirdPartyJobFailureResult(ctx, &codepipeline.PutThirdPartyJobFailureResultInput{JobId: job.JobId, ClientToken: aws.String("not-a-token"),
			FailureDetails: &types.FailureDetails{Type: types.FailureTypeJobFailed, Message: aws.String("x")}})
		wantCode(t, "failure with a wrong token", err, "InvalidClientTokenException")
		if a := action(t, c, "neg", "Source", "Fetch"); a == nil || a.Status != types.ActionExecutionStatusInProgress {
			t.Fatalf("after refused results the source action is %+v, want InProgress", a)
		}

		succeed(t, c, &codepipeline.PutThirdPartyJobSuccessResultInput{JobId: job.JobId, ClientToken: aws.String(src.ClientToken),
			CurrentRevision: &types.CurrentRevision{Revision: aws.String("r1"), ChangeIdentifier: aws.String("r1")}})
		// A finished job takes no second result.
		_, err = c.PutThirdPartyJobSuccessResult(ctx, &codepipeline.PutThirdPartyJobSuccessResultInput{JobId: job.JobId, ClientToken: aws.String(src.ClientToken)})
		wantCode(t, "success on a finished job", err, "InvalidJobStateException")
		_, err = c.PutThirdPartyJobFailureResult(ctx, &codepipeline.PutThirdPartyJobFailureResultInput{JobId: job.JobId, ClientToken: aws.String(src.ClientToken),
			FailureDetails: &types.FailureDetails{Type: types.FailureTypeJobFailed, Message: aws.String("too late")}})
		wantCode(t, "failure on a finished job", err, "InvalidJobStateException")
		if a := action(t, c, "neg", "Source", "Fetch"); a == nil || a.Status != types.ActionExecutionStatusSucceeded {
			t.Fatalf("source action = %+v, want Succeeded", a)
		}

		// A revoked client's token stops working at once; the job waits for
		// the action's next client, whose token then opens it.
		djob := pollOne(t, c, tpDeploy)
		did := aws.ToString(djob.JobId)
		dd := details(t, c, did, dep.ClientToken)
		ack(t, c, did, aws.ToString(dd.Nonce), dep.ClientToken)
		if _, err := adm.RevokeClient(ctx, dep.ClientID); err != nil {
			t.Fatal(err)
		}
		wantCode(t, "details with a revoked token", getDetails(did, dep.ClientToken), "InvalidClientTokenException")
		_, err = c.PutThirdPartyJobSuccessResult(ctx, &codepipeline.PutThirdPartyJobSuccessResultInput{JobId: djob.JobId, ClientToken: aws.String(dep.ClientToken)})
		wantCode(t, "success with a revoked token", err, "InvalidClientTokenException")
		if a := action(t, c, "neg", "Deploy", "Ship"); a == nil || a.Status != types.ActionExecutionStatusInProgress {
			t.Fatalf("after a revoked client's result the deploy action is %+v, want InProgress", a)
		}
		dep2 := issue(t, adm, "neg", "Deploy", "Ship")
		wantCode(t, "details with the old client's token after re-issue", getDetails(did, dep.ClientToken), "InvalidClientTokenException")
		succeed(t, c, &codepipeline.PutThirdPartyJobSuccessResultInput{JobId: djob.JobId, ClientToken: aws.String(dep2.ClientToken)})
		waitFor(t, "the execution to succeed", func() bool {
			return latestExecution(t, c, "neg").Status == types.PipelineExecutionStatusSucceeded
		})

		// Every refusal above was logged (debug level logs every request);
		// no token was.
		logs := srv.Logs()
		for _, tok := range []string{src.ClientToken, dep.ClientToken, dep2.ClientToken} {
			if strings.Contains(logs, tok) {
				t.Fatal("the server logged a client token")
			}
		}
	})
}

// TestThirdPartyActionWithoutClient: a job whose action has no client is
// not handed out; its action fails with a message naming the fix.
func TestThirdPartyActionWithoutClient(t *testing.T) {
	servertest.EachBackend(t, func(t *testing.T, backend servertest.Options) {
		_, c, adm := setup(t, backend, "lonely")
		ctx := context.Background()
		out, err := c.PollForThirdPartyJobs(ctx, &codepipeline.PollForThirdPartyJobsInput{ActionTypeId: tpSource})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Jobs) != 0 {
			t.Fatalf("a job without a client was handed out: %+v", out.Jobs)
		}
		waitFor(t, "the execution to fail", func() bool {
			return latestExecution(t, c, "lonely").Status == types.PipelineExecutionStatusFailed
		})
		a := action(t, c, "lonely", "Source", "Fetch")
		if a == nil || a.Status != types.ActionExecutionStatusFailed || a.ErrorDetails == nil ||
			aws.ToString(a.ErrorDetails.Code) != "ConfigurationError" || !strings.Contains(aws.ToString(a.ErrorDetails.Message), "pipelined admin issue-client --pipeline lonely --stage Source --action Fetch") {
			t.Fatalf("Fetch = %+v", a)
		}

		// With a client issued, a retry of the stage runs.
		cl := issue(t, adm, "lonely", "Source", "Fetch")
		exec := latestExecution(t, c, "lonely")
		if _, err := c.RetryStageExecution(ctx, &codepipeline.RetryStageExecutionInput{PipelineName: aws.String("lonely"), StageName: aws.String("Source"),
			PipelineExecutionId: exec.PipelineExecutionId, RetryMode: types.StageRetryModeFailedActions}); err != nil {
			t.Fatal(err)
		}
		job := pollOne(t, c, tpSource)
		if aws.ToString(job.ClientId) != cl.ClientID {
			t.Fatalf("job clientId = %s, want %s", aws.ToString(job.ClientId), cl.ClientID)
		}
	})
}

// TestPollForThirdPartyJobsTypes: polling needs a registered third-party
// type.
func TestPollForThirdPartyJobsTypes(t *testing.T) {
	servertest.EachBackend(t, func(t *testing.T, backend servertest.Options) {
		srv := servertest.Start(t, backend)
		c, adm := srv.Client(), adminClient(srv)
		registerTypes(t, adm)
		ctx := context.Background()
		poll := func(typ *types.ActionTypeId) error {
			_, err := c.PollForThirdPartyJobs(ctx, &codepipeline.PollForThirdPartyJobsInput{ActionTypeId: typ})
			return err
		}
		if err := poll(tpDeploy); err != nil {
			t.Fatalf("poll of a registered type: %v", err)
		}
		unknown := &types.ActionTypeId{Category: types.ActionCategoryDeploy, Owner: types.ActionOwnerThirdParty, Provider: aws.String("Nobody"), Version: aws.String("1")}
		wantCode(t, "poll of an unknown type", poll(unknown), "ActionTypeNotFoundException")
		custom := &types.ActionTypeId{Category: types.ActionCategoryDeploy, Owner: types.ActionOwnerCustom, Provider: aws.String("PartnerDeploy"), Version: aws.String("1")}
		wantCode(t, "poll of a custom type", poll(custom), "ActionTypeNotFoundException")
		if err := adm.DeregisterActionType(ctx, "Deploy", "PartnerDeploy", "1"); err != nil {
			t.Fatal(err)
		}
		wantCode(t, "poll of a deregistered type", poll(tpDeploy), "ActionTypeNotFoundException")
	})
}
