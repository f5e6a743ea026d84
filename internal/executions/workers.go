package executions

// Worker keys (internal/workerkeys): a request signed with one carries a
// caller.WorkerScope, and may call only its action type's job protocol
// (awsjson refuses every other operation before it runs). Here the
// operations check the rest: that the poll names the key's action type,
// and that the job is of it. Root callers skip both checks without
// reading anything (the job operations' fast path, jobindex.go, is
// theirs); a worker's job operations read the job from the store first.

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
	c, ok := caller.Worker(ctx)
	if !ok || j.ActionType == c.Worker.ActionType {
		return nil
	}
	return c.Denied(operation, "; job "+j.ID+" is of another action type")
}
