package oidc

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/pipelined/pipelined/internal/secrets"
	"github.com/pipelined/pipelined/internal/store"
	"github.com/pipelined/pipelined/internal/store/sqlite"
)

// clock is a settable clock shared by the Issuers of a test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *clock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

// newSealer returns a Sealer under a fresh random master key.
func newSealer(t testing.TB) *secrets.Sealer {
	t.Helper()
	key := make([]byte, secrets.KeySize)
	_, _ = rand.Read(key)
	s, err := secrets.New(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// openStore opens a real SQLite store on a file of the test's temp dir;
// path, when not empty, opens that file instead (a second handle, as a
// second replica or a restart has).
func openStore(t testing.TB, path string) (*sqlite.Store, string) {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "pipelined.db")
	}
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st, path
}

// server serves an Issuer's Handler on a test server whose URL is the
// issuer URL. The handler is set once the Issuer exists (its Config needs
// the URL first).
type server struct {
	*httptest.Server
	h atomic.Pointer[http.Handler]
}

func newServer(t testing.TB) *server {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := s.h.Load()
		if h == nil {
			http.Error(w, "no issuer yet", http.StatusServiceUnavailable)
			return
		}
		(*h).ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) serve(i *Issuer) {
	h := i.Handler()
	s.h.Store(&h)
}

// env is one test's issuer: its store, sealer, clock and config.
type env struct {
	t      testing.TB
	clock  *clock
	sealer *secrets.Sealer
	store  KeyStore
	path   string
	cfg    Config
}

// newEnv makes an environment on a fresh SQLite store; issuer defaults
// to a test server's URL when empty.
func newEnv(t testing.TB, issuer string) *env {
	t.Helper()
	st, path := openStore(t, "")
	e := &env{t: t, clock: newClock(), sealer: newSealer(t), store: st, path: path}
	e.cfg = Config{
		Store:  st,
		Sealer: e.sealer,
		Issuer: issuer,
		Now:    e.clock.Now,
	}
	return e
}

func (e *env) issuer(mod ...func(*Config)) *Issuer {
	e.t.Helper()
	cfg := e.cfg
	for _, m := range mod {
		m(&cfg)
	}
	i, err := New(context.Background(), cfg)
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	return i
}

// claims are a job token's claims as the tests sign them.
type claims struct {
	Issuer   string   `json:"iss"`
	Subject  string   `json:"sub"`
	Audience []string `json:"aud,omitempty"`
	Expiry   int64    `json:"exp,omitempty"`
	IssuedAt int64    `json:"iat,omitempty"`
	NotBef   int64    `json:"nbf,omitempty"`
}

// tokenClaims are valid claims for i at now, living ttl.
func tokenClaims(i *Issuer, now time.Time, ttl time.Duration) claims {
	return claims{
		Issuer:   i.Issuer(),
		Subject:  "pipeline:app:stage:Deploy:action:Ship",
		Audience: []string{"sts.amazonaws.com"},
		Expiry:   now.Add(ttl).Unix(),
		IssuedAt: now.Unix(),
	}
}

func mustSign(t testing.TB, i *Issuer, c any) string {
	t.Helper()
	tok, err := i.Sign(context.Background(), c)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	return tok
}

// get fetches url and returns the response with its body read.
func get(t testing.TB, method, url string, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// jwksKIDs returns the kids an Issuer publishes, in JWKS order.
func jwksKIDs(t testing.TB, i *Issuer) []string {
	t.Helper()
	var set struct {
		Keys []struct {
			KID string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(i.cur.Load().jwks.body, &set); err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.KID)
	}
	return kids
}

// tokenKID returns the kid of a token's header.
func tokenKID(t testing.TB, token string) string {
	t.Helper()
	jws, err := parseCompact(token)
	if err != nil {
		t.Fatalf("parse %q: %v", token, err)
	}
	return jws.Signatures[0].Header.KeyID
}

func parseCompact(token string) (*jose.JSONWebSignature, error) {
	return jose.ParseSignedCompact(token, supportedAlgs)
}

// countingStore counts the calls an Issuer makes to its store.
type countingStore struct {
	KeyStore
	reads, swaps atomic.Int64
}

func (c *countingStore) SigningKeys(ctx context.Context) (store.SigningKeys, error) {
	c.reads.Add(1)
	return c.KeyStore.SigningKeys(ctx)
}

func (c *countingStore) SwapSigningKeys(ctx context.Context, prev int64, doc []byte) (store.SigningKeys, error) {
	c.swaps.Add(1)
	return c.KeyStore.SwapSigningKeys(ctx, prev, doc)
}
