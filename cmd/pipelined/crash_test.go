package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline/types"
	"github.com/aws/smithy-go"

	"github.com/pipelined/pipelined/internal/pgtest"
)

// TestCrashRecovery kills the server with SIGKILL while 50 executions are
// in progress, starts it again on the same database, and checks that every
// execution reaches a final state and that no action that had finished ran
// again.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills server processes")
	}
	t.Run("sqlite", func(t *testing.T) { crashRecovery(t, filepath.Join(t.TempDir(), "crash.db")) })
	t.Run("postgres", func(t *testing.T) { crashRecovery(t, pgtest.DSN(t)) })
}

func crashRecovery(t *testing.T, db string) {
	dir := t.TempDir()
	addr := freeAddr(t)
	start := func() *replica { return startReplicaAt(t, db, dir, addr, "--job-ack-timeout", "500ms") }
	r := start()
	c := r.client()
	ctx := context.Background()

	if _, err := c.CreateCustomActionType(ctx, &codepipeline.CreateCustomActionTypeInput{
		Category: types.ActionCategoryBuild, Provider: aws.String("Step"), Version: aws.String("1"),
		InputArtifactDetails: &types.ArtifactDetails{MinimumCount: 0, MaximumCount: 1}, OutputArtifactDetails: &types.ArtifactDetails{MinimumCount: 0, MaximumCount: 1},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateCustomActionType(ctx, &codepipeline.CreateCustomActionTypeInput{
		Category: types.ActionCategorySource, Provider: aws.String("Step"), Version: aws.String("1"),
		InputArtifactDetails: &types.ArtifactDetails{MinimumCount: 0, MaximumCount: 0}, OutputArtifactDetails: &types.ArtifactDetails{MinimumCount: 1, MaximumCount: 1},
	}); err != nil {
		t.Fatal(err)
	}
	step := func(cat types.ActionCategory, name, in, out string) types.ActionDeclaration {
		a := types.ActionDeclaration{Name: aws.String(name), ActionTypeId: &types.ActionTypeId{Category: cat, Owner: types.ActionOwnerCustom, Provider: aws.String("Step"), Version: aws.String("1")}}
		if in != "" {
			a.InputArtifacts = []types.InputArtifact{{Name: aws.String(in)}}
		}
		if out != "" {
			a.OutputArtifacts = []types.OutputArtifact{{Name: aws.String(out)}}
		}
		return a
	}
	p := &types.PipelineDeclaration{
		Name: aws.String("crashy"), RoleArn: aws.String("arn:aws:iam::123456789012:role/r"), PipelineType: types.PipelineTypeV2, ExecutionMode: types.ExecutionModeParallel,
		ArtifactStore: &types.ArtifactStore{Type: types.ArtifactStoreTypeS3, Location: aws.String("artifacts")},
		Stages: []types.StageDeclaration{
			{Name: aws.String("Source"), Actions: []types.ActionDeclaration{step(types.ActionCategorySource, "Fetch", "", "Code")}},
			{Name: aws.String("Build"), Actions: []types.ActionDeclaration{step(types.ActionCategoryBuild, "Compile", "Code", "Bin")}},
			{Name: aws.String("Deploy"), Actions: []types.ActionDeclaration{step(types.ActionCategoryBuild, "Ship", "Bin", "")}},
		},
	}
	if _, err := c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: p}); err != nil {
		t.Fatal(err)
	}
	for range 49 { // plus the one started by CreatePipeline: 50
		if _, err := c.StartPipelineExecution(ctx, &codepipeline.StartPipelineExecutionInput{Name: aws.String("crashy")}); err != nil {
			t.Fatal(err)
		}
	}

	// Workers keep going across the crash: calls that fail because the
	// server is down are retried.
	w := &crashWorker{c: c, done: map[string]int{}, handedAfterDone: map[string]int{}}
	wctx, stopWorkers := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, cat := range []types.ActionCategory{types.ActionCategorySource, types.ActionCategoryBuild, types.ActionCategoryBuild} {
		wg.Add(1)
		go func() { defer wg.Done(); w.run(wctx, cat) }()
	}
	defer func() { stopWorkers(); wg.Wait() }()

	// Kill the server when about a third of the 150 actions have finished.
	deadline := time.Now().Add(30 * time.Second)
	for w.finished() < 50 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d actions finished before the kill; server log:\n%s", w.finished(), r.logs)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := r.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-r.done
	t.Logf("killed the server after %d of 150 actions", w.finished())
	start()

	// Every execution reaches a final state.
	deadline = time.Now().Add(60 * time.Second)
	for {
		var all []types.PipelineExecutionSummary
		out, err := c.ListPipelineExecutions(ctx, &codepipeline.ListPipelineExecutionsInput{PipelineName: aws.String("crashy"), MaxResults: aws.Int32(100)})
		if err == nil {
			all = out.PipelineExecutionSummaries
		}
		final := 0
		for _, e := range all {
			if e.Status == types.PipelineExecutionStatusSucceeded {
				final++
			}
		}
		if len(all) == 50 && final == 50 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the restart %d of %d executions succeeded (err %v)", final, len(all), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.done) != 150 {
		t.Errorf("%d action executions finished, want 150", len(w.done))
	}
	for id, n := range w.done {
		if n != 1 {
			t.Errorf("action execution %s was completed %d times", id, n)
		}
	}
	for id, n := range w.handedAfterDone {
		t.Errorf("action execution %s was handed out %d times after it finished", id, n)
	}
}

type crashWorker struct {
	c               *codepipeline.Client
	mu              sync.Mutex
	done            map[string]int // action execution id -> accepted results
	handedAfterDone map[string]int
}

func (w *crashWorker) finished() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.done)
}

// retry repeats a call while the server is unreachable (it is being
// killed and restarted); an API answer ends it.
func retry(ctx context.Context, call func() error) error {
	for {
		err := call()
		var ae smithy.APIError
		if err == nil || errors.As(err, &ae) || ctx.Err() != nil {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// run long-polls one action type, as a worker does.
func (w *crashWorker) run(ctx context.Context, cat types.ActionCategory) {
	for ctx.Err() == nil {
		var out *codepipeline.PollForJobsOutput
		err := retry(ctx, func() (err error) {
			out, err = w.c.PollForJobs(ctx, &codepipeline.PollForJobsInput{MaxBatchSize: aws.Int32(3),
				ActionTypeId: &types.ActionTypeId{Category: cat, Owner: types.ActionOwnerCustom, Provider: aws.String("Step"), Version: aws.String("1")}})
			return err
		})
		if err != nil {
			continue
		}
		for _, j := range out.Jobs {
			w.handle(ctx, j)
		}
	}
}

func (w *crashWorker) handle(ctx context.Context, j types.Job) {
	actionExec := aws.ToString(j.Data.PipelineContext.Action.ActionExecutionId)
	w.mu.Lock()
	if w.done[actionExec] > 0 {
		w.handedAfterDone[actionExec]++
	}
	w.mu.Unlock()
	if err := retry(ctx, func() error {
		_, err := w.c.AcknowledgeJob(ctx, &codepipeline.AcknowledgeJobInput{JobId: j.Id, Nonce: j.Nonce})
		return err
	}); err != nil {
		return // e.g. the nonce went stale across the crash: the job comes back
	}
	time.Sleep(2 * time.Millisecond) // "work"
	// If a result was accepted but its answer was lost in the kill, the
	// retry finds the job no longer in progress: that means "already done".
	lostAnswer := false
	err := retry(ctx, func() error {
		_, err := w.c.PutJobSuccessResult(ctx, &codepipeline.PutJobSuccessResultInput{JobId: j.Id})
		var ae smithy.APIError
		if err != nil && !errors.As(err, &ae) {
			lostAnswer = true
		}
		return err
	})
	var ae smithy.APIError
	if err != nil && lostAnswer && errors.As(err, &ae) && ae.ErrorCode() == "InvalidJobStateException" {
		err = nil
	}
	if err == nil {
		w.mu.Lock()
		w.done[actionExec]++
		w.mu.Unlock()
	}
}

// startReplicaAt is startReplica on a fixed address with extra flags.
func startReplicaAt(t *testing.T, database, dataDir, addr string, flags ...string) *replica {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"serve"}, flags...)...)
	cmd.Env = append(os.Environ(),
		"PIPELINED_LISTEN="+addr, "PIPELINED_DATA_DIR="+dataDir, "PIPELINED_DATABASE="+database,
		"PIPELINED_ROOT_ACCESS_KEY_ID="+rootKey, "PIPELINED_ROOT_SECRET_ACCESS_KEY="+rootSecret,
		"PIPELINED_MASTER_KEY="+masterKey, "PIPELINED_ACCOUNT_ID=123456789012", "PIPELINED_LOG_LEVEL=warn",
	)
	return launch(t, cmd, "http://"+addr)
}
