package sigv4

import (
	"context"
	"errors"
	"fmt"
	"net/http"
)

// Precheck runs the checks of Verify that need neither the body nor the
// secret key: the authorization parses, its scope names this region and
// service, its date is within the allowed skew, and its access key is
// known. A transport that must read the whole body before Verify (to hash
// it) calls Precheck first, so that a request which cannot succeed is
// refused before a large buffer is filled for it. It answers the errors
// Verify would, and Verify repeats these checks.
func (v *Verifier) Precheck(ctx context.Context, r *http.Request) error {
	if r == nil {
		return errors.New("sigv4: nil request")
	}
	if v.Lookup == nil {
		return errors.New("sigv4: Verifier has no Lookup")
	}
	req, e := parseRequest(r)
	if e != nil {
		return e
	}
	if e := v.checkScope(req); e != nil {
		return e
	}
	if e := v.checkTime(req, v.now()); e != nil {
		return e
	}
	_, err := v.Lookup(ctx, req.auth.accessKeyID)
	if errors.Is(err, ErrUnknownAccessKey) {
		return newError(UnknownAccessKey, msgInvalidToken)
	}
	if err != nil {
		return fmt.Errorf("sigv4: looking up access key: %w", err)
	}
	return nil
}
