// Package oidcapi serves the token and credential-exchange endpoints of
// pipelined's workload identity, with the paths, request bodies and
// response envelope of Harness's OIDC API, so that clients written for
// Harness work with a base-URL change:
//
//	POST /ng/api/oidc/id-token/aws                                  an ID token for AWS
//	POST /ng/api/oidc/id-token/gcp                                  an ID token for a GCP workload identity provider
//	POST /ng/api/oidc/access-token/aws/webidentity-session-access   AWS credentials (STS AssumeRoleWithWebIdentity)
//	POST /ng/api/oidc/access-token/gcp/workload-access              a GCP federated access token (STS token exchange)
//	POST /ng/api/oidc/access-token/gcp/service-account-access       a GCP service account access token
//	POST /ng/api/oidc/id-token/azure                                an ID token for Microsoft Entra workload identity federation
//	POST /ng/api/oidc/access-token/azure                            an Entra access token (client credentials, the ID token as client assertion)
//
// Every request is made by a running job: "Authorization: Bearer
// <jobId>:<nonce>" (or the same value in Harness's x-api-key header); see
// internal/identity. Answers are Harness's envelope: {status: "SUCCESS",
// data, metaData, correlationId} or {status: "ERROR" | "FAILURE", code,
// message, correlationId, errors: [{fieldId, error}]}. The correlation id
// is also in the X-Correlation-Id response header and in the server's log
// line of the request, so that an operator can find a failure a user
// reports.
package oidcapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pipelined/pipelined/internal/federation"
	"github.com/pipelined/pipelined/internal/identity"
)

// PathPrefix is where the API is mounted.
const PathPrefix = "/ng/api/oidc/"

// Config configures the handler.
type Config struct {
	Identity  *identity.Service
	AWS       *federation.AWS
	GCP       *federation.GCP
	Azure     *federation.Azure
	AccountID string
	Logger    *slog.Logger
	// Registerer takes the endpoints' metrics (nil: not registered).
	Registerer prometheus.Registerer
}

// Handler serves the API.
type Handler struct {
	cfg      Config
	mux      *http.ServeMux
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// New returns the handler of PathPrefix.
func New(cfg Config) *Handler {
	h := &Handler{cfg: cfg, mux: http.NewServeMux(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pipelined_oidc_requests_total", Help: "Workload identity requests by endpoint and error code (empty: success).",
		}, []string{"endpoint", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "pipelined_oidc_request_duration_seconds", Help: "Workload identity request latency by endpoint (exchanges include the cloud provider's).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"endpoint"}),
	}
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(h.requests, h.duration)
	}
	h.route("id-token/aws", h.idTokenAWS)
	h.route("id-token/gcp", h.idTokenGCP)
	h.route("access-token/aws/webidentity-session-access", h.awsSession)
	h.route("access-token/gcp/workload-access", h.gcpWorkload)
	h.route("access-token/gcp/service-account-access", h.gcpServiceAccount)
	h.route("id-token/azure", h.idTokenAzure)
	h.route("access-token/azure", h.azureAccess)
	return h
}

// call is one request being served.
type call struct {
	r             *http.Request
	correlationID string
	run           *identity.Run
	log           *slog.Logger
}

// apiError is a failure answered with the error envelope.
type apiError struct {
	status  int
	code    string
	message string
	fields  []fieldError
	cause   error // logged, never answered
}

func (e *apiError) Error() string { return e.message }

type fieldError struct {
	FieldID string `json:"fieldId"`
	Error   string `json:"error"`
}

func badRequest(fields ...fieldError) *apiError {
	msgs := make([]string, len(fields))
	for i, f := range fields {
		msgs[i] = f.FieldID + ": " + f.Error
	}
	return &apiError{status: http.StatusBadRequest, code: "INVALID_REQUEST", message: "Invalid request: " + strings.Join(msgs, "; "), fields: fields}
}

// maxBody bounds a request body: the largest valid one is a token (a few
// kilobytes) and a few short strings.
const maxBody = 64 << 10

func (h *Handler) route(path string, fn func(c *call, body []byte) (any, error)) {
	h.mux.HandleFunc(PathPrefix+path, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		defer func() { h.duration.WithLabelValues(path).Observe(time.Since(start).Seconds()) }()
		c := &call{r: r, correlationID: uuid.NewString()}
		c.log = h.cfg.Logger.With("correlation_id", c.correlationID, "path", r.URL.Path)
		w.Header().Set("X-Correlation-Id", c.correlationID)
		data, err := h.serve(c, fn)
		if err != nil {
			h.requests.WithLabelValues(path, h.fail(w, c, err)).Inc()
			return
		}
		h.requests.WithLabelValues(path, "").Inc()
		writeJSON(w, http.StatusOK, map[string]any{"status": "SUCCESS", "data": data, "metaData": nil, "correlationId": c.correlationID})
	})
}

func (h *Handler) serve(c *call, fn func(c *call, body []byte) (any, error)) (any, error) {
	r := c.r
	if r.Method != http.MethodPost {
		return nil, &apiError{status: http.StatusMethodNotAllowed, code: "METHOD_NOT_ALLOWED", message: r.Method + " is not allowed: use POST"}
	}
	if err := h.authenticate(c); err != nil {
		return nil, err
	}
	if acct := r.URL.Query().Get("accountIdentifier"); acct != "" && acct != h.cfg.AccountID {
		return nil, badRequest(fieldError{"accountIdentifier", fmt.Sprintf("is %q; this server's account is %q", acct, h.cfg.AccountID)})
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, &apiError{status: http.StatusRequestEntityTooLarge, code: "INVALID_REQUEST", message: fmt.Sprintf("The request body is larger than %d bytes", maxBody)}
		}
		return nil, badRequest(fieldError{"body", "could not be read"})
	}
	return fn(c, body)
}

// authenticate finds the running job the request is made for.
func (h *Handler) authenticate(c *call) error {
	tok, ok := bearer(c.r)
	if !ok {
		return &apiError{status: http.StatusUnauthorized, code: "UNAUTHORIZED",
			message: "Missing credentials: send \"Authorization: Bearer <jobId>:<nonce>\" (or the same in x-api-key) of an acknowledged, in-progress job"}
	}
	jobID, nonce, _ := identity.ParseRequestToken(tok)
	run, err := h.cfg.Identity.Authenticate(c.r.Context(), jobID, nonce)
	switch {
	case errors.Is(err, identity.ErrUnauthenticated):
		return &apiError{status: http.StatusUnauthorized, code: "UNAUTHORIZED", message: "The credentials are not those of a job (job id and its current nonce)"}
	case errors.Is(err, identity.ErrJobNotRunning):
		return &apiError{status: http.StatusForbidden, code: "ACCESS_DENIED", message: fmt.Sprintf("Job %s is not in progress: ID tokens are issued only to acknowledged jobs that have not reported a result", jobID)}
	case err != nil:
		return err
	}
	c.run = run
	c.log = c.log.With("job_id", run.JobID(), "pipeline", run.Job.Pipeline)
	return nil
}

func bearer(r *http.Request) (string, bool) {
	if auth := r.Header.Get("Authorization"); auth != "" {
		scheme, tok, ok := strings.Cut(auth, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
			return "", false
		}
		return strings.TrimSpace(tok), true
	}
	if k := r.Header.Get("X-Api-Key"); k != "" {
		return k, true
	}
	return "", false
}

// fail answers the error envelope and returns its code.
func (h *Handler) fail(w http.ResponseWriter, c *call, err error) string {
	var ae *apiError
	if !errors.As(err, &ae) {
		// Unexpected (the store): logged with its cause, answered plainly.
		ae = &apiError{status: http.StatusInternalServerError, code: "UNEXPECTED", message: "Internal error; the server's log has the details under this correlationId", cause: err}
	}
	status := "ERROR"
	if ae.status >= 500 {
		status = "FAILURE"
	}
	level := slog.LevelInfo
	if ae.status >= 500 {
		level = slog.LevelError
	}
	attrs := []any{"status", ae.status, "code", ae.code, "message", ae.message}
	if ae.cause != nil {
		attrs = append(attrs, "err", ae.cause)
	}
	c.log.Log(c.r.Context(), level, "oidc request failed", attrs...)
	fields := ae.fields
	if fields == nil {
		fields = []fieldError{}
	}
	writeJSON(w, ae.status, map[string]any{
		"status": status, "code": ae.code, "message": ae.message, "correlationId": c.correlationID, "errors": fields,
	})
	return ae.code
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encode response", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store") // tokens and credentials
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, pattern := h.mux.Handler(r); pattern == "" {
		c := &call{r: r, correlationID: uuid.NewString(), log: h.cfg.Logger}
		w.Header().Set("X-Correlation-Id", c.correlationID)
		h.fail(w, c, &apiError{status: http.StatusNotFound, code: "RESOURCE_NOT_FOUND", message: "No such endpoint: " + r.URL.Path})
		return
	}
	h.mux.ServeHTTP(w, r)
}

// ---------------------------------------------------------------------------
// Request bodies
// ---------------------------------------------------------------------------

// harnessAttributes are the keys of Harness's
// oidcIdTokenCustomAttributesStructure.
var harnessAttributes = []string{
	"account_id", "organization_id", "project_id", "pipeline_id", "environment_id", "environment_type",
	"connector_id", "connector_name", "service_id", "service_name", "triggered_by_name", "trigger_by_email",
	"stage_type", "step_type", "context",
}

type awsDTO struct {
	AccountID  string            `json:"accountId"`
	Attributes map[string]string `json:"oidcIdTokenCustomAttributesStructure"`
}

type gcpDTO struct {
	AccountID           string            `json:"accountId"`
	WorkloadPoolID      string            `json:"workloadPoolId"`
	ProviderID          string            `json:"providerId"`
	GcpProjectID        string            `json:"gcpProjectId"`
	ServiceAccountEmail string            `json:"serviceAccountEmail"`
	Attributes          map[string]string `json:"oidcIdTokenCustomAttributesStructure"`
}

type idTokenAWSRequest struct {
	// Audience is pipelined's addition: the aud claim (default
	// sts.amazonaws.com).
	Audience string  `json:"audience"`
	DTO      *awsDTO `json:"awsOidcTokenRequestDto"`
	// Lifetime is pipelined's addition: the token's lifetime in seconds
	// (see parseLifetime).
	Lifetime json.RawMessage `json:"lifetime"`
}

type idTokenGCPRequest struct {
	DTO      *gcpDTO         `json:"gcpOidcTokenRequestDTO"`
	Lifetime json.RawMessage `json:"lifetime"`
}

type awsSessionRequest struct {
	OidcIDToken string                      `json:"oidcIdToken"`
	IamRoleArn  string                      `json:"iamRoleArn"`
	RetryPolicy *federation.RetryPolicyJSON `json:"retryPolicy"`
	DTO         *awsDTO                     `json:"awsOidcTokenRequestDto"`
}

type gcpAccessRequest struct {
	OidcIDToken string                      `json:"oidcIdToken"`
	RetryPolicy *federation.RetryPolicyJSON `json:"retryPolicy"`
	DTO         *gcpDTO                     `json:"gcpOidcTokenRequestDTO"`
}

// decode decodes a body strictly: an unknown field or a wrong type is a
// field error naming it. An empty body is an empty request.
func decode(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	err := d.Decode(v)
	if err == nil {
		if d.More() {
			return badRequest(fieldError{"body", "must be one JSON object"})
		}
		return nil
	}
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "body"
		}
		return badRequest(fieldError{field, "must be a JSON " + jsonKind(te.Type.Kind().String())})
	case errors.As(err, &se):
		return badRequest(fieldError{"body", fmt.Sprintf("is not valid JSON (at byte %d)", se.Offset)})
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return badRequest(fieldError{name, "is not a field of this request"})
	}
	return badRequest(fieldError{"body", "is not a valid request: " + err.Error()})
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "map", "struct":
		return "object"
	case "slice":
		return "array"
	case "int", "int64", "float64":
		return "number"
	}
	return "value of another type"
}

// checkAccount validates an accountId: this server's, or empty.
func (h *Handler) checkAccount(path, acct string) []fieldError {
	if acct != "" && acct != h.cfg.AccountID {
		return []fieldError{{path, fmt.Sprintf("is %q; this server's account is %q", acct, h.cfg.AccountID)}}
	}
	return nil
}

// checkAttributes validates asserted claims against the token's claims.
func checkAttributes(path string, attrs map[string]string, c *identity.Claims) []fieldError {
	var errs []fieldError
	known := map[string]string{}
	for k, v := range attrs {
		if !slices.Contains(harnessAttributes, k) {
			errs = append(errs, fieldError{path + "." + k, "is not an attribute of oidcIdTokenCustomAttributesStructure"})
			continue
		}
		known[k] = v
	}
	bad := identity.Asserted(c, known)
	keys := make([]string, 0, len(bad))
	for k := range bad {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		errs = append(errs, fieldError{path + "." + k, bad[k]})
	}
	slices.SortFunc(errs, func(a, b fieldError) int { return strings.Compare(a.FieldID, b.FieldID) })
	return errs
}

// ---------------------------------------------------------------------------
// Endpoints
// ---------------------------------------------------------------------------

// mint signs a token for the calling job after checking the asserted
// attributes; it logs the token's id, never the token.
func (h *Handler) mint(c *call, audience, attrPath string, attrs map[string]string, errs []fieldError, lifetime time.Duration) (string, *identity.Claims, error) {
	if err := identity.CheckAudience(audience); err != nil {
		errs = append(errs, fieldError{"audience", err.Error()})
	}
	if len(errs) > 0 {
		return "", nil, badRequest(errs...)
	}
	claims, err := h.cfg.Identity.ClaimsForLifetime(c.r.Context(), c.run, audience, lifetime)
	if err != nil {
		return "", nil, err
	}
	if errs := checkAttributes(attrPath, attrs, claims); len(errs) > 0 {
		return "", nil, badRequest(errs...)
	}
	tok, _, err := h.cfg.Identity.Sign(c.r.Context(), claims)
	if err != nil {
		return "", nil, err
	}
	c.log.Info("issued an ID token", "jti", claims.ID, "aud", claims.Audience, "sub", claims.Subject, "exp", claims.Expiry)
	return tok, claims, nil
}

func (h *Handler) idTokenAWS(c *call, body []byte) (any, error) {
	var req idTokenAWSRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	var attrs map[string]string
	lifetime, errs := h.parseLifetime(req.Lifetime)
	if req.DTO != nil {
		errs = append(errs, h.checkAccount("awsOidcTokenRequestDto.accountId", req.DTO.AccountID)...)
		attrs = req.DTO.Attributes
	}
	tok, _, err := h.mint(c, req.Audience, "awsOidcTokenRequestDto.oidcIdTokenCustomAttributesStructure", attrs, errs, lifetime)
	return tok, err
}

// gcpFields validates a GCP DTO; serviceAccount says whether the service
// account email is required.
func (h *Handler) gcpFields(d *gcpDTO, serviceAccount bool) []fieldError {
	const p = "gcpOidcTokenRequestDTO"
	if d == nil {
		return []fieldError{{p, "is required"}}
	}
	errs := h.checkAccount(p+".accountId", d.AccountID)
	if !projectNumber.MatchString(d.GcpProjectID) {
		errs = append(errs, fieldError{p + ".gcpProjectId", "is required: the project number (digits) of the workload identity pool's project"})
	}
	if !gcpID.MatchString(d.WorkloadPoolID) {
		errs = append(errs, fieldError{p + ".workloadPoolId", "is required: 4 to 32 lowercase letters, digits or hyphens"})
	}
	if !gcpID.MatchString(d.ProviderID) {
		errs = append(errs, fieldError{p + ".providerId", "is required: 4 to 32 lowercase letters, digits or hyphens"})
	}
	switch {
	case serviceAccount && !serviceAccountEmail.MatchString(d.ServiceAccountEmail):
		errs = append(errs, fieldError{p + ".serviceAccountEmail", "is required: a service account email (name@project.iam.gserviceaccount.com)"})
	case !serviceAccount && d.ServiceAccountEmail != "":
		errs = append(errs, fieldError{p + ".serviceAccountEmail", "is only for service-account-access"})
	}
	return errs
}

var (
	projectNumber       = regexp.MustCompile(`^[0-9]{1,20}$`)
	gcpID               = regexp.MustCompile(`^[a-z0-9-]{4,32}$`)
	serviceAccountEmail = regexp.MustCompile(`^[a-zA-Z0-9._%+-]{1,100}@[a-zA-Z0-9.-]{1,200}$`)
	roleARN             = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]{1,512}$`)
)

func (h *Handler) idTokenGCP(c *call, body []byte) (any, error) {
	var req idTokenGCPRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	lifetime, errs := h.parseLifetime(req.Lifetime)
	errs = append(errs, h.gcpFields(req.DTO, false)...)
	var aud string
	var attrs map[string]string
	if req.DTO != nil {
		aud = federation.Audience(req.DTO.GcpProjectID, req.DTO.WorkloadPoolID, req.DTO.ProviderID)
		attrs = req.DTO.Attributes
	}
	tok, _, err := h.mint(c, aud, "gcpOidcTokenRequestDTO.oidcIdTokenCustomAttributesStructure", attrs, errs, lifetime)
	return tok, err
}

// subjectToken is the token an exchange presents: the caller's, verified
// to be this issuer's and the calling job's, or one minted now.
func (h *Handler) subjectToken(c *call, given, audience, attrPath string, attrs map[string]string, errs []fieldError) (string, error) {
	if given == "" {
		tok, _, err := h.mint(c, audience, attrPath, attrs, errs, 0)
		return tok, err
	}
	claims, err := h.cfg.Identity.VerifyFor(c.r.Context(), c.run, given)
	if err != nil {
		errs = append(errs, fieldError{"oidcIdToken", tokenProblem(err)})
		return "", badRequest(errs...)
	}
	if audience != "" && claims.Audience != audience {
		errs = append(errs, fieldError{"oidcIdToken", fmt.Sprintf("has audience %q; this exchange needs %q", claims.Audience, audience)})
	}
	errs = append(errs, checkAttributes(attrPath, attrs, claims)...)
	if len(errs) > 0 {
		return "", badRequest(errs...)
	}
	return given, nil
}

// tokenProblem says why a given token was refused, without echoing it.
func tokenProblem(err error) string {
	if errors.Is(err, identity.ErrForeignToken) {
		return "was issued to another job"
	}
	return "is not a valid, unexpired ID token of this issuer: " + err.Error()
}

func (h *Handler) awsSession(c *call, body []byte) (any, error) {
	var req awsSessionRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	var errs []fieldError
	if !roleARN.MatchString(req.IamRoleArn) {
		errs = append(errs, fieldError{"iamRoleArn", "is required: an IAM role ARN (arn:aws:iam::<account>:role/<name>)"})
	}
	policy, perrs := federation.ParseRetryPolicy(req.RetryPolicy)
	for _, e := range perrs {
		errs = append(errs, fieldError{e.Field, e.Message})
	}
	var attrs map[string]string
	if req.DTO != nil {
		errs = append(errs, h.checkAccount("awsOidcTokenRequestDto.accountId", req.DTO.AccountID)...)
		attrs = req.DTO.Attributes
	}
	tok, err := h.subjectToken(c, req.OidcIDToken, "", "awsOidcTokenRequestDto.oidcIdTokenCustomAttributesStructure", attrs, errs)
	if err != nil {
		return nil, err
	}
	creds, err := h.cfg.AWS.AssumeRoleWithWebIdentity(c.r.Context(), federation.AssumeRoleInput{
		RoleARN: req.IamRoleArn, SessionName: "pipelined-" + c.run.JobID(), WebIdentityToken: tok,
		// A new IAM OIDC provider takes seconds to reach STS: while it does,
		// STS answers InvalidIdentityToken about the provider, which a retry
		// policy may wait out (never one about the token itself).
		RetryInvalidIdentityToken: true,
	}, policy)
	if err != nil {
		return nil, providerFailure(err)
	}
	c.log.Info("exchanged an ID token for AWS credentials", "role_arn", req.IamRoleArn, "access_key_id", creds.AccessKeyID, "expiration", creds.Expiration)
	return map[string]any{
		"access_key": creds.AccessKeyID, "secret_access_key": creds.SecretAccessKey, "session_token": creds.SessionToken,
		"expiration": creds.Expiration.Unix(),
	}, nil
}

func (h *Handler) gcpWorkload(c *call, body []byte) (any, error) {
	fed, _, err := h.gcpExchange(c, body, false)
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"access_token": fed.AccessToken, "issued_token_type": fed.IssuedTokenType, "token_type": fed.TokenType, "expires_in": fed.ExpiresIn,
	}, nil
}

func (h *Handler) gcpServiceAccount(c *call, body []byte) (any, error) {
	fed, req, err := h.gcpExchange(c, body, true)
	if err != nil {
		return nil, err
	}
	sa, err := h.cfg.GCP.ServiceAccountAccessToken(c.r.Context(), fed.AccessToken, req.DTO.ServiceAccountEmail, 0, req.policy)
	if err != nil {
		return nil, providerFailure(err)
	}
	c.log.Info("issued a GCP service account token", "service_account", req.DTO.ServiceAccountEmail, "expire_time", sa.ExpireTime)
	return map[string]any{"accessToken": sa.AccessToken, "expireTime": sa.ExpireTime.UTC().Format(time.RFC3339)}, nil
}

type gcpRequest struct {
	gcpAccessRequest
	policy federation.RetryPolicy
}

// gcpExchange validates a GCP access request and exchanges the subject
// token at GCP's STS.
func (h *Handler) gcpExchange(c *call, body []byte, serviceAccount bool) (federation.GCPFederatedToken, *gcpRequest, error) {
	var req gcpRequest
	if err := decode(body, &req.gcpAccessRequest); err != nil {
		return federation.GCPFederatedToken{}, nil, err
	}
	errs := h.gcpFields(req.DTO, serviceAccount)
	policy, perrs := federation.ParseRetryPolicy(req.RetryPolicy)
	for _, e := range perrs {
		errs = append(errs, fieldError{e.Field, e.Message})
	}
	req.policy = policy
	var aud string
	var attrs map[string]string
	if req.DTO != nil {
		aud = federation.Audience(req.DTO.GcpProjectID, req.DTO.WorkloadPoolID, req.DTO.ProviderID)
		attrs = req.DTO.Attributes
	}
	if len(errs) > 0 {
		return federation.GCPFederatedToken{}, nil, badRequest(errs...)
	}
	tok, err := h.subjectToken(c, req.OidcIDToken, aud, "gcpOidcTokenRequestDTO.oidcIdTokenCustomAttributesStructure", attrs, nil)
	if err != nil {
		return federation.GCPFederatedToken{}, nil, err
	}
	fed, err := h.cfg.GCP.ExchangeToken(c.r.Context(), aud, tok, policy)
	if err != nil {
		return federation.GCPFederatedToken{}, nil, providerFailure(err)
	}
	c.log.Info("exchanged an ID token at GCP STS", "audience", aud)
	return fed, &req, nil
}

// providerFailure answers a cloud provider's failure: 502, with the
// provider's error code and message (which never contain the token).
func providerFailure(err error) error {
	var pe *federation.ProviderError
	if errors.As(err, &pe) {
		msg := fmt.Sprintf("%s refused or failed the exchange after %d attempt(s): %s", pe.Provider, pe.Attempts, pe.Code)
		if pe.Message != "" {
			msg += ": " + pe.Message
		}
		return &apiError{status: http.StatusBadGateway, code: "CLOUD_PROVIDER_ERROR", message: msg, cause: err}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &apiError{status: http.StatusGatewayTimeout, code: "CLOUD_PROVIDER_ERROR", message: "The cloud provider did not answer in time", cause: err}
	}
	return &apiError{status: http.StatusBadGateway, code: "CLOUD_PROVIDER_ERROR", message: "The cloud provider could not be reached", cause: err}
}
