package console

import (
	"context"
	"fmt"
	"strings"

	"github.com/pipelined/pipelined/internal/consoleusers"
	"github.com/pipelined/pipelined/internal/wire"
)

// Approval rules beyond roles, set as pipeline tags (as Harness offers):
//
//	pipelined:approvers          who may decide the pipeline's approvals
//	pipelined:approvers:<Stage>  who may decide that stage's (wins over the above)
//	pipelined:separate-approver  "true": whoever started an execution may not
//	                             decide its approvals
//
// An approvers value is a comma-separated list of "user:<name>" and
// "role:<role>" (a role includes the roles above it). The console enforces
// them; PutApprovalResult through the API with root credentials is not
// subject to them (as on AWS, where IAM decides).
const (
	tagApprovers         = "pipelined:approvers"
	tagSeparateApprover  = "pipelined:separate-approver"
	approverUserPrefix   = "user:"
	approverRolePrefix   = "role:"
	approverStageKeySep  = ":"
	separateApproverTrue = "true"
)

func (h *Handler) pipelineARN(name string) string {
	return fmt.Sprintf("arn:aws:codepipeline:%s:%s:%s", h.cfg.Region, h.cfg.AccountID, name)
}

// approvalRules are a pipeline's rules as its tags say.
type approvalRules struct {
	approvers map[string]string // "" (all stages) or a stage → the list
	separate  bool
}

func (h *Handler) rulesOf(ctx context.Context, pipeline string) (approvalRules, error) {
	r := approvalRules{approvers: map[string]string{}}
	token := ""
	for range 10 {
		out, err := h.api.ListTagsForResource(ctx, &wire.ListTagsForResourceInput{ResourceArn: h.pipelineARN(pipeline), NextToken: token})
		if err != nil {
			return r, err
		}
		for _, t := range out.Tags {
			switch {
			case t.Key == tagApprovers:
				r.approvers[""] = t.Value
			case strings.HasPrefix(t.Key, tagApprovers+approverStageKeySep):
				r.approvers[strings.TrimPrefix(t.Key, tagApprovers+approverStageKeySep)] = t.Value
			case t.Key == tagSeparateApprover:
				r.separate = strings.EqualFold(strings.TrimSpace(t.Value), separateApproverTrue)
			}
		}
		if token = out.NextToken; token == "" {
			break
		}
	}
	return r, nil
}

// allows reports whether the approvers list admits the user.
func approverAllowed(list string, s consoleusers.Session) bool {
	for _, e := range strings.Split(list, ",") {
		e = strings.TrimSpace(e)
		switch {
		case strings.HasPrefix(e, approverUserPrefix) && strings.TrimPrefix(e, approverUserPrefix) == s.User.Name:
			return true
		case strings.HasPrefix(e, approverRolePrefix) && s.Role.Allows(consoleusers.Role(strings.TrimPrefix(e, approverRolePrefix))):
			return true
		}
	}
	return false
}

// mayDecide says whether the signed-in user may decide the approval of a
// stage in an execution ("" when allowed, else why not).
func (h *Handler) mayDecide(ctx context.Context, s consoleusers.Session, pipeline, stage string, execution *wire.PipelineExecution) (string, error) {
	r, err := h.rulesOf(ctx, pipeline)
	if err != nil {
		return "", err
	}
	list, ok := r.approvers[stage]
	if !ok {
		list, ok = r.approvers[""]
	}
	if ok && !approverAllowed(list, s) {
		return "This pipeline's approvals in stage " + stage + " are decided by " + list + " (tag " + tagApprovers + ").", nil
	}
	if r.separate && execution != nil && execution.Trigger != nil &&
		execution.Trigger.TriggerDetail == consoleusers.ARN(h.cfg.AccountID, s.User.Name) {
		return "You started this execution, and this pipeline requires someone else to approve it (tag " + tagSeparateApprover + ").", nil
	}
	return "", nil
}
