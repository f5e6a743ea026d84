package artifacts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/pipelined/pipelined/internal/wire"
)

// STSConfig configures an STS minter.
type STSConfig struct {
	// RoleARN is the role AssumeRole assumes (--artifact-role-arn). It
	// needs s3:GetObject and s3:PutObject (and the multipart actions) on
	// the artifact buckets; the session policy narrows each job's
	// credentials to its own objects.
	RoleARN string
	// Endpoint is the STS endpoint URL (--artifact-sts-endpoint); "" uses
	// the SDK's standard resolution (AWS_ENDPOINT_URL_STS, the config
	// file, then the regional AWS endpoint).
	Endpoint string
	// Region is the signing region for STS ("" : the SDK's region chain,
	// else us-east-1).
	Region string
	// TTL is how long credentials last (DefaultTTL when zero).
	TTL time.Duration
	// AWS, when set, is the SDK configuration to call STS with; otherwise
	// it is loaded from the standard chain (environment, shared files,
	// web identity, container and instance roles).
	AWS    *aws.Config
	Logger *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// STS issues job credentials with STS AssumeRole, for an external
// S3-compatible artifact store. Credentials are kept in memory (per
// process) for reuse while more than half of their lifetime is left; the
// store never sees them.
type STS struct {
	cfg    STSConfig
	client *sts.Client
	log    *slog.Logger

	mu    sync.Mutex
	cache map[string]stsEntry // by job id
}

type stsEntry struct {
	scope   Scope
	creds   wire.AWSSessionCredentials
	expires time.Time
}

const maxCachedSTS = 4096

// NewSTS returns an STS minter.
func NewSTS(ctx context.Context, cfg STSConfig) (*STS, error) {
	if cfg.RoleARN == "" {
		return nil, errors.New("artifacts: an external artifact store needs --artifact-role-arn, the role that job credentials are issued for")
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
	var awsCfg aws.Config
	if cfg.AWS != nil {
		awsCfg = cfg.AWS.Copy()
	} else {
		var err error
		awsCfg, err = config.LoadDefaultConfig(ctx)
		if err != nil {
			return nil, fmt.Errorf("artifacts: loading AWS configuration for STS: %w", err)
		}
	}
	if cfg.Region != "" {
		awsCfg.Region = cfg.Region
	}
	if awsCfg.Region == "" {
		awsCfg.Region = "us-east-1"
	}
	client := sts.NewFromConfig(awsCfg, func(o *sts.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
	})
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &STS{cfg: cfg, client: client, log: log, cache: map[string]stsEntry{}}, nil
}

// Mint returns credentials of the role narrowed to the scope by a session
// policy: the ones issued before for the same scope while more than half
// of their lifetime is left, else new ones from AssumeRole.
func (s *STS) Mint(ctx context.Context, scope Scope) (wire.AWSSessionCredentials, time.Time, error) {
	if err := scope.check(); err != nil {
		return wire.AWSSessionCredentials{}, time.Time{}, err
	}
	scope.Read, scope.Write = normalize(scope.Read), normalize(scope.Write)
	now := s.cfg.Now()
	s.mu.Lock()
	e, ok := s.cache[scope.JobID]
	s.mu.Unlock()
	if ok && e.scope.equal(scope) && reuse(now, e.expires, s.cfg.TTL) {
		return e.creds, e.expires, nil
	}

	policy, err := SessionPolicy(scope)
	if err != nil {
		return wire.AWSSessionCredentials{}, time.Time{}, err
	}
	out, err := s.client.AssumeRole(ctx, &sts.AssumeRoleInput{
		RoleArn:         aws.String(s.cfg.RoleARN),
		RoleSessionName: aws.String(sessionName(scope.JobID)),
		DurationSeconds: aws.Int32(int32(s.cfg.TTL / time.Second)),
		Policy:          aws.String(policy),
	})
	if err != nil {
		return wire.AWSSessionCredentials{}, time.Time{}, fmt.Errorf("artifacts: STS AssumeRole for job %s: %w", scope.JobID, err)
	}
	c := out.Credentials
	if c == nil || c.AccessKeyId == nil || c.SecretAccessKey == nil || c.SessionToken == nil {
		return wire.AWSSessionCredentials{}, time.Time{}, fmt.Errorf("artifacts: STS AssumeRole for job %s returned no credentials", scope.JobID)
	}
	creds := wire.AWSSessionCredentials{AccessKeyId: *c.AccessKeyId, SecretAccessKey: *c.SecretAccessKey, SessionToken: *c.SessionToken}
	expires := now.Add(s.cfg.TTL)
	if c.Expiration != nil {
		expires = c.Expiration.UTC()
	}
	s.mu.Lock()
	for id, old := range s.cache {
		if !now.Before(old.expires) || len(s.cache) >= maxCachedSTS {
			delete(s.cache, id)
		}
	}
	s.cache[scope.JobID] = stsEntry{scope: scope, creds: creds, expires: expires}
	s.mu.Unlock()
	s.log.Debug("issued artifact credentials with STS", "job_id", scope.JobID, "access_key_id", creds.AccessKeyId, "expires", expires)
	return creds, expires, nil
}

// sessionName is the role session name of a job's credentials: it shows in
// the assumed-role ARN and CloudTrail. STS allows [\w+=,.@-], 2 to 64
// characters.
func sessionName(jobID string) string {
	var b strings.Builder
	b.WriteString("pipelined-job-")
	for _, r := range jobID {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune("_+=,.@-", r):
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	name := b.String()
	if len(name) > 64 {
		name = name[:64]
	}
	return name
}

// policyDocument and policyStatement are an IAM policy's JSON.
type policyDocument struct {
	Version   string            `json:"Version"`
	Statement []policyStatement `json:"Statement"`
}

type policyStatement struct {
	Sid      string   `json:"Sid"`
	Effect   string   `json:"Effect"`
	Action   []string `json:"Action"`
	Resource []string `json:"Resource"`
}

// Actions of the session policy. Reading an object is s3:GetObject (which
// also authorizes HEAD); writing one is s3:PutObject (which also
// authorizes CreateMultipartUpload, UploadPart and
// CompleteMultipartUpload) plus aborting and listing the parts of its own
// multipart uploads.
var (
	readActions  = []string{"s3:GetObject"}
	writeActions = []string{"s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"}
)

// SessionPolicy is the session policy of a scope's credentials: it allows
// reading exactly the Read objects and writing exactly the Write objects,
// and nothing else (a session policy can only narrow the role's
// permissions; what it does not allow is denied). A scope without objects
// gets a policy that denies everything. Characters that IAM treats
// specially in a resource ('*', '?', '$') are escaped as ${*}, ${?}, ${$},
// so that a key never acts as a wildcard.
func SessionPolicy(scope Scope) (string, error) {
	if err := scope.check(); err != nil {
		return "", err
	}
	doc := policyDocument{Version: "2012-10-17"}
	arns := func(keys []string) []string {
		out := make([]string, 0, len(keys))
		for _, k := range normalize(keys) {
			out = append(out, "arn:aws:s3:::"+iamEscape(scope.Bucket)+"/"+iamEscape(k))
		}
		return out
	}
	if len(scope.Read) > 0 {
		doc.Statement = append(doc.Statement, policyStatement{Sid: "ReadInputArtifacts", Effect: "Allow", Action: readActions, Resource: arns(scope.Read)})
	}
	if len(scope.Write) > 0 {
		doc.Statement = append(doc.Statement, policyStatement{Sid: "WriteOutputArtifacts", Effect: "Allow", Action: writeActions, Resource: arns(scope.Write)})
	}
	if len(doc.Statement) == 0 {
		doc.Statement = []policyStatement{{Sid: "NoArtifacts", Effect: "Deny", Action: []string{"*"}, Resource: []string{"*"}}}
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// iamEscape escapes IAM's wildcard and variable characters in a resource.
func iamEscape(s string) string {
	if !strings.ContainsAny(s, "*?$") {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '$':
			b.WriteString("${" + string(r) + "}")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
