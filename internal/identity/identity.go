// Package identity issues OIDC ID tokens to running jobs: it proves that a
// caller holds an in-progress job, builds the token's claims from the
// server's own records of that job (never from the caller), and has the
// issuer (internal/oidc) sign them.
//
// Who may ask. A job worker proves it holds a job with the job's id and
// the nonce it acknowledged the job with (custom jobs: the nonce of
// PollForJobs; third-party jobs: the nonce of GetThirdPartyJobDetails,
// which only the client token holder can read). The pair is only good while
// the job is InProgress: before the acknowledgement, after the result, after
// a timeout or a stop it is refused. The root credentials alone cannot mint
// a token: there is no way to name a run other than holding its job.
//
// What is signed. Every claim comes from the job, its execution and its
// pipeline as stored. The caller may choose the audience (what the token is
// for) and may assert claim values, which are compared with the server's
// and refused when they differ; it cannot add or change a claim.
package identity

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/pipelined/pipelined/internal/engine"
	"github.com/pipelined/pipelined/internal/store"
)

// Errors of Authenticate and Mint; the transport maps them to statuses.
var (
	// ErrUnauthenticated: no job with that id and secret (the two cases are
	// not told apart, so that job ids cannot be probed).
	ErrUnauthenticated = errors.New("identity: not a job's credentials")
	// ErrJobNotRunning: the credentials are right but the job is not in
	// progress (not acknowledged yet, finished, timed out or abandoned).
	ErrJobNotRunning = errors.New("identity: the job is not in progress")
)

// Signer signs claims (internal/oidc's Issuer) and verifies its own tokens.
type Signer interface {
	Sign(ctx context.Context, claims any) (string, error)
	Verify(ctx context.Context, token string) (json.RawMessage, error)
}

// Store is what the service reads (store.Store satisfies it).
type Store interface {
	GetJob(ctx context.Context, id string) (store.Job, error)
	GetExecution(ctx context.Context, pipeline, id string) (store.Execution, error)
	Tags(ctx context.Context, resource string) ([]store.Tag, error)
}

// Config configures a Service.
type Config struct {
	Store     Store
	Signer    Signer
	Issuer    string // the iss claim: the server's public URL
	AccountID string
	Region    string
	// PipelineARN names a pipeline's ARN.
	PipelineARN func(name string) string
	// TokenTTL is the lifetime of the tokens (default 1h). The issuer keeps
	// retired keys published at least this long.
	TokenTTL time.Duration
	Now      func() time.Time
}

// DefaultAudience is the aud of a token when the caller names none: AWS
// STS's, the audience IAM OIDC providers are created with.
const DefaultAudience = "sts.amazonaws.com"

// Service issues ID tokens.
type Service struct {
	cfg Config
}

// New returns a Service.
func New(cfg Config) *Service {
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{cfg: cfg}
}

// TokenTTL is the lifetime of the tokens the service issues.
func (s *Service) TokenTTL() time.Duration { return s.cfg.TokenTTL }

// Run is a running job as the server knows it: the subject of a token.
type Run struct {
	Job       store.Job
	doc       *engine.JobDoc
	execution executionFacts
}

// JobID is the job's id.
func (r *Run) JobID() string { return r.Job.ID }

// executionFacts are the parts of an execution document the claims use
// (decoding only them is cheaper than the whole document).
type executionFacts struct {
	PipelineVersion int    `json:"pipelineVersion"`
	Type            string `json:"type"`
	TriggerType     string `json:"triggerType"`
	TriggerDetail   string `json:"triggerDetail"`
}

// Authenticate checks a job id and secret (the job's current nonce) and
// returns the running job.
func (s *Service) Authenticate(ctx context.Context, jobID, secret string) (*Run, error) {
	if jobID == "" || secret == "" {
		return nil, ErrUnauthenticated
	}
	j, err := s.cfg.Store.GetJob(ctx, jobID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrUnauthenticated
	}
	if err != nil {
		return nil, err
	}
	if j.Nonce == "" || subtle.ConstantTimeCompare([]byte(j.Nonce), []byte(secret)) != 1 {
		return nil, ErrUnauthenticated
	}
	if j.Status != engine.JobInProgress {
		return nil, ErrJobNotRunning
	}
	doc, err := engine.DecodeJob(j)
	if err != nil {
		return nil, err
	}
	rec, err := s.cfg.Store.GetExecution(ctx, j.Pipeline, j.ExecutionID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrJobNotRunning // deleted under the job
	}
	if err != nil {
		return nil, err
	}
	r := &Run{Job: j, doc: doc}
	if err := json.Unmarshal(rec.Doc, &r.execution); err != nil {
		return nil, fmt.Errorf("decode execution %s: %w", rec.ID, err)
	}
	return r, nil
}

// Claims are the claims of an ID token. The JSON names are the token's;
// Harness's names (account_id, pipeline_id, stage_type, step_type,
// triggered_by_name, context) are filled where pipelined has the data, and
// the claims Harness has but pipelined has no data for (organization,
// project, environment, connector, service, trigger_by_email) are absent.
type Claims struct {
	Issuer    string `json:"iss"`
	Subject   string `json:"sub"`
	Audience  string `json:"aud"`
	Expiry    int64  `json:"exp"`
	IssuedAt  int64  `json:"iat"`
	NotBefore int64  `json:"nbf"`
	ID        string `json:"jti"`

	AccountID           string `json:"account_id"`
	Region              string `json:"region"`
	PipelineID          string `json:"pipeline_id"` // Harness's name for the pipeline: its name here
	PipelineName        string `json:"pipeline_name"`
	PipelineARN         string `json:"pipeline_arn"`
	PipelineVersion     int    `json:"pipeline_version"`
	PipelineExecutionID string `json:"pipeline_execution_id"`
	ExecutionType       string `json:"execution_type"` // STANDARD or ROLLBACK
	Stage               string `json:"stage"`
	Action              string `json:"action"`
	ActionExecutionID   string `json:"action_execution_id"`
	Attempt             int    `json:"attempt"`
	ActionType          string `json:"action_type"` // Owner/Category/Provider/Version
	ActionOwner         string `json:"action_owner"`
	StageType           string `json:"stage_type"` // the action's category (Build, Deploy...)
	StepType            string `json:"step_type"`  // the action's provider
	TriggerType         string `json:"trigger_type"`
	TriggeredBy         string `json:"triggered_by,omitempty"`      // the trigger's detail: the caller's ARN, or the source
	TriggeredByName     string `json:"triggered_by_name,omitempty"` // the same, Harness's name
	Context             string `json:"context"`
	JobID               string `json:"job_id"`
}

// ClaimsFor builds the claims of a token for a run and an audience, valid
// for the service's TokenTTL.
func (s *Service) ClaimsFor(ctx context.Context, r *Run, audience string) (*Claims, error) {
	return s.ClaimsForLifetime(ctx, r, audience, 0)
}

// MinTokenLifetime is the shortest lifetime a token request may ask for:
// a shorter token would expire under ordinary clock skew before a cloud
// provider accepts it.
const MinTokenLifetime = time.Minute

// ClaimsForLifetime is ClaimsFor with a lifetime the caller chose, from
// MinTokenLifetime up to the service's TokenTTL (0: TokenTTL). A caller
// may shorten a token, never lengthen it.
func (s *Service) ClaimsForLifetime(ctx context.Context, r *Run, audience string, lifetime time.Duration) (*Claims, error) {
	if err := CheckAudience(audience); err != nil {
		return nil, err
	}
	if lifetime == 0 {
		lifetime = s.cfg.TokenTTL
	}
	if lifetime < MinTokenLifetime || lifetime > s.cfg.TokenTTL {
		return nil, fmt.Errorf("identity: token lifetime %s is outside %s to %s", lifetime, MinTokenLifetime, s.cfg.TokenTTL)
	}
	if audience == "" {
		audience = DefaultAudience
	}
	now := s.cfg.Now().Truncate(time.Second)
	k := r.Job.ActionType
	c := &Claims{
		Issuer: s.cfg.Issuer, Audience: audience,
		IssuedAt: now.Unix(), NotBefore: now.Unix(), Expiry: now.Add(lifetime).Unix(),
		ID:        uuid.Must(uuid.NewRandomFromReader(rand.Reader)).String(),
		AccountID: s.cfg.AccountID, Region: s.cfg.Region,
		PipelineID: r.Job.Pipeline, PipelineName: r.Job.Pipeline, PipelineVersion: r.execution.PipelineVersion,
		PipelineExecutionID: r.Job.ExecutionID, ExecutionType: r.execution.Type,
		Stage: r.doc.Stage, Action: r.doc.Action, ActionExecutionID: r.doc.ActionExec, Attempt: r.doc.Attempt,
		ActionType:  k.Owner + "/" + k.Category + "/" + k.Provider + "/" + k.Version,
		ActionOwner: k.Owner, StageType: k.Category, StepType: k.Provider,
		TriggerType: r.execution.TriggerType, TriggeredBy: r.execution.TriggerDetail, TriggeredByName: r.execution.TriggerDetail,
		JobID: r.Job.ID,
	}
	if s.cfg.PipelineARN != nil {
		c.PipelineARN = s.cfg.PipelineARN(r.Job.Pipeline)
	}
	c.Context = "triggerType:" + c.TriggerType + "/executionType:" + c.ExecutionType + "/attempt:" + fmt.Sprint(c.Attempt)
	keys, err := s.subjectKeys(ctx, r.Job.Pipeline)
	if err != nil {
		return nil, err
	}
	c.Subject, err = subject(c, keys)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Mint signs a token for a run.
func (s *Service) Mint(ctx context.Context, r *Run, audience string) (string, *Claims, error) {
	c, err := s.ClaimsFor(ctx, r, audience)
	if err != nil {
		return "", nil, err
	}
	return s.Sign(ctx, c)
}

// Sign signs claims built by ClaimsFor.
func (s *Service) Sign(ctx context.Context, c *Claims) (string, *Claims, error) {
	tok, err := s.cfg.Signer.Sign(ctx, c)
	if err != nil {
		return "", nil, err
	}
	return tok, c, nil
}

// ErrForeignToken: a token given for an exchange is valid but was issued
// to another job.
var ErrForeignToken = errors.New("identity: the token was issued to another job")

// VerifyFor verifies a token given by the caller for an exchange: it must
// be this issuer's, unexpired, and issued to the calling job.
func (s *Service) VerifyFor(ctx context.Context, r *Run, token string) (*Claims, error) {
	raw, err := s.cfg.Signer.Verify(ctx, token)
	if err != nil {
		return nil, err
	}
	var c Claims
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("identity: token claims: %w", err)
	}
	if c.JobID != r.Job.ID {
		return nil, ErrForeignToken
	}
	return &c, nil
}

// maxAudience bounds a requested audience.
const maxAudience = 512

// CheckAudience checks a requested audience ("" is the default).
func CheckAudience(aud string) error {
	if len(aud) > maxAudience {
		return fmt.Errorf("must be at most %d characters", maxAudience)
	}
	for _, r := range aud {
		if r < 0x21 || r == 0x7f {
			return errors.New("must not contain spaces or control characters")
		}
	}
	return nil
}

// Asserted compares claim values a caller asserted (Harness's
// oidcIdTokenCustomAttributesStructure) with the server's: the caller may
// restate a claim, not choose one. It returns, by attribute name, why each
// mismatching attribute is refused.
func Asserted(c *Claims, attrs map[string]string) map[string]string {
	have := map[string]string{
		"account_id": c.AccountID, "pipeline_id": c.PipelineID, "stage_type": c.StageType,
		"step_type": c.StepType, "triggered_by_name": c.TriggeredByName, "context": c.Context,
	}
	bad := map[string]string{}
	for k, v := range attrs {
		if v == "" {
			continue
		}
		want, ok := have[k]
		switch {
		case !ok:
			bad[k] = "pipelined has no such data for a job: leave it empty"
		case want != v:
			bad[k] = fmt.Sprintf("is %q for this job: claims come from the server's records and cannot be chosen", want)
		}
	}
	return bad
}

// JobEnvironment is the environment a built-in executor that runs a
// process gives it so that the process can ask for ID tokens, in the style
// of GitHub Actions' ACTIONS_ID_TOKEN_REQUEST_URL and _TOKEN: POST to the
// URL with "Authorization: Bearer <token>".
func JobEnvironment(publicURL, jobID, nonce string) []string {
	return []string{
		"PIPELINED_ID_TOKEN_REQUEST_URL=" + strings.TrimRight(publicURL, "/") + "/ng/api/oidc/id-token/aws",
		"PIPELINED_ID_TOKEN_REQUEST_TOKEN=" + RequestToken(jobID, nonce),
	}
}

// RequestToken is the bearer token a job's worker presents: its job id and
// nonce, joined by a colon.
func RequestToken(jobID, nonce string) string { return jobID + ":" + nonce }

// ParseRequestToken splits a bearer token into job id and nonce.
func ParseRequestToken(tok string) (jobID, nonce string, ok bool) {
	return strings.Cut(tok, ":")
}
