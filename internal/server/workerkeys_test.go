package server_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/pipelined/pipelined/internal/admin"
	"github.com/pipelined/pipelined/internal/identity"
	"github.com/pipelined/pipelined/internal/server"
	"github.com/pipelined/pipelined/internal/server/servertest"
	"github.com/pipelined/pipelined/internal/store"
	"github.com/pipelined/pipelined/internal/wire"
	"github.com/pipelined/pipelined/internal/workerkeys"
)

// Worker keys: access key pairs issued for one Custom or ThirdParty action
// type, which sign that type's job-protocol calls and nothing else.

func typeKey(id *types.ActionTypeId) store.ActionTypeKey {
	return store.ActionTypeKey{Category: string(id.Category), Owner: string(id.Owner), Provider: aws.ToString(id.Provider), Version: aws.ToString(id.Version)}
}

// issueWorkerKey issues a key for typ on srv and returns it with a
// CodePipeline client that signs with it.
func issueWorkerKey(t testing.TB, srv *servertest.Instance, typ *types.ActionTypeId) (workerkeys.Issued, *codepipeline.Client) {
	t.Helper()
	is, err := srv.WorkerKeys().Issue(context.Background(), typeKey(typ), "test worker for "+aws.ToString(typ.Provider))
	if err != nil {
		t.Fatal(err)
	}
	return is, srv.ClientWith(is.Key.AccessKeyID, is.SecretAccessKey, servertest.Region)
}

// wantDenied checks that err is AccessDeniedException, HTTP 403, for op,
// in AWS's words and saying why.
func wantDenied(t *testing.T, what string, err error, op string, is workerkeys.Issued) {
	t.Helper()
	var ae smithy.APIError
	var re *awshttp.ResponseError
	if !errors.As(err, &ae) || ae.ErrorCode() != wire.ErrAccessDenied || !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusForbidden {
		t.Fatalf("%s: err = %v, want AccessDeniedException (HTTP 403)", what, err)
	}
	k := is.Key
	want := "User: arn:aws:iam::" + servertest.AccountID + ":user/pipelined-worker/" + k.AccessKeyID +
		" is not authorized to perform: codepipeline:" + op +
		" because worker keys may call only the job-protocol operations of action type " +
		k.ActionType.Category + "/" + k.ActionType.Owner + "/" + k.ActionType.Provider + "/" + k.ActionType.Version
	if !strings.HasPrefix(ae.ErrorMessage(), want) {
		t.Fatalf("%s: message %q, want it to start with %q", what, ae.ErrorMessage(), want)
	}
}

func wantHTTP(t *testing.T, what string, err error, code string, status int) {
	t.Helper()
	var ae smithy.APIError
	var re *awshttp.ResponseError
	if !errors.As(err, &ae) || ae.ErrorCode() != code || !errors.As(err, &re) || re.HTTPStatusCode() != status {
		t.Fatalf("%s: err = %v, want %s (HTTP %d)", what, err, code, status)
	}
}

// wkPoll polls typ with c until it gets one job.
func wkPoll(t *testing.T, c *codepipeline.Client, typ *types.ActionTypeId) types.Job {
	t.Helper()
	var job types.Job
	waitFor(t, "a job of "+aws.ToString(typ.Provider), func() bool {
		out, err := c.PollForJobs(context.Background(), &codepipeline.PollForJobsInput{ActionTypeId: typ})
		if err != nil {
			t.Fatalf("poll %s: %v", aws.ToString(typ.Provider), err)
		}
		if len(out.Jobs) > 0 {
			job = out.Jobs[0]
		}
		return len(out.Jobs) > 0
	})
	return job
}

func actionStatus(t *testing.T, c *codepipeline.Client, pipeline, stage string) types.ActionExecutionStatus {
	t.Helper()
	s := stageState(t, c, pipeline, stage)
	if len(s.ActionStates) == 0 || s.ActionStates[0].LatestExecution == nil {
		return ""
	}
	return s.ActionStates[0].LatestExecution.Status
}

// TestWorkerKeyCustomJobs: a key of a custom type runs its jobs end to
// end; it may not touch the rest of the API, other types' polls or jobs,
// and its refused calls change nothing.
func TestWorkerKeyCustomJobs(t *testing.T) {
	servertest.EachBackend(t, func(t *testing.T, backend servertest.Options) {
		srv, root := engineServer(t, backend)
		ctx := context.Background()
		srcKey, src := issueWorkerKey(t, srv, srcType)
		buildKey, build := issueWorkerKey(t, srv, buildType)
		execID := create(t, root, gatePipeline("wk", "")) // Source → Approve → Ship

		// The rest of the API is closed to it, before anything runs.
		_, err := src.GetPipeline(ctx, &codepipeline.GetPipelineInput{Name: aws.String("wk")})
		wantDenied(t, "GetPipeline", err, "GetPipeline", srcKey)
		_, err = src.ListPipelines(ctx, &codepipeline.ListPipelinesInput{})
		wantDenied(t, "ListPipelines", err, "ListPipelines", srcKey)
		_, err = src.DeletePipeline(ctx, &codepipeline.DeletePipelineInput{Name: aws.String("wk")})
		wantDenied(t, "DeletePipeline", err, "DeletePipeline", srcKey)
		_, err = src.StartPipelineExecution(ctx, &codepipeline.StartPipelineExecutionInput{Name: aws.String("wk")})
		wantDenied(t, "StartPipelineExecution", err, "StartPipelineExecution", srcKey)
		_, err = src.CreateCustomActionType(ctx, &codepipeline.CreateCustomActionTypeInput{Category: types.ActionCategoryBuild, Provider: aws.String("Sneaky"), Version: aws.String("1"),
			InputArtifactDetails: &types.ArtifactDetails{MaximumCount: 1}, OutputArtifactDetails: &types.ArtifactDetails{MaximumCount: 1}})
		wantDenied(t, "CreateCustomActionType", err, "CreateCustomActionType", srcKey)
		_, err = src.PollForThirdPartyJobs(ctx, &codepipeline.PollForThirdPartyJobsInput{ActionTypeId: srcType})
		wantDenied(t, "PollForThirdPartyJobs", err, "PollForThirdPartyJobs", srcKey)
		if _, err := root.GetPipeline(ctx, &codepipeline.GetPipelineInput{Name: aws.String("wk")}); err != nil {
			t.Fatalf("the pipeline is gone after a refused DeletePipeline: %v", err)
		}
		if out, _ := root.ListPipelineExecutions(ctx, &codepipeline.ListPipelineExecutionsInput{PipelineName: aws.String("wk")}); len(out.PipelineExecutionSummaries) != 1 {
			t.Fatalf("%d executions after a refused StartPipelineExecution", len(out.PipelineExecutionSummaries))
		}
		if list, _ := root.ListActionTypes(ctx, &codepipeline.ListActionTypesInput{ActionOwnerFilter: types.ActionOwnerCustom}); len(list.ActionTypes) != 2 {
			t.Fatalf("%d custom action types after a refused CreateCustomActionType", len(list.ActionTypes))
		}

		// Another type's poll is refused, and claims nothing.
		_, err = build.PollForJobs(ctx, &codepipeline.PollForJobsInput{ActionTypeId: srcType})
		wantDenied(t, "PollForJobs of another type", err, "PollForJobs", buildKey)

		job := wkPoll(t, src, srcType)
		if aws.ToString(job.Data.ActionTypeId.Provider) != "TestSource" {
			t.Fatalf("polled a job of %s", aws.ToString(job.Data.ActionTypeId.Provider))
		}

		// Another type's key may not acknowledge it (with the right nonce)
		// nor read it; the job stays unacknowledged (a result is refused as
		// for any job not yet acknowledged).
		_, err = build.AcknowledgeJob(ctx, &codepipeline.AcknowledgeJobInput{JobId: job.Id, Nonce: job.Nonce})
		wantDenied(t, "AcknowledgeJob of another type's job", err, "AcknowledgeJob", buildKey)
		_, err = build.GetJobDetails(ctx, &codepipeline.GetJobDetailsInput{JobId: job.Id})
		wantDenied(t, "GetJobDetails of another type's job", err, "GetJobDetails", buildKey)
		_, err = src.PutJobSuccessResult(ctx, &codepipeline.PutJobSuccessResultInput{JobId: job.Id})
		wantHTTP(t, "a result before the acknowledgement", err, "InvalidJobStateException", http.StatusBadRequest)
		// Unknown jobs keep their error.
		_, err = src.AcknowledgeJob(ctx, &codepipeline.AcknowledgeJobInput{JobId: aws.String("00000000-0000-0000-0000-000000000000"), Nonce: job.Nonce})
		wantHTTP(t, "an unknown job", err, "JobNotFoundException", http.StatusBadRequest)

		ackOut, err := src.AcknowledgeJob(ctx, &codepipeline.AcknowledgeJobInput{JobId: job.Id, Nonce: job.Nonce})
		if err != nil || ackOut.Status != types.JobStatusInProgress {
			t.Fatalf("AcknowledgeJob with its own key: %+v, %v", ackOut, err)
		}

		// The job holder's OIDC endpoints still authenticate with the job
		// id and nonce, whoever acknowledged; a worker key's signature is
		// no credential there.
		if status, env := oidcCall(t, srv, "id-token/aws", identity.RequestToken(*job.Id, *job.Nonce), nil); status != http.StatusOK {
			t.Fatalf("OIDC token of a job a worker key acknowledged: %d %+v", status, env)
		}
		oidcReq, _ := http.NewRequest(http.MethodPost, srv.URL+"/ng/api/oidc/id-token/aws", strings.NewReader("{}"))
		signWith(srcKey.Key.AccessKeyID, srcKey.SecretAccessKey, servertest.Region, time.Now())(oidcReq, emptyJSONHash)
		if resp, err := srv.HTTP.Do(oidcReq); err != nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("OIDC signed with a worker key: %v %v", resp, err)
		} else {
			resp.Body.Close()
		}

		details, err := src.GetJobDetails(ctx, &codepipeline.GetJobDetailsInput{JobId: job.Id})
		if err != nil || aws.ToString(details.JobDetails.Id) != aws.ToString(job.Id) || details.JobDetails.Data.ArtifactCredentials == nil {
			t.Fatalf("GetJobDetails with its own key: %+v, %v", details, err)
		}
		_, err = build.PutJobSuccessResult(ctx, &codepipeline.PutJobSuccessResultInput{JobId: job.Id})
		wantDenied(t, "PutJobSuccessResult of another type's job", err, "PutJobSuccessResult", buildKey)
		_, err = build.PutJobFailureResult(ctx, &codepipeline.PutJobFailureResultInput{JobId: job.Id,
			FailureDetails: &types.FailureDetails{Type: types.FailureTypeJobFailed, Message: aws.String("sabotage")}})
		wantDenied(t, "PutJobFailureResult of another type's job", err, "PutJobFailureResult", buildKey)
		if st := actionStatus(t, root, "wk", "Source"); st != types.ActionExecutionStatusInProgress {
			t.Fatalf("the source action is %s after refused results", st)
		}
		if _, err := src.PutJobSuccessResult(ctx, &codepipeline.PutJobSuccessResultInput{JobId: job.Id,
			CurrentRevision:  &types.CurrentRevision{Revision: aws.String("rev-wk"), ChangeIdentifier: aws.String("rev-wk")},
			ExecutionDetails: &types.ExecutionDetails{Summary: aws.String("done by a worker key")}}); err != nil {
			t.Fatalf("PutJobSuccessResult with its own key: %v", err)
		}

		// An approval is not a worker's to give.
		token, _ := pendingApproval(t, root, "wk", "Approve")
		_, err = src.PutApprovalResult(ctx, &codepipeline.PutApprovalResultInput{PipelineName: aws.String("wk"), StageName: aws.String("Approve"), ActionName: aws.String("Gate"),
			Token: aws.String(token), Result: &types.ApprovalResult{Status: types.ApprovalStatusApproved, Summary: aws.String("self-approved")}})
		wantDenied(t, "PutApprovalResult", err, "PutApprovalResult", srcKey)
		if st := actionStatus(t, root, "wk", "Approve"); st != types.ActionExecutionStatusInProgress {
			t.Fatalf("the approval is %s after a refused PutApprovalResult", st)
		}
		if _, err := approve(t, root, "wk", token, types.ApprovalStatusApproved); err != nil {
			t.Fatal(err)
		}

		// The Ship job: its type's key polls and acknowledges it; the other
		// key's result is refused; root can still take it through.
		ship := wkPoll(t, build, buildType)
		if _, err := build.AcknowledgeJob(ctx, &codepipeline.AcknowledgeJobInput{JobId: ship.Id, Nonce: ship.Nonce}); err != nil {
			t.Fatal(err)
		}
		_, err = src.PutJobSuccessResult(ctx, &codepipeline.PutJobSuccessResultInput{JobId: ship.Id})
		wantDenied(t, "PutJobSuccessResult of another type's job", err, "PutJobSuccessResult", srcKey)
		if st := actionStatus(t, root, "wk", "Ship"); st != types.ActionExecutionStatusInProgress {
			t.Fatalf("the ship action is %s after a refused result", st)
		}
		if _, err := root.PutJobSuccessResult(ctx, &codepipeline.PutJobSuccessResultInput{JobId: ship.Id}); err != nil {
			t.Fatalf("root's result: %v", err)
		}
		waitStatus(t, root, "wk", execID, types.PipelineExecutionStatusSucceeded)

		// Who did it is on record: the source action's execution.
		acts, err := root.ListActionExecutions(ctx, &codepipeline.ListActionExecutionsInput{PipelineName: aws.String("wk")})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range acts.ActionExecutionDetails {
			if aws.ToString(a.ActionName) == "Checkout" && (a.Status != types.ActionExecutionStatusSucceeded || a.Output == nil ||
				a.Output.ExecutionResult == nil || aws.ToString(a.Output.ExecutionResult.ExternalExecutionSummary) != "done by a worker key") {
				t.Errorf("the worker key's action execution = %+v", a)
			}
		}

		logs := srv.Logs()
		for _, secret := range []string{srcKey.SecretAccessKey, buildKey.SecretAccessKey} {
			if strings.Contains(logs, secret) {
				t.Fatal("a worker key's secret is in the server's log")
			}
		}
	})
}

// emptyJSONHash is the SHA-256 of "{}".
const emptyJSONHash = "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"

// TestWorkerKeyOnlyOnTheCodePipelineAPI: the admin API and the S3 artifact
// API take no worker key.
func TestWorkerKeyOnlyOnTheCodePipelineAPI(t *testing.T) {
	servertest.EachBackend(t, func(t *testing.T, backend servertest.Options) {
		srv, root := engineServer(t, backend)
		ctx := context.Background()
		is, c := issueWorkerKey(t, srv, srcType)
		if _, err := c.PollForJobs(ctx, &codepipeline.PollForJobsInput{ActionTypeId: srcType}); err != nil {
			t.Fatalf("the key works on the CodePipeline API: %v", err)
		}

		adm := &admin.Client{Endpoint: srv.URL, Region: servertest.Region, HTTP: srv.HTTP,
			Credentials: credentials.NewStaticCredentialsProvider(is.Key.AccessKeyID, is.SecretAccessKey, "")}
		_, err := adm.ListClients(ctx, "")
		var ae *admin.APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusForbidden || ae.Code != wire.ErrUnrecognizedClient {
			t.Fatalf("admin API with a worker key: %v, want UnrecognizedClientException (HTTP 403)", err)
		}
		_, err = adm.RegisterActionType(ctx, &admin.RegisterActionTypeInput{CreateCustomActionTypeInput: wire.CreateCustomActionTypeInput{
			Category: "Source", Provider: "Sneaky", Version: "1",
			InputArtifactDetails:  &wire.ArtifactDetails{MinimumCount: wire.Ptr(0), MaximumCount: wire.Ptr(0)},
			OutputArtifactDetails: &wire.ArtifactDetails{MinimumCount: wire.Ptr(1), MaximumCount: wire.Ptr(1)},
		}})
		if !errors.As(err, &ae) || ae.Status != http.StatusForbidden {
			t.Fatalf("admin register with a worker key: %v", err)
		}
		if list, _ := root.ListActionTypes(ctx, &codepipeline.ListActionTypesInput{ActionOwnerFilter: types.ActionOwnerThirdParty}); len(list.ActionTypes) != 0 {
			t.Fatal("a worker key registered an action type")
		}

		// The S3 API: put an object as root, then try it with the key.
		rs3 := rootS3(srv)
		if _, err := rs3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("wk-bucket")}); err != nil {
			t.Fatal(err)
		}
		if _, err := rs3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("wk-bucket"), Key: aws.String("o"), Body: strings.NewReader("x")}); err != nil {
			t.Fatal(err)
		}
		ks3 := rootS3With(srv, credentials.NewStaticCredentialsProvider(is.Key.AccessKeyID, is.SecretAccessKey, ""))
		// Refused, saying that worker keys do not work there and what to
		// use instead.
		wantWorkerKeyRefused := func(what string, err error) {
			t.Helper()
			if s3Code(err) != "AccessDenied" || !strings.Contains(err.Error(), "is a pipelined worker key") ||
				!strings.Contains(err.Error(), "artifactCredentials") {
				t.Fatalf("S3 %s with a worker key: %v", what, err)
			}
		}
		_, err = getObject(t, ks3, "wk-bucket", "o")
		wantWorkerKeyRefused("GetObject", err)
		_, err = ks3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("wk-bucket"), Key: aws.String("p"), Body: strings.NewReader("y")})
		wantWorkerKeyRefused("PutObject", err)
		_, err = ks3.ListBuckets(ctx, &s3.ListBucketsInput{})
		wantWorkerKeyRefused("ListBuckets", err)
		// Without its secret, nobody learns that the id is a worker key.
		wrong := rootS3With(srv, credentials.NewStaticCredentialsProvider(is.Key.AccessKeyID, "not-the-secret", ""))
		_, err = wrong.ListBuckets(ctx, &s3.ListBucketsInput{})
		if s3Code(err) != "SignatureDoesNotMatch" || strings.Contains(err.Error(), "worker key") {
			t.Fatalf("S3 with a worker key id and a wrong secret: %v", err)
		}
		if strings.Contains(srv.Logs(), is.SecretAccessKey) {
			t.Fatal("the secret is in the server's log")
		}
	})
}

// TestWorkerKeyRevoked: a revoked key is refused at once by the replica
// that revoked it, and by another replica within its cache TTL.
func TestWorkerKeyRevoked(t *testing.T) {
	servertest.EachBackend(t, func(t *testing.T, backend servertest.Options) {
		mk := make([]byte, 32)
		if _, err := rand.Read(mk); err != nil {
			t.Fatal(err)
		}
		shared := func(c *server.Config) {
			c.MasterKey = base64.StdEncoding.EncodeToString(mk)
			c.WorkerKeyCacheTTL = 500 * time.Millisecond
		}
		a, root := engineServer(t, backend, shared)
		// A second replica shares PostgreSQL only: on a SQLite database it
		// is refused (TestOneProcessPerSQLiteDataDir).
		var b *servertest.Instance
		if strings.HasPrefix(a.Config.Database, "postgres") {
			b = servertest.Start(t, shared, func(c *server.Config) { c.Database = a.Config.Database })
		}
		ctx := context.Background()

		is, ca := issueWorkerKey(t, a, buildType)
		clients := []*codepipeline.Client{ca}
		var cb *codepipeline.Client
		if b != nil {
			cb = b.ClientWith(is.Key.AccessKeyID, is.SecretAccessKey, servertest.Region)
			clients = append(clients, cb)
		}
		for _, c := range clients {
			if _, err := c.PollForJobs(ctx, &codepipeline.PollForJobsInput{ActionTypeId: buildType}); err != nil {
				t.Fatalf("before revocation: %v", err)
			}
		}
		// A wrong secret is a signature mismatch, as for any key.
		_, err := a.ClientWith(is.Key.AccessKeyID, "not-the-secret-not-the-secret-not-the-se", servertest.Region).
			PollForJobs(ctx, &codepipeline.PollForJobsInput{ActionTypeId: buildType})
		wantHTTP(t, "wrong secret", err, wire.ErrInvalidSignature, http.StatusForbidden)

		if _, err := a.WorkerKeys().Revoke(ctx, is.Key.AccessKeyID); err != nil {
			t.Fatal(err)
		}
		_, err = ca.PollForJobs(ctx, &codepipeline.PollForJobsInput{ActionTypeId: buildType})
		wantHTTP(t, "revoked, on the revoking replica", err, wire.ErrUnrecognizedClient, http.StatusForbidden)
		revokedAt := time.Now()
		if cb != nil {
			waitFor(t, "the other replica to refuse the revoked key", func() bool {
				_, err := cb.PollForJobs(ctx, &codepipeline.PollForJobsInput{ActionTypeId: buildType})
				return apiCode(t, err) == wire.ErrUnrecognizedClient
			})
			if d := time.Since(revokedAt); d > 3*time.Second {
				t.Errorf("the other replica took %v to refuse the key; its cache TTL is 500ms", d)
			}
		}
		// Root is unaffected.
		if _, err := root.ListPipelines(ctx, &codepipeline.ListPipelinesInput{}); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(a.Logs(), is.SecretAccessKey) || b != nil && strings.Contains(b.Logs(), is.SecretAccessKey) {
			t.Fatal("the secret is in a server's log")
		}
	})
}

// TestWorkerKeyThirdPartyJobs: a ThirdParty key runs its type's
// third-party jobs, and still needs the job's client token; other keys are
// refused.
func TestWorkerKeyThirdPartyJobs(t *testing.T) {
	servertest.EachBackend(t, func(t *testing.T, backend servertest.Options) {
		srv, root := engineServer(t, backend)
		ctx := context.Background()
		adm := &admin.Client{Endpoint: srv.URL, Region: servertest.Region, HTTP: srv.HTTP,
			Credentials: credentials.NewStaticCredentialsProvider(servertest.AccessKeyID, servertest.SecretAccessKey, "")}
		partner := func(provider string) *types.ActionTypeId {
			return &types.ActionTypeId{Category: types.ActionCategorySource, Owner: types.ActionOwnerThirdParty, Provider: aws.String(provider), Version: aws.String("1")}
		}
		for _, p := range []string{"WKPartner", "WKOther"} {
			if _, err := adm.RegisterActionType(ctx, &admin.RegisterActionTypeInput{CreateCustomActionTypeInput: wire.CreateCustomActionTypeInput{
				Category: "Source", Provider: p, Version: "1",
				ConfigurationProperties: []wire.ActionConfigurationProperty{{Name: "Repo", Required: wire.Ptr(true), Key: wire.Ptr(true), Secret: wire.Ptr(false)}},
				InputArtifactDetails:    &wire.ArtifactDetails{MinimumCount: wire.Ptr(0), MaximumCount: wire.Ptr(0)},
				OutputArtifactDetails:   &wire.ArtifactDetails{MinimumCount: wire.Ptr(1), MaximumCount: wire.Ptr(1)},
			}}); err != nil {
				t.Fatal(err)
			}
		}
		p := identityPipeline("tp")
		p.Stages[0].Actions[0].ActionTypeId = partner("WKPartner")
		if _, err := root.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: p}); err != nil {
			t.Fatal(err)
		}
		cl, err := adm.IssueClient(ctx, "tp", "Source", "Checkout")
		if err != nil {
			t.Fatal(err)
		}
		tpKey, tp := issueWorkerKey(t, srv, partner("WKPartner"))
		otherKey, other := issueWorkerKey(t, srv, partner("WKOther"))
		customKey, custom := issueWorkerKey(t, srv, srcType)

		_, err = tp.PollForJobs(ctx, &codepipeline.PollForJobsInput{ActionTypeId: partner("WKPartner")})
		wantDenied(t, "PollForJobs with a ThirdParty key", err, "PollForJobs", tpKey)
		_, err = custom.PollForThirdPartyJobs(ctx, &codepipeline.PollForThirdPartyJobsInput{ActionTypeId: partner("WKPartner")})
		wantDenied(t, "PollForThirdPartyJobs with a Custom key", err, "PollForThirdPartyJobs", customKey)
		_, err = other.PollForThirdPartyJobs(ctx, &codepipeline.PollForThirdPartyJobsInput{ActionTypeId: partner("WKPartner")})
		wantDenied(t, "PollForThirdPartyJobs of another type", err, "PollForThirdPartyJobs", otherKey)

		var job types.ThirdPartyJob
		waitFor(t, "a third-party job", func() bool {
			out, err := tp.PollForThirdPartyJobs(ctx, &codepipeline.PollForThirdPartyJobsInput{ActionTypeId: partner("WKPartner")})
			if err != nil {
				t.Fatal(err)
			}
			if len(out.Jobs) > 0 {
				job = out.Jobs[0]
			}
			return len(out.Jobs) > 0
		})
		if aws.ToString(job.ClientId) != cl.ClientID {
			t.Fatalf("job for client %s, want %s", aws.ToString(job.ClientId), cl.ClientID)
		}

		// The key does not replace the client token.
		_, err = tp.GetThirdPartyJobDetails(ctx, &codepipeline.GetThirdPartyJobDetailsInput{JobId: job.JobId, ClientToken: aws.String("not-the-client-token")})
		wantHTTP(t, "details with a wrong token", err, wire.ErrInvalidClientToken, http.StatusBadRequest)
		// Another type's key is refused even with the right token.
		_, err = other.GetThirdPartyJobDetails(ctx, &codepipeline.GetThirdPartyJobDetailsInput{JobId: job.JobId, ClientToken: aws.String(cl.ClientToken)})
		wantDenied(t, "details of another type's job", err, "GetThirdPartyJobDetails", otherKey)

		d, err := tp.GetThirdPartyJobDetails(ctx, &codepipeline.GetThirdPartyJobDetailsInput{JobId: job.JobId, ClientToken: aws.String(cl.ClientToken)})
		if err != nil {
			t.Fatal(err)
		}
		nonce := aws.ToString(d.JobDetails.Nonce)
		_, err = other.AcknowledgeThirdPartyJob(ctx, &codepipeline.AcknowledgeThirdPartyJobInput{JobId: job.JobId, Nonce: aws.String(nonce), ClientToken: aws.String(cl.ClientToken)})
		wantDenied(t, "ack of another type's job", err, "AcknowledgeThirdPartyJob", otherKey)
		_, err = tp.AcknowledgeThirdPartyJob(ctx, &codepipeline.AcknowledgeThirdPartyJobInput{JobId: job.JobId, Nonce: aws.String(nonce), ClientToken: aws.String("not-the-client-token")})
		wantHTTP(t, "ack with a wrong token", err, wire.ErrInvalidClientToken, http.StatusBadRequest)
		if _, err := tp.AcknowledgeThirdPartyJob(ctx, &codepipeline.AcknowledgeThirdPartyJobInput{JobId: job.JobId, Nonce: aws.String(nonce), ClientToken: aws.String(cl.ClientToken)}); err != nil {
			t.Fatal(err)
		}
		_, err = other.PutThirdPartyJobSuccessResult(ctx, &codepipeline.PutThirdPartyJobSuccessResultInput{JobId: job.JobId, ClientToken: aws.String(cl.ClientToken)})
		wantDenied(t, "success of another type's job", err, "PutThirdPartyJobSuccessResult", otherKey)
		_, err = other.PutThirdPartyJobFailureResult(ctx, &codepipeline.PutThirdPartyJobFailureResultInput{JobId: job.JobId, ClientToken: aws.String(cl.ClientToken),
			FailureDetails: &types.FailureDetails{Type: types.FailureTypeJobFailed, Message: aws.String("sabotage")}})
		wantDenied(t, "failure of another type's job", err, "PutThirdPartyJobFailureResult", otherKey)
		_, err = tp.PutThirdPartyJobSuccessResult(ctx, &codepipeline.PutThirdPartyJobSuccessResultInput{JobId: job.JobId, ClientToken: aws.String("not-the-client-token")})
		wantHTTP(t, "success with a wrong token", err, wire.ErrInvalidClientToken, http.StatusBadRequest)
		if st := actionStatus(t, root, "tp", "Source"); st != types.ActionExecutionStatusInProgress {
			t.Fatalf("the source action is %s after refused results", st)
		}
		if _, err := tp.PutThirdPartyJobSuccessResult(ctx, &codepipeline.PutThirdPartyJobSuccessResultInput{JobId: job.JobId, ClientToken: aws.String(cl.ClientToken),
			CurrentRevision: &types.CurrentRevision{Revision: aws.String("r1"), ChangeIdentifier: aws.String("r1")}}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the source action to succeed", func() bool {
			return actionStatus(t, root, "tp", "Source") == types.ActionExecutionStatusSucceeded
		})
		// A custom key of the custom type next in line cannot touch the
		// third-party protocol at all, the third-party key not the custom one.
		build := wkPoll(t, root, buildType)
		_, err = tp.AcknowledgeJob(ctx, &codepipeline.AcknowledgeJobInput{JobId: build.Id, Nonce: build.Nonce})
		wantDenied(t, "AcknowledgeJob with a ThirdParty key", err, "AcknowledgeJob", tpKey)

		logs := srv.Logs()
		for _, s := range []string{tpKey.SecretAccessKey, otherKey.SecretAccessKey, customKey.SecretAccessKey} {
			if strings.Contains(logs, s) {
				t.Fatal("a worker key's secret is in the server's log")
			}
		}
	})
}
