package federation

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Base URLs of Google's APIs, the defaults of GCP's endpoints.
const (
	DefaultGCPSTSEndpoint            = "https://sts.googleapis.com"
	DefaultGCPIAMCredentialsEndpoint = "https://iamcredentials.googleapis.com"
)

// Values of a token exchange, as GCP's Security Token Service documents
// them for workload identity federation (RFC 8693).
const (
	gcpGrantTypeTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	gcpTokenTypeAccessToken   = "urn:ietf:params:oauth:token-type:access_token"
	gcpTokenTypeJWT           = "urn:ietf:params:oauth:token-type:jwt"
	gcpScopeCloudPlatform     = "https://www.googleapis.com/auth/cloud-platform"
)

// GCP exchanges ID tokens for Google access tokens through workload
// identity federation: STS turns the ID token into a federated token,
// which IAM Credentials turns into a service account's access token.
type GCP struct {
	// STSEndpoint and IAMCredentialsEndpoint are base URLs; ""
	// means DefaultGCPSTSEndpoint and DefaultGCPIAMCredentialsEndpoint.
	STSEndpoint, IAMCredentialsEndpoint string
	// HTTPClient makes the requests; nil is http.DefaultClient. Its
	// Timeout, if any, bounds a single attempt.
	HTTPClient *http.Client
	// MaxTotal bounds a call including its retries; 0 is
	// DefaultMaxTotal.
	MaxTotal time.Duration
	// Sleep waits between attempts; nil waits on a timer (ending early
	// when ctx does). Tests replace it so as not to sleep for real.
	Sleep func(ctx context.Context, d time.Duration) error

	// now and rnd replace time.Now and rand.Float64 in tests.
	now func() time.Time
	rnd func() float64
}

// Audience is the audience of a workload identity pool provider: the
// provider's full resource name, which the ID token's aud must carry and
// the token exchange names.
func Audience(projectNumber, poolID, providerID string) string {
	return "//iam.googleapis.com/projects/" + projectNumber + "/locations/global/workloadIdentityPools/" + poolID + "/providers/" + providerID
}

// GCPFederatedToken is the answer of a token exchange.
type GCPFederatedToken struct {
	AccessToken, IssuedTokenType, TokenType string
	// ExpiresIn is the token's lifetime in seconds.
	ExpiresIn int
}

// GCPServiceAccountToken is a service account's access token.
type GCPServiceAccountToken struct {
	AccessToken string
	ExpireTime  time.Time
}

// ExchangeToken exchanges an ID token for a federated access token at
// GCP's STS (POST {STSEndpoint}/v1/token). audience is the pool
// provider's (see Audience). 429 and 5xx answers and network failures are
// retried under policy; other 4xx (invalid_grant: the token or its
// audience is refused; invalid_target: no such provider) are not. A
// failure is a *ProviderError.
func (g *GCP) ExchangeToken(ctx context.Context, audience, subjectToken string, policy RetryPolicy) (GCPFederatedToken, error) {
	// GCP accepts the body as JSON or as a form; JSON field names are the
	// API's camelCase ones.
	body, err := json.Marshal(map[string]string{
		"audience":           audience,
		"grantType":          gcpGrantTypeTokenExchange,
		"requestedTokenType": gcpTokenTypeAccessToken,
		"scope":              gcpScopeCloudPlatform,
		"subjectToken":       subjectToken,
		"subjectTokenType":   gcpTokenTypeJWT,
	})
	if err != nil {
		return GCPFederatedToken{}, err
	}
	var out struct {
		AccessToken     string `json:"access_token"`
		IssuedTokenType string `json:"issued_token_type"`
		TokenType       string `json:"token_type"`
		ExpiresIn       int    `json:"expires_in"`
	}
	endpoint := baseURL(g.STSEndpoint, DefaultGCPSTSEndpoint) + "/v1/token"
	err = g.call(ctx, policy, ProviderGCPSTS, endpoint, "", body, &out, []string{subjectToken}, func() string {
		if out.AccessToken == "" {
			return "the token exchange answered without access_token"
		}
		return ""
	})
	if err != nil {
		return GCPFederatedToken{}, err
	}
	return GCPFederatedToken{AccessToken: out.AccessToken, IssuedTokenType: out.IssuedTokenType, TokenType: out.TokenType, ExpiresIn: out.ExpiresIn}, nil
}

// ServiceAccountAccessToken gets an access token (scope cloud-platform)
// of the service account email with a federated token, from IAM
// Credentials' generateAccessToken. The federated principal needs
// roles/iam.workloadIdentityUser on the account. lifetime is whole
// seconds, 0 for one hour (GCP allows up to one hour unless the
// organization extends it). Retries as ExchangeToken; a failure is a
// *ProviderError.
func (g *GCP) ServiceAccountAccessToken(ctx context.Context, federatedToken, email string, lifetime time.Duration, policy RetryPolicy) (GCPServiceAccountToken, error) {
	if lifetime <= 0 {
		lifetime = time.Hour
	}
	body, err := json.Marshal(map[string]any{
		"scope":    []string{gcpScopeCloudPlatform},
		"lifetime": fmt.Sprintf("%ds", int64(lifetime/time.Second)),
	})
	if err != nil {
		return GCPServiceAccountToken{}, err
	}
	var out struct {
		AccessToken string `json:"accessToken"`
		ExpireTime  string `json:"expireTime"`
	}
	var expires time.Time
	endpoint := baseURL(g.IAMCredentialsEndpoint, DefaultGCPIAMCredentialsEndpoint) +
		"/v1/projects/-/serviceAccounts/" + url.PathEscape(email) + ":generateAccessToken"
	err = g.call(ctx, policy, ProviderGCPIAMCredentials, endpoint, federatedToken, body, &out, []string{federatedToken}, func() string {
		if out.AccessToken == "" {
			return "generateAccessToken answered without accessToken"
		}
		t, err := time.Parse(time.RFC3339Nano, out.ExpireTime)
		if err != nil {
			return fmt.Sprintf("generateAccessToken answered an invalid expireTime %q", out.ExpireTime)
		}
		expires = t.UTC()
		return ""
	})
	if err != nil {
		return GCPServiceAccountToken{}, err
	}
	return GCPServiceAccountToken{AccessToken: out.AccessToken, ExpireTime: expires}, nil
}

func baseURL(u, def string) string {
	if u == "" {
		u = def
	}
	return strings.TrimRight(u, "/")
}

// maxResponse bounds what is read of an answer; Google's are small.
const maxResponse = 1 << 20

// call POSTs body to endpoint under policy and decodes a 2xx answer into
// out; check then validates out ("" when good). bearer, when set, is sent
// as the Authorization. secrets are removed from error messages.
func (g *GCP) call(ctx context.Context, policy RetryPolicy, provider, endpoint, bearer string, body []byte, out any, secrets []string, check func() string) error {
	client := g.HTTPClient
	if client == nil {
		client = http.DefaultClient
	}
	c := newCaller(g.MaxTotal, g.Sleep, g.now, g.rnd)
	return c.run(ctx, policy, func(ctx context.Context) *ProviderError {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
		if err != nil {
			return &ProviderError{Provider: provider, Message: redact(err.Error(), secrets...), Err: err}
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := client.Do(req)
		if err != nil {
			return &ProviderError{Provider: provider, Message: redact(err.Error(), secrets...), Retryable: transient(ctx, err), Err: err}
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
		if err != nil {
			// The answer broke off: the same as a broken connection.
			return &ProviderError{Provider: provider, StatusCode: resp.StatusCode, Message: redact(err.Error(), secrets...), Retryable: transient(ctx, err), Err: err}
		}
		if resp.StatusCode/100 != 2 {
			return gcpError(provider, resp.StatusCode, data, secrets)
		}
		if err := json.Unmarshal(data, out); err != nil {
			return &ProviderError{Provider: provider, StatusCode: resp.StatusCode, Code: "InvalidResponse", Message: "the answer is not the expected JSON: " + redact(err.Error(), secrets...), Err: err}
		}
		if msg := check(); msg != "" {
			return &ProviderError{Provider: provider, StatusCode: resp.StatusCode, Code: "InvalidResponse", Message: redact(msg, secrets...)}
		}
		return nil
	})
}

// gcpError reads an error answer. GCP's STS answers OAuth errors,
// {"error": "invalid_grant", "error_description": "..."}; IAM Credentials
// (and Google's front ends for both, e.g. for 429 and 503) answer
// {"error": {"code": 403, "message": "...", "status": "PERMISSION_DENIED"}}.
// Only 429 and 5xx are retryable: any other 4xx would be answered again.
func gcpError(provider string, status int, data []byte, secrets []string) *ProviderError {
	pe := &ProviderError{Provider: provider, StatusCode: status, Retryable: status == http.StatusTooManyRequests || status >= 500}
	var body struct {
		Error            json.RawMessage `json:"error"`
		ErrorDescription string          `json:"error_description"`
	}
	if json.Unmarshal(data, &body) == nil && len(body.Error) > 0 {
		var code string
		var google struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
			Status  string `json:"status"`
		}
		if json.Unmarshal(body.Error, &code) == nil {
			pe.Code, pe.Message = code, body.ErrorDescription
		} else if json.Unmarshal(body.Error, &google) == nil {
			pe.Code, pe.Message = google.Status, google.Message
		}
	}
	if pe.Code == "" && pe.Message == "" {
		pe.Message = strings.TrimSpace(string(data))
		if pe.Message == "" {
			pe.Message = http.StatusText(status)
		}
	}
	pe.Message = redact(pe.Message, secrets...)
	pe.Err = fmt.Errorf("%s answered HTTP %d %s", provider, status, pe.Code)
	return pe
}
