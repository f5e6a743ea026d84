package oidcapi

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pipelined/pipelined/internal/federation"
	"github.com/pipelined/pipelined/internal/identity"
)

// FuzzRequestBodies: any body decodes into a request or is refused as bad
// input naming a field (never a panic, never another kind of error), and
// the validators run on whatever decoded.
func FuzzRequestBodies(f *testing.F) {
	for _, s := range []string{
		``, `{}`, `null`, `[]`, `{"audience":"x"}`, `{"audience":5}`, `{"sub":"x"}`,
		`{"awsOidcTokenRequestDto":{"accountId":"123456789012","oidcIdTokenCustomAttributesStructure":{"pipeline_id":"p","is_admin":"1"}}}`,
		`{"iamRoleArn":"arn:aws:iam::123456789012:role/r","retryPolicy":{"backOffStrategyType":"FixedDelayBackoffStrategy","backOffStrategy":{"fixedBackoff":10,"retryCount":3}}}`,
		`{"gcpOidcTokenRequestDTO":{"gcpProjectId":"1","workloadPoolId":"pool","providerId":"prov","serviceAccountEmail":"a@b.c"}}`,
		`{"oidcIdToken":"a.b.c","retryPolicy":{"backOffStrategyType":"FullJitterBackoffStrategy","backOffStrategy":{"baseDelay":-1}}}`,
		`{"a":1}{"b":2}`, `{"audience":"\u0000"}`,
		`{"lifetime":300}`, `{"lifetime":"300"}`, `{"lifetime":1e3}`, `{"lifetime":-1}`, `{"lifetime":99999999999999999999999}`, `{"lifetime":null}`,
		`{"azureOidcTokenRequestDTO":{"accountId":"123456789012","tenantId":"72f988bf-86f1-41af-91ab-2d7cd011db47","clientId":"x","audience":"api://AzureADTokenExchange","subscriptionId":"s","resourceGroup":"rg"}}`,
		`{"tenantId":"contoso.onmicrosoft.com","clientId":"11111111-2222-3333-4444-555555555555","resource":"https://management.azure.com","oidcToken":"a.b.c","retryPolicy":{"backOffStrategyType":"EqualJitterBackoffStrategy","backOffStrategy":{"baseDelay":100,"maxBackoffTime":50}}}`,
		`{"tenantId":"common","resource":"api://x/.default"}`, `{"resource":"%zz://"}`,
	} {
		f.Add([]byte(s))
	}
	h := &Handler{cfg: Config{AccountID: "123456789012", Identity: identity.New(identity.Config{TokenTTL: time.Hour})}}
	claims := &identity.Claims{AccountID: "123456789012", PipelineID: "p", StageType: "Build", StepType: "X"}
	f.Fuzz(func(t *testing.T, body []byte) {
		check := func(err error) bool {
			if err == nil {
				return true
			}
			var ae *apiError
			if !errors.As(err, &ae) || ae.status != 400 || len(ae.fields) == 0 {
				t.Fatalf("decode error %v is not a 400 naming a field", err)
			}
			return false
		}
		var a idTokenAWSRequest
		if check(decode(body, &a)) {
			_ = identity.CheckAudience(a.Audience)
			if a.DTO != nil {
				h.checkAccount("a", a.DTO.AccountID)
				checkAttributes("a", a.DTO.Attributes, claims)
			}
		}
		var g idTokenGCPRequest
		if check(decode(body, &g)) {
			h.gcpFields(g.DTO, true)
			h.gcpFields(g.DTO, false)
		}
		var s awsSessionRequest
		if check(decode(body, &s)) {
			p, errs := federation.ParseRetryPolicy(s.RetryPolicy)
			if len(errs) == 0 {
				for i := 1; i <= p.RetryCount; i++ {
					if d := p.Delay(i, func() float64 { return 0.999 }); d < 0 || d > federation.MaxDelay {
						t.Fatalf("delay %s out of bounds for %+v", d, p)
					}
				}
			}
		}
		var q gcpAccessRequest
		check(decode(body, &q))
		var z idTokenAzureRequest
		if check(decode(body, &z)) {
			if d, errs := h.parseLifetime(z.Lifetime); len(errs) == 0 && d != 0 && (d < identity.MinTokenLifetime || d > time.Hour) {
				t.Fatalf("lifetime %s accepted", d)
			}
			if aud, _ := h.azureFields(z.DTO); aud == "" {
				t.Fatal("no audience for an Azure token")
			}
		}
		var x azureAccessRequest
		if check(decode(body, &x)) {
			federation.CheckAzureTenant(x.TenantID)
			federation.CheckAzureClient(x.ClientID)
			if scope, msg := federation.AzureScope(x.Resource); msg == "" && !strings.HasSuffix(scope, "/.default") {
				t.Fatalf("resource %q gave scope %q", x.Resource, scope)
			}
			h.azureFields(x.DTO)
		}
	})
}
