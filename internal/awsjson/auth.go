package awsjson

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/pipelined/pipelined/internal/caller"
	"github.com/pipelined/pipelined/internal/sigv4"
	"github.com/pipelined/pipelined/internal/wire"
)

// SigV4 adapts a SigV4 verifier to the Authenticator of the JSON API,
// translating verification failures into the codes AWS JSON services answer.
type SigV4 struct {
	Verifier *sigv4.Verifier
}

// Authenticate verifies the request's signature.
func (a SigV4) Authenticate(ctx context.Context, r *http.Request, body []byte) (caller.Caller, error) {
	// A presigned URL signs no body and, on POST /, names its operation in
	// a header the URL cannot carry signed: whoever saw one could send any
	// operation with it. The JSON API takes the Authorization header only.
	if isPresigned(r) {
		return caller.Caller{}, wire.Errorf(wire.ErrIncompleteSignature, "%s", msgPresignedRefused)
	}
	res, err := a.Verifier.Verify(ctx, r, body)
	if err != nil {
		var ve *sigv4.Error
		if !errors.As(err, &ve) {
			return caller.Caller{}, err // lookup failure: internal
		}
		return caller.Caller{}, &wire.Error{Code: jsonCode(ve.Kind), Message: ve.Message}
	}
	// AWS JSON services always hash the body themselves. Accepting
	// UNSIGNED-PAYLOAD (or a streaming marker) here would let anyone who saw
	// a request replay its signature with another body for 15 minutes.
	// Verify has already checked that a hex payload hash matches the body.
	if !isHexHash(res.PayloadHash) {
		return caller.Caller{}, wire.Errorf(wire.ErrInvalidSignature, "The request payload must be signed: x-amz-content-sha256 '%s' is not accepted by this API", res.PayloadHash)
	}
	if err := requireSigned(r, res.SignedHeaders); err != nil {
		return caller.Caller{}, err
	}
	who := caller.Caller{AccessKeyID: res.Credential.AccessKeyID, ARN: res.Credential.Principal}
	switch scope := res.Credential.Scope.(type) {
	case nil:
	case *caller.WorkerScope:
		if scope == nil {
			return caller.Caller{}, errors.New("awsjson: a credential with a nil worker scope")
		}
		who.Worker = scope
	default:
		// A scope this layer cannot enforce must not pass as root.
		return caller.Caller{}, fmt.Errorf("awsjson: credential scope of unknown type %T", scope)
	}
	return who, nil
}

// Messages of the JSON API's own signing rules, worded as AWS words its
// "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
const (
	msgPresignedRefused = "Query-string authentication (a presigned URL) is not accepted by this API: sign the request with an Authorization header (AWS4-HMAC-SHA256), as the AWS SDKs and CLI do."
	msgTargetNotSigned  = "'X-Amz-Target' must be a 'SignedHeader' in the AWS Authorization."
	msgDateNotSigned    = "'%s' must be a 'SignedHeader' in the AWS Authorization."
)

// isPresigned tells whether the request carries query-string SigV4
// authentication (any of the parameters that make a URL presigned).
func isPresigned(r *http.Request) bool {
	if r.URL == nil || r.URL.RawQuery == "" {
		return false
	}
	q := r.URL.Query()
	for _, name := range []string{"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature", "X-Amz-SignedHeaders"} {
		if q.Has(name) {
			return true
		}
	}
	return false
}

// requireSigned checks that the signature covers what decides the
// request's meaning and freshness: the operation (X-Amz-Target) and the
// date it carries (X-Amz-Date, or Date when that is what it has). sigv4
// already insists on host. Without X-Amz-Target signed, a captured
// GetPipeline could be replayed as DeletePipeline.
func requireSigned(r *http.Request, signed []string) error {
	has := func(name string) bool {
		for _, s := range signed {
			if s == name {
				return true
			}
		}
		return false
	}
	// Without a target the request names no operation (UnknownOperation
	// follows); with one, the signature must cover it.
	if len(r.Header.Values("X-Amz-Target")) > 0 && !has("x-amz-target") {
		return wire.Errorf(wire.ErrInvalidSignature, "%s", msgTargetNotSigned)
	}
	switch {
	case len(r.Header.Values("X-Amz-Date")) > 0:
		if !has("x-amz-date") {
			return wire.Errorf(wire.ErrInvalidSignature, msgDateNotSigned, "X-Amz-Date")
		}
	case !has("date"):
		return wire.Errorf(wire.ErrInvalidSignature, msgDateNotSigned, "Date")
	}
	return nil
}

func isHexHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// jsonCode is the AWS JSON error code of a verification failure.
func jsonCode(k sigv4.Kind) string {
	switch k {
	case sigv4.MissingAuth:
		return wire.ErrMissingAuthenticationToken
	case sigv4.IncompleteSignature:
		return wire.ErrIncompleteSignature
	case sigv4.UnknownAccessKey, sigv4.InvalidToken, sigv4.KeyNotAccepted:
		return wire.ErrUnrecognizedClient
	case sigv4.ExpiredToken:
		return "ExpiredTokenException"
	default: // SignatureMismatch, RequestExpired, WrongScope
		return wire.ErrInvalidSignature
	}
}
