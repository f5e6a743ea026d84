package executions

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/pipelined/pipelined/internal/actiontypes"
	"github.com/pipelined/pipelined/internal/commandspec"
	"github.com/pipelined/pipelined/internal/engine"
	"github.com/pipelined/pipelined/internal/store"
	"github.com/pipelined/pipelined/internal/wire"
)

// requirePollableType checks the action type of a poll as CodePipeline
// does: a type that does not exist, or was deleted, is
// ActionTypeNotFoundException.
func (s *Service) requirePollableType(ctx context.Context, id *wire.ActionTypeId, owner string) (*actiontypes.Type, error) {
	key := actiontypes.KeyOf(id)
	if key.Owner != owner && !(owner == "Custom" && key == commandspec.Key) {
		return nil, wire.Errorf(wire.ErrActionTypeNotFound, "Action type %s cannot be polled here: its owner must be %s", key, owner)
	}
	t, err := s.pipelines.ActionType(ctx, key)
	if err != nil {
		return nil, err
	}
	if t == nil {
		return nil, wire.Errorf(wire.ErrActionTypeNotFound, "Action type %s does not exist", key)
	}
	return t, nil
}

// PollForJobs hands queued jobs of a custom action type to the calling
// worker, each with a fresh nonce to acknowledge it with.
func (s *Service) PollForJobs(ctx context.Context, in *wire.PollForJobsInput) (*wire.PollForJobsOutput, error) {
	if err := workerMayPoll(ctx, "PollForJobs", in.ActionTypeId); err != nil {
		return nil, err
	}
	typ, err := s.requirePollableType(ctx, in.ActionTypeId, "Custom")
	if err != nil {
		return nil, err
	}
	var query *string
	if actiontypes.KeyOf(in.ActionTypeId) == commandspec.Key {
		// pipelined's runners poll with their labels (commandspec.Labels).
		labels := ""
		for name, value := range in.QueryParam {
			if name != commandspec.LabelsParam {
				return nil, wire.Errorf(wire.ErrValidation, "queryParam of a Commands poll may name only '%s' (the runner's labels)", commandspec.LabelsParam)
			}
			canon, err := commandspec.ParseLabels(value)
			if err != nil {
				return nil, wire.Errorf(wire.ErrValidation, "queryParam '%s': %v", commandspec.LabelsParam, err)
			}
			labels = canon
		}
		query = &labels
	} else if len(in.QueryParam) > 0 {
		if len(in.QueryParam) > 1 {
			return nil, wire.Errorf(wire.ErrValidation, "queryParam may name one property, the action type's queryable one")
		}
		for name, value := range in.QueryParam {
			p, ok := typ.Property(name)
			if !ok || p.Queryable == nil || !*p.Queryable {
				return nil, wire.Errorf(wire.ErrValidation, "queryParam names '%s', which is not the queryable property of the action type", name)
			}
			query = &value
		}
	}
	max := 1
	if in.MaxBatchSize != nil {
		max = *in.MaxBatchSize
	}
	jobs, err := s.claim(ctx, actiontypes.KeyOf(in.ActionTypeId), query, max)
	if err != nil {
		return nil, err
	}
	out := &wire.PollForJobsOutput{Jobs: make([]wire.Job, 0, len(jobs))}
	for _, j := range jobs {
		data, err := s.jobData(j)
		if err != nil {
			return nil, err
		}
		// The jobs are claimed: a failure to issue credentials must not
		// lose them. The worker gets the job without credentials (and
		// GetJobDetails, which tries again, reports the error).
		if err := s.addArtifactCredentials(ctx, j, data); err != nil {
			s.logArtifactError(j, err)
		}
		out.Jobs = append(out.Jobs, wire.Job{Id: j.ID, Nonce: j.Nonce, AccountId: s.account, Data: data})
	}
	return out, nil
}

// pollFallback bounds how long a long poll sleeps without looking at the
// store, should a wake-up be lost.
const pollFallback = time.Second

// claim claims jobs; when none is queued it waits, up to pollWait, for a
// wake-up that a job of this type was queued (long polling), so that a
// worker learns of a job within milliseconds instead of at its next poll.
func (s *Service) claim(ctx context.Context, key actiontypes.Key, query *string, max int) ([]store.Job, error) {
	deadline := time.Now().Add(s.pollWait)
	typeKey := engine.JobTypeKey(key)
	for {
		wt := s.wake.wait(typeKey)
		jobs, err := s.store.ClaimJobs(ctx, store.ActionTypeKey(key), query, max,
			func() string { return uuid.NewString() }, time.Now().Add(s.engine.AckTimeout()))
		if err != nil || len(jobs) > 0 {
			s.wake.done(wt)
			s.index.add(jobs)
			return jobs, err
		}
		woken, stop := s.sleep(ctx, wt, deadline)
		if woken {
			continue // look again: the wake-up is used
		}
		s.wake.done(wt)
		if stop {
			return nil, nil
		}
	}
}

// sleep waits for a long poll's wake-up, or the fallback interval, and says
// whether it was woken, or must stop: the wait ran out, the server drains,
// or the caller went away (an empty answer nobody reads).
func (s *Service) sleep(ctx context.Context, wt *waiter, deadline time.Time) (woken, stop bool) {
	left := time.Until(deadline)
	if left <= 0 {
		return false, true
	}
	timer := time.NewTimer(min(left, pollFallback))
	defer timer.Stop()
	select {
	case <-wt.ch:
		return true, false
	case <-timer.C:
		return false, false
	case <-s.draining:
	case <-ctx.Done():
	}
	return false, true
}

// jobData is the job data a worker receives: secret configuration values
// appear in clear here, and only here.
func (s *Service) jobData(j store.Job) (*wire.JobData, error) {
	doc, err := engine.DecodeJob(j)
	if err != nil {
		return nil, err
	}
	var data wire.JobData
	if err := json.Unmarshal(doc.Data, &data); err != nil {
		return nil, err
	}
	if data.ActionConfiguration != nil {
		cfg := make(map[string]string, len(data.ActionConfiguration.Configuration))
		for k, v := range data.ActionConfiguration.Configuration {
			clear, err := s.pipelines.OpenSecret(j.Pipeline, v)
			if err != nil {
				return nil, err
			}
			cfg[k] = clear
		}
		data.ActionConfiguration.Configuration = cfg
	}
	return &data, nil
}

// customJob reads a job of a custom action type: the custom-job operations
// do not reach third-party jobs, which belong to their client (as on
// CodePipeline, where the two protocols are separate).
func (s *Service) customJob(ctx context.Context, id string) (store.Job, error) {
	j, err := s.job(ctx, id)
	if err == nil && !pollable(j.ActionType) {
		return store.Job{}, wire.Errorf(wire.ErrJobNotFound, "Job %s does not exist", id)
	}
	return j, err
}

func (s *Service) job(ctx context.Context, id string) (store.Job, error) {
	j, err := s.store.GetJob(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return j, wire.Errorf(wire.ErrJobNotFound, "Job %s does not exist", id)
	}
	return j, err
}

// AcknowledgeJob confirms that the worker holding the nonce took the job.
func (s *Service) AcknowledgeJob(ctx context.Context, in *wire.AcknowledgeJobInput) (*wire.AcknowledgeJobOutput, error) {
	pipeline, err := s.customJobPipeline(ctx, "AcknowledgeJob", in.JobId)
	if err != nil {
		return nil, err
	}
	status, err := s.engine.Acknowledge(ctx, pipeline, in.JobId, in.Nonce)
	if err != nil {
		return nil, err
	}
	return &wire.AcknowledgeJobOutput{Status: wire.JobStatus(status)}, nil
}

// GetJobDetails returns a job's data.
func (s *Service) GetJobDetails(ctx context.Context, in *wire.GetJobDetailsInput) (*wire.GetJobDetailsOutput, error) {
	j, err := s.customJob(ctx, in.JobId)
	if err != nil {
		return nil, err
	}
	if err := workerMayWork(ctx, "GetJobDetails", j); err != nil {
		return nil, err
	}
	data, err := s.jobData(j)
	if err != nil {
		return nil, err
	}
	if err := s.addArtifactCredentials(ctx, j, data); err != nil {
		return nil, err
	}
	return &wire.GetJobDetailsOutput{JobDetails: &wire.JobDetails{Id: j.ID, AccountId: s.account, Data: data}}, nil
}

// maxOutputVariablesSize is CodePipeline's limit on an action's output
// variables: keys and values together.
const maxOutputVariablesSize = 122880

// PutJobSuccessResult reports a job done (or, with a continuation token,
// done for now).
func (s *Service) PutJobSuccessResult(ctx context.Context, in *wire.PutJobSuccessResultInput) error {
	size := 0
	for k, v := range in.OutputVariables {
		size += len(k) + len(v)
	}
	if size > maxOutputVariablesSize {
		return wire.Errorf(wire.ErrOutputVariablesSizeExceeded, "The output variables take %d bytes; the limit is %d", size, maxOutputVariablesSize)
	}
	pipeline, err := s.customJobPipeline(ctx, "PutJobSuccessResult", in.JobId)
	if err != nil {
		return err
	}
	r := successResult(in.ContinuationToken, in.ExecutionDetails, in.CurrentRevision)
	r.OutputVariables = in.OutputVariables
	if err := s.engine.CompleteJob(ctx, pipeline, in.JobId, r); err != nil {
		return err
	}
	s.index.forget(in.JobId)
	return nil
}

// successResult and failureResult translate a worker's report, the same
// for custom and third-party jobs, into the engine's.
func successResult(continuation string, d *wire.ExecutionDetails, rev *wire.CurrentRevision) engine.JobResult {
	r := engine.JobResult{Success: true, ContinuationToken: continuation}
	if d != nil {
		r.Summary, r.ExternalID, r.Percent = d.Summary, d.ExternalExecutionId, d.PercentComplete
	}
	if rev != nil {
		r.Revision = rev.Revision
	}
	return r
}

func failureResult(f *wire.FailureDetails) engine.JobResult {
	return engine.JobResult{FailureType: string(f.Type), FailureMessage: f.Message, ExternalID: f.ExternalExecutionId}
}

// PutJobFailureResult reports a job failed.
func (s *Service) PutJobFailureResult(ctx context.Context, in *wire.PutJobFailureResultInput) error {
	pipeline, err := s.customJobPipeline(ctx, "PutJobFailureResult", in.JobId)
	if err != nil {
		return err
	}
	if err := s.engine.CompleteJob(ctx, pipeline, in.JobId, failureResult(in.FailureDetails)); err != nil {
		return err
	}
	s.index.forget(in.JobId)
	return nil
}

// pollable reports whether jobs of an action type are worked through the
// custom job protocol: custom types', and the Commands action's (which
// pipelined's runners poll for).
func pollable(k store.ActionTypeKey) bool {
	return k.Owner == "Custom" || actiontypes.Key(k) == commandspec.Key
}

// Heartbeat renews the lease of a runner's job, which it proves it holds
// with the job's nonce, and says whether to stop it.
func (s *Service) Heartbeat(ctx context.Context, jobID, nonce string) (stop bool, err error) {
	pipeline := ""
	if r, ok := s.index.get(jobID); ok {
		pipeline = r.pipeline
	} else {
		j, err := s.job(ctx, jobID)
		if err != nil {
			return false, err
		}
		pipeline = j.Pipeline
	}
	return s.engine.Heartbeat(ctx, pipeline, jobID, nonce)
}
