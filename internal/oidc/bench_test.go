package oidc

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// The pair BenchmarkSign / BenchmarkJoseSignCeiling measures what Issuer
// adds to signing: the ceiling is go-jose alone signing the same payload
// with the same header (kid, typ) under a key of the same kind, the
// payload marshaled once outside the loop. Issuer.Sign also marshals the
// claims and checks iss and exp each time, and reads the clock and the
// cached key set; it must stay within a few percent of the ceiling.

// benchClaims are a typical job token's claims.
func benchClaims(issuer string, now time.Time) claims {
	return claims{
		Issuer:   issuer,
		Subject:  "pipeline:app:stage:Deploy:action:Ship",
		Audience: []string{"sts.amazonaws.com"},
		Expiry:   now.Add(30 * time.Minute).Unix(),
		IssuedAt: now.Unix(),
	}
}

func benchSign(b *testing.B, alg string) {
	e := newEnv(b, "https://ci.example.com")
	e.cfg.Now = time.Now // the real clock: its cost is part of Sign
	i := e.issuer(func(c *Config) { c.Algorithm = alg })
	c := benchClaims(i.Issuer(), time.Now())
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := i.Sign(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
}

func benchJoseCeiling(b *testing.B, alg jose.SignatureAlgorithm) {
	var key any
	var err error
	if alg == jose.RS256 {
		key, err = rsa.GenerateKey(rand.Reader, rsaBits)
	} else {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		b.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg,
		Key: jose.JSONWebKey{Key: key, KeyID: "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG", Algorithm: string(alg)}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		b.Fatal(err)
	}
	payload, err := json.Marshal(benchClaims("https://ci.example.com", time.Now()))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		jws, err := signer.Sign(payload)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := jws.CompactSerialize(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSign(b *testing.B)                 { benchSign(b, "RS256") }
func BenchmarkJoseSignCeiling(b *testing.B)      { benchJoseCeiling(b, jose.RS256) }
func BenchmarkSignES256(b *testing.B)            { benchSign(b, "ES256") }
func BenchmarkJoseSignCeilingES256(b *testing.B) { benchJoseCeiling(b, jose.ES256) }

// BenchmarkVerify is Issuer.Verify of a token it signed.
func BenchmarkVerify(b *testing.B) {
	e := newEnv(b, "https://ci.example.com")
	e.cfg.Now = time.Now
	i := e.issuer()
	ctx := context.Background()
	tok, err := i.Sign(ctx, benchClaims(i.Issuer(), time.Now()))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := i.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}
