// Package store is pipelined's storage interface. Everything the server keeps
// goes through it; there is no SQL above this package. Two implementations
// exist: store/sqlite (the embedded default) and store/postgres (for several
// replicas on one database). Both pass the conformance suite in
// store/storetest, unchanged.
//
// Records carry their payload as opaque JSON (Definition) plus the columns the
// store must index or compare. The service layer owns the payload's meaning.
package store

import (
	"context"
	"errors"
	"time"
)

// Errors every implementation returns (wrapped or not; test with errors.Is).
var (
	ErrNotFound      = errors.New("store: not found")
	ErrAlreadyExists = errors.New("store: already exists")
	// ErrConflict means a concurrent writer changed the record first: an
	// optimistic-concurrency loss. The caller may re-read and try again.
	ErrConflict = errors.New("store: concurrent modification")
)

// Pipeline is one version of a pipeline definition.
type Pipeline struct {
	Name          string
	Version       int
	PipelineType  string // V1 or V2
	ExecutionMode string // SUPERSEDED, QUEUED or PARALLEL
	// Definition is the JSON of the pipeline declaration, with secret
	// configuration values already encrypted by the service.
	Definition []byte
	// Created is when version 1 was created; Updated when this version was.
	Created time.Time
	Updated time.Time
}

// PipelineResource is the resource key under which a pipeline's tags are
// stored: CreatePipeline stores the given tags under it and DeletePipeline
// deletes them. The service maps resource ARNs to resource keys; the store
// knows nothing of ARNs (they embed the region and account, which are
// configuration, not data).
func PipelineResource(name string) string { return "pipeline/" + name }

// ActionTypeResource is the resource key of an action type's tags.
func ActionTypeResource(k ActionTypeKey) string {
	return "actiontype/" + k.Owner + "/" + k.Category + "/" + k.Provider + "/" + k.Version
}

// Tag is a key/value tag of a resource.
type Tag struct {
	Key   string
	Value string
}

// ActionTypeKey identifies an action type.
type ActionTypeKey struct {
	Category string
	Owner    string // AWS, Custom or ThirdParty
	Provider string
	Version  string
}

// ActionType is a stored action type (custom or third-party).
type ActionType struct {
	ActionTypeKey
	// Definition is the JSON of the action type as the service keeps it.
	Definition []byte
	// Deleted marks a deleted custom action type: it stays so that the same
	// version can only be re-created identical (which restores it).
	Deleted bool
	Created time.Time
	Updated time.Time
}

// WorkItem is a unit of work in a queue that replicas claim from.
type WorkItem struct {
	ID      int64
	Queue   string
	Payload []byte
	// Attempts counts how often the item has been claimed.
	Attempts int
	// ClaimedBy and ClaimedUntil describe the current claim, if any.
	ClaimedBy    string
	ClaimedUntil time.Time
	Created      time.Time
}

// Store is the storage interface. Every method takes a context; every
// multi-row change is one transaction. Contract details every
// implementation keeps (the conformance suite checks them):
//   - The store assigns Version, Created and Updated of pipelines and ignores
//     what the caller passes; it forces the name in UpdatePipeline and the key
//     in PutActionType.
//   - "Name order" and "key order" are byte order; action types sort by
//     (Category, Owner, Provider, Version).
//   - Definition and Payload come back byte for byte.
//   - UpdatePipeline does not call fn for a pipeline that does not exist.
//   - A claim or lease is expired once its expiry time is reached.
//   - Listen has subscribed by the time it returns.
//   - Errors returned by callbacks come back so that errors.Is finds them; a
//     canceled context gives an error errors.Is finds context.Canceled in.
type Store interface {
	// CreatePipeline stores version 1 of a new pipeline with its tags (under
	// PipelineResource(p.Name)), in one transaction.
	// ErrAlreadyExists when the name is taken.
	CreatePipeline(ctx context.Context, p Pipeline, tags []Tag) error
	// GetPipeline returns the given version, or the latest when version is 0.
	// ErrNotFound when the pipeline or the version does not exist.
	GetPipeline(ctx context.Context, name string, version int) (Pipeline, error)
	// UpdatePipeline reads the latest version and stores the one fn returns
	// as version latest+1, in one transaction. fn may be called again after a
	// conflict on some backends; it must not have side effects. Returns
	// ErrNotFound for an unknown pipeline, ErrConflict when a concurrent
	// update stored that version first, or fn's own error.
	UpdatePipeline(ctx context.Context, name string, fn func(latest Pipeline) (Pipeline, error)) (Pipeline, error)
	// DeletePipeline deletes every version of the pipeline and its tags (those
	// under PipelineResource(name)), in one transaction.
	// ErrNotFound when it does not exist.
	DeletePipeline(ctx context.Context, name string) error
	// ListPipelines returns the latest version of up to limit pipelines whose
	// names sort after the given name, in name order, without Definition.
	ListPipelines(ctx context.Context, after string, limit int) ([]Pipeline, error)
	// CountPipelines returns the number of pipelines.
	CountPipelines(ctx context.Context) (int, error)

	// Tags returns the tags of a resource key, sorted by key (none: empty).
	Tags(ctx context.Context, resource string) ([]Tag, error)
	// UpdateTags replaces a resource's tags with what fn returns, in one
	// transaction.
	UpdateTags(ctx context.Context, resource string, fn func(current []Tag) ([]Tag, error)) error

	// PutActionType creates, replaces or deletes an action type in one
	// transaction: fn gets the stored one (nil if none, deleted ones
	// included) and returns what to store (nil: leave unchanged).
	PutActionType(ctx context.Context, key ActionTypeKey, fn func(current *ActionType) (*ActionType, error)) (*ActionType, error)
	// GetActionType returns an action type, deleted ones included.
	GetActionType(ctx context.Context, key ActionTypeKey) (ActionType, error)
	// ListActionTypes returns up to limit action types that are not deleted,
	// of the given owner ("" for all), in key order (Category, Owner,
	// Provider, Version), after the given key (nil: from the start).
	ListActionTypes(ctx context.Context, owner string, after *ActionTypeKey, limit int) ([]ActionType, error)

	// Enqueue adds an item to a queue and returns its id.
	Enqueue(ctx context.Context, queue string, payload []byte) (int64, error)
	// Claim hands up to max unclaimed items (or items whose claim expired) of
	// a queue to owner for leaseFor, oldest first. Two concurrent claimers,
	// also on different replicas, never get the same item.
	Claim(ctx context.Context, queue, owner string, max int, leaseFor time.Duration) ([]WorkItem, error)
	// Complete removes an item claimed by owner. ErrNotFound when the item
	// does not exist or owner's claim is gone (expired and claimed by another).
	Complete(ctx context.Context, id int64, owner string) error

	// AcquireLease takes or renews the named lease for holder until now+ttl.
	// It succeeds when the lease is free, expired, or already holder's.
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	// ReleaseLease gives up holder's lease (no-op when holder does not hold it).
	ReleaseLease(ctx context.Context, name, holder string) error

	// Notify wakes every listener of channel, on every replica.
	Notify(ctx context.Context, channel, payload string) error
	// Listen subscribes to channel until ctx ends. Notifications may be
	// dropped when the receiver is slow or the connection is lost, so a
	// listener must also poll (the returned channel is a hint, not a log).
	Listen(ctx context.Context, channel string) (<-chan string, error)

	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	// Close releases the store's resources.
	Close() error
}
