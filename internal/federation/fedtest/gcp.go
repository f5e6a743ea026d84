package fedtest

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// GCPProvider names a workload identity pool provider.
type GCPProvider struct {
	ProjectNumber, PoolID, ProviderID string
}

// Audience is the provider's full resource name, the audience of the
// token exchange and of the ID token.
func (p GCPProvider) Audience() string {
	return "//iam.googleapis.com/projects/" + p.ProjectNumber + "/locations/global/workloadIdentityPools/" + p.PoolID + "/providers/" + p.ProviderID
}

// GCPConfig configures a fake GCP.
type GCPConfig struct {
	// Issuer is the issuer of every provider's ID tokens (required).
	Issuer string
	// Providers are the pool providers that exist; a token exchange for
	// another audience answers invalid_target.
	Providers []GCPProvider
	// ServiceAccounts are the emails federated tokens may get access
	// tokens of (the roles/iam.workloadIdentityUser bindings).
	ServiceAccounts []string
	// AttributeCondition, when set, emulates the provider's attribute
	// condition: a non-nil error refuses the exchange (400 invalid_grant).
	AttributeCondition func(claims map[string]any) error
	// Conditions, when set, narrows the bindings per principal: a non-nil
	// error refuses generateAccessToken (403 PERMISSION_DENIED). It sees
	// the claims of the ID token the federated token came from.
	Conditions func(claims map[string]any, serviceAccount string) error
	// HTTPClient fetches the issuer's discovery document and JWKS (nil:
	// http.DefaultClient).
	HTTPClient *http.Client
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// GCP is a fake of GCP's STS (POST /v1/token) and IAM Credentials (POST
// /v1/projects/-/serviceAccounts/{email}:generateAccessToken) on one
// server: URL serves as both base URLs.
type GCP struct {
	// URL is the base URL of both APIs.
	URL string

	cfg      GCPConfig
	verifier verifier

	recorder
	federated map[string]gcpFederated // by token
	lastSA    string
}

type gcpFederated struct {
	claims  map[string]any
	expires time.Time
}

// Lifetimes of the fake's tokens, GCP's defaults.
const (
	federatedTokenLifetime = time.Hour
	maxAccessTokenLifetime = time.Hour
)

// NewGCP starts a fake GCP for the test.
func NewGCP(t testing.TB, cfg GCPConfig) *GCP {
	t.Helper()
	if cfg.Issuer == "" {
		t.Fatal("fedtest: GCPConfig.Issuer is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	g := &GCP{
		cfg:       cfg,
		verifier:  verifier{issuer: cfg.Issuer, client: cfg.HTTPClient, now: cfg.Now},
		federated: map[string]gcpFederated{},
	}
	srv := httptest.NewServer(http.HandlerFunc(g.serve))
	t.Cleanup(srv.Close)
	g.URL = srv.URL
	return g
}

// LastServiceAccount is the email of the last access token issued.
func (g *GCP) LastServiceAccount() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.lastSA
}

var generateAccessTokenPath = regexp.MustCompile(`^/v1/projects/-/serviceAccounts/([^/]+):generateAccessToken$`)

func (g *GCP) serve(w http.ResponseWriter, r *http.Request) {
	isSTS := r.URL.Path == "/v1/token"
	m := generateAccessTokenPath.FindStringSubmatch(r.URL.Path)
	if !isSTS && m == nil {
		googleError(w, http.StatusNotFound, "NOT_FOUND", "The requested URL was not found on this server.")
		return
	}
	g.mu.Lock()
	f, failed := g.script.next()
	g.mu.Unlock()
	if failed {
		switch {
		case f.status == 0:
			dropConnection(w)
		case isSTS:
			oauthError(w, f.status, f.code, f.message)
		default:
			googleError(w, f.status, f.code, f.message)
		}
		return
	}
	if r.Method != http.MethodPost {
		googleError(w, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "use POST")
		return
	}
	if isSTS {
		g.exchange(w, r)
	} else {
		g.generateAccessToken(w, r, m[1])
	}
}

// exchangeParams reads a token exchange, as JSON (camelCase or
// snake_case names, both of which Google's JSON mapping accepts) or as a
// form.
func exchangeParams(r *http.Request) (map[string]string, error) {
	out := map[string]string{}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "application/json" {
		var body map[string]any
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil {
			return nil, fmt.Errorf("invalid JSON body: %v", err)
		}
		for k, v := range body {
			s, ok := v.(string)
			if !ok {
				return nil, fmt.Errorf("%s must be a string", k)
			}
			out[snakeCase(k)] = s
		}
		return out, nil
	}
	if err := r.ParseForm(); err != nil {
		return nil, err
	}
	for k := range r.PostForm {
		out[k] = r.PostForm.Get(k)
	}
	return out, nil
}

// snakeCase turns grantType into grant_type.
func snakeCase(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (g *GCP) exchange(w http.ResponseWriter, r *http.Request) {
	p, err := exchangeParams(r)
	if err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	if p["grant_type"] != "urn:ietf:params:oauth:grant-type:token-exchange" {
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", fmt.Sprintf("Unsupported grant_type %q", p["grant_type"]))
		return
	}
	if p["requested_token_type"] != "urn:ietf:params:oauth:token-type:access_token" {
		oauthError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("Invalid requested_token_type %q", p["requested_token_type"]))
		return
	}
	switch p["subject_token_type"] {
	case "urn:ietf:params:oauth:token-type:jwt", "urn:ietf:params:oauth:token-type:id_token":
	default:
		oauthError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("Invalid subject_token_type %q", p["subject_token_type"]))
		return
	}
	if p["subject_token"] == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "subject_token is required")
		return
	}
	audience := p["audience"]
	if !slices.ContainsFunc(g.cfg.Providers, func(pr GCPProvider) bool { return pr.Audience() == audience }) {
		oauthError(w, http.StatusBadRequest, "invalid_target", "The target service indicated by the \"audience\" parameters is invalid. This might either be because the pool or provider is disabled or deleted or because it doesn't exist.")
		return
	}
	claims, verr := g.verifier.verify(r.Context(), p["subject_token"])
	if verr != nil {
		oauthError(w, http.StatusBadRequest, "invalid_grant", verr.msg)
		return
	}
	// The ID token must be meant for this provider: its full name, or
	// the https: form that GCP allows by default too.
	if !hasAudience(claims, audience, "https:"+audience) {
		oauthError(w, http.StatusBadRequest, "invalid_grant", fmt.Sprintf("The audience in ID Token %q does not match the expected audience %s.", audiences(claims), audience))
		return
	}
	g.mu.Lock()
	g.claims = claims
	g.mu.Unlock()
	if g.cfg.AttributeCondition != nil {
		if err := g.cfg.AttributeCondition(maps.Clone(claims)); err != nil {
			oauthError(w, http.StatusBadRequest, "invalid_grant", "The given credential is rejected by the attribute condition: "+err.Error())
			return
		}
	}
	token := "ya29.fedtest-federated-" + randomID(48)
	g.mu.Lock()
	g.federated[token] = gcpFederated{claims: claims, expires: g.cfg.Now().Add(federatedTokenLifetime)}
	g.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token":      token,
		"issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
		"token_type":        "Bearer",
		"expires_in":        int(federatedTokenLifetime / time.Second),
	})
}

func (g *GCP) generateAccessToken(w http.ResponseWriter, r *http.Request, escapedEmail string) {
	email, err := url.PathUnescape(escapedEmail)
	if err != nil {
		googleError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "invalid service account name")
		return
	}
	bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	g.mu.Lock()
	fed, known := g.federated[bearer]
	g.mu.Unlock()
	if !ok || !known || g.cfg.Now().After(fed.expires) {
		googleError(w, http.StatusUnauthorized, "UNAUTHENTICATED", "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.")
		return
	}
	denied := !slices.Contains(g.cfg.ServiceAccounts, email)
	if !denied && g.cfg.Conditions != nil {
		denied = g.cfg.Conditions(maps.Clone(fed.claims), email) != nil
	}
	if denied {
		googleError(w, http.StatusForbidden, "PERMISSION_DENIED", "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).")
		return
	}
	var body struct {
		Scope    []string `json:"scope"`
		Lifetime string   `json:"lifetime"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil {
		googleError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "Invalid JSON payload received.")
		return
	}
	if len(body.Scope) == 0 {
		googleError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "Scope required.")
		return
	}
	lifetime := maxAccessTokenLifetime
	if body.Lifetime != "" {
		n, err := strconv.Atoi(strings.TrimSuffix(body.Lifetime, "s"))
		if err != nil || !strings.HasSuffix(body.Lifetime, "s") || n < 1 || time.Duration(n)*time.Second > maxAccessTokenLifetime {
			googleError(w, http.StatusBadRequest, "INVALID_ARGUMENT", fmt.Sprintf("Invalid lifetime %q: must be between 1s and 3600s.", body.Lifetime))
			return
		}
		lifetime = time.Duration(n) * time.Second
	}
	g.mu.Lock()
	g.lastSA = email
	g.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"accessToken": "ya29.fedtest-sa-" + randomID(48),
		"expireTime":  g.cfg.Now().Add(lifetime).UTC().Format(time.RFC3339),
	})
}

// oauthError answers an error of GCP's STS, in OAuth 2.0's shape.
func oauthError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

// googleError answers an error of a Google API, in its JSON shape.
func googleError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"code": status, "message": msg, "status": code}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
