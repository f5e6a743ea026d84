package s3api

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	if err != nil {
		return "non-API error: " + err.Error()
	}
	return ""
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := apiCode(err); got != code {
		t.Fatalf("error code = %q, want %q (err: %v)", got, code, err)
	}
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func TestSDKOperations(t *testing.T) {
	env := newEnv(t)
	c := env.root3()
	ctx := context.Background()

	must[*s3.CreateBucketOutput](t)(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("artifacts")}))
	_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("artifacts")})
	wantCode(t, err, "BucketAlreadyOwnedByYou")
	_, err = c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("Bad_Name")})
	wantCode(t, err, "InvalidBucketName")
	must[*s3.HeadBucketOutput](t)(c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("artifacts")}))
	_, err = c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("nope")})
	if err == nil {
		t.Fatal("HeadBucket of a missing bucket succeeded")
	}
	lb := must[*s3.ListBucketsOutput](t)(c.ListBuckets(ctx, &s3.ListBucketsInput{}))
	if len(lb.Buckets) != 1 || aws.ToString(lb.Buckets[0].Name) != "artifacts" {
		t.Fatalf("ListBuckets = %+v", lb.Buckets)
	}

	body := []byte("hello, artifact store")
	put := must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String("artifacts"), Key: aws.String("job1/out.zip"), Body: bytes.NewReader(body),
		ContentType: aws.String("application/zip"), Metadata: map[string]string{"pipeline": "hello"},
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
	}))
	if aws.ToString(put.ETag) != `"f3c3ec1d2d9e4dcd19c4fb4a5ba0b0f2"` && len(aws.ToString(put.ETag)) != 34 {
		t.Fatalf("ETag = %s", aws.ToString(put.ETag))
	}
	get := must[*s3.GetObjectOutput](t)(c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("artifacts"), Key: aws.String("job1/out.zip")}))
	got, _ := io.ReadAll(get.Body)
	get.Body.Close()
	if !bytes.Equal(got, body) || aws.ToString(get.ContentType) != "application/zip" || get.Metadata["pipeline"] != "hello" ||
		aws.ToString(get.ETag) != aws.ToString(put.ETag) {
		t.Fatalf("GetObject = %q %q %v %s", got, aws.ToString(get.ContentType), get.Metadata, aws.ToString(get.ETag))
	}
	// With checksum validation on, the SDK checks the CRC32 it stored.
	get = must[*s3.GetObjectOutput](t)(c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("artifacts"), Key: aws.String("job1/out.zip"), ChecksumMode: types.ChecksumModeEnabled}))
	got, err = io.ReadAll(get.Body)
	get.Body.Close()
	if err != nil || !bytes.Equal(got, body) || aws.ToString(get.ChecksumCRC32) == "" {
		m, _ := env.h.st.head("artifacts", "job1/out.zip")
		t.Fatalf("GetObject with checksum mode: %q, %v, crc32 %q meta %+v", got, err, aws.ToString(get.ChecksumCRC32), m)
	}
	head := must[*s3.HeadObjectOutput](t)(c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("artifacts"), Key: aws.String("job1/out.zip")}))
	if aws.ToInt64(head.ContentLength) != int64(len(body)) || head.Metadata["pipeline"] != "hello" {
		t.Fatalf("HeadObject = %d %v", aws.ToInt64(head.ContentLength), head.Metadata)
	}

	// Ranges.
	for _, tc := range []struct{ rng, want, cr string }{
		{"bytes=0-4", "hello", "bytes 0-4/21"},
		{"bytes=7-", "artifact store", "bytes 7-20/21"},
		{"bytes=-5", "store", "bytes 16-20/21"},
		{"bytes=16-100", "store", "bytes 16-20/21"},
	} {
		g := must[*s3.GetObjectOutput](t)(c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("artifacts"), Key: aws.String("job1/out.zip"), Range: aws.String(tc.rng)}))
		b, _ := io.ReadAll(g.Body)
		g.Body.Close()
		if string(b) != tc.want || aws.ToString(g.ContentRange) != tc.cr {
			t.Errorf("Range %s = %q (%s), want %q (%s)", tc.rng, b, aws.ToString(g.ContentRange), tc.want, tc.cr)
		}
	}
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("artifacts"), Key: aws.String("job1/out.zip"), Range: aws.String("bytes=21-")})
	wantCode(t, err, "InvalidRange")
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("artifacts"), Key: aws.String("job1/out.zip"), IfMatch: aws.String(`"0123"`)})
	wantCode(t, err, "PreconditionFailed")
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("artifacts"), Key: aws.String("job1/out.zip"), IfNoneMatch: put.ETag})
	if err == nil || !strings.Contains(err.Error(), "304") {
		t.Fatalf("If-None-Match: %v", err)
	}

	// Content-MD5 and checksum headers are verified.
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("artifacts"), Key: aws.String("bad"), Body: bytes.NewReader(body),
		ContentMD5: aws.String("1B2M2Y8AsgTpgAmY7PhCfg==")})
	wantCode(t, err, "BadDigest")
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("artifacts"), Key: aws.String("bad"), Body: bytes.NewReader(body),
		ChecksumSHA256: aws.String("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=")})
	wantCode(t, err, "BadDigest")
	for _, algo := range []types.ChecksumAlgorithm{types.ChecksumAlgorithmCrc32c, types.ChecksumAlgorithmSha1, types.ChecksumAlgorithmSha256, types.ChecksumAlgorithmCrc64nvme} {
		must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("artifacts"), Key: aws.String("sum/" + string(algo)),
			Body: bytes.NewReader(body), ChecksumAlgorithm: algo}))
	}

	// Listing: prefix, delimiter, pagination, start-after.
	for _, k := range []string{"a/1", "a/2", "a/b/3", "b/4", "c", "d/5"} {
		must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("artifacts"), Key: aws.String(k), Body: strings.NewReader(k)}))
	}
	lo := must[*s3.ListObjectsV2Output](t)(c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("artifacts"), Prefix: aws.String("a/"), Delimiter: aws.String("/")}))
	if keys(lo) != "a/1 a/2" || prefixes(lo) != "a/b/" {
		t.Fatalf("list a/ = %q %q", keys(lo), prefixes(lo))
	}
	var all, allPrefixes []string
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String("artifacts"), Delimiter: aws.String("/"), MaxKeys: aws.Int32(2)})
	pages := 0
	for p.HasMorePages() {
		pg := must[*s3.ListObjectsV2Output](t)(p.NextPage(ctx))
		pages++
		for _, o := range pg.Contents {
			all = append(all, *o.Key)
		}
		for _, cp := range pg.CommonPrefixes {
			allPrefixes = append(allPrefixes, *cp.Prefix)
		}
	}
	if strings.Join(all, " ") != "bad c" && strings.Join(all, " ") != "c" || strings.Join(allPrefixes, " ") != "a/ b/ d/ job1/ sum/" || pages != 3 {
		t.Fatalf("paginated list = %v %v in %d pages", all, allPrefixes, pages)
	}
	lo = must[*s3.ListObjectsV2Output](t)(c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("artifacts"), StartAfter: aws.String("a/b/3"), Prefix: aws.String("a")}))
	if keys(lo) != "" {
		t.Fatalf("start-after = %q", keys(lo))
	}

	// Delete.
	must[*s3.DeleteObjectOutput](t)(c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("artifacts"), Key: aws.String("c")}))
	must[*s3.DeleteObjectOutput](t)(c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("artifacts"), Key: aws.String("c")}))
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("artifacts"), Key: aws.String("c")})
	wantCode(t, err, "NoSuchKey")
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("nope"), Key: aws.String("c")})
	wantCode(t, err, "NoSuchBucket")

	// Multipart by hand.
	cu := must[*s3.CreateMultipartUploadOutput](t)(c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("artifacts"), Key: aws.String("mp"), ContentType: aws.String("text/plain")}))
	part1 := bytes.Repeat([]byte("x"), minPartSize)
	up1 := must[*s3.UploadPartOutput](t)(c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("artifacts"), Key: aws.String("mp"), UploadId: cu.UploadId, PartNumber: aws.Int32(1), Body: bytes.NewReader(part1)}))
	up2 := must[*s3.UploadPartOutput](t)(c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("artifacts"), Key: aws.String("mp"), UploadId: cu.UploadId, PartNumber: aws.Int32(2), Body: strings.NewReader("tail")}))
	lp := must[*s3.ListPartsOutput](t)(c.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String("artifacts"), Key: aws.String("mp"), UploadId: cu.UploadId}))
	if len(lp.Parts) != 2 || aws.ToInt64(lp.Parts[1].Size) != 4 {
		t.Fatalf("ListParts = %+v", lp.Parts)
	}
	_, err = c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String("artifacts"), Key: aws.String("mp"), UploadId: cu.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{PartNumber: aws.Int32(1), ETag: aws.String(`"00"`)}}}})
	wantCode(t, err, "InvalidPart")
	_, err = c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String("artifacts"), Key: aws.String("mp"), UploadId: cu.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{PartNumber: aws.Int32(2), ETag: up2.ETag}, {PartNumber: aws.Int32(1), ETag: up1.ETag}}}})
	wantCode(t, err, "InvalidPartOrder")
	cm := must[*s3.CompleteMultipartUploadOutput](t)(c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String("artifacts"), Key: aws.String("mp"), UploadId: cu.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{PartNumber: aws.Int32(1), ETag: up1.ETag}, {PartNumber: aws.Int32(2), ETag: up2.ETag}}}}))
	if !strings.HasSuffix(aws.ToString(cm.ETag), `-2"`) {
		t.Fatalf("multipart ETag = %s", aws.ToString(cm.ETag))
	}
	g := must[*s3.GetObjectOutput](t)(c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("artifacts"), Key: aws.String("mp")}))
	b, _ := io.ReadAll(g.Body)
	g.Body.Close()
	if len(b) != minPartSize+4 || string(b[len(b)-4:]) != "tail" || aws.ToString(g.ContentType) != "text/plain" {
		t.Fatalf("multipart object: %d bytes, type %s", len(b), aws.ToString(g.ContentType))
	}
	_, err = c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("artifacts"), Key: aws.String("mp"), UploadId: cu.UploadId, PartNumber: aws.Int32(3), Body: strings.NewReader("x")})
	wantCode(t, err, "NoSuchUpload")
	cu2 := must[*s3.CreateMultipartUploadOutput](t)(c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("artifacts"), Key: aws.String("mp2")}))
	must[*s3.AbortMultipartUploadOutput](t)(c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String("artifacts"), Key: aws.String("mp2"), UploadId: cu2.UploadId}))
	_, err = c.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String("artifacts"), Key: aws.String("mp2"), UploadId: cu2.UploadId})
	wantCode(t, err, "NoSuchUpload")

	// Wrong credentials.
	_, err = env.client(rootAKID, "wrong", "").ListBuckets(ctx, &s3.ListBucketsInput{})
	wantCode(t, err, "SignatureDoesNotMatch")
	_, err = env.client("AKIAUNKNOWN", "x", "").ListBuckets(ctx, &s3.ListBucketsInput{})
	wantCode(t, err, "InvalidAccessKeyId")

	// Delete bucket.
	must[*s3.CreateBucketOutput](t)(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("empty")}))
	_, err = c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String("artifacts")})
	wantCode(t, err, "BucketNotEmpty")
	must[*s3.DeleteBucketOutput](t)(c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String("empty")}))

	payloads, chunked := env.wire.snapshot()
	t.Logf("payload hashes seen: %v; aws-chunked requests: %d", payloads, chunked)
	if chunked == 0 {
		t.Fatal("the SDK never sent an aws-chunked body")
	}
	if payloads["STREAMING-UNSIGNED-PAYLOAD-TRAILER"] == 0 {
		t.Fatal("the SDK never sent STREAMING-UNSIGNED-PAYLOAD-TRAILER")
	}
	if tmp, _ := os.ReadDir(filepath.Join(env.dir, "tmp")); len(tmp) != 0 {
		t.Fatalf("temp files left: %v", tmp)
	}
}

func keys(o *s3.ListObjectsV2Output) string {
	var k []string
	for _, c := range o.Contents {
		k = append(k, *c.Key)
	}
	return strings.Join(k, " ")
}

func prefixes(o *s3.ListObjectsV2Output) string {
	var k []string
	for _, c := range o.CommonPrefixes {
		k = append(k, *c.Prefix)
	}
	return strings.Join(k, " ")
}

func TestAuthorizerDenies(t *testing.T) {
	env := newEnv(t)
	ctx := context.Background()
	root := env.root3()
	for _, b := range []string{"artifacts", "other"} {
		must[*s3.CreateBucketOutput](t)(root.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)}))
	}
	before := env.storeFiles(t)
	job := env.client(jobAKID, jobSecret, jobToken)
	// Allowed: its own prefix.
	must[*s3.PutObjectOutput](t)(job.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("artifacts"), Key: aws.String("job1/x"), Body: strings.NewReader("ok")}))
	before = env.storeFiles(t)
	for _, tc := range []struct{ bucket, key string }{{"artifacts", "job2/x"}, {"other", "job1/x"}, {"artifacts", "x"}} {
		_, err := job.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(tc.bucket), Key: aws.String(tc.key), Body: strings.NewReader("nope")})
		wantCode(t, err, "AccessDenied")
		_, err = job.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(tc.bucket), Key: aws.String(tc.key)})
		wantCode(t, err, "AccessDenied")
	}
	_, err := job.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("artifacts"), Key: aws.String("job1/x")})
	wantCode(t, err, "AccessDenied")
	_, err = job.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("artifacts")})
	wantCode(t, err, "AccessDenied")
	_, err = job.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("mine")})
	wantCode(t, err, "AccessDenied")
	// A session credential without its token is refused.
	_, err = env.client(jobAKID, jobSecret, "").GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("artifacts"), Key: aws.String("job1/x")})
	wantCode(t, err, "InvalidToken")
	after := env.storeFiles(t)
	if !slices.Equal(before, after) {
		t.Fatalf("denied requests changed the store:\nbefore %v\nafter  %v", before, after)
	}
	g := must[*s3.GetObjectOutput](t)(job.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("artifacts"), Key: aws.String("job1/x")}))
	b, _ := io.ReadAll(g.Body)
	g.Body.Close()
	if string(b) != "ok" {
		t.Fatalf("got %q", b)
	}
}

func TestPathTraversalKeys(t *testing.T) {
	env := newEnv(t)
	ctx := context.Background()
	c := env.root3()
	must[*s3.CreateBucketOutput](t)(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("artifacts")}))
	evil := []string{"../x", "../../escape", "/abs/path", "a/../../../b", "..", ".", "//", "a\\..\\..\\b", "%2e%2e/x", "key with spaces & ünïcode"}
	for i, k := range evil {
		must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("artifacts"), Key: aws.String(k), Body: strings.NewReader(k)}))
		_ = i
	}
	for _, k := range evil {
		g := must[*s3.GetObjectOutput](t)(c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("artifacts"), Key: aws.String(k)}))
		b, _ := io.ReadAll(g.Body)
		g.Body.Close()
		if string(b) != k {
			t.Errorf("key %q read back %q", k, b)
		}
	}
	lo := must[*s3.ListObjectsV2Output](t)(c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("artifacts")}))
	if len(lo.Contents) != len(evil) {
		t.Fatalf("listed %d objects, want %d", len(lo.Contents), len(evil))
	}
	// Nothing but the store directory in its parent, and inside it only
	// hashed names.
	ents, _ := os.ReadDir(env.root)
	if len(ents) != 1 || ents[0].Name() != "store" {
		t.Fatalf("the store's parent holds %v", ents)
	}
	for _, f := range env.storeFiles(t) {
		if strings.Contains(f, "..") || strings.Contains(f, " ") || !strings.HasPrefix(f, "buckets/artifacts/") {
			t.Errorf("unexpected file %q", f)
		}
	}
	// A key with NUL is refused.
	_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("artifacts"), Key: aws.String("a\x00b"), Body: strings.NewReader("x")})
	if err == nil {
		t.Fatal("a key with NUL was accepted")
	}
}

func TestUploadManager100MB(t *testing.T) {
	if testing.Short() {
		t.Skip("100 MB transfer skipped with -short")
	}
	env := newEnv(t)
	ctx := context.Background()
	c := env.root3()
	must[*s3.CreateBucketOutput](t)(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("artifacts")}))
	src, sum := randomFile(t, t.TempDir(), 100<<20, 1)
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	up := manager.NewUploader(c, func(u *manager.Uploader) { u.PartSize = 8 << 20; u.Concurrency = 4 })
	res, err := up.Upload(ctx, &s3.PutObjectInput{Bucket: aws.String("artifacts"), Key: aws.String("big.bin"), Body: f})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(aws.ToString(res.ETag), `-13"`) {
		t.Fatalf("ETag = %s, want 13 parts", aws.ToString(res.ETag))
	}
	dst := filepath.Join(t.TempDir(), "down")
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	dl := manager.NewDownloader(c, func(d *manager.Downloader) { d.PartSize = 8 << 20; d.Concurrency = 4 })
	n, err := dl.Download(ctx, out, &s3.GetObjectInput{Bucket: aws.String("artifacts"), Key: aws.String("big.bin")})
	out.Close()
	if err != nil || n != 100<<20 {
		t.Fatalf("Download: %d, %v", n, err)
	}
	if got := fileSHA(t, dst); got != sum {
		t.Fatal("downloaded bytes differ")
	}
	payloads, chunked := env.wire.snapshot()
	t.Logf("payload hashes seen: %v; aws-chunked requests: %d", payloads, chunked)
	if chunked == 0 {
		t.Fatal("the upload manager never sent an aws-chunked body")
	}
}
