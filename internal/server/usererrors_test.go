package server_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/codepipeline"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/pipelined/pipelined/internal/server/servertest"
)

// Errors a user can act on (issue 11, item 9).

// TestSerializationErrorsNameFieldAndType: a body of the wrong shape is
// answered in JSON terms, the member's path and the type it must have,
// never Go's type names.
func TestSerializationErrorsNameFieldAndType(t *testing.T) {
	srv := servertest.Start(t)
	cases := []struct{ target, body, want string }{
		{"ListPipelines", `[]`, "The request body must be a JSON object (structure), got JSON array"},
		{"GetPipeline", `{"name": 5}`, "Unexpected value for member 'name': expected a string, got JSON number"},
		{"CreatePipeline", `{"pipeline":{"name":"p","stages":{}}}`, "Unexpected value for member 'pipeline.stages': expected a JSON array (list) of JSON objects (structures), got JSON object"},
		{"CreatePipeline", `{"pipeline":{"stages":[{"actions":[{"configuration":["a"]}]}]}}`, "Unexpected value for member 'pipeline.stages.actions.configuration': expected a JSON object (map) of strings, got JSON array"},
		{"ListPipelines", `{"maxResults":"ten"}`, "Unexpected value for member 'maxResults': expected an integer, got JSON string"},
	}
	for _, tc := range cases {
		r := rawCall(t, srv.URL, "CodePipeline_20150709."+tc.target, tc.body, rootSigner)
		msg, _ := r.body["message"].(string)
		if r.status != 400 || r.body["__type"] != "SerializationException" || msg != tc.want {
			t.Errorf("%s %s: %d %s\nwant message %q", tc.target, tc.body, r.status, r.raw, tc.want)
		}
		if strings.Contains(r.raw, "wire.") || strings.Contains(r.raw, "Go ") {
			t.Errorf("%s %s: Go names in %s", tc.target, tc.body, r.raw)
		}
	}
}

// TestWrongRegionNamesTheExpectedOne: a client configured for another
// region is told which region the server expects, on every API.
func TestWrongRegionNamesTheExpectedOne(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()
	_, err := srv.ClientWith(servertest.AccessKeyID, servertest.SecretAccessKey, "eu-west-1").ListPipelines(ctx, &codepipeline.ListPipelinesInput{})
	wantCode(t, err, "InvalidSignatureException")
	if !strings.Contains(err.Error(), "this server expects 'us-east-1', not 'eu-west-1'") {
		t.Fatalf("CodePipeline API, wrong region: %v", err)
	}
	c := s3.New(s3.Options{Region: "eu-west-1", BaseEndpoint: rootS3(srv).Options().BaseEndpoint, UsePathStyle: true,
		Credentials: rootS3(srv).Options().Credentials, RetryMaxAttempts: 1, HTTPClient: srv.HTTP})
	_, err = c.ListBuckets(ctx, &s3.ListBucketsInput{})
	if s3Code(err) != "AuthorizationHeaderMalformed" || !strings.Contains(err.Error(), "this server expects 'us-east-1'") {
		t.Fatalf("S3 API, wrong region: %v", err)
	}
}

// TestLandingPage: a browser opening the server's URL is sent to the web
// console; any other client learns what the server is and where its
// endpoints are; a signed S3 ListBuckets on GET / still reaches the
// artifact store.
func TestLandingPage(t *testing.T) {
	srv := servertest.Start(t)
	browserReq, _ := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
	browserReq.Header.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if resp, err := noFollow.Do(browserReq); err != nil || resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/" {
		t.Fatalf("GET / from a browser: %v %v, want a redirect to /console/", resp, err)
	}
	for _, accept := range []string{"*/*", ""} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		page := string(b)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Fatalf("GET / (Accept %q): %d %s %s", accept, resp.StatusCode, resp.Header.Get("Content-Type"), page)
		}
		for _, want := range []string{"pipelined", "CodePipeline API", srv.URL + "/console/", srv.URL + "/healthz", srv.URL + "/metrics", "aws codepipeline list-pipelines --endpoint-url " + srv.URL} {
			if !strings.Contains(page, want) {
				t.Errorf("landing page lacks %q:\n%s", want, page)
			}
		}
		if strings.Contains(page, "AccessDenied") {
			t.Errorf("landing page is S3's error: %s", page)
		}
	}
	ctx := context.Background()
	if _, err := rootS3(srv).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: awsString("landing")}); err != nil {
		t.Fatal(err)
	}
	out, err := rootS3(srv).ListBuckets(ctx, &s3.ListBucketsInput{})
	if err != nil || len(out.Buckets) == 0 {
		t.Fatalf("signed ListBuckets on GET /: %v %+v", err, out)
	}
}

func awsString(s string) *string { return &s }
