package server_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pipelined/pipelined/internal/federation/fedtest"
	"github.com/pipelined/pipelined/internal/server"
)

const (
	azureTenant = "8c3a1f52-3d1b-4a56-9f0e-2b7d4e6a1c90"
	azureClient = "0b5e8f44-7a2c-4d19-b6e3-91f2c7a8d305"
)

// TestAzureExchange: the Azure exchange against a fake Entra ID that
// verifies the token through the server's discovery document and JWKS,
// its issuer, subject and audience (api://AzureADTokenExchange): minted by
// the server or given by the caller, Entra's refusals answered as 502
// naming the AADSTS code, retryable failures retried under the policy.
func TestAzureExchange(t *testing.T) {
	addr := freeAddr(t)
	issuer := "http://" + addr
	fake := fedtest.NewAzure(t, fedtest.AzureConfig{Issuer: issuer, Apps: []fedtest.AzureApp{{
		TenantID: azureTenant, ClientID: azureClient,
		Credentials: []fedtest.AzureCredential{{Issuer: issuer, Subject: "pipeline_name:azure:stage:Source:action:Checkout"}},
	}}})
	srv, c := engineServer(t, defaults, func(cfg *server.Config) {
		cfg.Listen = addr
		cfg.Identity.AzureTokenEndpoint = fake.URL
	})
	_, bearer := heldJob(t, c, "azure")

	// The ID token for Azure carries Entra's audience by default, or the
	// one the request names (a sovereign cloud's).
	s, env := oidcCall(t, srv, "id-token/azure", bearer, map[string]any{})
	if s != 200 {
		t.Fatalf("id-token/azure: %d %v", s, env)
	}
	idToken := tokenOf(t, env)
	if aud := decodePayload(t, idToken)["aud"]; aud != "api://AzureADTokenExchange" {
		t.Errorf("aud %v", aud)
	}
	s, env = oidcCall(t, srv, "id-token/azure", bearer, map[string]any{"azureOidcTokenRequestDTO": map[string]any{
		"audience": "api://AzureADTokenExchangeUSGov", "tenantId": azureTenant, "clientId": azureClient,
	}})
	if s != 200 || decodePayload(t, tokenOf(t, env))["aud"] != "api://AzureADTokenExchangeUSGov" {
		t.Fatalf("id-token/azure with an audience: %d %v", s, env)
	}

	// The exchange, the server minting the token.
	req := map[string]any{"tenantId": azureTenant, "clientId": azureClient, "resource": "https://management.azure.com"}
	s, env = oidcCall(t, srv, "access-token/azure", bearer, req)
	if s != 200 {
		t.Fatalf("access-token/azure: %d %v", s, env)
	}
	var out map[string]any
	if err := json.Unmarshal(env.Data, &out); err != nil {
		t.Fatal(err)
	}
	accessToken, _ := out["access_token"].(string)
	if accessToken == "" || out["token_type"] != "Bearer" || out["expires_in"] != 3599.0 || out["ext_expires_in"] != 3599.0 {
		t.Errorf("data %v", out)
	}
	if fake.LastScope() != "https://management.azure.com/.default" {
		t.Errorf("scope %q", fake.LastScope())
	}
	if cl := fake.LastClaims(); cl["aud"] != "api://AzureADTokenExchange" || cl["iss"] != issuer || cl["pipeline_name"] != "azure" {
		t.Errorf("Entra saw claims %v", cl)
	}

	// The caller's own token, Azure's: accepted. An AWS token: refused,
	// naming the field, without calling Entra.
	before := fake.Requests()
	given := req
	given["oidcToken"] = idToken
	if s, env := oidcCall(t, srv, "access-token/azure", bearer, given); s != 200 {
		t.Errorf("given token: %d %v", s, env)
	}
	_, awsEnv := oidcCall(t, srv, "id-token/aws", bearer, map[string]any{})
	given["oidcToken"] = tokenOf(t, awsEnv)
	if s, env := oidcCall(t, srv, "access-token/azure", bearer, given); s != 400 || !slices.Contains(env.fields(), "oidcToken") {
		t.Errorf("AWS token: %d %v", s, env)
	}
	if n := fake.Requests() - before; n != 1 {
		t.Errorf("%d requests to Entra, want 1", n)
	}

	// Bad input: every field named, nothing sent to Entra.
	before = fake.Requests()
	s, env = oidcCall(t, srv, "access-token/azure", bearer, map[string]any{
		"tenantId": "common", "resource": "not a url",
		"retryPolicy":              map[string]any{"backOffStrategyType": "Forever"},
		"azureOidcTokenRequestDTO": map[string]any{"subscriptionId": "x", "accountId": "999999999999"},
	})
	want := []string{"tenantId", "clientId", "resource", "retryPolicy.backOffStrategyType", "azureOidcTokenRequestDTO.accountId", "azureOidcTokenRequestDTO.subscriptionId"}
	for _, f := range want {
		if !slices.Contains(env.fields(), f) {
			t.Errorf("bad request: %d %v, missing field %s", s, env, f)
		}
	}
	if s != 400 || env.Status != "ERROR" || fake.Requests() != before {
		t.Errorf("bad request: %d %v after %d requests", s, env, fake.Requests()-before)
	}

	// An app Entra does not know: refused once (final), 502 with the code.
	policy := map[string]any{"backOffStrategyType": "FixedDelayBackoffStrategy", "backOffStrategy": map[string]any{"fixedBackoff": 1, "retryCount": 3}}
	before = fake.Requests()
	s, env = oidcCall(t, srv, "access-token/azure", bearer, map[string]any{
		"tenantId": azureTenant, "clientId": "00000000-0000-0000-0000-000000000001", "retryPolicy": policy,
	})
	if s != 502 || env.Status != "FAILURE" || env.Code != "CLOUD_PROVIDER_ERROR" || !strings.Contains(env.Message, "AADSTS700016") || fake.Requests()-before != 1 {
		t.Errorf("unknown client: %d %v after %d requests", s, env, fake.Requests()-before)
	}
	// Entra unavailable twice: retried.
	fake.Fail(2, "temporarily_unavailable", 503)
	before = fake.Requests()
	if s, env := oidcCall(t, srv, "access-token/azure", bearer, map[string]any{"tenantId": azureTenant, "clientId": azureClient, "retryPolicy": policy}); s != 200 || fake.Requests()-before != 3 {
		t.Errorf("after two 503s: %d %v after %d requests", s, env, fake.Requests()-before)
	}

	logs := srv.Logs()
	for _, secret := range []string{idToken, accessToken, strings.SplitN(bearer, ":", 2)[1]} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log carries a secret (%.12s...)", secret)
		}
	}
	if !strings.Contains(logs, "exchanged an ID token at Microsoft Entra ID") {
		t.Error("no log line of the exchange")
	}
}

// TestIDTokenLifetime: a token request may ask for a shorter lifetime
// than --oidc-token-ttl, never a longer one; bad values are refused naming
// the field.
func TestIDTokenLifetime(t *testing.T) {
	srv, c := engineServer(t, defaults, func(cfg *server.Config) { cfg.Identity.OIDCTokenTTL = 30 * time.Minute })
	_, bearer := heldJob(t, c, "lifetime")
	life := func(tok string) float64 {
		p := decodePayload(t, tok)
		return p["exp"].(float64) - p["iat"].(float64)
	}
	for _, path := range []string{"id-token/aws", "id-token/azure"} {
		s, env := oidcCall(t, srv, path, bearer, map[string]any{"lifetime": 300})
		if s != 200 || life(tokenOf(t, env)) != 300 {
			t.Errorf("%s lifetime 300: %d %v", path, s, env)
		}
		s, env = oidcCall(t, srv, path, bearer, map[string]any{})
		if s != 200 || life(tokenOf(t, env)) != 1800 {
			t.Errorf("%s default lifetime: %d %v", path, s, env)
		}
		for _, bad := range []any{1801, 3600, 59, 0, -5, "300", 300.5, true, map[string]any{}} {
			s, env := oidcCall(t, srv, path, bearer, map[string]any{"lifetime": bad})
			if s != 400 || !slices.Equal(env.fields(), []string{"lifetime"}) || !strings.Contains(env.Errors[0].Error, "from 60 to 1800") {
				t.Errorf("%s lifetime %v: %d %v", path, bad, s, env)
			}
		}
	}
	// GCP's ID token too; its other fields are still checked alongside.
	s, env := oidcCall(t, srv, "id-token/gcp", bearer, map[string]any{"lifetime": 120, "gcpOidcTokenRequestDTO": map[string]any{
		"gcpProjectId": "424242", "workloadPoolId": "ci-pool", "providerId": "pipelined"}})
	if s != 200 || life(tokenOf(t, env)) != 120 {
		t.Errorf("id-token/gcp lifetime 120: %d %v", s, env)
	}
	s, env = oidcCall(t, srv, "id-token/gcp", bearer, map[string]any{"lifetime": 7200})
	if s != 400 || !slices.Contains(env.fields(), "lifetime") || !slices.Contains(env.fields(), "gcpOidcTokenRequestDTO") {
		t.Errorf("id-token/gcp bad: %d %v", s, env)
	}
}
