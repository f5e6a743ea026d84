package oidc

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// encoded is a response body encoded once per key set, with its ETag.
type encoded struct {
	body []byte
	etag string
}

func newEncoded(v any) (encoded, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return encoded{}, err
	}
	sum := sha256.Sum256(b)
	return encoded{body: b, etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:16]) + `"`}, nil
}

// encodeJWKS encodes the published keys: kty, kid, use "sig", alg and the
// public parameters (n and e, or crv, x and y), as AWS IAM and GCP expect.
func encodeJWKS(keys []publicKey) (encoded, error) {
	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(keys))}
	for _, k := range keys {
		set.Keys = append(set.Keys, k.jwk)
	}
	e, err := newEncoded(set)
	if err != nil {
		return encoded{}, fmt.Errorf("encode JWKS: %w", err)
	}
	return e, nil
}

// discoveryDoc is the OpenID Provider Metadata this issuer has: no
// authorization or token endpoint (tokens are issued to jobs, not through
// a browser flow), like the Kubernetes service account issuer, which
// go-oidc, AWS IAM and GCP accept.
type discoveryDoc struct {
	Issuer             string   `json:"issuer"`
	JWKSURI            string   `json:"jwks_uri"`
	ResponseTypes      []string `json:"response_types_supported"`
	SubjectTypes       []string `json:"subject_types_supported"`
	IDTokenSigningAlgs []string `json:"id_token_signing_alg_values_supported"`
	ScopesSupported    []string `json:"scopes_supported"`
	ClaimsSupported    []string `json:"claims_supported"`
}

// encodeDiscovery encodes the discovery document. It advertises the
// algorithm of every published key, the configured one first, so that a
// relying party accepts tokens across a change of Algorithm.
func (i *Issuer) encodeDiscovery(keys []publicKey) (encoded, error) {
	algs := []string{i.alg}
	for _, k := range keys {
		if a := string(k.alg); !slices.Contains(algs, a) {
			algs = append(algs, a)
		}
	}
	e, err := newEncoded(discoveryDoc{
		Issuer:             i.cfg.Issuer,
		JWKSURI:            i.cfg.Issuer + "/.well-known/jwks",
		ResponseTypes:      []string{"id_token"},
		SubjectTypes:       []string{"public"},
		IDTokenSigningAlgs: algs,
		ScopesSupported:    []string{"openid"},
		ClaimsSupported:    i.claims,
	})
	if err != nil {
		return encoded{}, fmt.Errorf("encode discovery: %w", err)
	}
	return e, nil
}

// maxCacheAge bounds how long caches may keep the JWKS and discovery
// document. A new next key appears in the JWKS one rotation period before
// it signs; a cache is at most maxCacheAge stale, and a replica at most
// ReloadInterval behind the one that rotated, so with the defaults (24h
// rotation) every cache has refreshed hundreds of times before the key
// signs. Keeping the age short also bounds how long a verifier holds a
// JWKS without a key forced into service early (Rotate). Revalidation is
// cheap: a 304 for a matching ETag.
const maxCacheAge = 5 * time.Minute

// cacheControl is the Cache-Control of both documents: maxCacheAge, or a
// tenth of the rotation period when that is shorter (short periods in
// tests and demos), so that a next key is always published for ten cache
// lifetimes before it signs.
func (i *Issuer) cacheControl() string {
	age := min(maxCacheAge, i.cfg.RotationPeriod/10)
	return "public, max-age=" + strconv.Itoa(int(age/time.Second))
}

// Handler serves GET and HEAD of the discovery document
// (DiscoveryPath: the Issuer's path + /.well-known/openid-configuration)
// and of the JWKS (JWKSPath: + /.well-known/jwks). Bodies are encoded
// once per key set; responses carry an ETag and answer a matching
// If-None-Match with 304.
func (i *Issuer) Handler() http.Handler {
	cc := i.cacheControl()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var doc encoded
		switch r.URL.Path {
		case i.discoveryPath:
			doc = i.cur.Load().discovery
		case i.jwksPath:
			doc = i.cur.Load().jwks
		default:
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Cache-Control", cc)
		h.Set("ETag", doc.etag)
		if etagMatches(r.Header.Values("If-None-Match"), doc.etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", strconv.Itoa(len(doc.body)))
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write(doc.body)
		}
	})
}

// etagMatches applies If-None-Match (RFC 9110 13.1.2): "*", or a list of
// entity tags compared weakly (a W/ prefix is ignored).
func etagMatches(headers []string, etag string) bool {
	for _, h := range headers {
		for t := range strings.SplitSeq(h, ",") {
			t = strings.TrimSpace(t)
			if t == "*" || strings.TrimPrefix(t, "W/") == etag {
				return true
			}
		}
	}
	return false
}
