package federation

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pipelined/pipelined/internal/federation/fedtest"
)

const testServiceAccount = "deployer@my-project.iam.gserviceaccount.com"

var testProvider = fedtest.GCPProvider{ProjectNumber: "314159265358", PoolID: "pipelined", ProviderID: "prod"}

type gcpFixture struct {
	issuer *testIssuer
	fake   *fedtest.GCP
	gcp    *GCP
	rec    *recorder
}

func newGCPFixture(t *testing.T) *gcpFixture {
	t.Helper()
	iss := newTestIssuer(t)
	fake := fedtest.NewGCP(t, fedtest.GCPConfig{
		Issuer:          iss.URL,
		Providers:       []fedtest.GCPProvider{testProvider, {ProjectNumber: "314159265358", PoolID: "pipelined", ProviderID: "staging"}},
		ServiceAccounts: []string{testServiceAccount, "other@my-project.iam.gserviceaccount.com"},
		Conditions: func(claims map[string]any, sa string) error {
			if sa == "other@my-project.iam.gserviceaccount.com" {
				return errors.New("no binding for this principal")
			}
			return nil
		},
	})
	rec := newRecorder()
	g := &GCP{STSEndpoint: fake.URL, IAMCredentialsEndpoint: fake.URL + "/", Sleep: rec.sleep, now: rec.now, rnd: half}
	return &gcpFixture{issuer: iss, fake: fake, gcp: g, rec: rec}
}

func (f *gcpFixture) audience() string {
	return Audience(testProvider.ProjectNumber, testProvider.PoolID, testProvider.ProviderID)
}

func (f *gcpFixture) idToken(t *testing.T) string {
	return f.issuer.token(t, testSubject, f.audience(), 5*time.Minute)
}

func TestGCPAudience(t *testing.T) {
	want := "//iam.googleapis.com/projects/314159265358/locations/global/workloadIdentityPools/pipelined/providers/prod"
	if got := Audience("314159265358", "pipelined", "prod"); got != want {
		t.Errorf("Audience = %q, want %q", got, want)
	}
	if testProvider.Audience() != want {
		t.Errorf("fedtest's audience %q differs", testProvider.Audience())
	}
}

func TestGCPExchangeAndServiceAccountToken(t *testing.T) {
	f := newGCPFixture(t)
	fed, err := f.gcp.ExchangeToken(t.Context(), f.audience(), f.idToken(t), RetryPolicy{})
	if err != nil {
		t.Fatal(err)
	}
	if fed.AccessToken == "" || fed.TokenType != "Bearer" || fed.IssuedTokenType != "urn:ietf:params:oauth:token-type:access_token" || fed.ExpiresIn != 3600 {
		t.Errorf("federated token %+v", fed)
	}
	if c := f.fake.LastClaims(); c["sub"] != testSubject {
		t.Errorf("the fake verified claims %v", c)
	}

	before := time.Now()
	sa, err := f.gcp.ServiceAccountAccessToken(t.Context(), fed.AccessToken, testServiceAccount, 30*time.Minute, RetryPolicy{})
	if err != nil {
		t.Fatal(err)
	}
	if sa.AccessToken == "" || sa.AccessToken == fed.AccessToken {
		t.Errorf("service account token %q", sa.AccessToken)
	}
	if d := sa.ExpireTime.Sub(before); d < 29*time.Minute || d > 31*time.Minute {
		t.Errorf("the token expires in %v, want the 30m asked", d)
	}
	if f.fake.LastServiceAccount() != testServiceAccount || f.fake.Requests() != 2 {
		t.Errorf("service account %q after %d requests", f.fake.LastServiceAccount(), f.fake.Requests())
	}

	// A lifetime of 0 is GCP's default of one hour.
	sa, err = f.gcp.ServiceAccountAccessToken(t.Context(), fed.AccessToken, testServiceAccount, 0, RetryPolicy{})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(sa.ExpireTime); d < 59*time.Minute || d > 61*time.Minute {
		t.Errorf("the default token expires in %v, want 1h", d)
	}
}

// TestGCPFakeAcceptsForm: the fake reads the exchange as a form too, as
// GCP does (and as Google's client libraries send it).
func TestGCPFakeAcceptsForm(t *testing.T) {
	f := newGCPFixture(t)
	resp, err := http.PostForm(f.fake.URL+"/v1/token", map[string][]string{
		"grant_type":           {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"requested_token_type": {"urn:ietf:params:oauth:token-type:access_token"},
		"subject_token_type":   {"urn:ietf:params:oauth:token-type:jwt"},
		"subject_token":        {f.idToken(t)},
		"audience":             {f.audience()},
		"scope":                {"https://www.googleapis.com/auth/cloud-platform"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != 200 || out["access_token"] == nil || out["token_type"] != "Bearer" {
		t.Fatalf("HTTP %d %v", resp.StatusCode, out)
	}
}

func TestGCPExchangeRefused(t *testing.T) {
	policy := RetryPolicy{Strategy: StrategyFullJitter, BaseDelay: 10 * time.Millisecond, MaxBackoffTime: time.Second, RetryCount: 4}
	staging := Audience(testProvider.ProjectNumber, testProvider.PoolID, "staging")
	cases := []struct {
		name     string
		audience string
		token    func(f *gcpFixture, t *testing.T) string
		code     string
	}{
		{"token for another provider", "", func(f *gcpFixture, t *testing.T) string {
			return f.issuer.token(t, testSubject, staging, time.Minute)
		}, "invalid_grant"},
		{"token for AWS", "", func(f *gcpFixture, t *testing.T) string {
			return f.issuer.token(t, testSubject, "sts.amazonaws.com", time.Minute)
		}, "invalid_grant"},
		{"provider that does not exist", "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/x/providers/y", func(f *gcpFixture, t *testing.T) string {
			return f.idToken(t)
		}, "invalid_target"},
		{"forged token", "", func(f *gcpFixture, t *testing.T) string {
			return f.issuer.forger(t).token(t, testSubject, f.audience(), time.Minute)
		}, "invalid_grant"},
		{"expired token", "", func(f *gcpFixture, t *testing.T) string {
			return f.issuer.token(t, testSubject, f.audience(), -time.Minute)
		}, "invalid_grant"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newGCPFixture(t)
			aud := tc.audience
			if aud == "" {
				aud = f.audience()
			}
			tok := tc.token(f, t)
			_, err := f.gcp.ExchangeToken(t.Context(), aud, tok, policy)
			var pe *ProviderError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v, want a ProviderError", err)
			}
			if pe.Provider != "gcp-sts" || pe.Code != tc.code || pe.StatusCode != 400 || pe.Retryable || pe.Attempts != 1 {
				t.Errorf("error %+v, want %s (HTTP 400) after 1 attempt", pe, tc.code)
			}
			if f.fake.Requests() != 1 || len(f.rec.recorded()) != 0 {
				t.Errorf("%d requests, sleeps %v", f.fake.Requests(), f.rec.recorded())
			}
			assertNoSecret(t, err, tok)
		})
	}
}

func TestGCPRetries(t *testing.T) {
	for _, s := range strategies {
		for _, fl := range []struct {
			code   string
			status int
		}{{"UNAVAILABLE", 503}, {"INTERNAL", 500}, {"RESOURCE_EXHAUSTED", 429}, {"", 0}} {
			t.Run(fmt.Sprintf("%s/%d", s.policy.Strategy, fl.status), func(t *testing.T) {
				f := newGCPFixture(t)
				f.fake.Fail(2, fl.code, fl.status)
				fed, err := f.gcp.ExchangeToken(t.Context(), f.audience(), f.idToken(t), s.policy)
				if err != nil {
					t.Fatalf("exchange after two failures: %v", err)
				}
				if n := f.fake.Requests(); n != 3 {
					t.Errorf("%d requests, want 3", n)
				}
				if got := f.rec.recorded(); !slices.Equal(got, s.sleeps) {
					t.Errorf("slept %v, want %v", got, s.sleeps)
				}

				f.fake.Fail(2, fl.code, fl.status)
				if _, err := f.gcp.ServiceAccountAccessToken(t.Context(), fed.AccessToken, testServiceAccount, 0, s.policy); err != nil {
					t.Fatalf("generateAccessToken after two failures: %v", err)
				}
				if n := f.fake.Requests(); n != 6 {
					t.Errorf("%d requests, want 6", n)
				}
			})
		}
	}
}

func TestGCPRetriesRunOut(t *testing.T) {
	f := newGCPFixture(t)
	f.fake.Fail(10, "temporarily_unavailable", 503)
	tok := f.idToken(t)
	_, err := f.gcp.ExchangeToken(t.Context(), f.audience(), tok, RetryPolicy{Strategy: StrategyFixedDelay, FixedBackoff: time.Millisecond, RetryCount: 3})
	var pe *ProviderError
	if !errors.As(err, &pe) || pe.Code != "temporarily_unavailable" || pe.StatusCode != 503 || !pe.Retryable || pe.Attempts != 4 || f.fake.Requests() != 4 {
		t.Fatalf("error %+v after %d requests", err, f.fake.Requests())
	}
	assertNoSecret(t, err, tok)
}

func TestGCPServiceAccountRefused(t *testing.T) {
	policy := RetryPolicy{Strategy: StrategyFixedDelay, FixedBackoff: 10 * time.Millisecond, RetryCount: 4}
	cases := []struct {
		name   string
		email  string
		setup  func(f *gcpFixture, fedToken *string)
		code   string
		status int
	}{
		{"account not allowed", "stranger@my-project.iam.gserviceaccount.com", nil, "PERMISSION_DENIED", 403},
		{"principal not bound", "other@my-project.iam.gserviceaccount.com", nil, "PERMISSION_DENIED", 403},
		{"injected 403", testServiceAccount, func(f *gcpFixture, _ *string) { f.fake.Fail(3, "PERMISSION_DENIED", 403) }, "PERMISSION_DENIED", 403},
		{"unknown federated token", testServiceAccount, func(f *gcpFixture, tok *string) { *tok = "ya29.not-issued-by-the-fake-at-all" }, "UNAUTHENTICATED", 401},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newGCPFixture(t)
			fed, err := f.gcp.ExchangeToken(t.Context(), f.audience(), f.idToken(t), RetryPolicy{})
			if err != nil {
				t.Fatal(err)
			}
			tok := fed.AccessToken
			if tc.setup != nil {
				tc.setup(f, &tok)
			}
			_, err = f.gcp.ServiceAccountAccessToken(t.Context(), tok, tc.email, time.Hour, policy)
			var pe *ProviderError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v, want a ProviderError", err)
			}
			if pe.Provider != "gcp-iamcredentials" || pe.Code != tc.code || pe.StatusCode != tc.status || pe.Retryable || pe.Attempts != 1 {
				t.Errorf("error %+v, want %s (HTTP %d) after 1 attempt", pe, tc.code, tc.status)
			}
			if f.fake.Requests() != 2 || len(f.rec.recorded()) != 0 {
				t.Errorf("%d requests (exchange included), sleeps %v", f.fake.Requests(), f.rec.recorded())
			}
			assertNoSecret(t, err, tok)
		})
	}
}

// TestGCPRedactsEchoedTokens: an answer echoing the ID token or the
// federated token does not put them in the error.
func TestGCPRedactsEchoedTokens(t *testing.T) {
	iss := newTestIssuer(t)
	idToken := iss.token(t, testSubject, "aud", time.Minute)
	const fedToken = "ya29.federated-secret-token-value-0123456789"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/v1/token" {
			w.WriteHeader(400)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_grant", "error_description": fmt.Sprintf("bad subject_token %v", body["subjectToken"])})
			return
		}
		w.WriteHeader(503)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": 503, "status": "UNAVAILABLE", "message": "cannot use " + r.Header.Get("Authorization")}})
	}))
	defer srv.Close()
	g := &GCP{STSEndpoint: srv.URL, IAMCredentialsEndpoint: srv.URL, Sleep: newRecorder().sleep}
	_, err := g.ExchangeToken(t.Context(), "aud", idToken, RetryPolicy{})
	var pe *ProviderError
	if !errors.As(err, &pe) || pe.Code != "invalid_grant" || !strings.Contains(pe.Message, "bad subject_token [REDACTED]") {
		t.Fatalf("error %v", err)
	}
	assertNoSecret(t, err, idToken)

	_, err = g.ServiceAccountAccessToken(t.Context(), fedToken, testServiceAccount, 0, RetryPolicy{Strategy: StrategyFixedDelay, RetryCount: 1})
	if !errors.As(err, &pe) || pe.Code != "UNAVAILABLE" || pe.Attempts != 2 || !strings.Contains(pe.Message, "[REDACTED]") {
		t.Fatalf("error %v", err)
	}
	assertNoSecret(t, err, fedToken)
}

func TestGCPErrorBodies(t *testing.T) {
	cases := []struct {
		status    int
		body      string
		code, msg string
		retryable bool
	}{
		{400, `{"error":"invalid_grant","error_description":"The audience does not match."}`, "invalid_grant", "The audience does not match.", false},
		{403, `{"error":{"code":403,"message":"Permission denied.","status":"PERMISSION_DENIED"}}`, "PERMISSION_DENIED", "Permission denied.", false},
		{429, `{"error":{"code":429,"message":"Quota exceeded.","status":"RESOURCE_EXHAUSTED"}}`, "RESOURCE_EXHAUSTED", "Quota exceeded.", true},
		{502, `<html>Bad Gateway</html>`, "", "<html>Bad Gateway</html>", true},
		{503, ``, "", "Service Unavailable", true},
		{404, `{"error":{"code":404,"message":"Not found.","status":"NOT_FOUND"}}`, "NOT_FOUND", "Not found.", false},
	}
	for _, c := range cases {
		pe := gcpError(ProviderGCPSTS, c.status, []byte(c.body), nil)
		if pe.Code != c.code || pe.Message != c.msg || pe.Retryable != c.retryable || pe.StatusCode != c.status {
			t.Errorf("HTTP %d %s: %+v", c.status, c.body, pe)
		}
	}
}
