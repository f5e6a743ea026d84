package oidc

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/pipelined/pipelined/internal/secrets"
)

// docFormat is the version of the stored key set's format. A replica that
// reads a format it does not know refuses it instead of guessing (and
// never overwrites it: it cannot build a successor from what it cannot
// read).
const docFormat = 1

// keySetDoc is the key set as stored (store.SigningKeys.Doc), as JSON:
//
//	{
//	  "format": 1,
//	  "nextRotation": "2025-01-02T03:04:05Z",
//	  "signing": {"kid": "...", "alg": "RS256", "public": {JWK}, "private": "sealed:v1:...", "created": "..."},
//	  "next":    {"kid": "...", "alg": "RS256", "public": {JWK}, "private": "sealed:v1:...", "created": "..."},
//	  "verification": [{"kid": "...", "alg": "RS256", "public": {JWK}, "created": "...", "until": "..."}]
//	}
type keySetDoc struct {
	Format int `json:"format"`
	// NextRotation is when Next takes over from Signing.
	NextRotation time.Time `json:"nextRotation"`
	Signing      keyDoc    `json:"signing"`
	Next         keyDoc    `json:"next"`
	// Verification lists former signing keys, newest first.
	Verification []keyDoc `json:"verification"`
}

// keyDoc is one key of the set.
type keyDoc struct {
	KID string `json:"kid"`
	Alg string `json:"alg"`
	// Public is the public JWK exactly as the JWKS publishes it.
	Public json.RawMessage `json:"public"`
	// Private is the PKCS #8 DER of the private key, base64, sealed with
	// the master key under sealContext(KID). Only the signing and the next
	// key have one.
	Private string    `json:"private,omitempty"`
	Created time.Time `json:"created"`
	// Until is when a verification key leaves the JWKS.
	Until time.Time `json:"until,omitzero"`
}

// sealContext binds a sealed private key to its kid (the thumbprint of
// its public key): a sealed value moved to another key's entry does not
// open.
func sealContext(kid string) string { return "pipelined oidc signing key " + kid }

// supportedAlgs are the algorithms Algorithm may name, and that Verify
// parses (each key then admits only its own).
var supportedAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.ES256}

// rsaBits is the size of generated RSA keys.
const rsaBits = 2048

// generateKey makes a new key for alg, with its private half sealed.
func generateKey(alg string, sealer *secrets.Sealer, now time.Time) (keyDoc, error) {
	var priv crypto.Signer
	var err error
	switch jose.SignatureAlgorithm(alg) {
	case jose.RS256:
		priv, err = rsa.GenerateKey(rand.Reader, rsaBits)
	case jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return keyDoc{}, fmt.Errorf("oidc: unsupported algorithm %q", alg)
	}
	if err != nil {
		return keyDoc{}, fmt.Errorf("oidc: generate %s key: %w", alg, err)
	}
	pub := jose.JSONWebKey{Key: priv.Public(), Algorithm: alg, Use: "sig"}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return keyDoc{}, fmt.Errorf("oidc: key thumbprint: %w", err)
	}
	pub.KeyID = base64.RawURLEncoding.EncodeToString(tp)
	pubJSON, err := json.Marshal(pub)
	if err != nil {
		return keyDoc{}, fmt.Errorf("oidc: encode public key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return keyDoc{}, fmt.Errorf("oidc: encode private key: %w", err)
	}
	return keyDoc{
		KID:     pub.KeyID,
		Alg:     alg,
		Public:  pubJSON,
		Private: sealer.Seal(base64.StdEncoding.EncodeToString(der), sealContext(pub.KeyID)),
		Created: now.UTC(),
	}, nil
}

// publicKey is a decoded public key of the set.
type publicKey struct {
	kid string
	alg jose.SignatureAlgorithm
	jwk jose.JSONWebKey // public only
}

// decodePublic parses and checks a key's public JWK: it must be a public
// key of the key's algorithm whose thumbprint is its kid.
func decodePublic(k keyDoc) (publicKey, error) {
	var jwk jose.JSONWebKey
	if err := json.Unmarshal(k.Public, &jwk); err != nil {
		return publicKey{}, fmt.Errorf("key %q: public key: %w", k.KID, err)
	}
	if !jwk.IsPublic() || !jwk.Valid() {
		return publicKey{}, fmt.Errorf("key %q: not a valid public key", k.KID)
	}
	switch jose.SignatureAlgorithm(k.Alg) {
	case jose.RS256:
		if _, ok := jwk.Key.(*rsa.PublicKey); !ok {
			return publicKey{}, fmt.Errorf("key %q: %s needs an RSA key, have %T", k.KID, k.Alg, jwk.Key)
		}
	case jose.ES256:
		if ec, ok := jwk.Key.(*ecdsa.PublicKey); !ok || ec.Curve != elliptic.P256() {
			return publicKey{}, fmt.Errorf("key %q: %s needs a P-256 key", k.KID, k.Alg)
		}
	default:
		return publicKey{}, fmt.Errorf("key %q: unsupported algorithm %q", k.KID, k.Alg)
	}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return publicKey{}, fmt.Errorf("key %q: thumbprint: %w", k.KID, err)
	}
	if base64.RawURLEncoding.EncodeToString(tp) != k.KID || jwk.KeyID != k.KID || jwk.Algorithm != k.Alg {
		return publicKey{}, fmt.Errorf("key %q: public key does not match its kid and alg", k.KID)
	}
	return publicKey{kid: k.KID, alg: jose.SignatureAlgorithm(k.Alg), jwk: jwk}, nil
}

// ErrKeyUnsealable means a stored private key did not open: the key set
// was sealed under another master key (every replica must share one), or
// the stored value was altered.
var ErrKeyUnsealable = errors.New("oidc: cannot open the sealed signing key (is this the master key the key set was created with?)")

// openSigner decrypts k's private key and builds the jose.Signer that
// signs with it: once per key, not per token.
func openSigner(k keyDoc, pub publicKey, sealer *secrets.Sealer) (jose.Signer, error) {
	if k.Private == "" {
		return nil, fmt.Errorf("key %q: no private key stored", k.KID)
	}
	// The error of secrets.Open names no key material; it is kept for
	// its reason (wrong key or tampered value).
	b64, err := sealer.Open(k.Private, sealContext(k.KID))
	if err != nil {
		return nil, fmt.Errorf("key %q: %w: %w", k.KID, ErrKeyUnsealable, err)
	}
	der, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("key %q: private key is not base64", k.KID)
	}
	// A parse error may quote the DER; it is not wrapped.
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("key %q: private key does not parse as PKCS #8", k.KID)
	}
	priv, ok := parsed.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key %q: private key of type %T cannot sign", k.KID, parsed)
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if eq, ok := priv.Public().(equaler); !ok || !eq.Equal(pub.jwk.Key) {
		return nil, fmt.Errorf("key %q: private key does not match the public key", k.KID)
	}
	opts := (&jose.SignerOptions{}).WithType("JWT")
	// A JSONWebKey with a KeyID makes go-jose put "kid" in the header.
	s, err := jose.NewSigner(jose.SigningKey{
		Algorithm: pub.alg,
		Key:       jose.JSONWebKey{Key: priv, KeyID: k.KID, Algorithm: k.Alg},
	}, opts)
	if err != nil {
		return nil, fmt.Errorf("key %q: signer: %w", k.KID, err)
	}
	return s, nil
}
