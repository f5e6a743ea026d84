package engine

import (
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
	slot := t.runtime().slot(st.Name)
	if slot.LastAction == nil {
		slot.LastAction = map[string]string{}
	}
	slot.LastAction[ad.Name] = x.ID

	resolved, err := resolveConfig(x, ad.Configuration, t.e.defs)
	if err != nil {
		run.Status, run.ErrorCode, run.ErrorMessage = StatusFailed, "ConfigurationError", err.Error()
		st.Actions = append(st.Actions, run)
		return nil
	}
	run.Resolved = resolved

	st.Actions = append(st.Actions, run)
	step := &Step{t: t, Execution: x, Run: &st.Actions[len(st.Actions)-1], Action: ad}
	key := actiontypes.KeyOf(ad.ActionTypeId)
	ex := t.e.executorFor(key)
	if ex == nil {
		step.Fail("ActionNotSupported", fmt.Sprintf("pipelined cannot run %s/%s/%s/%s actions yet", key.Category, key.Owner, key.Provider, key.Version), "")
		return nil
	}
	return ex.Start(step)
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

func (t *txn) setTimer(id string, due time.Time, p TimerPayload) error {
	payload, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return t.tx.PutTimer(store.Timer{ID: id, Pipeline: t.pipeline, Due: due, Payload: payload})
}

// varRef matches #{namespace.Variable} references.
var varRef = regexp.MustCompile(`#\{([A-Za-z0-9@\-_]+)\.([A-Za-z0-9@\-_.]+)\}`)

// secretCodec opens and seals the secret configuration values of a
// pipeline (the pipelines service does, under the master key).
type secretCodec interface {
	IsSecret(value string) bool
	OpenSecret(pipeline, value string) (string, error)
	SealSecret(pipeline, value string) string
}

// resolveConfig replaces variable references in configuration values:
// #{codepipeline.PipelineExecutionId}, #{variables.NAME} (pipeline
// variables) and #{namespace.Var} (output variables of earlier actions).
// A secret value is resolved too: opened, resolved, and sealed again, so
// that what it resolves to is as secret as the value (masked wherever the
// sealed value is, handed in clear only to the job's worker).
func resolveConfig(x *Execution, cfg map[string]string, sc secretCodec) (map[string]string, error) {
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
		secret := sc.IsSecret(v)
		if secret {
			clear, err := sc.OpenSecret(x.Pipeline, v)
			if err != nil {
				return nil, fmt.Errorf("Cannot open the secret configuration '%s': %w", k, err)
			}
			if !varRef.MatchString(clear) {
				out[k] = v // nothing to resolve: keep the sealed value as it is
				continue
			}
			v = clear
		}
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
		if secret {
			out[k] = sc.SealSecret(x.Pipeline, out[k])
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
