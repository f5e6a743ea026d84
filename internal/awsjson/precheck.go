package awsjson

import (
	"context"
	"errors"
	"net/http"

	"github.com/pipelined/pipelined/internal/sigv4"
	"github.com/pipelined/pipelined/internal/wire"
)

var _ Prechecker = SigV4{}

// Precheck refuses, before the body is read, a request whose authorization
// cannot succeed (sigv4.Verifier.Precheck), with the error Authenticate
// would answer.
func (a SigV4) Precheck(ctx context.Context, r *http.Request) error {
	if isPresigned(r) {
		return wire.Errorf(wire.ErrIncompleteSignature, "%s", msgPresignedRefused)
	}
	err := a.Verifier.Precheck(ctx, r)
	var ve *sigv4.Error
	if err != nil && errors.As(err, &ve) {
		return &wire.Error{Code: jsonCode(ve.Kind), Message: ve.Message}
	}
	return err
}
