package admin

import (
	"context"
	"errors"
	"net/http"

	"github.com/pipelined/pipelined/internal/actiontypes"
	"github.com/pipelined/pipelined/internal/commandspec"
	"github.com/pipelined/pipelined/internal/store"
	"github.com/pipelined/pipelined/internal/wire"
)

// maxWorkerKeyDescription bounds a worker key's description (characters).
const maxWorkerKeyDescription = 256

// CreateWorkerKeyInput names the action type a worker key is for.
type CreateWorkerKeyInput struct {
	ActionTypeID *wire.ActionTypeId `json:"actionTypeId"`
	Description  string             `json:"description,omitempty"`
}

// WorkerKey describes a worker key: never its secret.
type WorkerKey struct {
	AccessKeyID  string             `json:"accessKeyId"`
	ActionTypeID *wire.ActionTypeId `json:"actionTypeId"`
	Description  string             `json:"description"`
	Created      string             `json:"created"`
	Revoked      string             `json:"revoked,omitempty"`
	// Status is Active or Revoked.
	Status string `json:"status"`
}

// CreateWorkerKeyOutput is the answer that issued a key: the only one that
// shows its secret.
type CreateWorkerKeyOutput struct {
	WorkerKey       WorkerKey `json:"workerKey"`
	SecretAccessKey string    `json:"secretAccessKey"`
}

// WorkerKeyOutput wraps one worker key.
type WorkerKeyOutput struct {
	WorkerKey WorkerKey `json:"workerKey"`
}

// ListWorkerKeysOutput lists worker keys.
type ListWorkerKeysOutput struct {
	WorkerKeys []WorkerKey `json:"workerKeys"`
}

func workerKeyView(k store.WorkerKey) WorkerKey {
	st := StatusActive
	if !k.Active() {
		st = StatusRevoked
	}
	return WorkerKey{
		AccessKeyID: k.AccessKeyID, ActionTypeID: actiontypes.Key(k.ActionType).ID(), Description: k.Description,
		Created: Time(k.Created), Revoked: Time(k.Revoked), Status: st,
	}
}

// workerKeysConfigured answers an internal failure when the server was
// started without a worker-key service (a wiring bug, not a caller's).
func (h *Handler) workerKeysConfigured() error {
	if h.workerKeys == nil {
		return errors.New("admin: no worker-key service configured (admin.Config.WorkerKeys)")
	}
	return nil
}

// createWorkerKey issues a worker key for an action type of owner Custom or
// ThirdParty that exists. The secret is in this answer only.
func (h *Handler) createWorkerKey(ctx context.Context, _ *http.Request, _ []string, body []byte) (int, any, error) {
	if err := h.workerKeysConfigured(); err != nil {
		return 0, nil, err
	}
	var in CreateWorkerKeyInput
	if err := decodeBody(body, &in); err != nil {
		return 0, nil, err
	}
	var v wire.Validator
	if in.ActionTypeID == nil {
		v.Missing("actionTypeId")
	} else {
		in.ActionTypeID.Validate(&v, "actionTypeId")
	}
	v.Length("description", false, in.Description, 0, maxWorkerKeyDescription)
	if err := v.Err(); err != nil {
		return 0, nil, err
	}
	key := actiontypes.KeyOf(in.ActionTypeID)
	if key.Owner != string(wire.ActionOwnerCustom) && key.Owner != string(wire.ActionOwnerThirdParty) && key != commandspec.Key {
		return 0, nil, wire.Errorf(wire.ErrValidation, "Action type %s is owned by %s: worker keys are issued only for action types of owner Custom or ThirdParty (actionTypeId.owner), whose jobs external workers run, and for Compute/AWS/Commands/1, whose jobs pipelined runners run",
			key, key.Owner)
	}
	typ, err := h.pipelines.ActionType(ctx, key)
	if err != nil {
		return 0, nil, err
	}
	if typ == nil {
		return 0, nil, wire.Errorf(wire.ErrActionTypeNotFound, "Action type %s does not exist", key)
	}
	issued, err := h.workerKeys.Issue(ctx, store.ActionTypeKey(key), in.Description)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, CreateWorkerKeyOutput{WorkerKey: workerKeyView(issued.Key), SecretAccessKey: issued.SecretAccessKey}, nil
}

// listWorkerKeys lists every worker key, revoked ones included; never
// secrets.
func (h *Handler) listWorkerKeys(ctx context.Context, _ *http.Request, _ []string, _ []byte) (int, any, error) {
	if err := h.workerKeysConfigured(); err != nil {
		return 0, nil, err
	}
	ks, err := h.workerKeys.List(ctx)
	if err != nil {
		return 0, nil, err
	}
	out := ListWorkerKeysOutput{WorkerKeys: make([]WorkerKey, 0, len(ks))}
	for _, k := range ks {
		out.WorkerKeys = append(out.WorkerKeys, workerKeyView(k))
	}
	return http.StatusOK, out, nil
}

func (h *Handler) getWorkerKey(ctx context.Context, _ *http.Request, args []string, _ []byte) (int, any, error) {
	if err := h.workerKeysConfigured(); err != nil {
		return 0, nil, err
	}
	k, err := h.workerKeys.Get(ctx, args[0])
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil, wire.Errorf(ErrWorkerKeyNotFound, "There is no worker key %s", args[0])
	}
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, WorkerKeyOutput{WorkerKey: workerKeyView(k)}, nil
}

// revokeWorkerKey revokes a worker key: it stops signing anything at once.
// Revoking a revoked key is harmless and answers it as it is.
func (h *Handler) revokeWorkerKey(ctx context.Context, _ *http.Request, args []string, _ []byte) (int, any, error) {
	if err := h.workerKeysConfigured(); err != nil {
		return 0, nil, err
	}
	k, err := h.workerKeys.Revoke(ctx, args[0])
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil, wire.Errorf(ErrWorkerKeyNotFound, "There is no worker key %s", args[0])
	}
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, WorkerKeyOutput{WorkerKey: workerKeyView(k)}, nil
}
