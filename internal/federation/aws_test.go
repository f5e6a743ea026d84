package federation

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/pipelined/pipelined/internal/federation/fedtest"
)

const (
	testRoleARN = "arn:aws:iam::123456789012:role/deploy"
	testSubject = "pipeline:deploy-app:stage:Deploy"
)

type awsFixture struct {
	issuer *testIssuer
	sts    *fedtest.AWSSTS
	aws    *AWS
	rec    *recorder
}

func newAWSFixture(t *testing.T, cfg fedtest.AWSSTSConfig) *awsFixture {
	t.Helper()
	iss := newTestIssuer(t)
	cfg.Issuer = iss.URL
	fake := fedtest.NewAWSSTS(t, cfg)
	rec := newRecorder()
	a := &AWS{Endpoint: fake.URL, Region: "us-east-1", Sleep: rec.sleep, now: rec.now, rnd: half}
	return &awsFixture{issuer: iss, sts: fake, aws: a, rec: rec}
}

func (f *awsFixture) input(t *testing.T) AssumeRoleInput {
	return AssumeRoleInput{
		RoleARN:          testRoleARN,
		SessionName:      "pipelined-job-1",
		WebIdentityToken: f.issuer.token(t, testSubject, fedtest.DefaultAWSAudience, 5*time.Minute),
	}
}

// stsClient is an SDK client of the fake (or moto) with credentials.
func stsClient(endpoint string, c AWSCredentials) *sts.Client {
	return sts.New(sts.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, c.SessionToken),
		Retryer:      aws.NopRetryer{},
	})
}

func TestAWSAssumeRole(t *testing.T) {
	f := newAWSFixture(t, fedtest.AWSSTSConfig{})
	in := f.input(t)
	in.Duration = 20 * time.Minute
	before := time.Now()
	creds, err := f.aws.AssumeRoleWithWebIdentity(t.Context(), in, RetryPolicy{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(creds.AccessKeyID, "ASIA") || len(creds.SecretAccessKey) != 40 || creds.SessionToken == "" {
		t.Errorf("credentials %q / secret of %d characters / session token %d characters", creds.AccessKeyID, len(creds.SecretAccessKey), len(creds.SessionToken))
	}
	if d := creds.Expiration.Sub(before); d < 19*time.Minute || d > 21*time.Minute {
		t.Errorf("credentials expire in %v, want the 20m asked", d)
	}
	if creds.AssumedRoleARN != "arn:aws:sts::123456789012:assumed-role/deploy/pipelined-job-1" {
		t.Errorf("AssumedRoleARN = %q", creds.AssumedRoleARN)
	}
	if creds.SubjectFromWebIdentityToken != testSubject {
		t.Errorf("SubjectFromWebIdentityToken = %q", creds.SubjectFromWebIdentityToken)
	}
	if got := f.sts.LastClaims(); got["sub"] != testSubject || got["pipeline_id"] != "deploy-app" {
		t.Errorf("the fake verified claims %v", got)
	}
	if n := f.sts.Requests(); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}

	// The credentials work: GetCallerIdentity (SigV4-signed by the SDK)
	// names the assumed role.
	id, err := stsClient(f.sts.URL, creds).GetCallerIdentity(t.Context(), &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(id.Arn) != creds.AssumedRoleARN || aws.ToString(id.Account) != "123456789012" {
		t.Errorf("GetCallerIdentity = %s in %s", aws.ToString(id.Arn), aws.ToString(id.Account))
	}
	// Credentials the fake did not issue are refused.
	other := creds
	other.AccessKeyID = "ASIAOTHEROTHEROTHER1"
	if _, err := stsClient(f.sts.URL, other).GetCallerIdentity(t.Context(), &sts.GetCallerIdentityInput{}); err == nil {
		t.Error("GetCallerIdentity accepted credentials the fake did not issue")
	}
}

// TestAWSFakeResponseShape checks the fake's XML against AWS's documented
// AssumeRoleWithWebIdentityResponse, field by field.
func TestAWSFakeResponseShape(t *testing.T) {
	f := newAWSFixture(t, fedtest.AWSSTSConfig{})
	in := f.input(t)
	form := url.Values{"Action": {"AssumeRoleWithWebIdentity"}, "Version": {"2011-06-15"},
		"RoleArn": {in.RoleARN}, "RoleSessionName": {in.SessionName}, "WebIdentityToken": {in.WebIdentityToken}}
	resp, err := http.PostForm(f.sts.URL, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		XMLName xml.Name
		Result  struct {
			SubjectFromWebIdentityToken string
			Audience                    string
			Provider                    string
			AssumedRoleUser             struct{ Arn, AssumedRoleId string }
			Credentials                 struct{ AccessKeyId, SecretAccessKey, SessionToken, Expiration string }
		} `xml:"AssumeRoleWithWebIdentityResult"`
		RequestID string `xml:"ResponseMetadata>RequestId"`
	}
	if err := xml.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	r := doc.Result
	if doc.XMLName.Space != "https://sts.amazonaws.com/doc/2011-06-15/" || doc.XMLName.Local != "AssumeRoleWithWebIdentityResponse" {
		t.Errorf("root element %v", doc.XMLName)
	}
	if _, err := time.Parse(time.RFC3339, r.Credentials.Expiration); err != nil {
		t.Errorf("Expiration %q: %v", r.Credentials.Expiration, err)
	}
	host := strings.TrimPrefix(f.issuer.URL, "http://")
	if r.SubjectFromWebIdentityToken != testSubject || r.Audience != "sts.amazonaws.com" ||
		r.Provider != "arn:aws:iam::123456789012:oidc-provider/"+host ||
		!strings.HasPrefix(r.AssumedRoleUser.AssumedRoleId, "AROA") || !strings.HasSuffix(r.AssumedRoleUser.AssumedRoleId, ":pipelined-job-1") ||
		r.Credentials.AccessKeyId == "" || doc.RequestID == "" {
		t.Errorf("response %+v", doc)
	}

	// An error is an ErrorResponse with the status AWS answers.
	form.Set("WebIdentityToken", f.issuer.token(t, testSubject, "someone-else", time.Minute))
	resp2, err := http.PostForm(f.sts.URL, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	var e struct {
		XMLName xml.Name
		Error   struct{ Type, Code, Message string }
	}
	if err := xml.NewDecoder(resp2.Body).Decode(&e); err != nil {
		t.Fatal(err)
	}
	if resp2.StatusCode != 400 || e.XMLName.Local != "ErrorResponse" || e.Error.Type != "Sender" || e.Error.Code != "InvalidIdentityToken" {
		t.Errorf("HTTP %d %+v", resp2.StatusCode, e)
	}
}

// strategies are one policy of each kind, with the delays their first two
// retries must wait when the random source gives 0.5.
var strategies = []struct {
	policy RetryPolicy
	sleeps []time.Duration
}{
	{RetryPolicy{Strategy: StrategyFixedDelay, FixedBackoff: 250 * time.Millisecond, RetryCount: 3},
		[]time.Duration{250 * time.Millisecond, 250 * time.Millisecond}},
	// Equal jitter: c/2 + 0.5*c/2 with c = 100ms, then 200ms.
	{RetryPolicy{Strategy: StrategyEqualJitter, BaseDelay: 100 * time.Millisecond, MaxBackoffTime: time.Second, RetryCount: 3},
		[]time.Duration{75 * time.Millisecond, 150 * time.Millisecond}},
	// Full jitter: 0.5*c.
	{RetryPolicy{Strategy: StrategyFullJitter, BaseDelay: 100 * time.Millisecond, MaxBackoffTime: time.Second, RetryCount: 3},
		[]time.Duration{50 * time.Millisecond, 100 * time.Millisecond}},
}

func TestAWSRetriesRetryable(t *testing.T) {
	failures := []struct {
		code    string
		status  int
		opt     bool // RetryInvalidIdentityToken
		message string
	}{
		{"IDPCommunicationError", 400, false, ""},
		{"Throttling", 400, false, ""},
		{"InternalFailure", 500, false, ""},
		{"ServiceUnavailable", 503, false, ""},
		{"SomethingNew", 429, false, ""},
		{"", 0, false, ""}, // the connection is dropped
		// A provider still propagating, and STS failing to fetch the keys.
		{"InvalidIdentityToken", 400, true, "No OpenIDConnect provider found in your account for https://ci.example.com"},
		{"InvalidIdentityToken", 400, true, "Couldn't retrieve verification key from your identity provider,  please reference AssumeRoleWithWebIdentity documentation for requirements"},
	}
	for _, s := range strategies {
		for _, fl := range failures {
			t.Run(fmt.Sprintf("%s/%s_%d", s.policy.Strategy, fl.code, fl.status), func(t *testing.T) {
				f := newAWSFixture(t, fedtest.AWSSTSConfig{})
				f.sts.FailWith(2, fl.code, fl.status, fl.message)
				in := f.input(t)
				in.RetryInvalidIdentityToken = fl.opt
				creds, err := f.aws.AssumeRoleWithWebIdentity(t.Context(), in, s.policy)
				if err != nil {
					t.Fatalf("after two %s failures: %v", fl.code, err)
				}
				if creds.AccessKeyID == "" {
					t.Fatal("no credentials")
				}
				if n := f.sts.Requests(); n != 3 {
					t.Errorf("%d requests, want 3", n)
				}
				if got := f.rec.recorded(); !slices.Equal(got, s.sleeps) {
					t.Errorf("slept %v, want %v", got, s.sleeps)
				}
			})
		}
	}
}

// TestAWSInvalidIdentityTokenAboutTheToken: with the option, an
// InvalidIdentityToken that is about the token (not the provider) is still
// final.
func TestAWSInvalidIdentityTokenAboutTheToken(t *testing.T) {
	f := newAWSFixture(t, fedtest.AWSSTSConfig{})
	f.sts.FailWith(1, "InvalidIdentityToken", 400, "Incorrect token audience")
	in := f.input(t)
	in.RetryInvalidIdentityToken = true
	p := RetryPolicy{Strategy: StrategyFixedDelay, FixedBackoff: 10 * time.Millisecond, RetryCount: 3}
	_, err := f.aws.AssumeRoleWithWebIdentity(t.Context(), in, p)
	var pe *ProviderError
	if !errors.As(err, &pe) || pe.Code != "InvalidIdentityToken" || pe.Retryable {
		t.Fatalf("error %v, want a final InvalidIdentityToken", err)
	}
	if n := f.sts.Requests(); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

func TestAWSRetriesRunOut(t *testing.T) {
	f := newAWSFixture(t, fedtest.AWSSTSConfig{})
	f.sts.Fail(10, "Throttling", 400)
	p := RetryPolicy{Strategy: StrategyFixedDelay, FixedBackoff: 10 * time.Millisecond, RetryCount: 2}
	in := f.input(t)
	_, err := f.aws.AssumeRoleWithWebIdentity(t.Context(), in, p)
	var pe *ProviderError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v, want a ProviderError", err)
	}
	if pe.Provider != "aws-sts" || pe.Code != "Throttling" || pe.StatusCode != 400 || !pe.Retryable || pe.Attempts != 3 {
		t.Errorf("error %+v", pe)
	}
	if n := f.sts.Requests(); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}
	if !strings.Contains(pe.Error(), "Throttling") || !strings.Contains(pe.Error(), "3 attempts") {
		t.Errorf("Error() = %q", pe.Error())
	}
	assertNoSecret(t, err, in.WebIdentityToken)
}

func TestAWSNotRetried(t *testing.T) {
	policy := RetryPolicy{Strategy: StrategyFixedDelay, FixedBackoff: 10 * time.Millisecond, RetryCount: 5}
	cases := []struct {
		name   string
		setup  func(t *testing.T, f *awsFixture, in *AssumeRoleInput)
		code   string
		status int
	}{
		{"trust policy refuses", func(t *testing.T, f *awsFixture, in *AssumeRoleInput) {
			in.WebIdentityToken = f.issuer.token(t, "pipeline:other", fedtest.DefaultAWSAudience, time.Minute)
		}, "AccessDenied", 403},
		{"injected AccessDenied", func(t *testing.T, f *awsFixture, in *AssumeRoleInput) {
			f.sts.Fail(3, "AccessDenied", 403)
		}, "AccessDenied", 403},
		{"expired token", func(t *testing.T, f *awsFixture, in *AssumeRoleInput) {
			in.WebIdentityToken = f.issuer.token(t, testSubject, fedtest.DefaultAWSAudience, -time.Minute)
		}, "ExpiredTokenException", 400},
		{"injected ExpiredTokenException", func(t *testing.T, f *awsFixture, in *AssumeRoleInput) {
			f.sts.Fail(3, "ExpiredTokenException", 400)
		}, "ExpiredTokenException", 400},
		{"wrong audience without the option", func(t *testing.T, f *awsFixture, in *AssumeRoleInput) {
			in.WebIdentityToken = f.issuer.token(t, testSubject, "api://other", time.Minute)
		}, "InvalidIdentityToken", 400},
		{"injected InvalidIdentityToken without the option", func(t *testing.T, f *awsFixture, in *AssumeRoleInput) {
			f.sts.Fail(3, "InvalidIdentityToken", 400)
		}, "InvalidIdentityToken", 400},
		{"invalid session name", func(t *testing.T, f *awsFixture, in *AssumeRoleInput) {
			in.SessionName = "has spaces"
		}, "ValidationError", 400},
		{"unknown 4xx", func(t *testing.T, f *awsFixture, in *AssumeRoleInput) {
			f.sts.Fail(3, "SomethingNew", 400)
		}, "SomethingNew", 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newAWSFixture(t, fedtest.AWSSTSConfig{Conditions: func(claims map[string]any, roleARN string) error {
				if claims["sub"] != testSubject || roleARN != testRoleARN {
					return errors.New("sub does not match the trust policy")
				}
				return nil
			}})
			in := f.input(t)
			tc.setup(t, f, &in)
			_, err := f.aws.AssumeRoleWithWebIdentity(t.Context(), in, policy)
			var pe *ProviderError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v, want a ProviderError", err)
			}
			if pe.Code != tc.code || pe.StatusCode != tc.status || pe.Retryable || pe.Attempts != 1 {
				t.Errorf("error %+v, want %s (HTTP %d) not retryable after 1 attempt", pe, tc.code, tc.status)
			}
			if n := f.sts.Requests(); n != 1 {
				t.Errorf("%d requests, want 1", n)
			}
			if s := f.rec.recorded(); len(s) != 0 {
				t.Errorf("slept %v", s)
			}
			assertNoSecret(t, err, in.WebIdentityToken)
		})
	}
}

// TestAWSRefusesBadTokens checks that the fake verifies tokens for real;
// otherwise the other tests would prove little.
func TestAWSRefusesBadTokens(t *testing.T) {
	f := newAWSFixture(t, fedtest.AWSSTSConfig{})
	other := newTestIssuer(t)
	forger := f.issuer.forger(t)
	now := time.Now()
	cases := []struct {
		name, token, code string
	}{
		{"signed by another key", forger.token(t, testSubject, fedtest.DefaultAWSAudience, time.Minute), "InvalidIdentityToken"},
		{"unknown key ID", (&testIssuer{URL: f.issuer.URL, key: forger.key, kid: "nope"}).token(t, testSubject, fedtest.DefaultAWSAudience, time.Minute), "InvalidIdentityToken"},
		{"another issuer", other.token(t, testSubject, fedtest.DefaultAWSAudience, time.Minute), "InvalidIdentityToken"},
		{"wrong audience", f.issuer.token(t, testSubject, "sts.amazonaws.com.evil", time.Minute), "InvalidIdentityToken"},
		{"expired", f.issuer.token(t, testSubject, fedtest.DefaultAWSAudience, -time.Minute), "ExpiredTokenException"},
		{"no exp", f.issuer.sign(t, map[string]any{"iss": f.issuer.URL, "sub": testSubject, "aud": fedtest.DefaultAWSAudience}), "InvalidIdentityToken"},
		{"not yet valid", f.issuer.sign(t, map[string]any{"iss": f.issuer.URL, "sub": testSubject, "aud": fedtest.DefaultAWSAudience,
			"nbf": now.Add(time.Hour).Unix(), "exp": now.Add(2 * time.Hour).Unix()}), "InvalidIdentityToken"},
		{"not a JWT", "not.a.jwt", "InvalidIdentityToken"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := f.input(t)
			in.WebIdentityToken = tc.token
			_, err := f.aws.AssumeRoleWithWebIdentity(t.Context(), in, RetryPolicy{})
			var pe *ProviderError
			if !errors.As(err, &pe) || pe.Code != tc.code {
				t.Fatalf("error %v, want %s", err, tc.code)
			}
			assertNoSecret(t, err, tc.token)
		})
	}
	if c := f.sts.LastClaims(); c != nil {
		t.Errorf("the fake recorded claims of a refused token: %v", c)
	}
}

// TestAWSIssuerUnreachable: when STS cannot fetch the issuer's keys it
// answers IDPCommunicationError, which is retried.
func TestAWSIssuerUnreachable(t *testing.T) {
	down := newTestIssuer(t)
	fake := fedtest.NewAWSSTS(t, fedtest.AWSSTSConfig{Issuer: down.URL + "/gone"})
	rec := newRecorder()
	a := &AWS{Endpoint: fake.URL, Sleep: rec.sleep, now: rec.now}
	in := AssumeRoleInput{RoleARN: testRoleARN, SessionName: "s1",
		WebIdentityToken: down.sign(t, map[string]any{"iss": down.URL + "/gone", "aud": "sts.amazonaws.com", "exp": time.Now().Add(time.Minute).Unix()})}
	_, err := a.AssumeRoleWithWebIdentity(t.Context(), in, RetryPolicy{Strategy: StrategyFixedDelay, RetryCount: 1})
	var pe *ProviderError
	if !errors.As(err, &pe) || pe.Code != "IDPCommunicationError" || pe.Attempts != 2 || !pe.Retryable {
		t.Fatalf("error %+v", err)
	}
}

// TestAWSDiscoveryNamesAnotherIssuer: keys are trusted only from a
// discovery document naming the issuer itself.
func TestAWSDiscoveryNamesAnotherIssuer(t *testing.T) {
	f := newAWSFixture(t, fedtest.AWSSTSConfig{})
	f.issuer.discoveryIssuer = "https://accounts.example.com"
	_, err := f.aws.AssumeRoleWithWebIdentity(t.Context(), f.input(t), RetryPolicy{})
	var pe *ProviderError
	if !errors.As(err, &pe) || pe.Code != "IDPCommunicationError" {
		t.Fatalf("error %v, want IDPCommunicationError", err)
	}
}

// TestAWSJWKSUnreachable: STS fails to fetch the keys, answers
// IDPCommunicationError, and the call retries it.
func TestAWSJWKSUnreachable(t *testing.T) {
	f := newAWSFixture(t, fedtest.AWSSTSConfig{})
	f.issuer.jwksDown = true
	_, err := f.aws.AssumeRoleWithWebIdentity(t.Context(), f.input(t), RetryPolicy{Strategy: StrategyFixedDelay, RetryCount: 2})
	var pe *ProviderError
	if !errors.As(err, &pe) || pe.Code != "IDPCommunicationError" || pe.Attempts != 3 || f.sts.Requests() != 3 {
		t.Fatalf("error %v after %d requests, want IDPCommunicationError retried twice", err, f.sts.Requests())
	}
}

// hangFirst is a proxy to target that hangs on its first request until
// the client gives up.
func hangFirst(t *testing.T, target string, calls *atomic.Int32) *httptest.Server {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			// Reading the body lets the server notice the client
			// closing the connection, which ends r.Context().
			_, _ = io.Copy(io.Discard, r.Body)
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestAttemptTimeoutRetried: an attempt that times out (the HTTP
// client's Timeout) is retried while the call's own bound allows.
func TestAttemptTimeoutRetried(t *testing.T) {
	f := newAWSFixture(t, fedtest.AWSSTSConfig{})
	var calls atomic.Int32
	f.aws.Endpoint = hangFirst(t, f.sts.URL, &calls).URL
	f.aws.HTTPClient = &http.Client{Timeout: 200 * time.Millisecond}
	creds, err := f.aws.AssumeRoleWithWebIdentity(t.Context(), f.input(t), RetryPolicy{Strategy: StrategyFixedDelay, RetryCount: 1})
	if err != nil || creds.AccessKeyID == "" {
		t.Fatalf("after a timed out attempt: %v", err)
	}
	if calls.Load() != 2 {
		t.Errorf("%d attempts, want 2", calls.Load())
	}

	// Through GCP's plain net/http too.
	g := newGCPFixture(t)
	var gcalls atomic.Int32
	g.gcp.STSEndpoint = hangFirst(t, g.fake.URL, &gcalls).URL
	g.gcp.HTTPClient = &http.Client{Timeout: 200 * time.Millisecond}
	if _, err := g.gcp.ExchangeToken(t.Context(), g.audience(), g.idToken(t), RetryPolicy{Strategy: StrategyFixedDelay, RetryCount: 1}); err != nil {
		t.Fatalf("after a timed out attempt: %v", err)
	}
	if gcalls.Load() != 2 {
		t.Errorf("%d attempts, want 2", gcalls.Load())
	}
}

func TestAWSNetworkFailure(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	endpoint := srv.URL
	srv.Close() // nothing listens there any more: connection refused
	rec := newRecorder()
	a := &AWS{Endpoint: endpoint, Sleep: rec.sleep, now: rec.now}
	iss := newTestIssuer(t)
	tok := iss.token(t, testSubject, "sts.amazonaws.com", time.Minute)
	_, err := a.AssumeRoleWithWebIdentity(t.Context(), AssumeRoleInput{RoleARN: testRoleARN, SessionName: "s1", WebIdentityToken: tok},
		RetryPolicy{Strategy: StrategyFixedDelay, FixedBackoff: time.Millisecond, RetryCount: 2})
	var pe *ProviderError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v", err)
	}
	if pe.StatusCode != 0 || pe.Code != "" || !pe.Retryable || pe.Attempts != 3 || len(rec.recorded()) != 2 {
		t.Errorf("error %+v after sleeps %v", pe, rec.recorded())
	}
	if !strings.Contains(pe.Error(), "no response") {
		t.Errorf("Error() = %q", pe.Error())
	}
	assertNoSecret(t, err, tok)
}

func TestAWSMaxTotal(t *testing.T) {
	f := newAWSFixture(t, fedtest.AWSSTSConfig{})
	f.sts.Fail(20, "Throttling", 400)
	f.aws.MaxTotal = time.Second
	p := RetryPolicy{Strategy: StrategyFixedDelay, FixedBackoff: 400 * time.Millisecond, RetryCount: 10}
	_, err := f.aws.AssumeRoleWithWebIdentity(t.Context(), f.input(t), p)
	var pe *ProviderError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v", err)
	}
	// Attempts at 0, 400ms and 800ms; a third sleep would end at 1.2s,
	// past the bound, so it is not started.
	want := []time.Duration{400 * time.Millisecond, 400 * time.Millisecond}
	if got := f.rec.recorded(); !slices.Equal(got, want) {
		t.Errorf("slept %v, want %v", got, want)
	}
	if pe.Attempts != 3 || f.sts.Requests() != 3 || !pe.Retryable {
		t.Errorf("error %+v after %d requests, want 3 attempts", pe, f.sts.Requests())
	}
}

func TestAWSContextDeadlineStopsRetries(t *testing.T) {
	f := newAWSFixture(t, fedtest.AWSSTSConfig{})
	f.sts.Fail(20, "Throttling", 400)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	// A delay longer than what is left of ctx is not slept.
	p := RetryPolicy{Strategy: StrategyFixedDelay, FixedBackoff: 10 * time.Second, RetryCount: 3}
	_, err := f.aws.AssumeRoleWithWebIdentity(ctx, f.input(t), p)
	var pe *ProviderError
	if !errors.As(err, &pe) || pe.Attempts != 1 || len(f.rec.recorded()) != 0 {
		t.Fatalf("error %+v, sleeps %v", err, f.rec.recorded())
	}

	// A cancelled sleep ends the call.
	g := newAWSFixture(t, fedtest.AWSSTSConfig{})
	g.sts.Fail(20, "Throttling", 400)
	g.aws.Sleep = func(ctx context.Context, d time.Duration) error { return context.Canceled }
	_, err = g.aws.AssumeRoleWithWebIdentity(t.Context(), g.input(t), RetryPolicy{Strategy: StrategyFixedDelay, RetryCount: 3})
	if !errors.As(err, &pe) || pe.Attempts != 1 || g.sts.Requests() != 1 {
		t.Fatalf("error %+v after %d requests", err, g.sts.Requests())
	}
}

// TestAWSRedactsEchoedToken: a provider (or a proxy in front of it)
// that echoes the token in its message must not put it in the error.
func TestAWSRedactsEchoedToken(t *testing.T) {
	iss := newTestIssuer(t)
	tok := iss.token(t, testSubject, "sts.amazonaws.com", time.Minute)
	for _, status := range []int{400, 500} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_ = r.ParseForm()
			got := r.PostForm.Get("WebIdentityToken")
			payload := strings.Split(got, ".")[1]
			w.Header().Set("Content-Type", "text/xml")
			w.WriteHeader(status)
			fmt.Fprintf(w, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code><Message>bad token %s (payload %s)</Message></Error><RequestId>x</RequestId></ErrorResponse>`, got, payload)
		}))
		defer srv.Close()
		a := &AWS{Endpoint: srv.URL, Sleep: newRecorder().sleep}
		_, err := a.AssumeRoleWithWebIdentity(t.Context(), AssumeRoleInput{RoleARN: testRoleARN, SessionName: "s1", WebIdentityToken: tok},
			RetryPolicy{Strategy: StrategyFixedDelay, RetryCount: 1})
		var pe *ProviderError
		if !errors.As(err, &pe) || !strings.Contains(pe.Message, "bad token [REDACTED]") {
			t.Fatalf("error %v", err)
		}
		assertNoSecret(t, err, tok)
	}
}
