// Package artifacts issues the temporary, scoped credentials that job
// workers receive as artifactCredentials in their job data: an access key
// id, a secret access key and a session token that may read exactly the
// job's input artifact objects and write exactly its output artifact
// objects, and nothing else, for 15 to 60 minutes.
//
// Two Minters exist:
//
//   - Local, for the embedded artifact store (internal/s3api, served on the
//     server's own listener): it derives the credentials from the job id,
//     an expiry and the master key, and stores nothing (no write per job;
//     replicas with the same master key agree without sharing state). It
//     is also what the embedded S3 server asks to resolve an access key
//     (Lookup) and to decide a request (Authorize, which reads the job:
//     its status and, for the scope, its artifacts).
//   - STS, for an external S3-compatible store: it calls STS AssumeRole on
//     a role the operator names, with a session policy that allows exactly
//     the job's objects (SessionPolicy), so that the credentials can never
//     do more than the job needs even if the role can.
//
// Renewal: a worker gets valid credentials with every PollForJobs,
// GetJobDetails and GetThirdPartyJobDetails answer. Both minters hand out
// the job's current credentials again while more than half of their
// lifetime is left, and mint new ones after that.
//
// Secrets never reach a log: nothing in this package logs a secret access
// key or a session token, and errors never contain them.
package artifacts

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/pipelined/pipelined/internal/wire"
)

// Lifetimes of the credentials. STS does not issue credentials for less
// than 15 minutes; CodePipeline's own last at most an hour.
const (
	MinTTL     = 15 * time.Minute
	MaxTTL     = time.Hour
	DefaultTTL = time.Hour
)

// CheckTTL validates a credential lifetime (--artifact-credentials-ttl).
func CheckTTL(ttl time.Duration) error {
	if ttl < MinTTL || ttl > MaxTTL {
		return fmt.Errorf("artifact credentials TTL %v: must be between %v and %v", ttl, MinTTL, MaxTTL)
	}
	return nil
}

// Scope is what a job's credentials may touch: in Bucket, read (GET, HEAD)
// the Read keys and write (PUT, multipart uploads) the Write keys.
type Scope struct {
	JobID  string   `json:"jobId"`
	Bucket string   `json:"bucket"`
	Read   []string `json:"read,omitempty"`
	Write  []string `json:"write,omitempty"`
}

// Minter issues a job's artifact credentials: either credentials it issued
// before for the job that have more than half of their lifetime left, or
// new ones. It returns when they expire.
type Minter interface {
	Mint(ctx context.Context, scope Scope) (wire.AWSSessionCredentials, time.Time, error)
}

// ScopeOf is the scope of a job's credentials, from its job data: the
// bucket is the artifact store the job writes its outputs to (or, for a
// job without outputs, the one its first input is in); Read are the keys
// of its input artifacts in that bucket, Write those of its outputs.
// Inputs in another bucket (an artifact of another region's store) are not
// in the scope. ok is false when the job has no artifact in any bucket.
func ScopeOf(jobID string, data *wire.JobData) (s Scope, ok bool) {
	s.JobID = jobID
	loc := func(a wire.Artifact) (bucket, key string) {
		if a.Location == nil || a.Location.S3Location == nil {
			return "", ""
		}
		return a.Location.S3Location.BucketName, a.Location.S3Location.ObjectKey
	}
	for _, a := range data.OutputArtifacts {
		if b, _ := loc(a); b != "" {
			s.Bucket = b
			break
		}
	}
	if s.Bucket == "" {
		for _, a := range data.InputArtifacts {
			if b, _ := loc(a); b != "" {
				s.Bucket = b
				break
			}
		}
	}
	if s.Bucket == "" {
		return s, false
	}
	for _, a := range data.InputArtifacts {
		if b, k := loc(a); b == s.Bucket && k != "" {
			s.Read = append(s.Read, k)
		}
	}
	for _, a := range data.OutputArtifacts {
		if b, k := loc(a); b == s.Bucket && k != "" {
			s.Write = append(s.Write, k)
		}
	}
	s.Read, s.Write = normalize(s.Read), normalize(s.Write)
	return s, true
}

// normalize sorts and de-duplicates keys, so that equal scopes compare
// equal.
func normalize(keys []string) []string {
	if len(keys) == 0 {
		return nil
	}
	keys = slices.Clone(keys)
	slices.Sort(keys)
	return slices.Compact(keys)
}

// equal reports whether two scopes are the same (after normalize).
func (s Scope) equal(o Scope) bool {
	return s.JobID == o.JobID && s.Bucket == o.Bucket &&
		slices.Equal(normalize(s.Read), normalize(o.Read)) && slices.Equal(normalize(s.Write), normalize(o.Write))
}

func (s Scope) check() error {
	if s.JobID == "" {
		return errors.New("artifacts: a scope needs a job id")
	}
	if s.Bucket == "" {
		return errors.New("artifacts: a scope needs a bucket")
	}
	return nil
}

// Access is the kind of access an S3 request needs.
type Access int

const (
	// AccessRead: GetObject, HeadObject.
	AccessRead Access = iota + 1
	// AccessWrite: PutObject and the multipart upload operations.
	AccessWrite
	// AccessOther: everything else (listing, deleting, bucket operations,
	// ListParts); only root may.
	AccessOther
)

// reuse reports whether credentials that expire at expires, issued for
// ttl, still have more than half of their lifetime left at now.
func reuse(now, expires time.Time, ttl time.Duration) bool {
	return expires.Sub(now) > ttl/2
}
