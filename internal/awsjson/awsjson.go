// Package awsjson serves the CodePipeline API over the AWS JSON 1.1 protocol:
// POST / with X-Amz-Target: CodePipeline_20150709.<Operation>, SigV4 signed.
// It decodes, authenticates, dispatches through the generated operation
// table, encodes, and is the one place that maps errors to AWS error types
// and HTTP statuses. It knows nothing of business rules.
package awsjson

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pipelined/pipelined/internal/caller"
	"github.com/pipelined/pipelined/internal/httplimit"
	"github.com/pipelined/pipelined/internal/wire"
)

// DefaultMaxBody bounds a request body. CodePipeline's largest requests
// (pipeline definitions) stay far below it.
const DefaultMaxBody = 4 << 20

// Authenticator verifies a request's signature and says who sent it. Errors
// it returns must be *wire.Error with one of the authentication codes.
type Authenticator interface {
	Authenticate(ctx context.Context, r *http.Request, body []byte) (caller.Caller, error)
}

// Handler is the http.Handler of the API.
type Handler struct {
	api     wire.API
	auth    Authenticator
	log     *slog.Logger
	maxBody int64
	budget  *httplimit.Budget
	metrics *metrics
}

// Options configure a Handler.
type Options struct {
	Logger  *slog.Logger
	MaxBody int64
	// Registerer receives the handler's metrics (nil: not registered).
	Registerer prometheus.Registerer
	// BodyBudget bounds the body bytes held before authentication, across
	// requests (body.go; nil: unbounded).
	BodyBudget *httplimit.Budget
}

// New returns a Handler serving api, authenticating every request with auth.
func New(api wire.API, auth Authenticator, o Options) *Handler {
	h := &Handler{api: api, auth: auth, log: o.Logger, maxBody: o.MaxBody, budget: o.BodyBudget, metrics: newMetrics(o.Registerer)}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.maxBody <= 0 {
		h.maxBody = DefaultMaxBody
	}
	return h
}

// statusOf is the HTTP status of an error code. Every client error of the
// JSON protocol is 400 unless listed here.
var statusOf = map[string]int{
	wire.ErrUnrecognizedClient:    http.StatusForbidden,
	wire.ErrInvalidSignature:      http.StatusForbidden,
	wire.ErrAccessDenied:          http.StatusForbidden,
	wire.ErrRequestEntityTooLarge: http.StatusRequestEntityTooLarge,
	wire.ErrInternalFailure:       http.StatusInternalServerError,
	ErrServiceUnavailable:         http.StatusServiceUnavailable,
	ErrRequestTimeout:             http.StatusRequestTimeout,
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	reqID := uuid.NewString()
	w.Header().Set("x-amzn-RequestId", reqID)
	op := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), wire.TargetPrefix+".")
	// Every log line of the request carries its id; the logger is made only
	// when something is logged (most requests log nothing).
	log := func() *slog.Logger { return h.log.With(requestAttrs(r, reqID)...) }

	out, err := h.serve(r, op)
	if err != nil {
		code := h.writeError(w, log, op, err)
		h.metrics.observe(op, code, start)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	if out == nil {
		_, _ = io.WriteString(w, "{}")
	} else {
		body, err := json.Marshal(out)
		if err != nil {
			code := h.writeError(w, log, op, err)
			h.metrics.observe(op, code, start)
			return
		}
		_, _ = w.Write(body)
	}
	if h.log.Enabled(r.Context(), slog.LevelDebug) {
		log().Debug("request", "operation", op, "status", 200, "duration", time.Since(start))
	}
	h.metrics.observe(op, "", start)
}

func (h *Handler) serve(r *http.Request, op string) (any, error) {
	if r.Method != http.MethodPost {
		return nil, wire.Errorf(wire.ErrUnknownOperation, "The AWS JSON API accepts only POST requests")
	}
	body, release, err := h.readBody(r, op) // bounded, prechecked: body.go
	if err != nil {
		return nil, err
	}
	// Authenticate before looking at the target: an unauthenticated caller
	// learns nothing about which operations exist.
	who, err := h.auth.Authenticate(r.Context(), r, body)
	release()
	if err != nil {
		return nil, err
	}
	target := r.Header.Get("X-Amz-Target")
	if !strings.HasPrefix(target, wire.TargetPrefix+".") {
		return nil, wire.Errorf(wire.ErrUnknownOperation, "Missing or unknown X-Amz-Target '%s'; expected %s.<Operation>", target, wire.TargetPrefix)
	}
	operation, ok := wire.Operations[op]
	if !ok {
		return nil, wire.Errorf(wire.ErrUnknownOperation, "Unknown operation %s", op)
	}
	// A worker key may call its action type's job protocol and nothing
	// else; the operations check that the jobs are of its type.
	if who.Worker != nil && !who.Worker.MayCall(op) {
		return nil, who.Denied(op, "")
	}
	ctx := caller.With(r.Context(), who)
	return operation.Call(ctx, h.api, body)
}

// writeError writes the AWS JSON error body and returns the code it sent.
func (h *Handler) writeError(w http.ResponseWriter, log func() *slog.Logger, op string, err error) string {
	e, ok := wire.AsError(err)
	if !ok {
		// Not an API error: a bug or an outage. Log it with the request id;
		// the client gets the id, never the internal text.
		log().Error("internal error", "operation", op, "err", err)
		e = &wire.Error{Code: wire.ErrInternalFailure, Message: "The request processing has failed because of an unknown error, exception or failure."}
	}
	status, known := statusOf[e.Code]
	if !known {
		status = http.StatusBadRequest
	}
	if ok {
		log().Info("request failed", "operation", op, "status", status, "code", e.Code, "message", e.Message)
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("x-amzn-ErrorType", e.Code)
	w.WriteHeader(status)
	body, _ := json.Marshal(struct {
		Type    string `json:"__type"`
		Message string `json:"message"`
	}{e.Code, e.Message})
	_, _ = w.Write(body)
	return e.Code
}

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	polls    *prometheus.HistogramVec // long polls (longpoll.go)
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pipelined_api_requests_total", Help: "CodePipeline API requests by operation and error code (empty: success).",
		}, []string{"operation", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "pipelined_api_request_duration_seconds", Help: "CodePipeline API request latency by operation (long polls are in pipelined_api_long_poll_duration_seconds).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"operation"}),
	}
	m.polls = newPollHistogram()
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.polls)
	}
	return m
}

func (m *metrics) observe(op, code string, start time.Time) {
	if _, known := wire.Operations[op]; !known {
		op = "unknown" // bound the label's cardinality
	}
	m.requests.WithLabelValues(op, code).Inc()
	if longPoll[op] {
		m.polls.WithLabelValues(op).Observe(time.Since(start).Seconds())
		return
	}
	m.duration.WithLabelValues(op).Observe(time.Since(start).Seconds())
}
