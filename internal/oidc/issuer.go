package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/pipelined/pipelined/internal/secrets"
	"github.com/pipelined/pipelined/internal/store"
)

// KeyStore keeps the key set; store.Store satisfies it.
type KeyStore interface {
	SigningKeys(ctx context.Context) (store.SigningKeys, error)
	SwapSigningKeys(ctx context.Context, prev int64, doc []byte) (store.SigningKeys, error)
}

// Config configures an Issuer. Store, Sealer and Issuer are required.
type Config struct {
	Store KeyStore
	// Sealer seals the private keys in the store. Every replica must use
	// the same master key.
	Sealer *secrets.Sealer
	// Issuer is the issuer URL: the server's public URL, http(s), without
	// a trailing slash, query or fragment. It is the tokens' iss and the
	// base of the discovery and JWKS URLs.
	Issuer string
	// Algorithm of new keys: "RS256" (default) or "ES256". Keys already
	// stored keep theirs, so a change takes effect when a key generated
	// under it starts signing: at the rotation after next.
	Algorithm string
	// RotationPeriod is how long a key signs before the next takes over
	// (default 24h). The next key is published for this long before it
	// signs.
	RotationPeriod time.Duration
	// MaxTokenTTL is the longest lifetime of a token (default 1h): Sign
	// refuses claims whose exp is later than now + MaxTokenTTL + Leeway,
	// and a retired key stays published for MaxTokenTTL + RetentionMargin
	// after it stopped signing.
	MaxTokenTTL time.Duration
	// ReloadInterval is how often Run reads the key set from the store, so
	// that a replica publishes keys another replica created (default and
	// maximum 1m: RetentionMargin counts on it).
	ReloadInterval time.Duration
	// Claims is the discovery document's claims_supported (default
	// DefaultClaims).
	Claims []string
	// Now is the clock (default time.Now); tests move it.
	Now    func() time.Time
	Logger *slog.Logger
}

// Defaults and bounds of Config and of the checks on tokens.
const (
	DefaultRotationPeriod = 24 * time.Hour
	DefaultMaxTokenTTL    = time.Hour
	DefaultReloadInterval = time.Minute
	maxReloadInterval     = time.Minute

	// Leeway is the clock difference tolerated between the signer and a
	// verifier: Verify accepts nbf and iat up to Leeway in the future, and
	// Sign accepts an exp up to Leeway past now + MaxTokenTTL (a caller's
	// exp rounded up to the second, or computed from a clock a moment
	// ahead).
	Leeway = time.Minute
	// RetentionMargin is how long, beyond MaxTokenTTL, a key stays
	// published after it stopped signing. It covers the Leeway on exp
	// (1m), a replica still signing with the old key until it reloads
	// after a forced rotation (ReloadInterval, at most 1m), and up to 3m of
	// clock skew between replicas and verifiers.
	RetentionMargin = 5 * time.Minute
)

// DefaultClaims is the default claims_supported: the registered claims of
// RFC 7519 that pipelined's tokens carry.
var DefaultClaims = []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti"}

// Errors of Verify (test with errors.Is; the errors wrapping them say
// more). ErrUnknownKey is also an ErrBadSignature.
var (
	ErrMalformed    = errors.New("oidc: malformed token")
	ErrBadSignature = errors.New("oidc: bad token signature")
	ErrUnknownKey   = fmt.Errorf("%w: signed by an unknown key", ErrBadSignature)
	ErrExpired      = errors.New("oidc: token expired")
	ErrNotYetValid  = errors.New("oidc: token not valid yet")
	ErrWrongIssuer  = errors.New("oidc: token of another issuer")
)

// ErrInvalidClaims is Sign's refusal of claims that break the issuer's
// rules (iss, exp and MaxTokenTTL).
var ErrInvalidClaims = errors.New("oidc: claims cannot be signed")

// Issuer signs and verifies tokens with the stored key set and serves
// discovery. It is safe for concurrent use.
type Issuer struct {
	cfg           Config
	alg           string
	claims        []string
	log           *slog.Logger
	discoveryPath string
	jwksPath      string

	// cur is the decoded key set: what Sign, Verify and Handler use,
	// replaced whole when the set changes.
	cur atomic.Pointer[keySet]
	// mu serializes this Issuer's store reads and writes of the key set
	// (load, create, rotate), so a rotation due wakes one caller, not all.
	mu sync.Mutex
}

// keySet is a decoded version of the stored key set, immutable once
// published in Issuer.cur.
type keySet struct {
	version  int64
	doc      keySetDoc
	rotateAt time.Time
	// signer signs with doc.Signing; signingKID names it.
	signer     jose.Signer
	signingKID string
	// keys are the published keys by kid: signing, next and verification.
	keys      map[string]publicKey
	jwks      encoded
	discovery encoded
}

// New returns an Issuer on the stored key set, creating the set (by
// compare-and-swap, so that replicas starting together end up with one)
// when there is none.
func New(ctx context.Context, cfg Config) (*Issuer, error) {
	i := &Issuer{cfg: cfg}
	if err := i.configure(); err != nil {
		return nil, err
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	err := i.loadLocked(ctx)
	if errors.Is(err, store.ErrNotFound) {
		err = i.createLocked(ctx)
	}
	if err != nil {
		return nil, err
	}
	return i, nil
}

func (i *Issuer) configure() error {
	c := &i.cfg
	if c.Store == nil || c.Sealer == nil {
		return errors.New("oidc: Config.Store and Config.Sealer are required")
	}
	u, err := url.Parse(c.Issuer)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" ||
		u.RawQuery != "" || u.Fragment != "" || u.User != nil || strings.HasSuffix(c.Issuer, "/") {
		return fmt.Errorf("oidc: issuer %q: want an http(s) URL without trailing slash, query or fragment", c.Issuer)
	}
	i.discoveryPath = u.EscapedPath() + "/.well-known/openid-configuration"
	i.jwksPath = u.EscapedPath() + "/.well-known/jwks"
	switch c.Algorithm {
	case "":
		i.alg = string(jose.RS256)
	case string(jose.RS256), string(jose.ES256):
		i.alg = c.Algorithm
	default:
		return fmt.Errorf("oidc: unsupported algorithm %q (want RS256 or ES256)", c.Algorithm)
	}
	if c.RotationPeriod == 0 {
		c.RotationPeriod = DefaultRotationPeriod
	}
	if c.MaxTokenTTL == 0 {
		c.MaxTokenTTL = DefaultMaxTokenTTL
	}
	if c.ReloadInterval == 0 {
		c.ReloadInterval = DefaultReloadInterval
	}
	if c.RotationPeriod < 0 || c.MaxTokenTTL < 0 || c.ReloadInterval < 0 || c.ReloadInterval > maxReloadInterval {
		return fmt.Errorf("oidc: RotationPeriod and MaxTokenTTL must be positive, ReloadInterval in (0, %v]", maxReloadInterval)
	}
	i.claims = c.Claims
	if len(i.claims) == 0 {
		i.claims = DefaultClaims
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	i.log = c.Logger
	if i.log == nil {
		i.log = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Algorithm is the algorithm of the keys this Issuer generates.
func (i *Issuer) Algorithm() string { return i.alg }

// Issuer is the issuer URL (the tokens' iss).
func (i *Issuer) Issuer() string { return i.cfg.Issuer }

// DiscoveryPath and JWKSPath are the URL paths Handler serves.
func (i *Issuer) DiscoveryPath() string { return i.discoveryPath }

// JWKSPath is the URL path of the JWKS.
func (i *Issuer) JWKSPath() string { return i.jwksPath }

// SigningKeyID is the kid of the key Sign uses now (without rotating).
func (i *Issuer) SigningKeyID() string { return i.cur.Load().signingKID }

// Version is the version of the key set in use.
func (i *Issuer) Version() int64 { return i.cur.Load().version }

// Sign marshals claims to JSON as the payload of a JWT and signs it with
// the current signing key, rotating first if the rotation is due. The
// claims must carry iss equal to the Issuer and an exp no later than
// now + MaxTokenTTL (+ Leeway): the key retention rule relies on it.
func (i *Issuer) Sign(ctx context.Context, claims any) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidClaims, err)
	}
	now := i.cfg.Now()
	if err := i.checkSignable(payload, now); err != nil {
		return "", err
	}
	ks := i.cur.Load()
	if !now.Before(ks.rotateAt) {
		// The signing window of the cached key is over: never sign with it
		// again, even when the store cannot be reached.
		if ks, err = i.refresh(ctx); err != nil {
			return "", err
		}
	}
	jws, err := ks.signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("oidc: sign: %w", err)
	}
	return jws.CompactSerialize()
}

// checkSignable enforces the claims the retention rule and Verify need.
func (i *Issuer) checkSignable(payload []byte, now time.Time) error {
	var c registeredClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return fmt.Errorf("%w: want a JSON object with iss and exp: %w", ErrInvalidClaims, err)
	}
	if c.Issuer == nil || *c.Issuer != i.cfg.Issuer {
		return fmt.Errorf("%w: iss must be %q", ErrInvalidClaims, i.cfg.Issuer)
	}
	if c.Expiry == nil {
		return fmt.Errorf("%w: exp is required", ErrInvalidClaims)
	}
	if limit := now.Add(i.cfg.MaxTokenTTL + Leeway); c.Expiry.t.After(limit) {
		return fmt.Errorf("%w: exp %v is beyond the longest token lifetime (%v)",
			ErrInvalidClaims, c.Expiry.t.UTC(), i.cfg.MaxTokenTTL)
	}
	return nil
}

// Verify checks a compact JWT against the published keys (signing, next
// and verification keys alike: another replica may sign with the next
// key a moment before this one reloads) and its iss, exp, nbf and iat
// (nbf and iat with Leeway), and returns its payload. The audience is the
// caller's to check.
func (i *Issuer) Verify(ctx context.Context, token string) (json.RawMessage, error) {
	jws, err := jose.ParseSignedCompact(token, supportedAlgs)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if len(jws.Signatures) != 1 {
		return nil, fmt.Errorf("%w: want one signature", ErrMalformed)
	}
	h := jws.Signatures[0].Header
	ks := i.cur.Load()
	key, ok := ks.keys[h.KeyID]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownKey, h.KeyID)
	}
	if jose.SignatureAlgorithm(h.Algorithm) != key.alg {
		return nil, fmt.Errorf("%w: alg %q, key %q is %s", ErrBadSignature, h.Algorithm, h.KeyID, key.alg)
	}
	payload, err := jws.Verify(key.jwk.Key)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	var c registeredClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, fmt.Errorf("%w: claims: %w", ErrMalformed, err)
	}
	if c.Issuer == nil || *c.Issuer != i.cfg.Issuer {
		return nil, ErrWrongIssuer
	}
	now := i.cfg.Now()
	if c.Expiry == nil {
		return nil, fmt.Errorf("%w: no exp", ErrMalformed)
	}
	if !now.Before(c.Expiry.t) {
		return nil, fmt.Errorf("%w at %v", ErrExpired, c.Expiry.t.UTC())
	}
	if c.NotBefore != nil && c.NotBefore.t.After(now.Add(Leeway)) {
		return nil, fmt.Errorf("%w: nbf %v", ErrNotYetValid, c.NotBefore.t.UTC())
	}
	if c.IssuedAt != nil && c.IssuedAt.t.After(now.Add(Leeway)) {
		return nil, fmt.Errorf("%w: iat %v", ErrNotYetValid, c.IssuedAt.t.UTC())
	}
	return json.RawMessage(payload), nil
}

// registeredClaims are the claims Sign and Verify check. Pointers tell a
// missing claim from a zero one; a claim of the wrong JSON type fails to
// decode.
type registeredClaims struct {
	Issuer    *string      `json:"iss"`
	Expiry    *numericDate `json:"exp"`
	NotBefore *numericDate `json:"nbf"`
	IssuedAt  *numericDate `json:"iat"`
}

// numericDate is RFC 7519's NumericDate: seconds since the epoch, possibly
// fractional.
type numericDate struct{ t time.Time }

func (d *numericDate) UnmarshalJSON(b []byte) error {
	// encoding/json has checked that b is one JSON value; a number starts
	// with '-' or a digit, and JSON's number syntax is a subset of
	// ParseFloat's.
	if len(b) == 0 || (b[0] != '-' && (b[0] < '0' || b[0] > '9')) {
		return fmt.Errorf("NumericDate: want a number, have %.20s", b)
	}
	f, err := strconv.ParseFloat(string(b), 64)
	// Beyond ±2^53 seconds a date is nonsense (and loses precision).
	if err != nil || math.Abs(f) > 1<<53 {
		return fmt.Errorf("NumericDate: %.20s is out of range", b)
	}
	sec, frac := math.Modf(f)
	d.t = time.Unix(int64(sec), int64(frac*1e9))
	return nil
}

// Rotate rotates now, due or not: the next key starts signing, a new next
// key is generated and the signing key retires. When another replica
// changed the key set first, Rotate uses what it stored instead.
func (i *Issuer) Rotate(ctx context.Context) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	// From the latest version: a rotation based on a stale one would only
	// conflict.
	if err := i.loadLocked(ctx); err != nil {
		return err
	}
	return i.rotateLocked(ctx, i.cur.Load())
}

// Reload reads the key set from the store and uses it if it changed.
func (i *Issuer) Reload(ctx context.Context) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.loadLocked(ctx)
}

// refresh brings the key set up to date when the rotation is due: another
// replica may have rotated already, else this one rotates.
func (i *Issuer) refresh(ctx context.Context) (*keySet, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	// Another caller may have refreshed while this one waited.
	if i.cfg.Now().Before(i.cur.Load().rotateAt) {
		return i.cur.Load(), nil
	}
	if err := i.loadLocked(ctx); err != nil {
		return nil, err
	}
	if ks := i.cur.Load(); i.cfg.Now().Before(ks.rotateAt) {
		return ks, nil
	}
	if err := i.rotateLocked(ctx, i.cur.Load()); err != nil {
		return nil, err
	}
	ks := i.cur.Load()
	if !i.cfg.Now().Before(ks.rotateAt) {
		// Only with a clock moved past a whole rotation period during
		// the rotation (tests); refuse rather than sign late.
		return nil, errors.New("oidc: signing key expired during rotation; try again")
	}
	return ks, nil
}

// Run keeps the key set current until ctx ends: it reloads the set every
// ReloadInterval (so that this replica publishes the keys another one
// created) and rotates when the rotation is due. Errors are logged and
// retried at the next tick; Sign does not depend on Run to rotate.
func (i *Issuer) Run(ctx context.Context) {
	for {
		wait := i.cfg.ReloadInterval
		if until := i.cur.Load().rotateAt.Sub(i.cfg.Now()); until < wait {
			wait = max(until, 0)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if !i.cfg.Now().Before(i.cur.Load().rotateAt) {
			if _, err := i.refresh(ctx); err != nil && ctx.Err() == nil {
				i.log.ErrorContext(ctx, "oidc: rotate signing keys", "err", err)
				i.pause(ctx)
			}
			continue
		}
		if err := i.Reload(ctx); err != nil && ctx.Err() == nil {
			i.log.ErrorContext(ctx, "oidc: reload signing keys", "err", err)
		}
	}
}

// pause waits one ReloadInterval after a failed rotation, which Run would
// otherwise retry at once (the rotation stays due).
func (i *Issuer) pause(ctx context.Context) {
	t := time.NewTimer(i.cfg.ReloadInterval)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// loadLocked reads the stored key set and decodes it when its version is
// newer than the one in use (store.ErrNotFound when none is stored).
func (i *Issuer) loadLocked(ctx context.Context) error {
	k, err := i.cfg.Store.SigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("oidc: load signing keys: %w", err)
	}
	cur := i.cur.Load()
	if cur != nil && k.Version <= cur.version {
		return nil
	}
	var doc keySetDoc
	if err := json.Unmarshal(k.Doc, &doc); err != nil {
		return fmt.Errorf("oidc: load signing keys version %d: %w", k.Version, err)
	}
	ks, err := i.decode(k.Version, doc)
	if err != nil {
		return fmt.Errorf("oidc: load signing keys version %d: %w", k.Version, err)
	}
	i.install(ks)
	if cur != nil {
		i.log.InfoContext(ctx, "oidc: signing keys reloaded",
			"version", ks.version, "signing_kid", ks.signingKID, "next_kid", doc.Next.KID,
			"next_rotation", ks.rotateAt)
	}
	return nil
}

// createLocked stores the first key set: a signing key and a next key.
func (i *Issuer) createLocked(ctx context.Context) error {
	now := i.cfg.Now()
	signing, err := generateKey(i.alg, i.cfg.Sealer, now)
	if err != nil {
		return err
	}
	next, err := generateKey(i.alg, i.cfg.Sealer, now)
	if err != nil {
		return err
	}
	doc := keySetDoc{
		Format:       docFormat,
		NextRotation: now.Add(i.cfg.RotationPeriod).UTC(),
		Signing:      signing,
		Next:         next,
		Verification: []keyDoc{},
	}
	return i.swapLocked(ctx, 0, nil, doc, "oidc: signing keys created")
}

// rotateLocked stores the successor of cur: Next signs, a new Next is
// generated, Signing retires until now + MaxTokenTTL + RetentionMargin,
// and verification keys past their time are dropped.
func (i *Issuer) rotateLocked(ctx context.Context, cur *keySet) error {
	now := i.cfg.Now()
	next, err := generateKey(i.alg, i.cfg.Sealer, now)
	if err != nil {
		return err
	}
	retired := cur.doc.Signing
	retired.Private = "" // nothing signs with it again
	retired.Until = now.Add(i.cfg.MaxTokenTTL + RetentionMargin).UTC()
	verification := []keyDoc{retired}
	for _, v := range cur.doc.Verification {
		if now.Before(v.Until) {
			verification = append(verification, v)
		}
	}
	doc := keySetDoc{
		Format:       docFormat,
		NextRotation: now.Add(i.cfg.RotationPeriod).UTC(),
		Signing:      cur.doc.Next,
		Next:         next,
		Verification: verification,
	}
	return i.swapLocked(ctx, cur.version, cur, doc, "oidc: signing keys rotated")
}

// swapLocked stores doc as the successor of version prev. It decodes doc
// first, so that a set this replica cannot use (its new signing key does
// not open) is never stored. On a conflict it loads what the winner
// stored: never overwrite.
func (i *Issuer) swapLocked(ctx context.Context, prev int64, cur *keySet, doc keySetDoc, event string) error {
	b, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("oidc: encode signing keys: %w", err)
	}
	ks, err := i.decode(prev+1, doc)
	if err != nil {
		return fmt.Errorf("oidc: new signing keys: %w", err)
	}
	stored, err := i.cfg.Store.SwapSigningKeys(ctx, prev, b)
	if errors.Is(err, store.ErrConflict) {
		i.log.InfoContext(ctx, "oidc: another replica changed the signing keys first; using theirs", "version", prev)
		return i.loadLocked(ctx)
	}
	if err != nil {
		return fmt.Errorf("oidc: store signing keys: %w", err)
	}
	ks.version = stored.Version
	i.install(ks)
	attrs := []any{"version", ks.version, "signing_kid", ks.signingKID, "next_kid", doc.Next.KID,
		"next_rotation", ks.rotateAt}
	if cur != nil {
		attrs = append(attrs, "retired_kid", cur.signingKID, "retired_until", doc.Verification[0].Until)
	}
	i.log.InfoContext(ctx, event, attrs...)
	return nil
}

// decode checks a key set and prepares it for use: the signing key's
// private key is decrypted and its signer built here, once per version
// (every version has a new signing key), never per token.
func (i *Issuer) decode(version int64, doc keySetDoc) (*keySet, error) {
	if doc.Format != docFormat {
		return nil, fmt.Errorf("unknown key set format %d (this server knows %d)", doc.Format, docFormat)
	}
	ks := &keySet{
		version:    version,
		doc:        doc,
		rotateAt:   doc.NextRotation,
		signingKID: doc.Signing.KID,
		keys:       make(map[string]publicKey, 2+len(doc.Verification)),
	}
	var published []publicKey // in JWKS order
	for _, k := range append([]keyDoc{doc.Signing, doc.Next}, doc.Verification...) {
		pub, err := decodePublic(k)
		if err != nil {
			return nil, err
		}
		if _, dup := ks.keys[k.KID]; dup {
			return nil, fmt.Errorf("key %q appears twice", k.KID)
		}
		ks.keys[k.KID] = pub
		published = append(published, pub)
	}
	var err error
	if ks.signer, err = openSigner(doc.Signing, ks.keys[doc.Signing.KID], i.cfg.Sealer); err != nil {
		return nil, err
	}
	if ks.jwks, err = encodeJWKS(published); err != nil {
		return nil, err
	}
	if ks.discovery, err = i.encodeDiscovery(published); err != nil {
		return nil, err
	}
	return ks, nil
}

// install makes ks the key set in use.
func (i *Issuer) install(ks *keySet) { i.cur.Store(ks) }
