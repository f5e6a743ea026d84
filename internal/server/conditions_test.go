package server_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline/types"

	"github.com/pipelined/pipelined/internal/server"
	"github.com/pipelined/pipelined/internal/server/servertest"
)

func rule(name, provider string, cfg map[string]string) types.RuleDeclaration {
	return types.RuleDeclaration{Name: aws.String(name), Configuration: cfg,
		RuleTypeId: &types.RuleTypeId{Category: types.RuleCategoryRule, Owner: types.RuleOwnerAws, Provider: aws.String(provider), Version: aws.String("1")}}
}

func varCheck(name, variable, op, value string) types.RuleDeclaration {
	return rule(name, "VariableCheck", map[string]string{"Variable": variable, "Operator": op, "Value": value})
}

// condPipeline is Source → Build (one Compile action) → Ship, V2, with
// hooks to add conditions.
func condPipeline(name string, mode types.ExecutionMode) *types.PipelineDeclaration {
	p := runPipeline(name, mode)
	p.PipelineType = types.PipelineTypeV2
	p.Stages[1].Actions = p.Stages[1].Actions[:1] // Compile
	p.Stages = []types.StageDeclaration{p.Stages[0], p.Stages[1], {Name: aws.String("Ship"), Actions: []types.ActionDeclaration{{
		Name: aws.String("Deploy"), ActionTypeId: buildType, Configuration: map[string]string{"Command": "deploy"},
		InputArtifacts: []types.InputArtifact{{Name: aws.String("Bin")}}}}}}
	return p
}

func ruleExecutions(t *testing.T, c *codepipeline.Client, pipeline, exec string) map[string]types.RuleExecutionDetail {
	t.Helper()
	out, err := c.ListRuleExecutions(context.Background(), &codepipeline.ListRuleExecutionsInput{PipelineName: aws.String(pipeline),
		Filter: &types.RuleExecutionFilter{PipelineExecutionId: aws.String(exec)}})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]types.RuleExecutionDetail{}
	for _, d := range out.RuleExecutionDetails {
		if aws.ToString(d.RuleExecutionId) == "" || d.StartTime == nil || d.LastUpdateTime == nil {
			t.Errorf("rule execution without id or times: %+v", d)
		}
		m[aws.ToString(d.RuleName)] = d
	}
	return m
}

func TestBeforeEntryAndOnSuccessConditions(t *testing.T) {
	servertest.EachBackend(t, func(t *testing.T, backend servertest.Options) {
		_, c := engineServer(t, backend)
		ctx := context.Background()
		startWorker(t, c, nil)

		// Build enters (Commit is abc123); Ship is skipped (not on main).
		p := condPipeline("gates", "")
		p.Stages[1].BeforeEntry = &types.BeforeEntryConditions{Conditions: []types.Condition{{Result: types.ResultFail, Rules: []types.RuleDeclaration{
			varCheck("CommitIsKnown", "#{SourceVars.Commit}", "EQ", "abc123"), varCheck("NotNone", "#{SourceVars.Commit}", "NE", "none"),
		}}}}
		p.Stages[2].BeforeEntry = &types.BeforeEntryConditions{Conditions: []types.Condition{{Result: types.ResultSkip, Rules: []types.RuleDeclaration{
			varCheck("OnMain", "#{SourceVars.Commit}", "CONTAINS", "main"),
		}}}}
		id := create(t, c, p)
		waitStatus(t, c, "gates", id, types.PipelineExecutionStatusSucceeded)
		build, ship := stageState(t, c, "gates", "Build"), stageState(t, c, "gates", "Ship")
		if build.LatestExecution.Status != types.StageExecutionStatusSucceeded || build.BeforeEntryConditionState == nil ||
			build.BeforeEntryConditionState.LatestExecution.Status != types.ConditionExecutionStatusSucceeded ||
			len(build.BeforeEntryConditionState.ConditionStates[0].RuleStates) != 2 {
			t.Errorf("Build state: %+v", build)
		}
		if ship.LatestExecution.Status != types.StageExecutionStatusSkipped || ship.BeforeEntryConditionState.LatestExecution.Status != types.ConditionExecutionStatusFailed {
			t.Errorf("Ship state: %+v %+v", ship.LatestExecution, ship.BeforeEntryConditionState)
		}
		if a := ship.ActionStates[0]; a.LatestExecution != nil {
			t.Errorf("the skipped stage ran its action: %+v", a.LatestExecution)
		}
		rs := ruleExecutions(t, c, "gates", id)
		if rs["CommitIsKnown"].Status != types.RuleExecutionStatusSucceeded || rs["OnMain"].Status != types.RuleExecutionStatusFailed ||
			rs["OnMain"].Input.ResolvedConfiguration["Variable"] != "abc123" || aws.ToString(rs["OnMain"].StageName) != "Ship" {
			t.Errorf("rule executions: %+v", rs)
		}

		// beforeEntry FAIL: the execution fails before Build runs.
		p = condPipeline("blocked", "")
		p.Stages[1].BeforeEntry = &types.BeforeEntryConditions{Conditions: []types.Condition{{Result: types.ResultFail, Rules: []types.RuleDeclaration{
			varCheck("Big", "#{SourceVars.Commit}", "EQ", "release"),
		}}}}
		id = create(t, c, p)
		waitStatus(t, c, "blocked", id, types.PipelineExecutionStatusFailed)
		ex, _ := c.GetPipelineExecution(ctx, &codepipeline.GetPipelineExecutionInput{PipelineName: aws.String("blocked"), PipelineExecutionId: aws.String(id)})
		if s := aws.ToString(ex.PipelineExecution.StatusSummary); !strings.Contains(s, "entry condition") || !strings.Contains(s, "Big") {
			t.Errorf("summary %q", s)
		}
		if b := stageState(t, c, "blocked", "Build"); b.ActionStates[0].LatestExecution != nil {
			t.Error("Build ran although its entry condition failed")
		}
		// A manual retry evaluates the entry condition again.
		if _, err := c.RetryStageExecution(ctx, &codepipeline.RetryStageExecutionInput{PipelineName: aws.String("blocked"), StageName: aws.String("Build"),
			PipelineExecutionId: aws.String(id), RetryMode: types.StageRetryModeFailedActions}); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, c, "blocked", id, types.PipelineExecutionStatusFailed)
		all, err := c.ListRuleExecutions(ctx, &codepipeline.ListRuleExecutionsInput{PipelineName: aws.String("blocked")})
		if err != nil || len(all.RuleExecutionDetails) != 2 || aws.ToString(all.RuleExecutionDetails[0].RuleExecutionId) == aws.ToString(all.RuleExecutionDetails[1].RuleExecutionId) {
			t.Errorf("rule executions after a retry: %+v %v", all, err)
		}

		// onSuccess FAIL: the stage ran, then its success condition failed.
		p = condPipeline("checked", "")
		p.Stages[1].OnSuccess = &types.SuccessConditions{Conditions: []types.Condition{{Result: types.ResultFail, Rules: []types.RuleDeclaration{
			varCheck("Count", "#{SourceVars.Commit}", "GREATER_THAN", "5"),
		}}}}
		id = create(t, c, p)
		waitStatus(t, c, "checked", id, types.PipelineExecutionStatusFailed)
		b := stageState(t, c, "checked", "Build")
		if b.OnSuccessConditionState == nil || b.OnSuccessConditionState.LatestExecution.Status != types.ConditionExecutionStatusFailed ||
			!strings.Contains(aws.ToString(b.OnSuccessConditionState.ConditionStates[0].RuleStates[0].LatestExecution.ErrorDetails.Message), "not a number") {
			t.Errorf("onSuccess state: %+v", b.OnSuccessConditionState)
		}
		if b.ActionStates[0].LatestExecution.Status != types.ActionExecutionStatusSucceeded {
			t.Error("Compile did not run before the success condition")
		}
	})
}

func TestDeploymentWindowOverrideAndRestart(t *testing.T) {
	servertest.EachBackend(t, func(t *testing.T, backend servertest.Options) {
		dir := t.TempDir()
		first, c := engineServer(t, backend, withDataDir(dir))
		ctx := context.Background()
		wctx, stopWorker := context.WithCancel(ctx)
		workerDone := make(chan struct{})
		go func() { defer close(workerDone); (&worker{c: c}).run(wctx, t) }()
		p := condPipeline("window", "")
		// A window in 2199: the stage waits (a timer row, no goroutine).
		p.Stages[1].BeforeEntry = &types.BeforeEntryConditions{Conditions: []types.Condition{{Result: types.ResultFail, Rules: []types.RuleDeclaration{
			rule("Later", "DeploymentWindow", map[string]string{"Cron": "* * * ? * * 2199", "TimeZone": "Europe/Paris"}),
		}}}}
		id := create(t, c, p)
		waitFor(t, "the entry condition to wait", func() bool {
			b := stageState(t, c, "window", "Build")
			return b.BeforeEntryConditionState != nil && b.BeforeEntryConditionState.LatestExecution.Status == types.ConditionExecutionStatusInProgress
		})
		// Restart in the middle of the pending condition.
		stopWorker()
		<-workerDone
		first.Stop(t)
		_, c = engineServerAgain(t, backend, withDataDir(dir))
		startWorker(t, c, nil)
		b := stageState(t, c, "window", "Build")
		if b.BeforeEntryConditionState == nil || b.BeforeEntryConditionState.LatestExecution.Status != types.ConditionExecutionStatusInProgress ||
			!strings.Contains(aws.ToString(b.BeforeEntryConditionState.ConditionStates[0].RuleStates[0].LatestExecution.Summary), "2198-12-31T23:00:00Z") {
			t.Fatalf("after restart: %+v", b.BeforeEntryConditionState)
		}
		if got := execStatus(t, c, "window", id); got != types.PipelineExecutionStatusInProgress {
			t.Fatalf("execution %s after restart", got)
		}
		// ON_SUCCESS has nothing in progress: not overridable.
		_, err := c.OverrideStageCondition(ctx, &codepipeline.OverrideStageConditionInput{PipelineName: aws.String("window"), StageName: aws.String("Build"),
			PipelineExecutionId: aws.String(id), ConditionType: types.ConditionTypeOnSuccess})
		if apiCode(t, err) != "ConditionNotOverridableException" {
			t.Errorf("override ON_SUCCESS: %v", err)
		}
		if _, err := c.OverrideStageCondition(ctx, &codepipeline.OverrideStageConditionInput{PipelineName: aws.String("window"), StageName: aws.String("Build"),
			PipelineExecutionId: aws.String(id), ConditionType: types.ConditionTypeBeforeEntry}); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, c, "window", id, types.PipelineExecutionStatusSucceeded)
		b = stageState(t, c, "window", "Build")
		cs := b.BeforeEntryConditionState.ConditionStates[0].LatestExecution
		if cs.Status != types.ConditionExecutionStatusOverridden || !strings.Contains(aws.ToString(cs.Summary), ":root") {
			t.Errorf("overridden condition: %+v", cs)
		}
		if rs := ruleExecutions(t, c, "window", id); rs["Later"].Status != types.RuleExecutionStatusAbandoned {
			t.Errorf("the overridden rule: %+v", rs["Later"])
		}
	})
}

// engineServerAgain starts a server on an existing store (the test types
// are already registered).
func engineServerAgain(t *testing.T, backend servertest.Options, more ...servertest.Options) (*servertest.Instance, *codepipeline.Client) {
	opts := append([]servertest.Options{backend, func(c *server.Config) { c.SweepInterval = 20 * time.Millisecond }}, more...)
	srv := servertest.Start(t, opts...)
	return srv, srv.Client()
}

func TestAutomaticRetryAndRollback(t *testing.T) {
	servertest.EachBackend(t, func(t *testing.T, backend servertest.Options) {
		_, c := engineServer(t, backend)
		ctx := context.Background()
		var mu sync.Mutex
		failures := map[string]int{} // pipeline -> Compile failures still to give
		startWorker(t, c, func(j types.Job) string {
			mu.Lock()
			defer mu.Unlock()
			pl := aws.ToString(j.Data.PipelineContext.PipelineName)
			if aws.ToString(j.Data.PipelineContext.Action.Name) == "Compile" && failures[pl] > 0 {
				failures[pl]--
				return "compiler crashed"
			}
			return ""
		})
		setFailures := func(p string, n int) { mu.Lock(); failures[p] = n; mu.Unlock() }

		// RETRY: fails twice, then succeeds, in one execution.
		setFailures("retry", 2)
		p := condPipeline("retry", "")
		p.Stages[1].OnFailure = &types.FailureConditions{Result: types.ResultRetry, RetryConfiguration: &types.RetryConfiguration{RetryMode: types.StageRetryModeFailedActions}}
		id := create(t, c, p)
		waitStatus(t, c, "retry", id, types.PipelineExecutionStatusSucceeded)
		b := stageState(t, c, "retry", "Build")
		if b.RetryStageMetadata == nil || aws.ToInt32(b.RetryStageMetadata.AutoStageRetryAttempt) != 2 || b.RetryStageMetadata.LatestRetryTrigger != types.RetryTriggerAutomatedStageRetry {
			t.Errorf("retry metadata: %+v", b.RetryStageMetadata)
		}
		// More failures than retries: the failure stands.
		setFailures("retry", 10)
		id = start(t, c, "retry")
		waitStatus(t, c, "retry", id, types.PipelineExecutionStatusFailed)
		ex, _ := c.GetPipelineExecution(ctx, &codepipeline.GetPipelineExecutionInput{PipelineName: aws.String("retry"), PipelineExecutionId: aws.String(id)})
		if s := aws.ToString(ex.PipelineExecution.StatusSummary); !strings.Contains(s, "automatic retries") {
			t.Errorf("summary %q", s)
		}

		// ROLLBACK: the second execution fails in Build; a rollback to the
		// first starts on its own.
		p = condPipeline("rollback", "")
		p.Stages[1].OnFailure = &types.FailureConditions{Result: types.ResultRollback}
		good := create(t, c, p)
		waitStatus(t, c, "rollback", good, types.PipelineExecutionStatusSucceeded)
		setFailures("rollback", 1)
		bad := start(t, c, "rollback")
		waitStatus(t, c, "rollback", bad, types.PipelineExecutionStatusFailed)
		var rb types.PipelineExecutionSummary
		waitFor(t, "an automatic rollback", func() bool {
			list, err := c.ListPipelineExecutions(ctx, &codepipeline.ListPipelineExecutionsInput{PipelineName: aws.String("rollback")})
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range list.PipelineExecutionSummaries {
				if s.ExecutionType == types.ExecutionTypeRollback && s.Status == types.PipelineExecutionStatusSucceeded {
					rb = s
					return true
				}
			}
			return false
		})
		if rb.Trigger.TriggerType != types.TriggerTypeAutomatedRollback || aws.ToString(rb.RollbackMetadata.RollbackTargetPipelineExecutionId) != good {
			t.Errorf("rollback: %+v %+v", rb.Trigger, rb.RollbackMetadata)
		}
		if b := stageState(t, c, "rollback", "Build"); aws.ToString(b.LatestExecution.PipelineExecutionId) != aws.ToString(rb.PipelineExecutionId) || b.LatestExecution.Type != types.ExecutionTypeRollback {
			t.Errorf("Build's latest execution: %+v", b.LatestExecution)
		}

		// onSuccess ROLLBACK: a failed success condition rolls back too.
		p = condPipeline("verify", "")
		p.Variables = []types.PipelineVariableDeclaration{{Name: aws.String("Healthy"), DefaultValue: aws.String("yes")}}
		p.Stages[1].OnSuccess = &types.SuccessConditions{Conditions: []types.Condition{{Result: types.ResultRollback, Rules: []types.RuleDeclaration{
			varCheck("Healthy", "#{variables.Healthy}", "EQ", "yes"),
		}}}}
		good = create(t, c, p)
		waitStatus(t, c, "verify", good, types.PipelineExecutionStatusSucceeded)
		out, err := c.StartPipelineExecution(ctx, &codepipeline.StartPipelineExecutionInput{Name: aws.String("verify"),
			Variables: []types.PipelineVariable{{Name: aws.String("Healthy"), Value: aws.String("no")}}})
		if err != nil {
			t.Fatal(err)
		}
		waitStatus(t, c, "verify", aws.ToString(out.PipelineExecutionId), types.PipelineExecutionStatusFailed)
		waitFor(t, "a rollback after a failed success condition", func() bool {
			b := stageState(t, c, "verify", "Build")
			return b.LatestExecution.Type == types.ExecutionTypeRollback && b.LatestExecution.Status == types.StageExecutionStatusSucceeded
		})
	})
}

func TestConditionValidation(t *testing.T) {
	srv := servertest.Start(t, func(c *server.Config) { c.SweepInterval = 20 * time.Millisecond })
	c := srv.Client()
	registerTestTypes(t, c)
	ctx := context.Background()
	cases := map[string]struct {
		mutate func(p *types.PipelineDeclaration)
		code   string
		field  string
	}{
		"unknown rule type": {func(p *types.PipelineDeclaration) {
			p.Stages[1].BeforeEntry = &types.BeforeEntryConditions{Conditions: []types.Condition{{Result: types.ResultFail, Rules: []types.RuleDeclaration{rule("X", "Nope", nil)}}}}
		}, "InvalidStageDeclarationException", "beforeEntry.conditions[0].rules[0].ruleTypeId"},
		"too many rules": {func(p *types.PipelineDeclaration) {
			var rs []types.RuleDeclaration
			for _, n := range []string{"a", "b", "c", "d", "e", "f"} {
				rs = append(rs, varCheck(n, "#{variables.x}", "EQ", "1"))
			}
			p.Stages[1].BeforeEntry = &types.BeforeEntryConditions{Conditions: []types.Condition{{Result: types.ResultFail, Rules: rs}}}
		}, "ValidationException", "rules"},
		"result not allowed": {func(p *types.PipelineDeclaration) {
			p.Stages[1].BeforeEntry = &types.BeforeEntryConditions{Conditions: []types.Condition{{Result: types.ResultRollback, Rules: []types.RuleDeclaration{varCheck("a", "x", "EQ", "1")}}}}
		}, "InvalidStageDeclarationException", "beforeEntry.conditions[0].result"},
		"invalid cron": {func(p *types.PipelineDeclaration) {
			p.Stages[1].BeforeEntry = &types.BeforeEntryConditions{Conditions: []types.Condition{{Result: types.ResultFail, Rules: []types.RuleDeclaration{
				rule("W", "DeploymentWindow", map[string]string{"Cron": "* 99 * ? * *"})}}}}
		}, "InvalidStageDeclarationException", "Cron"},
		"unknown time zone": {func(p *types.PipelineDeclaration) {
			p.Stages[1].BeforeEntry = &types.BeforeEntryConditions{Conditions: []types.Condition{{Result: types.ResultFail, Rules: []types.RuleDeclaration{
				rule("W", "DeploymentWindow", map[string]string{"Cron": "* * 9-17 ? * MON-FRI", "TimeZone": "Mars/Olympus"})}}}}
		}, "InvalidStageDeclarationException", "TimeZone"},
		"rollback in PARALLEL": {func(p *types.PipelineDeclaration) {
			p.ExecutionMode = types.ExecutionModeParallel
			p.Stages[1].OnFailure = &types.FailureConditions{Result: types.ResultRollback}
		}, "InvalidStageDeclarationException", "onFailure.result"},
	}
	for name, tc := range cases {
		p := condPipeline("v-"+strings.ReplaceAll(name, " ", "-"), "")
		tc.mutate(p)
		_, err := c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: p})
		if apiCode(t, err) != tc.code || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: %v, want %s naming %s", name, err, tc.code, tc.field)
		}
	}
	// CloudWatchAlarm is accepted, and fails at evaluation saying why.
	p := condPipeline("alarm", "")
	p.Stages[1].OnSuccess = &types.SuccessConditions{Conditions: []types.Condition{{Result: types.ResultFail, Rules: []types.RuleDeclaration{
		rule("Alarm", "CloudWatchAlarm", map[string]string{"AlarmName": "errors"})}}}}
	startWorker(t, c, nil)
	id := create(t, c, p)
	waitStatus(t, c, "alarm", id, types.PipelineExecutionStatusFailed)
	if rs := ruleExecutions(t, c, "alarm", id); !strings.Contains(aws.ToString(rs["Alarm"].Output.ExecutionResult.ErrorDetails.Message), "CloudWatch") {
		t.Errorf("CloudWatchAlarm rule: %+v", rs["Alarm"].Output)
	}
}

// TestDeploymentWindowOpens waits for a real window: one opening at the
// start of the next minute (or the one after, so that the wait is seen
// first). SQLite only: it takes up to two minutes.
func TestDeploymentWindowOpens(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a real deployment window (up to two minutes)")
	}
	_, c := engineServer(t, func(*server.Config) {})
	startWorker(t, c, nil)
	now := time.Now().UTC()
	opens := now.Truncate(time.Minute).Add(time.Minute)
	if opens.Sub(now) < 15*time.Second {
		opens = opens.Add(time.Minute)
	}
	p := condPipeline("soon", "")
	p.Stages[1].BeforeEntry = &types.BeforeEntryConditions{Conditions: []types.Condition{{Result: types.ResultFail, Rules: []types.RuleDeclaration{
		rule("Soon", "DeploymentWindow", map[string]string{"Cron": fmt.Sprintf("* %d %d ? * *", opens.Minute(), opens.Hour())}),
	}}}}
	id := create(t, c, p)
	waitFor(t, "the window to be waited for", func() bool {
		b := stageState(t, c, "soon", "Build")
		return b.BeforeEntryConditionState != nil && b.BeforeEntryConditionState.LatestExecution.Status == types.ConditionExecutionStatusInProgress
	})
	if time.Now().After(opens) {
		t.Skip("the machine was too slow to see the wait before the window opened")
	}
	for execStatus(t, c, "soon", id) != types.PipelineExecutionStatusSucceeded {
		if time.Now().After(opens.Add(45 * time.Second)) {
			t.Fatalf("the window opened at %v and the execution is still %s", opens, execStatus(t, c, "soon", id))
		}
		time.Sleep(200 * time.Millisecond)
	}
	rs := ruleExecutions(t, c, "soon", id)
	if r := rs["Soon"]; r.Status != types.RuleExecutionStatusSucceeded || r.LastUpdateTime.Before(opens) {
		t.Errorf("the window rule: %s at %v (opens %v)", r.Status, r.LastUpdateTime, opens)
	}
}

// TestConditionAcrossReplicas: a condition waiting on one replica is seen
// and overridden through another (PostgreSQL).
func TestConditionAcrossReplicas(t *testing.T) {
	backend := servertest.Backends[1].Options(t)
	mk := base64.StdEncoding.EncodeToString(make([]byte, 32)) // replicas share the master key
	shared := func(c *server.Config) { c.MasterKey = mk; c.SweepInterval = 20 * time.Millisecond }
	a, ca := engineServer(t, backend, shared)
	b := servertest.Start(t, shared, func(c *server.Config) { c.Database = a.Config.Database })
	cb := b.Client()
	startWorker(t, ca, nil)
	p := condPipeline("replicas", "")
	p.Stages[1].BeforeEntry = &types.BeforeEntryConditions{Conditions: []types.Condition{{Result: types.ResultFail, Rules: []types.RuleDeclaration{
		rule("Later", "DeploymentWindow", map[string]string{"Cron": "* * * ? * * 2199"}),
	}}}}
	id := create(t, ca, p)
	waitFor(t, "the other replica to see the waiting condition", func() bool {
		st := stageState(t, cb, "replicas", "Build")
		return st.BeforeEntryConditionState != nil && st.BeforeEntryConditionState.LatestExecution.Status == types.ConditionExecutionStatusInProgress
	})
	if _, err := cb.OverrideStageCondition(context.Background(), &codepipeline.OverrideStageConditionInput{PipelineName: aws.String("replicas"), StageName: aws.String("Build"),
		PipelineExecutionId: aws.String(id), ConditionType: types.ConditionTypeBeforeEntry}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, ca, "replicas", id, types.PipelineExecutionStatusSucceeded)
}

// TestDeploymentWindowWithClock moves the engine's clock from a Saturday to
// Monday morning: the waiting rule's timer becomes due, the sweeper fires
// it, and the window (weekdays 09:00-17:59 in New York) is open.
func TestDeploymentWindowWithClock(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	now := time.Date(2026, 12, 5, 10, 0, 0, 0, ny) // Saturday
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	// Jobs are claimed on the real clock and acknowledged on the engine's:
	// an acknowledgement deadline longer than the jump keeps them valid.
	_, c := engineServer(t, func(*server.Config) {}, func(cfg *server.Config) { cfg.EngineNow = clock; cfg.JobAckTimeout = 30 * 24 * time.Hour })
	startWorker(t, c, nil)
	p := condPipeline("weekdays", "")
	p.Stages[1].BeforeEntry = &types.BeforeEntryConditions{Conditions: []types.Condition{{Result: types.ResultFail, Rules: []types.RuleDeclaration{
		rule("Office", "DeploymentWindow", map[string]string{"Cron": "* * 9-17 ? * MON-FRI *", "TimeZone": "America/New_York"}),
	}}}}
	id := create(t, c, p)
	var summary string
	waitFor(t, "the rule to wait for Monday", func() bool {
		b := stageState(t, c, "weekdays", "Build")
		if b.BeforeEntryConditionState == nil {
			return false
		}
		summary = aws.ToString(b.BeforeEntryConditionState.ConditionStates[0].RuleStates[0].LatestExecution.Summary)
		return b.BeforeEntryConditionState.LatestExecution.Status == types.ConditionExecutionStatusInProgress
	})
	if !strings.Contains(summary, "2026-12-07T14:00:00Z") { // Monday 09:00 in New York
		t.Errorf("waiting summary %q", summary)
	}
	// Sunday: still closed (the timer is not due).
	mu.Lock()
	now = time.Date(2026, 12, 6, 12, 0, 0, 0, ny)
	mu.Unlock()
	time.Sleep(200 * time.Millisecond)
	if got := execStatus(t, c, "weekdays", id); got != types.PipelineExecutionStatusInProgress {
		t.Fatalf("on Sunday the execution is %s", got)
	}
	mu.Lock()
	now = time.Date(2026, 12, 7, 9, 0, 30, 0, ny)
	mu.Unlock()
	waitStatus(t, c, "weekdays", id, types.PipelineExecutionStatusSucceeded)
	if rs := ruleExecutions(t, c, "weekdays", id); rs["Office"].Status != types.RuleExecutionStatusSucceeded || !strings.Contains(aws.ToString(rs["Office"].Output.ExecutionResult.ExternalExecutionSummary), "is open") {
		t.Errorf("the window rule: %+v", rs["Office"].Output.ExecutionResult)
	}
}
