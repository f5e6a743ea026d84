package pipelines

import (
	"context"
	"fmt"

	"github.com/pipelined/pipelined/internal/rules"
	"github.com/pipelined/pipelined/internal/wire"
)

// ListRuleTypes lists the rule types stage conditions may use, with their
// configuration properties (internal/rules says which pipelined runs).
func (s *Service) ListRuleTypes(_ context.Context, in *wire.ListRuleTypesInput) (*wire.ListRuleTypesOutput, error) {
	out := &wire.ListRuleTypesOutput{RuleTypes: []wire.RuleType{}}
	if in.RegionFilter != "" && in.RegionFilter != s.region {
		return out, nil
	}
	out.RuleTypes = rules.Types()
	return out, nil
}

// validateConditions checks a stage's beforeEntry, onSuccess and onFailure
// declarations: the results each allows, known rule types with their
// required configuration, valid cron expressions and time zones, and no
// rollback in PARALLEL mode. Errors are InvalidStageDeclarationExceptions
// naming the field.
func validateConditions(p *wire.PipelineDeclaration, si int) error {
	st := &p.Stages[si]
	path := fmt.Sprintf("stages[%d]", si)
	check := func(kind string, conds []wire.Condition, result wire.Result) error {
		for ci := range conds {
			c := &conds[ci]
			field := fmt.Sprintf("%s.%s.conditions[%d]", path, kind, ci)
			r := c.Result
			if r == "" {
				r = result
			}
			if r != "" {
				if err := rules.ValidateResult(kind, field+".result", r); err != nil {
					return stageErr("Stage '%s': %v", st.Name, err)
				}
			}
			if kind != "onFailure" && len(c.Rules) == 0 {
				return stageErr("Stage '%s': %s.rules: a %s condition needs at least one rule", st.Name, field, kind)
			}
			names := map[string]bool{}
			for ri := range c.Rules {
				rf := fmt.Sprintf("%s.rules[%d]", field, ri)
				if names[c.Rules[ri].Name] {
					return stageErr("Stage '%s': %s.name: rule name '%s' is used more than once in the condition", st.Name, rf, c.Rules[ri].Name)
				}
				names[c.Rules[ri].Name] = true
				if err := rules.ValidateRule(rf, &c.Rules[ri]); err != nil {
					return stageErr("Stage '%s': %v", st.Name, err)
				}
			}
		}
		return nil
	}
	if si == 0 && (st.BeforeEntry != nil || st.OnSuccess != nil || st.OnFailure != nil) {
		return stageErr("Stage '%s': %s: the first (source) stage cannot have conditions", st.Name, path)
	}
	if b := st.BeforeEntry; b != nil {
		if err := check("beforeEntry", b.Conditions, ""); err != nil {
			return err
		}
	}
	if o := st.OnSuccess; o != nil {
		if err := check("onSuccess", o.Conditions, ""); err != nil {
			return err
		}
		for _, c := range o.Conditions {
			if c.Result == wire.ResultRollback && p.ExecutionMode == wire.ExecutionModeParallel {
				return stageErr("Stage '%s': %s.onSuccess: result ROLLBACK is not available in PARALLEL mode", st.Name, path)
			}
		}
	}
	if f := st.OnFailure; f != nil {
		if f.Result == "" && !anyResult(f.Conditions) {
			return stageErr("Stage '%s': %s.onFailure.result: is required (ROLLBACK or RETRY)", st.Name, path)
		}
		if f.Result != "" {
			if err := rules.ValidateResult("onFailure", path+".onFailure.result", f.Result); err != nil {
				return stageErr("Stage '%s': %v", st.Name, err)
			}
		}
		if err := check("onFailure", f.Conditions, f.Result); err != nil {
			return err
		}
		r := f.Result
		if r == "" && len(f.Conditions) > 0 {
			r = f.Conditions[0].Result
		}
		if r == wire.ResultRollback && p.ExecutionMode == wire.ExecutionModeParallel {
			return stageErr("Stage '%s': %s.onFailure.result: ROLLBACK is not available in PARALLEL mode", st.Name, path)
		}
		if f.RetryConfiguration != nil && r != wire.ResultRetry {
			return stageErr("Stage '%s': %s.onFailure.retryConfiguration: only applies to result RETRY", st.Name, path)
		}
	}
	return nil
}

func anyResult(conds []wire.Condition) bool {
	for _, c := range conds {
		if c.Result != "" {
			return true
		}
	}
	return false
}
