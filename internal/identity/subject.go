package identity

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/pipelined/pipelined/internal/store"
)

// SubjectTag is the pipeline tag that customizes the sub claim of the
// pipeline's tokens: a comma-separated list of claim keys. The sub is then
// "key:value" for each, joined by colons, in the order given (GitHub
// Actions' customizable subject, which its users asked for most: trust
// policies match on sub, and each team wants other parts in it).
const SubjectTag = "pipelined:oidc-sub-claims"

// DefaultSubjectClaims make the sub of pipelines without SubjectTag:
// "pipeline_name:<pipeline>:stage:<stage>:action:<action>".
var DefaultSubjectClaims = []string{"pipeline_name", "stage", "action"}

// SubjectClaims are the claim keys a sub may be made of.
var SubjectClaims = []string{
	"account_id", "region", "pipeline_id", "pipeline_name", "pipeline_arn", "pipeline_version",
	"pipeline_execution_id", "execution_type", "stage", "action", "action_execution_id", "attempt",
	"action_type", "action_owner", "stage_type", "step_type", "trigger_type", "triggered_by", "context", "job_id",
}

// claimValue is the value of a subject claim key.
func claimValue(c *Claims, key string) (string, bool) {
	switch key {
	case "account_id":
		return c.AccountID, true
	case "region":
		return c.Region, true
	case "pipeline_id":
		return c.PipelineID, true
	case "pipeline_name":
		return c.PipelineName, true
	case "pipeline_arn":
		return c.PipelineARN, true
	case "pipeline_version":
		return strconv.Itoa(c.PipelineVersion), true
	case "pipeline_execution_id":
		return c.PipelineExecutionID, true
	case "execution_type":
		return c.ExecutionType, true
	case "stage":
		return c.Stage, true
	case "action":
		return c.Action, true
	case "action_execution_id":
		return c.ActionExecutionID, true
	case "attempt":
		return strconv.Itoa(c.Attempt), true
	case "action_type":
		return c.ActionType, true
	case "action_owner":
		return c.ActionOwner, true
	case "stage_type":
		return c.StageType, true
	case "step_type":
		return c.StepType, true
	case "trigger_type":
		return c.TriggerType, true
	case "triggered_by":
		return c.TriggeredBy, true
	case "context":
		return c.Context, true
	case "job_id":
		return c.JobID, true
	}
	return "", false
}

// maxSubjectClaims bounds the keys of a custom sub.
const maxSubjectClaims = 10

// ParseSubjectClaims parses SubjectTag's value: a comma-separated list of
// distinct keys of SubjectClaims.
func ParseSubjectClaims(v string) ([]string, error) {
	var keys []string
	for k := range strings.SplitSeq(v, ",") {
		k = strings.TrimSpace(k)
		if !slices.Contains(SubjectClaims, k) {
			return nil, fmt.Errorf("tag %s: %q is not a claim a sub can be made of (one of: %s)", SubjectTag, k, strings.Join(SubjectClaims, ", "))
		}
		if slices.Contains(keys, k) {
			return nil, fmt.Errorf("tag %s: %q is listed twice", SubjectTag, k)
		}
		keys = append(keys, k)
	}
	if len(keys) > maxSubjectClaims {
		return nil, fmt.Errorf("tag %s: at most %d claims", SubjectTag, maxSubjectClaims)
	}
	return keys, nil
}

// subjectKeys reads a pipeline's subject claims (the default without the
// tag). A tag that does not parse fails the request: signing another sub
// than the one the pipeline's owner configured would break their trust
// policy in a confusing way (TagResource refuses such a value; this only
// guards against a value stored before that check existed).
func (s *Service) subjectKeys(ctx context.Context, pipeline string) ([]string, error) {
	tags, err := s.cfg.Store.Tags(ctx, store.PipelineResource(pipeline))
	if err != nil {
		return nil, err
	}
	for _, t := range tags {
		if t.Key == SubjectTag {
			return ParseSubjectClaims(t.Value)
		}
	}
	return DefaultSubjectClaims, nil
}

func subject(c *Claims, keys []string) (string, error) {
	var b strings.Builder
	for i, k := range keys {
		v, ok := claimValue(c, k)
		if !ok {
			return "", fmt.Errorf("identity: unknown subject claim %q", k)
		}
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(k)
		b.WriteByte(':')
		b.WriteString(v)
	}
	return b.String(), nil
}
