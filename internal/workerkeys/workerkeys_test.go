package workerkeys

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pipelined/pipelined/internal/caller"
	"github.com/pipelined/pipelined/internal/secrets"
	"github.com/pipelined/pipelined/internal/sigv4"
	"github.com/pipelined/pipelined/internal/store"
	"github.com/pipelined/pipelined/internal/store/sqlite"
	"github.com/pipelined/pipelined/internal/wire"
)

var (
	customType     = store.ActionTypeKey{Category: "Build", Owner: "Custom", Provider: "Tool", Version: "1"}
	thirdPartyType = store.ActionTypeKey{Category: "Deploy", Owner: "ThirdParty", Provider: "Partner", Version: "2"}
	idPattern      = regexp.MustCompile(`^PLWK[A-Z2-7]{16}$`)
	secretPattern  = regexp.MustCompile(`^[A-Za-z0-9]{40}$`)
)

// countingStore counts GetWorkerKey calls and can hold one after it read.
type countingStore struct {
	store.WorkerKeys
	reads atomic.Int64
	// afterRead, when set, runs after each read (before its answer returns).
	mu        sync.Mutex
	afterRead func()
}

func (c *countingStore) GetWorkerKey(ctx context.Context, id string) (store.WorkerKey, error) {
	c.reads.Add(1)
	k, err := c.WorkerKeys.GetWorkerKey(ctx, id)
	c.mu.Lock()
	hook := c.afterRead
	c.mu.Unlock()
	if hook != nil {
		hook()
	}
	return k, err
}

type fixture struct {
	path   string
	store  *sqlite.Store
	counts *countingStore
	sealer *secrets.Sealer
	logs   *bytes.Buffer
	clock  *clock
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pipelined.db")
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key := make([]byte, secrets.KeySize)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	sealer, err := secrets.New(key)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{path: path, store: st, counts: &countingStore{WorkerKeys: st}, sealer: sealer,
		logs: &bytes.Buffer{}, clock: &clock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}}
}

// service is a Service (one replica) on the fixture's store, with the
// fixture's clock.
func (f *fixture) service(ttl time.Duration) *Service {
	s := New(f.counts, f.sealer, "123456789012", ttl, slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	s.now = f.clock.now
	return s
}

func wantUnknown(t *testing.T, what string, cred sigv4.Credential, err error) {
	t.Helper()
	if !errors.Is(err, sigv4.ErrUnknownAccessKey) {
		t.Fatalf("%s: err = %v, want ErrUnknownAccessKey", what, err)
	}
	if cred.SecretAccessKey != "" || cred.Scope != nil {
		t.Fatalf("%s: a credential came with the error: %+v", what, cred)
	}
}

func TestIssueAndLookup(t *testing.T) {
	f := newFixture(t)
	s := f.service(0)
	ctx := context.Background()
	if s.ttl != DefaultCacheTTL {
		t.Errorf("ttl = %v, want the default %v", s.ttl, DefaultCacheTTL)
	}

	is, err := s.Issue(ctx, customType, "build host 7")
	if err != nil {
		t.Fatal(err)
	}
	k := is.Key
	if !idPattern.MatchString(k.AccessKeyID) || !secretPattern.MatchString(is.SecretAccessKey) {
		t.Fatalf("issued id %q, secret of %d chars matching %v", k.AccessKeyID, len(is.SecretAccessKey), secretPattern.MatchString(is.SecretAccessKey))
	}
	if k.SealedSecret != "" || k.ActionType != customType || k.Description != "build host 7" || k.Created.IsZero() || !k.Active() {
		t.Fatalf("issued key = %+v", k)
	}

	cred, err := s.Lookup(ctx, k.AccessKeyID)
	if err != nil {
		t.Fatal(err)
	}
	if cred.AccessKeyID != k.AccessKeyID || cred.SecretAccessKey != is.SecretAccessKey || cred.SessionToken != "" || !cred.Expires.IsZero() {
		t.Fatalf("credential = %+v", cred)
	}
	if want := "arn:aws:iam::123456789012:user/pipelined-worker/" + k.AccessKeyID; cred.Principal != want {
		t.Errorf("principal = %q, want %q", cred.Principal, want)
	}
	scope, ok := cred.Scope.(*caller.WorkerScope)
	if !ok || scope == nil || scope.ActionType != customType {
		t.Fatalf("scope = %#v", cred.Scope)
	}
	if scope.String() != "Build/Custom/Tool/1" {
		t.Errorf("scope names the type %q", scope.String())
	}

	// A ThirdParty key; distinct ids and secrets.
	is2, err := s.Issue(ctx, thirdPartyType, "")
	if err != nil {
		t.Fatal(err)
	}
	if is2.Key.AccessKeyID == k.AccessKeyID || is2.SecretAccessKey == is.SecretAccessKey {
		t.Fatal("two keys share an id or a secret")
	}
	cred2, err := s.Lookup(ctx, is2.Key.AccessKeyID)
	if err != nil || cred2.Scope.(*caller.WorkerScope).ActionType != thirdPartyType {
		t.Fatalf("third-party key: %+v, %v", cred2, err)
	}

	got, err := s.Get(ctx, k.AccessKeyID)
	if err != nil || got.AccessKeyID != k.AccessKeyID || got.SealedSecret != "" || got.ActionType != customType {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	list, err := s.List(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("List = %+v, %v", list, err)
	}
	for _, l := range list {
		if l.SealedSecret != "" {
			t.Fatal("List returned a sealed secret")
		}
	}
	if _, err := s.Get(ctx, "PLWKAAAAAAAAAAAAAAAA"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get of an unknown key: %v", err)
	}
	if _, err := s.Get(ctx, "not-a-key"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get of a malformed id: %v", err)
	}
	if strings.Contains(f.logs.String(), is.SecretAccessKey) || strings.Contains(f.logs.String(), is2.SecretAccessKey) {
		t.Fatal("a secret was logged")
	}
	if !strings.Contains(f.logs.String(), k.AccessKeyID) {
		t.Error("issuing was not logged")
	}
}

func TestIssueValidation(t *testing.T) {
	f := newFixture(t)
	s := f.service(0)
	ctx := context.Background()
	for _, owner := range []string{"AWS", "", "custom"} {
		typ := customType
		typ.Owner = owner
		_, err := s.Issue(ctx, typ, "")
		e, ok := wire.AsError(err)
		if !ok || e.Code != wire.ErrValidation || !strings.Contains(e.Message, "actionTypeId.owner") {
			t.Errorf("owner %q: err = %v, want a ValidationException naming actionTypeId.owner", owner, err)
		}
	}
	_, err := s.Issue(ctx, customType, strings.Repeat("é", MaxDescription+1))
	if e, ok := wire.AsError(err); !ok || e.Code != wire.ErrValidation || !strings.Contains(e.Message, "'description'") {
		t.Errorf("long description: err = %v, want a ValidationException naming description", err)
	}
	// 256 characters is fine, whatever their bytes.
	if _, err := s.Issue(ctx, customType, strings.Repeat("é", MaxDescription)); err != nil {
		t.Errorf("a 256-character description: %v", err)
	}
	if list, _ := s.List(ctx); len(list) != 1 {
		t.Errorf("refused issues stored keys: %d keys", len(list))
	}
}

func TestSecretIsSealedAtRest(t *testing.T) {
	f := newFixture(t)
	s := f.service(0)
	ctx := context.Background()
	is, err := s.Issue(ctx, customType, "")
	if err != nil {
		t.Fatal(err)
	}
	row, err := f.store.GetWorkerKey(ctx, is.Key.AccessKeyID)
	if err != nil {
		t.Fatal(err)
	}
	if !secrets.IsSealed(row.SealedSecret) || strings.Contains(row.SealedSecret, is.SecretAccessKey) {
		t.Fatalf("stored secret %q is not sealed", row.SealedSecret)
	}
	if clear, err := f.sealer.Open(row.SealedSecret, sealContext(is.Key.AccessKeyID)); err != nil || clear != is.SecretAccessKey {
		t.Fatalf("the sealed secret does not open to the secret: %v", err)
	}
	// Nowhere in the database files either (WAL included).
	files, _ := filepath.Glob(f.path + "*")
	if len(files) == 0 {
		t.Fatal("no database files")
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(is.SecretAccessKey)) {
			t.Fatalf("%s holds the secret in clear", name)
		}
	}

	// The sealed secret is bound to its key's id: copied to another key's
	// row, it does not open, and that key does not work.
	other := "PLWKQQQQQQQQQQQQQQQQ"
	if _, err := f.store.CreateWorkerKey(ctx, store.WorkerKey{AccessKeyID: other, SealedSecret: row.SealedSecret, ActionType: customType}); err != nil {
		t.Fatal(err)
	}
	cred, err := s.Lookup(ctx, other)
	if err == nil || cred.SecretAccessKey != "" {
		t.Fatalf("a key with another key's sealed secret works: %+v, %v", cred, err)
	}
	if errors.Is(err, sigv4.ErrUnknownAccessKey) {
		t.Fatalf("a secret that does not open is reported as an unknown key, not a failure: %v", err)
	}
}

func TestLookupRefusesUnknownMalformedAndRevoked(t *testing.T) {
	f := newFixture(t)
	s := f.service(time.Minute)
	ctx := context.Background()
	is, err := s.Issue(ctx, customType, "")
	if err != nil {
		t.Fatal(err)
	}
	id := is.Key.AccessKeyID

	// Malformed ids never reach the store.
	for _, bad := range []string{"", "PLWK", "AKIAIOSFODNN7EXAMPLE", strings.ToLower(id), id + "A", id[:IDLen-1], "PLWK" + strings.Repeat("1", 16), "PLWK" + strings.Repeat("A", 15) + "=", "PLAKTESTROOT00000000"} {
		cred, err := s.Lookup(ctx, bad)
		wantUnknown(t, "malformed "+bad, cred, err)
	}
	if n := f.counts.reads.Load(); n != 0 {
		t.Fatalf("malformed ids read the store %d times", n)
	}
	cred, err := s.Lookup(ctx, "PLWKAAAAAAAAAAAAAAAA")
	wantUnknown(t, "unknown", cred, err)

	if _, err := s.Lookup(ctx, id); err != nil {
		t.Fatal(err)
	}
	rev, err := s.Revoke(ctx, id)
	if err != nil || rev.Active() || rev.SealedSecret != "" {
		t.Fatalf("Revoke = %+v, %v", rev, err)
	}
	// At once on this replica, although the positive answer was cached for
	// a minute.
	cred, err = s.Lookup(ctx, id)
	wantUnknown(t, "revoked", cred, err)
	if again, err := s.Revoke(ctx, id); err != nil || !again.Revoked.Equal(rev.Revoked) {
		t.Fatalf("revoking twice = %+v, %v", again, err)
	}
	if _, err := s.Revoke(ctx, "PLWKAAAAAAAAAAAAAAAA"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("revoking an unknown key: %v", err)
	}
	if _, err := s.Revoke(ctx, "nonsense"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("revoking a malformed id: %v", err)
	}
	if strings.Contains(f.logs.String(), is.SecretAccessKey) {
		t.Fatal("the secret was logged")
	}
}

// TestCacheExpiry: answers are cached for the TTL, positive and negative;
// another replica's revocation takes effect here when the cached answer
// expires.
func TestCacheExpiry(t *testing.T) {
	f := newFixture(t)
	a, b := f.service(10*time.Second), f.service(10*time.Second) // two replicas on one database
	ctx := context.Background()
	is, err := a.Issue(ctx, customType, "")
	if err != nil {
		t.Fatal(err)
	}
	id := is.Key.AccessKeyID
	for range 3 {
		if _, err := b.Lookup(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.counts.reads.Load(); n != 1 {
		t.Fatalf("3 lookups read the store %d times, want 1", n)
	}
	if _, err := a.Revoke(ctx, id); err != nil {
		t.Fatal(err)
	}
	f.clock.advance(9 * time.Second)
	if _, err := b.Lookup(ctx, id); err != nil {
		t.Fatalf("within the TTL the other replica still has the key cached: %v", err)
	}
	f.clock.advance(time.Second)
	cred, err := b.Lookup(ctx, id)
	wantUnknown(t, "revoked elsewhere, after the TTL", cred, err)

	// Negative answers are cached too, and expire.
	reads := f.counts.reads.Load()
	later := "PLWKBBBBBBBBBBBBBBBB"
	for range 3 {
		cred, err := b.Lookup(ctx, later)
		wantUnknown(t, "unknown", cred, err)
	}
	if n := f.counts.reads.Load() - reads; n != 1 {
		t.Fatalf("3 lookups of an unknown key read the store %d times, want 1", n)
	}
	if _, err := f.store.CreateWorkerKey(ctx, store.WorkerKey{AccessKeyID: later, SealedSecret: f.sealer.Seal("s3cr3t", sealContext(later)), ActionType: thirdPartyType}); err != nil {
		t.Fatal(err)
	}
	cred, err = b.Lookup(ctx, later)
	wantUnknown(t, "created elsewhere, within the TTL", cred, err)
	f.clock.advance(10 * time.Second)
	if cred, err := b.Lookup(ctx, later); err != nil || cred.SecretAccessKey != "s3cr3t" {
		t.Fatalf("after the TTL: %+v, %v", cred, err)
	}

	// A negative TTL caches nothing.
	c := f.service(-1)
	reads = f.counts.reads.Load()
	c.Lookup(ctx, later)
	c.Lookup(ctx, later)
	if n := f.counts.reads.Load() - reads; n != 2 {
		t.Fatalf("without a cache 2 lookups read %d times", n)
	}
}

// TestRevokeDuringLookup: a lookup that read the key just before it was
// revoked answers its own request, but does not cache the key.
func TestRevokeDuringLookup(t *testing.T) {
	f := newFixture(t)
	s := f.service(time.Hour)
	ctx := context.Background()
	is, err := s.Issue(ctx, customType, "")
	if err != nil {
		t.Fatal(err)
	}
	id := is.Key.AccessKeyID
	read, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	f.counts.mu.Lock()
	f.counts.afterRead = func() { once.Do(func() { close(read); <-release }) }
	f.counts.mu.Unlock()
	done := make(chan error)
	go func() { _, err := s.Lookup(ctx, id); done <- err }()
	<-read // the lookup holds the active key
	if _, err := s.Revoke(ctx, id); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("the lookup in flight: %v", err)
	}
	cred, err := s.Lookup(ctx, id)
	wantUnknown(t, "after the revocation", cred, err)
}

func TestCacheIsBounded(t *testing.T) {
	f := newFixture(t)
	s := f.service(time.Hour)
	ctx := context.Background()
	is, err := s.Issue(ctx, customType, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lookup(ctx, is.Key.AccessKeyID); err != nil {
		t.Fatal(err)
	}
	for i := range maxCached + 100 {
		id := Prefix + idEncoding.EncodeToString([]byte{byte(i >> 8), byte(i), 0, 0, 0, 0, 0, 0, 0, 1})
		if _, err := s.Lookup(ctx, id); !errors.Is(err, sigv4.ErrUnknownAccessKey) {
			t.Fatalf("%s: %v", id, err)
		}
	}
	s.mu.Lock()
	n := len(s.cache)
	_, kept := s.cache[is.Key.AccessKeyID]
	s.mu.Unlock()
	if n > maxCached {
		t.Fatalf("the cache holds %d entries, more than %d", n, maxCached)
	}
	if !kept {
		t.Error("made-up ids pushed a real key out of the cache")
	}
}

func TestRandomValues(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		id, err := randomID()
		if err != nil || !idPattern.MatchString(id) || !wellFormed(id) {
			t.Fatalf("id %q, %v", id, err)
		}
		sec, err := randomSecret()
		if err != nil || !secretPattern.MatchString(sec) {
			t.Fatalf("secret of %d chars, %v", len(sec), err)
		}
		if seen[id] || seen[sec] {
			t.Fatal("a repeated value")
		}
		seen[id], seen[sec] = true, true
	}
}
