package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pipelined/pipelined/internal/actiontypes"
	"github.com/pipelined/pipelined/internal/store"
	"github.com/pipelined/pipelined/internal/wire"
)

// Definitions interprets stored pipelines and action types for the engine
// (the pipelines service provides it). It does no I/O: the engine reads
// records through its transaction, so that a transition never waits for a
// second database connection while it holds one.
type Definitions interface {
	// DecodePipeline turns a stored version into its declaration (secrets
	// sealed).
	DecodePipeline(rec store.Pipeline) (*wire.PipelineDeclaration, error)
	// DecodeActionType turns a stored action type into its description.
	DecodeActionType(rec store.ActionType) (*actiontypes.Type, error)
	// Builtin returns a built-in action type (nil for others).
	Builtin(k actiontypes.Key) *actiontypes.Type
	// PipelineARN is the ARN of a pipeline.
	PipelineARN(name string) string
}

// Config configures an Engine.
type Config struct {
	Store       store.Store
	Definitions Definitions
	// AckTimeout is how long a dispatched job may wait for AcknowledgeJob
	// before it returns to the queue under a new nonce.
	AckTimeout time.Duration
	// DefaultJobTimeout bounds an acknowledged job without its own timeout.
	DefaultJobTimeout time.Duration
	// DefaultApprovalTimeout is an approval's timeout without timeoutInMinutes.
	DefaultApprovalTimeout time.Duration
	Now                    func() time.Time
	Logger                 *slog.Logger
	// Observer, when set, receives what transitions did (observe.go).
	Observer Observer
}

// Engine runs pipeline executions.
type Engine struct {
	store   store.Store
	defs    Definitions
	ack     time.Duration
	jobTO   time.Duration
	apprTO  time.Duration
	now     func() time.Time
	log     *slog.Logger
	newID   func() string
	signals signals
	// decoded caches decoded pipeline versions (they never change).
	decoded declCache
	// execs and jobDocs cache the documents transitions wrote (doccache.go).
	execs   execCache
	jobDocs jobDocCache
	// Executors by action type, by owner, and by name (for timers).
	byType  map[actiontypes.Key]Executor
	byOwner map[string]Executor
	byName  map[string]Executor
	// observer receives the events of committed transitions (nil: none
	// are collected).
	observer Observer
	// changed, when set, hears of every committed transition that wrote an
	// execution (OnChange).
	changed atomic.Pointer[func(pipeline string)]
	// leases are the runner leases of action types (lease.go).
	leases map[actiontypes.Key]time.Duration
}

// OnChange registers fn to hear, after each committed transition of this
// replica that changed an execution or the pipeline's runtime (transitions
// enabled or disabled, queues), the pipeline's name: the console's
// live updates. fn runs on the transition's goroutine and must not block.
// Transitions on other replicas are not heard: listeners re-read now and
// then as well.
func (e *Engine) OnChange(fn func(pipeline string)) { e.changed.Store(&fn) }

// JobsChannel is the store notification channel woken when jobs are
// queued; the payload is the action type's JobTypeKey.
const JobsChannel = "jobs"

// JobsNotification is the payload of a JobsChannel notification: n jobs of
// the action type key were queued. Pollers wake one waiter per job (a
// broadcast would wake every long poll of the type for each job, and all
// but one would find nothing).
func JobsNotification(key string, n int) string {
	if n <= 1 {
		return key
	}
	return key + "#" + strconv.Itoa(n)
}

// ParseJobsNotification reads a JobsChannel payload: the action type key
// and how many jobs were queued (at least 1).
func ParseJobsNotification(payload string) (key string, n int) {
	k, count, ok := strings.Cut(payload, "#")
	if !ok {
		return payload, 1
	}
	n, err := strconv.Atoi(count)
	if err != nil || n < 1 {
		return k, 1
	}
	return k, n
}

// JobTypeKey is how a job notification names its action type.
func JobTypeKey(k actiontypes.Key) string {
	return k.Owner + "/" + k.Category + "/" + k.Provider + "/" + k.Version
}

// New returns an Engine.
func New(c Config) *Engine {
	e := &Engine{store: c.Store, defs: c.Definitions, ack: c.AckTimeout, jobTO: c.DefaultJobTimeout, apprTO: c.DefaultApprovalTimeout, now: c.Now, log: c.Logger, newID: newUUID, observer: c.Observer}
	if e.ack <= 0 {
		e.ack = 5 * time.Minute
	}
	if e.jobTO <= 0 {
		e.jobTO = time.Hour
	}
	if e.apprTO <= 0 {
		e.apprTO = 7 * 24 * time.Hour
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	e.byType, e.byOwner = map[actiontypes.Key]Executor{}, map[string]Executor{}
	e.RegisterExecutor(actiontypes.Key{Category: "Approval", Owner: "AWS", Provider: "Manual", Version: "1"}, approvalExecutor{defaultTimeout: e.apprTO})
	jobs := jobExecutor{}
	e.RegisterOwnerExecutor("Custom", jobs)
	e.RegisterOwnerExecutor("ThirdParty", jobs)
	return e
}

// AckTimeout is how long a dispatched job waits for its acknowledgement.
func (e *Engine) AckTimeout() time.Duration { return e.ack }

// txn is one engine transition in progress: the pipeline's runtime and the
// executions it touched, written back together when it commits.
type txn struct {
	ctx      context.Context
	e        *Engine
	tx       store.PipelineTx
	pipeline string
	now      time.Time
	// The runtime document is read on first use (runtime): transitions
	// such as an acknowledgement never need it.
	rt       *Runtime
	rtDoc    []byte // the runtime document as read
	rtErr    error  // reading or decoding it failed: the transition fails
	execs    map[string]*Execution
	dirty    map[string]bool
	defs     map[int]*wire.PipelineDeclaration
	latest   int               // latest pipeline version, 0 until read
	newJobs  map[string]int    // jobs queued, by action type key
	finished []string          // executions that ended in this transition
	written  map[string][]byte // executions flushed: their stored bytes
	// snaps and events: what the transition read and did, when observed.
	snaps  map[string]*snapshot
	events []Event
	// rtWritten: the runtime document (transitions, queues) was written.
	rtWritten bool
}

// transact runs fn as one engine transition of a pipeline.
func (e *Engine) transact(ctx context.Context, pipeline string, fn func(t *txn) error) error {
	var t *txn
	err := e.store.InPipeline(ctx, pipeline, func(tx store.PipelineTx) error {
		t = &txn{ctx: ctx, e: e, tx: tx, pipeline: pipeline, now: e.now().UTC().Truncate(time.Millisecond),
			execs: map[string]*Execution{}, dirty: map[string]bool{}, defs: map[int]*wire.PipelineDeclaration{}}
		if t.observing() {
			t.tx = &jobWatch{PipelineTx: tx, t: t, seen: map[string]string{}}
		}
		if err := fn(t); err != nil {
			return err
		}
		if t.rtErr != nil {
			return t.rtErr
		}
		t.diff()
		return t.flush()
	})
	if err != nil {
		return err
	}
	// Committed: what the transition wrote is what the next one will read.
	for id, doc := range t.written {
		e.execs.put(id, doc, t.execs[id])
	}
	for key, n := range t.newJobs {
		if err := e.store.Notify(context.WithoutCancel(ctx), JobsChannel, JobsNotification(key, n)); err != nil {
			e.log.Warn("notify jobs", "err", err) // pollers also poll: a lost wake-up only delays
		}
	}
	for _, id := range t.finished {
		e.signals.fire(id)
	}
	if t.observing() {
		e.notify(t.events)
	}
	if fn := e.changed.Load(); fn != nil && (len(t.written) > 0 || t.rtWritten) {
		(*fn)(pipeline)
	}
	return nil
}

// runtime returns the pipeline's runtime document, reading it on first use.
// A read or decode error is kept and fails the transition (transact checks
// it), so callers need not handle it: they get an empty runtime meanwhile.
func (t *txn) runtime() *Runtime {
	if t.rt != nil {
		return t.rt
	}
	t.rt = &Runtime{}
	doc, err := t.tx.Runtime()
	if err != nil {
		t.rtErr = err
		return t.rt
	}
	t.rtDoc = doc
	if doc != nil {
		if err := json.Unmarshal(doc, t.rt); err != nil {
			t.rtErr = fmt.Errorf("decode runtime of %q: %w", t.pipeline, err)
		}
	}
	return t.rt
}

func (t *txn) flush() error {
	for id := range t.dirty {
		x := t.execs[id]
		x.Updated = t.now
		doc, err := json.Marshal(x)
		if err != nil {
			return err
		}
		if _, err := t.tx.PutExecution(store.Execution{
			ID: x.ID, Pipeline: x.Pipeline, Status: x.Status, Active: x.Active(), ClientToken: x.ClientToken,
			Doc: doc, Created: x.Created, Updated: x.Updated,
		}); err != nil {
			return err
		}
		if t.written == nil {
			t.written = map[string][]byte{}
		}
		t.written[id] = doc
	}
	if t.rt == nil {
		return nil // not read, so not changed
	}
	doc, err := json.Marshal(t.rt)
	if err != nil {
		return err
	}
	if bytes.Equal(doc, t.rtDoc) {
		return nil // unchanged (an acknowledgement): spare the write
	}
	t.rtWritten = true
	return t.tx.SetRuntime(doc)
}

// exec loads an execution of the transaction's pipeline.
func (t *txn) exec(id string) (*Execution, error) {
	if x, ok := t.execs[id]; ok {
		return x, nil
	}
	rec, err := t.tx.Execution(id)
	if err != nil {
		return nil, err
	}
	if x := t.e.execs.take(id, rec.Doc); x != nil {
		t.execs[id] = x
		t.read(x)
		return x, nil
	}
	x := &Execution{}
	if err := json.Unmarshal(rec.Doc, x); err != nil {
		return nil, fmt.Errorf("decode execution %s: %w", id, err)
	}
	t.execs[id] = x
	t.read(x)
	return x, nil
}

func (t *txn) touch(x *Execution) {
	t.execs[x.ID] = x
	t.dirty[x.ID] = true
}

// def returns the pipeline declaration at a version (0: the latest).
func (t *txn) def(version int) (*wire.PipelineDeclaration, error) {
	if d, ok := t.defs[version]; ok {
		return d, nil
	}
	rec, err := t.tx.Pipeline(version)
	if err != nil {
		return nil, err
	}
	d, err := t.e.decoded.get(rec, t.e.defs.DecodePipeline)
	if err != nil {
		return nil, err
	}
	t.defs[rec.Version] = d
	if version == 0 {
		t.defs[0] = d
		t.latest = rec.Version
	}
	return d, nil
}

// actionType resolves an action type through the transaction (nil when it
// does not exist or was deleted).
func (t *txn) actionType(k actiontypes.Key) (*actiontypes.Type, error) {
	if b := t.e.defs.Builtin(k); b != nil {
		return b, nil
	}
	rec, err := t.tx.ActionType(store.ActionTypeKey(k))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if rec.Deleted {
		return nil, nil
	}
	return t.e.defs.DecodeActionType(rec)
}

// latestVersion is the pipeline's current version.
func (t *txn) latestVersion() (int, error) {
	if t.latest == 0 {
		if _, err := t.def(0); err != nil {
			return 0, err
		}
	}
	return t.latest, nil
}

// ErrPipelineGone is returned when the pipeline was deleted under an execution.
var ErrPipelineGone = errors.New("engine: pipeline deleted")

func (t *txn) declOf(x *Execution) (*wire.PipelineDeclaration, error) {
	d, err := t.def(x.PipelineVersion)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrPipelineGone
	}
	return d, err
}

// declCache keeps decoded pipeline versions: decoding a definition was ~9%
// of the server's CPU in the engine benchmark, on every transition. A stored
// version never changes; a pipeline deleted and created again under the same
// name starts over at version 1 with another creation time, which is part of
// the key. The engine treats declarations as read-only.
type declCache struct {
	mu sync.Mutex
	m  map[declKey]*wire.PipelineDeclaration
}

type declKey struct {
	name    string
	version int
	created int64
}

// declCacheMax bounds the cache; past it, it starts over.
const declCacheMax = 1024

func (c *declCache) get(rec store.Pipeline, decode func(store.Pipeline) (*wire.PipelineDeclaration, error)) (*wire.PipelineDeclaration, error) {
	k := declKey{rec.Name, rec.Version, rec.Created.UnixMilli()}
	c.mu.Lock()
	d, ok := c.m[k]
	c.mu.Unlock()
	if ok {
		return d, nil
	}
	d, err := decode(rec)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= declCacheMax {
		c.m = map[declKey]*wire.PipelineDeclaration{}
	}
	c.m[k] = d
	c.mu.Unlock()
	return d, nil
}
