// Package admin is pipelined's operator API: what CodePipeline's own API has
// no operation for because AWS does it behind the scenes. It registers
// third-party action types, issues and revokes the clientId/clientToken
// pairs that partners use with the third-party job protocol, and issues and
// revokes worker keys: access key pairs that sign the job-protocol calls of
// one Custom or ThirdParty action type and nothing else.
//
// It is served on the server's listener under /admin/v1/, speaks JSON, and
// every request must be signed with SigV4 by the root credentials for the
// signing service "pipelined" (SigningService) in the server's region; any
// other key the server knows (a worker key) is refused. The
// `pipelined admin` subcommand is its client.
//
//	POST   /admin/v1/third-party-action-types                          register (idempotent)
//	DELETE /admin/v1/third-party-action-types/{category}/{provider}/{version}
//	POST   /admin/v1/clients                                           issue a client pair
//	GET    /admin/v1/clients[?pipelineName=P]                          list clients (never tokens)
//	GET    /admin/v1/clients/{clientId}                                describe one
//	DELETE /admin/v1/clients/{clientId}                                revoke
//	POST   /admin/v1/worker-keys                                       issue a worker key (the only answer with its secret)
//	GET    /admin/v1/worker-keys                                       list worker keys (never secrets)
//	GET    /admin/v1/worker-keys/{accessKeyId}                         describe one
//	DELETE /admin/v1/worker-keys/{accessKeyId}                         revoke (idempotent)
//	POST   /admin/v1/console-users                                     create a console user (a generated password is answered once)
//	GET    /admin/v1/console-users                                     list console users (never passwords)
//	GET    /admin/v1/console-users/{name}                              describe one
//	PATCH  /admin/v1/console-users/{name}                              change role, disable/enable, set or reset the password
//	POST   /admin/v1/connection-credentials                            set a connection's credentials (never shown again)
//
// Errors are JSON, {"code": "...", "message": "..."}, with an HTTP status
// that says what kind of failure it is (400, 401, 403, 404, 405, 409, 413,
// 500).
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/pipelined/pipelined/internal/actiontypes"
	"github.com/pipelined/pipelined/internal/awsjson"
	"github.com/pipelined/pipelined/internal/caller"
	"github.com/pipelined/pipelined/internal/connections"
	"github.com/pipelined/pipelined/internal/consoleusers"
	"github.com/pipelined/pipelined/internal/sigv4"
	"github.com/pipelined/pipelined/internal/store"
	"github.com/pipelined/pipelined/internal/wire"
	"github.com/pipelined/pipelined/internal/workerkeys"
)

// SigningService is the SigV4 service name admin requests are signed for.
const SigningService = "pipelined"

// PathPrefix is where the admin API is mounted.
const PathPrefix = "/admin/v1/"

// maxBody bounds a request body; admin requests are small.
const maxBody = 1 << 20

// Error codes of the admin API beyond the CodePipeline ones it reuses
// (ValidationException, PipelineNotFoundException, ...).
const (
	ErrClientNotFound      = "ClientNotFoundException"
	ErrClientAlreadyExists = "ClientAlreadyExistsException"
	ErrWorkerKeyNotFound   = "WorkerKeyNotFoundException"
	ErrMethodNotAllowed    = "MethodNotAllowedException"
	ErrNotFound            = "NotFoundException" // no such route
)

// Pipelines is what the admin API needs of the pipeline-definition service.
type Pipelines interface {
	// Declaration reads a version of a pipeline (0: the latest).
	// store.ErrNotFound when absent.
	Declaration(ctx context.Context, name string, version int) (*wire.PipelineDeclaration, store.Pipeline, error)
	// ActionType resolves an action type (nil when absent or deleted).
	ActionType(ctx context.Context, k actiontypes.Key) (*actiontypes.Type, error)
}

// Config configures a Handler.
type Config struct {
	Store     store.Store
	Pipelines Pipelines
	// Verifier checks signatures; its Service must be SigningService.
	Verifier *sigv4.Verifier
	Logger   *slog.Logger
	// NewID makes client ids (default: random UUIDs).
	NewID func() string
	// WorkerKeys issues and revokes worker keys (nil: the worker-key
	// routes answer an internal failure).
	WorkerKeys *workerkeys.Service
	// ConsoleUsers manages the web console's users (nil: those routes
	// answer an internal failure).
	ConsoleUsers *consoleusers.Service
	// Connections sets connection credentials (nil: that route answers an
	// internal failure).
	Connections *connections.Service
}

// Handler serves the admin API.
type Handler struct {
	store        store.Store
	pipelines    Pipelines
	auth         awsjson.SigV4
	log          *slog.Logger
	newID        func() string
	workerKeys   *workerkeys.Service
	consoleUsers *consoleusers.Service
	conns        *connections.Service
}

// New returns the admin API's handler.
func New(c Config) *Handler {
	h := &Handler{store: c.Store, pipelines: c.Pipelines, auth: awsjson.SigV4{Verifier: c.Verifier}, log: c.Logger, newID: c.NewID, workerKeys: c.WorkerKeys, consoleUsers: c.ConsoleUsers, conns: c.Connections}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.newID == nil {
		h.newID = uuid.NewString
	}
	return h
}

// statusOf maps error codes to HTTP statuses; unlisted codes are 400.
var statusOf = map[string]int{
	wire.ErrMissingAuthenticationToken: http.StatusUnauthorized,
	wire.ErrUnrecognizedClient:         http.StatusForbidden,
	wire.ErrInvalidSignature:           http.StatusForbidden,
	wire.ErrAccessDenied:               http.StatusForbidden,
	"ExpiredTokenException":            http.StatusForbidden,
	wire.ErrPipelineNotFound:           http.StatusNotFound,
	wire.ErrStageNotFound:              http.StatusNotFound,
	wire.ErrActionNotFound:             http.StatusNotFound,
	wire.ErrActionTypeNotFound:         http.StatusNotFound,
	ErrClientNotFound:                  http.StatusNotFound,
	ErrWorkerKeyNotFound:               http.StatusNotFound,
	consoleusers.ErrUserNotFound:       http.StatusNotFound,
	consoleusers.ErrUserExists:         http.StatusConflict,
	"ResourceNotFoundException":        http.StatusNotFound, // a connection (set-connection-credentials)
	ErrNotFound:                        http.StatusNotFound,
	ErrMethodNotAllowed:                http.StatusMethodNotAllowed,
	ErrClientAlreadyExists:             http.StatusConflict,
	wire.ErrRequestEntityTooLarge:      http.StatusRequestEntityTooLarge,
	wire.ErrInternalFailure:            http.StatusInternalServerError,
}

// ErrorBody is the JSON of an error answer.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type route struct {
	method string
	fn     func(ctx context.Context, r *http.Request, args []string, body []byte) (int, any, error)
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	status, out, err := h.serve(r)
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		e, ok := wire.AsError(err)
		if !ok {
			h.log.Error("admin: internal error", "method", r.Method, "path", r.URL.Path, "err", err)
			e = &wire.Error{Code: wire.ErrInternalFailure, Message: "The request failed because of an internal error; the server's log has the details."}
		}
		status = statusOf[e.Code]
		if status == 0 {
			status = http.StatusBadRequest
		}
		if ok {
			h.log.Info("admin: request failed", "method", r.Method, "path", r.URL.Path, "status", status, "code", e.Code, "message", e.Message)
		}
		writeJSON(w, status, ErrorBody{Code: e.Code, Message: e.Message})
		return
	}
	writeJSON(w, status, out)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"code":"InternalFailure","message":"cannot encode the answer"}`)
	}
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

func (h *Handler) serve(r *http.Request) (int, any, error) {
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return 0, nil, wire.Errorf(wire.ErrRequestEntityTooLarge, "The request body is larger than %d bytes", maxBody)
		}
		return 0, nil, wire.Errorf(wire.ErrSerialization, "Cannot read the request body")
	}
	// Authenticate before routing: an unauthenticated caller learns
	// nothing, not even which routes exist.
	who, err := h.auth.Authenticate(r.Context(), r, body)
	if err != nil {
		return 0, nil, err
	}
	if err := h.rootOnly(r.Context(), who); err != nil {
		return 0, nil, err
	}
	ctx := caller.With(r.Context(), who)

	rest, ok := strings.CutPrefix(r.URL.Path, PathPrefix)
	if !ok {
		return 0, nil, wire.Errorf(ErrNotFound, "No admin operation at %s", r.URL.Path)
	}
	parts := strings.Split(rest, "/")
	var routes []route
	switch {
	case len(parts) == 1 && parts[0] == "third-party-action-types":
		routes = []route{{http.MethodPost, h.registerActionType}}
	case len(parts) == 4 && parts[0] == "third-party-action-types":
		routes = []route{{http.MethodDelete, h.deregisterActionType}}
	case len(parts) == 1 && parts[0] == "clients":
		routes = []route{{http.MethodPost, h.issueClient}, {http.MethodGet, h.listClients}}
	case len(parts) == 2 && parts[0] == "clients" && parts[1] != "":
		routes = []route{{http.MethodGet, h.getClient}, {http.MethodDelete, h.revokeClient}}
	case len(parts) == 1 && parts[0] == "worker-keys":
		routes = []route{{http.MethodPost, h.createWorkerKey}, {http.MethodGet, h.listWorkerKeys}}
	case len(parts) == 2 && parts[0] == "worker-keys" && parts[1] != "":
		routes = []route{{http.MethodGet, h.getWorkerKey}, {http.MethodDelete, h.revokeWorkerKey}}
	case len(parts) == 1 && parts[0] == ConsoleUsersPath:
		routes = []route{{http.MethodPost, h.createConsoleUser}, {http.MethodGet, h.listConsoleUsers}}
	case len(parts) == 2 && parts[0] == ConsoleUsersPath && parts[1] != "":
		routes = []route{{http.MethodGet, h.getConsoleUser}, {http.MethodPatch, h.updateConsoleUser}}
	case len(parts) == 1 && parts[0] == "connection-credentials":
		routes = []route{{http.MethodPost, h.setConnectionCredentials}}
	default:
		return 0, nil, wire.Errorf(ErrNotFound, "No admin operation at %s", r.URL.Path)
	}
	allowed := make([]string, 0, len(routes))
	for _, rt := range routes {
		if rt.method == r.Method {
			return rt.fn(ctx, r, parts[1:], body)
		}
		allowed = append(allowed, rt.method)
	}
	return 0, nil, wire.Errorf(ErrMethodNotAllowed, "%s does not take %s; it takes %s", r.URL.Path, r.Method, strings.Join(allowed, ", "))
}

// rootOnly refuses every caller but the root credentials. The server gives
// the admin API a verifier that knows no other key; this holds should it
// ever be given a lookup that knows more (worker keys sign job-protocol
// calls only): a caller with a worker scope, a principal other than root's,
// or a worker key's access key id is refused.
func (h *Handler) rootOnly(ctx context.Context, who caller.Caller) error {
	denied := wire.Errorf(wire.ErrAccessDenied, "Access key %s may not call the admin API: it takes the root credentials only", who.AccessKeyID)
	if who.Worker != nil || !strings.HasPrefix(who.ARN, "arn:aws:iam::") || !strings.HasSuffix(who.ARN, ":root") {
		return denied
	}
	if h.workerKeys == nil {
		return nil
	}
	_, err := h.workerKeys.Get(ctx, who.AccessKeyID)
	if err == nil {
		return denied
	}
	if _, ok := wire.AsError(err); ok || errors.Is(err, store.ErrNotFound) {
		return nil // not a worker key (unknown, or not even of their form)
	}
	return err // cannot tell: fail closed
}

// decodeBody reads a JSON request body into in. Unknown members are
// refused: an operator's typo should not be silently ignored.
func decodeBody(body []byte, in any) error {
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(in); err != nil {
		if errors.Is(err, io.EOF) {
			return wire.Errorf(wire.ErrSerialization, "The request needs a JSON body")
		}
		return wire.Errorf(wire.ErrSerialization, "The request body is not the JSON this operation takes: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if dec.More() {
		return wire.Errorf(wire.ErrSerialization, "The request body holds more than one JSON value")
	}
	return nil
}

func callerARN(ctx context.Context) string {
	c, _ := caller.From(ctx)
	return c.ARN
}

// Time is how the admin API shows times: RFC 3339, UTC.
func Time(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}
