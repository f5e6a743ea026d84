package awsjson

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"

	"github.com/pipelined/pipelined/internal/wire"
)

// A request body is read into memory whole, since its SHA-256 is part of
// the signature and must be checked before the body is decoded. So that a
// client cannot make the server hold big buffers for requests that will
// never authenticate, the body is read only after
//   - its declared size fits the operation's limit (bodyLimit),
//   - the authorization headers pass the checks that need no body
//     (Prechecker: shape, scope, date, a known access key),
// and then grows with what actually arrives (a trickling client holds what
// it sent, not what it announced), every byte beyond a small per-request
// allowance reserved from a budget shared by all requests until the
// signature is verified (503 ServiceUnavailableException when spent).

// DefaultMaxOtherBody bounds the body of an operation that carries no
// pipeline or action type definition (job results, tags, approvals, ...):
// their largest inputs under the service model's limits are far smaller.
const DefaultMaxOtherBody = 1 << 20

// definitionOperations carry a pipeline or action type definition, and may
// use the whole of Options.MaxBody.
var definitionOperations = map[string]bool{
	"CreatePipeline": true, "UpdatePipeline": true,
	"CreateCustomActionType": true, "UpdateActionType": true,
}

// freeBodyBytes is what each request may read without reserving from the
// budget: most requests fit, and the connection cap bounds the total.
const freeBodyBytes = 64 << 10

// Prechecker is implemented by Authenticators that can refuse a request
// from its headers alone, before its body is read.
type Prechecker interface {
	Precheck(ctx context.Context, r *http.Request) error
}

// bodyLimit is the largest body op takes. The operation comes from the
// X-Amz-Target header, not yet authenticated here: a caller who names
// another operation than it means gains at most the larger limit.
func (h *Handler) bodyLimit(op string) int64 {
	if definitionOperations[op] {
		return h.maxBody
	}
	return min(h.maxBody, DefaultMaxOtherBody)
}

// readBody reads the request's body as described above. release gives the
// budget back; call it once the signature is verified (or has failed).
func (h *Handler) readBody(r *http.Request, op string) (body []byte, release func(), err error) {
	limit := h.bodyLimit(op)
	release = func() {}
	if r.ContentLength > limit {
		return nil, release, wire.Errorf(wire.ErrRequestEntityTooLarge, "Request body is larger than %d bytes, the most %s accepts", limit, opName(op))
	}
	if p, ok := h.auth.(Prechecker); ok {
		if err := p.Precheck(r.Context(), r); err != nil {
			return nil, release, err
		}
	}
	var reserved int64
	release = func() { h.budget.Release(reserved); reserved = 0 }
	charged := func(capacity int) int64 { return max(0, int64(capacity)-freeBodyBytes) }

	initial := int64(4 << 10)
	if r.ContentLength >= 0 {
		initial = min(r.ContentLength+1, freeBodyBytes) // +1: EOF without growing
	}
	buf := make([]byte, 0, initial)
	for {
		if len(buf) == cap(buf) {
			grown := int(min(int64(2*cap(buf)), limit+1))
			if d := charged(grown) - charged(cap(buf)); d > 0 {
				if !h.budget.TryAcquire(d) {
					release()
					return nil, func() {}, wire.Errorf(ErrServiceUnavailable, "The server is reading too many large request bodies; retry shortly")
				}
				reserved += d
			}
			buf = append(make([]byte, 0, grown), buf...)
		}
		n, err := r.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			release()
			return nil, func() {}, wire.Errorf(wire.ErrRequestEntityTooLarge, "Request body is larger than %d bytes, the most %s accepts", limit, opName(op))
		}
		if err == io.EOF {
			return buf, release, nil
		}
		if err != nil {
			release()
			if isTimeout(err) {
				return nil, func() {}, wire.Errorf(ErrRequestTimeout, "The request body did not arrive within the server's read timeout")
			}
			return nil, func() {}, wire.Errorf(wire.ErrSerialization, "Cannot read the request body")
		}
	}
}

// Error codes of the limits (not in the CodePipeline model: every AWS JSON
// service may answer them, and SDKs retry both).
const (
	ErrServiceUnavailable = "ServiceUnavailableException"
	ErrRequestTimeout     = "RequestTimeoutException"
)

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

func opName(op string) string {
	if _, ok := wire.Operations[op]; ok {
		return op
	}
	return "this request"
}
