package oidcapi

import (
	"errors"
	"testing"

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
	} {
		f.Add([]byte(s))
	}
	h := &Handler{cfg: Config{AccountID: "123456789012"}}
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
	})
}
