package engine

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"time"

	"github.com/google/uuid"

	"github.com/pipelined/pipelined/internal/actiontypes"
	"github.com/pipelined/pipelined/internal/store"
	"github.com/pipelined/pipelined/internal/wire"
)

func newUUID() string { return uuid.NewString() }

var manualApproval = actiontypes.Key{Category: "Approval", Owner: "AWS", Provider: "Manual", Version: "1"}

// startGroup starts every action of a runOrder group that has not
// succeeded in this stage run.
func (t *txn) startGroup(x *Execution, st *StageRun, sd *wire.StageDeclaration, group int) error {
	for i := range sd.Actions {
		ad := &sd.Actions[i]
		if runOrder(ad) != group {
			continue
		}
		if run := findRun(st, ad.Name); run != nil && run.Status == StatusSucceeded {
			continue
		}
		if err := t.startAction(x, st, ad); err != nil {
			return err
		}
	}
	t.touch(x)
	return nil
}

// startAction begins a new attempt of an action: it resolves the
// configuration, then hands the action to its executor. A configuration that
// cannot be resolved, or an action type pipelined cannot run, fails the
// attempt at once with a message saying why.
func (t *txn) startAction(x *Execution, st *StageRun, ad *wire.ActionDeclaration) error {
	attempt := 1
	if prev := findRun(st, ad.Name); prev != nil {
		attempt = prev.Attempt + 1
		x.History = append(x.History, *prev)
		st.Actions = removeRun(st.Actions, ad.Name)
	} else {
		for _, h := range x.History {
			if h.Stage == st.Name && h.Name == ad.Name && h.Attempt >= attempt {
				attempt = h.Attempt + 1
			}
		}
	}
	run := ActionRun{
		Name: ad.Name, Stage: st.Name, ExecutionID: t.e.newID(), Attempt: attempt, RunOrder: runOrder(ad),
		Status: StatusInProgress, Started: t.now, LastChange: t.now, Config: ad.Configuration, Namespace: ad.Namespace,
	}
	for _, in := range ad.InputArtifacts {
		run.Inputs = append(run.Inputs, in.Name)
	}
	for _, out := range ad.OutputArtifacts {
		run.Outputs = append(run.Outputs, out.Name)
	}
	slot := t.rt.slot(st.Name)
	if slot.LastAction == nil {
		slot.LastAction = map[string]string{}
	}
	slot.LastAction[ad.Name] = x.ID

	resolved, err := resolveConfig(x, ad.Configuration)
	if err != nil {
		run.Status, run.ErrorCode, run.ErrorMessage = StatusFailed, "ConfigurationError", err.Error()
		st.Actions = append(st.Actions, run)
		return nil
	}
	run.Resolved = resolved

	key := actiontypes.KeyOf(ad.ActionTypeId)
	switch {
	case key == manualApproval:
		timeout := t.e.apprTO
		if ad.TimeoutInMinutes != nil {
			timeout = time.Duration(*ad.TimeoutInMinutes) * time.Minute
		}
		run.Token = t.e.newID()
		run.TokenExpires = t.now.Add(timeout)
		if err := t.setTimer(timerID(timerApproval, run.ExecutionID), run.TokenExpires, TimerPayload{Kind: timerApproval, ExecutionID: x.ID, ActionExec: run.ExecutionID}); err != nil {
			return err
		}
	case key.Owner == "Custom" || key.Owner == "ThirdParty":
		typ, err := t.actionType(key)
		if err != nil {
			return err
		}
		if typ == nil {
			run.Status, run.ErrorCode, run.ErrorMessage = StatusFailed, "ActionTypeNotFound", fmt.Sprintf("Action type %s no longer exists", key)
			break
		}
		if err := t.queueJob(x, ad, &run, typ, ""); err != nil {
			return err
		}
	default:
		run.Status, run.ErrorCode = StatusFailed, "ActionNotSupported"
		run.ErrorMessage = fmt.Sprintf("pipelined cannot run %s/%s/%s/%s actions yet", key.Category, key.Owner, key.Provider, key.Version)
	}
	st.Actions = append(st.Actions, run)
	return nil
}

func removeRun(runs []ActionRun, name string) []ActionRun {
	out := runs[:0]
	for _, r := range runs {
		if r.Name != name {
			out = append(out, r)
		}
	}
	return out
}

func timerID(kind, ref string) string { return kind + ":" + ref }

func (t *txn) setTimer(id string, due time.Time, p TimerPayload) error {
	payload, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return t.tx.PutTimer(store.Timer{ID: id, Pipeline: t.pipeline, Due: due, Payload: payload})
}

// varRef matches #{namespace.Variable} references.
var varRef = regexp.MustCompile(`#\{([A-Za-z0-9@\-_]+)\.([A-Za-z0-9@\-_.]+)\}`)

// resolveConfig replaces variable references in configuration values:
// #{codepipeline.PipelineExecutionId}, #{variables.NAME} (pipeline
// variables) and #{namespace.Var} (output variables of earlier actions).
func resolveConfig(x *Execution, cfg map[string]string) (map[string]string, error) {
	if len(cfg) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(cfg))
	keys := make([]string, 0, len(cfg))
	for k := range cfg {
		keys = append(keys, k)
	}
	sort.Strings(keys) // the first unresolvable reference reported is deterministic
	for _, k := range keys {
		v := cfg[k]
		var missing string
		out[k] = varRef.ReplaceAllStringFunc(v, func(ref string) string {
			m := varRef.FindStringSubmatch(ref)
			if val, ok := lookupVar(x, m[1], m[2]); ok {
				return val
			}
			if missing == "" {
				missing = ref
			}
			return ref
		})
		if missing != "" {
			return nil, fmt.Errorf("Unable to resolve the variable reference %s in the configuration '%s': no such variable has been produced", missing, k)
		}
	}
	return out, nil
}

func lookupVar(x *Execution, ns, name string) (string, bool) {
	switch ns {
	case "codepipeline":
		if name == "PipelineExecutionId" {
			return x.ID, true
		}
		return "", false
	case "variables":
		for _, v := range x.Variables {
			if v.Name == name {
				return v.Value, true
			}
		}
		return "", false
	}
	v, ok := x.Outputs[ns][name]
	return v, ok
}

// queueJob creates the job that hands an action to external workers, with
// the job data CodePipeline gives them.
func (t *txn) queueJob(x *Execution, ad *wire.ActionDeclaration, run *ActionRun, typ *actiontypes.Type, continuation string) error {
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
	if store_ != nil {
		data.EncryptionKey = store_.EncryptionKey
	}
	for _, name := range run.Inputs {
		ref := x.Artifacts[name]
		data.InputArtifacts = append(data.InputArtifacts, wire.Artifact{
			Name: name, Revision: ref.Revision,
			Location: &wire.ArtifactLocation{Type: wire.ArtifactLocationTypeS3, S3Location: &wire.S3ArtifactLocation{BucketName: ref.Bucket, ObjectKey: ref.Key}},
		})
	}
	for _, name := range run.Outputs {
		bucket := ""
		if store_ != nil {
			bucket = store_.Location
		}
		data.OutputArtifacts = append(data.OutputArtifacts, wire.Artifact{
			Name:     name,
			Location: &wire.ArtifactLocation{Type: wire.ArtifactLocationTypeS3, S3Location: &wire.S3ArtifactLocation{BucketName: bucket, ObjectKey: artifactKey(x.Pipeline, name)}},
		})
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return err
	}
	timeout := typ.JobTimeoutMinutes
	if ad.TimeoutInMinutes != nil {
		timeout = *ad.TimeoutInMinutes
	}
	if timeout <= 0 {
		timeout = int(t.e.jobTO / time.Minute)
	}
	doc, err := json.Marshal(JobDoc{Stage: run.Stage, Action: run.Name, ActionExec: run.ExecutionID, Attempt: run.Attempt, Continuation: continuation, Data: raw, TimeoutMinutes: timeout})
	if err != nil {
		return err
	}
	query := ""
	for _, p := range typ.ActionConfigurationProperties {
		if p.Queryable != nil && *p.Queryable {
			query = run.Resolved[p.Name]
		}
	}
	run.JobID = t.e.newID()
	t.newJobs = true
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

// actionRun finds the in-progress run with an action execution id.
func (x *Execution) actionRun(actionExec string) (*StageRun, *ActionRun) {
	for si := range x.Stages {
		st := &x.Stages[si]
		for ai := range st.Actions {
			if st.Actions[ai].ExecutionID == actionExec {
				return st, &st.Actions[ai]
			}
		}
	}
	return nil, nil
}

// succeed records a successful action attempt: its output artifacts and
// variables become visible to later actions.
func (t *txn) succeed(x *Execution, run *ActionRun, summary, by string, outputVars map[string]string) {
	run.Status, run.LastChange = StatusSucceeded, t.now
	if summary != "" {
		run.Summary = summary
	}
	if by != "" {
		run.UpdatedBy = by
	}
	if len(outputVars) > 0 {
		run.OutputVariables = outputVars
		if run.Namespace != "" {
			if x.Outputs == nil {
				x.Outputs = map[string]map[string]string{}
			}
			x.Outputs[run.Namespace] = outputVars
		}
	}
	t.touch(x)
}

// fail records a failed action attempt.
func (t *txn) fail(x *Execution, run *ActionRun, code, message, by string) {
	run.Status, run.LastChange, run.ErrorCode, run.ErrorMessage = StatusFailed, t.now, code, message
	if by != "" {
		run.UpdatedBy = by
	}
	t.touch(x)
}

// recordOutputs stores where an action's output artifacts are, from the
// job data the worker was given.
func (t *txn) recordOutputs(x *Execution, run *ActionRun, job *JobDoc, revision string) error {
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
