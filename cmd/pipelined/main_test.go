package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline/types"
	"github.com/aws/smithy-go"

	"github.com/pipelined/pipelined/internal/pgtest"
)

// binary is the pipelined binary built once for the tests in this package.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pipelined-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "pipelined")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build pipelined:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func TestHelpExplainsEveryFlag(t *testing.T) {
	out, err := exec.Command(binary, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("--help: %v\n%s", err, out)
	}
	for _, want := range []string{"--listen", "PIPELINED_LISTEN", "--data-dir", "--database", "--public-url", "--region", "--account-id",
		"PIPELINED_ROOT_ACCESS_KEY_ID", "PIPELINED_ROOT_SECRET_ACCESS_KEY", "PIPELINED_MASTER_KEY", "serve", "version"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("--help does not mention %s", want)
		}
	}
	out, err = exec.Command(binary, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "pipelined ") {
		t.Errorf("version: %q %v", out, err)
	}
	if err := exec.Command(binary, "frobnicate").Run(); err == nil {
		t.Error("an unknown command exited 0")
	}
	cmd := exec.Command(binary, "serve", "--log-level", "loud")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "--log-level") {
		t.Errorf("a bad flag value was not reported: %q %v", out, err)
	}
}

// replica is one running `pipelined serve` process.
type replica struct {
	cmd  *exec.Cmd
	url  string
	logs *bytes.Buffer
	done chan error
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

const (
	rootKey    = "PLAKREPLICATEST00000"
	rootSecret = "replica-test-secret-0123456789abcdefghij"
	masterKey  = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
)

// startReplica runs `pipelined serve` with configuration from the
// environment, as an operator would, and waits for /healthz.
func startReplica(t *testing.T, database, dataDir string) *replica {
	t.Helper()
	addr := freeAddr(t)
	cmd := exec.Command(binary, "serve")
	cmd.Env = append(os.Environ(),
		"PIPELINED_LISTEN="+addr, "PIPELINED_DATA_DIR="+dataDir, "PIPELINED_DATABASE="+database,
		"PIPELINED_ROOT_ACCESS_KEY_ID="+rootKey, "PIPELINED_ROOT_SECRET_ACCESS_KEY="+rootSecret,
		"PIPELINED_MASTER_KEY="+masterKey, "PIPELINED_ACCOUNT_ID=123456789012", "PIPELINED_LOG_LEVEL=warn",
		"PIPELINED_JOB_POLL_WAIT=5s",
	)
	return launch(t, cmd, "http://"+addr)
}

// launch starts a replica's command and waits for /healthz.
func launch(t *testing.T, cmd *exec.Cmd, url string) *replica {
	t.Helper()
	r := &replica{cmd: cmd, url: url, logs: &bytes.Buffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = r.logs, r.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-r.done
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(r.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return r
			}
		}
		select {
		case err := <-r.done:
			t.Fatalf("replica exited: %v\n%s", err, r.logs)
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("replica did not become healthy\n%s", r.logs)
	return nil
}

func (r *replica) client() *codepipeline.Client {
	return codepipeline.New(codepipeline.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(r.url), RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(rootKey, rootSecret, ""),
	})
}

func pipelineNamed(name, marker string) *types.PipelineDeclaration {
	return &types.PipelineDeclaration{
		Name: aws.String(name), RoleArn: aws.String("arn:aws:iam::123456789012:role/r"),
		ArtifactStore: &types.ArtifactStore{Type: types.ArtifactStoreTypeS3, Location: aws.String("artifacts")},
		Stages: []types.StageDeclaration{
			{Name: aws.String("Source"), Actions: []types.ActionDeclaration{{
				Name:            aws.String("Fetch"),
				ActionTypeId:    &types.ActionTypeId{Category: types.ActionCategorySource, Owner: types.ActionOwnerAws, Provider: aws.String("S3"), Version: aws.String("1")},
				Configuration:   map[string]string{"S3Bucket": "b", "S3ObjectKey": "k"},
				OutputArtifacts: []types.OutputArtifact{{Name: aws.String("App")}},
			}}},
			{Name: aws.String("Approve"), Actions: []types.ActionDeclaration{{
				Name:          aws.String("Gate"),
				ActionTypeId:  &types.ActionTypeId{Category: types.ActionCategoryApproval, Owner: types.ActionOwnerAws, Provider: aws.String("Manual"), Version: aws.String("1")},
				Configuration: map[string]string{"CustomData": marker},
			}}},
		},
	}
}

func errCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	if err != nil {
		return err.Error()
	}
	return ""
}

// TestTwoReplicasOnOnePostgres runs two `pipelined serve` processes on one
// PostgreSQL database: what one writes the other reads, and concurrent
// updates through both never lose an update or skip a version.
func TestTwoReplicasOnOnePostgres(t *testing.T) {
	dsn := pgtest.DSN(t)
	a := startReplica(t, dsn, t.TempDir())
	b := startReplica(t, dsn, t.TempDir())
	ca, cb := a.client(), b.client()
	ctx := context.Background()

	if _, err := ca.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: pipelineNamed("shared", "v1")}); err != nil {
		t.Fatal(err)
	}
	got, err := cb.GetPipeline(ctx, &codepipeline.GetPipelineInput{Name: aws.String("shared")})
	if err != nil {
		t.Fatalf("B cannot read what A created: %v", err)
	}
	got.Pipeline.Stages[1].Actions[0].Configuration["CustomData"] = "from B"
	if _, err := cb.UpdatePipeline(ctx, &codepipeline.UpdatePipelineInput{Pipeline: got.Pipeline}); err != nil {
		t.Fatal(err)
	}
	fromA, err := ca.GetPipeline(ctx, &codepipeline.GetPipelineInput{Name: aws.String("shared")})
	if err != nil || aws.ToInt32(fromA.Pipeline.Version) != 2 || fromA.Pipeline.Stages[1].Actions[0].Configuration["CustomData"] != "from B" {
		t.Fatalf("A does not see B's update: %+v %v", fromA, err)
	}

	// Both replicas read version 2, both update it with the version pinned:
	// exactly one wins, the other gets ConcurrentModificationException.
	var wg sync.WaitGroup
	codes := make([]string, 2)
	for i, c := range []*codepipeline.Client{ca, cb} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := pipelineNamed("shared", fmt.Sprint("pinned-", i))
			p.Version = aws.Int32(2)
			_, err := c.UpdatePipeline(ctx, &codepipeline.UpdatePipelineInput{Pipeline: p})
			codes[i] = errCode(err)
		}()
	}
	wg.Wait()
	if !((codes[0] == "" && codes[1] == "ConcurrentModificationException") || (codes[1] == "" && codes[0] == "ConcurrentModificationException")) {
		t.Fatalf("pinned concurrent updates: %q, want one success and one ConcurrentModificationException", codes)
	}

	// Many unpinned concurrent updates through both replicas: every success
	// is exactly one stored version, versions are consecutive, and each
	// version holds what its caller sent.
	const workers, perWorker = 6, 10
	var mu sync.Mutex
	versionOf := map[int]string{} // version -> marker its caller sent
	failures := 0
	for w := range workers {
		c := []*codepipeline.Client{ca, cb}[w%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				marker := fmt.Sprintf("w%d-%d", w, i)
				out, err := c.UpdatePipeline(ctx, &codepipeline.UpdatePipelineInput{Pipeline: pipelineNamed("shared", marker)})
				mu.Lock()
				if err != nil {
					if errCode(err) != "ConcurrentModificationException" {
						t.Errorf("update %s: %v", marker, err)
					}
					failures++
				} else {
					v := int(aws.ToInt32(out.Pipeline.Version))
					if prev, dup := versionOf[v]; dup {
						t.Errorf("version %d returned to both %s and %s", v, prev, marker)
					}
					versionOf[v] = marker
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	latest, err := cb.GetPipeline(ctx, &codepipeline.GetPipelineInput{Name: aws.String("shared")})
	if err != nil {
		t.Fatal(err)
	}
	last := int(aws.ToInt32(latest.Pipeline.Version))
	if want := 3 + len(versionOf); last != want {
		t.Fatalf("latest version %d, want %d (3 + %d successful updates; %d refused)", last, want, len(versionOf), failures)
	}
	for v := 4; v <= last; v++ {
		c := []*codepipeline.Client{ca, cb}[v%2]
		got, err := c.GetPipeline(ctx, &codepipeline.GetPipelineInput{Name: aws.String("shared"), Version: aws.Int32(int32(v))})
		if err != nil {
			t.Fatalf("version %d: %v", v, err)
		}
		if m := got.Pipeline.Stages[1].Actions[0].Configuration["CustomData"]; m != versionOf[v] {
			t.Errorf("version %d holds %q, but its caller sent %q", v, m, versionOf[v])
		}
	}
	t.Logf("%d concurrent updates: %d stored as consecutive versions 4..%d, %d refused with ConcurrentModificationException", workers*perWorker, len(versionOf), last, failures)

	// A worker long-polling replica A learns within milliseconds of a job
	// queued through replica B (LISTEN/NOTIFY across replicas).
	if _, err := ca.CreateCustomActionType(ctx, &codepipeline.CreateCustomActionTypeInput{
		Category: types.ActionCategorySource, Provider: aws.String("Wake"), Version: aws.String("1"),
		InputArtifactDetails: &types.ArtifactDetails{MinimumCount: 0, MaximumCount: 0}, OutputArtifactDetails: &types.ArtifactDetails{MinimumCount: 1, MaximumCount: 1},
	}); err != nil {
		t.Fatal(err)
	}
	wakeType := &types.ActionTypeId{Category: types.ActionCategorySource, Owner: types.ActionOwnerCustom, Provider: aws.String("Wake"), Version: aws.String("1")}
	type polled struct {
		jobs int
		at   time.Time
	}
	polls := make(chan polled, 1)
	go func() {
		out, err := ca.PollForJobs(ctx, &codepipeline.PollForJobsInput{ActionTypeId: wakeType})
		if err != nil {
			t.Error(err)
			polls <- polled{}
			return
		}
		polls <- polled{len(out.Jobs), time.Now()}
	}()
	time.Sleep(300 * time.Millisecond)
	wp := pipelineNamed("woken", "x")
	wp.Stages[0].Actions[0].ActionTypeId = wakeType
	wp.Stages[0].Actions[0].Configuration = nil
	if _, err := cb.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: wp}); err != nil {
		t.Fatal(err)
	}
	queued := time.Now()
	p := <-polls
	if p.jobs != 1 || p.at.Sub(queued) > time.Second {
		t.Fatalf("the poll on A got %d jobs %v after B queued one", p.jobs, p.at.Sub(queued))
	}
	t.Logf("job queued on B → poll waiting on A answered %v later", p.at.Sub(queued))

	// The replicas started together created one OIDC key set between them
	// (a compare-and-swap in the store): both publish the same keys.
	jwks := func(r *replica) string {
		resp, err := http.Get(r.url + "/.well-known/jwks")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.Contains(string(b), `"kid"`) {
			t.Fatalf("JWKS of %s: %d %s", r.url, resp.StatusCode, b)
		}
		return string(b)
	}
	if ja, jb := jwks(a), jwks(b); ja != jb {
		t.Fatalf("the replicas publish different keys:\n%s\n%s", ja, jb)
	}

	if _, err := ca.DeletePipeline(ctx, &codepipeline.DeletePipelineInput{Name: aws.String("shared")}); err != nil {
		t.Fatal(err)
	}
	if _, err := cb.GetPipeline(ctx, &codepipeline.GetPipelineInput{Name: aws.String("shared")}); errCode(err) != "PipelineNotFoundException" {
		t.Fatalf("B still sees the pipeline A deleted: %v", err)
	}
}

// TestSIGTERMShutsDownGracefully: the process exits 0 on SIGTERM and its
// data is there on the next start.
func TestSIGTERMShutsDownGracefully(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "p.db")
	r := startReplica(t, db, dir)
	if _, err := r.client().CreatePipeline(context.Background(), &codepipeline.CreatePipelineInput{Pipeline: pipelineNamed("kept", "x")}); err != nil {
		t.Fatal(err)
	}
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, r.logs)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no exit within 20s of SIGTERM")
	}
	r2 := startReplica(t, db, dir)
	if _, err := r2.client().GetPipeline(context.Background(), &codepipeline.GetPipelineInput{Name: aws.String("kept")}); err != nil {
		t.Fatalf("after restart: %v", err)
	}
}
