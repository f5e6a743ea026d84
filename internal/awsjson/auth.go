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
	case sigv4.UnknownAccessKey, sigv4.InvalidToken:
		return wire.ErrUnrecognizedClient
	case sigv4.ExpiredToken:
		return "ExpiredTokenException"
	default: // SignatureMismatch, RequestExpired, WrongScope
		return wire.ErrInvalidSignature
	}
}
