package executions

// Worker keys (internal/workerkeys): a request signed with one carries a
// caller.WorkerScope, and may call only its action type's job protocol
// (awsjson refuses every other operation before it runs). Here the
// operations check the rest: that the poll names the key's action type,
// and that the job is of it. Neither reads anything: a job's action type
// comes with it, or from the per-replica job index (jobindex.go), as its
// pipeline does.

import (
	"context"

	"github.com/pipelined/pipelined/internal/actiontypes"
	"github.com/pipelined/pipelined/internal/caller"
	"github.com/pipelined/pipelined/internal/store"
	"github.com/pipelined/pipelined/internal/wire"
)

// workerMayPoll refuses a worker key's poll for another action type than
// its own (AccessDeniedException).
func workerMayPoll(ctx context.Context, operation string, id *wire.ActionTypeId) error {
	c, ok := caller.Worker(ctx)
	if !ok || store.ActionTypeKey(actiontypes.KeyOf(id)) == c.Worker.ActionType {
		return nil
	}
	return c.Denied(operation, "; the request names another action type")
}

// workerMayWork refuses a worker key's operation on a job of another
// action type than its own (AccessDeniedException).
func workerMayWork(ctx context.Context, operation string, j store.Job) error {
	return workerMayWorkOn(ctx, operation, j.ID, j.ActionType)
}

// workerMayWorkOn is workerMayWork for job id of action type typ.
func workerMayWorkOn(ctx context.Context, operation, id string, typ store.ActionTypeKey) error {
	c, ok := caller.Worker(ctx)
	if !ok || typ == c.Worker.ActionType {
		return nil
	}
	return c.Denied(operation, "; job "+id+" is of another action type")
}
