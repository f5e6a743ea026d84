package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/pipelined/pipelined/internal/artifacts"
	"github.com/pipelined/pipelined/internal/s3api"
	"github.com/pipelined/pipelined/internal/sigv4"
	"github.com/pipelined/pipelined/internal/workerkeys"
)

// The artifact store and the job credentials.
//
// Embedded (no ArtifactS3Endpoint, the default): objects live under
// DataDir/artifacts and are served over the S3 REST API, path-style, on the
// server's own listener (routeAPIOrS3). The S3 handler verifies SigV4 for
// service "s3" against the root credentials and the jobs' session
// credentials (artifacts.Local: derived from the master key, not stored),
// which may read exactly their job's input objects and write exactly its
// output objects.
//
// External (ArtifactS3Endpoint set): any S3-compatible store; job
// credentials come from STS AssumeRole on ArtifactRoleARN with a session
// policy limited to the job's objects (artifacts.STS).

// DefaultUploadExpiry is how old an unfinished multipart upload of the
// embedded store gets before it is removed, when Config.ArtifactUploadExpiry
// is zero: S3 lifecycle rules commonly abort them after 7 days, and no
// job's upload lasts that long (its credentials are renewed with the job,
// whose own timeout is far shorter).
const DefaultUploadExpiry = 7 * 24 * time.Hour

// ArtifactsDir is where the embedded store keeps its objects, under the
// data dir.
const ArtifactsDir = "artifacts"

// setupArtifacts makes the minter that issues job credentials and, for the
// embedded store, the S3 handler (nil for an external store).
// masterKey is the server's master key, which the embedded store's job
// credentials are derived from.
func (s *Server) setupArtifacts(ctx context.Context, masterKey []byte) (http.Handler, error) {
	cfg := s.cfg
	ttl := cfg.ArtifactCredentialsTTL
	if ttl == 0 {
		ttl = artifacts.DefaultTTL
	}
	if err := artifacts.CheckTTL(ttl); err != nil {
		return nil, fmt.Errorf("--artifact-credentials-ttl: %w", err)
	}
	if cfg.ArtifactS3Endpoint != "" {
		m, err := artifacts.NewSTS(ctx, artifacts.STSConfig{
			RoleARN: cfg.ArtifactRoleARN, Endpoint: cfg.ArtifactSTSEndpoint, TTL: ttl,
			AWS: cfg.ArtifactAWSConfig, Logger: s.log,
		})
		if err != nil {
			return nil, err
		}
		s.executions.SetArtifactMinter(m, s.log)
		s.log.Info("artifact store: external S3; job credentials from STS AssumeRole",
			"s3_endpoint", cfg.ArtifactS3Endpoint, "role_arn", cfg.ArtifactRoleARN, "credentials_ttl", ttl)
		return nil, nil
	}
	if cfg.ArtifactRoleARN != "" || cfg.ArtifactSTSEndpoint != "" {
		return nil, errors.New("--artifact-role-arn and --artifact-sts-endpoint are for an external artifact store: set --artifact-s3-endpoint too")
	}

	root := sigv4.Credential{
		AccessKeyID: s.root.AccessKeyID, SecretAccessKey: s.root.SecretAccessKey,
		Principal: fmt.Sprintf("arn:aws:iam::%s:root", cfg.AccountID),
	}
	var h *s3api.Handler
	// Job workers get the artifact bucket created when their credentials
	// are minted; the built-in S3 actions, which write as root, through
	// builtin.Options.EnsureArtifactBucket.
	s.ensureArtifactBucket = func(ctx context.Context, bucket string) error { return createBucket(ctx, h, root, cfg.Region, bucket) }
	local, err := artifacts.NewLocal(artifacts.LocalConfig{
		Store: s.store, MasterKey: masterKey, Root: root, AccountID: cfg.AccountID, TTL: ttl, Logger: s.log, Now: cfg.ArtifactNow,
		EnsureBucket: s.ensureArtifactBucket,
	})
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(cfg.DataDir, ArtifactsDir)
	h, err = s3api.New(dir, cfg.Region, s3Authorizer{l: local, workerKeys: s.workerKeys}, s.log)
	if err != nil {
		return nil, err
	}
	s.s3 = h
	s.executions.SetArtifactMinter(local, s.log)
	s.log.Info("artifact store: embedded, S3 API on this listener (path-style)", "dir", dir, "credentials_ttl", ttl)
	return h, nil
}

// runUploadSweeper removes the embedded store's abandoned multipart uploads
// until ctx is done (see s3api.Handler.SweepUploads), checking a quarter as
// often as the expiry, between once a second and once an hour.
func (s *Server) runUploadSweeper(ctx context.Context) {
	expiry := s.cfg.ArtifactUploadExpiry
	if s.s3 == nil || expiry < 0 {
		return
	}
	if expiry == 0 {
		expiry = DefaultUploadExpiry
	}
	s.s3.RunUploadSweeper(ctx, expiry, min(max(expiry/4, time.Second), time.Hour))
}

// s3Authorizer adapts artifacts.Local to the S3 handler's Authorizer.
type s3Authorizer struct {
	l          *artifacts.Local
	workerKeys *workerkeys.Service // keys the S3 API refuses with an explanation
}

func (a s3Authorizer) Lookup(ctx context.Context, accessKeyID string) (sigv4.Credential, error) {
	cred, err := a.l.Lookup(ctx, accessKeyID)
	if errors.Is(err, sigv4.ErrUnknownAccessKey) && a.workerKeys != nil {
		return workerKeyOnS3(ctx, a.workerKeys, accessKeyID, err)
	}
	return cred, err
}

func (a s3Authorizer) Allow(ctx context.Context, cred sigv4.Credential, op s3api.Op, bucket, key string) bool {
	access := artifacts.AccessOther
	switch op {
	case s3api.Read:
		access = artifacts.AccessRead
	case s3api.Write:
		access = artifacts.AccessWrite
	}
	// A bucket-level read (HeadBucket) or ListParts is not an object read.
	if key == "" {
		access = artifacts.AccessOther
	}
	return a.l.Authorize(ctx, cred, access, bucket, key)
}

// createBucket creates a bucket in the embedded store, as root, through
// the S3 handler itself (a signed in-process CreateBucket), so that the
// pipeline's artifact bucket exists before a worker writes to it. A
// bucket that exists already is fine.
func createBucket(ctx context.Context, h http.Handler, root sigv4.Credential, region, bucket string) error {
	if h == nil {
		return errors.New("the embedded artifact store is not running")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, "http://pipelined.internal/"+bucket, nil)
	if err != nil {
		return err
	}
	empty := sha256.Sum256(nil)
	payload := hex.EncodeToString(empty[:])
	req.Header.Set("X-Amz-Content-Sha256", payload)
	creds := aws.Credentials{AccessKeyID: root.AccessKeyID, SecretAccessKey: root.SecretAccessKey}
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, payload, "s3", region, time.Now()); err != nil {
		return err
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	body := rec.Body.String()
	switch {
	case rec.Code == http.StatusOK:
		return nil
	case rec.Code == http.StatusConflict && (strings.Contains(body, "BucketAlreadyOwnedByYou") || strings.Contains(body, "BucketAlreadyExists")):
		return nil
	}
	return fmt.Errorf("CreateBucket answered %d: %s", rec.Code, strings.TrimSpace(body))
}

// reservedBuckets are the first path segments that belong to the server,
// not to the embedded S3 store: no bucket of these names can be used.
var reservedBuckets = map[string]bool{"healthz": true, "metrics": true, "admin": true}

// routeAPIOrS3 sends CodePipeline API requests (POST /, which carries an
// X-Amz-Target header; S3 has no POST on the root, so one without the
// header goes to the API too, which answers it as CodePipeline does) to api
// and everything else to the embedded S3 store (s3; when nil, everything
// goes to api), except the server's own paths (/healthz, /metrics,
// /admin/...), which never reach S3.
func routeAPIOrS3(api, s3 http.Handler) http.Handler {
	if s3 == nil {
		return api
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/" {
			api.ServeHTTP(w, r)
			return
		}
		first, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		if reservedBuckets[first] {
			api.ServeHTTP(w, r)
			return
		}
		s3.ServeHTTP(w, r)
	})
}
