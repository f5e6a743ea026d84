package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline"

	"github.com/pipelined/pipelined/internal/server/servertest"
)

type rawResponse struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

// rawCall sends a signed AWS JSON request with the given target and body,
// as an SDK would, but lets the test break the rules.
func rawCall(t testing.TB, url, target, body string, sign func(r *http.Request, payloadHash string)) rawResponse {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	if target != "" {
		req.Header.Set("X-Amz-Target", target)
	}
	sum := sha256.Sum256([]byte(body))
	if sign != nil {
		sign(req, hex.EncodeToString(sum[:]))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := rawResponse{status: resp.StatusCode, header: resp.Header, raw: string(b)}
	_ = json.Unmarshal(b, &out.body)
	return out
}

func signWith(akid, secret, region string, at time.Time) func(*http.Request, string) {
	return func(r *http.Request, hash string) {
		err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: akid, SecretAccessKey: secret}, r, hash, "codepipeline", region, at)
		if err != nil {
			panic(err)
		}
	}
}

var rootSigner = signWith(servertest.AccessKeyID, servertest.SecretAccessKey, servertest.Region, time.Now())

func TestProtocolErrors(t *testing.T) {
	srv := servertest.Start(t)
	cases := []struct {
		name, target, body string
		status             int
		code               string
	}{
		{"malformed JSON", "CodePipeline_20150709.ListPipelines", "{not json", 400, "SerializationException"},
		{"wrong member type", "CodePipeline_20150709.GetPipeline", `{"name": 5}`, 400, "SerializationException"},
		{"unknown operation", "CodePipeline_20150709.LaunchRockets", "{}", 400, "UnknownOperationException"},
		{"missing target", "", "{}", 400, "UnknownOperationException"},
		{"other service's target", "DynamoDB_20120810.ListTables", "{}", 400, "UnknownOperationException"}, // (Logs_20140328 is served: the job logs API)
		{"operation not built yet", "CodePipeline_20150709.PutWebhook", `{"webhook":{"name":"w","targetPipeline":"p","targetAction":"a","filters":[{"jsonPath":"$.ref"}],"authentication":"UNAUTHENTICATED","authenticationConfiguration":{}}}`, 400, "UnsupportedOperationException"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := rawCall(t, srv.URL, tc.target, tc.body, rootSigner)
			if r.status != tc.status || r.body["__type"] != tc.code {
				t.Fatalf("got %d %s, want %d %s", r.status, r.raw, tc.status, tc.code)
			}
			if msg, _ := r.body["message"].(string); msg == "" {
				t.Errorf("no message: %s", r.raw)
			}
			if r.header.Get("x-amzn-RequestId") == "" {
				t.Error("no x-amzn-RequestId")
			}
		})
	}
	r := rawCall(t, srv.URL, "CodePipeline_20150709.PutWebhook", `{"webhook":{"name":"w","targetPipeline":"p","targetAction":"a","filters":[{"jsonPath":"$.ref"}],"authentication":"UNAUTHENTICATED","authenticationConfiguration":{}}}`, rootSigner)
	if !strings.Contains(r.body["message"].(string), "PutWebhook") {
		t.Errorf("not-built message does not name the operation: %s", r.raw)
	}
}

func TestTimestampsAreEpochSecondsAndRequestIDOnSuccess(t *testing.T) {
	srv := servertest.Start(t)
	if _, err := srv.Client().CreatePipeline(context.Background(), &codepipeline.CreatePipelineInput{Pipeline: examplePipeline("ts")}); err != nil {
		t.Fatal(err)
	}
	r := rawCall(t, srv.URL, "CodePipeline_20150709.GetPipeline", `{"name":"ts"}`, rootSigner)
	if r.status != 200 || r.header.Get("x-amzn-RequestId") == "" || r.header.Get("Content-Type") != "application/x-amz-json-1.1" {
		t.Fatalf("status %d headers %v", r.status, r.header)
	}
	meta := r.body["metadata"].(map[string]any)
	created, ok := meta["created"].(float64)
	if !ok {
		t.Fatalf("created is %T, want a JSON number: %s", meta["created"], r.raw)
	}
	if d := time.Since(time.Unix(int64(created), 0)); d < 0 || d > time.Minute {
		t.Errorf("created %v is not now", created)
	}
}

func TestAuthenticationFailuresStoreNothing(t *testing.T) {
	srv := servertest.Start(t)
	body := `{"pipeline":` + sneakyPipelineJSON + `}`
	target := "CodePipeline_20150709.CreatePipeline"
	cases := []struct {
		name   string
		sign   func(*http.Request, string)
		status int
		code   string
	}{
		{"no signature", nil, 400, "MissingAuthenticationTokenException"},
		{"malformed authorization", func(r *http.Request, _ string) {
			r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=abc")
			r.Header.Set("X-Amz-Date", time.Now().UTC().Format("20060102T150405Z"))
		}, 400, "IncompleteSignatureException"},
		{"wrong secret", signWith(servertest.AccessKeyID, "wrong-secret", servertest.Region, time.Now()), 403, "InvalidSignatureException"},
		{"unknown key", signWith("AKIAUNKNOWN000000000", servertest.SecretAccessKey, servertest.Region, time.Now()), 403, "UnrecognizedClientException"},
		{"wrong region", signWith(servertest.AccessKeyID, servertest.SecretAccessKey, "eu-west-1", time.Now()), 403, "InvalidSignatureException"},
		{"stale date", signWith(servertest.AccessKeyID, servertest.SecretAccessKey, servertest.Region, time.Now().Add(-16*time.Minute)), 403, "InvalidSignatureException"},
		{"future date", signWith(servertest.AccessKeyID, servertest.SecretAccessKey, servertest.Region, time.Now().Add(16*time.Minute)), 403, "InvalidSignatureException"},
		{"tampered body", func(r *http.Request, hash string) {
			rootSigner(r, hash)
			tampered := strings.Replace(body, "sneaky", "sneakz", 1)
			r.Body = io.NopCloser(strings.NewReader(tampered))
			r.ContentLength = int64(len(tampered))
		}, 403, "InvalidSignatureException"},
		{"unsigned payload", func(r *http.Request, _ string) {
			r.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
			rootSigner(r, "UNSIGNED-PAYLOAD")
		}, 403, "InvalidSignatureException"},
		{"wrong service", func(r *http.Request, hash string) {
			_ = v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: servertest.AccessKeyID, SecretAccessKey: servertest.SecretAccessKey}, r, hash, "s3", servertest.Region, time.Now())
		}, 403, "InvalidSignatureException"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := rawCall(t, srv.URL, target, body, tc.sign)
			if r.status != tc.status || r.body["__type"] != tc.code {
				t.Fatalf("got %d %s, want %d %s", r.status, r.raw, tc.status, tc.code)
			}
			if strings.Contains(r.raw, servertest.SecretAccessKey) {
				t.Error("the response contains the secret key")
			}
		})
	}
	n, err := srv.Store().CountPipelines(context.Background())
	if err != nil || n != 0 {
		t.Fatalf("rejected requests stored %d pipelines (%v)", n, err)
	}
	if strings.Contains(srv.Logs(), servertest.SecretAccessKey) {
		t.Error("the logs contain the root secret")
	}
	// The real client with wrong credentials gets the typed error too.
	_, err = srv.ClientWith(servertest.AccessKeyID, "nope", servertest.Region).ListPipelines(context.Background(), &codepipeline.ListPipelinesInput{})
	wantCode(t, err, "InvalidSignatureException")
}

func TestHealthz(t *testing.T) {
	srv := servertest.Start(t)
	resp, err := http.Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("healthz = %d", resp.StatusCode)
	}
	resp, err = http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(b, []byte("go_goroutines")) {
		t.Errorf("metrics lack the Go collector")
	}
}

// sneakyPipelineJSON is a valid CreatePipeline pipeline in wire JSON (the
// SDK's types carry no JSON tags, so it is written out).
const sneakyPipelineJSON = `{"name":"sneaky","roleArn":"arn:aws:iam::123456789012:role/pipelined","artifactStore":{"type":"S3","location":"artifacts"},` +
	`"stages":[{"name":"Source","actions":[{"name":"Fetch","actionTypeId":{"category":"Source","owner":"AWS","provider":"S3","version":"1"},"configuration":{"S3Bucket":"src","S3ObjectKey":"app.zip"},"outputArtifacts":[{"name":"App"}]}]},` +
	`{"name":"Approve","actions":[{"name":"Gate","actionTypeId":{"category":"Approval","owner":"AWS","provider":"Manual","version":"1"}}]}]}`
