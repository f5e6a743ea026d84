// Package workerkeys issues, revokes and looks up worker keys: long-lived
// access key pairs an operator issues for the job workers of one action
// type (owner Custom or ThirdParty), so that a build host or a partner
// signs its CodePipeline calls without holding the root credentials.
//
// A request signed with a worker key may call only its action type's job
// protocol (PollForJobs, AcknowledgeJob, GetJobDetails, PutJobSuccessResult
// and PutJobFailureResult for Custom; their ThirdParty counterparts, which
// still need the job's client token, for ThirdParty), on jobs of that type.
// Lookup hands the CodePipeline API's SigV4 verifier the key's credential
// with a *caller.WorkerScope; awsjson and internal/executions enforce it.
// Worker keys are not accepted by the admin API, the S3 artifact API or
// anything else.
//
// SigV4 needs the secret itself to verify a signature, so the store keeps
// it sealed under the master key (bound to the access key id), never in
// clear and never hashed; the secret is shown once, when issued, and never
// logged.
//
// Lookup caches its answers, positive and negative, for the cache TTL (10
// seconds unless New is told otherwise), so that a signed request does not
// read the database each time. Revoke drops the key from this replica's
// cache at once; other replicas (PostgreSQL) stop accepting it when their
// cached answer expires, within the TTL.
package workerkeys

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/pipelined/pipelined/internal/actiontypes"
	"github.com/pipelined/pipelined/internal/caller"
	"github.com/pipelined/pipelined/internal/commandspec"
	"github.com/pipelined/pipelined/internal/secrets"
	"github.com/pipelined/pipelined/internal/sigv4"
	"github.com/pipelined/pipelined/internal/store"
	"github.com/pipelined/pipelined/internal/wire"
)

const (
	// Prefix starts every worker key's access key id, so that one is
	// recognisable in logs and configuration ("PL" for pipelined, "WK" for
	// worker key; AWS's own start AKIA or ASIA).
	Prefix = "PLWK"
	// idChars is the number of random base32 characters after the prefix:
	// 80 bits, and a 20-character id, as AWS's.
	idChars = 16
	// IDLen is the length of an access key id.
	IDLen = len(Prefix) + idChars
	// SecretLen is the length of a secret access key, as AWS's.
	SecretLen = 40
	// MaxDescription is the longest description, in characters.
	MaxDescription = 256
	// DefaultCacheTTL is how long Lookup's answers are cached when New is
	// given zero.
	DefaultCacheTTL = 10 * time.Second
	// maxCached bounds the cache.
	maxCached = 4096
)

// idEncoding is the alphabet of access key ids: A-Z and 2-7, like AWS's.
var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// secretAlphabet: base64's, without '+' and '/' (which shells and URLs
// trip over).
const secretAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// Service issues and looks up worker keys.
type Service struct {
	store   store.WorkerKeys
	sealer  *secrets.Sealer
	account string
	ttl     time.Duration
	log     *slog.Logger
	now     func() time.Time // tests move it

	mu    sync.Mutex
	cache map[string]cached
	// gen counts invalidations: a Lookup that read the store while a key
	// was revoked must not cache what it read.
	gen uint64
}

type cached struct {
	cred    sigv4.Credential // zero for a negative answer
	known   bool
	expires time.Time
}

// New returns a Service. cacheTTL bounds how long a revoked key keeps
// working on another replica (0: DefaultCacheTTL; negative: no cache).
func New(st store.WorkerKeys, sealer *secrets.Sealer, accountID string, cacheTTL time.Duration, log *slog.Logger) *Service {
	if cacheTTL == 0 {
		cacheTTL = DefaultCacheTTL
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{store: st, sealer: sealer, account: accountID, ttl: cacheTTL, log: log, now: time.Now, cache: map[string]cached{}}
}

// Issued is a key just issued: SecretAccessKey is shown this once.
type Issued struct {
	Key             store.WorkerKey
	SecretAccessKey string
}

// Issue issues a key for the action type typ, which the caller has
// checked exists. Its owner must be Custom or ThirdParty, and description
// at most MaxDescription characters (ValidationException otherwise). The
// keys the Service returns never carry the sealed secret.
func (s *Service) Issue(ctx context.Context, typ store.ActionTypeKey, description string) (Issued, error) {
	if typ.Owner != "Custom" && typ.Owner != "ThirdParty" && actiontypes.Key(typ) != commandspec.Key {
		return Issued{}, wire.Errorf(wire.ErrValidation,
			"1 validation error detected: Value '%s' at 'actionTypeId.owner' failed to satisfy constraint: Member must be Custom or ThirdParty, or the type Compute/AWS/Commands/1 (worker keys are for the job workers of custom and third-party action types, and for pipelined runners)", typ.Owner)
	}
	if n := utf8.RuneCountInString(description); n > MaxDescription {
		return Issued{}, wire.Errorf(wire.ErrValidation,
			"1 validation error detected: Value at 'description' failed to satisfy constraint: Member must have length less than or equal to %d (it has %d)", MaxDescription, n)
	}
	secret, err := randomSecret()
	if err != nil {
		return Issued{}, err
	}
	for attempt := 0; ; attempt++ {
		id, err := randomID()
		if err != nil {
			return Issued{}, err
		}
		k, err := s.store.CreateWorkerKey(ctx, store.WorkerKey{
			AccessKeyID: id, SealedSecret: s.sealer.Seal(secret, sealContext(id)),
			ActionType: typ, Description: description,
		})
		if errors.Is(err, store.ErrAlreadyExists) && attempt < 3 {
			continue // 80 random bits: never, in practice
		}
		if err != nil {
			return Issued{}, fmt.Errorf("workerkeys: storing a new key: %w", err)
		}
		s.forget(id)
		s.log.Info("issued a worker key", "access_key_id", id, "action_type", scopeOf(typ).String(), "by", by(ctx))
		return Issued{Key: public(k), SecretAccessKey: secret}, nil
	}
}

// Revoke revokes a key (store.ErrNotFound when there is none); revoking a
// revoked key changes nothing. This replica refuses it at once; others
// within their cache TTL.
func (s *Service) Revoke(ctx context.Context, accessKeyID string) (store.WorkerKey, error) {
	if !wellFormed(accessKeyID) {
		return store.WorkerKey{}, fmt.Errorf("workerkeys: key %q: %w", accessKeyID, store.ErrNotFound)
	}
	// Forget before and after: a Lookup in flight meanwhile caches nothing.
	s.forget(accessKeyID)
	k, err := s.store.RevokeWorkerKey(ctx, accessKeyID)
	s.forget(accessKeyID)
	if err != nil {
		return store.WorkerKey{}, err
	}
	s.log.Info("revoked a worker key", "access_key_id", accessKeyID, "action_type", scopeOf(k.ActionType).String(), "by", by(ctx))
	return public(k), nil
}

// Get reads a key, revoked or not (store.ErrNotFound when there is none).
func (s *Service) Get(ctx context.Context, accessKeyID string) (store.WorkerKey, error) {
	if !wellFormed(accessKeyID) {
		return store.WorkerKey{}, fmt.Errorf("workerkeys: key %q: %w", accessKeyID, store.ErrNotFound)
	}
	k, err := s.store.GetWorkerKey(ctx, accessKeyID)
	if err != nil {
		return store.WorkerKey{}, err
	}
	return public(k), nil
}

// List returns every key, revoked ones included, oldest first.
func (s *Service) List(ctx context.Context) ([]store.WorkerKey, error) {
	ks, err := s.store.ListWorkerKeys(ctx)
	if err != nil {
		return nil, err
	}
	for i := range ks {
		ks[i] = public(ks[i])
	}
	return ks, nil
}

// Lookup is the CodePipeline API verifier's lookup of worker keys: the
// credential of an active key, with the principal
// arn:aws:iam::<account>:user/pipelined-worker/<accessKeyId> and a
// *caller.WorkerScope as its Scope. Unknown, revoked and malformed ids are
// an error wrapping sigv4.ErrUnknownAccessKey. Answers are cached for the
// cache TTL.
func (s *Service) Lookup(ctx context.Context, accessKeyID string) (sigv4.Credential, error) {
	if !wellFormed(accessKeyID) {
		return sigv4.Credential{}, sigv4.ErrUnknownAccessKey // no store read, no cache entry
	}
	now := s.now()
	s.mu.Lock()
	c, hit := s.cache[accessKeyID]
	gen := s.gen
	s.mu.Unlock()
	if hit && now.Before(c.expires) {
		return answer(c)
	}

	c, err := s.read(ctx, accessKeyID)
	if err != nil {
		return sigv4.Credential{}, err
	}
	c.expires = now.Add(s.ttl)
	if s.ttl > 0 {
		s.mu.Lock()
		if s.gen == gen {
			s.put(accessKeyID, c, now)
		}
		s.mu.Unlock()
	}
	return answer(c)
}

// read looks a well-formed id up in the store.
func (s *Service) read(ctx context.Context, accessKeyID string) (cached, error) {
	k, err := s.store.GetWorkerKey(ctx, accessKeyID)
	if errors.Is(err, store.ErrNotFound) {
		return cached{}, nil
	}
	if err != nil {
		return cached{}, fmt.Errorf("workerkeys: reading key %s: %w", accessKeyID, err)
	}
	if !k.Active() {
		return cached{}, nil
	}
	secret, err := s.sealer.Open(k.SealedSecret, sealContext(accessKeyID))
	if err != nil {
		// The master key changed, or the row was tampered with (or copied
		// from another key): the key cannot work. Not cached as unknown,
		// so that it is reported on every use.
		return cached{}, fmt.Errorf("workerkeys: key %s: %w", accessKeyID, err)
	}
	return cached{known: true, cred: sigv4.Credential{
		AccessKeyID:     accessKeyID,
		SecretAccessKey: secret,
		Principal:       s.principal(accessKeyID),
		Scope:           scopeOf(k.ActionType),
	}}, nil
}

// by is who made the request of ctx, for the audit log ("" when it was not
// authenticated, as in tests and tools).
func by(ctx context.Context) string {
	c, _ := caller.From(ctx)
	return c.ARN
}

// principal is the ARN a worker key's requests are made as.
func (s *Service) principal(accessKeyID string) string {
	return fmt.Sprintf("arn:aws:iam::%s:user/pipelined-worker/%s", s.account, accessKeyID)
}

func answer(c cached) (sigv4.Credential, error) {
	if !c.known {
		return sigv4.Credential{}, fmt.Errorf("workerkeys: unknown or revoked key: %w", sigv4.ErrUnknownAccessKey)
	}
	return c.cred, nil
}

// put caches an answer (s.mu held). When full it drops the expired
// entries, then the negative ones (which anyone can make with made-up
// ids), then an arbitrary one.
func (s *Service) put(id string, c cached, now time.Time) {
	if _, ok := s.cache[id]; !ok && len(s.cache) >= maxCached {
		for k, e := range s.cache {
			if !now.Before(e.expires) {
				delete(s.cache, k)
			}
		}
		if len(s.cache) >= maxCached {
			for k, e := range s.cache {
				if !e.known {
					delete(s.cache, k)
				}
			}
		}
		if len(s.cache) >= maxCached {
			for k := range s.cache {
				delete(s.cache, k)
				break
			}
		}
	}
	s.cache[id] = c
}

// forget drops a key from the cache, and keeps Lookups in flight from
// caching what they read.
func (s *Service) forget(id string) {
	s.mu.Lock()
	delete(s.cache, id)
	s.gen++
	s.mu.Unlock()
}

// scopeOf is the scope of a key of action type typ. Each credential gets
// its own: callers cannot change another's.
func scopeOf(typ store.ActionTypeKey) *caller.WorkerScope {
	return &caller.WorkerScope{ActionType: typ}
}

// public is a key as the Service returns it: without the sealed secret.
func public(k store.WorkerKey) store.WorkerKey {
	k.SealedSecret = ""
	return k
}

// sealContext binds a key's sealed secret to its access key id: a sealed
// value copied to another row, or from another kind of secret, does not
// open.
func sealContext(accessKeyID string) string { return "worker-key/" + accessKeyID }

// wellFormed reports whether id can be a worker key's access key id.
func wellFormed(id string) bool {
	if len(id) != IDLen || id[:len(Prefix)] != Prefix {
		return false
	}
	for i := len(Prefix); i < len(id); i++ {
		c := id[i]
		if !(c >= 'A' && c <= 'Z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

func randomID() (string, error) {
	b := make([]byte, idChars*5/8)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return Prefix + idEncoding.EncodeToString(b), nil
}

// randomSecret draws SecretLen characters uniformly from secretAlphabet
// (rejection sampling: no modulo bias).
func randomSecret() (string, error) {
	const limit = 256 - 256%len(secretAlphabet)
	out := make([]byte, 0, SecretLen)
	buf := make([]byte, 64)
	for len(out) < SecretLen {
		if _, err := rand.Read(buf); err != nil {
			return "", err
		}
		for _, b := range buf {
			if int(b) < limit && len(out) < SecretLen {
				out = append(out, secretAlphabet[int(b)%len(secretAlphabet)])
			}
		}
	}
	return string(out), nil
}
