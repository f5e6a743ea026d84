package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
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

// The action types of the secret and URL tests: a source that sets an
// output variable, and a deployer with secret properties and URL
// templates.
var (
	hsSource = &types.ActionTypeId{Category: types.ActionCategorySource, Owner: types.ActionOwnerCustom, Provider: aws.String("HsSource"), Version: aws.String("1")}
	hsDeploy = &types.ActionTypeId{Category: types.ActionCategoryDeploy, Owner: types.ActionOwnerCustom, Provider: aws.String("HsDeploy"), Version: aws.String("1")}
)

func registerHSTypes(t *testing.T, c *codepipeline.Client) {
	t.Helper()
	ctx := context.Background()
	for _, in := range []*codepipeline.CreateCustomActionTypeInput{
		{Category: hsSource.Category, Provider: hsSource.Provider, Version: hsSource.Version,
			ConfigurationProperties: []types.ActionConfigurationProperty{{Name: aws.String("Repo"), Required: true, Key: true}},
			InputArtifactDetails:    &types.ArtifactDetails{MinimumCount: 0, MaximumCount: 0}, OutputArtifactDetails: &types.ArtifactDetails{MinimumCount: 1, MaximumCount: 1}},
		{Category: hsDeploy.Category, Provider: hsDeploy.Provider, Version: hsDeploy.Version,
			ConfigurationProperties: []types.ActionConfigurationProperty{
				{Name: aws.String("Target"), Required: true, Key: true},
				{Name: aws.String("ApiToken"), Required: true, Secret: true},
				{Name: aws.String("Password"), Required: false, Secret: true},
				{Name: aws.String("Region"), Required: false},
			},
			InputArtifactDetails: &types.ArtifactDetails{MinimumCount: 1, MaximumCount: 1}, OutputArtifactDetails: &types.ArtifactDetails{MinimumCount: 0, MaximumCount: 0},
			Settings: &types.ActionTypeSettings{
				EntityUrlTemplate:          aws.String("https://deploy.example.com/targets/{Config:Target}"),
				ExecutionUrlTemplate:       aws.String("https://deploy.example.com/targets/{Config:Target}/runs/{ExternalExecutionId}"),
				RevisionUrlTemplate:        aws.String("https://deploy.example.com/targets/{Config:Target}/config"),
				ThirdPartyConfigurationUrl: aws.String("https://deploy.example.com/signup"),
			}},
	} {
		if _, err := c.CreateCustomActionType(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
}

// hsPipeline is Source (namespace SourceVars) → Deploy with the given
// configuration.
func hsPipeline(name string, deployConfig map[string]string) *types.PipelineDeclaration {
	return &types.PipelineDeclaration{
		Name: aws.String(name), RoleArn: aws.String("arn:aws:iam::123456789012:role/r"),
		ArtifactStore: &types.ArtifactStore{Type: types.ArtifactStoreTypeS3, Location: aws.String("artifacts")},
		Stages: []types.StageDeclaration{
			{Name: aws.String("Source"), Actions: []types.ActionDeclaration{{Name: aws.String("Checkout"), ActionTypeId: hsSource, Namespace: aws.String("SourceVars"),
				Configuration: map[string]string{"Repo": name}, OutputArtifacts: []types.OutputArtifact{{Name: aws.String("Code")}}}}},
			{Name: aws.String("Deploy"), Actions: []types.ActionDeclaration{{Name: aws.String("Ship"), ActionTypeId: hsDeploy,
				Configuration: deployConfig, InputArtifacts: []types.InputArtifact{{Name: aws.String("Code")}}}}},
		},
	}
}

// recorder keeps the body of every response an SDK client gets.
type recorder struct {
	base      http.RoundTripper
	mu        sync.Mutex
	responses []recordedResponse
}

type recordedResponse struct {
	target string // the request's X-Amz-Target
	body   string
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.base.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	r.mu.Lock()
	r.responses = append(r.responses, recordedResponse{req.Header.Get("X-Amz-Target"), string(b)})
	r.mu.Unlock()
	return resp, nil
}

func (r *recorder) all() []recordedResponse {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recordedResponse(nil), r.responses...)
}

// recordResponses makes every client of srv record its responses.
func recordResponses(srv *servertest.Instance) *recorder {
	r := &recorder{base: srv.HTTP.Transport}
	srv.HTTP.Transport = r
	return r
}

func randomHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// hsRun is what the worker of runHS saw and answered.
type hsRun struct {
	execID string
	deploy types.Job     // the Deploy job, as PollForJobs handed it
	detail types.JobData // the Deploy job's data, as GetJobDetails gave it
}

// runHS creates a pipeline (which starts it) and works its jobs as an
// unmodified job worker does, until the execution succeeds: the source
// job sets the output variable Token to token; the Deploy job reports the
// external execution id externalID.
func runHS(t *testing.T, c *codepipeline.Client, p *types.PipelineDeclaration, token, externalID string) hsRun {
	t.Helper()
	ctx := context.Background()
	if _, err := c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: p}); err != nil {
		t.Fatal(err)
	}
	var run hsRun
	work := func(typ *types.ActionTypeId) types.Job {
		var job types.Job
		waitFor(t, "a job of "+aws.ToString(typ.Provider), func() bool {
			out, err := c.PollForJobs(ctx, &codepipeline.PollForJobsInput{ActionTypeId: typ})
			if err != nil {
				t.Fatal(err)
			}
			if len(out.Jobs) == 0 {
				return false
			}
			job = out.Jobs[0]
			return true
		})
		if _, err := c.AcknowledgeJob(ctx, &codepipeline.AcknowledgeJobInput{JobId: job.Id, Nonce: job.Nonce}); err != nil {
			t.Fatal(err)
		}
		return job
	}
	src := work(hsSource)
	run.execID = aws.ToString(src.Data.PipelineContext.PipelineExecutionId)
	if _, err := c.PutJobSuccessResult(ctx, &codepipeline.PutJobSuccessResultInput{JobId: src.Id,
		CurrentRevision:  &types.CurrentRevision{Revision: aws.String("rev-1"), ChangeIdentifier: aws.String("rev-1")},
		ExecutionDetails: &types.ExecutionDetails{Summary: aws.String("fetched"), ExternalExecutionId: aws.String("fetch-1")},
		OutputVariables:  map[string]string{"Token": token}}); err != nil {
		t.Fatal(err)
	}
	run.deploy = work(hsDeploy)
	details, err := c.GetJobDetails(ctx, &codepipeline.GetJobDetailsInput{JobId: run.deploy.Id})
	if err != nil {
		t.Fatal(err)
	}
	run.detail = *details.JobDetails.Data
	if _, err := c.PutJobSuccessResult(ctx, &codepipeline.PutJobSuccessResultInput{JobId: run.deploy.Id,
		ExecutionDetails: &types.ExecutionDetails{Summary: aws.String("shipped"), ExternalExecutionId: aws.String(externalID), PercentComplete: aws.Int32(100)}}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, c, aws.ToString(p.Name), run.execID, types.PipelineExecutionStatusSucceeded)
	return run
}

// TestSecretsNeverEchoed runs a pipeline end to end with a custom action
// whose secret properties pass validation (one with a variable reference)
// after others failed it, and a job worker; then it searches the server's
// whole log and every response body for every secret value used: only
// the job data the worker receives may hold them.
func TestSecretsNeverEchoed(t *testing.T) {
	servertest.EachBackend(t, func(t *testing.T, backend servertest.Options) {
		srv := servertest.Start(t, backend, func(c *server.Config) { c.SweepInterval = 20 * time.Millisecond })
		rec := recordResponses(srv)
		c := srv.Client()
		ctx := context.Background()
		registerHSTypes(t, c)

		r := randomHex(t)
		var (
			tokenTemplate = "tok-" + r + "-#{SourceVars.Token}" // a secret value with a variable
			varValue      = "var-" + randomHex(t)
			tokenResolved = "tok-" + r + "-" + varValue
			password      = "pw-" + randomHex(t)
			tooLong       = "long-" + randomHex(t) + strings.Repeat("x", 1000)
			badNonce      = "nonce-" + randomHex(t) + strings.Repeat("n", 40)
		)
		secrets := []string{tokenTemplate, tokenResolved, password, tooLong, tooLong[:21], badNonce, badNonce[:22]}

		// Secrets that fail validation: the messages name the field, and
		// show **** for the value.
		_, err := c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: hsPipeline("refused",
			map[string]string{"Target": "prod", "ApiToken": tooLong, "Password": password})})
		wantCode(t, err, "ValidationException")
		if msg := err.Error(); !strings.Contains(msg, "Value '****' at 'pipeline.stages.2.member.actions.1.member.configuration.ApiToken'") ||
			!strings.Contains(msg, "length less than or equal to 1000") {
			t.Errorf("too long secret: %v", err)
		}
		_, err = c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: hsPipeline("refused",
			map[string]string{"Target": "prod", "ApiToken": password, "Pasword": password})})
		wantCode(t, err, "InvalidActionDeclarationException")
		_, err = c.AcknowledgeJob(ctx, &codepipeline.AcknowledgeJobInput{JobId: aws.String("00000000-0000-0000-0000-000000000000"), Nonce: aws.String(badNonce)})
		wantCode(t, err, "ValidationException")
		if !strings.Contains(err.Error(), "Value '****' at 'nonce'") {
			t.Errorf("too long nonce: %v", err)
		}

		// Secrets that pass: the worker gets them in clear, the variable resolved.
		run := runHS(t, c, hsPipeline("ships", map[string]string{"Target": "prod", "ApiToken": tokenTemplate, "Password": password}), varValue, "run-42")
		for what, cfg := range map[string]map[string]string{
			"PollForJobs":   run.deploy.Data.ActionConfiguration.Configuration,
			"GetJobDetails": run.detail.ActionConfiguration.Configuration,
		} {
			if cfg["ApiToken"] != tokenResolved || cfg["Password"] != password || cfg["Target"] != "prod" {
				t.Errorf("%s gave the worker the configuration %v; want ApiToken %q (its variable resolved) and the password", what, cfg, tokenResolved)
			}
		}

		// Everywhere else the resolved secret is masked, as the secret is.
		got, err := c.GetPipeline(ctx, &codepipeline.GetPipelineInput{Name: aws.String("ships")})
		if err != nil {
			t.Fatal(err)
		}
		if cfg := got.Pipeline.Stages[1].Actions[0].Configuration; cfg["ApiToken"] != "****" || cfg["Password"] != "****" {
			t.Errorf("GetPipeline configuration = %v", cfg)
		}
		acts, err := c.ListActionExecutions(ctx, &codepipeline.ListActionExecutionsInput{PipelineName: aws.String("ships")})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, d := range acts.ActionExecutionDetails {
			if aws.ToString(d.ActionName) != "Ship" {
				continue
			}
			found = true
			in := d.Input
			if in.Configuration["ApiToken"] != "****" || in.ResolvedConfiguration["ApiToken"] != "****" ||
				in.Configuration["Password"] != "****" || in.ResolvedConfiguration["Password"] != "****" || in.ResolvedConfiguration["Target"] != "prod" {
				t.Errorf("ListActionExecutions input: configuration %v, resolved %v", in.Configuration, in.ResolvedConfiguration)
			}
		}
		if !found {
			t.Fatal("ListActionExecutions has no Ship action")
		}
		if _, err := c.GetPipelineState(ctx, &codepipeline.GetPipelineStateInput{Name: aws.String("ships")}); err != nil {
			t.Fatal(err)
		}
		srv.Stop(t)

		// The job data is the only place the protocol hands a secret over.
		handedOver := false
		for _, resp := range rec.all() {
			op := strings.TrimPrefix(resp.target, "CodePipeline_20150709.")
			for _, s := range secrets {
				if !strings.Contains(resp.body, s) {
					continue
				}
				if (op == "PollForJobs" || op == "GetJobDetails") && (s == tokenResolved || s == password) {
					handedOver = true
					continue
				}
				t.Errorf("the response to %s contains the secret %q: %s", op, s, resp.body)
			}
		}
		if !handedOver {
			t.Error("no job data response held the secrets: the recorder saw nothing")
		}
		logs := srv.Logs()
		if !strings.Contains(logs, "ValidationException") {
			t.Error("the refused requests were not logged: the log is not the whole log")
		}
		for _, s := range secrets {
			if strings.Contains(logs, s) {
				t.Errorf("the server's log contains the secret %q", s)
			}
		}
		files, _ := filepath.Glob(filepath.Join(srv.DataDir, "*"))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			for _, s := range []string{tokenResolved, password} {
				if bytes.Contains(b, []byte(s)) {
					t.Errorf("%s holds the secret %q in clear", filepath.Base(f), s)
				}
			}
		}
	})
}

// TestActionURLs: a custom action type's settings URL templates are
// filled in as CodePipeline does, from required non-secret properties and
// the external execution id the worker reported.
func TestActionURLs(t *testing.T) {
	servertest.EachBackend(t, func(t *testing.T, backend servertest.Options) {
		srv := servertest.Start(t, backend, func(c *server.Config) { c.SweepInterval = 20 * time.Millisecond })
		c := srv.Client()
		ctx := context.Background()
		registerHSTypes(t, c)

		run := runHS(t, c, hsPipeline("linked", map[string]string{"Target": "prod", "ApiToken": "t0ken"}), "v", "run-42")
		const base = "https://deploy.example.com/targets/prod"

		st, err := c.GetPipelineState(ctx, &codepipeline.GetPipelineStateInput{Name: aws.String("linked")})
		if err != nil {
			t.Fatal(err)
		}
		ship := st.StageStates[1].ActionStates[0]
		if got := aws.ToString(ship.EntityUrl); got != base {
			t.Errorf("entityUrl = %q, want %q", got, base)
		}
		if got := aws.ToString(ship.RevisionUrl); got != base+"/config" {
			t.Errorf("revisionUrl = %q, want %q", got, base+"/config")
		}
		le := ship.LatestExecution
		if le == nil || aws.ToString(le.ExternalExecutionId) != "run-42" || aws.ToString(le.ExternalExecutionUrl) != base+"/runs/run-42" {
			t.Errorf("latestExecution = %+v; want externalExecutionId run-42 and externalExecutionUrl %s/runs/run-42", le, base)
		}
		// The source type has no templates: no URLs.
		if src := st.StageStates[0].ActionStates[0]; src.EntityUrl != nil || src.RevisionUrl != nil || src.LatestExecution.ExternalExecutionUrl != nil {
			t.Errorf("source action state has URLs without templates: %+v", src)
		}

		acts, err := c.ListActionExecutions(ctx, &codepipeline.ListActionExecutionsInput{PipelineName: aws.String("linked"),
			Filter: &types.ActionExecutionFilter{PipelineExecutionId: aws.String(run.execID)}})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range acts.ActionExecutionDetails {
			if aws.ToString(d.ActionName) != "Ship" {
				continue
			}
			res := d.Output.ExecutionResult
			if aws.ToString(res.ExternalExecutionId) != "run-42" || aws.ToString(res.ExternalExecutionUrl) != base+"/runs/run-42" || aws.ToString(res.ExternalExecutionSummary) != "shipped" {
				t.Errorf("ListActionExecutions result = id %q, url %q, summary %q", aws.ToString(res.ExternalExecutionId), aws.ToString(res.ExternalExecutionUrl), aws.ToString(res.ExternalExecutionSummary))
			}
		}
		// The action type shows its settings as created.
		types_, err := c.ListActionTypes(ctx, &codepipeline.ListActionTypesInput{ActionOwnerFilter: types.ActionOwnerCustom})
		if err != nil {
			t.Fatal(err)
		}
		for _, at := range types_.ActionTypes {
			if aws.ToString(at.Id.Provider) == "HsDeploy" && aws.ToString(at.Settings.ThirdPartyConfigurationUrl) != "https://deploy.example.com/signup" {
				t.Errorf("HsDeploy settings = %+v", at.Settings)
			}
		}

		// A URL never carries a secret: a template naming a secret
		// property is refused.
		_, err = c.CreateCustomActionType(ctx, &codepipeline.CreateCustomActionTypeInput{
			Category: types.ActionCategoryDeploy, Provider: aws.String("Leaky"), Version: aws.String("1"),
			ConfigurationProperties: []types.ActionConfigurationProperty{{Name: aws.String("Token"), Required: true, Secret: true}},
			InputArtifactDetails:    &types.ArtifactDetails{}, OutputArtifactDetails: &types.ArtifactDetails{},
			Settings: &types.ActionTypeSettings{EntityUrlTemplate: aws.String("https://x.example.com/{Config:Token}")},
		})
		wantCode(t, err, "ValidationException")
	})
}
