package server_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline/types"

	"github.com/pipelined/pipelined/internal/admin"
	"github.com/pipelined/pipelined/internal/server"
	"github.com/pipelined/pipelined/internal/server/servertest"
)

// browser is a console user's HTTP client: a cookie jar, no redirects
// followed (the tests look at them).
type browser struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newBrowser(t *testing.T, srv *servertest.Instance) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: srv.URL, c: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) get(path string) (int, string, http.Header) {
	b.t.Helper()
	resp, err := b.c.Get(b.base + path)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

func (b *browser) post(path string, form url.Values, header map[string]string) (int, http.Header) {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, b.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header
}

func (b *browser) signIn(name, password string) {
	b.t.Helper()
	st, h := b.post("/console/signin", url.Values{"name": {name}, "password": {password}, "next": {"/console/approvals"}}, nil)
	if st != http.StatusSeeOther || h.Get("Location") != "/console/approvals" {
		b.t.Fatalf("sign-in of %s: %d to %q", name, st, h.Get("Location"))
	}
}

var csrfField = regexp.MustCompile(`name="_csrf" value="([^"]+)"`)

func (b *browser) csrf() string {
	b.t.Helper()
	_, body, _ := b.get("/console/pipelines")
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		b.t.Fatal("no CSRF token on the pipelines page")
	}
	return m[1]
}

func createConsoleUser(t *testing.T, srv *servertest.Instance, name, role string) string {
	t.Helper()
	adm := &admin.Client{Endpoint: srv.URL, Region: servertest.Region, HTTP: srv.HTTP,
		Credentials: credentials.NewStaticCredentialsProvider(servertest.AccessKeyID, servertest.SecretAccessKey, "")}
	out, err := adm.CreateConsoleUser(t.Context(), &admin.CreateConsoleUserInput{Name: name, Role: role})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.GeneratedPassword) < 16 || out.ConsoleUser.Role != role {
		t.Fatalf("created %+v", out)
	}
	return out.GeneratedPassword
}

// waitApproval waits until the pipeline's Gate waits for a decision.
func waitApproval(t *testing.T, c *codepipeline.Client, name string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		st, err := c.GetPipelineState(t.Context(), &codepipeline.GetPipelineStateInput{Name: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range st.StageStates {
			for _, a := range s.ActionStates {
				if aws.ToString(a.ActionName) == "Gate" && a.LatestExecution != nil && a.LatestExecution.Status == types.ActionExecutionStatusInProgress && a.LatestExecution.Token != nil {
					return
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the approval never started waiting")
}

func gateState(t *testing.T, c *codepipeline.Client, name string) *types.ActionExecution {
	t.Helper()
	st, err := c.GetPipelineState(t.Context(), &codepipeline.GetPipelineStateInput{Name: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st.StageStates {
		for _, a := range s.ActionStates {
			if aws.ToString(a.ActionName) == "Gate" {
				return a.LatestExecution
			}
		}
	}
	return nil
}

// TestConsoleApprovalFlow: sign-in, roles, CSRF and cross-origin refusal,
// escaping of stored values, and an approval decided in the console that
// the API records as the console user's.
func TestConsoleApprovalFlow(t *testing.T) {
	srv := servertest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := srv.Client()
	registerTestTypes(t, c)
	w := &worker{c: c}
	go w.run(ctx, t)

	const evil = `<script>alert("x")</script>`
	p := runPipeline("web-app", "")
	gate := &p.Stages[2].Actions[0]
	gate.Configuration = map[string]string{"CustomData": "Check the release notes " + evil, "ExternalEntityLink": "javascript:alert(1)"}
	if _, err := c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: p}); err != nil {
		t.Fatal(err)
	}
	approverPW := createConsoleUser(t, srv, "bob", "approver")
	viewerPW := createConsoleUser(t, srv, "vic", "viewer")

	anon := newBrowser(t, srv)
	if st, _, h := anon.get("/console/pipelines"); st != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/console/signin?next=") {
		t.Fatalf("anonymous pipelines page: %d to %q, want a redirect to sign-in", st, h.Get("Location"))
	}
	if st, _ := anon.post("/console/signin", url.Values{"name": {"bob"}, "password": {"not the password"}}, nil); st != http.StatusUnauthorized {
		t.Errorf("wrong password: %d, want 401", st)
	}
	if st, _ := anon.post("/console/pipelines/web-app/release", url.Values{}, nil); st != http.StatusUnauthorized {
		t.Errorf("anonymous release: %d, want 401", st)
	}

	waitApproval(t, c, "web-app")
	bob := newBrowser(t, srv)
	bob.signIn("bob", approverPW)
	vic := newBrowser(t, srv)
	vic.signIn("vic", viewerPW)

	// The inbox and the pipeline page show the waiting approval.
	_, inbox, hdr := bob.get("/console/approvals")
	if !strings.Contains(inbox, "web-app") || !strings.Contains(inbox, "/console/pipelines/web-app/review/Approve/Gate") {
		t.Fatalf("approvals inbox does not list web-app's Gate:\n%s", inbox)
	}
	if csp := hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}
	_, review, _ := bob.get("/console/pipelines/web-app/review/Approve/Gate")
	if strings.Contains(review, evil) || !strings.Contains(review, "&lt;script&gt;") {
		t.Errorf("the review page does not escape CustomData:\n%s", review)
	}
	if strings.Contains(review, `href="javascript:`) {
		t.Error("the review page links a javascript: URL")
	}
	if strings.Contains(review, "s3cr3t-build-token") {
		t.Error("the review page shows a secret configuration value")
	}
	token := regexp.MustCompile(`name="token" value="([^"]+)"`).FindStringSubmatch(review)
	if token == nil {
		t.Fatal("the review form has no approval token")
	}

	// A viewer sees no Review button and cannot open or post the review.
	_, vpage, _ := vic.get("/console/pipelines/web-app")
	if strings.Contains(vpage, "data-review") || strings.Contains(vpage, "/release") {
		t.Error("a viewer's pipeline page offers Review or Release")
	}
	if st, _, _ := vic.get("/console/pipelines/web-app/review/Approve/Gate"); st != http.StatusForbidden {
		t.Errorf("viewer's review page: %d, want 403", st)
	}
	form := url.Values{"token": {token[1]}, "result": {"Approved"}, "summary": {"forged"}, "_csrf": {vic.csrf()}}
	if st, _ := vic.post("/console/pipelines/web-app/review/Approve/Gate", form, nil); st != http.StatusForbidden {
		t.Errorf("viewer's forged approval: %d, want 403", st)
	}
	// The approver without a CSRF token, with another session's token, or
	// from another origin, is refused.
	form.Set("_csrf", "")
	if st, _ := bob.post("/console/pipelines/web-app/review/Approve/Gate", form, nil); st != http.StatusForbidden {
		t.Errorf("approval without CSRF token: %d, want 403", st)
	}
	form.Set("_csrf", vic.csrf())
	if st, _ := bob.post("/console/pipelines/web-app/review/Approve/Gate", form, nil); st != http.StatusForbidden {
		t.Errorf("approval with another session's CSRF token: %d, want 403", st)
	}
	form.Set("_csrf", bob.csrf())
	if st, _ := bob.post("/console/pipelines/web-app/review/Approve/Gate", form, map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}); st != http.StatusForbidden {
		t.Errorf("cross-origin approval: %d, want 403", st)
	}
	if g := gateState(t, c, "web-app"); g.Status != types.ActionExecutionStatusInProgress {
		t.Fatalf("a refused request decided the approval: %s", g.Status)
	}

	// The approver decides.
	form.Set("summary", "LGTM from the console")
	st, h := bob.post("/console/pipelines/web-app/review/Approve/Gate", form, nil)
	if st != http.StatusSeeOther || !strings.Contains(h.Get("Location"), "done=") {
		t.Fatalf("approval: %d to %q", st, h.Get("Location"))
	}
	g := gateState(t, c, "web-app")
	if g.Status != types.ActionExecutionStatusSucceeded || aws.ToString(g.Summary) != "LGTM from the console" ||
		aws.ToString(g.LastUpdatedBy) != "arn:aws:iam::"+servertest.AccountID+":user/console/bob" {
		t.Errorf("after the console approval: status %s, summary %q, by %q", g.Status, aws.ToString(g.Summary), aws.ToString(g.LastUpdatedBy))
	}
	// Deciding again shows the API's error.
	st, h = bob.post("/console/pipelines/web-app/review/Approve/Gate", form, nil)
	if loc, _ := url.QueryUnescape(h.Get("Location")); st != http.StatusSeeOther || !strings.Contains(loc, "error=") {
		t.Errorf("second decision: %d to %q, want a redirect with the API's error", st, loc)
	}

	// Settings are for admins only; sign-out ends the session.
	if st, _, _ := bob.get("/console/settings"); st != http.StatusForbidden {
		t.Errorf("approver's settings page: %d, want 403", st)
	}
	if st, _ := bob.post("/console/signout", url.Values{"_csrf": {bob.csrf()}}, nil); st != http.StatusSeeOther {
		t.Errorf("sign-out: %d", st)
	}
	if st, _, _ := bob.get("/console/approvals"); st != http.StatusSeeOther {
		t.Errorf("after sign-out: %d, want a redirect to sign-in", st)
	}
}

// TestConsolePages renders every page for an admin, including an
// execution's timeline and the settings, and checks a disabled user is
// signed out at once.
func TestConsolePages(t *testing.T) {
	srv := servertest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := srv.Client()
	registerTestTypes(t, c)
	go (&worker{c: c}).run(ctx, t)
	if _, err := c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: runPipeline("pages", "")}); err != nil {
		t.Fatal(err)
	}
	waitApproval(t, c, "pages")
	pw := createConsoleUser(t, srv, "alice", "admin")
	b := newBrowser(t, srv)
	b.signIn("alice", pw)
	ex, err := c.ListPipelineExecutions(ctx, &codepipeline.ListPipelineExecutionsInput{PipelineName: aws.String("pages")})
	if err != nil || len(ex.PipelineExecutionSummaries) == 0 {
		t.Fatal(err)
	}
	id := aws.ToString(ex.PipelineExecutionSummaries[0].PipelineExecutionId)
	for path, want := range map[string][]string{
		"/console/pipelines":                           {"pages", "1 waiting"},
		"/console/pipelines?q=PAG":                     {"pages"},
		"/console/pipelines?q=nomatch":                 {"No pipeline name contains"},
		"/console/pipelines/pages":                     {"Checkout", "Compile", "Gate", "Release change", "Disable transition"},
		"/console/pipelines/pages/executions":          {id},
		"/console/pipelines/pages/executions/" + id:    {"Timeline", "Compile", "Succeeded"},
		"/console/settings":                            {"alice", "Console users", "OIDC issuer"},
		"/console/pipelines/pages/review/Approve/Gate": {"Approve", "Reject"},
	} {
		st, body, _ := b.get(path)
		if st != http.StatusOK {
			t.Errorf("%s: HTTP %d", path, st)
			continue
		}
		for _, w := range want {
			if !strings.Contains(body, w) {
				t.Errorf("%s does not show %q", path, w)
			}
		}
		if strings.Contains(body, "s3cr3t-build-token") {
			t.Errorf("%s shows a secret configuration value", path)
		}
	}
	if st, _, _ := b.get("/console/pipelines/nope"); st != http.StatusNotFound {
		t.Errorf("unknown pipeline: %d, want 404", st)
	}

	// Disabling a user ends their session at once.
	adm := &admin.Client{Endpoint: srv.URL, Region: servertest.Region, HTTP: srv.HTTP,
		Credentials: credentials.NewStaticCredentialsProvider(servertest.AccessKeyID, servertest.SecretAccessKey, "")}
	yes := true
	if _, err := adm.UpdateConsoleUser(ctx, "alice", &admin.UpdateConsoleUserInput{Disabled: &yes}); err != nil {
		t.Fatal(err)
	}
	if st, _, _ := b.get("/console/pipelines"); st != http.StatusSeeOther {
		t.Errorf("a disabled user's page: %d, want a redirect to sign-in", st)
	}
	var ae *admin.APIError
	if _, err := adm.CreateConsoleUser(ctx, &admin.CreateConsoleUserInput{Name: "alice", Role: "viewer"}); !errors.As(err, &ae) || ae.Status != http.StatusConflict {
		t.Errorf("creating a taken name: %v, want 409", err)
	}
	if _, err := adm.CreateConsoleUser(ctx, &admin.CreateConsoleUserInput{Name: "x", Role: "root", Password: "short"}); !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || strings.Contains(ae.Message, "short") {
		t.Errorf("invalid user: %v, want a 400 that does not echo the password", err)
	}
}

// TestConsoleLiveUpdates: an open pipeline page's event stream sends the
// new stages when the pipeline changes, pushed by the server.
func TestConsoleLiveUpdates(t *testing.T) {
	// No recheck within the test: every update must be pushed.
	srv := servertest.Start(t, func(c *server.Config) { c.ConsoleLiveRecheck = time.Hour })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := srv.Client()
	registerTestTypes(t, c)
	go (&worker{c: c}).run(ctx, t)
	// No secret in this pipeline: GetPipeline answers it from the stored
	// JSON (wire.EncodedPipeline), which the console must decode.
	p := runPipeline("live", "")
	delete(p.Stages[1].Actions[1].Configuration, "Token")
	if _, err := c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: p}); err != nil {
		t.Fatal(err)
	}
	waitApproval(t, c, "live")
	pw := createConsoleUser(t, srv, "olga", "operator")
	b := newBrowser(t, srv)
	b.signIn("olga", pw)

	resp, err := b.c.Get(srv.URL + "/console/pipelines/live/live")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type = %q", ct)
	}
	events := make(chan string, 16)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var ev strings.Builder
		for sc.Scan() {
			line := sc.Text()
			if line == "" {
				if ev.Len() > 0 {
					events <- ev.String()
				}
				ev.Reset()
				continue
			}
			ev.WriteString(line + "\n")
		}
	}()
	next := func(what string) string {
		t.Helper()
		for {
			select {
			case e, ok := <-events:
				if !ok {
					t.Fatalf("stream ended waiting for %s", what)
				}
				if strings.Contains(e, "event: update") {
					return e
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("no update for %s within 10s", what)
			}
		}
	}
	first := next("the first render")
	if !strings.Contains(first, "<strong>Gate</strong>") || !strings.Contains(first, "<strong>Compile</strong>") || !strings.Contains(first, "InProgress") {
		t.Fatalf("first update does not show the waiting Gate:\n%s", first)
	}
	// Disabling a transition through the API reaches the open page.
	if _, err := c.DisableStageTransition(ctx, &codepipeline.DisableStageTransitionInput{PipelineName: aws.String("live"),
		StageName: aws.String("Ship"), TransitionType: types.StageTransitionTypeInbound, Reason: aws.String("freeze for the audit")}); err != nil {
		t.Fatal(err)
	}
	upd := next("the disabled transition")
	for !strings.Contains(upd, "freeze for the audit") {
		upd = next("the disabled transition")
	}
	tok := gateToken(t, c, "live")
	if _, err := c.PutApprovalResult(ctx, &codepipeline.PutApprovalResultInput{PipelineName: aws.String("live"), StageName: aws.String("Approve"), ActionName: aws.String("Gate"),
		Token: aws.String(tok), Result: &types.ApprovalResult{Status: types.ApprovalStatusApproved, Summary: aws.String("approved through the API")}}); err != nil {
		t.Fatal(err)
	}
	for upd = next("the approval"); !strings.Contains(upd, "approved through the API"); upd = next("the approval") {
	}
}

func gateToken(t *testing.T, c *codepipeline.Client, name string) string {
	t.Helper()
	g := gateState(t, c, name)
	if g == nil || g.Token == nil {
		t.Fatal("no approval token")
	}
	return aws.ToString(g.Token)
}

// waitApprovalOf waits until the Gate waits for a decision in an execution
// other than the ones given, and returns that execution's id.
func waitApprovalOf(t *testing.T, c *codepipeline.Client, name string, not ...string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		st, err := c.GetPipelineState(t.Context(), &codepipeline.GetPipelineStateInput{Name: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range st.StageStates {
			if aws.ToString(s.StageName) != "Approve" || s.LatestExecution == nil {
				continue
			}
			id := aws.ToString(s.LatestExecution.PipelineExecutionId)
			for _, a := range s.ActionStates {
				if a.LatestExecution != nil && a.LatestExecution.Status == types.ActionExecutionStatusInProgress && a.LatestExecution.Token != nil && !slices.Contains(not, id) {
					return id
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("no approval started waiting")
	return ""
}

// TestConsoleApprovalRules: the pipeline's tags name who may decide a
// stage's approvals, and that whoever started an execution may not approve
// it; the console enforces both.
func TestConsoleApprovalRules(t *testing.T) {
	srv := servertest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := srv.Client()
	registerTestTypes(t, c)
	go (&worker{c: c}).run(ctx, t)
	if _, err := c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: runPipeline("ruled", ""), Tags: []types.Tag{
		{Key: aws.String("pipelined:approvers:Approve"), Value: aws.String("user:carl, role:admin")},
		{Key: aws.String("pipelined:separate-approver"), Value: aws.String("true")},
	}}); err != nil {
		t.Fatal(err)
	}
	bob, carl, dave := newBrowser(t, srv), newBrowser(t, srv), newBrowser(t, srv)
	bob.signIn("bob", createConsoleUser(t, srv, "bob", "approver"))
	carl.signIn("carl", createConsoleUser(t, srv, "carl", "operator"))
	dave.signIn("dave", createConsoleUser(t, srv, "dave", "admin"))
	first := waitApprovalOf(t, c, "ruled")
	const review = "/console/pipelines/ruled/review/Approve/Gate"
	token := func(b *browser) string {
		_, page, _ := b.get(review)
		m := regexp.MustCompile(`name="token" value="([^"]+)"`).FindStringSubmatch(page)
		if m == nil {
			return ""
		}
		return m[1]
	}
	// bob is an approver, but not one of this stage's.
	_, page, _ := bob.get(review)
	if !strings.Contains(page, "decided by user:carl, role:admin") || strings.Contains(page, `value="Approved"`) {
		t.Errorf("bob's review page does not refuse him:\n%s", page)
	}
	tok := token(carl)
	form := url.Values{"token": {tok}, "result": {"Approved"}, "summary": {"bob tries"}, "_csrf": {bob.csrf()}}
	if st, h := bob.post(review, form, nil); st != http.StatusSeeOther || !strings.Contains(h.Get("Location"), "error=") {
		t.Errorf("bob's approval: %d to %q, want the rules' refusal", st, h.Get("Location"))
	}
	if g := gateState(t, c, "ruled"); g.Status != types.ActionExecutionStatusInProgress {
		t.Fatalf("bob decided the approval: %s", g.Status)
	}
	// carl may: root started this execution.
	form.Set("_csrf", carl.csrf())
	form.Set("summary", "carl approves")
	if st, h := carl.post(review, form, nil); st != http.StatusSeeOther || !strings.Contains(h.Get("Location"), "done=") {
		t.Fatalf("carl's approval: %d to %q", st, h.Get("Location"))
	}
	// carl releases a change; he may not approve his own execution, dave
	// (an admin) may.
	if st, h := carl.post("/console/pipelines/ruled/release", url.Values{"_csrf": {carl.csrf()}}, nil); st != http.StatusSeeOther || !strings.Contains(h.Get("Location"), "done=") {
		t.Fatalf("carl's release: %d to %q", st, h.Get("Location"))
	}
	second := waitApprovalOf(t, c, "ruled", first)
	ex, err := c.GetPipelineExecution(ctx, &codepipeline.GetPipelineExecutionInput{PipelineName: aws.String("ruled"), PipelineExecutionId: aws.String(second)})
	if err != nil || aws.ToString(ex.PipelineExecution.Trigger.TriggerDetail) != "arn:aws:iam::"+servertest.AccountID+":user/console/carl" {
		t.Fatalf("the released execution's trigger: %+v %v", ex, err)
	}
	if _, page, _ := carl.get(review); !strings.Contains(page, "You started this execution") {
		t.Errorf("carl's review of his own execution does not refuse him:\n%s", page)
	}
	form = url.Values{"token": {token(dave)}, "result": {"Approved"}, "summary": {"self"}, "_csrf": {carl.csrf()}}
	if st, h := carl.post(review, form, nil); st != http.StatusSeeOther || !strings.Contains(h.Get("Location"), "error=") {
		t.Errorf("carl approving his own execution: %d to %q, want refused", st, h.Get("Location"))
	}
	form.Set("_csrf", dave.csrf())
	form.Set("summary", "dave approves")
	if st, h := dave.post(review, form, nil); st != http.StatusSeeOther || !strings.Contains(h.Get("Location"), "done=") {
		t.Fatalf("dave's approval: %d to %q", st, h.Get("Location"))
	}
}
