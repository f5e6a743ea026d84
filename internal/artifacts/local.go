package artifacts

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/pipelined/pipelined/internal/engine"
	"github.com/pipelined/pipelined/internal/secrets"
	"github.com/pipelined/pipelined/internal/sigv4"
	"github.com/pipelined/pipelined/internal/store"
	"github.com/pipelined/pipelined/internal/wire"
)

// LocalConfig configures a Local minter.
type LocalConfig struct {
	Store  store.Store
	Sealer *secrets.Sealer
	// Root is the root credential (with its Principal): it may do
	// everything in the embedded store.
	Root      sigv4.Credential
	AccountID string
	// TTL is how long credentials last (DefaultTTL when zero).
	TTL time.Duration
	// EnsureBucket, when set, is called (once per bucket and process)
	// before credentials for a bucket are first handed out, so that the
	// pipeline's artifact bucket exists in the embedded store.
	EnsureBucket func(ctx context.Context, bucket string) error
	// ExpiredGrace is how long an expired credential is kept, so that a
	// request made with it is answered ExpiredToken rather than
	// InvalidAccessKeyId (default: an hour). Older ones are deleted.
	ExpiredGrace time.Duration
	Logger       *slog.Logger
	// Now is the clock (time.Now when nil); tests move it.
	Now func() time.Time
}

// Local issues and checks job credentials for the embedded artifact store.
// It is safe for concurrent use.
type Local struct {
	cfg LocalConfig
	log *slog.Logger

	mu        sync.Mutex
	sessions  map[string]*session // by access key id; immutable entries
	buckets   map[string]bool     // buckets EnsureBucket made sure of
	lastPrune time.Time
}

// session is a stored credential, opened.
type session struct {
	cred  sigv4.Credential
	scope Scope
}

// maxCachedSessions bounds the in-memory cache of opened credentials.
const maxCachedSessions = 4096

// pruneEvery is how often (at most) Mint deletes long-expired credentials.
const pruneEvery = time.Minute

// NewLocal returns a Local minter.
func NewLocal(cfg LocalConfig) (*Local, error) {
	if cfg.Store == nil || cfg.Sealer == nil {
		return nil, errors.New("artifacts: Local needs a store and a sealer")
	}
	if cfg.Root.AccessKeyID == "" || cfg.Root.SecretAccessKey == "" {
		return nil, errors.New("artifacts: Local needs the root credential")
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if err := CheckTTL(cfg.TTL); err != nil {
		return nil, err
	}
	if cfg.ExpiredGrace == 0 {
		cfg.ExpiredGrace = time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Local{cfg: cfg, log: log, sessions: map[string]*session{}, buckets: map[string]bool{}}, nil
}

// The sealing contexts bind a sealed secret and token to their access key
// id: a sealed value copied to another row does not open there.
func secretContext(akid string) string { return "session-credential/" + akid + "/secret" }
func tokenContext(akid string) string  { return "session-credential/" + akid + "/token" }

// Principal is the identity of a job's session credential, as an
// assumed-role ARN.
func (l *Local) principal(jobID string) string {
	return fmt.Sprintf("arn:aws:sts::%s:assumed-role/pipelined-job/%s", l.cfg.AccountID, jobID)
}

// Mint returns the job's credentials for the scope: the latest ones issued
// for it while more than half of their lifetime is left, else new ones.
func (l *Local) Mint(ctx context.Context, scope Scope) (wire.AWSSessionCredentials, time.Time, error) {
	if err := scope.check(); err != nil {
		return wire.AWSSessionCredentials{}, time.Time{}, err
	}
	scope.Read, scope.Write = normalize(scope.Read), normalize(scope.Write)
	if err := l.ensureBucket(ctx, scope.Bucket); err != nil {
		return wire.AWSSessionCredentials{}, time.Time{}, err
	}
	now := l.cfg.Now()
	l.prune(ctx, now)

	latest, err := l.cfg.Store.LatestSessionCredential(ctx, scope.JobID)
	switch {
	case err == nil && reuse(now, latest.Expires, l.cfg.TTL):
		s, err := l.open(latest)
		if err != nil {
			return wire.AWSSessionCredentials{}, time.Time{}, err
		}
		if s.scope.equal(scope) {
			return wire.AWSSessionCredentials{
				AccessKeyId: s.cred.AccessKeyID, SecretAccessKey: s.cred.SecretAccessKey, SessionToken: s.cred.SessionToken,
			}, s.cred.Expires, nil
		}
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return wire.AWSSessionCredentials{}, time.Time{}, err
	}

	akid, secret, token, err := newKeys()
	if err != nil {
		return wire.AWSSessionCredentials{}, time.Time{}, err
	}
	scopeJSON, err := json.Marshal(scope)
	if err != nil {
		return wire.AWSSessionCredentials{}, time.Time{}, err
	}
	expires := now.Add(l.cfg.TTL).UTC().Truncate(time.Millisecond)
	stored, err := l.cfg.Store.CreateSessionCredential(ctx, store.SessionCredential{
		AccessKeyID: akid, JobID: scope.JobID,
		SealedSecret: l.cfg.Sealer.Seal(secret, secretContext(akid)),
		SealedToken:  l.cfg.Sealer.Seal(token, tokenContext(akid)),
		Scope:        scopeJSON, Expires: expires,
	})
	if err != nil {
		return wire.AWSSessionCredentials{}, time.Time{}, fmt.Errorf("artifacts: storing credentials of job %s: %w", scope.JobID, err)
	}
	l.remember(&session{
		cred: sigv4.Credential{
			AccessKeyID: akid, SecretAccessKey: secret, SessionToken: token,
			Principal: l.principal(scope.JobID), Expires: stored.Expires,
		},
		scope: scope,
	})
	l.log.Debug("issued artifact credentials", "job_id", scope.JobID, "access_key_id", akid, "expires", stored.Expires)
	return wire.AWSSessionCredentials{AccessKeyId: akid, SecretAccessKey: secret, SessionToken: token}, stored.Expires, nil
}

// newKeys makes an access key id in AWS's format for temporary
// credentials (ASIA and 16 characters of A-Z2-7), a 40-character secret
// and a session token, from crypto/rand.
func newKeys() (akid, secret, token string, err error) {
	b := make([]byte, 10+30+48)
	if _, err := rand.Read(b); err != nil {
		return "", "", "", err
	}
	akid = "ASIA" + base32.StdEncoding.EncodeToString(b[:10])
	secret = base64.StdEncoding.EncodeToString(b[10:40])
	token = base64.StdEncoding.EncodeToString(b[40:])
	return akid, secret, token, nil
}

func (l *Local) ensureBucket(ctx context.Context, bucket string) error {
	if l.cfg.EnsureBucket == nil {
		return nil
	}
	l.mu.Lock()
	done := l.buckets[bucket]
	l.mu.Unlock()
	if done {
		return nil
	}
	if err := l.cfg.EnsureBucket(ctx, bucket); err != nil {
		return fmt.Errorf("artifacts: artifact bucket %q: %w", bucket, err)
	}
	l.mu.Lock()
	l.buckets[bucket] = true
	l.mu.Unlock()
	return nil
}

// prune deletes credentials expired for longer than ExpiredGrace, at most
// once every pruneEvery per process. Failures are only logged: pruning is
// housekeeping.
func (l *Local) prune(ctx context.Context, now time.Time) {
	l.mu.Lock()
	if now.Sub(l.lastPrune) < pruneEvery {
		l.mu.Unlock()
		return
	}
	l.lastPrune = now
	for id, s := range l.sessions {
		if now.Sub(s.cred.Expires) > l.cfg.ExpiredGrace {
			delete(l.sessions, id)
		}
	}
	l.mu.Unlock()
	if _, err := l.cfg.Store.DeleteSessionCredentials(ctx, now.Add(-l.cfg.ExpiredGrace), 1000); err != nil {
		l.log.Warn("could not delete expired artifact credentials", "err", err)
	}
}

// open turns a stored credential into a session.
func (l *Local) open(c store.SessionCredential) (*session, error) {
	secret, err := l.cfg.Sealer.Open(c.SealedSecret, secretContext(c.AccessKeyID))
	if err != nil {
		return nil, fmt.Errorf("artifacts: credential %s: %w", c.AccessKeyID, err)
	}
	token, err := l.cfg.Sealer.Open(c.SealedToken, tokenContext(c.AccessKeyID))
	if err != nil {
		return nil, fmt.Errorf("artifacts: credential %s: %w", c.AccessKeyID, err)
	}
	var scope Scope
	if err := json.Unmarshal(c.Scope, &scope); err != nil {
		return nil, fmt.Errorf("artifacts: credential %s: scope: %w", c.AccessKeyID, err)
	}
	if scope.JobID != c.JobID {
		return nil, fmt.Errorf("artifacts: credential %s: scope names job %s, not %s", c.AccessKeyID, scope.JobID, c.JobID)
	}
	return &session{
		cred: sigv4.Credential{
			AccessKeyID: c.AccessKeyID, SecretAccessKey: secret, SessionToken: token,
			Principal: l.principal(c.JobID), Expires: c.Expires,
		},
		scope: scope,
	}, nil
}

func (l *Local) remember(s *session) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.sessions) >= maxCachedSessions {
		for id := range l.sessions { // an arbitrary entry: a cheap eviction
			delete(l.sessions, id)
			break
		}
	}
	l.sessions[s.cred.AccessKeyID] = s
}

// session finds an access key's session, in the cache or the store.
func (l *Local) session(ctx context.Context, akid string) (*session, error) {
	l.mu.Lock()
	s := l.sessions[akid]
	l.mu.Unlock()
	if s != nil {
		return s, nil
	}
	c, err := l.cfg.Store.GetSessionCredential(ctx, akid)
	if err != nil {
		return nil, err
	}
	s, err = l.open(c)
	if err != nil {
		return nil, err
	}
	l.remember(s)
	return s, nil
}

func (l *Local) isRoot(akid string) bool {
	return subtle.ConstantTimeCompare([]byte(akid), []byte(l.cfg.Root.AccessKeyID)) == 1
}

// Lookup resolves an access key id for the embedded S3 server's SigV4
// verifier: the root credential, or a job's session credential (with its
// token and expiry, which the verifier checks: ExpiredToken after expiry,
// InvalidToken for another token). Unknown keys wrap
// sigv4.ErrUnknownAccessKey.
func (l *Local) Lookup(ctx context.Context, akid string) (sigv4.Credential, error) {
	if l.isRoot(akid) {
		return l.cfg.Root, nil
	}
	s, err := l.session(ctx, akid)
	if errors.Is(err, store.ErrNotFound) {
		return sigv4.Credential{}, sigv4.ErrUnknownAccessKey
	}
	if err != nil {
		return sigv4.Credential{}, err
	}
	return s.cred, nil
}

// Authorize decides a request verified with cred: root may do everything;
// a job's credential may read (GET, HEAD) exactly its Read keys and write
// exactly its Write keys, in its bucket, and only while its job is not
// finished (queued, handed to a worker, or in progress). Anything else —
// listing, deleting, other keys or buckets, bucket operations — is
// refused.
func (l *Local) Authorize(ctx context.Context, cred sigv4.Credential, access Access, bucket, key string) bool {
	if l.isRoot(cred.AccessKeyID) {
		return true
	}
	if access != AccessRead && access != AccessWrite {
		return false
	}
	s, err := l.session(ctx, cred.AccessKeyID)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			l.log.Error("artifact credential lookup failed", "access_key_id", cred.AccessKeyID, "err", err)
		}
		return false
	}
	// The verifier checked the request against this very credential; make
	// sure that it is the one in hand.
	if subtle.ConstantTimeCompare([]byte(cred.SessionToken), []byte(s.cred.SessionToken)) != 1 ||
		!l.cfg.Now().Before(s.cred.Expires) {
		return false
	}
	if bucket != s.scope.Bucket || key == "" {
		return false
	}
	keys := s.scope.Read
	if access == AccessWrite {
		keys = s.scope.Write
	}
	if !slices.Contains(keys, key) {
		return false
	}
	return l.jobActive(ctx, s.scope.JobID)
}

// jobActive reports whether a job still exists and is not finished.
func (l *Local) jobActive(ctx context.Context, id string) bool {
	j, err := l.cfg.Store.GetJob(ctx, id)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			l.log.Error("reading the job of an artifact credential failed", "job_id", id, "err", err)
		}
		return false
	}
	return JobActive(j.Status)
}

// JobActive reports whether a job of the given status may use (and be
// given) artifact credentials: it is queued, handed to a worker, or in
// progress.
func JobActive(status string) bool {
	switch status {
	case store.JobQueued, store.JobDispatched, engine.JobInProgress:
		return true
	}
	return false
}
