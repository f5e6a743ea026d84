package server_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/pipelined/pipelined/internal/server"
	"github.com/pipelined/pipelined/internal/server/servertest"
)

// scrape is one /metrics answer: series by name and labels.
type scrape map[string]float64

var seriesLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$`)

func scrapeMetrics(t *testing.T, srv *servertest.Instance) scrape {
	t.Helper()
	resp, err := srv.HTTP.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	out := scrape{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := seriesLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			t.Fatalf("metric line %q", sc.Text())
		}
		out[m[1]+m[2]] = v
	}
	return out
}

// get is a series' value; labels as written in the exposition, in
// Prometheus's (sorted) order: `a="x",b="y"`.
func (s scrape) get(name, labels string) (float64, bool) {
	if labels != "" {
		name += "{" + labels + "}"
	}
	v, ok := s[name]
	return v, ok
}

func (s scrape) want(t *testing.T, name, labels string, want float64) {
	t.Helper()
	if got, ok := s.get(name, labels); !ok || got != want {
		t.Errorf("%s{%s} = %v (present %v), want %v", name, labels, got, ok, want)
	}
}

func (s scrape) atLeast(t *testing.T, name, labels string, min float64) {
	t.Helper()
	if got, ok := s.get(name, labels); !ok || got < min {
		t.Errorf("%s{%s} = %v (present %v), want at least %v", name, labels, got, ok, min)
	}
}

// logLine finds the log line of an event (its msg) carrying every given
// attribute (key=value as slog's text handler writes it, value prefix for
// "key=" alone).
func logLine(t *testing.T, logs, msg string, attrs ...string) string {
	t.Helper()
	for line := range strings.SplitSeq(logs, "\n") {
		if !strings.Contains(line, `msg="`+msg+`"`) && !strings.Contains(line, "msg="+msg+" ") {
			continue
		}
		ok := true
		for _, a := range attrs {
			if !strings.Contains(line, " "+a) {
				ok = false
				break
			}
		}
		if ok {
			return line
		}
	}
	t.Errorf("no log line %q with %v", msg, attrs)
	return ""
}

// TestMetricsAndEventLogs runs a real pipeline (a worker on the job
// protocol, a manual approval, artifacts in the embedded S3 store) and
// checks that /metrics moved as it did and that the log has one line per
// event with its fields, and no secret.
func TestMetricsAndEventLogs(t *testing.T) {
	servertest.EachBackend(t, func(t *testing.T, backend servertest.Options) {
		srv, c := engineServer(t, backend, func(cfg *server.Config) { cfg.MetricsCountInterval = -1 })
		ctx := context.Background()
		const (
			source   = "Custom/Source/TestSource/1"
			build    = "Custom/Build/TestBuild/1"
			approval = "AWS/Approval/Manual/1"
		)

		// CreatePipeline starts an execution: its source job waits, as no
		// worker polls yet, and the gauge counts it from the database.
		if _, err := c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: runPipeline("obs", "")}); err != nil {
			t.Fatal(err)
		}
		m := scrapeMetrics(t, srv)
		m.want(t, "pipelined_jobs", `action_type="`+source+`",state="Queued"`, 1)
		m.want(t, "pipelined_jobs", `action_type="`+source+`",state="InProgress"`, 0)
		m.want(t, "pipelined_approvals_pending", "", 0)
		m.want(t, "pipelined_executions_started_total", `pipeline="obs",trigger="CreatePipeline"`, 1)

		w := startWorker(t, c, nil)
		token, execID := pendingApproval(t, c, "obs", "Approve")
		m = scrapeMetrics(t, srv)
		m.want(t, "pipelined_approvals_pending", "", 1)
		if _, ok := m.get("pipelined_jobs", `action_type="`+build+`",state="Queued"`); ok {
			t.Errorf("pipelined_jobs still reports %s with no open job", build)
		}
		if _, err := approve(t, c, "obs", token, types.ApprovalStatusApproved); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, c, "obs", execID, types.PipelineExecutionStatusSucceeded)

		// The embedded artifact store: an upload, a download and a request
		// signed with a wrong secret.
		s3c := rootS3(srv)
		payload := bytes.Repeat([]byte("pipelined"), 1000)
		if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("obs-bucket")}); err != nil {
			t.Fatal(err)
		}
		if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("obs-bucket"), Key: aws.String("site.zip"), Body: bytes.NewReader(payload)}); err != nil {
			t.Fatal(err)
		}
		if got, err := getObject(t, s3c, "obs-bucket", "site.zip"); err != nil || got != string(payload) {
			t.Fatalf("get: %v", err)
		}
		bad := rootS3With(srv, credentials.NewStaticCredentialsProvider(servertest.AccessKeyID, "wrong-secret-wrong-secret-wrong-secret00", ""))
		if _, err := bad.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("obs-bucket")}); err == nil {
			t.Fatal("a wrong secret was accepted")
		}
		if _, err := bad.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("obs-bucket")}); s3Code(err) != "SignatureDoesNotMatch" {
			t.Fatalf("wrong secret: %v", err)
		}
		// A failed API call.
		if _, err := c.GetPipeline(ctx, &codepipeline.GetPipelineInput{Name: aws.String("no-such-pipeline")}); err == nil {
			t.Fatal("GetPipeline of nothing succeeded")
		}

		m = scrapeMetrics(t, srv)
		m.want(t, "pipelined_executions_started_total", `pipeline="obs",trigger="CreatePipeline"`, 1)
		m.want(t, "pipelined_executions_finished_total", `pipeline="obs",status="Succeeded"`, 1)
		// Source, Build, Approve, Ship.
		m.want(t, "pipelined_stage_transitions_total", `status="Succeeded"`, 4)
		m.want(t, "pipelined_stage_transitions_total", `status="InProgress"`, 4)
		m.want(t, "pipelined_action_transitions_total", `action_type="`+build+`",status="InProgress"`, 4)
		m.want(t, "pipelined_action_transitions_total", `action_type="`+build+`",status="Succeeded"`, 4)
		m.want(t, "pipelined_action_transitions_total", `action_type="`+approval+`",status="Succeeded"`, 1)
		for typ, n := range map[string]float64{source: 1, build: 4} {
			m.want(t, "pipelined_jobs_queued_total", `action_type="`+typ+`"`, n)
			m.want(t, "pipelined_jobs_dispatched_total", `action_type="`+typ+`"`, n)
			m.want(t, "pipelined_jobs_finished_total", `action_type="`+typ+`",status="Succeeded"`, n)
			m.want(t, "pipelined_job_wait_seconds_count", `action_type="`+typ+`"`, n)
			if _, ok := m.get("pipelined_jobs", `action_type="`+typ+`",state="Queued"`); ok {
				t.Errorf("pipelined_jobs reports %s after every job finished", typ)
			}
		}
		m.want(t, "pipelined_approvals_decided_total", `result="Approved"`, 1)
		m.want(t, "pipelined_approvals_pending", "", 0)
		// Long polls have their own histogram, and are not in the latency
		// of requests.
		m.atLeast(t, "pipelined_api_long_poll_duration_seconds_count", `operation="PollForJobs"`, 5)
		if _, ok := m.get("pipelined_api_request_duration_seconds_count", `operation="PollForJobs"`); ok {
			t.Error("PollForJobs is in pipelined_api_request_duration_seconds")
		}
		m.atLeast(t, "pipelined_api_request_duration_seconds_count", `operation="PutJobSuccessResult"`, 5)
		// The artifact store.
		m.atLeast(t, "pipelined_s3_requests_total", `code="",method="PUT"`, 2) // and the artifact bucket, made at CreatePipeline
		m.want(t, "pipelined_s3_requests_total", `code="",method="GET"`, 1)
		m.want(t, "pipelined_s3_requests_total", `code="SignatureDoesNotMatch",method="GET"`, 1)
		m.atLeast(t, "pipelined_s3_received_bytes_total", `method="PUT"`, float64(len(payload)))
		m.atLeast(t, "pipelined_s3_sent_bytes_total", `method="GET"`, float64(len(payload)))

		// The log: one line per event, with its fields.
		logs := srv.Logs()
		logLine(t, logs, "execution started", "pipeline=obs", "execution_id="+execID, "trigger=CreatePipeline", "caller=arn:aws:iam::")
		logLine(t, logs, "execution finished", "pipeline=obs", "execution_id="+execID, "status=Succeeded", "duration=")
		jobs := w.jobs()
		for _, j := range jobs {
			logLine(t, logs, "job dispatched", "job_id="+aws.ToString(j.Id), "pipeline=obs", "waited=")
			logLine(t, logs, "job finished", "job_id="+aws.ToString(j.Id), "status=Succeeded", "duration=")
		}
		logLine(t, logs, "approval decided", "pipeline=obs", "execution_id="+execID, "stage=Approve", "action=Gate", "result=Approved", "by=arn:aws:iam::")
		logLine(t, logs, "request failed", "operation=GetPipeline", "access_key_id="+servertest.AccessKeyID, "remote_addr=127.0.0.1:")
		line := logLine(t, logs, "s3 request refused", "level=INFO", "access_key_id="+servertest.AccessKeyID, "remote_addr=127.0.0.1:", "code=SignatureDoesNotMatch")
		if strings.Contains(line, "Signature=") || strings.Contains(line, "X-Amz-Signature") {
			t.Errorf("the refusal logs a signature: %s", line)
		}
		secrets := []string{servertest.SecretAccessKey, "wrong-secret-wrong-secret-wrong-secret00", "s3cr3t-build-token", token}
		for _, j := range jobs {
			secrets = append(secrets, aws.ToString(j.Nonce))
			if ac := j.Data.ArtifactCredentials; ac != nil {
				secrets = append(secrets, aws.ToString(ac.SecretAccessKey), aws.ToString(ac.SessionToken))
			}
		}
		for _, s := range secrets {
			if s != "" && strings.Contains(logs, s) {
				t.Errorf("the log carries a secret (%.6s...)", s)
			}
		}
	})
}

// TestMetricsEndpointNeedsNoCredentials: /metrics answers the text format
// to an unsigned GET (Prometheus scrapes without AWS signatures).
func TestMetricsEndpointNeedsNoCredentials(t *testing.T) {
	srv := servertest.Start(t)
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "\npipelined_approvals_pending 0\n") {
		t.Errorf("/metrics: %d %.300s", resp.StatusCode, body)
	}
}
