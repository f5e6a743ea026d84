package executions

import (
	"context"

	"github.com/pipelined/pipelined/internal/actiontypes"
	"github.com/pipelined/pipelined/internal/engine"
	"github.com/pipelined/pipelined/internal/wire"
)

// typeCache resolves the action types of one response's actions once each.
type typeCache struct {
	s     *Service
	ctx   context.Context
	types map[actiontypes.Key]*actiontypes.Type
}

func (s *Service) typeCache(ctx context.Context) *typeCache {
	return &typeCache{s: s, ctx: ctx, types: map[actiontypes.Key]*actiontypes.Type{}}
}

// of returns an action's type; nil when it is unknown or cannot be read
// (its URLs are then not shown: they are links, not state).
func (c *typeCache) of(id *wire.ActionTypeId) *actiontypes.Type {
	if id == nil {
		return nil
	}
	k := actiontypes.KeyOf(id)
	if t, ok := c.types[k]; ok {
		return t
	}
	t, err := c.s.pipelines.ActionType(c.ctx, k)
	if err != nil {
		t = nil
	}
	c.types[k] = t
	return t
}

// runConfig is the configuration an attempt ran with: resolved when it
// was (secret values stay sealed: FillURL never uses them).
func runConfig(run *engine.ActionRun) map[string]string {
	if run.Resolved != nil {
		return run.Resolved
	}
	return run.Config
}

// executionURL is an attempt's externalExecutionUrl: the type's
// executionUrlTemplate filled with its configuration and the external
// execution id its worker reported.
func executionURL(t *actiontypes.Type, run *engine.ActionRun) string {
	if t == nil || t.Settings == nil {
		return run.ExternalURL
	}
	u, ok := t.FillURL(t.Settings.ExecutionUrlTemplate, actiontypes.URLValues{
		Configuration: runConfig(run), ExternalExecutionID: run.ExternalID, RevisionID: run.Revision,
	})
	if !ok {
		return run.ExternalURL
	}
	return u
}

// actionURLs fills an action state's entityUrl and revisionUrl from its
// type's templates, the declared configuration and the shown attempt.
func actionURLs(as *wire.ActionState, t *actiontypes.Type, ad *wire.ActionDeclaration, run *engine.ActionRun) {
	if t == nil || t.Settings == nil {
		return
	}
	v := actiontypes.URLValues{Configuration: ad.Configuration}
	if run != nil {
		v.ExternalExecutionID, v.RevisionID = run.ExternalID, run.Revision
	}
	if u, ok := t.FillURL(t.Settings.EntityUrlTemplate, v); ok {
		as.EntityUrl = u
	}
	if u, ok := t.FillURL(t.Settings.RevisionUrlTemplate, v); ok {
		as.RevisionUrl = u
	}
}
