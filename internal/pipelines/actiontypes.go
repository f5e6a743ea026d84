package pipelines

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"time"

	"github.com/pipelined/pipelined/internal/actiontypes"
	"github.com/pipelined/pipelined/internal/store"
	"github.com/pipelined/pipelined/internal/wire"
)

func decodeType(rec store.ActionType) (*actiontypes.Type, error) {
	var t actiontypes.Type
	if err := json.Unmarshal(rec.Definition, &t); err != nil {
		return nil, fmt.Errorf("decode stored action type %v: %w", rec.ActionTypeKey, err)
	}
	return &t, nil
}

func validationErr(format string, args ...any) error {
	return wire.Errorf(wire.ErrValidation, format, args...)
}

// CreateCustomActionType registers an action type of owner Custom. Creating
// one that exists with the identical definition returns it; re-creating a
// deleted one with the identical definition restores it; any other reuse of
// a category/provider/version is refused, as CodePipeline does, so that a
// worker polling for a version never sees its meaning change.
func (s *Service) CreateCustomActionType(ctx context.Context, in *wire.CreateCustomActionTypeInput) (*wire.CreateCustomActionTypeOutput, error) {
	key := actiontypes.Key{Category: string(in.Category), Owner: "Custom", Provider: in.Provider, Version: in.Version}
	t := actiontypes.New(key, in.Settings, in.ConfigurationProperties, in.InputArtifactDetails, in.OutputArtifactDetails)
	if err := actiontypes.Validate(t); err != nil {
		return nil, err
	}
	if err := ValidateTags(in.Tags); err != nil {
		return nil, err
	}
	def, err := json.Marshal(t)
	if err != nil {
		return nil, internal("encode action type", err)
	}
	// Count before the write: two concurrent creates may pass the cap by
	// one, which is harmless for a soft limit and keeps the store simple.
	n, err := s.countCustomTypes(ctx)
	if err != nil {
		return nil, err
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	created := false
	_, err = s.store.PutActionType(ctx, store.ActionTypeKey(key), func(cur *store.ActionType) (*store.ActionType, error) {
		if cur != nil {
			old, err := decodeType(*cur)
			if err != nil {
				return nil, err
			}
			if !sameDefinition(old, t) {
				if cur.Deleted {
					return nil, validationErr("Action type %s was deleted; re-create it with a version that has not been used, or with the identical definition to restore it", key)
				}
				return nil, validationErr("Action type %s already exists with a different definition; register the change under a new version", key)
			}
			if !cur.Deleted {
				return nil, nil // identical and present: nothing to do
			}
			return &store.ActionType{ActionTypeKey: cur.ActionTypeKey, Definition: cur.Definition, Created: cur.Created, Updated: now}, nil
		}
		if n >= s.maxTypes {
			return nil, wire.Errorf(wire.ErrLimitExceeded, "The account already has %d custom action types, the most this server allows", n)
		}
		created = true
		return &store.ActionType{ActionTypeKey: store.ActionTypeKey(key), Definition: def, Created: now, Updated: now}, nil
	})
	if err != nil {
		return nil, internal("create action type", err)
	}
	res := store.ActionTypeResource(store.ActionTypeKey(key))
	if created && len(in.Tags) > 0 {
		if err := s.store.UpdateTags(ctx, res, func([]store.Tag) ([]store.Tag, error) { return toStoreTags(in.Tags), nil }); err != nil {
			return nil, internal("tag action type", err)
		}
	}
	tags, err := s.store.Tags(ctx, res)
	if err != nil {
		return nil, internal("get tags", err)
	}
	return &wire.CreateCustomActionTypeOutput{ActionType: &t.ActionType, Tags: fromStoreTags(tags)}, nil
}

func sameDefinition(a, b *actiontypes.Type) bool {
	return reflect.DeepEqual(a.ActionType, b.ActionType)
}

func (s *Service) countCustomTypes(ctx context.Context) (int, error) {
	n := 0
	var after *store.ActionTypeKey
	for {
		page, err := s.store.ListActionTypes(ctx, "Custom", after, 100)
		if err != nil {
			return 0, internal("count action types", err)
		}
		n += len(page)
		if len(page) < 100 {
			return n, nil
		}
		after = &page[len(page)-1].ActionTypeKey
	}
}

// DeleteCustomActionType marks a custom action type deleted. Pipelines can no
// longer use it and workers can no longer poll for it; the same version can
// only be re-created identical, which restores it.
func (s *Service) DeleteCustomActionType(ctx context.Context, in *wire.DeleteCustomActionTypeInput) error {
	key := store.ActionTypeKey{Category: string(in.Category), Owner: "Custom", Provider: in.Provider, Version: in.Version}
	_, err := s.store.PutActionType(ctx, key, func(cur *store.ActionType) (*store.ActionType, error) {
		if cur == nil || cur.Deleted {
			return nil, nil
		}
		next := *cur
		next.Deleted = true
		next.Updated = s.now().UTC().Truncate(time.Millisecond)
		return &next, nil
	})
	if err != nil {
		return internal("delete action type", err)
	}
	return nil
}

const actionTypesPage = 100

// keyLess orders action types as the store does (category, owner,
// provider, version, byte-wise), so that the built-ins merge into the
// store's pages at the right places.
func keyLess(a, b actiontypes.Key) bool {
	if a.Category != b.Category {
		return a.Category < b.Category
	}
	if a.Owner != b.Owner {
		return a.Owner < b.Owner
	}
	if a.Provider != b.Provider {
		return a.Provider < b.Provider
	}
	return a.Version < b.Version
}

// ListActionTypes lists built-in and registered action types, ordered by
// category, owner, provider and version.
func (s *Service) ListActionTypes(ctx context.Context, in *wire.ListActionTypesInput) (*wire.ListActionTypesOutput, error) {
	var after *actiontypes.Key
	if in.NextToken != "" {
		pos, err := decodeToken("actiontypes", in.NextToken)
		if err != nil {
			return nil, err
		}
		var k actiontypes.Key
		if json.Unmarshal([]byte(pos), &k) != nil {
			return nil, wire.Errorf(wire.ErrInvalidNextToken, "The next token is not valid")
		}
		after = &k
	}
	if in.RegionFilter != "" && in.RegionFilter != s.region {
		return &wire.ListActionTypesOutput{ActionTypes: []wire.ActionType{}}, nil
	}
	owner := string(in.ActionOwnerFilter)
	var all []*actiontypes.Type
	if owner == "" || owner == "AWS" {
		for _, t := range actiontypes.Builtins() {
			if after == nil || keyLess(*after, actiontypes.KeyOf(t.Id)) {
				all = append(all, t)
			}
		}
	}
	if owner != "AWS" {
		// The store orders by the same key, so its first page after the
		// cursor, merged with the built-ins, holds the next page.
		var storeAfter *store.ActionTypeKey
		if after != nil {
			sk := store.ActionTypeKey(*after)
			storeAfter = &sk
		}
		recs, err := s.store.ListActionTypes(ctx, owner, storeAfter, actionTypesPage+1)
		if err != nil {
			return nil, internal("list action types", err)
		}
		for _, r := range recs {
			t, err := decodeType(r)
			if err != nil {
				return nil, err
			}
			all = append(all, t)
		}
	}
	sort.Slice(all, func(i, j int) bool { return keyLess(actiontypes.KeyOf(all[i].Id), actiontypes.KeyOf(all[j].Id)) })
	out := &wire.ListActionTypesOutput{ActionTypes: make([]wire.ActionType, 0, min(len(all), actionTypesPage))}
	for i, t := range all {
		if i == actionTypesPage {
			last, _ := json.Marshal(actiontypes.KeyOf(all[i-1].Id))
			out.NextToken = encodeToken("actiontypes", string(last))
			break
		}
		out.ActionTypes = append(out.ActionTypes, t.ActionType)
	}
	return out, nil
}

// GetActionType describes an action type in the newer ActionTypeDeclaration
// shape.
func (s *Service) GetActionType(ctx context.Context, in *wire.GetActionTypeInput) (*wire.GetActionTypeOutput, error) {
	key := actiontypes.Key{Category: string(in.Category), Owner: in.Owner, Provider: in.Provider, Version: in.Version}
	t, err := s.resolveType(ctx, key)
	if err != nil {
		return nil, err
	}
	if t == nil {
		return nil, wire.Errorf(wire.ErrActionTypeNotFound, "Action type %s does not exist", key)
	}
	decl := &wire.ActionTypeDeclaration{
		Description: t.Description,
		Id:          &wire.ActionTypeIdentifier{Category: in.Category, Owner: in.Owner, Provider: in.Provider, Version: in.Version},
		Executor: &wire.ActionTypeExecutor{
			Type:          wire.ExecutorTypeJobWorker,
			Configuration: &wire.ExecutorConfiguration{JobWorkerExecutorConfiguration: &wire.JobWorkerExecutorConfiguration{}},
		},
		InputArtifactDetails:  artifactDetails(t.InputArtifactDetails),
		OutputArtifactDetails: artifactDetails(t.OutputArtifactDetails),
		Properties:            make([]wire.ActionTypeProperty, 0, len(t.ActionConfigurationProperties)),
	}
	if t.JobTimeoutMinutes > 0 {
		decl.Executor.JobTimeout = wire.Ptr(t.JobTimeoutMinutes * 60)
	}
	if t.Executor != nil { // set by UpdateActionType (updateactiontype.go)
		decl.Executor = t.Executor
	}
	decl.Permissions = t.Permissions
	for _, p := range t.ActionConfigurationProperties {
		decl.Properties = append(decl.Properties, wire.ActionTypeProperty{
			Name: p.Name, Description: p.Description, Key: boolOr(p.Key), NoEcho: boolOr(p.Secret),
			Optional: wire.Ptr(p.Required == nil || !*p.Required), Queryable: boolOr(p.Queryable),
		})
	}
	if st := t.Settings; st != nil {
		decl.Urls = &wire.ActionTypeUrls{
			ConfigurationUrl: st.ThirdPartyConfigurationUrl, EntityUrlTemplate: st.EntityUrlTemplate,
			ExecutionUrlTemplate: st.ExecutionUrlTemplate, RevisionUrlTemplate: st.RevisionUrlTemplate,
		}
	}
	return &wire.GetActionTypeOutput{ActionType: decl}, nil
}

func boolOr(b *bool) *bool {
	if b == nil {
		return wire.Ptr(false)
	}
	return b
}

func artifactDetails(d *wire.ArtifactDetails) *wire.ActionTypeArtifactDetails {
	min, max := actiontypes.Counts(d)
	return &wire.ActionTypeArtifactDetails{MinimumCount: wire.Ptr(min), MaximumCount: wire.Ptr(max)}
}
