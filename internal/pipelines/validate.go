package pipelines

import (
	"context"
	"fmt"
	"strings"

	"github.com/pipelined/pipelined/internal/actiontypes"
	"github.com/pipelined/pipelined/internal/commandspec"
	"github.com/pipelined/pipelined/internal/identity"
	"github.com/pipelined/pipelined/internal/secrets"
	"github.com/pipelined/pipelined/internal/wire"
)

// Limits of a pipeline's structure, as CodePipeline documents them.
const (
	minStages          = 2
	maxStages          = 50
	maxActionsPerStage = 50
	maxTags            = 50
	// SecretMask is what GetPipeline shows instead of a secret value, and what
	// UpdatePipeline accepts to mean "keep the stored value".
	SecretMask = "****"
)

// typeResolver finds an action type; nil, nil when it does not exist.
type typeResolver func(ctx context.Context, k actiontypes.Key) (*actiontypes.Type, error)

// normalize fills the defaults CodePipeline fills, so that what is stored is
// what GetPipeline shows: runOrder 1, executionMode SUPERSEDED, and the
// pipeline type (V2 when V2-only features are used and no type is given).
func normalize(p *wire.PipelineDeclaration) {
	for si := range p.Stages {
		for ai := range p.Stages[si].Actions {
			a := &p.Stages[si].Actions[ai]
			if a.RunOrder == nil {
				a.RunOrder = wire.Ptr(1)
			}
		}
	}
	if p.ExecutionMode == "" {
		p.ExecutionMode = wire.ExecutionModeSuperseded
	}
	if p.PipelineType == "" {
		p.PipelineType = wire.PipelineTypeV1
		if len(v2Features(p)) > 0 {
			p.PipelineType = wire.PipelineTypeV2
		}
	}
}

// v2Features names the V2-only features a pipeline uses.
func v2Features(p *wire.PipelineDeclaration) []string {
	var f []string
	if len(p.Variables) > 0 {
		f = append(f, "variables")
	}
	if len(p.Triggers) > 0 {
		f = append(f, "triggers")
	}
	if p.ExecutionMode == wire.ExecutionModeQueued || p.ExecutionMode == wire.ExecutionModeParallel {
		f = append(f, "executionMode "+string(p.ExecutionMode))
	}
	for _, s := range p.Stages {
		for _, a := range s.Actions {
			if actiontypes.KeyOf(a.ActionTypeId) == commandspec.Key {
				f = append(f, fmt.Sprintf("the Commands action '%s' in stage '%s'", a.Name, s.Name))
			}
		}
		if s.BeforeEntry != nil || s.OnSuccess != nil || s.OnFailure != nil {
			f = append(f, fmt.Sprintf("stage conditions (onFailure, onSuccess, beforeEntry) in stage '%s'", s.Name))
		}
	}
	return f
}

func structureErr(format string, args ...any) error {
	return wire.Errorf(wire.ErrInvalidStructure, format, args...)
}

func stageErr(format string, args ...any) error {
	return wire.Errorf(wire.ErrInvalidStageDeclaration, format, args...)
}

func actionErr(format string, args ...any) error {
	return wire.Errorf(wire.ErrInvalidActionDeclaration, format, args...)
}

// validate checks a normalized pipeline declaration against the rules of
// CodePipeline that the service model cannot express. It returns the first
// violation as the exception type AWS uses for it.
func (s *Service) validate(ctx context.Context, p *wire.PipelineDeclaration) error {
	if (p.ArtifactStore == nil) == (p.ArtifactStores == nil) {
		return structureErr("Pipeline '%s' must have either artifactStore or artifactStores, but not both", p.Name)
	}
	if p.ArtifactStores != nil {
		if _, ok := p.ArtifactStores[s.region]; !ok {
			return structureErr("artifactStores must contain an artifact store for the pipeline's region '%s'", s.region)
		}
	}
	if p.PipelineType == wire.PipelineTypeV1 {
		if f := v2Features(p); len(f) > 0 {
			return structureErr("Pipeline '%s' is of type V1 but uses %s, which need pipelineType V2", p.Name, strings.Join(f, ", "))
		}
	}
	if n := len(p.Stages); n < minStages || n > maxStages {
		return structureErr("A pipeline must have between %d and %d stages; pipeline '%s' has %d", minStages, maxStages, p.Name, n)
	}

	stageNames := map[string]bool{}
	outputs := map[string]string{}    // artifact name -> producing action
	namespaces := map[string]string{} // namespace -> action
	sourceActions := map[string]bool{}
	for si := range p.Stages {
		st := &p.Stages[si]
		if stageNames[st.Name] {
			return stageErr("Stage name '%s' is used more than once; stage names must be unique in a pipeline", st.Name)
		}
		stageNames[st.Name] = true
		if len(st.Blockers) > 0 {
			return wire.Errorf(wire.ErrInvalidBlockerDeclaration, "Stage '%s' declares blockers, which are reserved for future use", st.Name)
		}
		if err := validateConditions(p, si); err != nil { // conditions.go
			return err
		}
		if n := len(st.Actions); n < 1 || n > maxActionsPerStage {
			return stageErr("Stage '%s' must have between 1 and %d actions; it has %d", st.Name, maxActionsPerStage, n)
		}
		actionNames := map[string]bool{}
		// Outputs of this stage become visible to later runOrders only.
		stageOutputs := map[string]int{} // artifact -> runOrder that produced it
		for ai := range st.Actions {
			a := &st.Actions[ai]
			if actionNames[a.Name] {
				return stageErr("Action name '%s' is used more than once in stage '%s'; action names must be unique within a stage", a.Name, st.Name)
			}
			actionNames[a.Name] = true
			isSource := a.ActionTypeId.Category == wire.ActionCategorySource
			if si == 0 && !isSource {
				return structureErr("The first stage of a pipeline may contain only source actions: action '%s' in stage '%s' is of category %s", a.Name, st.Name, a.ActionTypeId.Category)
			}
			if si > 0 && isSource {
				return structureErr("Source actions may only be in the first stage: action '%s' is in stage '%s'", a.Name, st.Name)
			}
			if isSource {
				sourceActions[a.Name] = true
			}
			if err := s.validateAction(ctx, p, st, a); err != nil {
				return err
			}
			for _, out := range a.OutputArtifacts {
				if prev, dup := outputs[out.Name]; dup {
					return structureErr("Output artifact name '%s' of action '%s' is already the output of action '%s'; output artifact names must be unique in a pipeline", out.Name, a.Name, prev)
				}
				outputs[out.Name] = a.Name
				stageOutputs[out.Name] = *a.RunOrder
			}
			if a.Namespace != "" {
				if a.Namespace == "codepipeline" || a.Namespace == "variables" {
					return actionErr("Namespace '%s' of action '%s' is reserved", a.Namespace, a.Name)
				}
				if prev, dup := namespaces[a.Namespace]; dup {
					return structureErr("Namespace '%s' of action '%s' is already used by action '%s'; namespaces must be unique in a pipeline", a.Namespace, a.Name, prev)
				}
				namespaces[a.Namespace] = a.Name
			}
		}
		// Inputs must come from an earlier stage or a lower runOrder of this one.
		for ai := range st.Actions {
			a := &st.Actions[ai]
			seen := map[string]bool{}
			for _, in := range a.InputArtifacts {
				if seen[in.Name] {
					return actionErr("Input artifact '%s' is listed more than once in action '%s'", in.Name, a.Name)
				}
				seen[in.Name] = true
				producer, ok := outputs[in.Name]
				if !ok {
					return structureErr("Input artifact '%s' of action '%s' in stage '%s' is not the output of an earlier action", in.Name, a.Name, st.Name)
				}
				if ro, inStage := stageOutputs[in.Name]; inStage && ro >= *a.RunOrder {
					return structureErr("Input artifact '%s' of action '%s' (runOrder %d) is the output of action '%s' of the same stage, which does not run earlier (runOrder %d)", in.Name, a.Name, *a.RunOrder, producer, ro)
				}
			}
		}
	}
	for ns, action := range namespaces {
		if producer, clash := outputs[ns]; clash {
			return structureErr("Namespace '%s' of action '%s' is also the name of an output artifact of action '%s'", ns, action, producer)
		}
	}
	vars := map[string]bool{}
	for _, v := range p.Variables {
		if vars[v.Name] {
			return structureErr("Pipeline variable '%s' is declared more than once", v.Name)
		}
		vars[v.Name] = true
	}
	for _, tr := range p.Triggers {
		if tr.GitConfiguration != nil && !sourceActions[tr.GitConfiguration.SourceActionName] {
			return structureErr("Trigger names source action '%s', which is not a source action of the pipeline", tr.GitConfiguration.SourceActionName)
		}
	}
	return nil
}

// validateAction checks one action against its action type.
func (s *Service) validateAction(ctx context.Context, p *wire.PipelineDeclaration, st *wire.StageDeclaration, a *wire.ActionDeclaration) error {
	key := actiontypes.KeyOf(a.ActionTypeId)
	t, err := s.resolveType(ctx, key)
	if err != nil {
		return err
	}
	if t == nil {
		return actionErr("ActionType %s in action '%s' is not available", key, a.Name)
	}
	if a.Region != "" && a.Region != s.region {
		if _, ok := p.ArtifactStores[a.Region]; !ok {
			return structureErr("Action '%s' runs in region '%s', which needs an entry for that region in artifactStores", a.Name, a.Region)
		}
	}
	if err := checkCount("input", a.Name, len(a.InputArtifacts), t.InputArtifactDetails); err != nil {
		return err
	}
	if err := checkCount("output", a.Name, len(a.OutputArtifacts), t.OutputArtifactDetails); err != nil {
		return err
	}
	if t.RequiresCommands {
		if len(a.Commands) == 0 {
			return actionErr("Action '%s' of type %s must have commands", a.Name, key)
		}
		if msg := commandspec.Validate(a); msg != "" {
			return actionErr("%s", msg)
		}
	} else {
		for field, n := range map[string]int{"commands": len(a.Commands), "outputVariables": len(a.OutputVariables), "environmentVariables": len(a.EnvironmentVariables)} {
			if n > 0 {
				return actionErr("Action '%s' of type %s cannot have %s: they are only for Compute/AWS/Commands actions", a.Name, key, field)
			}
		}
	}
	for name, value := range a.Configuration {
		if _, ok := t.Property(name); !ok {
			return actionErr("Action configuration for action '%s' contains unknown configuration '%s'", a.Name, name)
		}
		if secrets.IsSealed(value) {
			return actionErr("Action configuration '%s' of action '%s' starts with '%s', which pipelined reserves for encrypted values", name, a.Name, "sealed:")
		}
	}
	for _, prop := range t.ActionConfigurationProperties {
		if prop.Required != nil && *prop.Required {
			if _, ok := a.Configuration[prop.Name]; !ok {
				return actionErr("Action configuration for action '%s' is missing required configuration '%s'", a.Name, prop.Name)
			}
		}
	}
	if key == (actiontypes.Key{Category: "Deploy", Owner: "AWS", Provider: "S3", Version: "1"}) {
		switch a.Configuration["Extract"] {
		case "true":
		case "false":
			if a.Configuration["ObjectKey"] == "" {
				return actionErr("Action configuration for action '%s' is missing required configuration 'ObjectKey' (required when Extract is false)", a.Name)
			}
		default:
			return actionErr("Action configuration 'Extract' of action '%s' must be 'true' or 'false'", a.Name)
		}
	}
	return nil
}

func checkCount(kind, action string, n int, d *wire.ArtifactDetails) error {
	min, max := actiontypes.Counts(d)
	if n < min || n > max {
		return actionErr("Action '%s' has %d %s artifacts; its action type takes between %d and %d", action, n, kind, min, max)
	}
	return nil
}

// ValidateTags checks the tags of a create or TagResource request as
// CodePipeline does (the total after merging is checked separately).
func ValidateTags(tags []wire.Tag) error {
	seen := map[string]bool{}
	for _, t := range tags {
		if strings.HasPrefix(strings.ToLower(t.Key), "aws:") {
			return wire.Errorf(wire.ErrInvalidTags, "Tag key '%s' uses the reserved prefix 'aws:'", t.Key)
		}
		if seen[t.Key] {
			return wire.Errorf(wire.ErrInvalidTags, "Tag key '%s' is given more than once", t.Key)
		}
		seen[t.Key] = true
		// pipelined's own tag: the claims of the sub of the pipeline's ID
		// tokens (internal/identity). A bad value is refused here, not at
		// the first token request.
		if t.Key == identity.SubjectTag {
			if _, err := identity.ParseSubjectClaims(t.Value); err != nil {
				return wire.Errorf(wire.ErrInvalidTags, "%s", err.Error())
			}
		}
	}
	if len(tags) > maxTags {
		return wire.Errorf(wire.ErrTooManyTags, "A resource can have at most %d tags", maxTags)
	}
	return nil
}
