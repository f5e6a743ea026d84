package oidc

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"

	"github.com/pipelined/pipelined/internal/pgtest"
	"github.com/pipelined/pipelined/internal/secrets"
	"github.com/pipelined/pipelined/internal/store"
	"github.com/pipelined/pipelined/internal/store/postgres"
)

// goOIDCVerify verifies token with go-oidc against a fresh provider of
// srv (so that nothing is cached from an earlier key set), for audience
// aud, at the test clock's time.
func goOIDCVerify(t *testing.T, srv *server, c *clock, aud, token string) (*gooidc.IDToken, error) {
	t.Helper()
	ctx := gooidc.ClientContext(t.Context(), srv.Client())
	p, err := gooidc.NewProvider(ctx, srv.URL)
	if err != nil {
		t.Fatalf("go-oidc NewProvider: %v", err)
	}
	return p.Verifier(&gooidc.Config{ClientID: aud, Now: c.Now}).Verify(ctx, token)
}

func TestGoOIDCDiscoveryAndVerify(t *testing.T) {
	t.Parallel()
	for _, alg := range []string{"RS256", "ES256"} {
		t.Run(alg, func(t *testing.T) {
			srv := newServer(t)
			e := newEnv(t, srv.URL)
			i := e.issuer(func(c *Config) { c.Algorithm = alg })
			srv.serve(i)
			if i.Algorithm() != alg {
				t.Fatalf("Algorithm() = %q, want %q", i.Algorithm(), alg)
			}

			tok := mustSign(t, i, tokenClaims(i, e.clock.Now(), 10*time.Minute))
			idt, err := goOIDCVerify(t, srv, e.clock, "sts.amazonaws.com", tok)
			if err != nil {
				t.Fatalf("go-oidc Verify: %v", err)
			}
			if idt.Issuer != srv.URL || idt.Subject != "pipeline:app:stage:Deploy:action:Ship" {
				t.Errorf("go-oidc token: iss %q sub %q", idt.Issuer, idt.Subject)
			}
			// The audience is checked: a token for AWS is not one for GCP.
			if _, err := goOIDCVerify(t, srv, e.clock, "//iam.googleapis.com/projects/1", tok); err == nil {
				t.Error("go-oidc accepted a token for another audience")
			}
			// go-oidc refuses a token past its exp, as Verify does.
			e.clock.Advance(11 * time.Minute)
			if _, err := goOIDCVerify(t, srv, e.clock, "sts.amazonaws.com", tok); err == nil {
				t.Error("go-oidc accepted an expired token")
			}
			if _, err := i.Verify(t.Context(), tok); !errors.Is(err, ErrExpired) {
				t.Errorf("Verify of an expired token: %v, want ErrExpired", err)
			}
		})
	}
}

// TestDocuments checks the discovery document and the JWKS field by
// field, as AWS IAM and GCP read them.
func TestDocuments(t *testing.T) {
	t.Parallel()
	for _, alg := range []string{"RS256", "ES256"} {
		t.Run(alg, func(t *testing.T) {
			srv := newServer(t)
			e := newEnv(t, srv.URL)
			i := e.issuer(func(c *Config) { c.Algorithm = alg })
			srv.serve(i)

			_, body := get(t, "GET", srv.URL+"/.well-known/openid-configuration", nil)
			var disc map[string]any
			if err := json.Unmarshal(body, &disc); err != nil {
				t.Fatalf("discovery: %v: %s", err, body)
			}
			want := map[string]any{
				"issuer":                                srv.URL,
				"jwks_uri":                              srv.URL + "/.well-known/jwks",
				"response_types_supported":              []any{"id_token"},
				"subject_types_supported":               []any{"public"},
				"id_token_signing_alg_values_supported": []any{alg},
				"scopes_supported":                      []any{"openid"},
				"claims_supported":                      []any{"iss", "sub", "aud", "exp", "iat", "nbf", "jti"},
			}
			if got, want := fmt.Sprint(disc), fmt.Sprint(want); got != want {
				t.Errorf("discovery = %s\nwant        %s", got, want)
			}

			_, body = get(t, "GET", srv.URL+"/.well-known/jwks", nil)
			var jwks struct {
				Keys []map[string]string `json:"keys"`
			}
			if err := json.Unmarshal(body, &jwks); err != nil {
				t.Fatalf("jwks: %v: %s", err, body)
			}
			// The signing key and the next key, both published.
			if len(jwks.Keys) != 2 {
				t.Fatalf("JWKS has %d keys, want 2 (signing and next): %s", len(jwks.Keys), body)
			}
			if jwks.Keys[0]["kid"] != i.SigningKeyID() {
				t.Errorf("first JWKS key %q, want the signing key %q", jwks.Keys[0]["kid"], i.SigningKeyID())
			}
			fields := []string{"alg", "e", "kid", "kty", "n", "use"}
			if alg == "ES256" {
				fields = []string{"alg", "crv", "kid", "kty", "use", "x", "y"}
			}
			for _, k := range jwks.Keys {
				if got := slices.Sorted(mapKeys(k)); !slices.Equal(got, fields) {
					t.Errorf("JWK fields %v, want %v (public only)", got, fields)
				}
				if k["use"] != "sig" || k["alg"] != alg {
					t.Errorf("JWK use %q alg %q", k["use"], k["alg"])
				}
				if alg == "RS256" {
					n, _ := base64.RawURLEncoding.DecodeString(k["n"])
					if k["kty"] != "RSA" || len(n)*8 != 2048 || k["e"] != "AQAB" {
						t.Errorf("RSA JWK kty %q, %d-bit n, e %q; want a 2048-bit RSA key", k["kty"], len(n)*8, k["e"])
					}
				} else if k["kty"] != "EC" || k["crv"] != "P-256" {
					t.Errorf("EC JWK kty %q crv %q", k["kty"], k["crv"])
				}
				// kid is the RFC 7638 thumbprint.
				var jwk jose.JSONWebKey
				raw, _ := json.Marshal(k)
				if err := jwk.UnmarshalJSON(raw); err != nil {
					t.Fatal(err)
				}
				tp, _ := jwk.Thumbprint(crypto.SHA256)
				if base64.RawURLEncoding.EncodeToString(tp) != k["kid"] {
					t.Errorf("kid %q is not the key's SHA-256 thumbprint", k["kid"])
				}
			}
		})
	}
}

func mapKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func TestRotationKeepsTokensValid(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	e := newEnv(t, srv.URL)
	i := e.issuer()
	srv.serve(i)
	k0 := i.SigningKeyID()
	k1 := jwksKIDs(t, i)[1] // the next key

	old := mustSign(t, i, tokenClaims(i, e.clock.Now(), time.Hour))
	if tokenKID(t, old) != k0 {
		t.Fatalf("token kid %q, want the signing key %q", tokenKID(t, old), k0)
	}

	e.clock.Advance(10 * time.Minute)
	rotated := e.clock.Now()
	if err := i.Rotate(t.Context()); err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	// The next key, published in advance, now signs.
	if i.SigningKeyID() != k1 {
		t.Fatalf("after Rotate the signing key is %q, want the former next key %q", i.SigningKeyID(), k1)
	}
	kids := jwksKIDs(t, i)
	if len(kids) != 3 || kids[0] != k1 || kids[2] != k0 || kids[1] == k0 || kids[1] == k1 {
		t.Fatalf("JWKS after rotation = %v, want [%s <new next> %s]", kids, k1, k0)
	}
	fresh := mustSign(t, i, tokenClaims(i, e.clock.Now(), time.Hour))
	if tokenKID(t, fresh) != k1 {
		t.Errorf("token after rotation has kid %q, want %q", tokenKID(t, fresh), k1)
	}
	for name, tok := range map[string]string{"old": old, "new": fresh} {
		if _, err := i.Verify(t.Context(), tok); err != nil {
			t.Errorf("Verify of the %s token: %v", name, err)
		}
		if _, err := goOIDCVerify(t, srv, e.clock, "sts.amazonaws.com", tok); err != nil {
			t.Errorf("go-oidc Verify of the %s token: %v", name, err)
		}
	}

	// The retired key stays published until rotated + MaxTokenTTL +
	// RetentionMargin, through further rotations...
	until := rotated.Add(DefaultMaxTokenTTL + RetentionMargin)
	e.clock.Set(until.Add(-time.Second))
	if err := i.Rotate(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(jwksKIDs(t, i), k0) {
		t.Fatalf("retired key %s left the JWKS a second before its time", k0)
	}
	// ...and leaves at the first rotation after that.
	e.clock.Set(until.Add(time.Second))
	if err := i.Rotate(t.Context()); err != nil {
		t.Fatal(err)
	}
	kids = jwksKIDs(t, i)
	if slices.Contains(kids, k0) {
		t.Errorf("retired key %s still in the JWKS after its time: %v", k0, kids)
	}
	if !slices.Contains(kids, k1) {
		t.Errorf("key %s, retired at the second rotation, left the JWKS early: %v", k1, kids)
	}
	if len(kids) != 4 {
		t.Errorf("JWKS = %v, want signing, next and two retired keys", kids)
	}
	if _, err := i.Verify(t.Context(), old); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Verify of a token of a dropped key: %v, want ErrUnknownKey", err)
	}
}

// TestSignRotatesWhenDue: Sign never uses a key past its signing window,
// and between rotations it does not touch the store.
func TestSignRotatesWhenDue(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "https://pipelined.example.com")
	cs := &countingStore{KeyStore: e.store}
	i := e.issuer(func(c *Config) { c.Store = cs; c.RotationPeriod = 6 * time.Hour })
	k0, k1 := i.SigningKeyID(), jwksKIDs(t, i)[1]
	reads, swaps := cs.reads.Load(), cs.swaps.Load()

	for range 50 {
		tok := mustSign(t, i, tokenClaims(i, e.clock.Now(), time.Hour))
		if tokenKID(t, tok) != k0 {
			t.Fatalf("kid %q, want %q", tokenKID(t, tok), k0)
		}
		if _, err := i.Verify(t.Context(), tok); err != nil {
			t.Fatal(err)
		}
	}
	e.clock.Advance(6*time.Hour - time.Second)
	mustSign(t, i, tokenClaims(i, e.clock.Now(), time.Hour))
	if r, s := cs.reads.Load()-reads, cs.swaps.Load()-swaps; r != 0 || s != 0 {
		t.Fatalf("Sign and Verify before the rotation made %d reads and %d swaps, want none", r, s)
	}

	e.clock.Advance(time.Second) // the rotation is due
	tok := mustSign(t, i, tokenClaims(i, e.clock.Now(), time.Hour))
	if tokenKID(t, tok) != k1 {
		t.Errorf("at the rotation time Sign used %q, want the next key %q", tokenKID(t, tok), k1)
	}
	if i.Version() != 2 || cs.swaps.Load()-swaps != 1 {
		t.Errorf("version %d after %d swaps, want version 2 after one swap", i.Version(), cs.swaps.Load()-swaps)
	}
}

// TestStartConcurrently: replicas starting on an empty store at once end
// with one key set.
func TestStartConcurrently(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, open func() KeyStore) {
		c, sealer := newClock(), newSealer(t)
		const n = 4
		issuers := make([]*Issuer, n)
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for r := range n {
			st := open()
			wg.Go(func() {
				<-start
				issuers[r], errs[r] = New(t.Context(), Config{
					Store: st, Sealer: sealer, Issuer: "https://ci.example.com", Now: c.Now,
				})
			})
		}
		close(start)
		wg.Wait()
		for r, err := range errs {
			if err != nil {
				t.Fatalf("replica %d: New: %v", r, err)
			}
		}
		for r, i := range issuers[1:] {
			if i.Version() != 1 || i.SigningKeyID() != issuers[0].SigningKeyID() ||
				!bytes.Equal(i.cur.Load().jwks.body, issuers[0].cur.Load().jwks.body) {
				t.Errorf("replica %d has version %d signing key %s, replica 0 version %d key %s",
					r+1, i.Version(), i.SigningKeyID(), issuers[0].Version(), issuers[0].SigningKeyID())
			}
		}
	})
}

// TestReplicas: two Issuers on one database. When one rotates, the other
// signs with the new key once the rotation is due, and both publish the
// same JWKS; concurrent rotations make one.
func TestReplicas(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, open func() KeyStore) {
		c, sealer := newClock(), newSealer(t)
		cfg := Config{Sealer: sealer, Issuer: "https://ci.example.com", Now: c.Now, RotationPeriod: time.Hour}
		cfgA, cfgB := cfg, cfg
		cfgA.Store, cfgB.Store = open(), open()
		a, err := New(t.Context(), cfgA)
		if err != nil {
			t.Fatal(err)
		}
		b, err := New(t.Context(), cfgB)
		if err != nil {
			t.Fatal(err)
		}
		k0, k1 := a.SigningKeyID(), jwksKIDs(t, a)[1]
		if b.SigningKeyID() != k0 {
			t.Fatalf("B signs with %s, A with %s", b.SigningKeyID(), k0)
		}

		// A rotates when due (through Sign); B, on its own clock check,
		// picks up A's key set instead of rotating again.
		c.Advance(time.Hour)
		if kid := tokenKID(t, mustSign(t, a, tokenClaims(a, c.Now(), time.Hour))); kid != k1 {
			t.Fatalf("A signed with %s after the rotation, want %s", kid, k1)
		}
		tokB := mustSign(t, b, tokenClaims(b, c.Now(), time.Hour))
		if kid := tokenKID(t, tokB); kid != k1 {
			t.Fatalf("B signed with %s after the rotation, want %s", kid, k1)
		}
		if a.Version() != 2 || b.Version() != 2 {
			t.Fatalf("versions A %d B %d, want 2 (one rotation)", a.Version(), b.Version())
		}
		if !bytes.Equal(a.cur.Load().jwks.body, b.cur.Load().jwks.body) {
			t.Errorf("JWKS differ:\nA %s\nB %s", a.cur.Load().jwks.body, b.cur.Load().jwks.body)
		}
		if _, err := a.Verify(t.Context(), tokB); err != nil {
			t.Errorf("A does not verify B's token: %v", err)
		}

		// Both find the next rotation due at once: one rotation.
		c.Advance(time.Hour)
		var wg sync.WaitGroup
		kids := make([]string, 2)
		for r, i := range []*Issuer{a, b} {
			wg.Go(func() {
				tok, err := i.Sign(t.Context(), tokenClaims(i, c.Now(), time.Hour))
				if err != nil {
					t.Errorf("Sign: %v", err)
					return
				}
				kids[r] = tokenKID(t, tok)
			})
		}
		wg.Wait()
		if a.Version() != 3 || b.Version() != 3 || kids[0] != kids[1] {
			t.Errorf("after concurrent due rotations: versions A %d B %d, kids %v; want one rotation to 3",
				a.Version(), b.Version(), kids)
		}
		stored, err := cfgA.Store.SigningKeys(t.Context())
		if err != nil || stored.Version != 3 {
			t.Errorf("stored version %d (%v), want 3", stored.Version, err)
		}

		// A forced rotation on A: B's tokens keep verifying on A (B's key
		// is retired, not gone) and B agrees after a reload.
		if err := a.Rotate(t.Context()); err != nil {
			t.Fatal(err)
		}
		tokB = mustSign(t, b, tokenClaims(b, c.Now(), time.Hour))
		if _, err := a.Verify(t.Context(), tokB); err != nil {
			t.Errorf("A does not verify B's token signed before B reloaded: %v", err)
		}
		if err := b.Reload(t.Context()); err != nil {
			t.Fatal(err)
		}
		if b.SigningKeyID() != a.SigningKeyID() || !bytes.Equal(a.cur.Load().jwks.body, b.cur.Load().jwks.body) {
			t.Errorf("after Reload B signs with %s, A with %s; JWKS equal: %v", b.SigningKeyID(), a.SigningKeyID(),
				bytes.Equal(a.cur.Load().jwks.body, b.cur.Load().jwks.body))
		}
	})
}

// forEachBackend runs fn on SQLite (always) and PostgreSQL (when
// PIPELINED_TEST_POSTGRES is set); open returns another handle on one
// database each time.
func forEachBackend(t *testing.T, fn func(t *testing.T, open func() KeyStore)) {
	t.Run("sqlite", func(t *testing.T) {
		path := ""
		fn(t, func() KeyStore {
			st, p := openStore(t, path)
			path = p
			return st
		})
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := pgtest.DSN(t)
		fn(t, func() KeyStore {
			st, err := postgres.Open(t.Context(), dsn)
			if err != nil {
				t.Fatalf("postgres.Open: %v", err)
			}
			t.Cleanup(func() { _ = st.Close() })
			return st
		})
	})
}

func TestRunReloadsAndRotates(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "https://ci.example.com")
	a := e.issuer(func(c *Config) { c.RotationPeriod = time.Hour })
	st2, _ := openStore(t, e.path)
	b := e.issuer(func(c *Config) { c.Store = st2; c.RotationPeriod = time.Hour; c.ReloadInterval = 5 * time.Millisecond })
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); b.Run(ctx) }()

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	// B's Run picks up A's forced rotation.
	if err := a.Rotate(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitFor("B to reload A's rotation", func() bool { return b.Version() == 2 })
	// And rotates itself when due.
	e.clock.Advance(time.Hour)
	waitFor("B to rotate when due", func() bool { return b.Version() == 3 })
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if err := a.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.cur.Load().jwks.body, b.cur.Load().jwks.body) {
		t.Error("JWKS of A and B differ after Run")
	}
}

// TestPrivateKeysSealed: the stored document holds no private key in
// clear, and a server with another master key cannot use it.
func TestPrivateKeysSealed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "https://ci.example.com")
	i := e.issuer()
	if err := i.Rotate(t.Context()); err != nil { // a verification key too
		t.Fatal(err)
	}
	stored, err := e.store.SigningKeys(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var doc keySetDoc
	if err := json.Unmarshal(stored.Doc, &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range []keyDoc{doc.Signing, doc.Next} {
		if !secrets.IsSealed(k.Private) {
			t.Fatalf("key %s: private key not sealed: %.30q", k.KID, k.Private)
		}
		// Open it as the issuer does, then look for the clear key, in
		// every encoding it could have leaked in, in the document.
		b64, err := e.sealer.Open(k.Private, sealContext(k.KID))
		if err != nil {
			t.Fatal(err)
		}
		der, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			t.Fatal(err)
		}
		for _, leak := range [][]byte{der, []byte(b64), []byte(base64.RawURLEncoding.EncodeToString(der)),
			[]byte(hex.EncodeToString(der)), []byte("PRIVATE KEY")} {
			if bytes.Contains(stored.Doc, leak[:min(len(leak), 64)]) {
				t.Errorf("stored document contains private key material of %s", k.KID)
			}
		}
		// A sealed key does not open under another key's kid.
		if _, err := e.sealer.Open(k.Private, sealContext(doc.Verification[0].KID)); err == nil {
			t.Error("a sealed private key opened under another kid")
		}
	}
	if doc.Verification[0].Private != "" {
		t.Error("a retired key kept its private key")
	}
	if bytes.Contains(stored.Doc, []byte(`"d":`)) {
		t.Error("stored document has a private JWK parameter")
	}

	_, err = New(t.Context(), Config{Store: e.store, Sealer: newSealer(t), Issuer: "https://ci.example.com"})
	if !errors.Is(err, ErrKeyUnsealable) || !strings.Contains(err.Error(), "master key") {
		t.Fatalf("New with another master key: %v, want ErrKeyUnsealable naming the master key", err)
	}
	// Nothing was overwritten by the failed start.
	again, err := e.store.SigningKeys(t.Context())
	if err != nil || again.Version != stored.Version {
		t.Errorf("stored version %d after the failed start (%v), want %d", again.Version, err, stored.Version)
	}
}

func TestVerifyRefuses(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "https://ci.example.com")
	i := e.issuer()
	now := e.clock.Now()
	good := mustSign(t, i, tokenClaims(i, now, 10*time.Minute))
	if _, err := i.Verify(t.Context(), good); err != nil {
		t.Fatalf("Verify of a good token: %v", err)
	}
	parts := strings.Split(good, ".")

	// signRaw signs an arbitrary payload with i's signing key, as Sign
	// would not.
	signRaw := func(v any) string {
		b, _ := json.Marshal(v)
		jws, err := i.cur.Load().signer.Sign(b)
		if err != nil {
			t.Fatal(err)
		}
		s, _ := jws.CompactSerialize()
		return s
	}
	// A foreign issuer: same URL, its own store and keys.
	foreign := newEnv(t, "https://ci.example.com").issuer()
	foreignTok := mustSign(t, foreign, tokenClaims(foreign, now, 10*time.Minute))
	// Another issuer URL, also its own keys.
	other := newEnv(t, "https://evil.example.com").issuer()
	otherTok := mustSign(t, other, tokenClaims(other, now, 10*time.Minute))

	// A token whose payload was changed keeps the old signature.
	tampered := tokenClaims(i, now, 10*time.Minute)
	tampered.Subject = "pipeline:other"
	tb, _ := json.Marshal(tampered)
	tamperedPayload := parts[0] + "." + base64.RawURLEncoding.EncodeToString(tb) + "." + parts[2]
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sig[len(sig)/2] ^= 1
	tamperedSig := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
	// A header naming a published key with another algorithm.
	hdr, _ := base64.RawURLEncoding.DecodeString(parts[0])
	esHdr := bytes.Replace(hdr, []byte(`"RS256"`), []byte(`"ES256"`), 1)
	algSwapped := base64.RawURLEncoding.EncodeToString(esHdr) + "." + parts[1] + "." + parts[2]
	// An ES256 key under a published kid.
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecSigner, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256,
		Key: jose.JSONWebKey{Key: ecKey, KeyID: i.SigningKeyID()}}, nil)
	ecJWS, _ := ecSigner.Sign(tb)
	forgedKID, _ := ecJWS.CompactSerialize()
	// alg "none".
	noneTok := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","kid":"`+i.SigningKeyID()+`"}`)) +
		"." + parts[1] + "."

	for _, tc := range []struct {
		name  string
		token string
		want  error
	}{
		{"empty", "", ErrMalformed},
		{"garbage", "not.a.jwt", ErrMalformed},
		{"two parts", parts[0] + "." + parts[1], ErrMalformed},
		{"alg none", noneTok, ErrMalformed},
		{"tampered payload", tamperedPayload, ErrBadSignature},
		{"tampered signature", tamperedSig, ErrBadSignature},
		{"alg swapped", algSwapped, ErrBadSignature},
		{"forged kid", forgedKID, ErrBadSignature},
		{"foreign issuer, same URL", foreignTok, ErrUnknownKey},
		{"foreign issuer, other URL", otherTok, ErrBadSignature},
		{"wrong iss", signRaw(map[string]any{"iss": "https://evil.example.com", "exp": now.Add(time.Minute).Unix()}), ErrWrongIssuer},
		{"no iss", signRaw(map[string]any{"exp": now.Add(time.Minute).Unix()}), ErrWrongIssuer},
		{"no exp", signRaw(map[string]any{"iss": i.Issuer()}), ErrMalformed},
		{"exp a string", signRaw(map[string]any{"iss": i.Issuer(), "exp": "soon"}), ErrMalformed},
		{"payload not an object", signRaw([]int{1}), ErrMalformed},
		{"expired", signRaw(map[string]any{"iss": i.Issuer(), "exp": now.Unix()}), ErrExpired},
		{"nbf in the future", signRaw(map[string]any{"iss": i.Issuer(), "exp": now.Add(time.Hour).Unix(),
			"nbf": now.Add(2 * Leeway).Unix()}), ErrNotYetValid},
		{"iat in the future", signRaw(map[string]any{"iss": i.Issuer(), "exp": now.Add(time.Hour).Unix(),
			"iat": now.Add(2 * Leeway).Unix()}), ErrNotYetValid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := i.Verify(t.Context(), tc.token)
			if !errors.Is(err, tc.want) {
				t.Errorf("Verify: %v, want %v", err, tc.want)
			}
			// The key's algorithm is checked before go-jose tries the
			// signature (which would fail too, for another reason).
			if tc.name == "alg swapped" && (err == nil || !strings.Contains(err.Error(), `alg "ES256"`)) {
				t.Errorf("Verify: %v, want the algorithm mismatch named", err)
			}
		})
	}

	// Within the leeway, and with fractional dates, tokens are fine.
	within := signRaw(map[string]any{"iss": i.Issuer(), "exp": float64(now.Add(time.Hour).UnixMilli()) / 1000,
		"nbf": now.Add(Leeway / 2).Unix(), "iat": now.Add(Leeway / 2).Unix()})
	if _, err := i.Verify(t.Context(), within); err != nil {
		t.Errorf("Verify of a token within the leeway: %v", err)
	}
	// The payload comes back as signed.
	payload, err := i.Verify(t.Context(), good)
	if err != nil {
		t.Fatal(err)
	}
	var got claims
	if err := json.Unmarshal(payload, &got); err != nil || got.Subject != "pipeline:app:stage:Deploy:action:Ship" {
		t.Errorf("payload %s (%v)", payload, err)
	}
	// Expired: the good token, later.
	e.clock.Advance(10 * time.Minute)
	if _, err := i.Verify(t.Context(), good); !errors.Is(err, ErrExpired) {
		t.Errorf("Verify at exp: %v, want ErrExpired", err)
	}
}

func TestSignRefuses(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "https://ci.example.com")
	i := e.issuer(func(c *Config) { c.MaxTokenTTL = 15 * time.Minute })
	now := e.clock.Now()
	for name, c := range map[string]any{
		"not JSON":       func() {},
		"not an object":  []string{"a"},
		"no iss":         map[string]any{"exp": now.Add(time.Minute).Unix()},
		"other iss":      map[string]any{"iss": "https://evil.example.com", "exp": now.Add(time.Minute).Unix()},
		"no exp":         map[string]any{"iss": i.Issuer()},
		"exp too late":   map[string]any{"iss": i.Issuer(), "exp": now.Add(15*time.Minute + Leeway + time.Second).Unix()},
		"exp not a date": map[string]any{"iss": i.Issuer(), "exp": "tomorrow"},
	} {
		if _, err := i.Sign(t.Context(), c); !errors.Is(err, ErrInvalidClaims) {
			t.Errorf("Sign(%s): %v, want ErrInvalidClaims", name, err)
		}
	}
	// The longest allowed lifetime is fine.
	mustSign(t, i, map[string]any{"iss": i.Issuer(), "exp": now.Add(15 * time.Minute).Unix()})
}

func TestConfig(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "https://ci.example.com")
	for _, mod := range []func(*Config){
		func(c *Config) { c.Store = nil },
		func(c *Config) { c.Sealer = nil },
		func(c *Config) { c.Issuer = "" },
		func(c *Config) { c.Issuer = "ci.example.com" },
		func(c *Config) { c.Issuer = "https://ci.example.com/" },
		func(c *Config) { c.Issuer = "https://ci.example.com?x=1" },
		func(c *Config) { c.Issuer = "ftp://ci.example.com" },
		func(c *Config) { c.Algorithm = "HS256" },
		func(c *Config) { c.Algorithm = "none" },
		func(c *Config) { c.RotationPeriod = -time.Hour },
		func(c *Config) { c.ReloadInterval = time.Hour },
	} {
		cfg := e.cfg
		mod(&cfg)
		if _, err := New(t.Context(), cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
	if _, err := e.store.SigningKeys(t.Context()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused config stored keys: %v", err)
	}

	// An issuer with a path serves under it.
	i := e.issuer(func(c *Config) { c.Issuer = "https://ci.example.com/tenant/a" })
	if i.DiscoveryPath() != "/tenant/a/.well-known/openid-configuration" || i.JWKSPath() != "/tenant/a/.well-known/jwks" {
		t.Errorf("paths %q %q", i.DiscoveryPath(), i.JWKSPath())
	}
}

// TestUnknownFormatNotOverwritten: a key set this server cannot read is
// refused, never replaced.
func TestUnknownFormatNotOverwritten(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "https://ci.example.com")
	doc := []byte(`{"format":99}`)
	if _, err := e.store.SwapSigningKeys(t.Context(), 0, doc); err != nil {
		t.Fatal(err)
	}
	if _, err := New(t.Context(), e.cfg); err == nil || !strings.Contains(err.Error(), "format 99") {
		t.Fatalf("New on an unknown format: %v", err)
	}
	got, err := e.store.SigningKeys(t.Context())
	if err != nil || got.Version != 1 || !bytes.Equal(got.Doc, doc) {
		t.Errorf("stored key set changed: version %d %s (%v)", got.Version, got.Doc, err)
	}
}

// TestAlgorithmChange: keys keep their algorithm; a replica configured
// for ES256 on an RS256 set signs ES256 from the rotation after next, and
// discovery advertises both meanwhile.
func TestAlgorithmChange(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	e := newEnv(t, srv.URL)
	rs := e.issuer()
	es := e.issuer(func(c *Config) { c.Algorithm = "ES256" })
	srv.serve(es)
	if err := es.Rotate(t.Context()); err != nil { // the RS256 next key signs; an ES256 key is next
		t.Fatal(err)
	}
	tok := mustSign(t, es, tokenClaims(es, e.clock.Now(), time.Hour))
	if _, err := goOIDCVerify(t, srv, e.clock, "sts.amazonaws.com", tok); err != nil {
		t.Errorf("go-oidc, RS256 token, ES256 next: %v", err)
	}
	if err := es.Rotate(t.Context()); err != nil {
		t.Fatal(err)
	}
	tok = mustSign(t, es, tokenClaims(es, e.clock.Now(), time.Hour))
	jws, _ := parseCompact(tok)
	if jws.Signatures[0].Header.Algorithm != "ES256" {
		t.Fatalf("alg %q after two rotations, want ES256", jws.Signatures[0].Header.Algorithm)
	}
	if _, err := goOIDCVerify(t, srv, e.clock, "sts.amazonaws.com", tok); err != nil {
		t.Errorf("go-oidc, ES256 token: %v", err)
	}
	var disc struct {
		Algs []string `json:"id_token_signing_alg_values_supported"`
	}
	_ = json.Unmarshal(es.cur.Load().discovery.body, &disc)
	if !slices.Equal(disc.Algs, []string{"ES256", "RS256"}) {
		t.Errorf("algorithms advertised %v, want [ES256 RS256] while RS256 keys are published", disc.Algs)
	}
	// The RS256 replica verifies the ES256 token once it reloads.
	if err := rs.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := rs.Verify(t.Context(), tok); err != nil {
		t.Errorf("RS256 replica: Verify of an ES256 token: %v", err)
	}
}

// TestCanceledContext: the store's context errors come through.
func TestCanceledContext(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "https://ci.example.com")
	i := e.issuer()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := i.Rotate(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Rotate: %v, want context.Canceled", err)
	}
	if _, err := New(ctx, e.cfg); !errors.Is(err, context.Canceled) {
		t.Errorf("New: %v, want context.Canceled", err)
	}
	// With the rotation due, Sign must not fall back to the old key.
	e.clock.Advance(DefaultRotationPeriod)
	if _, err := i.Sign(ctx, tokenClaims(i, e.clock.Now(), time.Minute)); !errors.Is(err, context.Canceled) {
		t.Errorf("Sign with a due rotation: %v, want context.Canceled", err)
	}
}
