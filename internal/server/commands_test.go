package server_test

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/pipelined/pipelined/internal/server"
	"github.com/pipelined/pipelined/internal/server/servertest"
)

var (
	commandsType = &types.ActionTypeId{Category: types.ActionCategoryCompute, Owner: types.ActionOwnerAws, Provider: aws.String("Commands"), Version: aws.String("1")}
	s3SourceType = &types.ActionTypeId{Category: types.ActionCategorySource, Owner: types.ActionOwnerAws, Provider: aws.String("S3"), Version: aws.String("1")}
	s3DeployType = &types.ActionTypeId{Category: types.ActionCategoryDeploy, Owner: types.ActionOwnerAws, Provider: aws.String("S3"), Version: aws.String("1")}
)

// pgids records the process groups of the jobs the embedded runner started.
type pgids struct {
	mu sync.Mutex
	m  map[string]int
	ch chan int
}

func (p *pgids) record(job string, pgid int) {
	p.mu.Lock()
	p.m[job] = pgid
	p.mu.Unlock()
	select {
	case p.ch <- pgid:
	default:
	}
}

// commandsServer starts a server whose embedded runner heartbeats fast.
func commandsServer(t *testing.T, opts ...servertest.Options) (*servertest.Instance, *pgids) {
	t.Helper()
	started := &pgids{m: map[string]int{}, ch: make(chan int, 16)}
	all := append([]servertest.Options{func(c *server.Config) {
		c.SourcePollInterval = -1
		c.Runner = server.RunnerConfig{Slots: 4, HeartbeatInterval: 200 * time.Millisecond, KillGrace: 2 * time.Second,
			Lease: 3 * time.Second, OnStart: started.record, WorkDir: t.TempDir()}
	}}, opts...)
	return servertest.Start(t, all...), started
}

func zipFiles(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for name, body := range files {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write([]byte(body))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// sourceObject creates bucket src with app.zip holding files.
func sourceObject(t *testing.T, c *s3.Client, files map[string]string) {
	t.Helper()
	ctx := context.Background()
	for _, b := range []string{"src", "site"} {
		if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("src"), Key: aws.String("app.zip"), Body: bytes.NewReader(zipFiles(t, files))}); err != nil {
		t.Fatal(err)
	}
}

// commandsPipeline is S3 source → a Commands action → (deploy when given).
func commandsPipeline(name string, build types.ActionDeclaration, deploy *types.ActionDeclaration) *types.PipelineDeclaration {
	build.ActionTypeId = commandsType
	if build.Name == nil {
		build.Name = aws.String("Build")
	}
	build.InputArtifacts = []types.InputArtifact{{Name: aws.String("Code")}}
	p := &types.PipelineDeclaration{
		Name: aws.String(name), RoleArn: aws.String("arn:aws:iam::123456789012:role/r"), PipelineType: types.PipelineTypeV2,
		ArtifactStore: &types.ArtifactStore{Type: types.ArtifactStoreTypeS3, Location: aws.String("artifacts")},
		Stages: []types.StageDeclaration{
			{Name: aws.String("Source"), Actions: []types.ActionDeclaration{{Name: aws.String("Fetch"), ActionTypeId: s3SourceType,
				Configuration:   map[string]string{"S3Bucket": "src", "S3ObjectKey": "app.zip", "PollForSourceChanges": "false"},
				OutputArtifacts: []types.OutputArtifact{{Name: aws.String("Code")}}}}},
			{Name: aws.String("Build"), Actions: []types.ActionDeclaration{build}},
		},
	}
	if deploy != nil {
		p.Stages = append(p.Stages, types.StageDeclaration{Name: aws.String("Deploy"), Actions: []types.ActionDeclaration{*deploy}})
	}
	return p
}

// latestExecution waits for the pipeline's newest execution to end.
func waitExecution(t *testing.T, c *codepipeline.Client, pipeline string, within time.Duration) (string, types.PipelineExecutionStatus) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(within)
	for {
		out, err := c.ListPipelineExecutions(ctx, &codepipeline.ListPipelineExecutionsInput{PipelineName: aws.String(pipeline)})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.PipelineExecutionSummaries) > 0 {
			x := out.PipelineExecutionSummaries[0]
			switch x.Status {
			case types.PipelineExecutionStatusInProgress, types.PipelineExecutionStatusStopping:
			default:
				return aws.ToString(x.PipelineExecutionId), x.Status
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pipeline %s did not finish within %s", pipeline, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// actionOf returns the latest action execution of an action.
func actionOf(t *testing.T, c *codepipeline.Client, pipeline, execution, action string) types.ActionExecutionDetail {
	t.Helper()
	out, err := c.ListActionExecutions(context.Background(), &codepipeline.ListActionExecutionsInput{PipelineName: aws.String(pipeline),
		Filter: &types.ActionExecutionFilter{PipelineExecutionId: aws.String(execution)}})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range out.ActionExecutionDetails {
		if aws.ToString(a.ActionName) == action {
			return a
		}
	}
	t.Fatalf("no execution of action %s in %s", action, execution)
	return types.ActionExecutionDetail{}
}

func errorOf(a types.ActionExecutionDetail) (string, string) {
	if a.Output == nil || a.Output.ExecutionResult == nil || a.Output.ExecutionResult.ErrorDetails == nil {
		return "", ""
	}
	d := a.Output.ExecutionResult.ErrorDetails
	return aws.ToString(d.Code), aws.ToString(d.Message)
}

func TestCommandsBuildVariablesArtifactAndDeploy(t *testing.T) {
	srv, _ := commandsServer(t)
	c, s3c := srv.Client(), rootS3(srv)
	ctx := context.Background()
	sourceObject(t, s3c, map[string]string{"main.txt": "hello", "version.txt": "1.2.3", "lib/dep.txt": "dep"})
	build := types.ActionDeclaration{
		Namespace: aws.String("BuildVars"),
		Commands: []string{
			"test -f main.txt && test -f lib/dep.txt",
			"export VERSION=$(cat version.txt)-built",
			"mkdir -p dist/docs && cp main.txt dist/out.txt",
			"cd dist",
			`echo "$VERSION $GREETING $PIPELINED_PIPELINE_NAME $PIPELINED_STAGE_NAME $PIPELINED_ACTION_NAME" > docs/info.txt`,
			`test "$CODEBUILD_SRC_DIR" = "$CODEBUILD_SRC_DIR_Code" && test -n "$PIPELINED_ID_TOKEN_REQUEST_URL"`,
			`test -z "$AWS_ACCESS_KEY_ID$PIPELINED_ROOT_SECRET" && test "$HOME" != /root`,
			`SHELLVAR=not-exported`,
		},
		EnvironmentVariables: []types.EnvironmentVariable{{Name: aws.String("GREETING"), Value: aws.String("hi-#{codepipeline.PipelineExecutionId}"), Type: types.EnvironmentVariableTypePlaintext}},
		OutputVariables:      []string{"VERSION", "SHELLVAR", "NEVERSET"},
		OutputArtifacts:      []types.OutputArtifact{{Name: aws.String("Dist"), Files: []string{"dist/**/*"}}},
	}
	deploy := &types.ActionDeclaration{Name: aws.String("Site"), ActionTypeId: s3DeployType,
		Configuration:  map[string]string{"BucketName": "site", "Extract": "true", "ObjectKey": "#{BuildVars.VERSION}"},
		InputArtifacts: []types.InputArtifact{{Name: aws.String("Dist")}}}
	t.Setenv("PIPELINED_ROOT_SECRET", "must-not-reach-jobs")
	if _, err := c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: commandsPipeline("app", build, deploy)}); err != nil {
		t.Fatal(err)
	}
	id, st := waitExecution(t, c, "app", 60*time.Second)
	if st != types.PipelineExecutionStatusSucceeded {
		code, msg := errorOf(actionOf(t, c, "app", id, "Build"))
		t.Fatalf("execution %s: %s (build: %s %s)\n%s", id, st, code, msg, srv.Logs())
	}
	a := actionOf(t, c, "app", id, "Build")
	vars := a.Output.OutputVariables
	if vars["VERSION"] != "1.2.3-built" || vars["SHELLVAR"] != "not-exported" {
		t.Errorf("output variables: %v", vars)
	}
	if _, ok := vars["NEVERSET"]; ok {
		t.Errorf("a variable the commands never set is an output: %v", vars)
	}
	for key, want := range map[string]string{
		"1.2.3-built/dist/out.txt":       "hello",
		"1.2.3-built/dist/docs/info.txt": "1.2.3-built hi-" + id + " app Build Build\n",
	} {
		obj, err := s3c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("site"), Key: aws.String(key)})
		if err != nil {
			t.Fatalf("deployed %s: %v", key, err)
		}
		body, _ := io.ReadAll(obj.Body)
		obj.Body.Close()
		if string(body) != want {
			t.Errorf("%s = %q, want %q", key, body, want)
		}
	}
	if _, err := s3c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("site"), Key: aws.String("1.2.3-built/main.txt")}); err == nil {
		t.Error("a file outside the files globs was put in the output artifact")
	}
}

func TestCommandsFailureCarriesCommandExitCodeAndTail(t *testing.T) {
	srv, _ := commandsServer(t)
	c := srv.Client()
	sourceObject(t, rootS3(srv), map[string]string{"a": "b"})
	build := types.ActionDeclaration{Commands: []string{
		"echo first line",
		`echo "token=$PIPELINED_ID_TOKEN_REQUEST_TOKEN"`,
		"echo to stderr >&2; false || true",
		"ls /nonexistent-dir-for-the-test",
		"echo never reached",
	}}
	if _, err := c.CreatePipeline(context.Background(), &codepipeline.CreatePipelineInput{Pipeline: commandsPipeline("fails", build, nil)}); err != nil {
		t.Fatal(err)
	}
	id, st := waitExecution(t, c, "fails", 60*time.Second)
	if st != types.PipelineExecutionStatusFailed {
		t.Fatalf("status %s", st)
	}
	code, msg := errorOf(actionOf(t, c, "fails", id, "Build"))
	for _, want := range []string{"Command 4 of 5 failed with exit code 2: ls /nonexistent-dir-for-the-test", "first line", "to stderr", "No such file or directory", "token=***"} {
		if !strings.Contains(msg, want) {
			t.Errorf("failure message lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "never reached") {
		t.Errorf("a command after the failing one ran:\n%s", msg)
	}
	if code != "JobFailed" {
		t.Errorf("error code %q", code)
	}
}

func TestCommandsTimeout(t *testing.T) {
	srv, started := commandsServer(t, func(c *server.Config) { c.Runner.MaxJobTimeout = 2 * time.Second })
	c := srv.Client()
	sourceObject(t, rootS3(srv), map[string]string{"a": "b"})
	build := types.ActionDeclaration{Commands: []string{"echo starting", "sleep 120"}}
	if _, err := c.CreatePipeline(context.Background(), &codepipeline.CreatePipelineInput{Pipeline: commandsPipeline("slow", build, nil)}); err != nil {
		t.Fatal(err)
	}
	id, st := waitExecution(t, c, "slow", 60*time.Second)
	if st != types.PipelineExecutionStatusFailed {
		t.Fatalf("status %s", st)
	}
	_, msg := errorOf(actionOf(t, c, "slow", id, "Build"))
	if !strings.Contains(msg, "did not finish within") || !strings.Contains(msg, "starting") {
		t.Errorf("message: %s", msg)
	}
	assertGroupGone(t, <-started.ch)
}

// assertGroupGone checks that no process of a job's group remains.
func assertGroupGone(t *testing.T, pgid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := syscall.Kill(-pgid, 0)
		if errors.Is(err, syscall.ESRCH) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process group %d still has processes (kill 0: %v)", pgid, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestCommandsStopAbandonKillsProcessGroup(t *testing.T) {
	srv, started := commandsServer(t)
	c := srv.Client()
	ctx := context.Background()
	sourceObject(t, rootS3(srv), map[string]string{"a": "b"})
	// A background child, one that ignores SIGTERM, and a foreground sleep.
	build := types.ActionDeclaration{Commands: []string{"sleep 300 &", "bash -c 'trap \"\" TERM; sleep 300' &", "sleep 300"}}
	if _, err := c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: commandsPipeline("stopme", build, nil)}); err != nil {
		t.Fatal(err)
	}
	var pgid int
	select {
	case pgid = <-started.ch:
	case <-time.After(60 * time.Second):
		t.Fatal("the job did not start")
	}
	out, err := c.ListPipelineExecutions(ctx, &codepipeline.ListPipelineExecutionsInput{PipelineName: aws.String("stopme")})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.PipelineExecutionSummaries[0].PipelineExecutionId)
	if err := syscall.Kill(-pgid, 0); err != nil {
		t.Fatalf("the job's group is not running: %v", err)
	}
	if _, err := c.StopPipelineExecution(ctx, &codepipeline.StopPipelineExecutionInput{PipelineName: aws.String("stopme"), PipelineExecutionId: aws.String(id), Abandon: true}); err != nil {
		t.Fatal(err)
	}
	assertGroupGone(t, pgid)
	if _, st := waitExecution(t, c, "stopme", 30*time.Second); st != types.PipelineExecutionStatusStopped {
		t.Errorf("status %s", st)
	}
}

func TestCommandsDeclarationRefusedWithField(t *testing.T) {
	srv, _ := commandsServer(t)
	c := srv.Client()
	long := strings.Repeat("x", 1001)
	many := make([]string, 51)
	for i := range many {
		many[i] = "true"
	}
	for _, tc := range []struct {
		name  string
		build types.ActionDeclaration
		want  string
	}{
		{"no commands", types.ActionDeclaration{}, "commands"},
		{"empty command", types.ActionDeclaration{Commands: []string{"true", ""}}, "commands[1] is empty"},
		{"over 50", types.ActionDeclaration{Commands: many}, "commands"},
		{"long line", types.ActionDeclaration{Commands: []string{long}}, "commands"},
		{"multi-line", types.ActionDeclaration{Commands: []string{"echo a\necho b"}}, "commands[0] spans several lines"},
		{"bad output variable", types.ActionDeclaration{Commands: []string{"true"}, OutputVariables: []string{"not-a-var"}}, "outputVariables[0]"},
		{"absolute glob", types.ActionDeclaration{Commands: []string{"true"}, OutputArtifacts: []types.OutputArtifact{{Name: aws.String("O"), Files: []string{"/etc/passwd"}}}}, "outputArtifacts[0].files[0] '/etc/passwd' is absolute"},
		{"dotdot glob", types.ActionDeclaration{Commands: []string{"true"}, OutputArtifacts: []types.OutputArtifact{{Name: aws.String("O"), Files: []string{"dist/../../x"}}}}, "contains '..'"},
		{"secrets manager", types.ActionDeclaration{Commands: []string{"true"}, EnvironmentVariables: []types.EnvironmentVariable{{Name: aws.String("TOKEN"), Value: aws.String("arn:x"), Type: types.EnvironmentVariableTypeSecretsManager}}}, "PIPELINED_ID_TOKEN_REQUEST_URL"},
		{"timeout over 55", types.ActionDeclaration{Commands: []string{"true"}, TimeoutInMinutes: aws.Int32(56)}, "timeoutInMinutes is 56"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.CreatePipeline(context.Background(), &codepipeline.CreatePipelineInput{Pipeline: commandsPipeline("bad", tc.build, nil)})
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v does not name %q", err, tc.want)
			}
		})
	}
}
