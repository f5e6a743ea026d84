// Code written for the CodeStar Connections API (2019-12-01): the same
// operations as CodeConnections with the same shapes, so each converts its
// input to the CodeConnections shape, calls the service's view with
// codestar-connections ARNs, and converts the answer back.

package connapi

import (
	"context"
	"encoding/json"

	cc "github.com/pipelined/pipelined/internal/connwire/codeconnections"
	cs "github.com/pipelined/pipelined/internal/connwire/codestar"
)

// codestarAPI serves the CodeStar Connections operations through a
// CodeConnections view. Operations pipelined does not serve answer
// UnsupportedOperationException (cs.Unimplemented).
type codestarAPI struct {
	cs.Unimplemented
	v cc.API
}

var _ cs.API = codestarAPI{}

// convert calls f with in converted to I2 and converts f's answer to O.
// The shapes are the same members with the same JSON names; a value that
// does not convert (a CodeConnections-only enum value) is an error.
func convert[I1, I2, O2, O any](ctx context.Context, in *I1, f func(context.Context, *I2) (*O2, error)) (*O, error) {
	b, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	in2 := new(I2)
	if err := json.Unmarshal(b, in2); err != nil {
		return nil, err
	}
	out2, err := f(ctx, in2)
	if err != nil {
		return nil, err
	}
	if b, err = json.Marshal(out2); err != nil {
		return nil, err
	}
	out := new(O)
	if err := json.Unmarshal(b, out); err != nil {
		return nil, err
	}
	return out, nil
}

func (a codestarAPI) CreateConnection(ctx context.Context, in *cs.CreateConnectionInput) (*cs.CreateConnectionOutput, error) {
	return convert[cs.CreateConnectionInput, cc.CreateConnectionInput, cc.CreateConnectionOutput, cs.CreateConnectionOutput](ctx, in, a.v.CreateConnection)
}

func (a codestarAPI) GetConnection(ctx context.Context, in *cs.GetConnectionInput) (*cs.GetConnectionOutput, error) {
	return convert[cs.GetConnectionInput, cc.GetConnectionInput, cc.GetConnectionOutput, cs.GetConnectionOutput](ctx, in, a.v.GetConnection)
}

func (a codestarAPI) ListConnections(ctx context.Context, in *cs.ListConnectionsInput) (*cs.ListConnectionsOutput, error) {
	return convert[cs.ListConnectionsInput, cc.ListConnectionsInput, cc.ListConnectionsOutput, cs.ListConnectionsOutput](ctx, in, a.v.ListConnections)
}

func (a codestarAPI) DeleteConnection(ctx context.Context, in *cs.DeleteConnectionInput) (*cs.DeleteConnectionOutput, error) {
	return convert[cs.DeleteConnectionInput, cc.DeleteConnectionInput, cc.DeleteConnectionOutput, cs.DeleteConnectionOutput](ctx, in, a.v.DeleteConnection)
}

func (a codestarAPI) CreateHost(ctx context.Context, in *cs.CreateHostInput) (*cs.CreateHostOutput, error) {
	return convert[cs.CreateHostInput, cc.CreateHostInput, cc.CreateHostOutput, cs.CreateHostOutput](ctx, in, a.v.CreateHost)
}

func (a codestarAPI) GetHost(ctx context.Context, in *cs.GetHostInput) (*cs.GetHostOutput, error) {
	return convert[cs.GetHostInput, cc.GetHostInput, cc.GetHostOutput, cs.GetHostOutput](ctx, in, a.v.GetHost)
}

func (a codestarAPI) ListHosts(ctx context.Context, in *cs.ListHostsInput) (*cs.ListHostsOutput, error) {
	return convert[cs.ListHostsInput, cc.ListHostsInput, cc.ListHostsOutput, cs.ListHostsOutput](ctx, in, a.v.ListHosts)
}

func (a codestarAPI) DeleteHost(ctx context.Context, in *cs.DeleteHostInput) (*cs.DeleteHostOutput, error) {
	return convert[cs.DeleteHostInput, cc.DeleteHostInput, cc.DeleteHostOutput, cs.DeleteHostOutput](ctx, in, a.v.DeleteHost)
}

func (a codestarAPI) TagResource(ctx context.Context, in *cs.TagResourceInput) (*cs.TagResourceOutput, error) {
	return convert[cs.TagResourceInput, cc.TagResourceInput, cc.TagResourceOutput, cs.TagResourceOutput](ctx, in, a.v.TagResource)
}

func (a codestarAPI) UntagResource(ctx context.Context, in *cs.UntagResourceInput) (*cs.UntagResourceOutput, error) {
	return convert[cs.UntagResourceInput, cc.UntagResourceInput, cc.UntagResourceOutput, cs.UntagResourceOutput](ctx, in, a.v.UntagResource)
}

func (a codestarAPI) ListTagsForResource(ctx context.Context, in *cs.ListTagsForResourceInput) (*cs.ListTagsForResourceOutput, error) {
	return convert[cs.ListTagsForResourceInput, cc.ListTagsForResourceInput, cc.ListTagsForResourceOutput, cs.ListTagsForResourceOutput](ctx, in, a.v.ListTagsForResource)
}
