// Package logsapi serves job logs over the CloudWatch Logs API (AWS JSON
// 1.1, X-Amz-Target Logs_20140328.<Operation>, SigV4 service "logs") on
// the server's shared listener, so that `aws logs tail --follow` and the
// SDKs read Commands actions' output as on AWS. It serves the read
// operations (DescribeLogGroups, DescribeLogStreams, GetLogEvents,
// FilterLogEvents); every other operation of the model answers
// InvalidOperationException naming it.
//
// Names, as CodePipeline's Commands action uses them: the log group of a
// pipeline is /aws/codepipeline/<pipeline>, with one stream per action
// execution, named by the action execution id. A group exists while it
// has a stream.
package logsapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/google/uuid"

	"github.com/pipelined/pipelined/internal/awsjson"
	"github.com/pipelined/pipelined/internal/joblogs"
	"github.com/pipelined/pipelined/internal/logsapi/logswire"
	"github.com/pipelined/pipelined/internal/store"
	"github.com/pipelined/pipelined/internal/wire"
)

// GroupPrefix starts the name of every log group: the pipeline's name
// follows it.
const GroupPrefix = "/aws/codepipeline/"

// SigningService is the SigV4 service name of the API.
const SigningService = "logs"

// maxBody bounds a request body (the read requests are small).
const maxBody = 1 << 20

// Error codes of the CloudWatch Logs model the API answers with.
const (
	errInvalidParameter = "InvalidParameterException"
	errNotFound         = "ResourceNotFoundException"
	errInvalidOperation = "InvalidOperationException"
	errServiceUnavail   = "ServiceUnavailableException"
)

// Config configures a Handler.
type Config struct {
	Store     store.Logs
	Logs      *joblogs.Service
	Auth      awsjson.SigV4 // a verifier for SigningService
	Region    string
	AccountID string
	// RetentionDays is the retention shown for every group (0: none shown).
	RetentionDays int
	Logger        *slog.Logger
}

// Handler is the http.Handler of the API.
type Handler struct {
	cfg Config
	log *slog.Logger
}

// New returns a Handler.
func New(cfg Config) *Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Handler{cfg: cfg, log: cfg.Logger}
}

// IsLogsRequest reports whether r is for this API (by its X-Amz-Target).
func IsLogsRequest(r *http.Request) bool {
	return r.Method == http.MethodPost && strings.HasPrefix(r.Header.Get("X-Amz-Target"), logswire.TargetPrefix+".")
}

// apiError is an error answered with its code and message.
type apiError struct {
	code, message string
	status        int
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func invalid(format string, args ...any) error {
	return &apiError{code: errInvalidParameter, message: fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) error {
	return &apiError{code: errNotFound, message: fmt.Sprintf(format, args...)}
}

type operation func(h *Handler, ctx context.Context, body []byte) (any, error)

var operations = map[string]operation{
	"DescribeLogGroups":  describeLogGroups,
	"DescribeLogStreams": describeLogStreams,
	"GetLogEvents":       getLogEvents,
	"FilterLogEvents":    filterLogEvents,
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reqID := uuid.NewString()
	w.Header().Set("x-amzn-RequestId", reqID)
	op := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), logswire.TargetPrefix+".")
	out, err := h.serve(r, op)
	if err != nil {
		h.writeError(w, r, reqID, op, err)
		return
	}
	body, err := json.Marshal(out)
	if err != nil {
		h.writeError(w, r, reqID, op, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_, _ = w.Write(body)
}

func (h *Handler) serve(r *http.Request, op string) (any, error) {
	if r.Method != http.MethodPost {
		return nil, &apiError{code: "UnknownOperationException", message: "The AWS JSON API accepts only POST requests"}
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, &apiError{code: "RequestEntityTooLargeException", message: fmt.Sprintf("Request body is larger than %d bytes", maxBody), status: http.StatusRequestEntityTooLarge}
		}
		return nil, &apiError{code: "SerializationException", message: "Cannot read the request body"}
	}
	// Authenticate first: an unsigned caller learns nothing of the operations.
	who, err := h.cfg.Auth.Authenticate(r.Context(), r, body)
	if err != nil {
		return nil, err
	}
	if who.Worker != nil {
		return nil, &apiError{code: "AccessDeniedException", message: "A worker key may not read logs", status: http.StatusBadRequest}
	}
	fn, ok := operations[op]
	if !ok {
		if _, inModel := logswire.Operations[op]; inModel {
			return nil, &apiError{code: errInvalidOperation, message: fmt.Sprintf("%s is not supported by pipelined: its logs are read-only (DescribeLogGroups, DescribeLogStreams, GetLogEvents and FilterLogEvents are served)", op)}
		}
		return nil, &apiError{code: "UnknownOperationException", message: fmt.Sprintf("Unknown operation %s", op)}
	}
	return fn(h, r.Context(), body)
}

// decode reads a request body into in; AWS ignores members it does not
// know, and so does this.
func decode(body []byte, in any) error {
	if len(body) == 0 {
		body = []byte("{}")
	}
	if err := json.Unmarshal(body, in); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return &apiError{code: "SerializationException", message: fmt.Sprintf("Unexpected value for %s: expected %s", te.Field, te.Type)}
		}
		return &apiError{code: "SerializationException", message: "The request body is not valid JSON"}
	}
	return nil
}

func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, reqID, op string, err error) {
	code, message, status := "", "", http.StatusBadRequest
	var ae *apiError
	if we, ok := wire.AsError(err); ok {
		code, message = we.Code, we.Message
		status = http.StatusForbidden
		if code == wire.ErrMissingAuthenticationToken {
			status = http.StatusForbidden
		}
	} else if errors.As(err, &ae) {
		code, message = ae.code, ae.message
		if ae.status != 0 {
			status = ae.status
		}
	} else {
		// The store or a bug: logged with the request id, never with log
		// contents (errors here carry ids and offsets only).
		h.log.Error("logs api internal error", "request_id", reqID, "operation", op, "err", err)
		code, message, status = errServiceUnavail, "The service cannot complete the request.", http.StatusInternalServerError
	}
	if status < 500 {
		h.log.Info("logs request failed", "request_id", reqID, "operation", op, "code", code, "message", message)
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("x-amzn-ErrorType", code)
	w.WriteHeader(status)
	b, _ := json.Marshal(struct {
		Type    string `json:"__type"`
		Message string `json:"message"`
	}{code, message})
	_, _ = w.Write(b)
}
