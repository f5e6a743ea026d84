// Package pipelines is the service behind pipeline definitions and action
// types: CreatePipeline, GetPipeline, UpdatePipeline, DeletePipeline,
// ListPipelines, the tagging operations and the custom action type
// operations. It validates definitions as CodePipeline does, keeps secret
// configuration values sealed at rest and masked on the way out, and talks to
// storage only through store.Store.
package pipelines

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pipelined/pipelined/internal/actiontypes"
	"github.com/pipelined/pipelined/internal/secrets"
	"github.com/pipelined/pipelined/internal/store"
	"github.com/pipelined/pipelined/internal/wire"
)

// Config configures a Service.
type Config struct {
	Store     store.Store
	Sealer    *secrets.Sealer
	Region    string
	AccountID string
	// MaxPipelines caps the number of pipelines (LimitExceededException past it).
	MaxPipelines int
	// MaxCustomActionTypes caps the number of custom action types.
	MaxCustomActionTypes int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// AfterCreate and AfterUpdate, when set, run after a pipeline was
	// created or updated (the engine starts an execution on create, and
	// cancels waiting executions of an older version on update). Their
	// errors are logged by the caller, not returned: the write happened.
	AfterCreate func(ctx context.Context, name string) error
	AfterUpdate func(ctx context.Context, name string) error
}

// Service implements the pipeline-definition part of the CodePipeline API.
// Operations it does not serve answer through wire.Unimplemented.
type Service struct {
	wire.Unimplemented
	store    store.Store
	sealer   *secrets.Sealer
	region   string
	account  string
	maxPipes int
	maxTypes int
	now      func() time.Time
	builtins map[actiontypes.Key]*actiontypes.Type
	count    countCache
	after    struct {
		create, update func(context.Context, string) error
	}
	hookErr func(op, name string, err error)
}

// New returns a Service.
func New(c Config) *Service {
	s := &Service{
		store: c.Store, sealer: c.Sealer, region: c.Region, account: c.AccountID,
		maxPipes: c.MaxPipelines, maxTypes: c.MaxCustomActionTypes, now: c.Now,
		builtins: actiontypes.BuiltinIndex(),
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.after.create, s.after.update = c.AfterCreate, c.AfterUpdate
	s.hookErr = func(string, string, error) {}
	if s.maxPipes <= 0 {
		s.maxPipes = 10000
	}
	if s.maxTypes <= 0 {
		s.maxTypes = 50
	}
	return s
}

// PipelineARN returns the ARN of the named pipeline.
func (s *Service) PipelineARN(name string) string {
	return fmt.Sprintf("arn:aws:codepipeline:%s:%s:%s", s.region, s.account, name)
}

func actionTypeARN(region, account string, k actiontypes.Key) string {
	return fmt.Sprintf("arn:aws:codepipeline:%s:%s:actiontype:%s/%s/%s/%s", region, account, k.Owner, k.Category, k.Provider, k.Version)
}

func (s *Service) pipelineNotFound(name string) error {
	return wire.Errorf(wire.ErrPipelineNotFound, "Account '%s' does not have a pipeline with name '%s'", s.account, name)
}

// internal wraps an unexpected (storage) error; the transport logs it and
// answers InternalFailure without its text.
func internal(op string, err error) error {
	if _, ok := wire.AsError(err); ok {
		return err
	}
	return fmt.Errorf("%s: %w", op, err)
}

// sealContext binds a sealed secret to its pipeline.
func sealContext(pipeline string) string { return "pipeline/" + pipeline }

// CreatePipeline validates and stores version 1 of a pipeline.
func (s *Service) CreatePipeline(ctx context.Context, in *wire.CreatePipelineInput) (*wire.CreatePipelineOutput, error) {
	p := in.Pipeline
	normalize(p)
	if err := s.validate(ctx, p); err != nil {
		return nil, err
	}
	if err := ValidateTags(in.Tags); err != nil {
		return nil, err
	}
	if err := s.sealSecrets(ctx, p, nil); err != nil {
		return nil, err
	}
	n, err := s.pipelineCount(ctx)
	if err != nil {
		return nil, err
	}
	if n >= s.maxPipes {
		return nil, wire.Errorf(wire.ErrLimitExceeded, "The account already has %d pipelines, the most this server allows (--max-pipelines)", n)
	}
	p.Version = wire.Ptr(1)
	def, err := json.Marshal(p)
	if err != nil {
		return nil, internal("encode pipeline", err)
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	rec := store.Pipeline{Name: p.Name, Version: 1, PipelineType: string(p.PipelineType), ExecutionMode: string(p.ExecutionMode), Definition: def, Created: now, Updated: now}
	if err := s.store.CreatePipeline(ctx, rec, toStoreTags(in.Tags)); err != nil {
		if errors.Is(err, store.ErrAlreadyExists) {
			return nil, wire.Errorf(wire.ErrPipelineNameInUse, "A pipeline with the name '%s' already exists", p.Name)
		}
		return nil, internal("create pipeline", err)
	}
	s.count.add(1)
	s.runHook(ctx, "create", s.after.create, p.Name)
	s.maskSecrets(p)
	return &wire.CreatePipelineOutput{Pipeline: p, Tags: in.Tags}, nil
}

// countCache keeps the number of pipelines between exact counts. Counting
// is O(pipelines) in the store (45% of CreatePipeline's CPU at 10,000), and
// the number matters only near --max-pipelines.
type countCache struct {
	mu sync.Mutex
	n  int
	at time.Time
}

func (c *countCache) add(d int) {
	c.mu.Lock()
	c.n += d
	c.mu.Unlock()
}

// Counts are exact when the cached count is near the limit or older than
// countMaxAge; otherwise the cache (kept current by this replica's own
// creates and deletes) is used. Far from the limit, other replicas' creates
// in the last countMaxAge cannot reach it.
const (
	countMaxAge = 2 * time.Second
	countMargin = 256
)

func (s *Service) pipelineCount(ctx context.Context) (int, error) {
	c := &s.count
	c.mu.Lock()
	n, fresh := c.n, s.now().Sub(c.at) < countMaxAge
	c.mu.Unlock()
	if fresh && n+countMargin < s.maxPipes {
		return n, nil
	}
	n, err := s.store.CountPipelines(ctx)
	if err != nil {
		return 0, internal("count pipelines", err)
	}
	c.mu.Lock()
	c.n, c.at = n, s.now()
	c.mu.Unlock()
	return n, nil
}

// GetPipeline returns a pipeline version with secrets masked.
func (s *Service) GetPipeline(ctx context.Context, in *wire.GetPipelineInput) (*wire.GetPipelineOutput, error) {
	version := 0
	if in.Version != nil {
		version = *in.Version
	}
	rec, err := s.store.GetPipeline(ctx, in.Name, version)
	if errors.Is(err, store.ErrNotFound) {
		if version == 0 {
			return nil, s.pipelineNotFound(in.Name)
		}
		if _, err := s.store.GetPipeline(ctx, in.Name, 0); errors.Is(err, store.ErrNotFound) {
			return nil, s.pipelineNotFound(in.Name)
		}
		return nil, wire.Errorf(wire.ErrPipelineVersionNotFound, "Pipeline '%s' has no version %d", in.Name, version)
	}
	if err != nil {
		return nil, internal("get pipeline", err)
	}
	p, err := s.readableDefinition(rec)
	if err != nil {
		return nil, err
	}
	return &wire.GetPipelineOutput{
		Pipeline: p,
		Metadata: &wire.PipelineMetadata{PipelineArn: s.PipelineARN(rec.Name), Created: wire.TimeOf(rec.Created), Updated: wire.TimeOf(rec.Updated)},
	}, nil
}

// readableDefinition returns a stored version as clients may see it. The
// stored JSON is what json.Marshal made of the declaration with its version
// set (the last member), so when it holds no sealed secret and ends with
// the record's version it is the answer as it is: no decoding, no
// re-encoding. Otherwise it is decoded and its secrets masked.
func (s *Service) readableDefinition(rec store.Pipeline) (*wire.PipelineDeclaration, error) {
	if !secrets.ContainsSealed(rec.Definition) && bytes.HasSuffix(rec.Definition, []byte(`"version":`+strconv.Itoa(rec.Version)+`}`)) {
		return wire.EncodedPipeline(rec.Definition), nil
	}
	p, err := decodeDefinition(rec)
	if err != nil {
		return nil, err
	}
	s.maskSecrets(p)
	return p, nil
}

func decodeDefinition(rec store.Pipeline) (*wire.PipelineDeclaration, error) {
	var p wire.PipelineDeclaration
	if err := json.Unmarshal(rec.Definition, &p); err != nil {
		return nil, fmt.Errorf("decode stored pipeline %q version %d: %w", rec.Name, rec.Version, err)
	}
	p.Version = wire.Ptr(rec.Version)
	return &p, nil
}

// maxUpdateAttempts bounds the retries of an update that lost a race it may
// retry (one that did not pin a version).
const maxUpdateAttempts = 8

// UpdatePipeline stores a new version. When the request carries
// pipeline.version, it must be the latest version (optimistic concurrency:
// a client that read version N does not overwrite a version N+1 it never
// saw); otherwise the update applies on top of the latest version.
func (s *Service) UpdatePipeline(ctx context.Context, in *wire.UpdatePipelineInput) (*wire.UpdatePipelineOutput, error) {
	p := in.Pipeline
	pinned := p.Version
	normalize(p)
	if err := s.validate(ctx, p); err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < maxUpdateAttempts; attempt++ {
		var stored *wire.PipelineDeclaration
		rec, err := s.store.UpdatePipeline(ctx, p.Name, func(latest store.Pipeline) (store.Pipeline, error) {
			if pinned != nil && *pinned != latest.Version {
				return store.Pipeline{}, wire.Errorf(wire.ErrConcurrentModification, "Pipeline '%s' is at version %d; the update was based on version %d. Get the pipeline again and reapply the change", p.Name, latest.Version, *pinned)
			}
			prev, err := decodeDefinition(latest)
			if err != nil {
				return store.Pipeline{}, err
			}
			next := clonePipeline(p)
			if err := s.sealSecrets(ctx, next, prev); err != nil {
				return store.Pipeline{}, err
			}
			next.Version = wire.Ptr(latest.Version + 1)
			def, err := json.Marshal(next)
			if err != nil {
				return store.Pipeline{}, err
			}
			stored = next
			return store.Pipeline{
				Name: p.Name, Version: latest.Version + 1, PipelineType: string(next.PipelineType), ExecutionMode: string(next.ExecutionMode),
				Definition: def, Created: latest.Created, Updated: s.now().UTC().Truncate(time.Millisecond),
			}, nil
		})
		switch {
		case err == nil:
			stored.Version = wire.Ptr(rec.Version)
			s.runHook(ctx, "update", s.after.update, p.Name)
			s.maskSecrets(stored)
			return &wire.UpdatePipelineOutput{Pipeline: stored}, nil
		case errors.Is(err, store.ErrNotFound):
			return nil, s.pipelineNotFound(p.Name)
		case errors.Is(err, store.ErrConflict):
			lastErr = err
			if pinned != nil {
				return nil, wire.Errorf(wire.ErrConcurrentModification, "Pipeline '%s' was updated by another request at the same time; get it again and reapply the change", p.Name)
			}
			// Jittered backoff, so that writers that collided do not collide again.
			select {
			case <-time.After(time.Duration(1+rand.IntN(4<<attempt)) * time.Millisecond):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			continue
		default:
			return nil, internal("update pipeline", err)
		}
	}
	return nil, wire.Errorf(wire.ErrConcurrentModification, "Pipeline '%s' is being updated by other requests; try again (%v)", p.Name, lastErr)
}

func clonePipeline(p *wire.PipelineDeclaration) *wire.PipelineDeclaration {
	b, _ := json.Marshal(p)
	var c wire.PipelineDeclaration
	_ = json.Unmarshal(b, &c)
	return &c
}

// DeletePipeline deletes a pipeline with all its versions and tags. Deleting
// a pipeline that does not exist succeeds, as in CodePipeline.
func (s *Service) DeletePipeline(ctx context.Context, in *wire.DeletePipelineInput) error {
	err := s.store.DeletePipeline(ctx, in.Name)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return internal("delete pipeline", err)
	}
	if err == nil {
		s.count.add(-1)
	}
	return nil
}

const defaultListPipelines = 100

// ListPipelines pages through pipelines in name order.
func (s *Service) ListPipelines(ctx context.Context, in *wire.ListPipelinesInput) (*wire.ListPipelinesOutput, error) {
	limit := defaultListPipelines
	if in.MaxResults != nil {
		limit = *in.MaxResults
	}
	after := ""
	if in.NextToken != "" {
		var err error
		if after, err = decodeToken("pipelines", in.NextToken); err != nil {
			return nil, err
		}
	}
	// One more than asked tells whether there is a next page.
	recs, err := s.store.ListPipelines(ctx, after, limit+1)
	if err != nil {
		return nil, internal("list pipelines", err)
	}
	out := &wire.ListPipelinesOutput{Pipelines: make([]wire.PipelineSummary, 0, min(len(recs), limit))}
	for i, r := range recs {
		if i == limit {
			out.NextToken = encodeToken("pipelines", recs[i-1].Name)
			break
		}
		out.Pipelines = append(out.Pipelines, wire.PipelineSummary{
			Name: r.Name, Version: wire.Ptr(r.Version), PipelineType: wire.PipelineType(r.PipelineType),
			ExecutionMode: wire.ExecutionMode(r.ExecutionMode), Created: wire.TimeOf(r.Created), Updated: wire.TimeOf(r.Updated),
		})
	}
	return out, nil
}

// Tokens are opaque to clients but typed, so that a token of one list
// operation is refused by another with InvalidNextTokenException.
func encodeToken(kind, position string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(kind + "\x00" + position))
}

func decodeToken(kind, token string) (string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err == nil {
		if k, pos, ok := strings.Cut(string(raw), "\x00"); ok && k == kind {
			return pos, nil
		}
	}
	return "", wire.Errorf(wire.ErrInvalidNextToken, "The next token is not valid")
}

func toStoreTags(tags []wire.Tag) []store.Tag {
	out := make([]store.Tag, len(tags))
	for i, t := range tags {
		out[i] = store.Tag{Key: t.Key, Value: t.Value}
	}
	return out
}

// resolveType finds an action type: built in, or custom/third-party in the
// store. Deleted custom types do not resolve.
func (s *Service) resolveType(ctx context.Context, k actiontypes.Key) (*actiontypes.Type, error) {
	if t, ok := s.builtins[k]; ok {
		return t, nil
	}
	if k.Owner == "AWS" {
		return nil, nil
	}
	rec, err := s.store.GetActionType(ctx, store.ActionTypeKey(k))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, internal("get action type", err)
	}
	if rec.Deleted {
		return nil, nil
	}
	return decodeType(rec)
}

// OnHookError sets what happens to an error of AfterCreate or AfterUpdate
// (the server logs it).
func (s *Service) OnHookError(fn func(op, name string, err error)) { s.hookErr = fn }

func (s *Service) runHook(ctx context.Context, op string, hook func(context.Context, string) error, name string) {
	if hook == nil {
		return
	}
	if err := hook(ctx, name); err != nil {
		s.hookErr(op, name, err)
	}
}

// Declaration returns a stored version of a pipeline (0: the latest) with
// its secrets sealed, for the engine. store.ErrNotFound when absent.
func (s *Service) Declaration(ctx context.Context, name string, version int) (*wire.PipelineDeclaration, store.Pipeline, error) {
	rec, err := s.store.GetPipeline(ctx, name, version)
	if err != nil {
		return nil, rec, err
	}
	p, err := decodeDefinition(rec)
	return p, rec, err
}

// DecodePipeline turns a stored version into its declaration (secrets sealed).
func (s *Service) DecodePipeline(rec store.Pipeline) (*wire.PipelineDeclaration, error) {
	return decodeDefinition(rec)
}

// DecodeActionType turns a stored action type into its description.
func (s *Service) DecodeActionType(rec store.ActionType) (*actiontypes.Type, error) {
	return decodeType(rec)
}

// Builtin returns a built-in action type (nil for others).
func (s *Service) Builtin(k actiontypes.Key) *actiontypes.Type { return s.builtins[k] }

// ActionType resolves an action type: built in, or registered and not
// deleted (nil, nil otherwise).
func (s *Service) ActionType(ctx context.Context, k actiontypes.Key) (*actiontypes.Type, error) {
	return s.resolveType(ctx, k)
}
