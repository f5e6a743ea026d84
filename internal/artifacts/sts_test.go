package artifacts

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/pipelined/pipelined/internal/artifacts/mototest"
)

func s3Client(url string, creds aws.CredentialsProvider) *s3.Client {
	return s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(url), UsePathStyle: true, Credentials: creds, RetryMaxAttempts: 1})
}

func TestSTSAgainstMoto(t *testing.T) {
	url := mototest.Start(t)
	ctx := t.Context()
	base := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIAOPERATOR", "operator-secret", "")}
	m, err := NewSTS(ctx, STSConfig{RoleARN: "arn:aws:iam::123456789012:role/pipelined-jobs", Endpoint: url, TTL: 15 * time.Minute, AWS: &base})
	if err != nil {
		t.Fatal(err)
	}
	admin := s3Client(url, base.Credentials)
	if _, err := admin.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("artifacts")}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("artifacts"), Key: aws.String("app/Src/in1"), Body: strings.NewReader("input")}); err != nil {
		t.Fatal(err)
	}

	scope := Scope{JobID: "0f8fad5b-d9cb-469f-a165-70867728950e", Bucket: "artifacts", Read: []string{"app/Src/in1"}, Write: []string{"app/Out/out1"}}
	before := time.Now()
	creds, exp, err := m.Mint(ctx, scope)
	if err != nil {
		t.Fatal(err)
	}
	if creds.AccessKeyId == "" || creds.SecretAccessKey == "" || creds.SessionToken == "" {
		t.Fatalf("STS gave incomplete credentials (akid %q)", creds.AccessKeyId)
	}
	if d := exp.Sub(before); d < 14*time.Minute || d > 16*time.Minute {
		t.Errorf("credentials expire in %v, want 15m (DurationSeconds)", d)
	}
	// Reused while more than half of the lifetime is left.
	again, _, err := m.Mint(ctx, scope)
	if err != nil || again != creds {
		t.Fatalf("a second Mint did not reuse the credentials: %v", err)
	}

	// The worker's side: the S3 client with the job's credentials writes
	// the output object and reads the input. (moto does not enforce the
	// session policy; TestSessionPolicy checks the policy itself.)
	worker := s3Client(url, credentials.NewStaticCredentialsProvider(creds.AccessKeyId, creds.SecretAccessKey, creds.SessionToken))
	if _, err := worker.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("artifacts"), Key: aws.String("app/Out/out1"), Body: strings.NewReader("output")}); err != nil {
		t.Fatalf("writing the output object with the job's credentials: %v", err)
	}
	got, err := worker.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("artifacts"), Key: aws.String("app/Src/in1")})
	if err != nil {
		t.Fatalf("reading the input object with the job's credentials: %v", err)
	}
	b, _ := io.ReadAll(got.Body)
	got.Body.Close()
	if string(b) != "input" {
		t.Fatalf("input object = %q", b)
	}
	out, err := admin.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("artifacts"), Key: aws.String("app/Out/out1")})
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(out.Body)
	out.Body.Close()
	if string(b) != "output" {
		t.Fatalf("output object = %q", b)
	}

	// A failing STS call is an error that names the job, not credentials.
	bad, err := NewSTS(context.Background(), STSConfig{RoleARN: "arn:aws:iam::123456789012:role/r", Endpoint: "http://127.0.0.1:1", AWS: &base})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := bad.Mint(ctx, scope); err == nil || !strings.Contains(err.Error(), scope.JobID) {
		t.Fatalf("Mint against a dead STS: %v", err)
	}
}
