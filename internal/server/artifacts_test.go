package server_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/pipelined/pipelined/internal/artifacts"
	"github.com/pipelined/pipelined/internal/artifacts/mototest"
	"github.com/pipelined/pipelined/internal/secrets"
	"github.com/pipelined/pipelined/internal/server"
	"github.com/pipelined/pipelined/internal/server/servertest"
	"github.com/pipelined/pipelined/internal/sigv4"
)

// artifactPipeline is Source (output Code) → Build (input Code, output
// Bin), on an artifact store with a KMS key.
func artifactPipeline(name string) *types.PipelineDeclaration {
	return &types.PipelineDeclaration{
		Name: aws.String(name), RoleArn: aws.String("arn:aws:iam::123456789012:role/r"),
		ArtifactStore: &types.ArtifactStore{Type: types.ArtifactStoreTypeS3, Location: aws.String("artifacts"),
			EncryptionKey: &types.EncryptionKey{Id: aws.String("arn:aws:kms:us-east-1:123456789012:key/k1"), Type: types.EncryptionKeyTypeKms}},
		Stages: []types.StageDeclaration{
			{Name: aws.String("Source"), Actions: []types.ActionDeclaration{{Name: aws.String("Checkout"), ActionTypeId: srcType,
				Configuration: map[string]string{"Repo": "app"}, OutputArtifacts: []types.OutputArtifact{{Name: aws.String("Code")}}}}},
			{Name: aws.String("Build"), Actions: []types.ActionDeclaration{{Name: aws.String("Compile"), ActionTypeId: buildType,
				Configuration: map[string]string{"Command": "make"}, InputArtifacts: []types.InputArtifact{{Name: aws.String("Code")}},
				OutputArtifacts: []types.OutputArtifact{{Name: aws.String("Bin")}}}}},
		},
	}
}

// jobS3 is the S3 client a worker makes from its job's artifactCredentials,
// pointed at the server (path-style).
func jobS3(srv *servertest.Instance, c *types.AWSSessionCredentials) *s3.Client {
	return rootS3With(srv, credentials.NewStaticCredentialsProvider(aws.ToString(c.AccessKeyId), aws.ToString(c.SecretAccessKey), aws.ToString(c.SessionToken)))
}

func rootS3With(srv *servertest.Instance, p aws.CredentialsProvider) *s3.Client {
	return s3.New(s3.Options{Region: servertest.Region, BaseEndpoint: aws.String(srv.URL), UsePathStyle: true,
		Credentials: p, RetryMaxAttempts: 1, HTTPClient: srv.HTTP})
}

func rootS3(srv *servertest.Instance) *s3.Client {
	return rootS3With(srv, credentials.NewStaticCredentialsProvider(servertest.AccessKeyID, servertest.SecretAccessKey, ""))
}

func s3Code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	if err != nil {
		return "error: " + err.Error()
	}
	return ""
}

func pollOne(t *testing.T, c *codepipeline.Client, typ *types.ActionTypeId) types.Job {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		out, err := c.PollForJobs(context.Background(), &codepipeline.PollForJobsInput{ActionTypeId: typ})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Jobs) == 1 {
			j := out.Jobs[0]
			if _, err := c.AcknowledgeJob(context.Background(), &codepipeline.AcknowledgeJobInput{JobId: j.Id, Nonce: j.Nonce}); err != nil {
				t.Fatal(err)
			}
			return j
		}
	}
	t.Fatalf("no job of %s", aws.ToString(typ.Provider))
	return types.Job{}
}

func getObject(t *testing.T, c *s3.Client, bucket, key string) (string, error) {
	t.Helper()
	out, err := c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return "", err
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	return string(b), err
}

// movableClock is the artifact credentials' clock of a test server.
type movableClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *movableClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *movableClock) advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

func TestArtifactCredentialsEmbeddedStore(t *testing.T) {
	servertest.EachBackend(t, func(t *testing.T, backend servertest.Options) {
		// The credentials change every half TTL (30 minutes, counted from
		// the epoch): start the clock one second into such a period.
		now := time.Now()
		clock := &movableClock{off: now.Truncate(30 * time.Minute).Add(30*time.Minute + time.Second).Sub(now)}
		srv := servertest.Start(t, backend, func(c *server.Config) {
			c.JobPollWait = 0
			c.ArtifactNow = clock.now
		})
		c := srv.Client()
		ctx := context.Background()
		registerTestTypes(t, c)
		if _, err := c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: artifactPipeline("art")}); err != nil {
			t.Fatal(err)
		}
		root := rootS3(srv)

		// The source job: credentials, the artifact store's encryption key,
		// and an output it writes with the credentials.
		src := pollOne(t, c, srcType)
		if src.Data.ArtifactCredentials == nil {
			t.Fatal("PollForJobs gave no artifactCredentials")
		}
		if k := src.Data.EncryptionKey; k == nil || aws.ToString(k.Id) != "arn:aws:kms:us-east-1:123456789012:key/k1" || k.Type != types.EncryptionKeyTypeKms {
			t.Fatalf("encryptionKey not passed through: %+v", k)
		}
		code := src.Data.OutputArtifacts[0].Location.S3Location
		srcS3 := jobS3(srv, src.Data.ArtifactCredentials)
		if _, err := srcS3.PutObject(ctx, &s3.PutObjectInput{Bucket: code.BucketName, Key: code.ObjectKey, Body: strings.NewReader("source bytes")}); err != nil {
			t.Fatalf("source worker writes its output: %v", err)
		}
		if _, err := c.PutJobSuccessResult(ctx, &codepipeline.PutJobSuccessResultInput{JobId: src.Id,
			CurrentRevision: &types.CurrentRevision{Revision: aws.String("r1"), ChangeIdentifier: aws.String("r1")}}); err != nil {
			t.Fatal(err)
		}
		// The job is finished: its credentials no longer work.
		_, err := srcS3.PutObject(ctx, &s3.PutObjectInput{Bucket: code.BucketName, Key: code.ObjectKey, Body: strings.NewReader("late")})
		if s3Code(err) != "AccessDenied" {
			t.Errorf("a finished job's credentials wrote: %v", err)
		}

		// The build job reads its input and writes its output.
		build := pollOne(t, c, buildType)
		cr := build.Data.ArtifactCredentials
		if cr == nil {
			t.Fatal("no artifactCredentials")
		}
		if cr.AccessKeyId == src.Data.ArtifactCredentials.AccessKeyId {
			t.Fatal("two jobs share credentials")
		}
		in := build.Data.InputArtifacts[0].Location.S3Location
		out := build.Data.OutputArtifacts[0].Location.S3Location
		if aws.ToString(in.ObjectKey) != aws.ToString(code.ObjectKey) {
			t.Fatalf("input key %s, source wrote %s", aws.ToString(in.ObjectKey), aws.ToString(code.ObjectKey))
		}
		w := jobS3(srv, cr)
		if got, err := getObject(t, w, "artifacts", aws.ToString(in.ObjectKey)); err != nil || got != "source bytes" {
			t.Fatalf("build worker reads its input: %q, %v", got, err)
		}
		if _, err := w.HeadObject(ctx, &s3.HeadObjectInput{Bucket: in.BucketName, Key: in.ObjectKey}); err != nil {
			t.Fatalf("HEAD of the input: %v", err)
		}
		// A multipart upload (the SDK's upload manager, two parts) of the output.
		big := bytes.Repeat([]byte("0123456789abcdef"), (6<<20)/16)
		up := manager.NewUploader(w, func(u *manager.Uploader) { u.PartSize = 5 << 20 })
		if _, err := up.Upload(ctx, &s3.PutObjectInput{Bucket: out.BucketName, Key: out.ObjectKey, Body: bytes.NewReader(big)}); err != nil {
			t.Fatalf("build worker uploads its output (multipart): %v", err)
		}
		if got, err := getObject(t, root, "artifacts", aws.ToString(out.ObjectKey)); err != nil || got != string(big) {
			t.Fatalf("the output as root reads it: %d bytes, %v", len(got), err)
		}

		// Everything else is refused and changes nothing.
		other := strings.TrimSuffix(aws.ToString(out.ObjectKey), "/"+filepath.Base(aws.ToString(out.ObjectKey))) + "/other"
		refusals := []struct {
			what string
			call func() error
			code string
		}{
			{"read the output", func() error { _, err := getObject(t, w, "artifacts", aws.ToString(out.ObjectKey)); return err }, "AccessDenied"},
			{"overwrite the input", func() error {
				_, err := w.PutObject(ctx, &s3.PutObjectInput{Bucket: in.BucketName, Key: in.ObjectKey, Body: strings.NewReader("evil")})
				return err
			}, "AccessDenied"},
			{"write another key", func() error {
				_, err := w.PutObject(ctx, &s3.PutObjectInput{Bucket: out.BucketName, Key: aws.String(other), Body: strings.NewReader("evil")})
				return err
			}, "AccessDenied"},
			{"read another key", func() error { _, err := getObject(t, w, "artifacts", other); return err }, "AccessDenied"},
			{"list", func() error {
				_, err := w.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("artifacts")})
				return err
			}, "AccessDenied"},
			{"delete the input", func() error {
				_, err := w.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: in.BucketName, Key: in.ObjectKey})
				return err
			}, "AccessDenied"},
			{"another bucket", func() error { _, err := getObject(t, w, "elsewhere", aws.ToString(in.ObjectKey)); return err }, "AccessDenied"},
			{"create a bucket", func() error {
				_, err := w.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("mine")})
				return err
			}, "AccessDenied"},
			{"list buckets", func() error { _, err := w.ListBuckets(ctx, &s3.ListBucketsInput{}); return err }, "AccessDenied"},
			{"tampered session token", func() error {
				bad := *cr
				// Change one character (to another one: a token that
				// happens to hold an x there must still be tampered with).
				tok := []byte(aws.ToString(cr.SessionToken))
				tok[10] = map[bool]byte{true: 'y', false: 'x'}[tok[10] == 'x']
				bad.SessionToken = aws.String(string(tok))
				_, err := getObject(t, jobS3(srv, &bad), "artifacts", aws.ToString(in.ObjectKey))
				return err
			}, "InvalidToken"},
			{"no session token", func() error {
				bad := *cr
				bad.SessionToken = nil
				_, err := getObject(t, jobS3(srv, &bad), "artifacts", aws.ToString(in.ObjectKey))
				return err
			}, "InvalidToken"},
			{"wrong secret", func() error {
				bad := *cr
				sk := []byte(aws.ToString(cr.SecretAccessKey))
				sk[0] = map[bool]byte{true: 'y', false: 'x'}[sk[0] == 'x']
				bad.SecretAccessKey = aws.String(string(sk))
				_, err := getObject(t, jobS3(srv, &bad), "artifacts", aws.ToString(in.ObjectKey))
				return err
			}, "SignatureDoesNotMatch"},
		}
		for _, r := range refusals {
			if got := s3Code(r.call()); got != r.code {
				t.Errorf("%s: got %q, want %s", r.what, got, r.code)
			}
		}
		if got, err := getObject(t, root, "artifacts", aws.ToString(in.ObjectKey)); err != nil || got != "source bytes" {
			t.Errorf("the input changed: %q, %v", got, err)
		}
		if _, err := root.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("artifacts"), Key: aws.String(other)}); s3Code(err) != "NotFound" {
			t.Errorf("a refused write left an object: %v", err)
		}
		list, err := root.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("artifacts")})
		if err != nil || len(list.Contents) != 2 {
			t.Errorf("the bucket holds %d objects (%v), want the input and the output", len(list.Contents), err)
		}

		// Credentials after expiry: ExpiredToken. (Minted for the job, by
		// a second minter on the same store and master key, at a time
		// 61 minutes ago.)
		key, _, err := secrets.LoadOrCreateKeyFile(filepath.Join(srv.DataDir, "master.key"))
		if err != nil {
			t.Fatal(err)
		}
		past, err := artifacts.NewLocal(artifacts.LocalConfig{Store: srv.Store(), MasterKey: key, AccountID: servertest.AccountID,
			Root: rootCredential(), Now: func() time.Time { return time.Now().Add(-61 * time.Minute) }})
		if err != nil {
			t.Fatal(err)
		}
		expired, _, err := past.Mint(ctx, artifacts.Scope{JobID: aws.ToString(build.Id), Bucket: "artifacts", Read: []string{aws.ToString(in.ObjectKey)}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = getObject(t, jobS3(srv, &types.AWSSessionCredentials{AccessKeyId: &expired.AccessKeyId, SecretAccessKey: &expired.SecretAccessKey, SessionToken: &expired.SessionToken}), "artifacts", aws.ToString(in.ObjectKey))
		if s3Code(err) != "ExpiredToken" {
			t.Errorf("expired credentials: got %v, want ExpiredToken", err)
		}

		// Renewal: GetJobDetails gives the same credentials while more
		// than half of their lifetime is left, then new ones that work.
		details := func() *types.AWSSessionCredentials {
			d, err := c.GetJobDetails(ctx, &codepipeline.GetJobDetailsInput{JobId: build.Id})
			if err != nil {
				t.Fatal(err)
			}
			if d.JobDetails.Data.EncryptionKey == nil {
				t.Error("GetJobDetails lacks the encryption key")
			}
			return d.JobDetails.Data.ArtifactCredentials
		}
		if again := details(); again == nil || aws.ToString(again.AccessKeyId) != aws.ToString(cr.AccessKeyId) {
			t.Fatalf("GetJobDetails within the first half of the lifetime: %v, want the same credentials", again)
		}
		clock.advance(31 * time.Minute)
		renewed := details()
		if renewed == nil || aws.ToString(renewed.AccessKeyId) == aws.ToString(cr.AccessKeyId) {
			t.Fatal("GetJobDetails after half of the lifetime did not renew the credentials")
		}
		if got, err := getObject(t, jobS3(srv, renewed), "artifacts", aws.ToString(in.ObjectKey)); err != nil || got != "source bytes" {
			t.Fatalf("renewed credentials read the input: %q, %v", got, err)
		}
		// Past their expiry by the credentials' clock, the old ones are refused.
		clock.advance(30 * time.Minute)
		if _, err := getObject(t, w, "artifacts", aws.ToString(in.ObjectKey)); s3Code(err) != "AccessDenied" {
			t.Errorf("credentials past their expiry: %v", err)
		}

		if _, err := c.PutJobSuccessResult(ctx, &codepipeline.PutJobSuccessResultInput{JobId: build.Id}); err != nil {
			t.Fatal(err)
		}
		if _, err := getObject(t, jobS3(srv, renewed), "artifacts", aws.ToString(in.ObjectKey)); s3Code(err) != "AccessDenied" {
			t.Errorf("credentials of a finished job: %v", err)
		}
		logs := srv.Logs()
		for _, secret := range []string{aws.ToString(cr.SecretAccessKey), aws.ToString(cr.SessionToken), aws.ToString(renewed.SecretAccessKey), aws.ToString(renewed.SessionToken)} {
			if strings.Contains(logs, secret) {
				t.Fatal("the logs contain a job's secret or session token")
			}
		}
	})
}

func rootCredential() sigv4.Credential {
	return sigv4.Credential{AccessKeyID: servertest.AccessKeyID, SecretAccessKey: servertest.SecretAccessKey}
}

// External store: with --artifact-s3-endpoint the job's credentials come
// from STS AssumeRole (moto_server here, which serves S3 and STS) and can
// write the job's output object there; no S3 API is served by pipelined.
func TestArtifactCredentialsExternalStore(t *testing.T) {
	moto := mototest.Start(t)
	operator := aws.Config{Region: servertest.Region, Credentials: credentials.NewStaticCredentialsProvider("AKIAOPERATOR", "operator-secret", "")}
	srv := servertest.Start(t, func(c *server.Config) {
		c.JobPollWait = 0
		c.ArtifactS3Endpoint = moto
		c.ArtifactSTSEndpoint = moto
		c.ArtifactRoleARN = "arn:aws:iam::123456789012:role/pipelined-jobs"
		c.ArtifactCredentialsTTL = 15 * time.Minute
		c.ArtifactAWSConfig = &operator
	})
	c := srv.Client()
	ctx := context.Background()
	motoS3 := func(p aws.CredentialsProvider) *s3.Client {
		return s3.New(s3.Options{Region: servertest.Region, BaseEndpoint: aws.String(moto), UsePathStyle: true, Credentials: p, RetryMaxAttempts: 1})
	}
	if _, err := motoS3(operator.Credentials).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("artifacts")}); err != nil {
		t.Fatal(err)
	}
	registerTestTypes(t, c)
	if _, err := c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: artifactPipeline("ext")}); err != nil {
		t.Fatal(err)
	}
	job := pollOne(t, c, srcType)
	cr := job.Data.ArtifactCredentials
	if cr == nil || aws.ToString(cr.SessionToken) == "" {
		t.Fatalf("no STS credentials in the job data: %+v", cr)
	}
	if job.Data.EncryptionKey == nil {
		t.Error("encryptionKey not passed through")
	}
	out := job.Data.OutputArtifacts[0].Location.S3Location
	w := motoS3(credentials.NewStaticCredentialsProvider(aws.ToString(cr.AccessKeyId), aws.ToString(cr.SecretAccessKey), aws.ToString(cr.SessionToken)))
	if _, err := w.PutObject(ctx, &s3.PutObjectInput{Bucket: out.BucketName, Key: out.ObjectKey, Body: strings.NewReader("to moto")}); err != nil {
		t.Fatalf("writing the output object to the external store: %v", err)
	}
	if got, err := getObject(t, motoS3(operator.Credentials), "artifacts", aws.ToString(out.ObjectKey)); err != nil || got != "to moto" {
		t.Fatalf("the output object in the external store: %q, %v", got, err)
	}
	// GetJobDetails gives the same credentials while they are fresh.
	d, err := c.GetJobDetails(ctx, &codepipeline.GetJobDetailsInput{JobId: job.Id})
	if err != nil || d.JobDetails.Data.ArtifactCredentials == nil || aws.ToString(d.JobDetails.Data.ArtifactCredentials.AccessKeyId) != aws.ToString(cr.AccessKeyId) {
		t.Fatalf("GetJobDetails: %+v, %v", d, err)
	}
	// pipelined serves no S3 in this mode: a GET of an object is not routed to a store.
	if _, err := getObject(t, rootS3(srv), "artifacts", aws.ToString(out.ObjectKey)); err == nil {
		t.Fatal("pipelined served an object with an external store configured")
	}
	if strings.Contains(srv.Logs(), aws.ToString(cr.SecretAccessKey)) || strings.Contains(srv.Logs(), aws.ToString(cr.SessionToken)) {
		t.Fatal("the logs contain the job's secret or session token")
	}
}

// TestAbandonedUploadsExpire: a multipart upload never completed nor
// aborted (its worker died) is removed, parts and all, once it is
// --artifact-upload-expiry old, and not before.
func TestAbandonedUploadsExpire(t *testing.T) {
	const expiry = 1500 * time.Millisecond
	srv := servertest.Start(t, func(c *server.Config) { c.ArtifactUploadExpiry = expiry })
	ctx := context.Background()
	root := rootS3(srv)
	bucket := aws.String("uploads-expire")
	if _, err := root.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: bucket}); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	up, err := root.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: bucket, Key: aws.String("half.zip")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := root.UploadPart(ctx, &s3.UploadPartInput{Bucket: bucket, Key: aws.String("half.zip"), UploadId: up.UploadId,
		PartNumber: aws.Int32(1), Body: strings.NewReader("the first part")}); err != nil {
		t.Fatal(err)
	}
	listed := func() int {
		t.Helper()
		out, err := root.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: bucket})
		if err != nil {
			t.Fatal(err)
		}
		return len(out.Uploads)
	}
	for listed() > 0 {
		if time.Since(began) > expiry+10*time.Second {
			t.Fatalf("the upload is still there %s after it began; --artifact-upload-expiry is %s", time.Since(began), expiry)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if took := time.Since(began); took < expiry {
		t.Fatalf("the upload was removed %s after it began, before it expired (%s)", took, expiry)
	}
	_, err = root.UploadPart(ctx, &s3.UploadPartInput{Bucket: bucket, Key: aws.String("half.zip"), UploadId: up.UploadId,
		PartNumber: aws.Int32(2), Body: strings.NewReader("too late")})
	if code := s3Code(err); code != "NoSuchUpload" {
		t.Fatalf("UploadPart to a removed upload: got %q, want NoSuchUpload", code)
	}
	parts, err := os.ReadDir(filepath.Join(srv.DataDir, server.ArtifactsDir, "uploads"))
	if err != nil || len(parts) != 0 {
		t.Fatalf("the upload's files are still on disk: %v %v", parts, err)
	}
}
