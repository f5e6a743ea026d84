package admin

import (
	"context"
	"errors"
	"net/http"

	"github.com/pipelined/pipelined/internal/actiontypes"
	"github.com/pipelined/pipelined/internal/executions"
	"github.com/pipelined/pipelined/internal/store"
	"github.com/pipelined/pipelined/internal/wire"
)

// IssueClientInput names the pipeline action a client is for.
type IssueClientInput struct {
	PipelineName string `json:"pipelineName"`
	StageName    string `json:"stageName"`
	ActionName   string `json:"actionName"`
}

// ThirdPartyClient describes a client. ClientToken is set only in the answer that
// issued it: the server keeps a hash and cannot show it again.
type ThirdPartyClient struct {
	ClientID     string             `json:"clientId"`
	ClientToken  string             `json:"clientToken,omitempty"`
	PipelineName string             `json:"pipelineName"`
	StageName    string             `json:"stageName"`
	ActionName   string             `json:"actionName"`
	ActionTypeID *wire.ActionTypeId `json:"actionTypeId"`
	// Status is Active; Revoked; or Stale: not revoked, but no longer the
	// client of anything, because its pipeline was deleted (or deleted and
	// created again), or its action removed or given another action type.
	Status  string `json:"status"`
	Created string `json:"created"`
	Revoked string `json:"revoked,omitempty"`
}

// Client statuses.
const (
	StatusActive  = "Active"
	StatusRevoked = "Revoked"
	StatusStale   = "Stale"
)

// ListClientsOutput lists clients.
type ListClientsOutput struct {
	Clients []ThirdPartyClient `json:"clients"`
}

// ClientOutput wraps one client.
type ClientOutput struct {
	Client ThirdPartyClient `json:"client"`
}

func clientView(c store.ThirdPartyClient, status string) ThirdPartyClient {
	return ThirdPartyClient{
		ClientID: c.ID, PipelineName: c.Pipeline, StageName: c.Stage, ActionName: c.Action,
		ActionTypeID: actiontypes.Key(c.ActionType).ID(), Status: status,
		Created: Time(c.Created), Revoked: Time(c.Revoked),
	}
}

// findAction returns the declaration of a pipeline action, or the
// CodePipeline error for what is missing.
func findAction(decl *wire.PipelineDeclaration, stage, action string) (*wire.ActionDeclaration, error) {
	for si := range decl.Stages {
		if decl.Stages[si].Name != stage {
			continue
		}
		for ai := range decl.Stages[si].Actions {
			if decl.Stages[si].Actions[ai].Name == action {
				return &decl.Stages[si].Actions[ai], nil
			}
		}
		return nil, wire.Errorf(wire.ErrActionNotFound, "Stage '%s' of pipeline '%s' has no action named '%s'", stage, decl.Name, action)
	}
	return nil, wire.Errorf(wire.ErrStageNotFound, "Pipeline '%s' has no stage named '%s'", decl.Name, stage)
}

// issueClient issues a clientId/clientToken pair for a pipeline action of
// a ThirdParty action type. An action has one client at a time: issuing
// for an action that has an active client is refused (revoke it first),
// unless that client is stale, which is then revoked.
func (h *Handler) issueClient(ctx context.Context, _ *http.Request, _ []string, body []byte) (int, any, error) {
	var in IssueClientInput
	if err := decodeBody(body, &in); err != nil {
		return 0, nil, err
	}
	var v wire.Validator
	for _, f := range []struct{ path, value string }{{"pipelineName", in.PipelineName}, {"stageName", in.StageName}, {"actionName", in.ActionName}} {
		if f.value == "" {
			v.Missing(f.path)
		} else {
			v.Length(f.path, false, f.value, 1, 100)
		}
	}
	if err := v.Err(); err != nil {
		return 0, nil, err
	}
	decl, rec, err := h.pipelines.Declaration(ctx, in.PipelineName, 0)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil, wire.Errorf(wire.ErrPipelineNotFound, "There is no pipeline named '%s'", in.PipelineName)
	}
	if err != nil {
		return 0, nil, err
	}
	ad, err := findAction(decl, in.StageName, in.ActionName)
	if err != nil {
		return 0, nil, err
	}
	key := actiontypes.KeyOf(ad.ActionTypeId)
	if key.Owner != "ThirdParty" {
		return 0, nil, wire.Errorf(wire.ErrValidation, "Action '%s' in stage '%s' is of action type %s: clients are issued only for actions of ThirdParty action types",
			in.ActionName, in.StageName, key)
	}
	typ, err := h.pipelines.ActionType(ctx, key)
	if err != nil {
		return 0, nil, err
	}
	if typ == nil {
		return 0, nil, wire.Errorf(wire.ErrActionTypeNotFound, "Action type %s of action '%s' is not registered (any more)", key, in.ActionName)
	}

	token, hash, err := executions.NewClientToken()
	if err != nil {
		return 0, nil, err
	}
	c := store.ThirdPartyClient{
		ID: h.newID(), Pipeline: in.PipelineName, Stage: in.StageName, Action: in.ActionName,
		ActionType: store.ActionTypeKey(key), PipelineCreated: rec.Created, TokenHash: hash,
	}
	stored, err := h.store.CreateClient(ctx, c)
	if errors.Is(err, store.ErrAlreadyExists) {
		cur, cerr := h.store.ActionClient(ctx, c.Pipeline, c.Stage, c.Action)
		switch {
		case cerr == nil && (cur.ActionType != c.ActionType || !executions.SamePipeline(cur.PipelineCreated, rec.Created)):
			// Left over from a pipeline of the same name that was deleted,
			// or from another action type: it covers nothing any more.
			if _, err := h.store.RevokeClient(ctx, cur.ID); err != nil {
				return 0, nil, err
			}
			h.log.Info("admin: revoked stale third-party client", "client_id", cur.ID, "pipeline", cur.Pipeline, "stage", cur.Stage, "action", cur.Action, "by", callerARN(ctx))
			stored, err = h.store.CreateClient(ctx, c)
		case cerr == nil:
			return 0, nil, wire.Errorf(ErrClientAlreadyExists, "Action '%s' in stage '%s' of pipeline '%s' already has client %s; revoke it first (pipelined admin revoke-client --client-id %s)",
				c.Action, c.Stage, c.Pipeline, cur.ID, cur.ID)
		}
	}
	if errors.Is(err, store.ErrAlreadyExists) {
		return 0, nil, wire.Errorf(ErrClientAlreadyExists, "Action '%s' in stage '%s' of pipeline '%s' was given a client concurrently; list its clients and revoke the one not wanted",
			c.Action, c.Stage, c.Pipeline)
	}
	if err != nil {
		return 0, nil, err
	}
	h.log.Info("admin: issued third-party client", "client_id", stored.ID, "pipeline", stored.Pipeline, "stage", stored.Stage, "action", stored.Action, "by", callerARN(ctx))
	out := clientView(stored, StatusActive)
	out.ClientToken = token
	return http.StatusCreated, out, nil
}

// status tells whether a client still covers its pipeline action, reading
// pipelines through the cache given (by name; nil: none).
func (h *Handler) status(ctx context.Context, c store.ThirdPartyClient, decls map[string]*pipelineAt) (string, error) {
	if !c.Active() {
		return StatusRevoked, nil
	}
	p, ok := decls[c.Pipeline]
	if !ok {
		decl, rec, err := h.pipelines.Declaration(ctx, c.Pipeline, 0)
		switch {
		case errors.Is(err, store.ErrNotFound):
			p = nil
		case err != nil:
			return "", err
		default:
			p = &pipelineAt{decl: decl, rec: rec}
		}
		decls[c.Pipeline] = p
	}
	if p == nil || !executions.SamePipeline(c.PipelineCreated, p.rec.Created) {
		return StatusStale, nil
	}
	ad, err := findAction(p.decl, c.Stage, c.Action)
	if err != nil || store.ActionTypeKey(actiontypes.KeyOf(ad.ActionTypeId)) != c.ActionType {
		return StatusStale, nil
	}
	return StatusActive, nil
}

type pipelineAt struct {
	decl *wire.PipelineDeclaration
	rec  store.Pipeline
}

// listClients lists the clients of a pipeline (pipelineName), or of all,
// revoked ones included; never their tokens.
func (h *Handler) listClients(ctx context.Context, r *http.Request, _ []string, _ []byte) (int, any, error) {
	pipeline := r.URL.Query().Get("pipelineName")
	cs, err := h.store.ListClients(ctx, pipeline)
	if err != nil {
		return 0, nil, err
	}
	decls := map[string]*pipelineAt{}
	out := ListClientsOutput{Clients: make([]ThirdPartyClient, 0, len(cs))}
	for _, c := range cs {
		st, err := h.status(ctx, c, decls)
		if err != nil {
			return 0, nil, err
		}
		out.Clients = append(out.Clients, clientView(c, st))
	}
	return http.StatusOK, out, nil
}

func (h *Handler) getClient(ctx context.Context, _ *http.Request, args []string, _ []byte) (int, any, error) {
	c, err := h.store.GetClient(ctx, args[0])
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil, wire.Errorf(ErrClientNotFound, "There is no client %s", args[0])
	}
	if err != nil {
		return 0, nil, err
	}
	st, err := h.status(ctx, c, map[string]*pipelineAt{})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, ClientOutput{Client: clientView(c, st)}, nil
}

// revokeClient revokes a client: its token stops working at once, for
// every call of the job protocol. Revoking a revoked client is harmless.
func (h *Handler) revokeClient(ctx context.Context, _ *http.Request, args []string, _ []byte) (int, any, error) {
	c, err := h.store.RevokeClient(ctx, args[0])
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil, wire.Errorf(ErrClientNotFound, "There is no client %s", args[0])
	}
	if err != nil {
		return 0, nil, err
	}
	h.log.Info("admin: revoked third-party client", "client_id", c.ID, "pipeline", c.Pipeline, "stage", c.Stage, "action", c.Action, "by", callerARN(ctx))
	return http.StatusOK, ClientOutput{Client: clientView(c, StatusRevoked)}, nil
}
