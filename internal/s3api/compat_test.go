package s3api

import (
	"context"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// needTool skips (or, in CI, fails) when a command is missing.
func needTool(t *testing.T, name string, args ...string) {
	t.Helper()
	if err := exec.Command(name, args...).Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required in CI: %v", name, err)
		}
		t.Skipf("%s not available (%v); skipping", name, err)
	}
}

// pythonEnv is the environment for boto3 and the aws CLI: our endpoint,
// the job's credentials and our CA, and path-style addressing.
func pythonEnv(t *testing.T, env *testEnv) []string {
	return pythonEnvAs(t, env, jobAKID, jobSecret, jobToken)
}

// pythonEnvAs is pythonEnv with other credentials (token "" for none).
func pythonEnvAs(t *testing.T, env *testEnv, akid, secret, token string) []string {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: env.srv.Certificate().Raw}), 0o600)
	cfg := filepath.Join(dir, "config")
	os.WriteFile(cfg, []byte("[default]\ns3 =\n    addressing_style = path\n"), 0o600)
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			out = append(out, kv)
		}
	}
	if token != "" {
		out = append(out, "AWS_SESSION_TOKEN="+token)
	}
	return append(out,
		"AWS_ENDPOINT_URL="+env.srv.URL,
		"AWS_ACCESS_KEY_ID="+akid,
		"AWS_SECRET_ACCESS_KEY="+secret,
		"AWS_DEFAULT_REGION="+testRegion,
		"AWS_CA_BUNDLE="+ca,
		"AWS_CONFIG_FILE="+cfg,
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "none"),
		"AWS_EC2_METADATA_DISABLED=true",
	)
}

const boto3Script = `
import sys, boto3
from boto3.s3.transfer import TransferConfig
s3 = boto3.client("s3")
cfg = TransferConfig(multipart_threshold=8*1024*1024, multipart_chunksize=8*1024*1024, max_concurrency=4)
op, bucket, key, path = sys.argv[1:5]
if op == "upload":
    s3.upload_file(path, bucket, key, Config=cfg)
else:
    s3.download_file(bucket, key, path, Config=cfg)
`

func TestBoto3AndAWSCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("100 MB transfers skipped with -short")
	}
	needTool(t, "python3", "-c", "import boto3")
	env := newEnv(t)
	ctx := context.Background()
	if _, err := env.root3().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("artifacts")}); err != nil {
		t.Fatal(err)
	}
	penv := pythonEnv(t, env)
	tmp := t.TempDir()
	src, sum := randomFile(t, tmp, 100<<20, 2)
	run := func(t *testing.T, name string, args ...string) { t.Helper(); runTool(t, penv, name, args...) }
	script := filepath.Join(tmp, "xfer.py")
	os.WriteFile(script, []byte(boto3Script), 0o600)

	t.Run("boto3", func(t *testing.T) {
		run(t, "python3", script, "upload", "artifacts", "job1/boto3.bin", src)
		dst := filepath.Join(tmp, "boto3.down")
		run(t, "python3", script, "download", "artifacts", "job1/boto3.bin", dst)
		if fileSHA(t, dst) != sum {
			t.Fatal("boto3 round trip changed the bytes")
		}
	})
	t.Run("awscli", func(t *testing.T) {
		needTool(t, "aws", "--version")
		run(t, "aws", "s3", "cp", "--only-show-errors", src, "s3://artifacts/job1/cli.bin")
		dst := filepath.Join(tmp, "cli.down")
		run(t, "aws", "s3", "cp", "--only-show-errors", "s3://artifacts/job1/cli.bin", dst)
		if fileSHA(t, dst) != sum {
			t.Fatal("aws s3 cp round trip changed the bytes")
		}
		// A small file too (a single PutObject).
		small := filepath.Join(tmp, "small")
		os.WriteFile(small, []byte("small artifact"), 0o600)
		run(t, "aws", "s3", "cp", "--only-show-errors", small, "s3://artifacts/job1/small")
		run(t, "aws", "s3", "cp", "--only-show-errors", "s3://artifacts/job1/small", small+".down")
		if b, _ := os.ReadFile(small + ".down"); string(b) != "small artifact" {
			t.Fatalf("small round trip: %q", b)
		}
	})
	payloads, chunked := env.wire.snapshot()
	t.Logf("payload hashes seen: %v; aws-chunked requests: %d", payloads, chunked)
	if chunked == 0 {
		t.Error("botocore never sent an aws-chunked body")
	}
}

// BenchmarkPutGet100MB measures a 100 MB PutObject and GetObject through
// the handler over loopback (plain HTTP, signed with the SDK, unsigned
// payload), against copying 100 MB between files on the same disk.
func BenchmarkPutGet100MB(b *testing.B) {
	const size = 100 << 20
	root := b.TempDir()
	h, err := New(filepath.Join(root, "store"), testRegion, testAuth{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	c := s3.New(s3.Options{
		Region: testRegion, BaseEndpoint: aws.String(srv.URL), UsePathStyle: true,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: rootAKID, SecretAccessKey: rootSecret}, nil
		}),
	})
	ctx := context.Background()
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bench")}); err != nil {
		b.Fatal(err)
	}
	src, _ := randomFile(b, root, size, 3)

	b.Run("PUT", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			f, _ := os.Open(src)
			_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bench"), Key: aws.String("obj"), Body: f,
				ContentLength: aws.Int64(size)}, s3.WithAPIOptions(v4UnsignedPayload))
			f.Close()
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("GET", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			g, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("bench"), Key: aws.String("obj")})
			if err != nil {
				b.Fatal(err)
			}
			n, _ := io.Copy(io.Discard, g.Body)
			g.Body.Close()
			if n != size {
				b.Fatalf("got %d bytes", n)
			}
		}
	})
	b.Run("FileCopy", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			in, _ := os.Open(src)
			out, _ := os.Create(filepath.Join(root, "copy"))
			if _, err := io.Copy(out, in); err != nil {
				b.Fatal(err)
			}
			out.Sync()
			out.Close()
			in.Close()
		}
	})
	_ = http.NoBody
}

// v4UnsignedPayload makes the SDK sign UNSIGNED-PAYLOAD over plain HTTP
// rather than hash the body first, as it does over HTTPS.
var v4UnsignedPayload = v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware
