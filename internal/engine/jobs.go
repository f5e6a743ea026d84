package engine

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/pipelined/pipelined/internal/actiontypes"
	"github.com/pipelined/pipelined/internal/commandspec"
	"github.com/pipelined/pipelined/internal/store"
	"github.com/pipelined/pipelined/internal/wire"
)

// jobExecutor runs the actions of custom and third-party action types: it
// queues a job for external workers (PollForJobs), whose results arrive
// through Acknowledge and CompleteJob; an acknowledged job that reports
// nothing within its timeout fails the action.
type jobExecutor struct{}

const jobTimer = "job-timeout"

type jobTimerData struct {
	JobID string `json:"jobId"`
	// Lease marks the runner lease timer (lease.go), not the job timeout.
	Lease bool `json:"lease,omitempty"`
}

func (jobExecutor) Name() string { return "job-worker" }

func (jobExecutor) Start(s *Step) error {
	typ, err := s.ActionType()
	if err != nil {
		return err
	}
	if typ == nil {
		key := actiontypes.KeyOf(s.Action.ActionTypeId)
		s.Fail("ActionTypeNotFound", fmt.Sprintf("Action type %s no longer exists", key), "")
		return nil
	}
	return s.t.queueJob(s, typ, "")
}

func (jobExecutor) Timer(s *Step, data json.RawMessage) error {
	var d jobTimerData
	if err := json.Unmarshal(data, &d); err != nil {
		return err
	}
	t := s.t
	j, doc, err := t.loadJob(d.JobID)
	if err != nil {
		if e, ok := wire.AsError(err); ok && e.Code == wire.ErrJobNotFound {
			return nil
		}
		return err
	}
	if j.Status != JobInProgress || s.Run.JobID != j.ID {
		return nil
	}
	if d.Lease {
		j.Status, j.Updated = JobFailed, t.now
		if err := t.tx.PutJob(j); err != nil {
			return err
		}
		if err := s.CancelTimer(jobTimer); err != nil {
			return err
		}
		s.Fail(RunnerLost, runnerLostMessage(j.ID, t.e.leases[actiontypes.Key(j.ActionType)]), "")
		return nil
	}
	j.Status, j.Updated = JobTimedOut, t.now
	if err := t.tx.PutJob(j); err != nil {
		return err
	}
	if err := s.CancelTimer(leaseTimer); err != nil {
		return err
	}
	s.Fail("TimedOut", fmt.Sprintf("The job did not report a result within %s", time.Duration(doc.TimeoutSeconds)*time.Second), "")
	return nil
}

// Abandon marks the attempt's job abandoned: its worker can no longer
// report a result.
func (jobExecutor) Abandon(s *Step) error {
	if err := s.CancelTimer(jobTimer); err != nil {
		return err
	}
	if err := s.CancelTimer(leaseTimer); err != nil {
		return err
	}
	if s.Run.JobID == "" {
		return nil
	}
	j, err := s.t.tx.Job(s.Run.JobID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	j.Status, j.Updated = JobAbandoned, s.t.now
	return s.t.tx.PutJob(j)
}

// jobStep finds the attempt a job belongs to, if it is still running it
// (nil otherwise).
func (t *txn) jobStep(j store.Job, doc *JobDoc) (*Step, error) {
	x, err := t.exec(j.ExecutionID)
	if err != nil {
		return nil, err
	}
	_, run := x.actionRun(doc.ActionExec)
	if run == nil || run.Status != StatusInProgress || run.JobID != j.ID {
		return nil, nil
	}
	decl, err := t.declOf(x)
	if err != nil {
		return nil, err
	}
	ad := findAction(decl, run.Stage, run.Name)
	if ad == nil {
		return nil, nil
	}
	return &Step{t: t, Execution: x, Run: run, Action: ad}, nil
}

// Job protocol errors.
func jobNotFound(id string) error {
	return wire.Errorf(wire.ErrJobNotFound, "Job %s does not exist", id)
}

// loadJob reads a job and its document inside a transition.
func (t *txn) loadJob(id string) (store.Job, *JobDoc, error) {
	j, err := t.tx.Job(id)
	if errors.Is(err, store.ErrNotFound) {
		return j, nil, jobNotFound(id)
	}
	if err != nil {
		return j, nil, err
	}
	if d := t.e.jobDocs.get(id, j.Doc); d != nil {
		return j, d, nil
	}
	var doc JobDoc
	if err := json.Unmarshal(j.Doc, &doc); err != nil {
		return j, nil, err
	}
	t.e.jobDocs.put(id, j.Doc, &doc)
	return j, &doc, nil
}

// Job statuses beyond the store's Queued and Dispatched.
const (
	JobInProgress = "InProgress"
	JobSucceeded  = "Succeeded"
	JobFailed     = "Failed"
	JobTimedOut   = "TimedOut"
	JobAbandoned  = "Abandoned"
)

// Acknowledge confirms a dispatched job to the worker that holds its nonce.
func (e *Engine) Acknowledge(ctx context.Context, pipeline, jobID, nonce string) (string, error) {
	var status string
	err := e.transact(ctx, pipeline, func(t *txn) error {
		j, doc, err := t.loadJob(jobID)
		if err != nil {
			return err
		}
		if subtle.ConstantTimeCompare([]byte(j.Nonce), []byte(nonce)) != 1 || j.Nonce == "" {
			return wire.Errorf(wire.ErrInvalidNonce, "The nonce is not the current nonce of job %s", jobID)
		}
		switch j.Status {
		case store.JobDispatched:
			if !j.Deadline.IsZero() && t.now.After(j.Deadline) {
				// Returned to the queue: another worker may hold a newer nonce.
				return wire.Errorf(wire.ErrInvalidNonce, "Job %s was not acknowledged in time and was returned to the queue", jobID)
			}
			j.Status, j.Updated = JobInProgress, t.now
			j.Deadline = t.now.Add(time.Duration(doc.TimeoutSeconds) * time.Second)
			if err := t.tx.PutJob(j); err != nil {
				return err
			}
			// The timer is set from the job's own document: no need to read
			// the execution (the timer checks the attempt when it fires).
			data, err := json.Marshal(jobTimerData{JobID: j.ID})
			if err != nil {
				return err
			}
			if err := t.setAttemptTimer(jobExecutor{}.Name(), j.ExecutionID, doc.ActionExec, jobTimer, j.Deadline, data); err != nil {
				return err
			}
			if ttl := t.e.leases[actiontypes.Key(j.ActionType)]; ttl > 0 {
				if err := t.setLease(j.ID, j.ExecutionID, doc.ActionExec, ttl); err != nil {
					return err
				}
			}
		case JobInProgress:
			// Acknowledging twice with the right nonce is harmless.
		}
		status = j.Status
		if status != JobInProgress {
			// Abandoned, timed out or finished: the job is over for its worker.
			status = JobFailed
		}
		return nil
	})
	return status, err
}

// JobResult is what a worker reports for a job.
type JobResult struct {
	Success           bool
	Summary           string
	ExternalID        string
	Percent           *int
	Revision          string
	ContinuationToken string
	OutputVariables   map[string]string
	FailureType       string
	FailureMessage    string
}

// CompleteJob records a worker's result for an in-progress job and moves
// the execution on. A continuation token completes this job and queues a
// new one for the same action attempt, carrying the token.
func (e *Engine) CompleteJob(ctx context.Context, pipeline, jobID string, r JobResult) error {
	return e.transact(ctx, pipeline, func(t *txn) error {
		j, doc, err := t.loadJob(jobID)
		if err != nil {
			return err
		}
		if j.Status != JobInProgress {
			return wire.Errorf(wire.ErrInvalidJobState, "Job %s is %s, not InProgress: it must be acknowledged first, and a result can be reported once", jobID, j.Status)
		}
		step, err := t.jobStep(j, doc)
		if err != nil {
			return err
		}
		if step == nil {
			// The action was abandoned or stopped under the job.
			j.Status, j.Updated = JobAbandoned, t.now
			if err := t.tx.PutJob(j); err != nil {
				return err
			}
			return wire.Errorf(wire.ErrInvalidJobState, "Job %s no longer belongs to a running action", jobID)
		}
		if err := step.CancelTimer(jobTimer); err != nil {
			return err
		}
		if err := step.CancelTimer(leaseTimer); err != nil {
			return err
		}
		x, run := step.Execution, step.Run
		j.Updated = t.now
		run.ExternalID, run.Percent, run.LastChange = r.ExternalID, r.Percent, t.now
		if !r.Success {
			j.Status = JobFailed
			if err := t.tx.PutJob(j); err != nil {
				return err
			}
			t.fail(x, run, r.FailureType, r.FailureMessage, "")
			return t.advance(x)
		}
		j.Status = JobSucceeded
		if err := t.tx.PutJob(j); err != nil {
			return err
		}
		if r.Summary != "" {
			run.Summary = r.Summary
		}
		if r.ContinuationToken != "" {
			return t.continueJob(step, r.ContinuationToken)
		}
		run.Revision = r.Revision
		if err := t.recordOutputs(x, run, doc, r.Revision); err != nil {
			return err
		}
		t.succeed(x, run, r.Summary, "", r.OutputVariables)
		return t.advance(x)
	})
}

// continueJob queues the next job of an action attempt, carrying the token.
func (t *txn) continueJob(s *Step, token string) error {
	typ, err := s.ActionType()
	if err != nil {
		return err
	}
	if typ == nil {
		s.Fail("ActionTypeNotFound", "The action type no longer exists", "")
		return t.advance(s.Execution)
	}
	t.touch(s.Execution)
	return t.queueJob(s, typ, token)
}

func findAction(decl *wire.PipelineDeclaration, stage, action string) *wire.ActionDeclaration {
	for si := range decl.Stages {
		if decl.Stages[si].Name != stage {
			continue
		}
		for ai := range decl.Stages[si].Actions {
			if decl.Stages[si].Actions[ai].Name == action {
				return &decl.Stages[si].Actions[ai]
			}
		}
	}
	return nil
}

// queueJob creates the job that hands an action to external workers, with
// the job data CodePipeline gives them.
func (t *txn) queueJob(s *Step, typ *actiontypes.Type, continuation string) error {
	x, ad, run := s.Execution, s.Action, s.Run
	decl, err := t.declOf(x)
	if err != nil {
		return err
	}
	store_, key := artifactStore(decl, ad), actiontypes.KeyOf(ad.ActionTypeId)
	data := wire.JobData{
		ActionTypeId:        ad.ActionTypeId,
		ActionConfiguration: &wire.ActionConfiguration{Configuration: run.Resolved},
		PipelineContext: &wire.PipelineContext{
			PipelineName: x.Pipeline, PipelineArn: t.e.defs.PipelineARN(x.Pipeline), PipelineExecutionId: x.ID,
			Stage:  &wire.StageContext{Name: run.Stage},
			Action: &wire.ActionContext{Name: run.Name, ActionExecutionId: run.ExecutionID},
		},
		ContinuationToken: continuation,
	}
	// The action's timeoutInMinutes, else its type's job timeout, else the
	// engine's default.
	timeout := time.Duration(typ.JobTimeoutMinutes) * time.Minute
	if ad.TimeoutInMinutes != nil {
		timeout = time.Duration(*ad.TimeoutInMinutes) * time.Minute
	}
	if timeout <= 0 {
		timeout = t.e.jobTO
	}
	if store_ != nil {
		data.EncryptionKey = store_.EncryptionKey
	}
	if typ.RequiresCommands {
		cfg, err := commandsConfig(x, ad, run.Resolved, int(timeout/time.Second))
		if err != nil {
			s.Fail("ConfigurationError", err.Error(), "")
			run.JobID = ""
			return nil
		}
		data.ActionConfiguration.Configuration = cfg
	}
	for _, name := range run.Inputs {
		ref := x.Artifacts[name]
		data.InputArtifacts = append(data.InputArtifacts, wire.Artifact{
			Name: name, Revision: ref.Revision,
			Location: &wire.ArtifactLocation{Type: wire.ArtifactLocationTypeS3, S3Location: &wire.S3ArtifactLocation{BucketName: ref.Bucket, ObjectKey: ref.Key}},
		})
	}
	outputs := make([]JobOutput, 0, len(run.Outputs))
	for _, name := range run.Outputs {
		bucket := ""
		if store_ != nil {
			bucket = store_.Location
		}
		o := JobOutput{Name: name, Bucket: bucket, Key: artifactKey(x.Pipeline, name)}
		outputs = append(outputs, o)
		data.OutputArtifacts = append(data.OutputArtifacts, wire.Artifact{
			Name:     name,
			Location: &wire.ArtifactLocation{Type: wire.ArtifactLocationTypeS3, S3Location: &wire.S3ArtifactLocation{BucketName: o.Bucket, ObjectKey: o.Key}},
		})
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return err
	}
	jd := &JobDoc{Stage: run.Stage, Action: run.Name, ActionExec: run.ExecutionID, Attempt: run.Attempt, Continuation: continuation,
		Data: raw, Outputs: outputs, TimeoutSeconds: int(max(timeout/time.Second, 1))}
	doc, err := json.Marshal(jd)
	if err != nil {
		return err
	}
	query := ""
	for _, p := range typ.ActionConfigurationProperties {
		if p.Queryable != nil && *p.Queryable {
			query = run.Resolved[p.Name]
		}
	}
	if typ.RequiresCommands {
		// A runner polls with its labels: the job waits for one whose
		// labels are the action's.
		query = commandspec.Labels(run.Resolved)
	}
	run.JobID = t.e.newID()
	// The job's worker reports within seconds, usually to this replica:
	// its transition finds the document decoded.
	t.e.jobDocs.put(run.JobID, doc, jd)
	if t.newJobs == nil {
		t.newJobs = map[string]int{}
	}
	t.newJobs[JobTypeKey(key)]++
	return t.tx.PutJob(store.Job{
		ID: run.JobID, ActionType: store.ActionTypeKey(key), QueryValue: query, Pipeline: x.Pipeline, ExecutionID: x.ID,
		Status: store.JobQueued, Doc: doc, Created: t.now, Updated: t.now,
	})
}

// artifactStore is the store of an action's region.
func artifactStore(decl *wire.PipelineDeclaration, ad *wire.ActionDeclaration) *wire.ArtifactStore {
	if decl.ArtifactStore != nil {
		return decl.ArtifactStore
	}
	if s, ok := decl.ArtifactStores[ad.Region]; ok {
		return &s
	}
	for _, s := range decl.ArtifactStores { // the pipeline's own region (validated to exist)
		return &s
	}
	return nil
}

// artifactKey names an output artifact's object as CodePipeline does:
// <pipeline name, 20 chars>/<artifact name, 10 chars>/<random>.
func artifactKey(pipeline, artifact string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 7)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return truncate(pipeline, 20) + "/" + truncate(artifact, 10) + "/" + string(b)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// recordOutputs stores where an action's output artifacts are, from the
// job data the worker was given.
func (t *txn) recordOutputs(x *Execution, run *ActionRun, job *JobDoc, revision string) error {
	if job.Outputs != nil || len(run.Outputs) == 0 {
		if x.Artifacts == nil {
			x.Artifacts = map[string]ArtifactRef{}
		}
		for _, o := range job.Outputs {
			x.Artifacts[o.Name] = ArtifactRef{Bucket: o.Bucket, Key: o.Key, Revision: revision, Producer: run.Name, Created: t.now}
		}
		return nil
	}
	// A job queued before JobDoc had Outputs: read them from the job data.
	var data wire.JobData
	if err := json.Unmarshal(job.Data, &data); err != nil {
		return err
	}
	if x.Artifacts == nil {
		x.Artifacts = map[string]ArtifactRef{}
	}
	for _, a := range data.OutputArtifacts {
		if a.Location == nil || a.Location.S3Location == nil {
			continue
		}
		x.Artifacts[a.Name] = ArtifactRef{
			Bucket: a.Location.S3Location.BucketName, Key: a.Location.S3Location.ObjectKey,
			Revision: revision, Producer: run.Name, Created: t.now,
		}
	}
	return nil
}

// JobExecutor returns the job-worker executor, for action types whose work
// a worker does outside the engine: external workers over the job protocol,
// or in-server workers (the built-in S3 actions) that claim jobs from the
// store and report through Acknowledge and CompleteJob like any worker.
func JobExecutor() Executor { return jobExecutor{} }

// commandsConfig is the configuration of a Commands job: the action's own
// plus its spec (commandspec), with variable references resolved.
func commandsConfig(x *Execution, ad *wire.ActionDeclaration, resolved map[string]string, timeoutSeconds int) (map[string]string, error) {
	spec, err := commandspec.Build(ad, func(field, value string) (string, error) {
		r, err := resolveConfig(x, map[string]string{field: value})
		if err != nil {
			return "", err
		}
		return r[field], nil
	})
	if err != nil {
		return nil, err
	}
	spec.TimeoutSeconds = timeoutSeconds
	enc, err := spec.Encode()
	if err != nil {
		return nil, err
	}
	cfg := make(map[string]string, len(resolved)+1)
	for k, v := range resolved {
		cfg[k] = v
	}
	cfg[commandspec.SpecKey] = enc
	return cfg, nil
}
