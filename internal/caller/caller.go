// Package caller carries the authenticated identity of a request through its
// context, from the transport that verified it to the services that record
// who did what (for example who approved).
package caller

import "context"

// Caller is who made a request.
type Caller struct {
	// AccessKeyID is the key the request was signed with.
	AccessKeyID string
	// ARN is the principal's ARN, as CodePipeline reports it in lastUpdatedBy.
	ARN string
}

type ctxKey struct{}

// With returns ctx carrying c.
func With(ctx context.Context, c Caller) context.Context { return context.WithValue(ctx, ctxKey{}, c) }

// From returns the caller of ctx (false when the request was not authenticated).
func From(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(ctxKey{}).(Caller)
	return c, ok
}
