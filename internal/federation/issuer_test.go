package federation

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// testIssuer is a minimal OIDC issuer for these tests: a discovery
// document and a JWKS with one RSA key. (pipelined's real issuer is
// another package; these tests must not depend on it.)
type testIssuer struct {
	URL string
	key *rsa.PrivateKey
	kid string
	// discoveryIssuer, when set, is the issuer the discovery document
	// names instead of URL (a misconfigured or impersonating issuer).
	discoveryIssuer string
	// jwksDown makes the JWKS answer 503.
	jwksDown bool
}

func newRSAKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// sharedKey is the key of the test issuers: RSA key generation is slow
// (under -race especially), and a distinct key per issuer is not needed,
// as each issuer has its own URL, which the fakes check.
var sharedKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

func newTestIssuer(t testing.TB) *testIssuer {
	t.Helper()
	iss := &testIssuer{key: sharedKey(), kid: "test-key-1"}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		name := iss.URL
		if iss.discoveryIssuer != "" {
			name = iss.discoveryIssuer
		}
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                name,
			"jwks_uri":                              iss.URL + "/.well-known/jwks",
			"response_types_supported":              []string{"id_token"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("GET /.well-known/jwks", func(w http.ResponseWriter, r *http.Request) {
		if iss.jwksDown {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
			{Key: &iss.key.PublicKey, KeyID: iss.kid, Algorithm: string(jose.RS256), Use: "sig"},
		}})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	iss.URL = srv.URL
	return iss
}

// sign signs claims with the issuer's key.
func (i *testIssuer) sign(t testing.TB, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: i.key, KeyID: i.kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// token is an ID token for sub and aud valid for ttl (expired if
// negative).
func (i *testIssuer) token(t testing.TB, sub, aud string, ttl time.Duration) string {
	t.Helper()
	now := time.Now()
	iat := now
	if ttl < 0 {
		iat = now.Add(2 * ttl)
	}
	return i.sign(t, map[string]any{
		"iss": i.URL, "sub": sub, "aud": aud,
		"iat": iat.Unix(), "exp": now.Add(ttl).Unix(),
		"pipeline_id": "deploy-app",
	})
}

// forger signs with a key that is not in the issuer's JWKS, under the
// issuer's name and key ID.
func (i *testIssuer) forger(t testing.TB) *testIssuer {
	return &testIssuer{URL: i.URL, key: newRSAKey(t), kid: i.kid}
}

// recorder replaces the sleep of retries: it records the delays and
// advances a fake clock by them, so that no test sleeps for real.
type recorder struct {
	mu     sync.Mutex
	base   time.Time
	sleeps []time.Duration
}

func newRecorder() *recorder { return &recorder{base: time.Now()} }

func (r *recorder) sleep(ctx context.Context, d time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sleeps = append(r.sleeps, d)
	return ctx.Err()
}

func (r *recorder) now() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.base
	for _, d := range r.sleeps {
		t = t.Add(d)
	}
	return t
}

func (r *recorder) recorded() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Duration(nil), r.sleeps...)
}

// half is the random source of tests that predict delays exactly.
func half() float64 { return 0.5 }

// assertNoSecret fails when an error's text or message carries a secret
// or a long part of one.
func assertNoSecret(t testing.TB, err error, secrets ...string) {
	t.Helper()
	texts := []string{err.Error()}
	if pe, ok := err.(*ProviderError); ok {
		texts = append(texts, pe.Message)
	}
	for _, s := range secrets {
		parts := append([]string{s}, strings.Split(s, ".")...)
		for _, txt := range texts {
			for _, p := range parts {
				if len(p) >= 16 && strings.Contains(txt, p) {
					t.Errorf("error text carries a secret (%.12s...): %s", p, txt)
				}
			}
		}
	}
}
