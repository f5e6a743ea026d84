package executions

// The third-party job protocol: PollForThirdPartyJobs,
// GetThirdPartyJobDetails, AcknowledgeThirdPartyJob,
// PutThirdPartyJobSuccessResult and PutThirdPartyJobFailureResult.
//
// Jobs of ThirdParty action types are queued by the engine exactly as
// custom ones; what differs is who may see and answer them. A job belongs
// to the client (a clientId/clientToken pair, issued by the operator with
// `pipelined admin issue-client`) of its pipeline action: every call but the
// poll carries the client token, and only the token of the job's client
// opens it. The store keeps a SHA-256 hash of each token; the comparison
// with the job's client's hash is constant-time.
//
// A job whose pipeline action has no client (none was issued, it was
// revoked, or it was issued for an earlier pipeline of the same name or
// another action type) is not handed to the poller: the poll fails its
// action at once with a ConfigurationError that tells the operator to issue
// a client, so that the execution does not wait for a worker that can
// never answer.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/pipelined/pipelined/internal/actiontypes"
	"github.com/pipelined/pipelined/internal/engine"
	"github.com/pipelined/pipelined/internal/jobnonce"
	"github.com/pipelined/pipelined/internal/store"
	"github.com/pipelined/pipelined/internal/wire"
)

const thirdPartyOwner = "ThirdParty"

// NewClientToken returns a new client token (32 random bytes, base64url)
// and the hash the store keeps of it.
func NewClientToken() (token string, hash []byte, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", nil, err
	}
	token = base64.RawURLEncoding.EncodeToString(b)
	return token, HashClientToken(token), nil
}

// HashClientToken is the hash under which a client token is stored. A
// plain SHA-256 is enough: tokens are 256 random bits, not passwords.
func HashClientToken(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// NoClientMessage is the failure message of an action whose job found no
// client to go to.
func NoClientMessage(pipeline, stage, action string) string {
	return fmt.Sprintf("No third-party client is issued for action '%s' in stage '%s' of pipeline '%s', so no partner can take its job. "+
		"Issue one with `pipelined admin issue-client --pipeline %s --stage %s --action %s`, give the pair to the partner, then retry the stage.",
		action, stage, pipeline, pipeline, stage, action)
}

// clientOf returns the client a third-party job goes to: the active client
// of its pipeline action, provided that it was issued for this pipeline
// (not an earlier one of the same name) and for the action type the job
// is of. ok is false when there is none.
func (s *Service) clientOf(ctx context.Context, j store.Job, doc *engine.JobDoc) (c store.ThirdPartyClient, ok bool, err error) {
	if j.ActionType.Owner != thirdPartyOwner {
		return c, false, nil
	}
	c, err = s.store.ActionClient(ctx, j.Pipeline, doc.Stage, doc.Action)
	if errors.Is(err, store.ErrNotFound) {
		return c, false, nil
	}
	if err != nil {
		return c, false, err
	}
	if c.ActionType != j.ActionType {
		return c, false, nil
	}
	p, err := s.store.GetPipeline(ctx, j.Pipeline, 0)
	if errors.Is(err, store.ErrNotFound) {
		return c, false, nil
	}
	if err != nil {
		return c, false, err
	}
	return c, SamePipeline(c.PipelineCreated, p.Created), nil
}

// SamePipeline reports whether a client issued for a pipeline created at
// issuedFor covers the pipeline created at created (a pipeline deleted and
// created again under its name is another pipeline). Backends keep times
// at different precisions; milliseconds are what both keep.
func SamePipeline(issuedFor, created time.Time) bool {
	return issuedFor.Truncate(time.Millisecond).Equal(created.Truncate(time.Millisecond))
}

// authorizeJob finds a job and checks that token is its client's token.
// Errors: JobNotFoundException for an unknown job; AccessDeniedException
// when the caller signed with a worker key of another action type than the
// job's (operation is what it calls); InvalidClientTokenException
// for a token that is no client's, or a revoked client's; otherClient (the
// code the operation's model lists) for the valid token of a client the job
// does not belong to.
func (s *Service) authorizeJob(ctx context.Context, operation, jobID, token, otherClient string) (store.Job, error) {
	j, err := s.job(ctx, jobID)
	if err != nil {
		return j, err
	}
	// A worker key opens only jobs of its action type, and only with the
	// job's client token besides: the key does not replace the token.
	if err := workerMayWork(ctx, operation, j); err != nil {
		return j, err
	}
	doc, err := engine.DecodeJob(j)
	if err != nil {
		return j, err
	}
	hash := HashClientToken(token)
	c, ok, err := s.clientOf(ctx, j, doc)
	if err != nil {
		return j, err
	}
	if ok && subtle.ConstantTimeCompare(c.TokenHash, hash) == 1 {
		return j, nil
	}
	// Not the job's client: tell an invalid token from another client's.
	other, err := s.store.ClientByTokenHash(ctx, hash)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return j, wire.Errorf(wire.ErrInvalidClientToken, "The client token is not valid")
	case err != nil:
		return j, err
	case !other.Active():
		return j, wire.Errorf(wire.ErrInvalidClientToken, "The client token was revoked")
	}
	return j, wire.Errorf(otherClient, "Job %s does not belong to client %s", jobID, other.ID)
}

// PollThirdPartyJobs serves PollForThirdPartyJobs (it supersedes the
// not-built answer of Service.PollForThirdPartyJobs in jobs.go, which the
// API no longer routes to): it hands queued jobs of a third-party action
// type to the calling partner: each with the clientId of the client it belongs to,
// whose token opens it (GetThirdPartyJobDetails gives the nonce). It
// long-polls as PollForJobs does. Jobs whose action has no client fail
// their action instead (see the package comment above).
func (s *Service) PollThirdPartyJobs(ctx context.Context, in *wire.PollForThirdPartyJobsInput) (*wire.PollForThirdPartyJobsOutput, error) {
	if err := workerMayPoll(ctx, "PollForThirdPartyJobs", in.ActionTypeId); err != nil {
		return nil, err
	}
	if _, err := s.requirePollableType(ctx, in.ActionTypeId, thirdPartyOwner); err != nil {
		return nil, err
	}
	max := 1
	if in.MaxBatchSize != nil {
		max = *in.MaxBatchSize
	}
	jobs, err := s.claim(ctx, actiontypes.KeyOf(in.ActionTypeId), nil, max)
	if err != nil {
		return nil, err
	}
	// The jobs are claimed: finish handing them out (or failing them) even
	// if the caller goes away meanwhile.
	ctx = context.WithoutCancel(ctx)
	out := &wire.PollForThirdPartyJobsOutput{Jobs: make([]wire.ThirdPartyJob, 0, len(jobs))}
	for _, j := range jobs {
		doc, err := engine.DecodeJob(j)
		if err != nil {
			return nil, err
		}
		c, ok, err := s.clientOf(ctx, j, doc)
		if err != nil {
			return nil, err
		}
		if !ok {
			if err := s.failWithoutClient(ctx, j, doc); err != nil {
				return nil, err
			}
			continue
		}
		out.Jobs = append(out.Jobs, wire.ThirdPartyJob{ClientId: c.ID, JobId: j.ID})
	}
	return out, nil
}

// failWithoutClient fails the action of a claimed job that has no client:
// it acknowledges the job with the nonce the claim gave it and reports a
// ConfigurationError, through the engine, as a worker would.
func (s *Service) failWithoutClient(ctx context.Context, j store.Job, doc *engine.JobDoc) error {
	if _, err := s.engine.Acknowledge(ctx, j.Pipeline, j.ID, j.Nonce); err != nil {
		if _, ok := wire.AsError(err); ok {
			return nil // no longer this claim's job to fail
		}
		return err
	}
	err := s.engine.CompleteJob(ctx, j.Pipeline, j.ID, engine.JobResult{
		FailureType:    string(wire.FailureTypeConfigurationError),
		FailureMessage: NoClientMessage(j.Pipeline, doc.Stage, doc.Action),
	})
	if _, ok := wire.AsError(err); ok {
		return nil // the action was stopped or abandoned meanwhile
	}
	return err
}

// GetThirdPartyJobDetails returns a job's data to its client, with the
// nonce to acknowledge it with. As CodePipeline gives partners, the
// pipeline context has no pipeline ARN and no execution id; secret
// configuration values are in clear.
func (s *Service) GetThirdPartyJobDetails(ctx context.Context, in *wire.GetThirdPartyJobDetailsInput) (*wire.GetThirdPartyJobDetailsOutput, error) {
	j, err := s.authorizeJob(ctx, "GetThirdPartyJobDetails", in.JobId, in.ClientToken, wire.ErrInvalidJob)
	if err != nil {
		return nil, err
	}
	data, err := s.jobData(j)
	if err != nil {
		return nil, err
	}
	if err := s.addArtifactCredentials(ctx, j, data); err != nil {
		return nil, err
	}
	nonce, err := s.revealNonce(j)
	if err != nil {
		return nil, err
	}
	td := wire.ThirdPartyJobData(*data)
	if pc := td.PipelineContext; pc != nil {
		c := *pc
		c.PipelineArn, c.PipelineExecutionId = "", ""
		td.PipelineContext = &c
	}
	return &wire.GetThirdPartyJobDetailsOutput{JobDetails: &wire.ThirdPartyJobDetails{Id: j.ID, Data: &td, Nonce: nonce}}, nil
}

// revealNonce returns the current nonce of a third-party job ("" when it
// has none: it is queued, or was dispatched by a version that kept no
// sealed copy, in which case the partner acknowledges with the nonce it
// already has).
func (s *Service) revealNonce(j store.Job) (string, error) {
	if j.NonceHash == "" {
		return "", nil
	}
	nonce, err := s.engine.Nonces().Reveal(j.ID, j.NonceHash)
	if errors.Is(err, jobnonce.ErrNotRevealable) {
		return "", nil
	}
	return nonce, err
}

// AcknowledgeThirdPartyJob confirms that the client took the job.
func (s *Service) AcknowledgeThirdPartyJob(ctx context.Context, in *wire.AcknowledgeThirdPartyJobInput) (*wire.AcknowledgeThirdPartyJobOutput, error) {
	j, err := s.authorizeJob(ctx, "AcknowledgeThirdPartyJob", in.JobId, in.ClientToken, wire.ErrInvalidClientToken)
	if err != nil {
		return nil, err
	}
	status, err := s.engine.Acknowledge(ctx, j.Pipeline, j.ID, in.Nonce)
	if err != nil {
		return nil, err
	}
	return &wire.AcknowledgeThirdPartyJobOutput{Status: wire.JobStatus(status)}, nil
}

// PutThirdPartyJobSuccessResult reports a job done (or, with a
// continuation token, done for now: the action gets a new job, for the same
// client).
func (s *Service) PutThirdPartyJobSuccessResult(ctx context.Context, in *wire.PutThirdPartyJobSuccessResultInput) error {
	j, err := s.authorizeJob(ctx, "PutThirdPartyJobSuccessResult", in.JobId, in.ClientToken, wire.ErrInvalidClientToken)
	if err != nil {
		return err
	}
	return s.engine.CompleteJob(ctx, j.Pipeline, j.ID, successResult(in.ContinuationToken, in.ExecutionDetails, in.CurrentRevision))
}

// PutThirdPartyJobFailureResult reports a job failed.
func (s *Service) PutThirdPartyJobFailureResult(ctx context.Context, in *wire.PutThirdPartyJobFailureResultInput) error {
	j, err := s.authorizeJob(ctx, "PutThirdPartyJobFailureResult", in.JobId, in.ClientToken, wire.ErrInvalidClientToken)
	if err != nil {
		return err
	}
	return s.engine.CompleteJob(ctx, j.Pipeline, j.ID, failureResult(in.FailureDetails))
}
