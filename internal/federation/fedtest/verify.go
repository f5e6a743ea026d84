package fedtest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// verifyKind says why a token was refused.
type verifyKind int

const (
	// badToken: malformed, bad signature, wrong issuer, not yet valid.
	badToken verifyKind = iota + 1
	// expiredToken: exp has passed.
	expiredToken
	// issuerUnreachable: the discovery document or the JWKS could not be
	// fetched, or the document names another issuer.
	issuerUnreachable
)

type verifyError struct {
	kind verifyKind
	msg  string
}

func (e *verifyError) Error() string { return e.msg }

// signatureAlgorithms are the asymmetric algorithms the providers accept;
// "none" and HMAC are refused, as a provider holds no shared secret.
var signatureAlgorithms = []string{
	oidc.RS256, oidc.RS384, oidc.RS512,
	oidc.PS256, oidc.PS384, oidc.PS512,
	oidc.ES256, oidc.ES384, oidc.ES512,
}

// verifier checks ID tokens of one issuer. It runs discovery (and so
// fetches the JWKS) for every token rather than keeping a provider, so
// that a test can rotate keys or take the issuer down and see the effect
// at once, as it would on a provider after its cache expires.
type verifier struct {
	issuer string
	client *http.Client
	now    func() time.Time
}

// verify checks token's signature, issuer and expiry with go-oidc and
// returns its claims. The audience is the caller's to check: the
// providers accept more than one form.
func (v *verifier) verify(ctx context.Context, token string) (map[string]any, *verifyError) {
	if v.client != nil {
		ctx = oidc.ClientContext(ctx, v.client)
	}
	// NewProvider fails when the discovery document cannot be fetched or
	// names another issuer: either way the provider cannot get keys it
	// may trust, which AWS reports as a communication error.
	p, err := oidc.NewProvider(ctx, v.issuer)
	if err != nil {
		return nil, &verifyError{issuerUnreachable, err.Error()}
	}
	idt, err := p.VerifierContext(ctx, &oidc.Config{
		SkipClientIDCheck:    true,
		Now:                  v.now,
		SupportedSigningAlgs: signatureAlgorithms,
	}).Verify(ctx, token)
	var expired *oidc.TokenExpiredError
	switch {
	case errors.As(err, &expired) && !expired.Expiry.IsZero():
		return nil, &verifyError{expiredToken, fmt.Sprintf("the token expired at %s (now %s)", expired.Expiry.UTC().Format(time.RFC3339), v.now().UTC().Format(time.RFC3339))}
	case errors.As(err, &expired):
		// go-oidc reads a missing exp as long expired.
		return nil, &verifyError{badToken, "the token has no exp"}
	case err != nil && strings.Contains(err.Error(), "fetching keys"):
		// The JWKS could not be fetched. go-oidc does not wrap this
		// error for errors.As, hence the text.
		return nil, &verifyError{issuerUnreachable, err.Error()}
	case err != nil:
		return nil, &verifyError{badToken, err.Error()}
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return nil, &verifyError{badToken, err.Error()}
	}
	return claims, nil
}

// audiences is the aud claim as a list (a string or an array of them).
func audiences(claims map[string]any) []string {
	switch a := claims["aud"].(type) {
	case string:
		return []string{a}
	case []any:
		var out []string
		for _, x := range a {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func hasAudience(claims map[string]any, want ...string) bool {
	for _, a := range audiences(claims) {
		for _, w := range want {
			if a == w {
				return true
			}
		}
	}
	return false
}

// failure is one scripted error answer.
type failure struct {
	code    string
	status  int
	message string
}

// recorder is what both fakes keep of their requests, behind one lock:
// the failure script, the request count, and the last verified claims.
// Its exported methods are the fakes'.
type recorder struct {
	mu     sync.Mutex
	script script
	claims map[string]any
}

// Fail makes the next n requests the fake counts (AWS:
// AssumeRoleWithWebIdentity; GCP: both APIs) fail with the error code
// and HTTP status before any checking, e.g. STS's ("IDPCommunicationError",
// 400), ("Throttling", 400), ("InternalFailure", 500); GCP STS's OAuth
// error ("temporarily_unavailable") or IAM Credentials' status
// ("UNAVAILABLE", "PERMISSION_DENIED"). Status 0 drops the connection
// without an answer instead. Calls add to the queue.
func (r *recorder) Fail(n int, code string, status int) { r.FailWith(n, code, status, "") }

// FailWith is Fail with the error message answered, for failures whose
// meaning is in the message (STS's InvalidIdentityToken).
func (r *recorder) FailWith(n int, code string, status int, message string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.script.add(n, code, status, message)
}

// Requests is the number of requests counted (see Fail), failed ones
// included.
func (r *recorder) Requests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.script.requests
}

// LastClaims are the claims of the last token that passed verification
// (nil before any), whether or not a condition then refused it.
func (r *recorder) LastClaims() map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.claims)
}

// script is a queue of failures and a request counter.
type script struct {
	queue    []failure
	requests int
}

func (s *script) add(n int, code string, status int, message string) {
	if message == "" {
		message = "injected failure (fedtest)"
	}
	for range n {
		s.queue = append(s.queue, failure{code, status, message})
	}
}

// next counts a request and pops the failure it gets, if any.
func (s *script) next() (failure, bool) {
	s.requests++
	if len(s.queue) == 0 {
		return failure{}, false
	}
	f := s.queue[0]
	s.queue = s.queue[1:]
	return f, true
}

// dropConnection closes the connection without an answer, as a network
// failure does.
func dropConnection(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("fedtest: the server cannot drop the connection")
	}
	conn, _, err := hj.Hijack()
	if err == nil {
		conn.Close()
	}
}

// randomID is a random string of n characters of [A-Z2-7].
func randomID(n int) string {
	var b strings.Builder
	for b.Len() < n {
		b.WriteString(rand.Text())
	}
	return b.String()[:n]
}
