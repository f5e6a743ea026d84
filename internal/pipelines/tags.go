package pipelines

import (
	"context"
	"errors"
	"strings"

	"github.com/pipelined/pipelined/internal/store"
	"github.com/pipelined/pipelined/internal/wire"
)

// resourceOf maps a resource ARN to the store's resource key, checking that
// the resource exists. Taggable resources are pipelines and custom action
// types (webhooks are not served).
func (s *Service) resourceOf(ctx context.Context, arn string) (string, error) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "codepipeline" || parts[5] == "" {
		return "", wire.Errorf(wire.ErrInvalidArn, "The ARN '%s' is not a CodePipeline resource ARN", arn)
	}
	notFound := wire.Errorf(wire.ErrResourceNotFound, "The resource with the ARN '%s' does not exist", arn)
	if parts[3] != s.region || parts[4] != s.account {
		return "", notFound
	}
	res := parts[5]
	if rest, ok := strings.CutPrefix(res, "actiontype:"); ok {
		f := strings.Split(rest, "/")
		if len(f) != 4 {
			return "", wire.Errorf(wire.ErrInvalidArn, "The ARN '%s' is not a valid action type ARN", arn)
		}
		key := store.ActionTypeKey{Owner: f[0], Category: f[1], Provider: f[2], Version: f[3]}
		t, err := s.store.GetActionType(ctx, key)
		if errors.Is(err, store.ErrNotFound) || (err == nil && t.Deleted) {
			return "", notFound
		}
		if err != nil {
			return "", internal("get action type", err)
		}
		return store.ActionTypeResource(key), nil
	}
	if strings.ContainsAny(res, ":/") {
		return "", notFound // webhooks and other resource types
	}
	if _, err := s.store.GetPipeline(ctx, res, 0); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return "", notFound
		}
		return "", internal("get pipeline", err)
	}
	return store.PipelineResource(res), nil
}

// TagResource adds or overwrites tags of a resource.
func (s *Service) TagResource(ctx context.Context, in *wire.TagResourceInput) (*wire.TagResourceOutput, error) {
	res, err := s.resourceOf(ctx, in.ResourceArn)
	if err != nil {
		return nil, err
	}
	if err := ValidateTags(in.Tags); err != nil {
		return nil, err
	}
	err = s.store.UpdateTags(ctx, res, func(cur []store.Tag) ([]store.Tag, error) {
		merged := map[string]string{}
		for _, t := range cur {
			merged[t.Key] = t.Value
		}
		for _, t := range in.Tags {
			merged[t.Key] = t.Value
		}
		if len(merged) > maxTags {
			return nil, wire.Errorf(wire.ErrTooManyTags, "A resource can have at most %d tags; this request would give it %d", maxTags, len(merged))
		}
		out := make([]store.Tag, 0, len(merged))
		for k, v := range merged {
			out = append(out, store.Tag{Key: k, Value: v})
		}
		return out, nil
	})
	if err != nil {
		return nil, internal("tag resource", err)
	}
	return &wire.TagResourceOutput{}, nil
}

// UntagResource removes tags by key; keys the resource does not have are ignored.
func (s *Service) UntagResource(ctx context.Context, in *wire.UntagResourceInput) (*wire.UntagResourceOutput, error) {
	res, err := s.resourceOf(ctx, in.ResourceArn)
	if err != nil {
		return nil, err
	}
	for _, k := range in.TagKeys {
		if strings.HasPrefix(strings.ToLower(k), "aws:") {
			return nil, wire.Errorf(wire.ErrInvalidTags, "Tag key '%s' uses the reserved prefix 'aws:'", k)
		}
	}
	drop := map[string]bool{}
	for _, k := range in.TagKeys {
		drop[k] = true
	}
	err = s.store.UpdateTags(ctx, res, func(cur []store.Tag) ([]store.Tag, error) {
		out := cur[:0:0]
		for _, t := range cur {
			if !drop[t.Key] {
				out = append(out, t)
			}
		}
		return out, nil
	})
	if err != nil {
		return nil, internal("untag resource", err)
	}
	return &wire.UntagResourceOutput{}, nil
}

const defaultTagsPage = 50

// ListTagsForResource pages through a resource's tags in key order.
func (s *Service) ListTagsForResource(ctx context.Context, in *wire.ListTagsForResourceInput) (*wire.ListTagsForResourceOutput, error) {
	res, err := s.resourceOf(ctx, in.ResourceArn)
	if err != nil {
		return nil, err
	}
	after := ""
	if in.NextToken != "" {
		if after, err = decodeToken("tags", in.NextToken); err != nil {
			return nil, err
		}
	}
	limit := defaultTagsPage
	if in.MaxResults != nil {
		limit = *in.MaxResults
	}
	tags, err := s.store.Tags(ctx, res)
	if err != nil {
		return nil, internal("list tags", err)
	}
	out := &wire.ListTagsForResourceOutput{Tags: []wire.Tag{}}
	for _, t := range tags {
		if in.NextToken != "" && t.Key <= after {
			continue
		}
		if len(out.Tags) == limit {
			out.NextToken = encodeToken("tags", out.Tags[len(out.Tags)-1].Key)
			break
		}
		out.Tags = append(out.Tags, wire.Tag{Key: t.Key, Value: t.Value})
	}
	return out, nil
}

func fromStoreTags(tags []store.Tag) []wire.Tag {
	out := make([]wire.Tag, len(tags))
	for i, t := range tags {
		out[i] = wire.Tag{Key: t.Key, Value: t.Value}
	}
	return out
}
