package main

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// remoteRunner is a `pipelined runner` process.
type remoteRunner struct {
	cmd     *exec.Cmd
	workDir string
	logs    *bytes.Buffer
	done    chan error
}

func startRunner(t *testing.T, serverURL, credFile string, slots int) *remoteRunner {
	t.Helper()
	r := &remoteRunner{workDir: t.TempDir(), logs: &bytes.Buffer{}, done: make(chan error, 1)}
	r.cmd = exec.Command(binary, "runner", "--server", serverURL, "--slots", strconv.Itoa(slots), "--work-dir", r.workDir,
		"--heartbeat-interval", "500ms", "--log-level", "warn")
	r.cmd.Env = append(cleanEnv(), "AWS_SHARED_CREDENTIALS_FILE="+credFile, "AWS_CONFIG_FILE="+filepath.Join(t.TempDir(), "none"),
		"AWS_EC2_METADATA_DISABLED=true")
	r.cmd.Stdout, r.cmd.Stderr = r.logs, r.logs
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.done <- r.cmd.Wait() }()
	t.Cleanup(func() {
		if r.cmd.ProcessState == nil {
			_ = r.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-r.done:
			case <-time.After(10 * time.Second):
				_ = r.cmd.Process.Kill()
				<-r.done
			}
		}
	})
	return r
}

func commandsAction(name string, commands ...string) types.ActionDeclaration {
	return types.ActionDeclaration{
		Name:           aws.String(name),
		ActionTypeId:   &types.ActionTypeId{Category: types.ActionCategoryCompute, Owner: types.ActionOwnerAws, Provider: aws.String("Commands"), Version: aws.String("1")},
		Commands:       commands,
		InputArtifacts: []types.InputArtifact{{Name: aws.String("Code")}},
	}
}

func sourcedPipeline(name string, stages ...types.StageDeclaration) *types.PipelineDeclaration {
	return &types.PipelineDeclaration{
		Name: aws.String(name), RoleArn: aws.String("arn:aws:iam::123456789012:role/r"), PipelineType: types.PipelineTypeV2,
		ArtifactStore: &types.ArtifactStore{Type: types.ArtifactStoreTypeS3, Location: aws.String("artifacts")},
		Stages: append([]types.StageDeclaration{{Name: aws.String("Source"), Actions: []types.ActionDeclaration{{
			Name:            aws.String("Fetch"),
			ActionTypeId:    &types.ActionTypeId{Category: types.ActionCategorySource, Owner: types.ActionOwnerAws, Provider: aws.String("S3"), Version: aws.String("1")},
			Configuration:   map[string]string{"S3Bucket": "src", "S3ObjectKey": "app.zip", "PollForSourceChanges": "false"},
			OutputArtifacts: []types.OutputArtifact{{Name: aws.String("Code")}},
		}}}}, stages...),
	}
}

func waitPipeline(t *testing.T, c *codepipeline.Client, name string, within time.Duration) (string, types.PipelineExecutionStatus) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		out, err := c.ListPipelineExecutions(context.Background(), &codepipeline.ListPipelineExecutionsInput{PipelineName: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.PipelineExecutionSummaries) > 0 {
			x := out.PipelineExecutionSummaries[0]
			if x.Status != types.PipelineExecutionStatusInProgress && x.Status != types.PipelineExecutionStatusStopping {
				return aws.ToString(x.PipelineExecutionId), x.Status
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pipeline %s did not finish within %s", name, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRemoteRunners: two `pipelined runner` processes with worker keys of
// the Commands type share 100 Commands actions, each run once; killing a
// runner mid-job fails its job as RunnerLost within the lease, and a retry
// of the stage succeeds on the other runner.
func TestRemoteRunners(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	srvCmd := exec.Command(binary, "serve", "--listen", addr, "--data-dir", dir, "--log-level", "warn",
		"--runner-slots", "0", "--runner-lease", "3s", "--job-poll-wait", "2s", "--source-poll-interval", "-1s")
	srvCmd.Env = append(cleanEnv(), "PIPELINED_MASTER_KEY="+masterKey, "PIPELINED_ROOT_ACCESS_KEY_ID="+rootKey, "PIPELINED_ROOT_SECRET_ACCESS_KEY="+rootSecret)
	srv := launch(t, srvCmd, "http://"+addr)
	ctx := context.Background()
	c := srv.client()
	s3c := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.url), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(rootKey, rootSecret, "")})
	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("src")}); err != nil {
		t.Fatal(err)
	}
	var zb bytes.Buffer
	zw := zip.NewWriter(&zb)
	w, _ := zw.Create("hello.txt")
	_, _ = w.Write([]byte("hello"))
	_ = zw.Close()
	if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("src"), Key: aws.String("app.zip"), Body: bytes.NewReader(zb.Bytes())}); err != nil {
		t.Fatal(err)
	}

	// A worker key of the Commands type, for the runner hosts.
	credFile := filepath.Join(t.TempDir(), "runner-credentials")
	env := []string{"AWS_ACCESS_KEY_ID=" + rootKey, "AWS_SECRET_ACCESS_KEY=" + rootSecret, "AWS_ENDPOINT_URL=" + srv.url, "AWS_REGION=us-east-1"}
	if _, errOut, code := cli(t, env, "create-worker-key", "--category", "Compute", "--owner", "AWS", "--provider", "Commands", "--version", "1",
		"--credentials-file", credFile); code != 0 {
		t.Fatalf("create-worker-key: exit %d: %s", code, errOut)
	}
	a, b := startRunner(t, srv.url, credFile, 3), startRunner(t, srv.url, credFile, 3)

	// 100 Commands actions in two stages of 50.
	shared := t.TempDir()
	ranLog := filepath.Join(shared, "ran.log")
	var stages []types.StageDeclaration
	for s := range 2 {
		st := types.StageDeclaration{Name: aws.String(fmt.Sprintf("Build%d", s))}
		for i := range 50 {
			st.Actions = append(st.Actions, commandsAction(fmt.Sprintf("A%d-%d", s, i),
				`test "$(cat hello.txt)" = hello`,
				fmt.Sprintf(`echo "$PIPELINED_ACTION_NAME $CODEBUILD_SRC_DIR" >> %s`, ranLog)))
		}
		stages = append(stages, st)
	}
	if _, err := c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: sourcedPipeline("many", stages...)}); err != nil {
		t.Fatal(err)
	}
	if id, st := waitPipeline(t, c, "many", 3*time.Minute); st != types.PipelineExecutionStatusSucceeded {
		t.Fatalf("execution %s: %s\nrunner a:\n%s\nrunner b:\n%s", id, st, a.logs, b.logs)
	}
	raw, err := os.ReadFile(ranLog)
	if err != nil {
		t.Fatal(err)
	}
	runs := map[string]int{}
	perRunner := map[*remoteRunner]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		name, src, _ := strings.Cut(line, " ")
		runs[name]++
		for _, r := range []*remoteRunner{a, b} {
			if strings.HasPrefix(src, r.workDir+"/") {
				perRunner[r]++
			}
		}
	}
	if len(runs) != 100 {
		t.Errorf("%d distinct actions ran, want 100", len(runs))
	}
	var twice []string
	for name, n := range runs {
		if n != 1 {
			twice = append(twice, fmt.Sprintf("%s×%d", name, n))
		}
	}
	sort.Strings(twice)
	if len(twice) > 0 {
		t.Errorf("actions not run exactly once: %v", twice)
	}
	if perRunner[a] == 0 || perRunner[b] == 0 || perRunner[a]+perRunner[b] != 100 {
		t.Errorf("jobs per runner: a %d, b %d (want both > 0, 100 in all)", perRunner[a], perRunner[b])
	}

	// A runner killed mid-job: its job fails as RunnerLost within the lease.
	marker := filepath.Join(shared, "first")
	lost := commandsAction("Slow",
		fmt.Sprintf(`if [ -e %[1]s ]; then echo second attempt; else echo "$$ $CODEBUILD_SRC_DIR" > %[1]s.tmp && mv %[1]s.tmp %[1]s && sleep 600; fi`, marker))
	if _, err := c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: sourcedPipeline("lost",
		types.StageDeclaration{Name: aws.String("Build"), Actions: []types.ActionDeclaration{lost}})}); err != nil {
		t.Fatal(err)
	}
	var pgid int
	var src string
	deadline := time.Now().Add(60 * time.Second)
	for {
		if b, err := os.ReadFile(marker); err == nil {
			fmt.Sscan(string(b), &pgid, &src)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the slow job did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) }) // orphaned by the runner's SIGKILL
	victim, survivor := a, b
	if strings.HasPrefix(src, b.workDir+"/") {
		victim, survivor = b, a
	}
	if err := victim.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-victim.done
	killed := time.Now()
	id, st := waitPipeline(t, c, "lost", 30*time.Second)
	if took := time.Since(killed); st != types.PipelineExecutionStatusFailed || took > 10*time.Second {
		t.Fatalf("after the runner was killed: %s after %s, want Failed within 10s (lease 3s)", st, took)
	}
	acts, err := c.ListActionExecutions(ctx, &codepipeline.ListActionExecutionsInput{PipelineName: aws.String("lost"),
		Filter: &types.ActionExecutionFilter{PipelineExecutionId: aws.String(id)}})
	if err != nil {
		t.Fatal(err)
	}
	sawLost := false
	for _, d := range acts.ActionExecutionDetails {
		if aws.ToString(d.ActionName) == "Slow" && d.Output != nil && d.Output.ExecutionResult != nil && d.Output.ExecutionResult.ErrorDetails != nil {
			ed := d.Output.ExecutionResult.ErrorDetails
			sawLost = aws.ToString(ed.Code) == "RunnerLost" && strings.Contains(aws.ToString(ed.Message), "stopped sending heartbeats")
		}
	}
	if !sawLost {
		t.Errorf("the lost job's action does not say RunnerLost: %+v", acts.ActionExecutionDetails)
	}
	if _, err := c.RetryStageExecution(ctx, &codepipeline.RetryStageExecutionInput{PipelineName: aws.String("lost"), PipelineExecutionId: aws.String(id),
		StageName: aws.String("Build"), RetryMode: types.StageRetryModeFailedActions}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if _, st := waitPipeline(t, c, "lost", 60*time.Second); st != types.PipelineExecutionStatusSucceeded {
		t.Fatalf("the retry: %s\nsurvivor:\n%s", st, survivor.logs)
	}
}

// TestRunnerOnceAndShutdown: --once runs one job and exits; the first
// SIGTERM lets a running job go on (and takes no new one), the second
// cancels it, reported as failed because the runner shut down.
func TestRunnerOnceAndShutdown(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	srvCmd := exec.Command(binary, "serve", "--listen", addr, "--data-dir", dir, "--log-level", "warn",
		"--runner-slots", "0", "--job-poll-wait", "2s", "--source-poll-interval", "-1s")
	srvCmd.Env = append(cleanEnv(), "PIPELINED_MASTER_KEY="+masterKey, "PIPELINED_ROOT_ACCESS_KEY_ID="+rootKey, "PIPELINED_ROOT_SECRET_ACCESS_KEY="+rootSecret)
	srv := launch(t, srvCmd, "http://"+addr)
	ctx := context.Background()
	c := srv.client()
	s3c := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.url), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(rootKey, rootSecret, "")})
	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("src")}); err != nil {
		t.Fatal(err)
	}
	var zb bytes.Buffer
	zw := zip.NewWriter(&zb)
	_, _ = zw.Create("empty")
	_ = zw.Close()
	if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("src"), Key: aws.String("app.zip"), Body: bytes.NewReader(zb.Bytes())}); err != nil {
		t.Fatal(err)
	}
	credFile := filepath.Join(t.TempDir(), "runner-credentials")
	env := []string{"AWS_ACCESS_KEY_ID=" + rootKey, "AWS_SECRET_ACCESS_KEY=" + rootSecret, "AWS_ENDPOINT_URL=" + srv.url, "AWS_REGION=us-east-1"}
	if _, errOut, code := cli(t, env, "create-worker-key", "--category", "Compute", "--owner", "AWS", "--provider", "Commands", "--version", "1",
		"--credentials-file", credFile); code != 0 {
		t.Fatalf("create-worker-key: exit %d: %s", code, errOut)
	}
	once := startRunner(t, srv.url, credFile, 2)
	// startRunner has no --once: replace it by a --once runner.
	_ = once.cmd.Process.Signal(syscall.SIGTERM)
	<-once.done
	r := &remoteRunner{workDir: t.TempDir(), logs: &bytes.Buffer{}, done: make(chan error, 1)}
	r.cmd = exec.Command(binary, "runner", "--server", srv.url, "--once", "--work-dir", r.workDir, "--heartbeat-interval", "500ms")
	r.cmd.Env = append(cleanEnv(), "AWS_SHARED_CREDENTIALS_FILE="+credFile, "AWS_CONFIG_FILE="+filepath.Join(t.TempDir(), "none"))
	r.cmd.Stdout, r.cmd.Stderr = r.logs, r.logs
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.done <- r.cmd.Wait() }()
	if _, err := c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: sourcedPipeline("once",
		types.StageDeclaration{Name: aws.String("Build"), Actions: []types.ActionDeclaration{commandsAction("Once", "echo once")}})}); err != nil {
		t.Fatal(err)
	}
	if _, st := waitPipeline(t, c, "once", 60*time.Second); st != types.PipelineExecutionStatusSucceeded {
		t.Fatalf("once: %s\n%s", st, r.logs)
	}
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("--once runner: %v\n%s", err, r.logs)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("--once runner did not exit after its job\n%s", r.logs)
	}

	// Shutdown: first SIGTERM, the job goes on; second, it is cancelled.
	r2 := startRunner(t, srv.url, credFile, 1)
	marker := filepath.Join(t.TempDir(), "started")
	if _, err := c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: sourcedPipeline("drain",
		types.StageDeclaration{Name: aws.String("Build"), Actions: []types.ActionDeclaration{commandsAction("Long", "echo $$ > "+marker, "sleep 300")}})}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(marker); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the long job did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	raw, _ := os.ReadFile(marker)
	pgid, _ := strconv.Atoi(strings.TrimSpace(string(raw)))
	_ = r2.cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(1500 * time.Millisecond)
	if err := syscall.Kill(-pgid, 0); err != nil {
		t.Fatalf("the first SIGTERM stopped the running job: %v", err)
	}
	select {
	case <-r2.done:
		t.Fatal("the runner exited with a job running after one SIGTERM")
	default:
	}
	_ = r2.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r2.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("the runner did not exit after the second SIGTERM\n%s", r2.logs)
	}
	// Killed processes may linger a moment as zombies until reaped.
	gone := time.Now().Add(5 * time.Second)
	for syscall.Kill(-pgid, 0) == nil {
		if time.Now().After(gone) {
			t.Error("the cancelled job's processes outlive the runner")
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	id, st := waitPipeline(t, c, "drain", 30*time.Second)
	if st != types.PipelineExecutionStatusFailed {
		t.Fatalf("drain: %s", st)
	}
	acts, err := c.ListActionExecutions(ctx, &codepipeline.ListActionExecutionsInput{PipelineName: aws.String("drain"),
		Filter: &types.ActionExecutionFilter{PipelineExecutionId: aws.String(id)}})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range acts.ActionExecutionDetails {
		if aws.ToString(d.ActionName) == "Long" {
			ed := d.Output.ExecutionResult.ErrorDetails
			if ed == nil || !strings.Contains(aws.ToString(ed.Message), "runner shut down") {
				t.Errorf("the cancelled job's failure: %+v", ed)
			}
		}
	}
}
