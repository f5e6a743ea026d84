package builtin_test

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awscreds "github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline"
	cptypes "github.com/aws/aws-sdk-go-v2/service/codepipeline/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/pipelined/pipelined/internal/builtin"
	"github.com/pipelined/pipelined/internal/server"
	"github.com/pipelined/pipelined/internal/server/servertest"
)

// ---------------------------------------------------------------------------
// An S3 to test against: moto_server, started once for the package.
// ---------------------------------------------------------------------------

var moto struct {
	once sync.Once
	url  string
	err  error
	cmd  *exec.Cmd
	logs bytes.Buffer
}

func TestMain(m *testing.M) {
	code := m.Run()
	if moto.cmd != nil {
		_ = moto.cmd.Process.Kill()
		_ = moto.cmd.Wait()
	}
	os.Exit(code)
}

// motoURL starts moto_server (once) and returns its URL. Without it the
// test is skipped with a message, or fails in CI (CI=true).
func motoURL(t *testing.T) string {
	t.Helper()
	moto.once.Do(func() {
		path, err := exec.LookPath("moto_server")
		if err != nil {
			moto.err = fmt.Errorf("moto_server is not installed (pip install 'moto[server]'): %w", err)
			return
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			moto.err = err
			return
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		cmd := exec.Command(path, "-H", "127.0.0.1", "-p", fmt.Sprint(port))
		cmd.Stdout, cmd.Stderr = &moto.logs, &moto.logs
		if err := cmd.Start(); err != nil {
			moto.err = err
			return
		}
		moto.cmd = cmd
		url := fmt.Sprintf("http://127.0.0.1:%d", port)
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			resp, err := http.Get(url + "/moto-api/")
			if err == nil {
				resp.Body.Close()
				moto.url = url
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		moto.err = fmt.Errorf("moto_server did not answer within 30s")
	})
	if moto.err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("S3 for the built-in action tests: %v", moto.err)
		}
		t.Skipf("skipping: %v", moto.err)
	}
	return moto.url
}

// s3env is an S3 the server's built-in actions and the test both use.
type s3env struct {
	opts servertest.Options
	// client is the test's own client of that S3.
	client func(srv *servertest.Instance) *s3.Client
	// versioned: the store keeps object versions.
	versioned bool
	// createsArtifactBucket: the store creates a missing artifact bucket on
	// first use (the embedded one does; an external S3's must exist).
	createsArtifactBucket bool
}

func motoEnv(t *testing.T) s3env {
	url := motoURL(t)
	creds := awscreds.NewStaticCredentialsProvider("testing", "testing", "")
	c := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(url), UsePathStyle: true, Credentials: creds})
	return s3env{
		client: func(*servertest.Instance) *s3.Client { return c },
		opts: func(c *server.Config) {
			c.BuiltinS3 = &builtin.Options{Endpoint: url, Region: "us-east-1", Credentials: creds, ClaimInterval: 200 * time.Millisecond}
		},
		versioned: true,
	}
}

// embeddedEnv is the server's own S3 store (the default), reached with the
// root credentials.
func embeddedEnv() s3env {
	return s3env{
		createsArtifactBucket: true,
		opts:                  func(*server.Config) {},
		client: func(srv *servertest.Instance) *s3.Client {
			return s3.New(s3.Options{Region: servertest.Region, BaseEndpoint: aws.String(srv.URL), UsePathStyle: true, HTTPClient: srv.HTTP,
				Credentials: awscreds.NewStaticCredentialsProvider(servertest.AccessKeyID, servertest.SecretAccessKey, "")})
		},
	}
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

var (
	s3Source = &cptypes.ActionTypeId{Category: cptypes.ActionCategorySource, Owner: cptypes.ActionOwnerAws, Provider: aws.String("S3"), Version: aws.String("1")}
	s3Deploy = &cptypes.ActionTypeId{Category: cptypes.ActionCategoryDeploy, Owner: cptypes.ActionOwnerAws, Provider: aws.String("S3"), Version: aws.String("1")}
)

var bucketSeq struct {
	sync.Mutex
	n int
}

// bucket creates a bucket with a unique name.
func bucket(t *testing.T, c *s3.Client, what string, versioned bool) string {
	t.Helper()
	bucketSeq.Lock()
	bucketSeq.n++
	name := fmt.Sprintf("%s-%d-%d", what, time.Now().UnixNano()%1e9, bucketSeq.n)
	bucketSeq.Unlock()
	ctx := context.Background()
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
	if versioned {
		if _, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(name),
			VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled}}); err != nil {
			t.Fatal(err)
		}
	}
	return name
}

func zipOf(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for name, body := range files {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, body)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func put(t *testing.T, c *s3.Client, bucket, key string, body []byte) *s3.PutObjectOutput {
	t.Helper()
	out, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body)})
	if err != nil {
		t.Fatalf("put s3://%s/%s: %v", bucket, key, err)
	}
	return out
}

type object struct {
	body         string
	contentType  string
	cacheControl string
}

func get(t *testing.T, c *s3.Client, bucket, key string) object {
	t.Helper()
	out, err := c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get s3://%s/%s: %v", bucket, key, err)
	}
	defer out.Body.Close()
	b, _ := io.ReadAll(out.Body)
	return object{body: string(b), contentType: aws.ToString(out.ContentType), cacheControl: aws.ToString(out.CacheControl)}
}

// pipeline is Source (S3) → Deploy (S3, two actions: extracted and whole).
func pipeline(name, artifacts, srcBucket, srcKey, site string, srcConfig map[string]string) *cptypes.PipelineDeclaration {
	cfg := map[string]string{"S3Bucket": srcBucket, "S3ObjectKey": srcKey}
	for k, v := range srcConfig {
		cfg[k] = v
	}
	return &cptypes.PipelineDeclaration{
		Name: aws.String(name), RoleArn: aws.String("arn:aws:iam::123456789012:role/r"),
		ArtifactStore: &cptypes.ArtifactStore{Type: cptypes.ArtifactStoreTypeS3, Location: aws.String(artifacts)},
		Stages: []cptypes.StageDeclaration{
			{Name: aws.String("Source"), Actions: []cptypes.ActionDeclaration{{
				Name: aws.String("Fetch"), ActionTypeId: s3Source, Namespace: aws.String("SourceVariables"),
				Configuration: cfg, OutputArtifacts: []cptypes.OutputArtifact{{Name: aws.String("App")}},
			}}},
			{Name: aws.String("Deploy"), Actions: []cptypes.ActionDeclaration{
				{Name: aws.String("Site"), ActionTypeId: s3Deploy, InputArtifacts: []cptypes.InputArtifact{{Name: aws.String("App")}},
					Configuration: map[string]string{"BucketName": site, "Extract": "true", "ObjectKey": "web/#{SourceVariables.ETag}", "CacheControl": "max-age=60"}},
				{Name: aws.String("Bundle"), ActionTypeId: s3Deploy, InputArtifacts: []cptypes.InputArtifact{{Name: aws.String("App")}},
					Configuration: map[string]string{"BucketName": site, "Extract": "false", "ObjectKey": "bundles/app.zip"}},
			}},
		},
	}
}

func executions(t *testing.T, c *codepipeline.Client, name string) []cptypes.PipelineExecutionSummary {
	t.Helper()
	out, err := c.ListPipelineExecutions(context.Background(), &codepipeline.ListPipelineExecutionsInput{PipelineName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	return out.PipelineExecutionSummaries
}

// waitDone waits for an execution to finish and returns its status.
func waitDone(t *testing.T, c *codepipeline.Client, name, id string) cptypes.PipelineExecutionStatus {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := c.GetPipelineExecution(context.Background(), &codepipeline.GetPipelineExecutionInput{PipelineName: aws.String(name), PipelineExecutionId: aws.String(id)})
		if err != nil {
			t.Fatal(err)
		}
		switch st := out.PipelineExecution.Status; st {
		case cptypes.PipelineExecutionStatusInProgress, cptypes.PipelineExecutionStatusStopping:
		default:
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("execution %s of %s did not finish within 30s", id, name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// actionError is the error of an action's latest execution.
func actionError(t *testing.T, c *codepipeline.Client, name, stage, action string) (string, string) {
	t.Helper()
	st, err := c.GetPipelineState(context.Background(), &codepipeline.GetPipelineStateInput{Name: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st.StageStates {
		for _, a := range s.ActionStates {
			if aws.ToString(s.StageName) == stage && aws.ToString(a.ActionName) == action && a.LatestExecution != nil && a.LatestExecution.ErrorDetails != nil {
				return aws.ToString(a.LatestExecution.ErrorDetails.Code), aws.ToString(a.LatestExecution.ErrorDetails.Message)
			}
		}
	}
	return "", ""
}

func startServer(t *testing.T, env s3env, more ...servertest.Options) (*servertest.Instance, *codepipeline.Client) {
	t.Helper()
	opts := append([]servertest.Options{env.opts, func(c *server.Config) { c.SweepInterval = 20 * time.Millisecond }}, more...)
	srv := servertest.Start(t, opts...)
	return srv, srv.Client()
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

func TestS3PipelineEndToEnd(t *testing.T) {
	t.Run("moto", func(t *testing.T) { runEndToEnd(t, motoEnv(t)) })
	t.Run("embedded", func(t *testing.T) { runEndToEnd(t, embeddedEnv()) })
}

func runEndToEnd(t *testing.T, env s3env) {
	srv, c := startServer(t, env, func(c *server.Config) { c.SourcePollInterval = -1 })
	s3c := env.client(srv)
	ctx := context.Background()
	src, arts, site := bucket(t, s3c, "src", env.versioned), bucket(t, s3c, "artifacts", false), bucket(t, s3c, "site", false)
	archive := zipOf(t, map[string]string{
		"index.html": "<h1>hello</h1>", "css/app.css": "body{}", "img/logo.png": "PNG", "data/blob.bin": "\x00\x01", "README": "read me",
	})
	putOut := put(t, s3c, src, "app.zip", archive)
	etag := strings.Trim(aws.ToString(putOut.ETag), `"`)
	version := aws.ToString(putOut.VersionId)
	if env.versioned == (version == "") {
		t.Fatalf("version id %q from a store that keeps versions: %v", version, env.versioned)
	}
	revision := version
	if revision == "" {
		revision = etag
	}

	if _, err := c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: pipeline("site", arts, src, "app.zip", site, map[string]string{"PollForSourceChanges": "false"})}); err != nil {
		t.Fatal(err)
	}
	xs := executions(t, c, "site")
	if len(xs) != 1 {
		t.Fatalf("executions after create: %d", len(xs))
	}
	id := aws.ToString(xs[0].PipelineExecutionId)
	if st := waitDone(t, c, "site", id); st != cptypes.PipelineExecutionStatusSucceeded {
		code, msg := actionError(t, c, "site", "Deploy", "Site")
		scode, smsg := actionError(t, c, "site", "Source", "Fetch")
		t.Fatalf("execution %s: %s (source %s %s; deploy %s %s)\n%s", id, st, scode, smsg, code, msg, srv.Logs())
	}

	// The source action's variables and revision.
	acts, err := c.ListActionExecutions(ctx, &codepipeline.ListActionExecutionsInput{PipelineName: aws.String("site"),
		Filter: &cptypes.ActionExecutionFilter{PipelineExecutionId: aws.String(id)}})
	if err != nil {
		t.Fatal(err)
	}
	var sawSource bool
	for _, a := range acts.ActionExecutionDetails {
		if aws.ToString(a.ActionName) != "Fetch" {
			continue
		}
		sawSource = true
		vars := a.Output.OutputVariables
		want := map[string]string{"ETag": etag, "BucketName": src, "ObjectKey": "app.zip"}
		if version != "" {
			want["VersionId"] = version
		} else if _, ok := vars["VersionId"]; ok {
			t.Errorf("a VersionId from a store without versions: %v", vars)
		}
		for k, v := range want {
			if vars[k] != v {
				t.Errorf("output variable %s = %q, want %q (all: %v)", k, vars[k], v, vars)
			}
		}
	}
	if !sawSource {
		t.Fatalf("no action execution of the source: %+v", acts.ActionExecutionDetails)
	}
	x, err := c.GetPipelineExecution(ctx, &codepipeline.GetPipelineExecutionInput{PipelineName: aws.String("site"), PipelineExecutionId: aws.String(id)})
	if err != nil {
		t.Fatal(err)
	}
	if revs := x.PipelineExecution.ArtifactRevisions; len(revs) != 1 || aws.ToString(revs[0].RevisionId) != revision {
		t.Errorf("artifact revisions: %+v, want %s", revs, revision)
	}

	// The deployed files, extracted under the resolved prefix.
	prefix := "web/" + etag + "/"
	for key, want := range map[string]object{
		"index.html":    {body: "<h1>hello</h1>", contentType: "text/html; charset=utf-8", cacheControl: "max-age=60"},
		"css/app.css":   {body: "body{}", contentType: "text/css; charset=utf-8", cacheControl: "max-age=60"},
		"img/logo.png":  {body: "PNG", contentType: "image/png", cacheControl: "max-age=60"},
		"data/blob.bin": {body: "\x00\x01", contentType: "application/octet-stream", cacheControl: "max-age=60"},
		"README":        {body: "read me", contentType: "application/octet-stream", cacheControl: "max-age=60"},
	} {
		if got := get(t, s3c, site, prefix+key); got != want {
			t.Errorf("%s: got %+v, want %+v", prefix+key, got, want)
		}
	}
	// Extract=false: the artifact as one object.
	if got := get(t, s3c, site, "bundles/app.zip"); got.body != string(archive) || got.contentType != "application/zip" {
		t.Errorf("bundle: %d bytes of %s, want the %d bytes of the source zip", len(got.body), got.contentType, len(archive))
	}

	if !env.versioned {
		return
	}
	// A sourceRevisions override picks a version of the object.
	put(t, s3c, src, "app.zip", zipOf(t, map[string]string{"index.html": "<h1>v2</h1>"}))
	out, err := c.StartPipelineExecution(ctx, &codepipeline.StartPipelineExecutionInput{Name: aws.String("site"),
		SourceRevisions: []cptypes.SourceRevisionOverride{{ActionName: aws.String("Fetch"), RevisionType: cptypes.SourceRevisionTypeS3ObjectVersionId, RevisionValue: aws.String(version)}}})
	if err != nil {
		t.Fatal(err)
	}
	if st := waitDone(t, c, "site", aws.ToString(out.PipelineExecutionId)); st != cptypes.PipelineExecutionStatusSucceeded {
		t.Fatalf("override execution: %s", st)
	}
	if got := get(t, s3c, site, "bundles/app.zip"); got.body != string(archive) {
		t.Errorf("the override did not deploy the version it named")
	}
}

func TestS3SourcePolling(t *testing.T) {
	t.Run("moto", func(t *testing.T) { runPolling(t, motoEnv(t)) })
	t.Run("embedded", func(t *testing.T) { runPolling(t, embeddedEnv()) })
}

func runPolling(t *testing.T, env s3env) {
	fast := func(c *server.Config) { c.SourcePollInterval = 100 * time.Millisecond }
	srv, c := startServer(t, env, fast)
	s3c := env.client(srv)
	ctx := context.Background()
	src, arts, site := bucket(t, s3c, "src", false), bucket(t, s3c, "artifacts", false), bucket(t, s3c, "site", false)
	put(t, s3c, src, "app.zip", zipOf(t, map[string]string{"index.html": "v1"}))
	// PollForSourceChanges is absent: CodePipeline's default is true.
	if _, err := c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: pipeline("polled", arts, src, "app.zip", site, nil)}); err != nil {
		t.Fatal(err)
	}
	first := aws.ToString(executions(t, c, "polled")[0].PipelineExecutionId)
	if st := waitDone(t, c, "polled", first); st != cptypes.PipelineExecutionStatusSucceeded {
		t.Fatalf("first execution: %s\n%s", st, srv.Logs())
	}
	// An unchanged object starts nothing.
	time.Sleep(600 * time.Millisecond)
	if n := len(executions(t, c, "polled")); n != 1 {
		t.Fatalf("%d executions with no change, want 1", n)
	}

	// A changed object starts an execution, which deploys it.
	v2 := put(t, s3c, src, "app.zip", zipOf(t, map[string]string{"index.html": "v2"}))
	etag2 := strings.Trim(aws.ToString(v2.ETag), `"`)
	var second cptypes.PipelineExecutionSummary
	deadline := time.Now().Add(15 * time.Second)
	for {
		xs := executions(t, c, "polled")
		if len(xs) > 1 {
			if len(xs) != 2 {
				t.Fatalf("%d executions after one change, want 2", len(xs))
			}
			second = xs[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no execution started after the source changed\n%s", srv.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if second.Trigger == nil || second.Trigger.TriggerType != cptypes.TriggerTypePollForSourceChanges {
		t.Errorf("trigger: %+v, want PollForSourceChanges", second.Trigger)
	}
	if st := waitDone(t, c, "polled", aws.ToString(second.PipelineExecutionId)); st != cptypes.PipelineExecutionStatusSucceeded {
		t.Fatalf("second execution: %s", st)
	}
	if got := get(t, s3c, site, "web/"+etag2+"/index.html"); got.body != "v2" {
		t.Errorf("deployed %q, want v2", got.body)
	}
	time.Sleep(600 * time.Millisecond)
	if n := len(executions(t, c, "polled")); n != 2 {
		t.Fatalf("%d executions after one change, want 2", n)
	}

	// What was seen survives a restart: a new server on the same data
	// starts nothing for the unchanged object...
	dir := srv.DataDir
	stopAt := time.Now()
	srv.Stop(t)
	t.Logf("stopped in %v", time.Since(stopAt))
	srv2, c2 := startServer(t, env, fast, func(c *server.Config) { c.DataDir = dir })
	s3c = env.client(srv2)
	time.Sleep(800 * time.Millisecond)
	if n := len(executions(t, c2, "polled")); n != 2 {
		t.Fatalf("%d executions after a restart with no change, want 2\n%s", n, srv2.Logs())
	}
	// ...and one for the next change.
	put(t, s3c, src, "app.zip", zipOf(t, map[string]string{"index.html": "v3"}))
	deadline = time.Now().Add(15 * time.Second)
	for len(executions(t, c2, "polled")) != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("no execution after a change following a restart\n%s", srv2.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}

	// PollForSourceChanges=false: changes start nothing.
	if _, err := c2.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: pipeline("manual", arts, src, "app.zip", site, map[string]string{"PollForSourceChanges": "false"})}); err != nil {
		t.Fatal(err)
	}
	waitDone(t, c2, "manual", aws.ToString(executions(t, c2, "manual")[0].PipelineExecutionId))
	put(t, s3c, src, "app.zip", zipOf(t, map[string]string{"index.html": "v4"}))
	time.Sleep(800 * time.Millisecond)
	if n := len(executions(t, c2, "manual")); n != 1 {
		t.Fatalf("%d executions of a pipeline that does not poll, want 1", n)
	}
}

func TestS3ActionFailures(t *testing.T) {
	t.Run("moto", func(t *testing.T) { runFailures(t, motoEnv(t)) })
	t.Run("embedded", func(t *testing.T) { runFailures(t, embeddedEnv()) })
}

func runFailures(t *testing.T, env s3env) {
	srv, c := startServer(t, env, func(c *server.Config) { c.SourcePollInterval = -1 })
	s3c := env.client(srv)
	ctx := context.Background()
	src, arts, site := bucket(t, s3c, "src", false), bucket(t, s3c, "artifacts", false), bucket(t, s3c, "site", false)
	put(t, s3c, src, "notzip.zip", []byte("this is not a zip file"))
	put(t, s3c, src, "escape.zip", zipOf(t, map[string]string{"ok.txt": "fine", "../escape.txt": "nope"}))
	put(t, s3c, src, "abs.zip", zipOf(t, map[string]string{"/etc/passwd": "nope"}))
	put(t, s3c, src, "good.zip", zipOf(t, map[string]string{"index.html": "ok"}))

	for _, tc := range []struct {
		name, srcBucket, srcKey, site string
		artifacts                     string
		stage, action                 string
		code, message                 string
	}{
		{"missing-object", src, "nope.zip", site, arts, "Source", "Fetch", "JobFailed", "the object does not exist"},
		{"missing-source-bucket", "no-such-bucket-x1", "app.zip", site, arts, "Source", "Fetch", "ConfigurationError", "the bucket does not exist"},
		{"missing-artifact-bucket", src, "good.zip", site, "no-such-artifacts-x1", "Source", "Fetch", "ConfigurationError", "write the output artifact"},
		{"not-a-zip", src, "notzip.zip", site, arts, "Deploy", "Site", "JobFailed", "not a valid zip file"},
		{"dot-dot", src, "escape.zip", site, arts, "Deploy", "Site", "JobFailed", "leaves its directory"},
		{"absolute", src, "abs.zip", site, arts, "Deploy", "Site", "JobFailed", "absolute path"},
		{"missing-site-bucket", src, "good.zip", "no-such-site-x1", arts, "Deploy", "Site", "ConfigurationError", "s3://no-such-site-x1/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: pipeline(tc.name, tc.artifacts, tc.srcBucket, tc.srcKey, tc.site, map[string]string{"PollForSourceChanges": "false"})}); err != nil {
				t.Fatal(err)
			}
			id := aws.ToString(executions(t, c, tc.name)[0].PipelineExecutionId)
			if tc.name == "missing-artifact-bucket" && env.createsArtifactBucket {
				// The embedded store creates the artifact bucket on first use.
				if st := waitDone(t, c, tc.name, id); st != cptypes.PipelineExecutionStatusSucceeded {
					t.Fatalf("execution: %s, want Succeeded (the artifact bucket is created)", st)
				}
				if _, err := s3c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(tc.artifacts)}); err != nil {
					t.Fatalf("the artifact bucket was not created: %v", err)
				}
				return
			}
			if st := waitDone(t, c, tc.name, id); st != cptypes.PipelineExecutionStatusFailed {
				t.Fatalf("execution: %s, want Failed", st)
			}
			code, msg := actionError(t, c, tc.name, tc.stage, tc.action)
			t.Logf("%s/%s: %s: %s", tc.stage, tc.action, code, msg)
			if code != tc.code || !strings.Contains(msg, tc.message) {
				t.Errorf("%s/%s failed with %s %q, want %s and a message containing %q", tc.stage, tc.action, code, msg, tc.code, tc.message)
			}
		})
	}
	// Nothing of the rejected archives was written.
	out, err := s3c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(site)})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range out.Contents {
		if k := aws.ToString(o.Key); strings.Contains(k, "escape") || strings.Contains(k, "ok.txt") || strings.Contains(k, "passwd") {
			t.Errorf("a rejected archive wrote %s", k)
		}
	}
}
