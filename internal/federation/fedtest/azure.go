package fedtest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// AzureAudience is the audience a federated identity credential expects
// by default.
const AzureAudience = "api://AzureADTokenExchange"

// AzureCredential is a federated identity credential of an app: the
// issuer, subject and audiences an assertion must carry.
type AzureCredential struct {
	Issuer, Subject string
	// Audiences: nil is [AzureAudience].
	Audiences []string
}

// AzureApp is an app registration (or user-assigned managed identity) of
// a tenant, with its federated identity credentials.
type AzureApp struct {
	TenantID, ClientID string
	Credentials        []AzureCredential
}

// AzureConfig configures a fake Entra ID.
type AzureConfig struct {
	// Issuer is the one issuer whose discovery document and JWKS the fake
	// fetches to verify assertions (required); credentials naming another
	// issuer never match a token that verifies.
	Issuer string
	Apps   []AzureApp
	// HTTPClient fetches the issuer's discovery document and JWKS (nil:
	// http.DefaultClient).
	HTTPClient *http.Client
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Azure is a fake of Microsoft Entra ID's token endpoint for workload
// identity federation: POST /{tenant}/oauth2/v2.0/token with
// grant_type=client_credentials and the ID token as a jwt-bearer client
// assertion. URL is the authority (in place of
// https://login.microsoftonline.com). It checks what Entra checks, in its
// order: the request's parameters, the tenant and the client, a federated
// credential matching the assertion's issuer, subject and audience, and
// the assertion's signature (discovery and JWKS over HTTP) and lifetime;
// and answers Entra's shapes, errors with AADSTS codes included.
type Azure struct {
	URL string

	cfg      AzureConfig
	verifier verifier

	recorder
	lastScope string
}

// Lifetime of the fake's access tokens (Entra's are about an hour).
const azureTokenLifetime = 3599

// NewAzure starts a fake Entra ID for the test.
func NewAzure(t testing.TB, cfg AzureConfig) *Azure {
	t.Helper()
	if cfg.Issuer == "" {
		t.Fatal("fedtest: AzureConfig.Issuer is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &Azure{cfg: cfg, verifier: verifier{issuer: cfg.Issuer, client: cfg.HTTPClient, now: cfg.Now}}
	srv := httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(srv.Close)
	a.URL = srv.URL
	return a
}

// LastScope is the scope of the last access token issued.
func (a *Azure) LastScope() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lastScope
}

var azureTokenPath = regexp.MustCompile(`^/([^/]+)/oauth2/v2\.0/token$`)

// aadstsCode splits a scripted code "<error> AADSTS<n>" (the form the
// client reports) into its parts.
func aadstsCode(code string) (string, int) {
	e, n, ok := strings.Cut(code, " AADSTS")
	if !ok {
		return code, 0
	}
	num, _ := strconv.Atoi(n)
	return e, num
}

func (a *Azure) serve(w http.ResponseWriter, r *http.Request) {
	m := azureTokenPath.FindStringSubmatch(r.URL.Path)
	if m == nil {
		http.NotFound(w, r)
		return
	}
	a.mu.Lock()
	f, failed := a.script.next()
	a.mu.Unlock()
	if failed {
		if f.status == 0 {
			dropConnection(w)
			return
		}
		e, n := aadstsCode(f.code)
		entraError(w, f.status, e, n, f.message)
		return
	}
	if r.Method != http.MethodPost {
		entraError(w, http.StatusMethodNotAllowed, "invalid_request", 900561, "The endpoint only accepts POST requests. Received a "+r.Method+" request.")
		return
	}
	a.token(w, r, m[1])
}

func (a *Azure) token(w http.ResponseWriter, r *http.Request, tenant string) {
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		entraError(w, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'.")
		return
	}
	p := r.PostForm
	if p.Get("grant_type") == "" {
		entraError(w, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'.")
		return
	}
	if p.Get("grant_type") != "client_credentials" {
		entraError(w, http.StatusBadRequest, "unsupported_grant_type", 70003, "The app requested an unsupported grant type '"+p.Get("grant_type")+"'.")
		return
	}
	if p.Get("client_id") == "" {
		entraError(w, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'.")
		return
	}
	if p.Get("client_assertion") == "" {
		entraError(w, http.StatusUnauthorized, "invalid_client", 7000216, "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.")
		return
	}
	if p.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
		entraError(w, http.StatusBadRequest, "invalid_request", 700025, "Client assertion type is invalid: expected urn:ietf:params:oauth:client-assertion-type:jwt-bearer.")
		return
	}
	scope := p.Get("scope")
	if scope == "" {
		entraError(w, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'scope'.")
		return
	}
	if !strings.HasSuffix(scope, "/.default") || strings.ContainsAny(scope, " ") {
		entraError(w, http.StatusBadRequest, "invalid_scope", 1002012, "The provided value for scope "+scope+" is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).")
		return
	}
	if !slices.ContainsFunc(a.cfg.Apps, func(app AzureApp) bool { return app.TenantID == tenant }) {
		entraError(w, http.StatusBadRequest, "invalid_request", 90002, "Tenant '"+tenant+"' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.")
		return
	}
	i := slices.IndexFunc(a.cfg.Apps, func(app AzureApp) bool { return app.TenantID == tenant && app.ClientID == p.Get("client_id") })
	if i < 0 {
		entraError(w, http.StatusBadRequest, "unauthorized_client", 700016, "Application with identifier '"+p.Get("client_id")+"' was not found in the directory '"+tenant+"'.")
		return
	}
	app := a.cfg.Apps[i]
	assertion := p.Get("client_assertion")
	unverified, ok := jwtClaims(assertion)
	if !ok {
		entraError(w, http.StatusBadRequest, "invalid_client", 50027, "JWT token is invalid or malformed.")
		return
	}
	iss, _ := unverified["iss"].(string)
	sub, _ := unverified["sub"].(string)
	var byIssuer []AzureCredential
	for _, c := range app.Credentials {
		if c.Issuer == iss {
			byIssuer = append(byIssuer, c)
		}
	}
	if len(byIssuer) == 0 {
		entraError(w, http.StatusBadRequest, "invalid_client", 700211, "No matching federated identity record found for presented assertion issuer '"+iss+"'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion.")
		return
	}
	var cred *AzureCredential
	for j := range byIssuer {
		if byIssuer[j].Subject == sub {
			cred = &byIssuer[j]
			break
		}
	}
	if cred == nil {
		entraError(w, http.StatusBadRequest, "invalid_client", 700213, "No matching federated identity record found for presented assertion subject '"+sub+"'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion.")
		return
	}
	wantAud := cred.Audiences
	if len(wantAud) == 0 {
		wantAud = []string{AzureAudience}
	}
	if !hasAudience(unverified, wantAud...) {
		entraError(w, http.StatusBadRequest, "invalid_client", 700212, fmt.Sprintf("No matching federated identity record found for presented assertion audience %q.", audiences(unverified)))
		return
	}
	// Only now the signature: Entra fetches the keys of the issuer the
	// matching credential names.
	claims, verr := a.verifier.verify(r.Context(), assertion)
	switch {
	case verr == nil:
	case verr.kind == issuerUnreachable:
		entraError(w, http.StatusBadRequest, "invalid_client", 50166, "Request to External OIDC endpoint failed.")
		return
	case verr.kind == expiredToken:
		entraError(w, http.StatusBadRequest, "invalid_client", 700024, "Client assertion is not within its valid time range. "+verr.msg)
		return
	default:
		entraError(w, http.StatusBadRequest, "invalid_client", 700027, "Client assertion failed signature validation. "+verr.msg)
		return
	}
	a.mu.Lock()
	a.claims = maps.Clone(claims)
	a.lastScope = scope
	a.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type":     "Bearer",
		"expires_in":     azureTokenLifetime,
		"ext_expires_in": azureTokenLifetime,
		"access_token":   "eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.fedtest-azure-" + randomID(48),
	})
}

// jwtClaims reads a JWT's payload without verifying it, as Entra does to
// find the federated credential before it fetches keys.
func jwtClaims(tok string) (map[string]any, bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, false
	}
	var claims map[string]any
	if json.Unmarshal(raw, &claims) != nil {
		return nil, false
	}
	return claims, true
}

// entraError answers an error in Entra's shape. code 0 leaves
// error_codes out (an error without an AADSTS number).
func entraError(w http.ResponseWriter, status int, e string, code int, msg string) {
	trace, corr := uuid.NewString(), uuid.NewString()
	now := time.Now().UTC().Format("2006-01-02 15:04:05Z")
	desc := msg
	body := map[string]any{"error": e, "timestamp": now, "trace_id": trace, "correlation_id": corr}
	if code != 0 {
		desc = fmt.Sprintf("AADSTS%d: %s", code, msg)
		body["error_codes"] = []int{code}
		body["error_uri"] = fmt.Sprintf("https://login.microsoftonline.com/error?code=%d", code)
	}
	body["error_description"] = desc + "\r\nTrace ID: " + trace + "\r\nCorrelation ID: " + corr + "\r\nTimestamp: " + now
	writeJSON(w, status, body)
}
