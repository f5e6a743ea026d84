package federation

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// DefaultAzureEndpoint is Microsoft Entra ID's login endpoint (the
// public cloud), the default authority of Azure exchanges.
const DefaultAzureEndpoint = "https://login.microsoftonline.com"

// AzureAudience is the audience Entra's workload identity federation
// expects in the ID token by default (a federated identity credential's
// "api://AzureADTokenExchange").
const AzureAudience = "api://AzureADTokenExchange"

// DefaultAzureScope is the scope of an exchange that names no resource:
// Azure Resource Manager.
const DefaultAzureScope = "https://management.azure.com/.default"

// Values of Entra's client credentials grant with a federated assertion.
const (
	azureGrantType     = "client_credentials"
	azureAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
)

// ProviderAzure names Entra ID's token endpoint in a ProviderError.
const ProviderAzure = "azure-entra"

// Azure exchanges ID tokens for Microsoft Entra access tokens through
// workload identity federation: the ID token is the client assertion of a
// client credentials grant for an app registration (or user-assigned
// managed identity) that has a federated identity credential trusting
// pipelined's issuer.
type Azure struct {
	// Endpoint is the authority's base URL; "" is DefaultAzureEndpoint.
	// Sovereign clouds have their own (https://login.microsoftonline.us,
	// https://login.chinacloudapi.cn).
	Endpoint string
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

// AzureToken is Entra's answer to a client credentials grant.
type AzureToken struct {
	AccessToken, TokenType string
	// ExpiresIn and ExtExpiresIn are lifetimes in seconds.
	ExpiresIn, ExtExpiresIn int
}

// AzureRequest is one exchange.
type AzureRequest struct {
	// TenantID is the directory (tenant) id, a GUID, or a verified
	// domain name of the tenant.
	TenantID string
	// ClientID is the application (client) id of the app registration or
	// managed identity, a GUID.
	ClientID string
	// Scope is the access token's scope, "<resource>/.default" ("":
	// DefaultAzureScope).
	Scope string
	// Assertion is the ID token. It is never put in an error.
	Assertion string
}

var (
	azureGUID   = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	azureDomain = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9-]{0,62}\.)+[a-zA-Z]{2,63}$`)
)

// CheckAzureTenant says what is wrong with a tenant id ("" when nothing):
// Entra takes a GUID or a verified domain; the multi-tenant aliases
// (common, organizations, consumers) cannot hold a federated credential.
func CheckAzureTenant(tenant string) string {
	if azureGUID.MatchString(tenant) || (len(tenant) <= 253 && azureDomain.MatchString(tenant)) {
		return ""
	}
	return "must be the directory (tenant) id, a GUID, or a verified domain name of the tenant"
}

// CheckAzureClient says what is wrong with a client id ("" when nothing).
func CheckAzureClient(client string) string {
	if azureGUID.MatchString(client) {
		return ""
	}
	return "must be the application (client) id of the app registration or managed identity, a GUID"
}

// AzureScope turns Harness's resource into an Entra v2 scope: an App ID
// URI or URL gets "/.default", a scope already ending in "/.default" stays,
// and "" is DefaultAzureScope. It says what is wrong otherwise.
func AzureScope(resource string) (string, string) {
	r := strings.TrimSpace(resource)
	switch {
	case r == "":
		return DefaultAzureScope, ""
	case len(r) > 1024:
		return "", "must be at most 1024 characters"
	case strings.ContainsFunc(r, func(c rune) bool { return c <= 0x20 || c == 0x7f }):
		return "", "must not contain spaces or control characters"
	case strings.HasSuffix(r, "/.default"):
		return r, ""
	}
	u, err := url.Parse(r)
	if err != nil || u.Scheme == "" || (u.Host == "" && u.Opaque == "") {
		return "", "must be a resource's App ID URI or URL (https://management.azure.com, api://<app>), optionally ending in /.default"
	}
	return strings.TrimRight(r, "/") + "/.default", ""
}

// ClientCredentials exchanges req.Assertion for an access token at
// POST {Endpoint}/{tenant}/oauth2/v2.0/token, retrying retryable failures
// under policy: network failures, 429, 5xx, Entra's
// temporarily_unavailable, and AADSTS50166 (Entra could not fetch the
// issuer's discovery document or keys). Every other refusal is final:
// invalid_client for an assertion no federated credential matches
// (AADSTS70021, 700211-700213), an expired assertion (AADSTS700024), an
// unknown tenant or client. A failure is a *ProviderError.
func (a *Azure) ClientCredentials(ctx context.Context, req AzureRequest, policy RetryPolicy) (AzureToken, error) {
	if msg := CheckAzureTenant(req.TenantID); msg != "" {
		return AzureToken{}, fmt.Errorf("federation: tenant: %s", msg)
	}
	if msg := CheckAzureClient(req.ClientID); msg != "" {
		return AzureToken{}, fmt.Errorf("federation: client id: %s", msg)
	}
	scope := req.Scope
	if scope == "" {
		scope = DefaultAzureScope
	}
	form := url.Values{
		"grant_type":            {azureGrantType},
		"client_id":             {req.ClientID},
		"client_assertion_type": {azureAssertionType},
		"client_assertion":      {req.Assertion},
		"scope":                 {scope},
	}.Encode()
	endpoint := baseURL(a.Endpoint, DefaultAzureEndpoint) + "/" + url.PathEscape(req.TenantID) + "/oauth2/v2.0/token"
	secrets := []string{req.Assertion}
	client := a.HTTPClient
	if client == nil {
		client = http.DefaultClient
	}
	var out AzureToken
	c := newCaller(a.MaxTotal, a.Sleep, a.now, a.rnd)
	err := c.run(ctx, policy, func(ctx context.Context) *ProviderError {
		hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form))
		if err != nil {
			return &ProviderError{Provider: ProviderAzure, Message: redact(err.Error(), secrets...), Err: err}
		}
		hreq.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		hreq.Header.Set("Accept", "application/json")
		resp, err := client.Do(hreq)
		if err != nil {
			return &ProviderError{Provider: ProviderAzure, Message: redact(err.Error(), secrets...), Retryable: transient(ctx, err), Err: err}
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
		if err != nil {
			return &ProviderError{Provider: ProviderAzure, StatusCode: resp.StatusCode, Message: redact(err.Error(), secrets...), Retryable: transient(ctx, err), Err: err}
		}
		if resp.StatusCode/100 != 2 {
			return azureError(resp.StatusCode, data, secrets)
		}
		var body struct {
			AccessToken  string      `json:"access_token"`
			TokenType    string      `json:"token_type"`
			ExpiresIn    json.Number `json:"expires_in"`
			ExtExpiresIn json.Number `json:"ext_expires_in"`
		}
		if err := json.Unmarshal(data, &body); err != nil {
			return &ProviderError{Provider: ProviderAzure, StatusCode: resp.StatusCode, Code: "InvalidResponse", Message: "the answer is not the expected JSON: " + redact(err.Error(), secrets...), Err: err}
		}
		if body.AccessToken == "" {
			return &ProviderError{Provider: ProviderAzure, StatusCode: resp.StatusCode, Code: "InvalidResponse", Message: "the token endpoint answered without access_token"}
		}
		// Entra answers numbers; v1 endpoints and some proxies answer
		// them as strings, which json.Number also takes.
		exp, err1 := body.ExpiresIn.Int64()
		ext, err2 := body.ExtExpiresIn.Int64()
		if err1 != nil || exp <= 0 {
			return &ProviderError{Provider: ProviderAzure, StatusCode: resp.StatusCode, Code: "InvalidResponse", Message: fmt.Sprintf("the token endpoint answered an invalid expires_in %q", body.ExpiresIn)}
		}
		if err2 != nil {
			ext = exp
		}
		out = AzureToken{AccessToken: body.AccessToken, TokenType: body.TokenType, ExpiresIn: int(exp), ExtExpiresIn: int(ext)}
		return nil
	})
	if err != nil {
		return AzureToken{}, err
	}
	return out, nil
}

// azureRetryableCodes are the AADSTS codes another attempt may pass:
// 50166, the request to the external OIDC endpoint (the issuer's
// discovery document or JWKS) failed.
var azureRetryableCodes = []int{50166}

// azureError reads an Entra error answer:
// {"error": "invalid_client", "error_description": "AADSTS70021: ...",
// "error_codes": [70021], "timestamp", "trace_id", "correlation_id",
// "error_uri"}. The code kept is "<error> AADSTS<n>" when Entra gave a
// number, so that the caller sees both.
func azureError(status int, data []byte, secrets []string) *ProviderError {
	pe := &ProviderError{Provider: ProviderAzure, StatusCode: status,
		Retryable: status == http.StatusTooManyRequests || status >= 500}
	var body struct {
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
		ErrorCodes       []int  `json:"error_codes"`
		TraceID          string `json:"trace_id"`
		CorrelationID    string `json:"correlation_id"`
	}
	if json.Unmarshal(data, &body) == nil && body.Error != "" {
		pe.Code = body.Error
		if len(body.ErrorCodes) > 0 {
			pe.Code += fmt.Sprintf(" AADSTS%d", body.ErrorCodes[0])
		}
		// The description repeats the trace and correlation ids and a
		// timestamp on lines of their own; the first line says it.
		desc, _, _ := strings.Cut(body.ErrorDescription, "\r\n")
		desc, _, _ = strings.Cut(desc, "\n")
		pe.Message = desc
		if body.TraceID != "" {
			pe.Message += " (Entra trace id " + body.TraceID + ")"
		}
		if body.Error == "temporarily_unavailable" || slices.ContainsFunc(body.ErrorCodes, func(c int) bool { return slices.Contains(azureRetryableCodes, c) }) {
			pe.Retryable = true
		}
	}
	if pe.Code == "" && pe.Message == "" {
		pe.Message = strings.TrimSpace(string(data))
		if pe.Message == "" {
			pe.Message = http.StatusText(status)
		}
	}
	pe.Message = redact(pe.Message, secrets...)
	pe.Err = fmt.Errorf("%s answered HTTP %d %s", ProviderAzure, status, pe.Code)
	return pe
}
