// Package engine runs pipelines: the state machine of executions, stages
// and actions described in docs/engine.md. Every transition happens inside
// store.InPipeline, together with the work it creates (jobs, timers), so a
// crash at any point leaves a state the engine resumes from.
package engine

import (
	"encoding/json"
	"time"
)

// Execution statuses (PipelineExecutionStatus).
const (
	StatusInProgress = "InProgress"
	StatusStopping   = "Stopping"
	StatusStopped    = "Stopped"
	StatusSucceeded  = "Succeeded"
	StatusSuperseded = "Superseded"
	StatusFailed     = "Failed"
	StatusCancelled  = "Cancelled"
	// Action-only status.
	StatusAbandoned = "Abandoned"
	// Stage-only status: a beforeEntry condition with result SKIP failed.
	StatusSkipped = "Skipped"
)

// Execution modes and types.
const (
	ModeSuperseded = "SUPERSEDED"
	ModeQueued     = "QUEUED"
	ModeParallel   = "PARALLEL"

	TypeStandard = "STANDARD"
	TypeRollback = "ROLLBACK"
)

// Execution is the engine's document of one pipeline execution.
type Execution struct {
	ID              string            `json:"id"`
	Pipeline        string            `json:"pipeline"`
	PipelineVersion int               `json:"pipelineVersion"`
	Status          string            `json:"status"`
	StatusSummary   string            `json:"statusSummary,omitempty"`
	Mode            string            `json:"mode"`
	Type            string            `json:"type"`
	TriggerType     string            `json:"triggerType"`
	TriggerDetail   string            `json:"triggerDetail,omitempty"`
	Variables       []Variable        `json:"variables,omitempty"`
	StopReason      string            `json:"stopReason,omitempty"`
	StopMode        string            `json:"stopMode,omitempty"` // "", "wait" or "abandon"
	RollbackTarget  string            `json:"rollbackTarget,omitempty"`
	ClientToken     string            `json:"clientToken,omitempty"`
	SourceOverrides map[string]string `json:"sourceOverrides,omitempty"` // source action name -> revision

	// Stage is the index of the stage the execution is in, or waits at the
	// inbound transition of (Waiting). It is len(Stages) when it is done.
	Stage   int  `json:"stage"`
	Waiting bool `json:"waiting,omitempty"`
	// Only is set for a rollback: the one stage it runs.
	Only   string     `json:"only,omitempty"`
	Stages []StageRun `json:"stages"`

	// Artifacts produced so far, by artifact name.
	Artifacts map[string]ArtifactRef `json:"artifacts,omitempty"`
	// Outputs are the output variables of actions, by namespace.
	Outputs map[string]map[string]string `json:"outputs,omitempty"`
	// History holds finished attempts of actions that were retried.
	History []ActionRun `json:"history,omitempty"`
	// RuleHistory holds rule runs of conditions evaluated again (a stage
	// retried automatically re-evaluates its onFailure condition).
	RuleHistory []RuleRun `json:"ruleHistory,omitempty"`

	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// Variable is a resolved pipeline variable.
type Variable struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// ArtifactRef is where an artifact is stored.
type ArtifactRef struct {
	Bucket   string `json:"bucket"`
	Key      string `json:"key"`
	Revision string `json:"revision,omitempty"`
	// Producer is the action that produced it (for artifactRevisions).
	Producer string    `json:"producer,omitempty"`
	Created  time.Time `json:"created"`
}

// StageRun is an execution's run of one stage.
type StageRun struct {
	Name    string      `json:"name"`
	Status  string      `json:"status,omitempty"` // "" until entered
	Attempt int         `json:"attempt,omitempty"`
	Retries int         `json:"retries,omitempty"`
	Actions []ActionRun `json:"actions,omitempty"` // latest attempt of each action started
	// Conditions are the stage conditions evaluated in this stage run
	// (conditions.go).
	Conditions []ConditionRun `json:"conditions,omitempty"`
	// AutoRetries counts automatic retries (onFailure RETRY).
	AutoRetries int `json:"autoRetries,omitempty"`
}

// ActionRun is one attempt of an action.
type ActionRun struct {
	Name            string            `json:"name"`
	Stage           string            `json:"stage"`
	ExecutionID     string            `json:"executionId"`
	Attempt         int               `json:"attempt"`
	RunOrder        int               `json:"runOrder"`
	Status          string            `json:"status"`
	Started         time.Time         `json:"started"`
	LastChange      time.Time         `json:"lastChange"`
	UpdatedBy       string            `json:"updatedBy,omitempty"`
	Summary         string            `json:"summary,omitempty"`
	ExternalID      string            `json:"externalId,omitempty"`
	ExternalURL     string            `json:"externalUrl,omitempty"`
	Percent         *int              `json:"percent,omitempty"`
	ErrorCode       string            `json:"errorCode,omitempty"`
	ErrorMessage    string            `json:"errorMessage,omitempty"`
	Token           string            `json:"token,omitempty"`
	TokenExpires    time.Time         `json:"tokenExpires,omitzero"`
	JobID           string            `json:"jobId,omitempty"`
	Config          map[string]string `json:"config,omitempty"`   // as declared (secrets sealed)
	Resolved        map[string]string `json:"resolved,omitempty"` // variables resolved (secrets sealed)
	Inputs          []string          `json:"inputs,omitempty"`
	Outputs         []string          `json:"outputs,omitempty"`
	OutputVariables map[string]string `json:"outputVariables,omitempty"`
	Revision        string            `json:"revision,omitempty"`
	Namespace       string            `json:"namespace,omitempty"`
}

// Finished reports whether the action attempt has ended.
func (a *ActionRun) Finished() bool { return a.Status != StatusInProgress }

// Active reports whether the execution can still change by itself.
func (x *Execution) Active() bool {
	switch x.Status {
	case StatusInProgress, StatusStopping:
		return true
	}
	return false
}

// Runtime is the engine's document of one pipeline: who holds each stage,
// who waits at each inbound transition, and the transitions' state.
type Runtime struct {
	Stages map[string]*StageSlot `json:"stages"`
	// Active counts the pipeline's executions in progress or waiting, kept
	// in the same transactions that start and end them (so StartPipelineExecution
	// checks its limit without reading every active execution).
	Active int `json:"active"`
}

// StageSlot is the runtime state of one stage.
type StageSlot struct {
	// Holder is the execution in the stage (SUPERSEDED and QUEUED modes:
	// one at a time).
	Holder string `json:"holder,omitempty"`
	// Waiting are the executions at the inbound transition, in arrival order.
	Waiting []string `json:"waiting,omitempty"`
	// Latest is the execution that entered the stage last.
	Latest string `json:"latest,omitempty"`
	// LastAction is, by action name, the execution that started the
	// action's latest attempt (GetPipelineState's actionStates).
	LastAction map[string]string `json:"lastAction,omitempty"`
	// Succeeded is the execution that last succeeded in the stage: the
	// target of an automatic rollback.
	Succeeded string `json:"succeeded,omitempty"`
	// Disabled is set while the inbound transition is disabled.
	Disabled *Disabled `json:"disabled,omitempty"`
	// Changed is when the transition was last enabled or disabled, and by whom.
	ChangedAt time.Time `json:"changedAt,omitzero"`
	ChangedBy string    `json:"changedBy,omitempty"`
}

// Disabled describes a disabled inbound transition.
type Disabled struct {
	Reason string `json:"reason"`
}

func (r *Runtime) slot(stage string) *StageSlot {
	if r.Stages == nil {
		r.Stages = map[string]*StageSlot{}
	}
	s := r.Stages[stage]
	if s == nil {
		s = &StageSlot{}
		r.Stages[stage] = s
	}
	return s
}

// JobDoc is what the engine keeps with a job: the data the worker receives
// and where its result goes.
type JobDoc struct {
	Stage        string `json:"stage"`
	Action       string `json:"action"`
	ActionExec   string `json:"actionExecutionId"`
	Attempt      int    `json:"attempt"`
	Continuation string `json:"continuationToken,omitempty"`
	// Data is the JSON of the job's wire.JobData, secrets sealed.
	Data []byte `json:"data"`
	// Outputs are where the job's output artifacts go (also in Data; kept
	// apart so that a completion need not decode the job data).
	Outputs []JobOutput `json:"outputs,omitempty"`
	// TimeoutSeconds is how long an acknowledged job may run.
	TimeoutSeconds int `json:"timeoutSeconds"`
}

// JobOutput is where a job writes one output artifact.
type JobOutput struct {
	Name   string `json:"name"`
	Bucket string `json:"bucket"`
	Key    string `json:"key"`
}

// TimerPayload is the payload of a store.Timer: which executor set it, for
// which action attempt, with the executor's own data.
type TimerPayload struct {
	Executor    string          `json:"executor"`
	ExecutionID string          `json:"executionId"`
	ActionExec  string          `json:"actionExecutionId"`
	Data        json.RawMessage `json:"data,omitempty"`
}
