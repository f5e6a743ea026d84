// Package jobnonce makes and checks job nonces. A job's nonce is the bearer
// credential of the worker that holds the job: it acknowledges the job and
// authenticates the job's ID-token and cloud-credential requests
// (internal/identity). The store keeps only what this package derives from
// it (store.Job.NonceHash), so that a copy of the database does not let
// anyone act as a running job's worker:
//
//   - a keyed hash, HMAC-SHA256 under a key derived from the master key
//     (HKDF-SHA256) over the job id and the nonce: checking a presented
//     nonce recomputes it and compares in constant time. Keyed, so that
//     the database alone does not even allow an offline guess; bound to
//     the job id, so that a hash copied to another row does not open it.
//   - for third-party jobs, a sealed copy too (internal/secrets, AES-GCM
//     under the master key, bound to the job id): GetThirdPartyJobDetails
//     hands the nonce to the partner again, as CodePipeline does, and
//     may be called more than once. Custom jobs' nonces are handed out
//     once, by PollForJobs, and never leave the server again, so no copy
//     that opens is kept of them.
package jobnonce

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/pipelined/pipelined/internal/secrets"
)

// hashPrefix marks the format of a stored nonce hash; a sealed copy, when
// there is one, follows the hash after sealedSep.
const (
	hashPrefix = "hmac-sha256:"
	sealedSep  = ";"
)

// nonceBytes is the entropy of a nonce: 192 bits, 32 characters of
// base64url (the model allows 50).
const nonceBytes = 24

// ErrNotRevealable is returned by Reveal for a job whose stored nonce has
// no sealed copy (a custom job's, or none at all).
var ErrNotRevealable = errors.New("jobnonce: the job's nonce is not kept in a form that opens")

// Keeper makes and checks job nonces under one master key. Every replica
// of a deployment must use the same master key (as for sealed secrets).
type Keeper struct {
	key    []byte
	sealer *secrets.Sealer
}

// New returns a Keeper for a master key.
func New(masterKey []byte) (*Keeper, error) {
	sealer, err := secrets.New(masterKey)
	if err != nil {
		return nil, err
	}
	key, err := hkdf.Key(sha256.New, masterKey, nil, "pipelined job nonce hash v1", sha256.Size)
	if err != nil {
		return nil, fmt.Errorf("jobnonce: derive the hash key: %w", err)
	}
	return &Keeper{key: key, sealer: sealer}, nil
}

// NewRandom returns a Keeper under a fresh random key (for engines built
// without one: nothing they store outlives the process's key).
func NewRandom() *Keeper {
	key := make([]byte, secrets.KeySize)
	_, _ = rand.Read(key)
	k, err := New(key)
	if err != nil {
		panic(err) // the key has the right size
	}
	return k
}

// New makes a nonce for a job: the clear nonce for the worker and what
// the store keeps. revealable keeps a sealed copy besides the hash, for
// protocols that hand the nonce out again (third-party jobs).
func (k *Keeper) New(jobID string, revealable bool) (nonce, stored string) {
	b := make([]byte, nonceBytes)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	nonce = base64.RawURLEncoding.EncodeToString(b)
	return nonce, k.Store(jobID, nonce, revealable)
}

// Store is what the store keeps of a given nonce of a job (New's second
// result; also for re-hashing a clear nonce an older store kept).
func (k *Keeper) Store(jobID, nonce string, revealable bool) string {
	stored := hashPrefix + base64.RawStdEncoding.EncodeToString(k.mac(jobID, nonce))
	if revealable {
		stored += sealedSep + k.sealer.Seal(nonce, sealContext(jobID))
	}
	return stored
}

// Verify reports whether nonce is the job's current nonce, given what the
// store keeps of it. An empty stored value (no nonce) matches nothing.
func (k *Keeper) Verify(jobID, stored, nonce string) bool {
	hash, _, _ := strings.Cut(stored, sealedSep)
	enc, ok := strings.CutPrefix(hash, hashPrefix)
	if !ok || nonce == "" {
		return false
	}
	want, err := base64.RawStdEncoding.Strict().DecodeString(enc)
	if err != nil {
		return false
	}
	return hmac.Equal(want, k.mac(jobID, nonce)) // constant time
}

// Reveal returns the clear nonce of a job whose stored value has a sealed
// copy (ErrNotRevealable otherwise).
func (k *Keeper) Reveal(jobID, stored string) (string, error) {
	_, sealed, ok := strings.Cut(stored, sealedSep)
	if !ok {
		return "", ErrNotRevealable
	}
	return k.sealer.Open(sealed, sealContext(jobID))
}

func (k *Keeper) mac(jobID, nonce string) []byte {
	m := hmac.New(sha256.New, k.key)
	// The job id never contains NUL; the separator keeps (id, nonce)
	// pairs from running into each other.
	m.Write([]byte(jobID))
	m.Write([]byte{0})
	m.Write([]byte(nonce))
	return m.Sum(nil)
}

func sealContext(jobID string) string { return "job-nonce/" + jobID }
