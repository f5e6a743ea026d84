package pipelines

import (
	"context"
	"encoding/json"

	"github.com/pipelined/pipelined/internal/actiontypes"
	"github.com/pipelined/pipelined/internal/store"
	"github.com/pipelined/pipelined/internal/wire"
)

// UpdateActionType replaces the definition of a custom or third-party
// action type with an ActionTypeDeclaration: executor configuration, job
// timeout, permissions, properties, artifact counts and URLs. GetActionType
// returns what was set. The type keeps its identity, so pipelines using it
// see the new properties at their next validation and jobs their next run.
func (s *Service) UpdateActionType(ctx context.Context, in *wire.UpdateActionTypeInput) error {
	d := in.ActionType
	key := actiontypes.Key{Category: string(d.Id.Category), Owner: d.Id.Owner, Provider: d.Id.Provider, Version: d.Id.Version}
	if key.Owner != "Custom" && key.Owner != "ThirdParty" {
		return wire.Errorf(wire.ErrValidation, "actionType.id.owner: only Custom and ThirdParty action types can be updated; %s is owned by %s", key, key.Owner)
	}
	ex := d.Executor
	if ex.Type == wire.ExecutorTypeLambda {
		return wire.Errorf(wire.ErrValidation, "actionType.executor.type: pipelined does not invoke AWS Lambda functions; use the JobWorker executor")
	}
	if ex.Configuration != nil && ex.Configuration.LambdaExecutorConfiguration != nil {
		return wire.Errorf(wire.ErrValidation, "actionType.executor.configuration.lambdaExecutorConfiguration: applies only to the Lambda executor type")
	}
	props := make([]wire.ActionConfigurationProperty, 0, len(d.Properties))
	for _, p := range d.Properties {
		props = append(props, wire.ActionConfigurationProperty{
			Name: p.Name, Description: p.Description, Key: boolOr(p.Key), Secret: boolOr(p.NoEcho),
			Required: wire.Ptr(p.Optional == nil || !*p.Optional), Queryable: boolOr(p.Queryable),
			Type: wire.ActionConfigurationPropertyTypeString,
		})
	}
	settings := &wire.ActionTypeSettings{}
	if u := d.Urls; u != nil {
		settings = &wire.ActionTypeSettings{
			ThirdPartyConfigurationUrl: u.ConfigurationUrl, EntityUrlTemplate: u.EntityUrlTemplate,
			ExecutionUrlTemplate: u.ExecutionUrlTemplate, RevisionUrlTemplate: u.RevisionUrlTemplate,
		}
	}
	counts := func(a *wire.ActionTypeArtifactDetails) *wire.ArtifactDetails {
		return &wire.ArtifactDetails{MinimumCount: wire.Ptr(*a.MinimumCount), MaximumCount: wire.Ptr(*a.MaximumCount)}
	}
	t := actiontypes.New(key, settings, props, counts(d.InputArtifactDetails), counts(d.OutputArtifactDetails))
	t.Description = d.Description
	if ex.JobTimeout != nil {
		t.JobTimeoutMinutes = (*ex.JobTimeout + 59) / 60
	}
	exec := *ex
	exec.JobTimeout = nil // kept as JobTimeoutMinutes; GetActionType shows it again
	if exec.Configuration == nil {
		exec.Configuration = &wire.ExecutorConfiguration{JobWorkerExecutorConfiguration: &wire.JobWorkerExecutorConfiguration{}}
	}
	t.Executor = &exec
	if t.JobTimeoutMinutes > 0 {
		t.Executor.JobTimeout = wire.Ptr(*ex.JobTimeout)
	}
	t.Permissions = d.Permissions
	if err := actiontypes.Validate(t); err != nil {
		return err
	}
	def, err := json.Marshal(t)
	if err != nil {
		return err
	}
	now := s.now().UTC().Truncate(1e6)
	_, err = s.store.PutActionType(ctx, store.ActionTypeKey(key), func(cur *store.ActionType) (*store.ActionType, error) {
		if cur == nil || cur.Deleted {
			return nil, wire.Errorf(wire.ErrActionTypeNotFound, "Action type %s does not exist", key)
		}
		next := *cur
		next.Definition, next.Updated = def, now
		return &next, nil
	})
	if err != nil {
		return internal("UpdateActionType", err)
	}
	return nil
}
