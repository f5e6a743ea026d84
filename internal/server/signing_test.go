package server_test

import (
	"bytes"
	"context"
	"crypto/hmac"
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
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/pipelined/pipelined/internal/server/servertest"
)

// captured is a request as it went over the wire, for replaying.
type captured struct {
	header http.Header
	body   []byte
}

// captureTransport records the requests an SDK client sends.
type captureTransport struct {
	next http.RoundTripper
	reqs []captured
}

func (c *captureTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	var body []byte
	if r.Body != nil {
		body, _ = io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	c.reqs = append(c.reqs, captured{header: r.Header.Clone(), body: body})
	return c.next.RoundTrip(r)
}

// send posts a request with exactly the given headers and body.
func send(t *testing.T, url string, h http.Header, body []byte) rawResponse {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h.Clone()
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

func pipelineSurvives(t *testing.T, srv *servertest.Instance, name string) {
	t.Helper()
	if _, err := srv.Client().GetPipeline(context.Background(), &codepipeline.GetPipelineInput{Name: aws.String(name)}); err != nil {
		t.Fatalf("pipeline %s is gone: %v", name, err)
	}
}

// TestJSONAPISignatureMustCoverTarget: a GetPipeline request is not a
// DeletePipeline request. A captured request replayed with another
// X-Amz-Target is refused, whether the target was signed (the signature no
// longer matches) or left out of the signature (refused outright).
func TestJSONAPISignatureMustCoverTarget(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()
	if _, err := srv.Client().CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: examplePipeline("keep")}); err != nil {
		t.Fatal(err)
	}

	// 1. The SDK's own GetPipeline, captured and replayed as DeletePipeline.
	capture := &captureTransport{next: http.DefaultTransport}
	c := codepipeline.New(codepipeline.Options{
		Region: servertest.Region, BaseEndpoint: aws.String(srv.URL), RetryMaxAttempts: 1,
		Credentials: srv.Client().Options().Credentials, HTTPClient: &http.Client{Transport: capture},
	})
	if _, err := c.GetPipeline(ctx, &codepipeline.GetPipelineInput{Name: aws.String("keep")}); err != nil {
		t.Fatal(err)
	}
	got := capture.reqs[len(capture.reqs)-1]
	h := got.header.Clone()
	h.Set("X-Amz-Target", "CodePipeline_20150709.DeletePipeline")
	if r := send(t, srv.URL+"/", h, got.body); r.status != 403 || r.body["__type"] != "InvalidSignatureException" {
		t.Fatalf("replayed signed GetPipeline as DeletePipeline: %d %s", r.status, r.raw)
	}
	pipelineSurvives(t, srv, "keep")

	// 2. A GetPipeline whose signature leaves X-Amz-Target out (as a
	// careless or hostile client may sign it), then the same as DeletePipeline.
	body := []byte(`{"name":"keep"}`)
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	sum := sha256.Sum256(body)
	rootSigner(req, hex.EncodeToString(sum[:])) // signs without X-Amz-Target
	if strings.Contains(req.Header.Get("Authorization"), "x-amz-target") {
		t.Fatal("test setup: the target was signed")
	}
	for _, op := range []string{"GetPipeline", "DeletePipeline"} {
		h := req.Header.Clone()
		h.Set("X-Amz-Target", "CodePipeline_20150709."+op)
		r := send(t, srv.URL+"/", h, body)
		if r.status != 403 || r.body["__type"] != "InvalidSignatureException" ||
			r.body["message"] != "'X-Amz-Target' must be a 'SignedHeader' in the AWS Authorization." {
			t.Fatalf("%s with an unsigned X-Amz-Target: %d %s", op, r.status, r.raw)
		}
	}
	pipelineSurvives(t, srv, "keep")
}

// TestJSONAPIRefusesPresignedURLs: a presigned POST / (query-string
// authentication) signs neither the body nor the target; the JSON API
// refuses it before looking at either.
func TestJSONAPIRefusesPresignedURLs(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()
	if _, err := srv.Client().CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: examplePipeline("keep")}); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/?X-Amz-Expires=300", nil)
	req.Header.Set("X-Amz-Target", "CodePipeline_20150709.DeletePipeline")
	u, signed, err := v4.NewSigner().PresignHTTP(ctx, aws.Credentials{AccessKeyID: servertest.AccessKeyID, SecretAccessKey: servertest.SecretAccessKey},
		req, "UNSIGNED-PAYLOAD", "codepipeline", servertest.Region, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	h := signed.Clone()
	h.Set("Content-Type", "application/x-amz-json-1.1")
	r := send(t, u, h, []byte(`{"name":"keep"}`))
	if r.status != 400 || r.body["__type"] != "IncompleteSignatureException" || !strings.Contains(r.raw, "Authorization header") {
		t.Fatalf("presigned POST /: %d %s", r.status, r.raw)
	}
	pipelineSurvives(t, srv, "keep")
}

// TestJSONAPISignatureMustCoverDate: the date a request carries must be
// signed, or a captured request could be replayed forever with a fresh
// date. The Go SDK always signs X-Amz-Date, so this request is signed by
// hand, the date header left out of SignedHeaders.
func TestJSONAPISignatureMustCoverDate(t *testing.T) {
	srv := servertest.Start(t)
	body := []byte(`{}`)
	now := time.Now().UTC()
	amzDate := now.Format("20060102T150405Z")
	host := strings.TrimPrefix(srv.URL, "http://")
	bodySum := sha256.Sum256(body)
	payload := hex.EncodeToString(bodySum[:])
	creq := strings.Join([]string{"POST", "/", "",
		"host:" + host, "x-amz-target:CodePipeline_20150709.ListPipelines", "",
		"host;x-amz-target", payload}, "\n")
	scope := now.Format("20060102") + "/" + servertest.Region + "/codepipeline/aws4_request"
	creqSum := sha256.Sum256([]byte(creq))
	sts := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(creqSum[:])
	mac := func(key []byte, s string) []byte {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(s))
		return m.Sum(nil)
	}
	key := mac(mac(mac(mac([]byte("AWS4"+servertest.SecretAccessKey), now.Format("20060102")), servertest.Region), "codepipeline"), "aws4_request")
	h := http.Header{}
	h.Set("X-Amz-Target", "CodePipeline_20150709.ListPipelines")
	h.Set("X-Amz-Date", amzDate)
	h.Set("Content-Type", "application/x-amz-json-1.1")
	h.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+servertest.AccessKeyID+"/"+scope+", SignedHeaders=host;x-amz-target, Signature="+hex.EncodeToString(mac(key, sts)))
	r := send(t, srv.URL+"/", h, body)
	if r.status != 403 || r.body["__type"] != "InvalidSignatureException" ||
		r.body["message"] != "'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization." {
		t.Fatalf("unsigned X-Amz-Date: %d %s", r.status, r.raw)
	}
}

// TestS3PresignedURLExpiry: the S3 API keeps presigned URLs, within their
// X-Amz-Expires and not after.
func TestS3PresignedURLExpiry(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()
	c := rootS3(srv)
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("shared")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("shared"), Key: aws.String("a.txt"), Body: strings.NewReader("hello")}); err != nil {
		t.Fatal(err)
	}
	get := func(signedAt time.Time, expires time.Duration) (int, string) {
		p := s3.NewPresignClient(c, func(o *s3.PresignOptions) { o.Expires = expires })
		pr, err := p.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("shared"), Key: aws.String("a.txt")},
			func(o *s3.PresignOptions) {
				o.Presigner = presignAt{v4.NewSigner(), signedAt}
			})
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(pr.Method, pr.URL, nil)
		for k, v := range pr.SignedHeader {
			if k != "Host" {
				req.Header[k] = v
			}
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(time.Now(), 5*time.Minute); code != 200 || body != "hello" {
		t.Fatalf("fresh presigned URL: %d %s", code, body)
	}
	code, body := get(time.Now().Add(-10*time.Minute), 5*time.Minute)
	if code != 403 || !strings.Contains(body, "<Code>AccessDenied</Code>") || !strings.Contains(body, "<Message>Request has expired</Message>") {
		t.Fatalf("expired presigned URL: %d %s", code, body)
	}
}

// presignAt presigns as if at a given time.
type presignAt struct {
	s  *v4.Signer
	at time.Time
}

func (p presignAt) PresignHTTP(ctx context.Context, creds aws.Credentials, r *http.Request, payloadHash, service, region string, _ time.Time, opts ...func(*v4.SignerOptions)) (string, http.Header, error) {
	return p.s.PresignHTTP(ctx, creds, r, payloadHash, service, region, p.at, opts...)
}
