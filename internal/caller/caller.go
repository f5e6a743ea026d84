// Package caller carries the authenticated identity of a request through its
// context, from the transport that verified it to the services that record
// who did what (for example who approved) and that enforce what a limited
// caller (a worker key) may do.
package caller

import (
	"context"

	"github.com/pipelined/pipelined/internal/store"
	"github.com/pipelined/pipelined/internal/wire"
)

// Caller is who made a request.
type Caller struct {
	// AccessKeyID is the key the request was signed with.
	AccessKeyID string
	// ARN is the principal's ARN, as CodePipeline reports it in lastUpdatedBy.
	ARN string
	// Worker is set when the request was signed with a worker key: the
	// caller may call only the job-protocol operations of Worker.ActionType,
	// on jobs of that type. Nil for the root credentials, which may do
	// everything.
	Worker *WorkerScope
}

// WorkerScope is what a worker key is limited to.
type WorkerScope struct {
	// ActionType is the action type (owner Custom or ThirdParty) whose jobs
	// the key's holder works.
	ActionType store.ActionTypeKey
}

// String names the action type as Category/Owner/Provider/Version.
func (w *WorkerScope) String() string {
	k := w.ActionType
	return k.Category + "/" + k.Owner + "/" + k.Provider + "/" + k.Version
}

// workerOperations are the operations a worker key may call, by the owner
// of its action type: that owner's job protocol, nothing else.
var workerOperations = map[string]map[string]bool{
	"Custom": {
		"PollForJobs": true, "AcknowledgeJob": true, "GetJobDetails": true,
		"PutJobSuccessResult": true, "PutJobFailureResult": true,
	},
	// pipelined's runners (Compute/AWS/Commands/1, the only AWS type a
	// worker key may be issued for) speak the custom job protocol.
	"AWS": {
		"PollForJobs": true, "AcknowledgeJob": true, "GetJobDetails": true,
		"PutJobSuccessResult": true, "PutJobFailureResult": true,
	},
	"ThirdParty": {
		"PollForThirdPartyJobs": true, "AcknowledgeThirdPartyJob": true, "GetThirdPartyJobDetails": true,
		"PutThirdPartyJobSuccessResult": true, "PutThirdPartyJobFailureResult": true,
	},
}

// MayCall reports whether a worker of this scope may call the operation at
// all (the operations then check that the job or poll is of its type).
func (w *WorkerScope) MayCall(operation string) bool {
	if w.ActionType.Owner == "AWS" && w.ActionType != RunnerType {
		return false
	}
	return workerOperations[w.ActionType.Owner][operation]
}

// RunnerType is the one AWS-owned action type a worker key may be for:
// the Commands action, whose jobs pipelined's runners poll.
var RunnerType = store.ActionTypeKey{Category: "Compute", Owner: "AWS", Provider: "Commands", Version: "1"}

// Denied is the AccessDeniedException a worker caller gets for an
// operation it may not perform, in AWS's words, with why; detail, when
// not empty, says more (": the poll names another action type").
func (c Caller) Denied(operation, detail string) *wire.Error {
	return wire.Errorf(wire.ErrAccessDenied,
		"User: %s is not authorized to perform: codepipeline:%s because worker keys may call only the job-protocol operations of action type %s%s",
		c.ARN, operation, c.Worker, detail)
}

type ctxKey struct{}

// With returns ctx carrying c.
func With(ctx context.Context, c Caller) context.Context { return context.WithValue(ctx, ctxKey{}, c) }

// From returns the caller of ctx (false when the request was not authenticated).
func From(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(ctxKey{}).(Caller)
	return c, ok
}

// Worker returns the caller of ctx when it signed with a worker key (false
// for root and for unauthenticated contexts).
func Worker(ctx context.Context) (Caller, bool) {
	c, ok := From(ctx)
	if !ok || c.Worker == nil {
		return Caller{}, false
	}
	return c, true
}
