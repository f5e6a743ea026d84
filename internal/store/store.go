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

// Execution is a pipeline execution: the engine's JSON document plus the
// columns the store indexes.
type Execution struct {
	ID       string // a UUID chosen by the engine
	Pipeline string
	// Seq orders executions: assigned by the store on insert, increasing
	// across the whole store (newer executions have larger Seq).
	Seq    int64
	Status string
	// Active marks executions that are not finished (the engine sets it).
	Active bool
	// ClientToken is StartPipelineExecution's clientRequestToken ("" for
	// none); unique per pipeline among executions that have one.
	ClientToken string
	Doc         []byte
	// Created and Updated are the engine's; the store keeps them as given
	// (at millisecond precision).
	Created time.Time
	Updated time.Time
}

// Timer is a row with a due time; the engine's sweeper fires due timers.
type Timer struct {
	ID       string // chosen by the engine; unique in the store
	Pipeline string
	Due      time.Time
	Payload  []byte
}

// Job is a unit of work for an external job worker.
type Job struct {
	ID         string // a UUID chosen by the engine
	ActionType ActionTypeKey
	// QueryValue is the value of the action type's queryable configuration
	// property in the action's configuration ("" when it has none); polls
	// with a queryParam match it.
	QueryValue  string
	Pipeline    string
	ExecutionID string
	// Status is one of JobQueued, JobDispatched, and the engine's own
	// statuses (InProgress, Succeeded, Failed, TimedOut), which the store
	// does not interpret.
	Status string
	// NonceHash is what the store keeps of the job's current nonce: an
	// opaque string the caller derives from it (a keyed hash, and where a
	// protocol must hand the nonce out again, a sealed copy; see
	// internal/jobnonce), "" when the job has none. The store never keeps
	// the nonce itself: it is the bearer credential of the job's worker.
	NonceHash string
	// Nonce is the job's current nonce in clear. Only the jobs ClaimJobs
	// returns carry it (for the worker they are handed to); PutJob ignores
	// it and reads leave it empty.
	Nonce string
	// Deadline: for a dispatched job, when it returns to the queue if not
	// acknowledged; otherwise the engine's.
	Deadline time.Time
	Doc      []byte
	Created  time.Time // kept as given
	Updated  time.Time // kept as given
}

// Job statuses the store interprets in ClaimJobs.
const (
	JobQueued     = "Queued"
	JobDispatched = "Dispatched"
)

// PipelineTx is a transaction that holds one pipeline's engine lock (a row
// lock on PostgreSQL, the write lock on SQLite): every engine transition of
// a pipeline runs in one, so they never interleave, on any replica. Every
// method acts on the transaction's pipeline only.
type PipelineTx interface {
	// Runtime returns the pipeline's runtime document (nil when none yet).
	Runtime() ([]byte, error)
	SetRuntime(doc []byte) error
	// Execution returns an execution of the pipeline (ErrNotFound).
	Execution(id string) (Execution, error)
	// ExecutionByToken finds the execution started with a clientRequestToken.
	ExecutionByToken(token string) (Execution, error)
	// ActiveExecutions returns the pipeline's active executions, by Seq.
	ActiveExecutions() ([]Execution, error)
	// PutExecution inserts an execution with a new ID (assigning Seq;
	// ErrAlreadyExists when its ClientToken is taken) or updates the one
	// with that ID. It returns the stored execution.
	PutExecution(e Execution) (Execution, error)
	// PutTimer inserts or replaces a timer by ID; DeleteTimer removes one
	// (no error when it does not exist).
	PutTimer(t Timer) error
	DeleteTimer(id string) error
	// PutJob inserts or replaces a job by ID; Job reads one (ErrNotFound).
	PutJob(j Job) error
	Job(id string) (Job, error)
	// Pipeline reads a version of the transaction's pipeline (0: the
	// latest), through the transaction: a transition must never wait for a
	// second connection while it holds one (a pool of N connections would
	// deadlock with N transitions in flight).
	Pipeline(version int) (Pipeline, error)
	// ActionType reads an action type through the transaction.
	ActionType(key ActionTypeKey) (ActionType, error)
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
	// under PipelineResource(name)), and its engine state (runtime,
	// executions, timers, jobs), in one transaction.
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

	// InPipeline runs fn in a transaction holding the pipeline's engine
	// lock, and commits when fn returns nil (rolls back otherwise, returning
	// fn's error). The pipeline need not exist in the pipelines table.
	InPipeline(ctx context.Context, pipeline string, fn func(tx PipelineTx) error) error
	// GetExecution reads an execution of a pipeline (ErrNotFound).
	GetExecution(ctx context.Context, pipeline, id string) (Execution, error)
	// ListExecutions returns up to limit executions of a pipeline, newest
	// (largest Seq) first, with Seq below beforeSeq (0: from the newest).
	ListExecutions(ctx context.Context, pipeline string, beforeSeq int64, limit int) ([]Execution, error)
	// DueTimers returns up to limit timers due at or before now, earliest first.
	DueTimers(ctx context.Context, now time.Time, limit int) ([]Timer, error)
	// ClaimJobs dispatches up to max jobs of an action type, oldest first:
	// jobs that are JobQueued, or JobDispatched whose Deadline has passed
	// (not acknowledged in time). Each claimed job becomes JobDispatched
	// with Deadline ackDeadline and a fresh nonce from newNonce, called
	// once per claimed job with its ID: the returned job carries the clear
	// nonce in Nonce, the store keeps only hash (NonceHash). queryValue,
	// when non-nil, must equal the job's QueryValue. Two concurrent
	// claimers, also on different replicas, never get the same job.
	ClaimJobs(ctx context.Context, key ActionTypeKey, queryValue *string, max int, newNonce func(jobID string) (nonce, hash string), ackDeadline time.Time) ([]Job, error)
	// GetJob reads a job by ID (ErrNotFound).
	GetJob(ctx context.Context, id string) (Job, error)
	// HashLegacyNonces replaces the clear nonces that stores before
	// schema version 6 kept (migration 00006 leaves them in place: a
	// keyed hash needs the master key, which SQL does not have) with
	// hash(job, nonce) as the job's NonceHash, and clears them. It
	// returns how many it replaced; once none is left it finds none
	// quickly. Safe to run on several replicas at once.
	HashLegacyNonces(ctx context.Context, hash func(j Job, nonce string) string) (int, error)

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

	// Third-party clients and signing keys: see the sections below.
	ThirdPartyClients
	SigningKeyStore
	WorkerKeys
	Logs // logs.go
	ConsoleUsers
	GitConnections // gitconnections.go
}

// ---------------------------------------------------------------------------
// Third-party clients
// ---------------------------------------------------------------------------

// ThirdPartyClient is a clientId/clientToken pair issued for one pipeline
// action of a ThirdParty action type: what a partner receives when a customer
// connects an action to it. The store keeps a hash of the token, never the
// token.
type ThirdPartyClient struct {
	ID string // chosen by the caller; unique in the store
	// The pipeline action the client is for, and the action type the action
	// had when the client was issued.
	Pipeline   string
	Stage      string
	Action     string
	ActionType ActionTypeKey
	// PipelineCreated is the Created time of the pipeline the client was
	// issued for, kept as given: a pipeline deleted and created again under
	// the same name is another pipeline, whose actions the client does not
	// cover.
	PipelineCreated time.Time
	// TokenHash is a hash of the client token (the caller's choice of
	// hash); unique in the store. Kept byte for byte.
	TokenHash []byte
	// Created is assigned by the store; Revoked is zero while the client is
	// active and set by the store when it is revoked.
	Created time.Time
	Revoked time.Time
}

// Active reports whether the client has not been revoked.
func (c ThirdPartyClient) Active() bool { return c.Revoked.IsZero() }

// ThirdPartyClients stores third-party clients. A pipeline action has at
// most one active client at a time; revoked clients stay (for listing) and
// never become active again.
type ThirdPartyClients interface {
	// CreateClient stores a new active client (Created: now, Revoked:
	// zero, whatever c says) and returns it as stored. ErrAlreadyExists
	// when the ID or the TokenHash is taken, or when the pipeline action
	// already has an active client.
	CreateClient(ctx context.Context, c ThirdPartyClient) (ThirdPartyClient, error)
	// GetClient reads a client by ID, revoked ones included (ErrNotFound).
	GetClient(ctx context.Context, id string) (ThirdPartyClient, error)
	// ClientByTokenHash finds the client whose TokenHash equals hash,
	// revoked ones included (ErrNotFound).
	ClientByTokenHash(ctx context.Context, hash []byte) (ThirdPartyClient, error)
	// ActionClient returns the active client of a pipeline action
	// (ErrNotFound when it has none).
	ActionClient(ctx context.Context, pipeline, stage, action string) (ThirdPartyClient, error)
	// RevokeClient revokes a client (Revoked: now) and returns it. Revoking
	// a revoked client changes nothing and returns it. ErrNotFound when
	// there is no such client.
	RevokeClient(ctx context.Context, id string) (ThirdPartyClient, error)
	// ListClients returns the clients of a pipeline ("" for every
	// pipeline), revoked ones included, ordered by pipeline, stage, action,
	// then Created and ID (byte order).
	ListClients(ctx context.Context, pipeline string) ([]ThirdPartyClient, error)
}

// ---------------------------------------------------------------------------
// Worker keys
// ---------------------------------------------------------------------------

// WorkerKey is a long-lived access key pair an operator issues for the job
// workers of one action type (owner Custom or ThirdParty): it signs that
// type's job-protocol calls and nothing else, so that a build host or a
// partner never holds the root credentials. SigV4 needs the secret itself
// to verify a signature, so the store keeps it sealed (encrypted under the
// master key by the caller), never hashed.
type WorkerKey struct {
	AccessKeyID string // chosen by the caller; unique in the store
	// SealedSecret is the secret access key as the caller sealed it; kept
	// as given.
	SealedSecret string
	ActionType   ActionTypeKey
	Description  string
	// Created is assigned by the store; Revoked is zero while the key is
	// active and set by the store when it is revoked.
	Created time.Time
	Revoked time.Time
}

// Active reports whether the key has not been revoked.
func (k WorkerKey) Active() bool { return k.Revoked.IsZero() }

// WorkerKeys stores worker keys. Revoked keys stay (for listing and audit)
// and never become active again.
type WorkerKeys interface {
	// CreateWorkerKey stores a new active key (Created: now, Revoked: zero,
	// whatever k says) and returns it as stored. ErrAlreadyExists when the
	// AccessKeyID is taken.
	CreateWorkerKey(ctx context.Context, k WorkerKey) (WorkerKey, error)
	// GetWorkerKey reads a key, revoked ones included (ErrNotFound).
	GetWorkerKey(ctx context.Context, accessKeyID string) (WorkerKey, error)
	// ListWorkerKeys returns every key, revoked ones included, ordered by
	// Created, then AccessKeyID (byte order).
	ListWorkerKeys(ctx context.Context) ([]WorkerKey, error)
	// RevokeWorkerKey revokes a key (Revoked: now) and returns it. Revoking
	// a revoked key changes nothing and returns it. ErrNotFound when there
	// is no such key.
	RevokeWorkerKey(ctx context.Context, accessKeyID string) (WorkerKey, error)
}

// ---------------------------------------------------------------------------
// OIDC signing keys
// ---------------------------------------------------------------------------

// SigningKeys is the OIDC issuer's key set as one record: the identity
// service owns Doc's format (it seals private keys before they reach the
// store). Version increases by one with every write; replicas agree on one
// key set because every write is a compare-and-swap on it (Dex's model).
type SigningKeys struct {
	Version int64
	Doc     []byte
	Updated time.Time // assigned by the store
}

// SigningKeyStore keeps the issuer's key set.
type SigningKeyStore interface {
	// SigningKeys returns the stored key set (ErrNotFound when none yet).
	SigningKeys(ctx context.Context) (SigningKeys, error)
	// SwapSigningKeys stores doc as version prev+1 if the stored version is
	// prev (0: nothing stored yet) and returns what was stored; ErrConflict
	// when another writer stored a different version first.
	SwapSigningKeys(ctx context.Context, prev int64, doc []byte) (SigningKeys, error)
}

// ---------------------------------------------------------------------------
// Console users and sessions
// ---------------------------------------------------------------------------

// ConsoleUser is a person who signs in to the web console. The store keeps
// the password's hash as the caller encoded it (a PHC string), never the
// password.
type ConsoleUser struct {
	Name         string // unique in the store
	Role         string // viewer, approver, operator or admin (the caller's vocabulary)
	PasswordHash string
	Disabled     bool
	// Created and Updated are assigned by the store.
	Created time.Time
	Updated time.Time
}

// ConsoleSession is a signed-in browser. The store keeps a hash of the
// session id (the cookie's value), never the id, so a copy of the database
// signs nobody in.
type ConsoleSession struct {
	IDHash []byte // unique in the store; kept byte for byte
	User   string
	// Expires is the absolute end of the session, given by the caller.
	Expires time.Time
	// Created and LastSeen are assigned by the store (LastSeen by
	// TouchConsoleSession).
	Created  time.Time
	LastSeen time.Time
}

// ConsoleUsers stores console users and their sessions.
type ConsoleUsers interface {
	// CreateConsoleUser stores a new user and returns it as stored
	// (ErrAlreadyExists when the name is taken).
	CreateConsoleUser(ctx context.Context, u ConsoleUser) (ConsoleUser, error)
	// GetConsoleUser reads a user (ErrNotFound).
	GetConsoleUser(ctx context.Context, name string) (ConsoleUser, error)
	// ListConsoleUsers returns every user, ordered by name (byte order).
	ListConsoleUsers(ctx context.Context) ([]ConsoleUser, error)
	// UpdateConsoleUser applies fn to the stored user in one transaction
	// and stores its Role, PasswordHash and Disabled (the name and times
	// are the store's). When the update disables the user or changes the
	// password hash, the user's sessions are deleted in the same
	// transaction, so nobody stays signed in with an old password. An
	// error from fn is returned as it is and nothing is written.
	UpdateConsoleUser(ctx context.Context, name string, fn func(u *ConsoleUser) error) (ConsoleUser, error)

	// CreateConsoleSession stores a new session (Created and LastSeen:
	// now) and returns it as stored. ErrNotFound when the user does not
	// exist; ErrAlreadyExists when the id hash is taken.
	CreateConsoleSession(ctx context.Context, s ConsoleSession) (ConsoleSession, error)
	// GetConsoleSession reads a session by its id hash (ErrNotFound).
	GetConsoleSession(ctx context.Context, idHash []byte) (ConsoleSession, error)
	// TouchConsoleSession sets a session's LastSeen to now (ErrNotFound).
	TouchConsoleSession(ctx context.Context, idHash []byte) error
	// DeleteConsoleSession deletes a session (no error when there is none).
	DeleteConsoleSession(ctx context.Context, idHash []byte) error
	// DeleteStaleConsoleSessions deletes the sessions that expired before
	// now or were last seen before idleBefore, and says how many.
	DeleteStaleConsoleSessions(ctx context.Context, now, idleBefore time.Time) (int, error)
}
