package s3api

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/pipelined/pipelined/internal/sigv4"
)

// randBytes returns n pseudo-random bytes.
func randBytes(n int, seed byte) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

func md5ETag(b []byte) string {
	sum := md5.Sum(b)
	return `"` + hex.EncodeToString(sum[:]) + `"`
}

func crc32B64(b []byte) string {
	return base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, crc32.ChecksumIEEE(b)))
}

// multipartETag is S3's ETag of an object completed from these parts.
func multipartETag(parts ...[]byte) string {
	all := md5.New()
	for _, p := range parts {
		sum := md5.Sum(p)
		all.Write(sum[:])
	}
	return fmt.Sprintf(`"%s-%d"`, hex.EncodeToString(all.Sum(nil)), len(parts))
}

func getBytes(t *testing.T, c *s3.Client, bucket, key string) ([]byte, *s3.GetObjectOutput) {
	t.Helper()
	g := must[*s3.GetObjectOutput](t)(c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}))
	defer g.Body.Close()
	b, err := io.ReadAll(g.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b, g
}

// partCopy is an UploadPartCopy input.
func partCopy(bucket, key, id string, n int32, src *string, rng string) *s3.UploadPartCopyInput {
	in := &s3.UploadPartCopyInput{Bucket: aws.String(bucket), Key: aws.String(key), UploadId: aws.String(id), PartNumber: aws.Int32(n), CopySource: src}
	if rng != "" {
		in.CopySourceRange = aws.String(rng)
	}
	return in
}

func listParts(t *testing.T, c *s3.Client, bucket, key, id string) []types.Part {
	t.Helper()
	lp := must[*s3.ListPartsOutput](t)(c.ListParts(context.Background(), &s3.ListPartsInput{Bucket: aws.String(bucket), Key: aws.String(key), UploadId: aws.String(id)}))
	return lp.Parts
}

func tmpEmpty(t *testing.T, env *testEnv) {
	t.Helper()
	if tmp, _ := os.ReadDir(filepath.Join(env.dir, "tmp")); len(tmp) != 0 {
		t.Fatalf("tmp/ holds %v", tmp)
	}
}

// TestUploadPartCopy: parts copied from whole objects and from byte
// ranges (replacing a part too) complete into the concatenation of those
// bytes, with S3's ETags; the copy-source conditions, range validation and
// the other refusals write no part.
func TestUploadPartCopy(t *testing.T) {
	env := newEnv(t)
	ctx := context.Background()
	c := env.root3()
	for _, b := range []string{"src", "dst"} {
		must[*s3.CreateBucketOutput](t)(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)}))
	}
	a := randBytes(minPartSize+100, 1)
	b := randBytes(3000, 2)
	putA := must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("src"), Key: aws.String("dir/a +b"), Body: bytes.NewReader(a),
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256}))
	must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("src"), Key: aws.String("b"), Body: bytes.NewReader(b)}))
	srcA, srcB := copySrc("src", "dir/a +b"), copySrc("src", "b")

	id := createUpload(t, c, "dst", "out")
	// Part 1: all of a, on the condition that it is the object listed.
	p1 := must[*s3.UploadPartCopyOutput](t)(c.UploadPartCopy(ctx, &s3.UploadPartCopyInput{Bucket: aws.String("dst"), Key: aws.String("out"), UploadId: aws.String(id),
		PartNumber: aws.Int32(1), CopySource: srcA, CopySourceIfMatch: putA.ETag}))
	if r := p1.CopyPartResult; r == nil || aws.ToString(r.ETag) != md5ETag(a) || r.LastModified == nil || time.Since(*r.LastModified) > time.Minute || r.ChecksumCRC32 != nil {
		t.Fatalf("CopyPartResult = %+v, want ETag %s", r, md5ETag(a))
	}
	// Part 2: a range of a, not at its start.
	a2 := a[7 : 7+minPartSize]
	p2 := must[*s3.UploadPartCopyOutput](t)(c.UploadPartCopy(ctx, partCopy("dst", "out", id, 2, srcA, fmt.Sprintf("bytes=7-%d", 7+minPartSize-1))))
	if got := aws.ToString(p2.CopyPartResult.ETag); got != md5ETag(a2) {
		t.Fatalf("range part ETag %s, want %s", got, md5ETag(a2))
	}
	// Part 3: all of b, then replaced by a range of it (the source named
	// with versionId=null, the current object).
	must[*s3.UploadPartCopyOutput](t)(c.UploadPartCopy(ctx, partCopy("dst", "out", id, 3, srcB, "")))
	b3 := b[10:100]
	p3 := must[*s3.UploadPartCopyOutput](t)(c.UploadPartCopy(ctx, partCopy("dst", "out", id, 3, aws.String(*srcB+"?versionId=null"), "bytes=10-99")))

	parts := listParts(t, c, "dst", "out", id)
	var got []string
	for _, p := range parts {
		got = append(got, fmt.Sprintf("%d %d %s", aws.ToInt32(p.PartNumber), aws.ToInt64(p.Size), aws.ToString(p.ETag)))
	}
	want := []string{"1 " + fmt.Sprint(len(a)) + " " + md5ETag(a), "2 " + fmt.Sprint(len(a2)) + " " + md5ETag(a2), "3 90 " + md5ETag(b3)}
	if !slices.Equal(got, want) {
		t.Fatalf("ListParts = %q, want %q", got, want)
	}
	if n := len(env.storeFiles(t)); n != 4+1+2*3 { // 2 objects, upload.json, 3 parts
		t.Fatalf("the replaced part left files behind: %v", env.storeFiles(t))
	}

	done := must[*s3.CompleteMultipartUploadOutput](t)(c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String("dst"), Key: aws.String("out"), UploadId: aws.String(id),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{
			{PartNumber: aws.Int32(1), ETag: p1.CopyPartResult.ETag},
			{PartNumber: aws.Int32(2), ETag: p2.CopyPartResult.ETag},
			{PartNumber: aws.Int32(3), ETag: p3.CopyPartResult.ETag},
		}}}))
	if aws.ToString(done.ETag) != multipartETag(a, a2, b3) {
		t.Fatalf("Complete ETag %s, want %s", aws.ToString(done.ETag), multipartETag(a, a2, b3))
	}
	out, _ := getBytes(t, c, "dst", "out")
	if wantOut := slices.Concat(a, a2, b3); !bytes.Equal(out, wantOut) {
		t.Fatalf("the completed object is %d bytes, not the %d copied ones (or differs)", len(out), len(wantOut))
	}

	// Refusals: none writes a part.
	id = createUpload(t, c, "dst", "refused")
	other := createUpload(t, c, "dst", "other")
	for _, rng := range []string{"0-8", "bytes=1-0", "bytes=-1-", "bytes=0--1", "bytes=0-1,3-4", "bytes=-", "bytes=1-", "bytes=-2", "bytes=a-b", "bytes= 0-1"} {
		_, err := c.UploadPartCopy(ctx, partCopy("dst", "refused", id, 1, srcB, rng))
		wantMessage(t, err, "InvalidArgument", "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy")
	}
	for _, rng := range []string{"bytes=0-3000", "bytes=2999-3000", "bytes=10-99999999999"} {
		_, err := c.UploadPartCopy(ctx, partCopy("dst", "refused", id, 1, srcB, rng))
		wantMessage(t, err, "InvalidArgument", "Range specified is not valid for source object of size: 3000")
	}
	for _, rng := range []string{"bytes=3000-3001", "bytes=5000-6000"} {
		_, err := c.UploadPartCopy(ctx, partCopy("dst", "refused", id, 1, srcB, rng))
		wantMessage(t, err, "InvalidRequest", "The specified copy range is invalid for the source object size")
	}
	for _, tc := range []struct {
		name string
		in   *s3.UploadPartCopyInput
		code string
	}{
		{"missing source", partCopy("dst", "refused", id, 1, copySrc("src", "missing"), ""), "NoSuchKey"},
		{"missing source bucket", partCopy("dst", "refused", id, 1, copySrc("nosuchbucket", "b"), ""), "NoSuchBucket"},
		{"source version", partCopy("dst", "refused", id, 1, aws.String(*srcB+"?versionId=3HL4kqtJlcpXroDTDmJ"), ""), "InvalidArgument"},
		{"no such upload", partCopy("dst", "refused", strings.Repeat("0", 32), 1, srcB, ""), "NoSuchUpload"},
		{"another key's upload", partCopy("dst", "refused", other, 1, srcB, ""), "NoSuchUpload"},
		{"part number 0", partCopy("dst", "refused", id, 0, srcB, ""), "InvalidArgument"},
		{"part number 10001", partCopy("dst", "refused", id, 10001, srcB, ""), "InvalidArgument"},
		{"if-match", &s3.UploadPartCopyInput{Bucket: aws.String("dst"), Key: aws.String("refused"), UploadId: aws.String(id), PartNumber: aws.Int32(1),
			CopySource: srcA, CopySourceIfMatch: aws.String(`"0123"`)}, "PreconditionFailed"},
		{"if-none-match", &s3.UploadPartCopyInput{Bucket: aws.String("dst"), Key: aws.String("refused"), UploadId: aws.String(id), PartNumber: aws.Int32(1),
			CopySource: srcA, CopySourceIfNoneMatch: putA.ETag}, "PreconditionFailed"},
		{"if-modified-since", &s3.UploadPartCopyInput{Bucket: aws.String("dst"), Key: aws.String("refused"), UploadId: aws.String(id), PartNumber: aws.Int32(1),
			CopySource: srcA, CopySourceIfModifiedSince: aws.Time(time.Now().Add(time.Hour))}, "PreconditionFailed"},
		{"if-unmodified-since", &s3.UploadPartCopyInput{Bucket: aws.String("dst"), Key: aws.String("refused"), UploadId: aws.String(id), PartNumber: aws.Int32(1),
			CopySource: srcA, CopySourceIfUnmodifiedSince: aws.Time(time.Now().Add(-time.Hour))}, "PreconditionFailed"},
	} {
		_, err := c.UploadPartCopy(ctx, tc.in)
		if apiCode(err) != tc.code {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
		}
	}
	if parts := listParts(t, c, "dst", "refused", id); len(parts) != 0 {
		t.Fatalf("refused copies left parts: %+v", parts)
	}
	tmpEmpty(t, env)
}

// wantMessage checks an error's code and message.
func wantMessage(t *testing.T, err error, code, msg string) {
	t.Helper()
	var ae smithy.APIError
	if apiCode(err) != code || !errors.As(err, &ae) || ae.ErrorMessage() != msg {
		t.Fatalf("error %v, want %s %q", err, code, msg)
	}
}

// TestUploadPartCopySession: a job credential copies parts from an object
// it may read into an upload of a key it may write. A source it may not
// read (existing or not), or an upload of a key it may not write, is
// AccessDenied, and no part is written.
func TestUploadPartCopySession(t *testing.T) {
	env, root, job := copySessionEnv(t)
	ctx := context.Background()

	id := createUpload(t, job, "artifacts", "job1/out")
	p := must[*s3.UploadPartCopyOutput](t)(job.UploadPartCopy(ctx, partCopy("artifacts", "job1/out", id, 1, copySrc("artifacts", "job1/in"), "bytes=6-13")))
	must[*s3.CompleteMultipartUploadOutput](t)(job.CompleteMultipartUpload(ctx, completeInput("artifacts", "job1/out", id, p.CopyPartResult.ETag)))
	if got, _ := getString(t, root, "artifacts", "job1/out"); got != "artifact" {
		t.Fatalf("copied part = %q", got)
	}

	jobUpload := createUpload(t, job, "artifacts", "job1/out2")
	sharedUpload := createUpload(t, root, "artifacts", "shared/dst")
	otherUpload := createUpload(t, root, "other", "job1/dst")
	before := env.storeFiles(t)
	for _, tc := range []struct {
		name string
		in   *s3.UploadPartCopyInput
	}{
		{"source not readable", partCopy("artifacts", "job1/out2", jobUpload, 1, copySrc("artifacts", "shared/secret"), "")},
		{"missing source not readable", partCopy("artifacts", "job1/out2", jobUpload, 1, copySrc("artifacts", "shared/missing"), "")},
		{"source bucket not readable", partCopy("artifacts", "job1/out2", jobUpload, 1, copySrc("nosuchbucket", "job1/in"), "")},
		{"destination not writable", partCopy("artifacts", "shared/dst", sharedUpload, 1, copySrc("artifacts", "job1/in"), "")},
		{"destination bucket not writable", partCopy("other", "job1/dst", otherUpload, 1, copySrc("artifacts", "job1/in"), "")},
	} {
		_, err := job.UploadPartCopy(ctx, tc.in)
		if apiCode(err) != "AccessDenied" {
			t.Errorf("%s: %v, want AccessDenied", tc.name, err)
		}
	}
	if after := env.storeFiles(t); !slices.Equal(before, after) {
		t.Fatalf("denied copies changed the store:\nbefore %v\nafter  %v", before, after)
	}
	for _, u := range [][3]string{{"artifacts", "job1/out2", jobUpload}, {"artifacts", "shared/dst", sharedUpload}, {"other", "job1/dst", otherUpload}} {
		if parts := listParts(t, root, u[0], u[1], u[2]); len(parts) != 0 {
			t.Errorf("%s/%s: parts %+v after denied copies", u[0], u[1], parts)
		}
	}
	_, err := job.UploadPartCopy(ctx, partCopy("artifacts", "job1/out2", jobUpload, 1, copySrc("artifacts", "job1/missing"), ""))
	wantCode(t, err, "NoSuchKey")
	tmpEmpty(t, env)
}

// TestUploadPartCopyChecksum: in an upload created with a checksum
// algorithm, a copied part gets that checksum, computed over the copied
// bytes (and no other, though its source has one), and
// CompleteMultipartUpload checks it.
func TestUploadPartCopyChecksum(t *testing.T) {
	env := newEnv(t)
	ctx := context.Background()
	c := env.root3()
	must[*s3.CreateBucketOutput](t)(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bkt")}))
	a := randBytes(minPartSize+10, 3)
	b := randBytes(1000, 4)
	must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bkt"), Key: aws.String("a"), Body: bytes.NewReader(a)}))
	must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bkt"), Key: aws.String("b"), Body: bytes.NewReader(b),
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256}))
	cu := must[*s3.CreateMultipartUploadOutput](t)(c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("bkt"), Key: aws.String("out"),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32}))
	id := aws.ToString(cu.UploadId)

	a1 := a[10:]
	p1 := must[*s3.UploadPartCopyOutput](t)(c.UploadPartCopy(ctx, partCopy("bkt", "out", id, 1, copySrc("bkt", "a"), fmt.Sprintf("bytes=10-%d", len(a)-1))))
	p2 := must[*s3.UploadPartCopyOutput](t)(c.UploadPartCopy(ctx, partCopy("bkt", "out", id, 2, copySrc("bkt", "b"), "")))
	if got := aws.ToString(p1.CopyPartResult.ChecksumCRC32); got != crc32B64(a1) {
		t.Fatalf("part 1 CRC32 %q, want %q", got, crc32B64(a1))
	}
	if got := aws.ToString(p2.CopyPartResult.ChecksumCRC32); got != crc32B64(b) || p2.CopyPartResult.ChecksumSHA256 != nil {
		t.Fatalf("part 2 CRC32 %q (want %q), SHA256 %v", got, crc32B64(b), aws.ToString(p2.CopyPartResult.ChecksumSHA256))
	}
	parts := listParts(t, c, "bkt", "out", id)
	if len(parts) != 2 || aws.ToString(parts[0].ChecksumCRC32) != crc32B64(a1) || aws.ToString(parts[1].ChecksumCRC32) != crc32B64(b) || parts[1].ChecksumSHA256 != nil {
		t.Fatalf("ListParts = %+v", parts)
	}

	complete := func(crc2 string) error {
		_, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String("bkt"), Key: aws.String("out"), UploadId: aws.String(id),
			MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{
				{PartNumber: aws.Int32(1), ETag: p1.CopyPartResult.ETag, ChecksumCRC32: p1.CopyPartResult.ChecksumCRC32},
				{PartNumber: aws.Int32(2), ETag: p2.CopyPartResult.ETag, ChecksumCRC32: aws.String(crc2)},
			}}})
		return err
	}
	wantCode(t, complete(crc32B64(a1)), "InvalidPart")
	if err := complete(crc32B64(b)); err != nil {
		t.Fatal(err)
	}
	if out, _ := getBytes(t, c, "bkt", "out"); !bytes.Equal(out, slices.Concat(a1, b)) {
		t.Fatal("the completed object is not the copied bytes")
	}
}

// copiedToTmp tells whether tmp/ holds one file, of size bytes.
func copiedToTmp(env *testEnv, size int64) bool {
	ents, _ := os.ReadDir(filepath.Join(env.dir, "tmp"))
	if len(ents) != 1 {
		return false
	}
	fi, err := ents[0].Info()
	return err == nil && fi.Size() == size
}

// sweepingAuth is testAuth, and sweeps every upload the first time it is
// asked about reading the object "src" once armed: that is, in the middle
// of an UploadPartCopy, after its first look at the upload and before its
// bytes are copied and the part moved in.
type sweepingAuth struct {
	testAuth
	h       *Handler
	armed   atomic.Bool
	removed atomic.Int64
}

func (a *sweepingAuth) Allow(ctx context.Context, c sigv4.Credential, op Op, bucket, key string) bool {
	if op == Read && key == "src" && a.armed.CompareAndSwap(true, false) {
		n, err := a.h.SweepUploads(time.Now().Add(time.Hour))
		if err != nil {
			panic(err)
		}
		a.removed.Add(int64(n))
	}
	return a.testAuth.Allow(ctx, c, op, bucket, key)
}

// TestUploadPartCopySweptUpload: an upload swept while a part is being
// copied into it answers NoSuchUpload and gets no part (nothing is left
// under uploads/ or in tmp/); a part copy waits for the upload's lock
// before moving its part in, and answers NoSuchUpload if the upload went
// while it waited.
func TestUploadPartCopySweptUpload(t *testing.T) {
	auth := &sweepingAuth{}
	env := newEnvAuth(t, auth)
	auth.h = env.h
	ctx := context.Background()
	c := env.root3()
	must[*s3.CreateBucketOutput](t)(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bkt")}))
	must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bkt"), Key: aws.String("src"), Body: bytes.NewReader(randBytes(1<<20, 5))}))

	id := createUpload(t, c, "bkt", "dst")
	p1 := uploadPart(t, c, "bkt", "dst", id, 1, []byte("first part"))
	auth.armed.Store(true)
	_, err := c.UploadPartCopy(ctx, partCopy("bkt", "dst", id, 2, copySrc("bkt", "src"), ""))
	wantCode(t, err, "NoSuchUpload")
	if auth.removed.Load() != 1 {
		t.Fatalf("the sweep removed %d uploads, want 1", auth.removed.Load())
	}
	if _, err := os.Stat(filepath.Join(env.dir, "uploads", id)); !os.IsNotExist(err) {
		t.Fatalf("the swept upload's directory is back (%v)", err)
	}
	tmpEmpty(t, env)
	_, err = c.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String("bkt"), Key: aws.String("dst"), UploadId: aws.String(id)})
	wantCode(t, err, "NoSuchUpload")
	_, err = c.CompleteMultipartUpload(ctx, completeInput("bkt", "dst", id, p1.ETag))
	wantCode(t, err, "NoSuchUpload")
	if exists(t, c, "bkt", "dst") {
		t.Fatal("a swept upload became an object")
	}

	// The lock: a part copy waits for it, and the upload goes meanwhile.
	id = createUpload(t, c, "bkt", "dst")
	unlock := env.h.uploads.lock(id)
	if n, err := env.h.SweepUploads(time.Now().Add(time.Hour)); n != 0 || err != nil {
		unlock()
		t.Fatalf("swept an upload in use: %d, %v", n, err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.UploadPartCopy(ctx, partCopy("bkt", "dst", id, 1, copySrc("bkt", "src"), ""))
		done <- err
	}()
	// It copies the bytes without the lock (they appear in tmp/), then
	// waits for the lock to move the part in.
	for deadline := time.Now().Add(10 * time.Second); !copiedToTmp(env, 1<<20); time.Sleep(5 * time.Millisecond) {
		select {
		case err := <-done:
			unlock()
			t.Fatalf("UploadPartCopy did not wait for the upload's lock: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			unlock()
			t.Fatal("the part's bytes never appeared in tmp/")
		}
	}
	select {
	case err := <-done:
		unlock()
		t.Fatalf("UploadPartCopy did not wait for the upload's lock: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	if err := env.h.removeUpload(id); err != nil { // as an abort holding the lock
		unlock()
		t.Fatal(err)
	}
	unlock()
	wantCode(t, <-done, "NoSuchUpload")
	if _, err := os.Stat(filepath.Join(env.dir, "uploads", id)); !os.IsNotExist(err) {
		t.Fatalf("the removed upload's directory is back (%v)", err)
	}
	tmpEmpty(t, env)
	env.h.uploads.mu.Lock()
	locks := len(env.h.uploads.m)
	env.h.uploads.mu.Unlock()
	if locks != 0 {
		t.Fatalf("%d upload locks left", locks)
	}
}
