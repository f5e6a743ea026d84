package console

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pipelined/pipelined/internal/wire"
)

// validated checks an operation's input against the service model, as the
// API's dispatcher does, before the console calls the operation.
func validated(in interface{ Validate(*wire.Validator, string) }) error {
	var v wire.Validator
	in.Validate(&v, "")
	return v.Err()
}

// getPipeline reads a pipeline's declaration with its Go fields filled:
// GetPipeline may answer with the stored JSON only (wire.EncodedPipeline,
// which spares the API a decode), which the console decodes.
func (h *Handler) getPipeline(ctx context.Context, name string, version *int) (*wire.PipelineDeclaration, error) {
	p, err := h.api.GetPipeline(ctx, &wire.GetPipelineInput{Name: name, Version: version})
	if err != nil {
		return nil, err
	}
	if !p.Pipeline.IsEncoded() {
		return p.Pipeline, nil
	}
	b, err := json.Marshal(p.Pipeline)
	if err != nil {
		return nil, err
	}
	var d wire.PipelineDeclaration
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// pageSize is how many rows a list page shows.
const pageSize = 50

// PipelineRow is one row of the pipelines page.
type PipelineRow struct {
	Summary          wire.PipelineSummary
	Latest           *wire.PipelineExecutionSummary
	PendingApprovals int
}

// pipelinesPage lists pipelines by name, 50 a page, with a name filter.
// Without a filter it pages with the API's own keyset tokens, so its cost
// does not grow with the number of pipelines; with one it scans names in
// pages of 1,000 until a page of matches is full.
func (h *Handler) pipelinesPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	token := r.URL.Query().Get("next")
	var rows []PipelineRow
	next := ""
	if q == "" {
		out, err := h.api.ListPipelines(ctx, &wire.ListPipelinesInput{MaxResults: wire.Ptr(pageSize), NextToken: token})
		if err != nil {
			h.fail(w, r, http.StatusBadRequest, h.apiError(err))
			return
		}
		for _, p := range out.Pipelines {
			rows = append(rows, PipelineRow{Summary: p})
		}
		next = out.NextToken
	} else {
		needle := strings.ToLower(q)
		for len(rows) < pageSize {
			out, err := h.api.ListPipelines(ctx, &wire.ListPipelinesInput{MaxResults: wire.Ptr(1000), NextToken: token})
			if err != nil {
				h.fail(w, r, http.StatusBadRequest, h.apiError(err))
				return
			}
			for _, p := range out.Pipelines {
				if strings.Contains(strings.ToLower(p.Name), needle) {
					rows = append(rows, PipelineRow{Summary: p})
				}
			}
			token = out.NextToken
			if token == "" {
				break
			}
		}
		// A page may hold a few more than pageSize matches (the last scanned
		// batch is kept whole), so the next page starts after it.
		next = token
	}
	pending, err := h.pendingByPipeline(ctx)
	if err != nil {
		h.log.Warn("console: counting pending approvals failed", "err", err)
	}
	for i := range rows {
		name := rows[i].Summary.Name
		ex, err := h.api.ListPipelineExecutions(ctx, &wire.ListPipelineExecutionsInput{PipelineName: name, MaxResults: wire.Ptr(1)})
		if err == nil && len(ex.PipelineExecutionSummaries) > 0 {
			rows[i].Latest = &ex.PipelineExecutionSummaries[0]
		}
		if pending != nil {
			rows[i].PendingApprovals = pending[name]
		} else if st, err := h.api.GetPipelineState(ctx, &wire.GetPipelineStateInput{Name: name}); err == nil {
			rows[i].PendingApprovals = len(pendingApprovals(st))
		}
	}
	h.render(w, r, http.StatusOK, "pipelines", "Pipelines", map[string]any{"Rows": rows, "Query": q, "Next": next, "First": r.URL.Query().Get("next") == ""})
}

// pendingByPipeline counts waiting approvals by pipeline in one read
// (nil when the server gives no counter).
func (h *Handler) pendingByPipeline(ctx context.Context) (map[string]int, error) {
	if h.cfg.PendingApprovals == nil {
		return nil, nil
	}
	return h.cfg.PendingApprovals(ctx)
}

// ActionView is an action of the pipeline page: its declaration and state.
type ActionView struct {
	Decl     wire.ActionDeclaration
	State    wire.ActionState
	Status   string
	RunOrder int
	// Approval is set for a manual approval waiting for a decision.
	Approval bool
}

// StageView is a stage of the pipeline page.
type StageView struct {
	Name       string
	Transition *wire.TransitionState
	Latest     *wire.StageExecution
	Actions    []ActionView
	// Failed says the stage's latest execution failed (Retry is offered).
	Failed bool
}

// PipelineView is the pipeline page's data.
type PipelineView struct {
	Name       string
	Decl       *wire.PipelineDeclaration
	Stages     []StageView
	Executions []wire.PipelineExecutionSummary
	Running    []wire.PipelineExecutionSummary
}

func (h *Handler) pipelineView(r *http.Request, name string) (*PipelineView, error) {
	ctx := r.Context()
	decl, err := h.getPipeline(ctx, name, nil)
	if err != nil {
		return nil, err
	}
	st, err := h.api.GetPipelineState(ctx, &wire.GetPipelineStateInput{Name: name})
	if err != nil {
		return nil, err
	}
	ex, err := h.api.ListPipelineExecutions(ctx, &wire.ListPipelineExecutionsInput{PipelineName: name, MaxResults: wire.Ptr(10)})
	if err != nil {
		return nil, err
	}
	v := &PipelineView{Name: name, Decl: decl, Executions: ex.PipelineExecutionSummaries}
	for _, e := range ex.PipelineExecutionSummaries {
		if e.Status == wire.PipelineExecutionStatusInProgress || e.Status == wire.PipelineExecutionStatusStopping {
			v.Running = append(v.Running, e)
		}
	}
	states := map[string]wire.StageState{}
	for _, s := range st.StageStates {
		states[s.StageName] = s
	}
	for _, sd := range decl.Stages {
		ss := states[sd.Name]
		sv := StageView{Name: sd.Name, Transition: ss.InboundTransitionState, Latest: ss.LatestExecution}
		sv.Failed = ss.LatestExecution != nil && ss.LatestExecution.Status == wire.StageExecutionStatusFailed
		actStates := map[string]wire.ActionState{}
		for _, a := range ss.ActionStates {
			actStates[a.ActionName] = a
		}
		for _, ad := range sd.Actions {
			as := actStates[ad.Name]
			av := ActionView{Decl: ad, State: as, RunOrder: max(derefInt(ad.RunOrder), 1)}
			if as.LatestExecution != nil {
				av.Status = string(as.LatestExecution.Status)
				av.Approval = isApproval(ad) && as.LatestExecution.Status == wire.ActionExecutionStatusInProgress && as.LatestExecution.Token != ""
			}
			sv.Actions = append(sv.Actions, av)
		}
		slices.SortStableFunc(sv.Actions, func(a, b ActionView) int { return a.RunOrder - b.RunOrder })
		v.Stages = append(v.Stages, sv)
	}
	return v, nil
}

func isApproval(a wire.ActionDeclaration) bool {
	return a.ActionTypeId != nil && a.ActionTypeId.Category == wire.ActionCategoryApproval
}

// pendingApprovals lists the approval actions of a state waiting for a
// decision (stage, action).
func pendingApprovals(st *wire.GetPipelineStateOutput) [][2]string {
	var out [][2]string
	for _, s := range st.StageStates {
		for _, a := range s.ActionStates {
			if a.LatestExecution != nil && a.LatestExecution.Status == wire.ActionExecutionStatusInProgress && a.LatestExecution.Token != "" {
				out = append(out, [2]string{s.StageName, a.ActionName})
			}
		}
	}
	return out
}

func (h *Handler) notFoundOr(w http.ResponseWriter, r *http.Request, err error) {
	if e, ok := wire.AsError(err); ok && strings.HasSuffix(e.Code, "NotFoundException") {
		h.fail(w, r, http.StatusNotFound, e.Message)
		return
	}
	h.fail(w, r, http.StatusBadRequest, h.apiError(err))
}

func (h *Handler) pipelinePage(w http.ResponseWriter, r *http.Request) {
	v, err := h.pipelineView(r, r.PathValue("name"))
	if err != nil {
		h.notFoundOr(w, r, err)
		return
	}
	h.render(w, r, http.StatusOK, "pipeline", v.Name, v)
}

func (h *Handler) executionsPage(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	out, err := h.api.ListPipelineExecutions(r.Context(), &wire.ListPipelineExecutionsInput{
		PipelineName: name, MaxResults: wire.Ptr(pageSize), NextToken: r.URL.Query().Get("next")})
	if err != nil {
		h.notFoundOr(w, r, err)
		return
	}
	h.render(w, r, http.StatusOK, "executions", name+": executions", map[string]any{
		"Name": name, "Executions": out.PipelineExecutionSummaries, "Next": out.NextToken})
}

// ExecutionView is the execution detail page's data.
type ExecutionView struct {
	Name      string
	Execution *wire.PipelineExecution
	// Stages in the pipeline's order, each with its action executions.
	Stages []ExecutionStage
}

// ExecutionStage is a stage of an execution's timeline.
type ExecutionStage struct {
	Name    string
	Actions []wire.ActionExecutionDetail
}

func (h *Handler) executionPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	name, id := r.PathValue("name"), r.PathValue("id")
	ex, err := h.api.GetPipelineExecution(ctx, &wire.GetPipelineExecutionInput{PipelineName: name, PipelineExecutionId: id})
	if err != nil {
		h.notFoundOr(w, r, err)
		return
	}
	var details []wire.ActionExecutionDetail
	token := ""
	for range 20 { // at most 20 pages of 100 action executions
		out, err := h.api.ListActionExecutions(ctx, &wire.ListActionExecutionsInput{PipelineName: name,
			Filter: &wire.ActionExecutionFilter{PipelineExecutionId: id}, MaxResults: wire.Ptr(100), NextToken: token})
		if err != nil {
			h.notFoundOr(w, r, err)
			return
		}
		details = append(details, out.ActionExecutionDetails...)
		if token = out.NextToken; token == "" {
			break
		}
	}
	slices.SortStableFunc(details, func(a, b wire.ActionExecutionDetail) int {
		return tsTime(a.StartTime).Compare(tsTime(b.StartTime))
	})
	v := ExecutionView{Name: name, Execution: ex.PipelineExecution}
	order := []string{}
	if d, err := h.getPipeline(ctx, name, ex.PipelineExecution.PipelineVersion); err == nil {
		for _, s := range d.Stages {
			order = append(order, s.Name)
		}
	}
	byStage := map[string][]wire.ActionExecutionDetail{}
	for _, d := range details {
		if !slices.Contains(order, d.StageName) {
			order = append(order, d.StageName)
		}
		byStage[d.StageName] = append(byStage[d.StageName], d)
	}
	for _, s := range order {
		v.Stages = append(v.Stages, ExecutionStage{Name: s, Actions: byStage[s]})
	}
	h.render(w, r, http.StatusOK, "execution", name+": execution "+short(id), v)
}

// Approval is a pending approval of the inbox.
type Approval struct {
	Pipeline, Stage, Action string
	Since                   time.Time
	ExecutionID             string
	CustomData              string
}

// maxInboxPipelines bounds how many pipelines the inbox reads.
const maxInboxPipelines = 10000

func (h *Handler) approvalsPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var out []Approval
	// With the store's count, only the pipelines that have approvals
	// waiting are read; otherwise every pipeline's state, up to a bound.
	var names []string
	pending, err := h.pendingByPipeline(ctx)
	if err != nil {
		h.log.Warn("console: counting pending approvals failed", "err", err)
	}
	if pending != nil {
		for name := range pending {
			names = append(names, name)
		}
		slices.Sort(names)
	} else {
		token := ""
		for len(names) < maxInboxPipelines {
			ps, err := h.api.ListPipelines(ctx, &wire.ListPipelinesInput{MaxResults: wire.Ptr(1000), NextToken: token})
			if err != nil {
				h.fail(w, r, http.StatusBadRequest, h.apiError(err))
				return
			}
			for _, p := range ps.Pipelines {
				names = append(names, p.Name)
			}
			if token = ps.NextToken; token == "" {
				break
			}
		}
	}
	{
		for _, name := range names {
			p := wire.PipelineSummary{Name: name}
			st, err := h.api.GetPipelineState(ctx, &wire.GetPipelineStateInput{Name: p.Name})
			if err != nil {
				continue // deleted meanwhile
			}
			for _, sa := range pendingApprovals(st) {
				a := Approval{Pipeline: p.Name, Stage: sa[0], Action: sa[1]}
				for _, s := range st.StageStates {
					if s.StageName != sa[0] {
						continue
					}
					if s.LatestExecution != nil {
						a.ExecutionID = s.LatestExecution.PipelineExecutionId
					}
					for _, as := range s.ActionStates {
						if as.ActionName == sa[1] && as.LatestExecution != nil {
							a.Since = tsTime(as.LatestExecution.LastStatusChange)
						}
					}
				}
				out = append(out, a)
			}
		}
	}
	slices.SortFunc(out, func(a, b Approval) int { return a.Since.Compare(b.Since) })
	h.render(w, r, http.StatusOK, "approvals", "Approvals", map[string]any{"Approvals": out})
}

// ReviewView is the Review dialog's data.
type ReviewView struct {
	Pipeline, Stage, Action string
	Token                   string
	Execution               *wire.PipelineExecution
	CustomData              string
	ExternalEntityLink      string
	Since                   time.Time
	Error                   string
	// Refusal says why the signed-in user may not decide this approval
	// (the pipeline's approval rules); the form is not shown.
	Refusal string
}

// reviewView reads what the Review dialog shows; ok false when the action
// is not an approval waiting for a decision.
func (h *Handler) reviewView(r *http.Request, pipeline, stage, action string) (*ReviewView, bool, error) {
	ctx := r.Context()
	decl, err := h.getPipeline(ctx, pipeline, nil)
	if err != nil {
		return nil, false, err
	}
	st, err := h.api.GetPipelineState(ctx, &wire.GetPipelineStateInput{Name: pipeline})
	if err != nil {
		return nil, false, err
	}
	v := &ReviewView{Pipeline: pipeline, Stage: stage, Action: action}
	for _, sd := range decl.Stages {
		if sd.Name != stage {
			continue
		}
		for _, ad := range sd.Actions {
			if ad.Name == action && isApproval(ad) {
				v.CustomData = ad.Configuration["CustomData"]
				v.ExternalEntityLink = ad.Configuration["ExternalEntityLink"]
			}
		}
	}
	execID := ""
	for _, s := range st.StageStates {
		if s.StageName != stage {
			continue
		}
		if s.LatestExecution != nil {
			execID = s.LatestExecution.PipelineExecutionId
		}
		for _, a := range s.ActionStates {
			if a.ActionName == action && a.LatestExecution != nil && a.LatestExecution.Status == wire.ActionExecutionStatusInProgress {
				v.Token = a.LatestExecution.Token
				v.Since = tsTime(a.LatestExecution.LastStatusChange)
			}
		}
	}
	if v.Token == "" {
		return v, false, nil
	}
	if execID != "" {
		if ex, err := h.api.GetPipelineExecution(ctx, &wire.GetPipelineExecutionInput{PipelineName: pipeline, PipelineExecutionId: execID}); err == nil {
			v.Execution = ex.PipelineExecution
		}
	}
	return v, true, nil
}

func (h *Handler) reviewPage(w http.ResponseWriter, r *http.Request) {
	pipeline, stage, action := r.PathValue("name"), r.PathValue("stage"), r.PathValue("action")
	v, ok, err := h.reviewView(r, pipeline, stage, action)
	if err != nil {
		h.notFoundOr(w, r, err)
		return
	}
	if !ok {
		h.fail(w, r, http.StatusConflict, "Action "+action+" of stage "+stage+" is not an approval waiting for a decision (it was decided, timed out or superseded).")
		return
	}
	v.Error = r.URL.Query().Get("error")
	if v.Refusal, err = h.mayDecide(r.Context(), sessionOf(r), pipeline, stage, v.Execution); err != nil {
		h.fail(w, r, http.StatusInternalServerError, h.apiError(err))
		return
	}
	h.render(w, r, http.StatusOK, "review", "Review "+action, v)
}

func pipelineURL(name string) string { return PathPrefix + "pipelines/" + url.PathEscape(name) }

// decide records an approval's result, with the console user as who
// decided. The token is the one the dialog showed: if the approval was
// superseded meanwhile, the API refuses it (InvalidApprovalToken) and the
// dialog says so, rather than deciding a newer execution's approval that
// the person never saw.
func (h *Handler) decide(w http.ResponseWriter, r *http.Request) {
	pipeline, stage, action := r.PathValue("name"), r.PathValue("stage"), r.PathValue("action")
	status := wire.ApprovalStatus(r.PostFormValue("result"))
	in := &wire.PutApprovalResultInput{PipelineName: pipeline, StageName: stage, ActionName: action, Token: r.PostFormValue("token"),
		Result: &wire.ApprovalResult{Status: status, Summary: r.PostFormValue("summary")}}
	err := validated(in)
	if err == nil {
		err = h.checkRules(r, pipeline, stage)
	}
	if err == nil {
		_, err = h.api.PutApprovalResult(r.Context(), in)
	}
	reviewURL := pipelineURL(pipeline) + "/review/" + url.PathEscape(stage) + "/" + url.PathEscape(action)
	if err != nil {
		msg := h.apiError(err)
		if e, ok := wire.AsError(err); ok && (e.Code == wire.ErrApprovalAlreadyCompleted || e.Code == wire.ErrInvalidApprovalToken) {
			back(w, r, pipelineURL(pipeline), "error", msg)
			return
		}
		back(w, r, reviewURL, "error", msg)
		return
	}
	h.log.Info("console: approval decided", "pipeline", pipeline, "stage", stage, "action", action, "result", status, "user", sessionOf(r).User.Name)
	back(w, r, pipelineURL(pipeline), "done", string(status)+": "+stage+" / "+action)
}

// checkRules refuses a decision the pipeline's approval rules do not
// allow the signed-in user (an AccessDenied the review page shows).
func (h *Handler) checkRules(r *http.Request, pipeline, stage string) error {
	ctx := r.Context()
	var execution *wire.PipelineExecution
	if st, err := h.api.GetPipelineState(ctx, &wire.GetPipelineStateInput{Name: pipeline}); err == nil {
		for _, s := range st.StageStates {
			if s.StageName == stage && s.LatestExecution != nil {
				if ex, err := h.api.GetPipelineExecution(ctx, &wire.GetPipelineExecutionInput{PipelineName: pipeline, PipelineExecutionId: s.LatestExecution.PipelineExecutionId}); err == nil {
					execution = ex.PipelineExecution
				}
			}
		}
	}
	why, err := h.mayDecide(ctx, sessionOf(r), pipeline, stage, execution)
	if err != nil {
		return err
	}
	if why != "" {
		h.log.Warn("console: approval refused by the pipeline's approval rules", "pipeline", pipeline, "stage", stage, "user", sessionOf(r).User.Name)
		return wire.Errorf(wire.ErrAccessDenied, "%s", why)
	}
	return nil
}

// parseVariables reads "NAME=value" lines.
func parseVariables(s string) ([]wire.PipelineVariable, error) {
	var out []wire.PipelineVariable
	for line := range strings.Lines(s) {
		line = strings.TrimRight(line, "\r\n")
		if strings.TrimSpace(line) == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, errors.New("each variable is a line NAME=value; this line is not: " + strconv.Quote(line))
		}
		out = append(out, wire.PipelineVariable{Name: strings.TrimSpace(k), Value: v})
	}
	return out, nil
}

func (h *Handler) release(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	vars, err := parseVariables(r.PostFormValue("variables"))
	if err != nil {
		back(w, r, pipelineURL(name), "error", err.Error())
		return
	}
	in := &wire.StartPipelineExecutionInput{Name: name, Variables: vars}
	var out *wire.StartPipelineExecutionOutput
	if err = validated(in); err == nil {
		out, err = h.api.StartPipelineExecution(r.Context(), in)
	}
	if err != nil {
		back(w, r, pipelineURL(name), "error", h.apiError(err))
		return
	}
	back(w, r, pipelineURL(name), "done", "Started execution "+out.PipelineExecutionId)
}

func (h *Handler) stop(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	abandon := r.PostFormValue("abandon") == "on"
	in := &wire.StopPipelineExecutionInput{PipelineName: name, PipelineExecutionId: r.PostFormValue("execution"), Reason: r.PostFormValue("reason"), Abandon: &abandon}
	err := validated(in)
	if err == nil {
		_, err = h.api.StopPipelineExecution(r.Context(), in)
	}
	if err != nil {
		back(w, r, pipelineURL(name), "error", h.apiError(err))
		return
	}
	how := "Stopping"
	if abandon {
		how = "Abandoning"
	}
	back(w, r, pipelineURL(name), "done", how+" execution "+in.PipelineExecutionId)
}

func (h *Handler) retry(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	mode := wire.StageRetryMode(r.PostFormValue("mode"))
	if mode == "" {
		mode = wire.StageRetryModeFailedActions
	}
	in := &wire.RetryStageExecutionInput{PipelineName: name, StageName: r.PostFormValue("stage"), PipelineExecutionId: r.PostFormValue("execution"), RetryMode: mode}
	err := validated(in)
	if err == nil {
		_, err = h.api.RetryStageExecution(r.Context(), in)
	}
	if err != nil {
		back(w, r, pipelineURL(name), "error", h.apiError(err))
		return
	}
	back(w, r, pipelineURL(name), "done", "Retrying stage "+in.StageName)
}

func (h *Handler) transition(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	stage := r.PostFormValue("stage")
	var err error
	if r.PostFormValue("enable") == "true" {
		in := &wire.EnableStageTransitionInput{PipelineName: name, StageName: stage, TransitionType: wire.StageTransitionTypeInbound}
		if err = validated(in); err == nil {
			err = h.api.EnableStageTransition(r.Context(), in)
		}
	} else {
		in := &wire.DisableStageTransitionInput{PipelineName: name, StageName: stage, TransitionType: wire.StageTransitionTypeInbound, Reason: r.PostFormValue("reason")}
		if err = validated(in); err == nil {
			err = h.api.DisableStageTransition(r.Context(), in)
		}
	}
	if err != nil {
		back(w, r, pipelineURL(name), "error", h.apiError(err))
		return
	}
	back(w, r, pipelineURL(name), "done", "Transition into "+stage+" updated")
}

func (h *Handler) settingsPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	data := map[string]any{}
	if users, err := h.users.List(ctx); err == nil {
		data["Users"] = users
	} else {
		data["UsersError"] = h.apiError(err)
	}
	if f := h.cfg.Settings.WorkerKeys; f != nil {
		ks, err := f(ctx)
		data["WorkerKeys"], data["WorkerKeysError"] = ks, errText(h, err)
	}
	if f := h.cfg.Settings.Clients; f != nil {
		cs, err := f(ctx)
		data["Clients"], data["ClientsError"] = cs, errText(h, err)
	}
	if f := h.cfg.Settings.Connections; f != nil {
		cs, err := f(ctx)
		data["Connections"], data["ConnectionsError"] = cs, errText(h, err)
	}
	if f := h.cfg.Settings.Issuer; f != nil {
		is, err := f(ctx)
		data["Issuer"], data["IssuerError"] = is, errText(h, err)
	}
	h.render(w, r, http.StatusOK, "settings", "Settings", data)
}

func errText(h *Handler, err error) string {
	if err == nil {
		return ""
	}
	return h.apiError(err)
}
