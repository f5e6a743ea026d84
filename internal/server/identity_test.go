package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"

	"github.com/pipelined/pipelined/internal/artifacts/mototest"
	"github.com/pipelined/pipelined/internal/federation/fedtest"
	"github.com/pipelined/pipelined/internal/identity"
	"github.com/pipelined/pipelined/internal/server"
	"github.com/pipelined/pipelined/internal/server/servertest"
)

// envelope is Harness's response envelope.
type envelope struct {
	Status        string          `json:"status"`
	Code          string          `json:"code"`
	Message       string          `json:"message"`
	CorrelationID string          `json:"correlationId"`
	Data          json.RawMessage `json:"data"`
	Errors        []struct {
		FieldID string `json:"fieldId"`
		Error   string `json:"error"`
	} `json:"errors"`
}

func (e envelope) fields() []string {
	var out []string
	for _, f := range e.Errors {
		out = append(out, f.FieldID)
	}
	return out
}

// oidcCall POSTs to the OIDC API as a job (bearer "" sends no credentials).
func oidcCall(t *testing.T, srv *servertest.Instance, path, bearer string, body any) (int, envelope) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/ng/api/oidc/"+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := srv.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatalf("%s: %d, not an envelope: %s", path, resp.StatusCode, raw)
	}
	if env.CorrelationID == "" || resp.Header.Get("X-Correlation-Id") != env.CorrelationID {
		t.Errorf("%s: correlation id %q, header %q", path, env.CorrelationID, resp.Header.Get("X-Correlation-Id"))
	}
	return resp.StatusCode, env
}

// identityPipeline is a custom source action whose job the tests hold.
func identityPipeline(name string) *types.PipelineDeclaration {
	return &types.PipelineDeclaration{
		Name: aws.String(name), RoleArn: aws.String("arn:aws:iam::123456789012:role/r"),
		ArtifactStore: &types.ArtifactStore{Type: types.ArtifactStoreTypeS3, Location: aws.String("artifacts")},
		Stages: []types.StageDeclaration{
			{Name: aws.String("Source"), Actions: []types.ActionDeclaration{{Name: aws.String("Checkout"), ActionTypeId: srcType,
				Configuration: map[string]string{"Repo": name}, OutputArtifacts: []types.OutputArtifact{{Name: aws.String("Code")}}}}},
			{Name: aws.String("Build"), Actions: []types.ActionDeclaration{{Name: aws.String("Compile"), ActionTypeId: buildType,
				Configuration: map[string]string{"Command": "make"}, InputArtifacts: []types.InputArtifact{{Name: aws.String("Code")}}}}},
		},
	}
}

// heldJob creates a pipeline (which starts an execution) and acknowledges
// its first job, returning the job and its request token.
func heldJob(t *testing.T, c *codepipeline.Client, name string, tags ...types.Tag) (types.Job, string) {
	t.Helper()
	if _, err := c.CreatePipeline(context.Background(), &codepipeline.CreatePipelineInput{Pipeline: identityPipeline(name), Tags: tags}); err != nil {
		t.Fatal(err)
	}
	out, err := c.PollForJobs(context.Background(), &codepipeline.PollForJobsInput{ActionTypeId: srcType, QueryParam: map[string]string{"Repo": name}})
	if err != nil || len(out.Jobs) != 1 {
		t.Fatalf("poll: %v %v", out, err)
	}
	j := out.Jobs[0]
	if _, err := c.AcknowledgeJob(context.Background(), &codepipeline.AcknowledgeJobInput{JobId: j.Id, Nonce: j.Nonce}); err != nil {
		t.Fatal(err)
	}
	return j, identity.RequestToken(*j.Id, *j.Nonce)
}

func tokenOf(t *testing.T, env envelope) string {
	t.Helper()
	var tok string
	if err := json.Unmarshal(env.Data, &tok); err != nil || tok == "" {
		t.Fatalf("data is not a token: %s (%v)", env.Data, err)
	}
	return tok
}

// TestIDTokenVerifiesThroughDiscovery: a worker holding a job gets a token
// that go-oidc verifies through the server's discovery document, with the
// claims of that job, on both backends.
func TestIDTokenVerifiesThroughDiscovery(t *testing.T) {
	servertest.EachBackend(t, func(t *testing.T, backend servertest.Options) {
		srv, c := engineServer(t, backend)
		job, bearer := heldJob(t, c, "idp")
		ctx := context.Background()

		status, env := oidcCall(t, srv, "id-token/aws", bearer, map[string]any{"audience": "my-audience"})
		if status != 200 || env.Status != "SUCCESS" {
			t.Fatalf("id-token/aws: %d %+v", status, env)
		}
		tok := tokenOf(t, env)

		provider, err := gooidc.NewProvider(gooidc.ClientContext(ctx, srv.HTTP), srv.URL)
		if err != nil {
			t.Fatalf("discovery: %v", err)
		}
		idt, err := provider.Verifier(&gooidc.Config{ClientID: "my-audience"}).Verify(gooidc.ClientContext(ctx, srv.HTTP), tok)
		if err != nil {
			t.Fatalf("go-oidc refused the token: %v", err)
		}
		var claims identity.Claims
		if err := idt.Claims(&claims); err != nil {
			t.Fatal(err)
		}
		pc := job.Data.PipelineContext
		want := map[string][2]string{
			"iss":                   {claims.Issuer, srv.URL},
			"sub":                   {claims.Subject, "pipeline_name:idp:stage:Source:action:Checkout"},
			"account_id":            {claims.AccountID, servertest.AccountID},
			"pipeline_id":           {claims.PipelineID, "idp"},
			"pipeline_arn":          {claims.PipelineARN, "arn:aws:codepipeline:us-east-1:123456789012:idp"},
			"pipeline_execution_id": {claims.PipelineExecutionID, *pc.PipelineExecutionId},
			"stage":                 {claims.Stage, "Source"},
			"action":                {claims.Action, "Checkout"},
			"action_execution_id":   {claims.ActionExecutionID, *pc.Action.ActionExecutionId},
			"action_type":           {claims.ActionType, "Custom/Source/TestSource/1"},
			"stage_type":            {claims.StageType, "Source"},
			"step_type":             {claims.StepType, "TestSource"},
			"execution_type":        {claims.ExecutionType, "STANDARD"},
			"trigger_type":          {claims.TriggerType, "CreatePipeline"},
			"triggered_by_name":     {claims.TriggeredByName, "arn:aws:iam::123456789012:root"},
			"job_id":                {claims.JobID, *job.Id},
		}
		for k, v := range want {
			if v[0] != v[1] {
				t.Errorf("claim %s = %q, want %q", k, v[0], v[1])
			}
		}
		if claims.Expiry-claims.IssuedAt != 3600 || claims.NotBefore != claims.IssuedAt || claims.ID == "" {
			t.Errorf("exp %d iat %d nbf %d jti %q: want a 1h token with nbf = iat and a jti", claims.Expiry, claims.IssuedAt, claims.NotBefore, claims.ID)
		}

		// The default audience is STS's.
		_, env = oidcCall(t, srv, "id-token/aws", bearer, nil)
		if _, err := provider.Verifier(&gooidc.Config{ClientID: "sts.amazonaws.com"}).Verify(gooidc.ClientContext(ctx, srv.HTTP), tokenOf(t, env)); err != nil {
			t.Errorf("default audience: %v", err)
		}
		// The GCP token's audience is the pool provider's resource name.
		_, env = oidcCall(t, srv, "id-token/gcp", bearer, map[string]any{"gcpOidcTokenRequestDTO": map[string]any{
			"gcpProjectId": "123456789", "workloadPoolId": "pool-1", "providerId": "pipelined"}})
		gcpAud := "//iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/pool-1/providers/pipelined"
		if _, err := provider.Verifier(&gooidc.Config{ClientID: gcpAud}).Verify(gooidc.ClientContext(ctx, srv.HTTP), tokenOf(t, env)); err != nil {
			t.Errorf("gcp audience: %v", err)
		}

		// JWKS and discovery are cacheable.
		resp, err := srv.HTTP.Get(srv.URL + "/.well-known/jwks")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "max-age=") || resp.Header.Get("ETag") == "" {
			t.Errorf("JWKS cache headers: Cache-Control %q, ETag %q", cc, resp.Header.Get("ETag"))
		}
	})
}

// TestIDTokenOnlyForRunningJobs: no credentials, wrong nonce, a job not
// acknowledged yet, a finished job, and the root key alone are refused.
func TestIDTokenOnlyForRunningJobs(t *testing.T) {
	srv, c := engineServer(t, defaults)
	ctx := context.Background()
	job, bearer := heldJob(t, c, "only-running")

	check := func(what string, status int, env envelope, wantStatus int, wantCode string) {
		t.Helper()
		if status != wantStatus || env.Code != wantCode || env.Status != "ERROR" || len(env.Data) != 0 && string(env.Data) != "null" {
			t.Errorf("%s: %d %+v, want %d %s", what, status, env, wantStatus, wantCode)
		}
	}
	s, env := oidcCall(t, srv, "id-token/aws", "", nil)
	check("no credentials", s, env, 401, "UNAUTHORIZED")
	s, env = oidcCall(t, srv, "id-token/aws", identity.RequestToken(*job.Id, "not-the-nonce"), nil)
	check("wrong nonce", s, env, 401, "UNAUTHORIZED")
	s, env = oidcCall(t, srv, "id-token/aws", identity.RequestToken("00000000-0000-4000-8000-000000000000", *job.Nonce), nil)
	check("unknown job", s, env, 401, "UNAUTHORIZED")

	// Root credentials sign API requests; they are not a job.
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/ng/api/oidc/id-token/aws", strings.NewReader("{}"))
	signWith(servertest.AccessKeyID, servertest.SecretAccessKey, servertest.Region, time.Now())(req, "")
	resp, err := srv.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("root-signed request: %d, want 401", resp.StatusCode)
	}

	// A job handed out but not acknowledged is not running yet.
	if _, err := c.PutJobSuccessResult(ctx, &codepipeline.PutJobSuccessResultInput{JobId: job.Id}); err != nil {
		t.Fatal(err)
	}
	out, err := c.PollForJobs(ctx, &codepipeline.PollForJobsInput{ActionTypeId: buildType})
	if err != nil || len(out.Jobs) != 1 {
		t.Fatalf("poll build: %v %v", out, err)
	}
	next := out.Jobs[0]
	s, env = oidcCall(t, srv, "id-token/aws", identity.RequestToken(*next.Id, *next.Nonce), nil)
	check("not acknowledged", s, env, 403, "ACCESS_DENIED")
	// ...and the finished one is over.
	s, env = oidcCall(t, srv, "id-token/aws", bearer, nil)
	check("finished job", s, env, 403, "ACCESS_DENIED")

	// The refusals are counted by endpoint and code.
	resp, err = srv.HTTP.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`pipelined_oidc_requests_total{code="UNAUTHORIZED",endpoint="id-token/aws"} 4`,
		`pipelined_oidc_requests_total{code="ACCESS_DENIED",endpoint="id-token/aws"} 2`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestIDTokenClaimsCannotBeChosen: asserted attributes must equal the
// server's; unknown fields and attributes are refused by name; the sub is
// customized by the pipeline's tag, not by the caller.
func TestIDTokenClaimsCannotBeChosen(t *testing.T) {
	srv, c := engineServer(t, defaults)
	_, bearer := heldJob(t, c, "claims", types.Tag{Key: aws.String(identity.SubjectTag), Value: aws.String("account_id,pipeline_name,trigger_type")})

	attrs := func(m map[string]string) map[string]any {
		return map[string]any{"awsOidcTokenRequestDto": map[string]any{"accountId": servertest.AccountID, "oidcIdTokenCustomAttributesStructure": m}}
	}
	// Restating the server's values is fine.
	s, env := oidcCall(t, srv, "id-token/aws", bearer, attrs(map[string]string{"pipeline_id": "claims", "stage_type": "Source", "organization_id": ""}))
	if s != 200 {
		t.Fatalf("restated claims: %d %+v", s, env)
	}
	tok := tokenOf(t, env)
	payload := decodePayload(t, tok)
	if payload["sub"] != "account_id:123456789012:pipeline_name:claims:trigger_type:CreatePipeline" {
		t.Errorf("sub %v: want the tag's claims", payload["sub"])
	}

	for _, tc := range []struct {
		name   string
		body   any
		fields []string
	}{
		{"changed claim", attrs(map[string]string{"pipeline_id": "prod-pipeline", "step_type": "TestSource"}),
			[]string{"awsOidcTokenRequestDto.oidcIdTokenCustomAttributesStructure.pipeline_id"}},
		{"claim pipelined has no data for", attrs(map[string]string{"environment_id": "prod"}),
			[]string{"awsOidcTokenRequestDto.oidcIdTokenCustomAttributesStructure.environment_id"}},
		{"unknown attribute", attrs(map[string]string{"is_admin": "true"}),
			[]string{"awsOidcTokenRequestDto.oidcIdTokenCustomAttributesStructure.is_admin"}},
		{"unknown field", map[string]any{"sub": "anything"}, []string{"sub"}},
		{"other account", map[string]any{"awsOidcTokenRequestDto": map[string]any{"accountId": "999999999999"}}, []string{"awsOidcTokenRequestDto.accountId"}},
		{"audience with spaces", map[string]any{"audience": "a b"}, []string{"audience"}},
		{"wrong type", map[string]any{"audience": 5}, []string{"audience"}},
	} {
		s, env := oidcCall(t, srv, "id-token/aws", bearer, tc.body)
		if s != 400 || env.Code != "INVALID_REQUEST" || fmt.Sprint(env.fields()) != fmt.Sprint(tc.fields) {
			t.Errorf("%s: %d %+v, want 400 naming %v", tc.name, s, env, tc.fields)
		}
	}
	// GCP: every missing field is named at once.
	s, env = oidcCall(t, srv, "id-token/gcp", bearer, map[string]any{"gcpOidcTokenRequestDTO": map[string]any{"gcpProjectId": "my-project"}})
	want := []string{"gcpOidcTokenRequestDTO.gcpProjectId", "gcpOidcTokenRequestDTO.workloadPoolId", "gcpOidcTokenRequestDTO.providerId"}
	if s != 400 || fmt.Sprint(env.fields()) != fmt.Sprint(want) {
		t.Errorf("gcp fields: %d %v, want %v", s, env.fields(), want)
	}

	// A sub tag with a claim that does not exist is refused when tagged.
	_, err := c.TagResource(context.Background(), &codepipeline.TagResourceInput{
		ResourceArn: aws.String("arn:aws:codepipeline:us-east-1:123456789012:claims"),
		Tags:        []types.Tag{{Key: aws.String(identity.SubjectTag), Value: aws.String("pipeline_name,favourite_colour")}},
	})
	var ite *types.InvalidTagsException
	if !errors.As(err, &ite) || !strings.Contains(err.Error(), "favourite_colour") {
		t.Errorf("bad sub tag: %v, want InvalidTagsException naming the claim", err)
	}
}

func decodePayload(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %d parts", len(parts))
	}
	b, err := base64URL(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// awsServer starts a server whose STS is a fake that verifies tokens
// against the server's own JWKS. The fake needs the server's URL, which is
// only known once it listens: the issuer is fixed by reserving the port.
func awsServer(t *testing.T, clock func() time.Time, more ...servertest.Options) (*servertest.Instance, *codepipeline.Client, *fedtest.AWSSTS) {
	t.Helper()
	addr := freeAddr(t)
	fake := fedtest.NewAWSSTS(t, fedtest.AWSSTSConfig{Issuer: "http://" + addr, Now: clock})
	opts := append([]servertest.Options{func(c *server.Config) {
		c.Listen = addr
		c.Identity.AWSSTSEndpoint = fake.URL
		c.Identity.OIDCNow = clock
	}}, more...)
	srv, c := engineServer(t, defaults, opts...)
	return srv, c, fake
}

// TestAWSExchange: the webidentity-session-access exchange against a fake
// STS that verifies the token through the JWKS; retries follow the policy
// and only for retryable failures; a given token must be this issuer's
// and the calling job's.
func TestAWSExchange(t *testing.T) {
	clock := &movableClock{}
	srv, c, fake := awsServer(t, clock.now)
	_, bearer := heldJob(t, c, "aws-exchange")
	role := "arn:aws:iam::123456789012:role/deployer"

	s, env := oidcCall(t, srv, "access-token/aws/webidentity-session-access", bearer, map[string]any{"iamRoleArn": role})
	if s != 200 || env.Status != "SUCCESS" {
		t.Fatalf("exchange: %d %+v", s, env)
	}
	var creds struct {
		AccessKey       string `json:"access_key"`
		SecretAccessKey string `json:"secret_access_key"`
		SessionToken    string `json:"session_token"`
		Expiration      int64  `json:"expiration"`
	}
	if err := json.Unmarshal(env.Data, &creds); err != nil || creds.AccessKey == "" || creds.SecretAccessKey == "" || creds.SessionToken == "" {
		t.Fatalf("credentials: %s (%v)", env.Data, err)
	}
	if d := time.Until(time.Unix(creds.Expiration, 0)); d < 50*time.Minute || d > 70*time.Minute {
		t.Errorf("expiration in %s, want about 1h", d)
	}
	if got := fake.LastClaims(); got["pipeline_name"] != "aws-exchange" || got["aud"] != "sts.amazonaws.com" {
		t.Errorf("STS saw claims %v", got)
	}
	// The credentials work.
	stsc := sts.New(sts.Options{Region: "us-east-1", BaseEndpoint: aws.String(fake.URL),
		Credentials: credentials.NewStaticCredentialsProvider(creds.AccessKey, creds.SecretAccessKey, creds.SessionToken)})
	id, err := stsc.GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
	if err != nil || !strings.Contains(aws.ToString(id.Arn), "assumed-role/deployer/pipelined-") {
		t.Fatalf("GetCallerIdentity: %v %v", id, err)
	}

	exchange := func(body map[string]any) (int, envelope, int) {
		before := fake.Requests()
		body["iamRoleArn"] = role
		s, env := oidcCall(t, srv, "access-token/aws/webidentity-session-access", bearer, body)
		return s, env, fake.Requests() - before
	}
	fixed := map[string]any{"backOffStrategyType": "FixedDelayBackoffStrategy", "backOffStrategy": map[string]any{"fixedBackoff": 5, "retryCount": 3}}
	equal := map[string]any{"backOffStrategyType": "EqualJitterBackoffStrategy", "backOffStrategy": map[string]any{"baseDelay": 5, "maxBackoffTime": 20, "retryCount": 3}}
	full := map[string]any{"backOffStrategyType": "FullJitterBackoffStrategy", "backOffStrategy": map[string]any{"baseDelay": 5, "maxBackoffTime": 20, "retryCount": 3}}
	for _, tc := range []struct {
		name     string
		policy   map[string]any
		code     string
		status   int
		failures int
		wantHTTP int
		attempts int
	}{
		{"IDP communication error, fixed delay", fixed, "IDPCommunicationError", 400, 2, 200, 3},
		{"throttling, equal jitter", equal, "Throttling", 400, 3, 200, 4},
		{"internal failure, full jitter", full, "InternalFailure", 500, 1, 200, 2},
		{"retries exhausted", fixed, "InternalFailure", 500, 4, 502, 4},
		{"no policy: no retry", nil, "InternalFailure", 500, 1, 502, 1},
		{"access denied is not retried", fixed, "AccessDenied", 403, 1, 502, 1},
		{"expired token is not retried", full, "ExpiredTokenException", 400, 1, 502, 1},
	} {
		fake.Fail(tc.failures, tc.code, tc.status)
		body := map[string]any{}
		if tc.policy != nil {
			body["retryPolicy"] = tc.policy
		}
		s, env, n := exchange(body)
		if s != tc.wantHTTP || n != tc.attempts {
			t.Errorf("%s: HTTP %d after %d attempts, want %d after %d (%+v)", tc.name, s, n, tc.wantHTTP, tc.attempts, env)
		}
		if s == 502 && (env.Status != "FAILURE" || !strings.Contains(env.Message, tc.code)) {
			t.Errorf("%s: %+v, want a FAILURE naming %s", tc.name, env, tc.code)
		}
		// Drain what a test left queued.
		for range max(0, tc.failures-tc.attempts) {
			exchange(map[string]any{})
		}
	}
	// InvalidIdentityToken: retried while the provider propagates, not
	// when it is about the token.
	fake.FailWith(2, "InvalidIdentityToken", 400, "No OpenIDConnect provider found in your account for "+srv.URL)
	if s, env, n := exchange(map[string]any{"retryPolicy": fixed}); s != 200 || n != 3 {
		t.Errorf("provider propagating: HTTP %d after %d attempts, want 200 after 3 (%v)", s, n, env)
	}
	fake.FailWith(1, "InvalidIdentityToken", 400, "Incorrect token audience")
	if s, env, n := exchange(map[string]any{"retryPolicy": fixed}); s != 502 || n != 1 {
		t.Errorf("token refused: HTTP %d after %d attempts, want 502 after 1 (%v)", s, n, env)
	}
	// A bad policy is bad input, named.
	s, env, n := exchange(map[string]any{"retryPolicy": map[string]any{"backOffStrategyType": "Sometimes"}})
	if s != 400 || n != 0 || len(env.Errors) == 0 || !strings.HasPrefix(env.Errors[0].FieldID, "retryPolicy") {
		t.Errorf("bad retry policy: %d %+v after %d requests", s, env, n)
	}
	s, env = oidcCall(t, srv, "access-token/aws/webidentity-session-access", bearer, map[string]any{"iamRoleArn": "deployer"})
	if s != 400 || fmt.Sprint(env.fields()) != "[iamRoleArn]" {
		t.Errorf("bad role ARN: %d %+v", s, env)
	}

	// A token given by the caller: this issuer's, unexpired, the caller's.
	_, env = oidcCall(t, srv, "id-token/aws", bearer, nil)
	mine := tokenOf(t, env)
	if s, env, _ := exchange(map[string]any{"oidcIdToken": mine}); s != 200 {
		t.Errorf("own token: %d %+v", s, env)
	}
	parts := strings.Split(mine, ".")
	tampered := parts[0] + "." + strings.Replace(parts[1], parts[1][10:14], "AAAA", 1) + "." + parts[2]
	foreign := foreignToken(t, srv.URL)
	_, otherBearer := heldJob(t, c, "aws-exchange-other")
	_, env = oidcCall(t, srv, "id-token/aws", otherBearer, nil)
	othersToken := tokenOf(t, env)
	otherIssuer := foreignToken(t, "https://ci.elsewhere.example.com")
	for name, tok := range map[string]string{"tampered": tampered, "forged by another key": foreign, "another issuer's": otherIssuer, "another job's": othersToken, "garbage": "not-a-jwt"} {
		s, env, n := exchange(map[string]any{"oidcIdToken": tok})
		if s != 400 || fmt.Sprint(env.fields()) != "[oidcIdToken]" || n != 0 {
			t.Errorf("%s token: %d %+v after %d STS requests, want 400 naming oidcIdToken", name, s, env, n)
		}
		if strings.Contains(env.Message, tok) {
			t.Errorf("%s token: the answer echoes the token", name)
		}
	}
	// Two hours later the token has expired (the job, on a 1h timeout of
	// its own by default, is still held: its timer has not fired).
	clock.advance(2 * time.Hour)
	if s, env, n := exchange(map[string]any{"oidcIdToken": mine}); s != 400 || !strings.Contains(env.Message, "expired") || n != 0 {
		t.Errorf("expired token: %d %+v after %d requests", s, env, n)
	}

	// No token, nonce or credential reached the logs.
	logs := srv.Logs()
	for name, secret := range map[string]string{"token": mine, "secret key": creds.SecretAccessKey, "session token": creds.SessionToken, "bearer": bearer} {
		if strings.Contains(logs, secret) {
			t.Errorf("the server logged a %s", name)
		}
	}
	if !strings.Contains(logs, env.CorrelationID) {
		t.Errorf("the correlation id %s of a failure is not in the logs", env.CorrelationID)
	}
}

// TestAWSExchangeAgainstMoto: moto_server as STS; the credentials it
// returns work for GetCallerIdentity against it.
func TestAWSExchangeAgainstMoto(t *testing.T) {
	moto := startMoto(t)
	srv, c := engineServer(t, defaults, func(cfg *server.Config) { cfg.Identity.AWSSTSEndpoint = moto })
	_, bearer := heldJob(t, c, "moto")
	s, env := oidcCall(t, srv, "access-token/aws/webidentity-session-access", bearer, map[string]any{"iamRoleArn": "arn:aws:iam::123456789012:role/deployer"})
	if s != 200 {
		t.Fatalf("exchange against moto: %d %+v", s, env)
	}
	var creds map[string]any
	if err := json.Unmarshal(env.Data, &creds); err != nil {
		t.Fatal(err)
	}
	stsc := sts.New(sts.Options{Region: "us-east-1", BaseEndpoint: aws.String(moto),
		Credentials: credentials.NewStaticCredentialsProvider(creds["access_key"].(string), creds["secret_access_key"].(string), creds["session_token"].(string))})
	id, err := stsc.GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatalf("GetCallerIdentity with moto's credentials: %v", err)
	}
	if !strings.Contains(aws.ToString(id.Arn), "deployer") {
		t.Errorf("caller %s, want the assumed role", aws.ToString(id.Arn))
	}
}

// TestGCPExchange: workload-access and service-account-access against a
// fake of GCP's STS and IAM Credentials that verifies the token and its
// audience.
func TestGCPExchange(t *testing.T) {
	addr := freeAddr(t)
	prov := fedtest.GCPProvider{ProjectNumber: "424242", PoolID: "ci-pool", ProviderID: "pipelined"}
	fake := fedtest.NewGCP(t, fedtest.GCPConfig{Issuer: "http://" + addr, Providers: []fedtest.GCPProvider{prov},
		ServiceAccounts: []string{"deployer@proj.iam.gserviceaccount.com"}})
	srv, c := engineServer(t, defaults, func(cfg *server.Config) {
		cfg.Listen = addr
		cfg.Identity.GCPSTSEndpoint = fake.URL
		cfg.Identity.GCPIAMCredentialsEndpoint = fake.URL
	})
	_, bearer := heldJob(t, c, "gcp")
	dto := func(sa string) map[string]any {
		d := map[string]any{"gcpProjectId": prov.ProjectNumber, "workloadPoolId": prov.PoolID, "providerId": prov.ProviderID}
		if sa != "" {
			d["serviceAccountEmail"] = sa
		}
		return map[string]any{"gcpOidcTokenRequestDTO": d}
	}
	s, env := oidcCall(t, srv, "access-token/gcp/workload-access", bearer, dto(""))
	if s != 200 {
		t.Fatalf("workload-access: %d %+v", s, env)
	}
	var fed map[string]any
	_ = json.Unmarshal(env.Data, &fed)
	if fed["access_token"] == "" || fed["token_type"] != "Bearer" || fed["issued_token_type"] != "urn:ietf:params:oauth:token-type:access_token" || fed["expires_in"] == nil {
		t.Errorf("workload-access data %v", fed)
	}
	if got := fake.LastClaims(); got["aud"] != prov.Audience() || got["pipeline_name"] != "gcp" {
		t.Errorf("GCP STS saw claims %v", got)
	}

	s, env = oidcCall(t, srv, "access-token/gcp/service-account-access", bearer, dto("deployer@proj.iam.gserviceaccount.com"))
	if s != 200 {
		t.Fatalf("service-account-access: %d %+v", s, env)
	}
	var sa struct {
		AccessToken string `json:"accessToken"`
		ExpireTime  string `json:"expireTime"`
	}
	if err := json.Unmarshal(env.Data, &sa); err != nil || sa.AccessToken == "" {
		t.Fatalf("service account data %s", env.Data)
	}
	if _, err := time.Parse(time.RFC3339, sa.ExpireTime); err != nil {
		t.Errorf("expireTime %q: %v", sa.ExpireTime, err)
	}

	// A provider that does not exist, and a service account not bound:
	// the provider refuses, once (not retryable), and the answer says so.
	other := dto("")
	other["gcpOidcTokenRequestDTO"].(map[string]any)["providerId"] = "nope-provider"
	other["retryPolicy"] = map[string]any{"backOffStrategyType": "FixedDelayBackoffStrategy", "backOffStrategy": map[string]any{"fixedBackoff": 1, "retryCount": 3}}
	before := fake.Requests()
	if s, env := oidcCall(t, srv, "access-token/gcp/workload-access", bearer, other); s != 502 || env.Status != "FAILURE" || fake.Requests()-before != 1 {
		t.Errorf("unknown provider: %d %+v after %d requests", s, env, fake.Requests()-before)
	}
	if s, env := oidcCall(t, srv, "access-token/gcp/service-account-access", bearer, dto("intruder@proj.iam.gserviceaccount.com")); s != 502 {
		t.Errorf("unbound service account: %d %+v", s, env)
	}
	// 503 is retried.
	fake.Fail(2, "UNAVAILABLE", 503)
	body := dto("")
	body["retryPolicy"] = other["retryPolicy"]
	if s, env := oidcCall(t, srv, "access-token/gcp/workload-access", bearer, body); s != 200 {
		t.Errorf("after two 503s: %d %+v", s, env)
	}
}

// helpers

var freeAddrMu sync.Mutex

// freeAddr reserves a loopback port for a server whose URL must be known
// before it starts (the fakes verify tokens of that issuer).
func freeAddr(t *testing.T) string {
	t.Helper()
	freeAddrMu.Lock()
	defer freeAddrMu.Unlock()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func base64URL(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

// foreignToken is a token that claims this issuer but is signed by a key
// the issuer never had: a forgery.
func foreignToken(t *testing.T, issuer string) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "forged"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	payload, _ := json.Marshal(map[string]any{"iss": issuer, "sub": "pipeline_name:x", "aud": "sts.amazonaws.com", "iat": now, "nbf": now, "exp": now + 600})
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func startMoto(t *testing.T) string { return mototest.Start(t) }

// defaults is the backend option of tests that run on SQLite only.
var defaults servertest.Options = func(*server.Config) {}

// String keeps failure messages readable (Data is JSON, not bytes).
func (e envelope) String() string {
	data := string(e.Data)
	if len(data) > 80 {
		data = data[:80] + "..."
	}
	return fmt.Sprintf("{status %s code %s message %q fields %v data %s}", e.Status, e.Code, e.Message, e.fields(), data)
}

// TestJobEnvironmentRequestsAToken: the environment a built-in executor
// gives a process it starts for a job is enough to get that job's token,
// GitHub Actions style (URL plus bearer token).
func TestJobEnvironmentRequestsAToken(t *testing.T) {
	srv, c := engineServer(t, defaults)
	job, _ := heldJob(t, c, "env")
	env := map[string]string{}
	for _, kv := range identity.JobEnvironment(srv.URL, *job.Id, *job.Nonce) {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	req, _ := http.NewRequest(http.MethodPost, env["PIPELINED_ID_TOKEN_REQUEST_URL"], strings.NewReader(`{"audience":"api://deploy"}`))
	req.Header.Set("Authorization", "Bearer "+env["PIPELINED_ID_TOKEN_REQUEST_TOKEN"])
	resp, err := srv.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out envelope
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("token request from the job environment: %d %v %v", resp.StatusCode, out, err)
	}
	if p := decodePayload(t, tokenOf(t, out)); p["aud"] != "api://deploy" || p["job_id"] != *job.Id {
		t.Errorf("claims %v", p)
	}
}
