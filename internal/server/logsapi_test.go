package server_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline"

	"github.com/pipelined/pipelined/internal/engine"
	"github.com/pipelined/pipelined/internal/server"
	"github.com/pipelined/pipelined/internal/server/servertest"
)

// actionExecOf is the action execution id of a job: its log stream's name.
func actionExecOf(t *testing.T, srv *servertest.Instance, jobID string) string {
	t.Helper()
	j, err := srv.Store().GetJob(context.Background(), jobID)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := engine.DecodeJob(j)
	if err != nil {
		t.Fatal(err)
	}
	return doc.ActionExec
}

// appendAll appends data to a job's log in pieces of at most 1 MiB, as a
// runner does.
func appendAll(t *testing.T, srv *servertest.Instance, jobID string, data []byte) {
	t.Helper()
	ctx := context.Background()
	off := int64(0)
	if ls, err := srv.Store().GetLogStream(ctx, jobID); err == nil {
		off = ls.Length
	}
	for len(data) > 0 {
		n := min(len(data), 1<<20)
		acked, err := srv.JobLogs().Append(ctx, jobID, off, data[:n])
		if err != nil || acked != off+int64(n) {
			t.Fatalf("append at %d: %d %v", off, acked, err)
		}
		off, data = acked, data[n:]
	}
}

func logsEnv(srv *servertest.Instance) []string {
	return append(environWithout("AWS_"),
		"AWS_ENDPOINT_URL="+srv.URL,
		"AWS_ACCESS_KEY_ID="+servertest.AccessKeyID, "AWS_SECRET_ACCESS_KEY="+servertest.SecretAccessKey,
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null",
		"AWS_DEFAULT_REGION="+servertest.Region, "AWS_RETRY_MODE=standard", "AWS_MAX_ATTEMPTS=1",
	)
}

// TestCompatibilityLogs runs compat/test_logs.py (boto3) against a pipeline
// whose two jobs have logs: a finished, compacted one of 100,000 lines
// (plus a line longer than an event and an unterminated last line) that
// FilterLogEvents and GetLogEvents page through, and a running one.
func TestCompatibilityLogs(t *testing.T) {
	if testing.Short() {
		t.Skip("compatibility tests start python; skipped with -short")
	}
	requireTool(t, "python3", "-c", "import boto3")
	srv, c := engineServer(t, func(*server.Config) {})
	ctx := context.Background()
	big, _ := heldJob(t, c, "logs-read")
	const lines, long = 100_000, 70_000
	var b bytes.Buffer
	for i := range lines {
		fmt.Fprintf(&b, "line %06d\n", i)
	}
	b.WriteString(strings.Repeat("x", long) + "\n")
	b.WriteString("no newline")
	appendAll(t, srv, *big.Id, b.Bytes())
	// The source job succeeds; its log is finished and compacted (the
	// sweeper would do it within seconds; the test does not wait).
	if _, err := c.PutJobSuccessResult(ctx, &codepipeline.PutJobSuccessResultInput{JobId: big.Id}); err != nil {
		t.Fatal(err)
	}
	if err := srv.JobLogs().Finish(ctx, *big.Id); err != nil {
		t.Fatal(err)
	}
	// The build job runs, with a short log still open.
	out, err := c.PollForJobs(ctx, &codepipeline.PollForJobsInput{ActionTypeId: buildType})
	if err != nil || len(out.Jobs) != 1 {
		t.Fatalf("poll build: %v %v", out, err)
	}
	small := out.Jobs[0]
	if _, err := c.AcknowledgeJob(ctx, &codepipeline.AcknowledgeJobInput{JobId: small.Id, Nonce: small.Nonce}); err != nil {
		t.Fatal(err)
	}
	appendAll(t, srv, *small.Id, []byte("small one\nsmall two\nsmall three\nsmall fo"))

	script, _ := filepath.Abs("../../compat/test_logs.py")
	cmd := exec.Command("python3", script)
	cmd.Env = append(logsEnv(srv),
		"LOGS_GROUP=/aws/codepipeline/logs-read",
		"LOGS_STREAM_BIG="+actionExecOf(t, srv, *big.Id), "LOGS_STREAM_SMALL="+actionExecOf(t, srv, *small.Id),
		fmt.Sprintf("LOGS_BIG_LINES=%d", lines), fmt.Sprintf("LOGS_LONG=%d", long),
	)
	start := time.Now()
	outb, err := cmd.CombinedOutput()
	t.Logf("test_logs.py output (%s):\n%s", time.Since(start).Round(time.Millisecond), outb)
	if err != nil {
		t.Fatalf("test_logs.py failed: %v", err)
	}
	if strings.Contains(srv.Logs(), "line 0") || strings.Contains(srv.Logs(), "small two") {
		t.Error("the server logged log contents")
	}
}

// awsCLIv2 finds the aws CLI version 2 (`aws logs tail` is a v2 command;
// Debian's awscli package is v2 and installs /usr/bin/aws).
func awsCLIv2(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("PIPELINED_AWS_CLI_V2"), "/usr/bin/aws", "aws"} {
		if p == "" {
			continue
		}
		out, err := exec.Command(p, "--version").CombinedOutput()
		if err == nil && strings.HasPrefix(string(out), "aws-cli/2") {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("the aws CLI v2 is required in CI (apt-get install awscli)")
	}
	t.Skip("the aws CLI v2 is not installed (apt-get install awscli); `aws logs tail` is a v2 command")
	return ""
}

// TestLogsTailFollow: `aws logs tail --follow` (the aws CLI, a real
// process) shows the lines of a running job as they are appended.
func TestLogsTailFollow(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the aws CLI; skipped with -short")
	}
	cli := awsCLIv2(t)
	srv, c := engineServer(t, func(*server.Config) {})
	job, _ := heldJob(t, c, "tailed")
	appendAll(t, srv, *job.Id, []byte("first line\n"))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, cli, "logs", "tail", "/aws/codepipeline/tailed", "--endpoint-url", srv.URL, "--follow", "--format", "short", "--since", "1h")
	cmd.Env = logsEnv(srv)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	expect := func(want string) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("aws logs tail ended before %q; stderr: %s", want, stderr.String())
				}
				if strings.HasSuffix(l, " "+want) {
					return
				}
				t.Fatalf("aws logs tail printed %q, want %q", l, want)
			case <-deadline:
				t.Fatalf("aws logs tail did not print %q within 30s; stderr: %s", want, stderr.String())
			}
		}
	}
	expect("first line")
	appendAll(t, srv, *job.Id, []byte("second line\nthird"))
	expect("second line")
	appendAll(t, srv, *job.Id, []byte(" line\n"))
	expect("third line")
	_ = aws.String
}
