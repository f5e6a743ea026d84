package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/pipelined/pipelined/internal/actiontypes"
	"github.com/pipelined/pipelined/internal/pipelines"
	"github.com/pipelined/pipelined/internal/store"
	"github.com/pipelined/pipelined/internal/wire"
)

// RegisterActionTypeInput registers a third-party action type: the shape
// of CreateCustomActionType's input, plus the job timeout.
type RegisterActionTypeInput struct {
	wire.CreateCustomActionTypeInput
	// JobTimeoutInMinutes is how long an acknowledged job of the type may
	// run before its action fails (1-720; default: an hour). An action's
	// own timeoutInMinutes takes precedence.
	JobTimeoutInMinutes *int `json:"jobTimeoutInMinutes,omitzero"`
}

// RegisterActionTypeOutput is the registered type.
type RegisterActionTypeOutput struct {
	ActionType          *wire.ActionType `json:"actionType"`
	JobTimeoutInMinutes int              `json:"jobTimeoutInMinutes,omitzero"`
	Tags                []wire.Tag       `json:"tags"`
}

// maxJobTimeoutMinutes is 12 hours, the most ActionTypeExecutor.jobTimeout
// (in seconds) allows in the service model.
const maxJobTimeoutMinutes = 720

// registerActionType stores a ThirdParty action type, with
// CreateCustomActionType's rules: re-registering the identical definition
// returns it (and restores it when it was deregistered); any other reuse of
// a category/provider/version is refused, so that a partner polling for a
// version never sees its meaning change.
func (h *Handler) registerActionType(ctx context.Context, _ *http.Request, _ []string, body []byte) (int, any, error) {
	var in RegisterActionTypeInput
	if err := decodeBody(body, &in); err != nil {
		return 0, nil, err
	}
	var v wire.Validator
	in.Validate(&v, "")
	if in.JobTimeoutInMinutes != nil {
		v.Range("jobTimeoutInMinutes", *in.JobTimeoutInMinutes, 1, maxJobTimeoutMinutes)
	}
	if err := v.Err(); err != nil {
		return 0, nil, err
	}
	key := actiontypes.Key{Category: string(in.Category), Owner: "ThirdParty", Provider: in.Provider, Version: in.Version}
	t := actiontypes.New(key, in.Settings, in.ConfigurationProperties, in.InputArtifactDetails, in.OutputArtifactDetails)
	if in.JobTimeoutInMinutes != nil {
		t.JobTimeoutMinutes = *in.JobTimeoutInMinutes
	}
	if err := actiontypes.Validate(t); err != nil {
		return 0, nil, err
	}
	if err := pipelines.ValidateTags(in.Tags); err != nil {
		return 0, nil, err
	}
	def, err := json.Marshal(t)
	if err != nil {
		return 0, nil, err
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	created := false
	_, err = h.store.PutActionType(ctx, store.ActionTypeKey(key), func(cur *store.ActionType) (*store.ActionType, error) {
		if cur == nil {
			created = true
			return &store.ActionType{ActionTypeKey: store.ActionTypeKey(key), Definition: def, Created: now, Updated: now}, nil
		}
		same, err := sameDefinition(cur.Definition, def)
		if err != nil {
			return nil, err
		}
		if !same {
			if cur.Deleted {
				return nil, wire.Errorf(wire.ErrValidation, "Action type %s was deregistered; register it again with a version that has not been used, or with the identical definition to restore it", key)
			}
			return nil, wire.Errorf(wire.ErrValidation, "Action type %s already exists with a different definition; register the change under a new version", key)
		}
		if !cur.Deleted {
			return nil, nil // identical and present: nothing to do
		}
		return &store.ActionType{ActionTypeKey: cur.ActionTypeKey, Definition: cur.Definition, Created: cur.Created, Updated: now}, nil
	})
	if err != nil {
		return 0, nil, err
	}
	res := store.ActionTypeResource(store.ActionTypeKey(key))
	if created && len(in.Tags) > 0 {
		tags := make([]store.Tag, len(in.Tags))
		for i, t := range in.Tags {
			tags[i] = store.Tag{Key: t.Key, Value: t.Value}
		}
		if err := h.store.UpdateTags(ctx, res, func([]store.Tag) ([]store.Tag, error) { return tags, nil }); err != nil {
			return 0, nil, err
		}
	}
	stored, err := h.store.Tags(ctx, res)
	if err != nil {
		return 0, nil, err
	}
	out := RegisterActionTypeOutput{ActionType: &t.ActionType, JobTimeoutInMinutes: t.JobTimeoutMinutes, Tags: make([]wire.Tag, 0, len(stored))}
	for _, tg := range stored {
		out.Tags = append(out.Tags, wire.Tag{Key: tg.Key, Value: tg.Value})
	}
	if created {
		h.log.Info("admin: registered third-party action type", "action_type", key.String(), "by", callerARN(ctx))
	}
	return http.StatusOK, out, nil
}

// sameDefinition compares a stored definition with a new one by their
// meaning (the stored one decoded and encoded again).
func sameDefinition(stored, def []byte) (bool, error) {
	var old actiontypes.Type
	if err := json.Unmarshal(stored, &old); err != nil {
		return false, fmt.Errorf("decode stored action type: %w", err)
	}
	again, err := json.Marshal(&old)
	if err != nil {
		return false, err
	}
	return bytes.Equal(again, def), nil
}

// deregisterActionType marks a third-party action type deleted: pipelines
// can no longer use it and partners can no longer poll for it; the same
// version can only be registered again identical, which restores it.
func (h *Handler) deregisterActionType(ctx context.Context, _ *http.Request, args []string, _ []byte) (int, any, error) {
	key := store.ActionTypeKey{Category: args[0], Owner: "ThirdParty", Provider: args[1], Version: args[2]}
	found := false
	_, err := h.store.PutActionType(ctx, key, func(cur *store.ActionType) (*store.ActionType, error) {
		if cur == nil {
			return nil, nil
		}
		found = true
		if cur.Deleted {
			return nil, nil
		}
		next := *cur
		next.Deleted = true
		next.Updated = time.Now().UTC().Truncate(time.Millisecond)
		return &next, nil
	})
	if err != nil {
		return 0, nil, err
	}
	if !found {
		return 0, nil, wire.Errorf(wire.ErrActionTypeNotFound, "Action type %s does not exist", actiontypes.Key(key))
	}
	h.log.Info("admin: deregistered third-party action type", "action_type", actiontypes.Key(key).String(), "by", callerARN(ctx))
	return http.StatusOK, struct{}{}, nil
}
