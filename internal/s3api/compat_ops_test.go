package s3api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

const boto3CreateUpload = `
import sys, boto3
r = boto3.client("s3").create_multipart_upload(Bucket=sys.argv[1], Key=sys.argv[2])
print(r["UploadId"])
`

// boto3BatchDelete empties a bucket the usual boto3 way: a ListObjectsV2
// paginator, and one DeleteObjects per page of (up to 1000) keys.
const boto3BatchDelete = `
import sys, boto3
s3 = boto3.client("s3")
n = 0
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=sys.argv[1]):
    objs = [{"Key": o["Key"]} for o in page.get("Contents", [])]
    if not objs:
        continue
    r = s3.delete_objects(Bucket=sys.argv[1], Delete={"Objects": objs})
    if r.get("Errors"):
        sys.exit("errors: %r" % r["Errors"])
    n += len(r.get("Deleted", []))
print(n)
`

// TestAWSCLICopyDeleteAndUploads: aws s3 cp and mv between keys
// (CopyObject), aws s3api list-multipart-uploads of an upload boto3
// started, aws s3 rm --recursive, aws s3api delete-objects and boto3's
// batch delete (DeleteObjects), as root.
func TestAWSCLICopyDeleteAndUploads(t *testing.T) {
	needTool(t, "python3", "-c", "import boto3")
	needTool(t, "aws", "--version")
	env := newEnv(t)
	ctx := context.Background()
	c := env.root3()
	must[*s3.CreateBucketOutput](t)(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bkt")}))
	penv := pythonEnvAs(t, env, rootAKID, rootSecret, "")
	run := func(t *testing.T, name string, args ...string) string {
		t.Helper()
		return runTool(t, penv, name, args...)
	}
	objects := []string{"x", "dir/a", "dir/b", "dir/sub/c", "with space+plus"}
	for _, k := range objects {
		putString(t, c, "bkt", k, "content of "+k)
	}

	t.Run("cp and mv", func(t *testing.T) {
		run(t, "aws", "s3", "cp", "--only-show-errors", "s3://bkt/x", "s3://bkt/y")
		run(t, "aws", "s3", "cp", "--only-show-errors", "s3://bkt/with space+plus", "s3://bkt/copied space+plus")
		run(t, "aws", "s3", "mv", "--only-show-errors", "s3://bkt/y", "s3://bkt/z")
		if exists(t, c, "bkt", "y") {
			t.Error("aws s3 mv left its source")
		}
		for dst, src := range map[string]string{"z": "x", "copied space+plus": "with space+plus"} {
			if got, _ := getString(t, c, "bkt", dst); got != "content of "+src {
				t.Errorf("%s = %q", dst, got)
			}
		}
		if n := env.wire.opCount("PUT copy"); n != 3 {
			t.Errorf("%d CopyObject requests, want 3", n)
		}
	})

	t.Run("list-multipart-uploads", func(t *testing.T) {
		id := strings.TrimSpace(run(t, "python3", "-c", boto3CreateUpload, "bkt", "pending/upload"))
		var out struct {
			Uploads []struct{ Key, UploadId, Initiated string }
		}
		raw := run(t, "aws", "s3api", "list-multipart-uploads", "--bucket", "bkt", "--output", "json")
		if err := json.Unmarshal([]byte(raw), &out); err != nil {
			t.Fatalf("%v: %s", err, raw)
		}
		if len(out.Uploads) != 1 || out.Uploads[0].UploadId != id || out.Uploads[0].Key != "pending/upload" || out.Uploads[0].Initiated == "" {
			t.Fatalf("list-multipart-uploads = %s, want upload %s", raw, id)
		}
	})

	t.Run("rm --recursive", func(t *testing.T) {
		// The CLI lists (ListObjectsV2) and deletes key by key
		// (DeleteObject); DeleteObjects is tested below.
		run(t, "aws", "s3", "rm", "--only-show-errors", "--recursive", "s3://bkt/dir/")
		lo := must[*s3.ListObjectsV2Output](t)(c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("bkt")}))
		if got := keys(lo); got != "copied space+plus with space+plus x z" {
			t.Fatalf("after rm --recursive s3://bkt/dir/: %q", got)
		}
		run(t, "aws", "s3", "rm", "--only-show-errors", "--recursive", "s3://bkt")
		lo = must[*s3.ListObjectsV2Output](t)(c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("bkt")}))
		if len(lo.Contents) != 0 {
			t.Fatalf("after rm --recursive s3://bkt: %q", keys(lo))
		}
		for _, f := range env.storeFiles(t) {
			if strings.HasPrefix(f, "buckets/bkt/") {
				t.Fatalf("file left on disk: %s", f)
			}
		}
	})

	t.Run("delete-objects and boto3 batch delete", func(t *testing.T) {
		for _, k := range objects {
			putString(t, c, "bkt", k, "again")
		}
		before := env.wire.opCount("POST delete")
		run(t, "aws", "s3api", "delete-objects", "--bucket", "bkt", "--delete", `{"Objects":[{"Key":"x"},{"Key":"never-was"}],"Quiet":true}`)
		if exists(t, c, "bkt", "x") {
			t.Fatal("aws s3api delete-objects left x")
		}
		if got := strings.TrimSpace(run(t, "python3", "-c", boto3BatchDelete, "bkt")); got != "4" {
			t.Fatalf("boto3 batch delete deleted %s objects, want 4", got)
		}
		lo := must[*s3.ListObjectsV2Output](t)(c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("bkt")}))
		if len(lo.Contents) != 0 {
			t.Fatalf("left: %q", keys(lo))
		}
		if n := env.wire.opCount("POST delete") - before; n != 2 {
			t.Errorf("%d DeleteObjects requests, want 2", n)
		}
		env.wire.mu.Lock()
		hd := env.wire.deletes[len(env.wire.deletes)-1]
		env.wire.mu.Unlock()
		t.Logf("botocore's DeleteObjects integrity headers: Content-MD5 %q, x-amz-checksum-crc32 %q, x-amz-trailer %q",
			hd.Get("Content-Md5"), hd.Get("X-Amz-Checksum-Crc32"), hd.Get("X-Amz-Trailer"))
	})
	env.wire.mu.Lock()
	t.Logf("requests: %v", env.wire.ops)
	env.wire.mu.Unlock()
}

// TestAWSCLIMultipartCopy: aws s3 cp (with and without a checksum
// algorithm) and mv of a 20 MB object between keys, which the CLI copies
// part by part with UploadPartCopy (its multipart threshold is 8 MB): the
// copies' bytes are the original's.
func TestAWSCLIMultipartCopy(t *testing.T) {
	needTool(t, "aws", "--version")
	env := newEnv(t)
	ctx := context.Background()
	c := env.root3()
	must[*s3.CreateBucketOutput](t)(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bkt")}))
	path, want := randomFile(t, t.TempDir(), 20<<20, 9)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bkt"), Key: aws.String("big"), Body: f}))
	penv := pythonEnvAs(t, env, rootAKID, rootSecret, "")
	run := func(args ...string) { t.Helper(); runTool(t, penv, "aws", args...) }
	objectSHA := func(key string) (string, string) {
		t.Helper()
		g := must[*s3.GetObjectOutput](t)(c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("bkt"), Key: aws.String(key)}))
		defer g.Body.Close()
		h := sha256.New()
		if _, err := io.Copy(h, g.Body); err != nil {
			t.Fatal(err)
		}
		return hex.EncodeToString(h.Sum(nil)), aws.ToString(g.ETag)
	}
	const partCopyOp = "PUT partNumber&uploadId copy"

	run("s3", "cp", "--only-show-errors", "s3://bkt/big", "s3://bkt/big2")
	if got, etag := objectSHA("big2"); got != want || !strings.HasSuffix(etag, `-3"`) {
		t.Fatalf("big2: sha256 %s (want %s), ETag %s (want 3 parts)", got, want, etag)
	}
	if n := env.wire.opCount(partCopyOp); n != 3 {
		t.Errorf("%d UploadPartCopy requests, want 3", n)
	}
	run("s3", "mv", "--only-show-errors", "s3://bkt/big2", "s3://bkt/big3")
	if exists(t, c, "bkt", "big2") {
		t.Error("aws s3 mv left its source")
	}
	if got, _ := objectSHA("big3"); got != want {
		t.Fatalf("big3: sha256 %s, want %s", got, want)
	}
	if got, _ := objectSHA("big"); got != want {
		t.Fatalf("the original changed: sha256 %s, want %s", got, want)
	}
	if n := env.wire.opCount(partCopyOp); n != 6 {
		t.Errorf("%d UploadPartCopy requests, want 6", n)
	}
	// With a checksum algorithm, the upload has one: the CLI takes each
	// part's CRC32 from CopyPartResult and passes it back to
	// CompleteMultipartUpload, which checks it.
	run("s3", "cp", "--only-show-errors", "--checksum-algorithm", "CRC32", "s3://bkt/big", "s3://bkt/big4")
	if got, _ := objectSHA("big4"); got != want {
		t.Fatalf("big4: sha256 %s, want %s", got, want)
	}
	if n := env.wire.opCount(partCopyOp); n != 9 {
		t.Errorf("%d UploadPartCopy requests, want 9", n)
	}
	if n := env.wire.opCount("PUT copy"); n != 0 {
		t.Errorf("%d CopyObject requests, want none", n)
	}
	tmpEmpty(t, env)
	env.wire.mu.Lock()
	t.Logf("requests: %v", env.wire.ops)
	env.wire.mu.Unlock()
}
