package artifacts

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/pipelined/pipelined/internal/engine"
	"github.com/pipelined/pipelined/internal/secrets"
	"github.com/pipelined/pipelined/internal/sigv4"
	"github.com/pipelined/pipelined/internal/store"
	"github.com/pipelined/pipelined/internal/wire"
)

// LocalConfig configures a Local minter.
type LocalConfig struct {
	// Store is where Authorize reads a credential's job (its status and
	// artifacts); Local never writes to it.
	Store store.Store
	// MasterKey is the server's master key (secrets.KeySize bytes): the
	// credentials' secrets are derived from it, so every replica of one
	// deployment, which has the same master key, accepts the others'.
	MasterKey []byte
	// Root is the root credential (with its Principal): it may do
	// everything in the embedded store.
	Root      sigv4.Credential
	AccountID string
	// TTL is how long credentials last at most (DefaultTTL when zero).
	TTL time.Duration
	// EnsureBucket, when set, is called (once per bucket and process)
	// before credentials for a bucket are first handed out, so that the
	// pipeline's artifact bucket exists in the embedded store.
	EnsureBucket func(ctx context.Context, bucket string) error
	Logger       *slog.Logger
	// Now is the clock (time.Now when nil); tests move it.
	Now func() time.Time
}

// Local issues and checks job credentials for the embedded artifact store.
// It is safe for concurrent use.
//
// The credentials are derived, not stored: the access key id encodes the
// job id and the expiry (it is not secret), and the secret access key and
// the session token are HMAC-SHA256 of the access key id under two keys
// derived from the master key. Minting writes nothing (no write
// transaction per job), replicas with the same master key agree without
// sharing state, and only a holder of the master key can make a
// credential: changing the job or the expiry in an access key id gives
// other secrets. What a credential may touch is not in it either:
// Authorize computes the scope from its job's data (ScopeOf) and refuses
// once the job is finished or gone.
type Local struct {
	cfg                 LocalConfig
	log                 *slog.Logger
	period              int64 // seconds: TTL/2
	secretKey, tokenKey []byte
	mu                  sync.Mutex
	buckets             map[string]bool // buckets EnsureBucket made sure of
}

// The labels of the keys derived from the master key.
const (
	secretLabel = "pipelined artifact credential secret v1"
	tokenLabel  = "pipelined artifact credential token v1"
)

// akidPrefix starts an access key id of temporary credentials, as on AWS.
const akidPrefix = "ASIA"

// akidEncoding encodes an access key id's payload (A-Z2-7, as AWS's).
var akidEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// akidPayload is the length of an access key id's payload: the job id (a
// UUID's 16 bytes) and the expiry (unix seconds, 8 bytes big-endian).
const akidPayload = 16 + 8

// akidLen is the length of an access key id: the prefix and 39 characters.
var akidLen = len(akidPrefix) + akidEncoding.EncodedLen(akidPayload)

// NewLocal returns a Local minter.
func NewLocal(cfg LocalConfig) (*Local, error) {
	if cfg.Store == nil {
		return nil, errors.New("artifacts: Local needs a store")
	}
	if len(cfg.MasterKey) != secrets.KeySize {
		return nil, fmt.Errorf("artifacts: Local needs the %d-byte master key", secrets.KeySize)
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
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Local{
		cfg: cfg, log: log,
		period:    int64(cfg.TTL / 2 / time.Second),
		secretKey: mac(cfg.MasterKey, secretLabel),
		tokenKey:  mac(cfg.MasterKey, tokenLabel),
		buckets:   map[string]bool{},
	}, nil
}

func mac(key []byte, msg string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}

// Principal is the identity of a job's session credential, as an
// assumed-role ARN.
func (l *Local) principal(jobID string) string {
	return fmt.Sprintf("arn:aws:sts::%s:assumed-role/pipelined-job/%s", l.cfg.AccountID, jobID)
}

// expiry is when the credentials minted at now expire: the end of the
// period after now's (periods of TTL/2, counted from the Unix epoch). So
// every Mint within one period gives the same credentials, with more than
// half of the TTL and at most the TTL left, and the next period's give new
// ones: the same credentials while more than half of their lifetime is
// left, then new ones.
func (l *Local) expiry(now time.Time) int64 {
	return (now.Unix()/l.period + 2) * l.period
}

// Mint returns the job's credentials: the same ones while more than half
// of their lifetime is left, then new ones. It writes nothing; it makes
// sure of the scope's bucket (EnsureBucket). The job id must be a UUID (as
// the engine's are).
func (l *Local) Mint(ctx context.Context, scope Scope) (wire.AWSSessionCredentials, time.Time, error) {
	if err := scope.check(); err != nil {
		return wire.AWSSessionCredentials{}, time.Time{}, err
	}
	id, err := uuid.Parse(scope.JobID)
	if err != nil || id.String() != scope.JobID {
		return wire.AWSSessionCredentials{}, time.Time{}, fmt.Errorf("artifacts: job id %q is not a UUID", scope.JobID)
	}
	if err := l.ensureBucket(ctx, scope.Bucket); err != nil {
		return wire.AWSSessionCredentials{}, time.Time{}, err
	}
	exp := l.expiry(l.cfg.Now())
	var b [akidPayload]byte
	copy(b[:16], id[:])
	binary.BigEndian.PutUint64(b[16:], uint64(exp))
	akid := akidPrefix + akidEncoding.EncodeToString(b[:])
	secret, token := l.derive(akid)
	expires := time.Unix(exp, 0).UTC()
	l.log.Debug("issued artifact credentials", "job_id", scope.JobID, "access_key_id", akid, "expires", expires)
	return wire.AWSSessionCredentials{AccessKeyId: akid, SecretAccessKey: secret, SessionToken: token}, expires, nil
}

// derive makes an access key id's secret access key (40 characters, as
// AWS's) and session token.
func (l *Local) derive(akid string) (secret, token string) {
	s := mac(l.secretKey, akid)
	t := mac(l.tokenKey, akid)
	return base64.StdEncoding.EncodeToString(s[:30]), base64.RawStdEncoding.EncodeToString(t)
}

// decode reads the job id and the expiry of a job's access key id; ok is
// false when akid is not one that Mint makes.
func decode(akid string) (jobID string, expires time.Time, ok bool) {
	if len(akid) != akidLen || !strings.HasPrefix(akid, akidPrefix) {
		return "", time.Time{}, false
	}
	b, err := akidEncoding.DecodeString(akid[len(akidPrefix):])
	if err != nil || len(b) != akidPayload {
		return "", time.Time{}, false
	}
	// Only the canonical encoding: one credential, one access key id.
	if akidEncoding.EncodeToString(b) != akid[len(akidPrefix):] {
		return "", time.Time{}, false
	}
	exp := binary.BigEndian.Uint64(b[16:])
	if exp > 1<<62 {
		return "", time.Time{}, false
	}
	return uuid.UUID(b[:16]).String(), time.Unix(int64(exp), 0).UTC(), true
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

func (l *Local) isRoot(akid string) bool {
	return subtle.ConstantTimeCompare([]byte(akid), []byte(l.cfg.Root.AccessKeyID)) == 1
}

// Lookup resolves an access key id for the embedded S3 server's SigV4
// verifier: the root credential, or a job's session credential, derived
// from the access key id (with its token and expiry, which the verifier
// checks: ExpiredToken after expiry, InvalidToken for another token).
// Access key ids that are neither wrap sigv4.ErrUnknownAccessKey.
func (l *Local) Lookup(ctx context.Context, akid string) (sigv4.Credential, error) {
	if l.isRoot(akid) {
		return l.cfg.Root, nil
	}
	jobID, expires, ok := decode(akid)
	if !ok {
		return sigv4.Credential{}, sigv4.ErrUnknownAccessKey
	}
	secret, token := l.derive(akid)
	return sigv4.Credential{
		AccessKeyID: akid, SecretAccessKey: secret, SessionToken: token,
		Principal: l.principal(jobID), Expires: expires,
	}, nil
}

// Authorize decides a request verified with cred: root may do everything;
// a job's credential may read (GET, HEAD) exactly its job's input
// artifact objects and write exactly its output artifact objects (ScopeOf
// its job data), in its bucket, and only while its job is not finished
// (queued, handed to a worker, or in progress). Anything else — listing,
// deleting, other keys or buckets, bucket operations — is refused.
func (l *Local) Authorize(ctx context.Context, cred sigv4.Credential, access Access, bucket, key string) bool {
	if l.isRoot(cred.AccessKeyID) {
		return true
	}
	if access != AccessRead && access != AccessWrite {
		return false
	}
	jobID, expires, ok := decode(cred.AccessKeyID)
	if !ok {
		return false
	}
	// The verifier checked the request against this very credential; make
	// sure that it is the one in hand.
	_, token := l.derive(cred.AccessKeyID)
	if subtle.ConstantTimeCompare([]byte(cred.SessionToken), []byte(token)) != 1 ||
		!l.cfg.Now().Before(expires) {
		return false
	}
	if key == "" {
		return false
	}
	scope, ok := l.activeScope(ctx, jobID)
	if !ok || bucket != scope.Bucket {
		return false
	}
	keys := scope.Read
	if access == AccessWrite {
		keys = scope.Write
	}
	return slices.Contains(keys, key)
}

// activeScope reads a job and returns the scope of its credentials; ok is
// false when the job is gone or finished, or has no artifacts.
func (l *Local) activeScope(ctx context.Context, id string) (Scope, bool) {
	j, err := l.cfg.Store.GetJob(ctx, id)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			l.log.Error("reading the job of an artifact credential failed", "job_id", id, "err", err)
		}
		return Scope{}, false
	}
	if !JobActive(j.Status) {
		return Scope{}, false
	}
	doc, err := engine.DecodeJob(j)
	if err != nil {
		l.log.Error("decoding the job of an artifact credential failed", "job_id", id, "err", err)
		return Scope{}, false
	}
	var data jobArtifacts
	if err := json.Unmarshal(doc.Data, &data); err != nil {
		l.log.Error("decoding the job data of an artifact credential failed", "job_id", id, "err", err)
		return Scope{}, false
	}
	return ScopeOf(id, &wire.JobData{InputArtifacts: data.InputArtifacts, OutputArtifacts: data.OutputArtifacts})
}

// jobArtifacts is the part of a job's data that its scope comes from.
type jobArtifacts struct {
	InputArtifacts  []wire.Artifact `json:"inputArtifacts"`
	OutputArtifacts []wire.Artifact `json:"outputArtifacts"`
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
