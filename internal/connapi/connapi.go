// Package connapi serves the CodeConnections (2023-12-01) and CodeStar
// Connections (2019-12-01) APIs over AWS JSON 1.0 on the server's listener:
// POST / with X-Amz-Target com.amazonaws.codeconnections.CodeConnections_20231201.<Op>
// or com.amazonaws.codestar.connections.CodeStar_connections_20191201.<Op>,
// SigV4 signed for the service codeconnections or codestar-connections.
// Like awsjson it decodes, authenticates, dispatches through the generated
// tables (internal/connwire) and maps errors to __type and HTTP statuses.
package connapi

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/pipelined/pipelined/internal/awsjson"
	"github.com/pipelined/pipelined/internal/caller"
	"github.com/pipelined/pipelined/internal/connections"
	cc "github.com/pipelined/pipelined/internal/connwire/codeconnections"
	cs "github.com/pipelined/pipelined/internal/connwire/codestar"
	"github.com/pipelined/pipelined/internal/wire"
)

// maxBody bounds a request body; these requests are small.
const maxBody = 1 << 20

// The model's target prefixes are what botocore sends; the Go SDK (and
// others generated from Smithy) send only their last part.
var (
	ccShort = cc.TargetPrefix[strings.LastIndexByte(cc.TargetPrefix, '.')+1:] // CodeConnections_20231201
	csShort = cs.TargetPrefix[strings.LastIndexByte(cs.TargetPrefix, '.')+1:] // CodeStar_connections_20191201
)

// service returns which API a target is for ("" for neither) and its
// operation.
func service(target string) (api, op string) {
	prefix, op, ok := cutLast(target)
	if !ok {
		return "", ""
	}
	switch prefix {
	case cc.TargetPrefix, ccShort:
		return connections.ServiceCodeConnections, op
	case cs.TargetPrefix, csShort:
		return connections.ServiceCodeStar, op
	}
	return "", ""
}

func cutLast(s string) (before, after string, ok bool) {
	i := strings.LastIndexByte(s, '.')
	if i < 0 {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}

// Handles reports whether a request is for one of the two APIs (by its
// X-Amz-Target), so that the server's router sends it here.
func Handles(r *http.Request) bool {
	api, _ := service(r.Header.Get("X-Amz-Target"))
	return api != ""
}

// Config configures the Handler.
type Config struct {
	Service *connections.Service
	// CodeConnections and CodeStar authenticate requests signed for the
	// services codeconnections and codestar-connections.
	CodeConnections awsjson.Authenticator
	CodeStar        awsjson.Authenticator
	Logger          *slog.Logger
}

// Handler serves both APIs.
type Handler struct {
	ccAPI          cc.API
	csAPI          cs.API
	ccAuth, csAuth awsjson.Authenticator
	log            *slog.Logger
}

// New returns the Handler.
func New(c Config) *Handler {
	h := &Handler{
		ccAPI:  c.Service.View(connections.ServiceCodeConnections),
		csAPI:  codestarAPI{v: c.Service.View(connections.ServiceCodeStar)},
		ccAuth: c.CodeConnections, csAuth: c.CodeStar, log: c.Logger,
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	return h
}

// statusOf is the HTTP status of an error code; unlisted codes are 400.
var statusOf = map[string]int{
	wire.ErrUnrecognizedClient:    http.StatusForbidden,
	wire.ErrInvalidSignature:      http.StatusForbidden,
	wire.ErrAccessDenied:          http.StatusForbidden,
	"ExpiredTokenException":       http.StatusForbidden,
	wire.ErrRequestEntityTooLarge: http.StatusRequestEntityTooLarge,
	wire.ErrInternalFailure:       http.StatusInternalServerError,
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	reqID := uuid.NewString()
	w.Header().Set("x-amzn-RequestId", reqID)
	api, op := service(r.Header.Get("X-Amz-Target"))
	out, err := h.serve(r, api, op)
	if err != nil {
		h.writeError(w, reqID, op, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	body, err := json.Marshal(out)
	if err != nil {
		h.writeError(w, reqID, op, err)
		return
	}
	if string(body) == "null" {
		body = []byte("{}")
	}
	_, _ = w.Write(body)
	if h.log.Enabled(r.Context(), slog.LevelDebug) {
		h.log.Debug("connections request", "request_id", reqID, "operation", op, "status", 200, "duration", time.Since(start))
	}
}

func (h *Handler) serve(r *http.Request, api, op string) (any, error) {
	if r.Method != http.MethodPost {
		return nil, wire.Errorf(wire.ErrUnknownOperation, "The AWS JSON API accepts only POST requests")
	}
	codestar := api == connections.ServiceCodeStar
	auth := h.ccAuth
	if codestar {
		auth = h.csAuth
	}
	// Bound the size and check what needs no body before reading it
	// (README "Limits").
	if r.ContentLength > maxBody {
		return nil, wire.Errorf(wire.ErrRequestEntityTooLarge, "Request body is larger than %d bytes", maxBody)
	}
	if p, ok := auth.(awsjson.Prechecker); ok {
		if err := p.Precheck(r.Context(), r); err != nil {
			return nil, err
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, wire.Errorf(wire.ErrRequestEntityTooLarge, "Request body is larger than %d bytes", maxBody)
		}
		return nil, wire.Errorf(wire.ErrSerialization, "Cannot read the request body")
	}
	who, err := auth.Authenticate(r.Context(), r, body)
	if err != nil {
		return nil, err
	}
	// Connections hold the credentials of Git servers: root only, never a
	// worker key.
	if who.Worker != nil || !strings.HasSuffix(who.ARN, ":root") {
		return nil, wire.Errorf(wire.ErrAccessDenied, "Access key %s may not call %s: it takes the root credentials only", who.AccessKeyID, op)
	}
	ctx := caller.With(r.Context(), who)
	if codestar {
		o, ok := cs.Operations[op]
		if !ok {
			return nil, wire.Errorf(wire.ErrUnknownOperation, "Unknown operation %s", op)
		}
		return o.Call(ctx, h.csAPI, body)
	}
	o, ok := cc.Operations[op]
	if !ok || api == "" {
		return nil, wire.Errorf(wire.ErrUnknownOperation, "Unknown operation %s", op)
	}
	return o.Call(ctx, h.ccAPI, body)
}

func (h *Handler) writeError(w http.ResponseWriter, reqID, op string, err error) {
	e, ok := wire.AsError(err)
	if !ok {
		h.log.Error("internal error", "request_id", reqID, "operation", op, "err", err)
		e = &wire.Error{Code: wire.ErrInternalFailure, Message: "The request processing has failed because of an unknown error, exception or failure."}
	} else {
		h.log.Info("connections request failed", "request_id", reqID, "operation", op, "code", e.Code, "message", e.Message)
	}
	status, known := statusOf[e.Code]
	if !known {
		status = http.StatusBadRequest
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.Header().Set("x-amzn-ErrorType", e.Code)
	w.WriteHeader(status)
	body, _ := json.Marshal(struct {
		Type    string `json:"__type"`
		Message string `json:"message"`
	}{e.Code, e.Message})
	_, _ = w.Write(body)
}
