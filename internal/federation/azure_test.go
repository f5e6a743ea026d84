package federation

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pipelined/pipelined/internal/federation/fedtest"
)

const (
	testTenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	testClient = "11111111-2222-3333-4444-555555555555"
)

type azureFixture struct {
	issuer *testIssuer
	fake   *fedtest.Azure
	azure  *Azure
	rec    *recorder
}

func newAzureFixture(t *testing.T) *azureFixture {
	t.Helper()
	iss := newTestIssuer(t)
	fake := fedtest.NewAzure(t, fedtest.AzureConfig{
		Issuer: iss.URL,
		Apps: []fedtest.AzureApp{{TenantID: testTenant, ClientID: testClient,
			Credentials: []fedtest.AzureCredential{{Issuer: iss.URL, Subject: testSubject}}}},
	})
	rec := newRecorder()
	a := &Azure{Endpoint: fake.URL + "/", Sleep: rec.sleep, now: rec.now, rnd: half}
	return &azureFixture{issuer: iss, fake: fake, azure: a, rec: rec}
}

func (f *azureFixture) request(tok string) AzureRequest {
	return AzureRequest{TenantID: testTenant, ClientID: testClient, Assertion: tok}
}

func TestAzureClientCredentials(t *testing.T) {
	f := newAzureFixture(t)
	tok := f.issuer.token(t, testSubject, AzureAudience, 5*time.Minute)
	got, err := f.azure.ClientCredentials(t.Context(), f.request(tok), RetryPolicy{})
	if err != nil {
		t.Fatal(err)
	}
	if got.AccessToken == "" || got.TokenType != "Bearer" || got.ExpiresIn != 3599 || got.ExtExpiresIn != 3599 {
		t.Errorf("token %+v", got)
	}
	if c := f.fake.LastClaims(); c["sub"] != testSubject || c["aud"] != AzureAudience {
		t.Errorf("the fake verified claims %v", c)
	}
	if f.fake.LastScope() != DefaultAzureScope {
		t.Errorf("scope %q, want the default %q", f.fake.LastScope(), DefaultAzureScope)
	}

	req := f.request(tok)
	req.Scope = "api://my-api/.default"
	if _, err := f.azure.ClientCredentials(t.Context(), req, RetryPolicy{}); err != nil {
		t.Fatal(err)
	}
	if f.fake.LastScope() != "api://my-api/.default" {
		t.Errorf("scope %q", f.fake.LastScope())
	}
}

func TestAzureScope(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", DefaultAzureScope},
		{"https://management.azure.com", "https://management.azure.com/.default"},
		{"https://management.azure.com/", "https://management.azure.com/.default"},
		{"https://vault.azure.net/.default", "https://vault.azure.net/.default"},
		{"api://5f4bd2b5-1d1c-4f4e-9c1e-6d5c3b1a2f00", "api://5f4bd2b5-1d1c-4f4e-9c1e-6d5c3b1a2f00/.default"},
	} {
		got, msg := AzureScope(tc.in)
		if got != tc.want || msg != "" {
			t.Errorf("AzureScope(%q) = %q, %q; want %q", tc.in, got, msg, tc.want)
		}
	}
	for _, bad := range []string{"management", "https://a b", "user.read", strings.Repeat("a", 1025)} {
		if _, msg := AzureScope(bad); msg == "" {
			t.Errorf("AzureScope(%q) accepted", bad)
		}
	}
	if CheckAzureTenant("common") == "" || CheckAzureTenant("") == "" || CheckAzureTenant("contoso.onmicrosoft.com") != "" || CheckAzureTenant(testTenant) != "" {
		t.Error("CheckAzureTenant")
	}
	if CheckAzureClient("my-app") == "" || CheckAzureClient(testClient) != "" {
		t.Error("CheckAzureClient")
	}
}

// TestAzureRefused: Entra's final refusals are not retried, and are
// reported with their AADSTS code, never with the token.
func TestAzureRefused(t *testing.T) {
	policy := RetryPolicy{Strategy: StrategyFullJitter, BaseDelay: 10 * time.Millisecond, MaxBackoffTime: time.Second, RetryCount: 4}
	cases := []struct {
		name   string
		token  func(f *azureFixture, t *testing.T) string
		req    func(r *AzureRequest)
		code   string
		status int
	}{
		{"audience for AWS", func(f *azureFixture, t *testing.T) string {
			return f.issuer.token(t, testSubject, "sts.amazonaws.com", time.Minute)
		}, nil, "invalid_client AADSTS700212", 400},
		{"another subject", func(f *azureFixture, t *testing.T) string {
			return f.issuer.token(t, "pipeline:other", AzureAudience, time.Minute)
		}, nil, "invalid_client AADSTS700213", 400},
		{"another issuer", func(f *azureFixture, t *testing.T) string {
			return newTestIssuer(t).token(t, testSubject, AzureAudience, time.Minute)
		}, nil, "invalid_client AADSTS700211", 400},
		{"forged token", func(f *azureFixture, t *testing.T) string {
			return f.issuer.forger(t).token(t, testSubject, AzureAudience, time.Minute)
		}, nil, "invalid_client AADSTS700027", 400},
		{"expired token", func(f *azureFixture, t *testing.T) string {
			return f.issuer.token(t, testSubject, AzureAudience, -time.Minute)
		}, nil, "invalid_client AADSTS700024", 400},
		{"unknown tenant", func(f *azureFixture, t *testing.T) string {
			return f.issuer.token(t, testSubject, AzureAudience, time.Minute)
		}, func(r *AzureRequest) { r.TenantID = "00000000-0000-0000-0000-000000000000" }, "invalid_request AADSTS90002", 400},
		{"unknown client", func(f *azureFixture, t *testing.T) string {
			return f.issuer.token(t, testSubject, AzureAudience, time.Minute)
		}, func(r *AzureRequest) { r.ClientID = "00000000-0000-0000-0000-000000000000" }, "unauthorized_client AADSTS700016", 400},
		{"scope without /.default", func(f *azureFixture, t *testing.T) string {
			return f.issuer.token(t, testSubject, AzureAudience, time.Minute)
		}, func(r *AzureRequest) { r.Scope = "https://graph.microsoft.com/User.Read" }, "invalid_scope AADSTS1002012", 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newAzureFixture(t)
			tok := tc.token(f, t)
			req := f.request(tok)
			if tc.req != nil {
				tc.req(&req)
			}
			_, err := f.azure.ClientCredentials(t.Context(), req, policy)
			var pe *ProviderError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v, want a ProviderError", err)
			}
			if pe.Provider != ProviderAzure || pe.Code != tc.code || pe.StatusCode != tc.status || pe.Retryable || pe.Attempts != 1 {
				t.Errorf("error %+v, want %s (HTTP %d) after 1 attempt", pe, tc.code, tc.status)
			}
			if strings.Contains(pe.Message, "Correlation ID:") || !strings.Contains(pe.Message, "trace id") {
				t.Errorf("message %q: want the first line of the description and the trace id", pe.Message)
			}
			if f.fake.Requests() != 1 || len(f.rec.recorded()) != 0 {
				t.Errorf("%d requests, sleeps %v", f.fake.Requests(), f.rec.recorded())
			}
			assertNoSecret(t, err, tok)
		})
	}
}

// TestAzureRetries: throttling, Entra's 5xx, temporarily_unavailable,
// AADSTS50166 (the issuer's keys could not be fetched) and dropped
// connections are retried under each strategy.
func TestAzureRetries(t *testing.T) {
	for _, s := range strategies {
		for _, fl := range []struct {
			code   string
			status int
		}{
			{"temporarily_unavailable", 503}, {"server_error AADSTS50000", 500}, {"", 429},
			{"invalid_client AADSTS50166", 400}, {"", 0},
		} {
			t.Run(fmt.Sprintf("%s/%s/%d", s.policy.Strategy, fl.code, fl.status), func(t *testing.T) {
				f := newAzureFixture(t)
				f.fake.Fail(2, fl.code, fl.status)
				tok := f.issuer.token(t, testSubject, AzureAudience, time.Minute)
				if _, err := f.azure.ClientCredentials(t.Context(), f.request(tok), s.policy); err != nil {
					t.Fatalf("exchange after two failures: %v", err)
				}
				if n := f.fake.Requests(); n != 3 {
					t.Errorf("%d requests, want 3", n)
				}
				if got := f.rec.recorded(); !slices.Equal(got, s.sleeps) {
					t.Errorf("slept %v, want %v", got, s.sleeps)
				}
			})
		}
	}

	// Without a policy, a retryable failure is reported after one attempt.
	f := newAzureFixture(t)
	f.fake.Fail(1, "temporarily_unavailable", 503)
	_, err := f.azure.ClientCredentials(t.Context(), f.request(f.issuer.token(t, testSubject, AzureAudience, time.Minute)), RetryPolicy{})
	var pe *ProviderError
	if !errors.As(err, &pe) || !pe.Retryable || pe.Attempts != 1 || pe.Code != "temporarily_unavailable" {
		t.Errorf("error %v", err)
	}

	// The issuer's JWKS down: Entra answers AADSTS50166, retried until the
	// policy runs out.
	f = newAzureFixture(t)
	f.issuer.jwksDown = true
	policy := RetryPolicy{Strategy: StrategyFixedDelay, FixedBackoff: 10 * time.Millisecond, RetryCount: 2}
	_, err = f.azure.ClientCredentials(t.Context(), f.request(f.issuer.token(t, testSubject, AzureAudience, time.Minute)), policy)
	if !errors.As(err, &pe) || pe.Code != "invalid_client AADSTS50166" || !pe.Retryable || pe.Attempts != 3 || f.fake.Requests() != 3 {
		t.Errorf("error %v after %d requests", err, f.fake.Requests())
	}
}

func TestAzureInvalidInput(t *testing.T) {
	a := &Azure{Endpoint: "http://127.0.0.1:1"}
	if _, err := a.ClientCredentials(t.Context(), AzureRequest{TenantID: "common", ClientID: testClient}, RetryPolicy{}); err == nil {
		t.Error("tenant common accepted")
	}
	if _, err := a.ClientCredentials(t.Context(), AzureRequest{TenantID: testTenant, ClientID: "x"}, RetryPolicy{}); err == nil {
		t.Error("client x accepted")
	}
}

// FuzzAzureAnswers: any error answer of the token endpoint becomes a
// ProviderError without the assertion in its message, and any resource a
// caller gives becomes a /.default scope or is refused.
func FuzzAzureAnswers(f *testing.F) {
	f.Add(400, []byte(`{"error":"invalid_client","error_description":"AADSTS70021: No matching federated identity record found. secret.token.here\r\nTrace ID: 1","error_codes":[70021],"trace_id":"t"}`), "https://management.azure.com")
	f.Add(503, []byte(`{"error":"temporarily_unavailable"}`), "api://x/.default")
	f.Add(429, []byte(``), "")
	f.Add(500, []byte(`<html>oops</html>`), "not a url")
	f.Add(400, []byte(`{"error":5,"error_codes":["x"]}`), "%zz")
	const assertion = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJwaXBlbGluZSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
	f.Fuzz(func(t *testing.T, status int, body []byte, resource string) {
		pe := azureError(status, append(body, []byte(assertion)...), []string{assertion})
		if pe.Provider != ProviderAzure || pe.Err == nil {
			t.Fatalf("%+v", pe)
		}
		if strings.Contains(pe.Message, assertion) || strings.Contains(pe.Error(), assertion) {
			t.Fatalf("the assertion is in %q", pe.Message)
		}
		if scope, msg := AzureScope(resource); msg == "" && (!strings.HasSuffix(scope, "/.default") || strings.ContainsAny(scope, " \t\r\n")) {
			t.Fatalf("resource %q gave scope %q", resource, scope)
		}
	})
}
