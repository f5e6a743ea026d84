package s3api

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// copySrc is an x-amz-copy-source value, URL-encoded as S3 wants it.
func copySrc(bucket, key string) *string {
	return aws.String(bucket + "/" + url.PathEscape(key))
}

func getString(t *testing.T, c *s3.Client, bucket, key string) (string, *s3.GetObjectOutput) {
	t.Helper()
	g := must[*s3.GetObjectOutput](t)(c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), ChecksumMode: types.ChecksumModeEnabled}))
	b, err := io.ReadAll(g.Body)
	g.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return string(b), g
}

func TestCopyObject(t *testing.T) {
	env := newEnv(t)
	ctx := context.Background()
	c := env.root3()
	for _, b := range []string{"src", "dst"} {
		must[*s3.CreateBucketOutput](t)(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)}))
	}
	const srcKey = "dir/with space+plus?&#.txt" // needs URL-encoding
	body := "the artifact's bytes"
	put := must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String("src"), Key: aws.String(srcKey), Body: strings.NewReader(body),
		ContentType: aws.String("text/plain"), CacheControl: aws.String("max-age=60"),
		Metadata: map[string]string{"stage": "build"}, ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
	}))

	// COPY (the default): bytes, metadata and checksum carried over.
	cp := must[*s3.CopyObjectOutput](t)(c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("dst"), Key: aws.String("copy"), CopySource: copySrc("src", srcKey)}))
	if r := cp.CopyObjectResult; r == nil || aws.ToString(r.ETag) != aws.ToString(put.ETag) || r.LastModified == nil ||
		time.Since(*r.LastModified) > time.Minute || aws.ToString(r.ChecksumSHA256) != aws.ToString(put.ChecksumSHA256) {
		t.Fatalf("CopyObjectResult = %+v, source ETag %s", r, aws.ToString(put.ETag))
	}
	got, g := getString(t, c, "dst", "copy")
	if got != body || aws.ToString(g.ContentType) != "text/plain" || aws.ToString(g.CacheControl) != "max-age=60" ||
		g.Metadata["stage"] != "build" || aws.ToString(g.ChecksumSHA256) != aws.ToString(put.ChecksumSHA256) {
		t.Fatalf("copy = %q, type %s, cache %s, meta %v, sha256 %s", got, aws.ToString(g.ContentType), aws.ToString(g.CacheControl), g.Metadata, aws.ToString(g.ChecksumSHA256))
	}

	// REPLACE: the request's metadata instead; the bytes' checksum stays.
	must[*s3.CopyObjectOutput](t)(c.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket: aws.String("dst"), Key: aws.String("replaced"), CopySource: copySrc("src", srcKey),
		MetadataDirective: types.MetadataDirectiveReplace, ContentType: aws.String("application/json"), Metadata: map[string]string{"new": "yes"},
	}))
	got, g = getString(t, c, "dst", "replaced")
	if got != body || aws.ToString(g.ContentType) != "application/json" || g.CacheControl != nil ||
		!mapsEqual(g.Metadata, map[string]string{"new": "yes"}) || aws.ToString(g.ChecksumSHA256) != aws.ToString(put.ChecksumSHA256) {
		t.Fatalf("replaced = %q, type %s, cache %v, meta %v", got, aws.ToString(g.ContentType), g.CacheControl, g.Metadata)
	}

	// Onto itself: illegal unless something changes.
	_, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("src"), Key: aws.String(srcKey), CopySource: copySrc("src", srcKey)})
	wantCode(t, err, "InvalidRequest")
	if !strings.Contains(err.Error(), "trying to copy an object to itself without changing the object's metadata") {
		t.Fatalf("copy to itself: %v", err)
	}
	must[*s3.CopyObjectOutput](t)(c.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket: aws.String("src"), Key: aws.String(srcKey), CopySource: copySrc("src", srcKey),
		MetadataDirective: types.MetadataDirectiveReplace, Metadata: map[string]string{"stage": "deploy"},
	}))
	got, g = getString(t, c, "src", srcKey)
	if got != body || g.Metadata["stage"] != "deploy" {
		t.Fatalf("after REPLACE onto itself: %q %v", got, g.Metadata)
	}

	// Missing source, bucket or key.
	_, err = c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("dst"), Key: aws.String("x"), CopySource: copySrc("src", "missing")})
	wantCode(t, err, "NoSuchKey")
	_, err = c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("dst"), Key: aws.String("x"), CopySource: copySrc("nope", "k")})
	wantCode(t, err, "NoSuchBucket")
	_, err = c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("dst"), Key: aws.String("x"), CopySource: aws.String("src")})
	wantCode(t, err, "InvalidArgument")

	// Conditions on the source.
	_, err = c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("dst"), Key: aws.String("x"), CopySource: copySrc("src", srcKey), CopySourceIfMatch: aws.String(`"0123"`)})
	wantCode(t, err, "PreconditionFailed")
	_, err = c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("dst"), Key: aws.String("x"), CopySource: copySrc("src", srcKey), CopySourceIfNoneMatch: put.ETag})
	wantCode(t, err, "PreconditionFailed")
	_, err = c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("dst"), Key: aws.String("x"), CopySource: copySrc("src", srcKey), CopySourceIfModifiedSince: aws.Time(time.Now().Add(time.Hour))})
	wantCode(t, err, "PreconditionFailed")
	_, err = c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("dst"), Key: aws.String("x"), CopySource: copySrc("src", srcKey), CopySourceIfUnmodifiedSince: aws.Time(time.Now().Add(-time.Hour))})
	wantCode(t, err, "PreconditionFailed")
	if exists(t, c, "dst", "x") {
		t.Fatal("a failed copy wrote its destination")
	}
	must[*s3.CopyObjectOutput](t)(c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("dst"), Key: aws.String("x"), CopySource: copySrc("src", srcKey), CopySourceIfMatch: put.ETag}))

	// Versions: the store keeps none; "null" is the current object.
	_, err = c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("dst"), Key: aws.String("v"), CopySource: aws.String(*copySrc("src", srcKey) + "?versionId=3HL4kqtJlcpXroDTDmJ")})
	wantCode(t, err, "InvalidArgument")
	must[*s3.CopyObjectOutput](t)(c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("dst"), Key: aws.String("v"), CopySource: aws.String("/" + *copySrc("src", srcKey) + "?versionId=null")}))

	// A multipart source: the copy is one part, its ETag the MD5.
	cu := must[*s3.CreateMultipartUploadOutput](t)(c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("src"), Key: aws.String("mp")}))
	up := must[*s3.UploadPartOutput](t)(c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("src"), Key: aws.String("mp"), UploadId: cu.UploadId, PartNumber: aws.Int32(1), Body: strings.NewReader("multi")}))
	must[*s3.CompleteMultipartUploadOutput](t)(c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String("src"), Key: aws.String("mp"), UploadId: cu.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{PartNumber: aws.Int32(1), ETag: up.ETag}}}}))
	cp = must[*s3.CopyObjectOutput](t)(c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("dst"), Key: aws.String("mp"), CopySource: copySrc("src", "mp")}))
	sum := md5.Sum([]byte("multi"))
	if aws.ToString(cp.CopyObjectResult.ETag) != `"`+hex.EncodeToString(sum[:])+`"` {
		t.Fatalf("copy of a multipart object: ETag %s", aws.ToString(cp.CopyObjectResult.ETag))
	}

	if tmp, _ := os.ReadDir(filepath.Join(env.dir, "tmp")); len(tmp) != 0 {
		t.Fatalf("temp files left: %v", tmp)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// copySessionEnv is the setting of the session-credential copy tests: the
// buckets artifacts and other, job1's input object and an object job1 may
// not read, and clients for root and job1.
func copySessionEnv(t *testing.T) (env *testEnv, root, job *s3.Client) {
	t.Helper()
	env = newEnv(t)
	ctx := context.Background()
	root = env.root3()
	for _, b := range []string{"artifacts", "other"} {
		must[*s3.CreateBucketOutput](t)(root.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)}))
	}
	putString(t, root, "artifacts", "job1/in", "input artifact")
	putString(t, root, "artifacts", "shared/secret", "not for job1")
	return env, root, env.client(jobAKID, jobSecret, jobToken)
}

// TestCopyObjectSession: a job credential copies from an object it may read
// to one it may write; a source it may not read, or a destination it may
// not write, is AccessDenied with nothing written, whether or not the
// source exists.
func TestCopyObjectSession(t *testing.T) {
	env, root, job := copySessionEnv(t)
	ctx := context.Background()

	must[*s3.CopyObjectOutput](t)(job.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("artifacts"), Key: aws.String("job1/out"), CopySource: copySrc("artifacts", "job1/in")}))
	if got, _ := getString(t, root, "artifacts", "job1/out"); got != "input artifact" {
		t.Fatalf("copy = %q", got)
	}

	before := env.storeFiles(t)
	for _, tc := range []struct{ name, dstBucket, dstKey, src string }{
		{"source not readable", "artifacts", "job1/out2", *copySrc("artifacts", "shared/secret")},
		{"missing source not readable", "artifacts", "job1/out2", *copySrc("artifacts", "shared/missing")},
		{"source bucket not readable", "artifacts", "job1/out2", *copySrc("nosuchbucket", "job1/in")},
		{"destination not writable", "artifacts", "shared/copy", *copySrc("artifacts", "job1/in")},
		{"destination bucket not writable", "other", "job1/copy", *copySrc("artifacts", "job1/in")},
	} {
		_, err := job.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String(tc.dstBucket), Key: aws.String(tc.dstKey), CopySource: aws.String(tc.src)})
		if apiCode(err) != "AccessDenied" {
			t.Errorf("%s: %v, want AccessDenied", tc.name, err)
		}
	}
	if after := env.storeFiles(t); !slices.Equal(before, after) {
		t.Fatalf("denied copies changed the store:\nbefore %v\nafter  %v", before, after)
	}
	_, err := job.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("artifacts"), Key: aws.String("job1/out3"), CopySource: copySrc("artifacts", "job1/missing")})
	wantCode(t, err, "NoSuchKey")
}

// TestCopyObjectDamagedSource: a source whose data no longer matches its
// recorded MD5 is not duplicated.
func TestCopyObjectDamagedSource(t *testing.T) {
	env := newEnv(t)
	ctx := context.Background()
	c := env.root3()
	must[*s3.CreateBucketOutput](t)(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bkt")}))
	putString(t, c, "bkt", "k", "original")
	m, err := env.h.st.head("bkt", "k")
	if err != nil {
		t.Fatal(err)
	}
	dir, _ := env.h.st.objDir("bkt", "k")
	if err := os.WriteFile(filepath.Join(dir, m.Data), []byte("damaged!"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("bkt"), Key: aws.String("k2"), CopySource: copySrc("bkt", "k")})
	wantCode(t, err, "InternalError")
	if exists(t, c, "bkt", "k2") {
		t.Fatal("a damaged source was copied")
	}
	// An unknown metadata directive is refused.
	status, code, raw := env.signedRequest(t, http.MethodPut, "/bkt/k3", nil, map[string]string{"x-amz-copy-source": "/bkt/k", "x-amz-metadata-directive": "MERGE"})
	if status != 400 || code != "InvalidArgument" {
		t.Fatalf("unknown directive: %d %s %s", status, code, raw)
	}
}
