package s3api

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/pipelined/pipelined/internal/sigv4"
)

// deleteAuth is testAuth, and the job credential may also delete under
// artifacts/job1/tmp/ (and nothing else), so that one DeleteObjects can
// hold keys it may and may not delete.
type deleteAuth struct{ testAuth }

func (a deleteAuth) Allow(ctx context.Context, c sigv4.Credential, op Op, bucket, key string) bool {
	if c.Principal == "job1" && op == Delete {
		return bucket == "artifacts" && strings.HasPrefix(key, "job1/tmp/")
	}
	return a.testAuth.Allow(ctx, c, op, bucket, key)
}

func putString(t *testing.T, c *s3.Client, bucket, key, body string) {
	t.Helper()
	must[*s3.PutObjectOutput](t)(c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body)}))
}

func exists(t *testing.T, c *s3.Client, bucket, key string) bool {
	t.Helper()
	_, err := c.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err == nil {
		return true
	}
	if !strings.Contains(err.Error(), "404") {
		t.Fatalf("HeadObject %s/%s: %v", bucket, key, err)
	}
	return false
}

func objectIDs(keys ...string) []types.ObjectIdentifier {
	out := make([]types.ObjectIdentifier, len(keys))
	for i, k := range keys {
		out[i] = types.ObjectIdentifier{Key: aws.String(k)}
	}
	return out
}

func deletedKeys(o *s3.DeleteObjectsOutput) []string {
	var out []string
	for _, d := range o.Deleted {
		out = append(out, aws.ToString(d.Key))
	}
	slices.Sort(out)
	return out
}

func errorEntries(o *s3.DeleteObjectsOutput) []string {
	var out []string
	for _, e := range o.Errors {
		out = append(out, aws.ToString(e.Key)+" "+aws.ToString(e.Code)+" "+aws.ToString(e.Message))
	}
	slices.Sort(out)
	return out
}

// TestDeleteObjectsSession: a session credential's DeleteObjects deletes
// the keys it may delete (missing ones count as deleted), reports
// AccessDenied for the others and leaves them on disk.
func TestDeleteObjectsSession(t *testing.T) {
	env := newEnvAuth(t, deleteAuth{})
	ctx := context.Background()
	root := env.root3()
	must[*s3.CreateBucketOutput](t)(root.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("artifacts")}))
	for _, k := range []string{"job1/tmp/a", "job1/tmp/b", "job1/keep", "other/x"} {
		putString(t, root, "artifacts", k, "data of "+k)
	}
	filesBefore := len(env.storeFiles(t))
	job := env.client(jobAKID, jobSecret, jobToken)

	out := must[*s3.DeleteObjectsOutput](t)(job.DeleteObjects(ctx, &s3.DeleteObjectsInput{
		Bucket: aws.String("artifacts"),
		Delete: &types.Delete{Objects: objectIDs("job1/tmp/a", "job1/tmp/missing", "job1/keep", "other/x", "job1/tmp/b")},
	}))
	if got, want := deletedKeys(out), []string{"job1/tmp/a", "job1/tmp/b", "job1/tmp/missing"}; !slices.Equal(got, want) {
		t.Errorf("Deleted = %v, want %v", got, want)
	}
	if got, want := errorEntries(out), []string{"job1/keep AccessDenied Access Denied", "other/x AccessDenied Access Denied"}; !slices.Equal(got, want) {
		t.Errorf("Errors = %v, want %v", got, want)
	}
	for k, want := range map[string]bool{"job1/tmp/a": false, "job1/tmp/b": false, "job1/keep": true, "other/x": true} {
		if got := exists(t, root, "artifacts", k); got != want {
			t.Errorf("%s exists = %v, want %v", k, got, want)
		}
	}
	// Sidecar and data of both deleted objects are gone from disk.
	if n := len(env.storeFiles(t)); n != filesBefore-4 {
		t.Errorf("%d files on disk, want %d: %v", n, filesBefore-4, env.storeFiles(t))
	}

	// Quiet: only the errors are reported.
	putString(t, root, "artifacts", "job1/tmp/c", "c")
	out = must[*s3.DeleteObjectsOutput](t)(job.DeleteObjects(ctx, &s3.DeleteObjectsInput{
		Bucket: aws.String("artifacts"),
		Delete: &types.Delete{Objects: objectIDs("job1/tmp/c", "job1/keep"), Quiet: aws.Bool(true)},
	}))
	if len(out.Deleted) != 0 || !slices.Equal(errorEntries(out), []string{"job1/keep AccessDenied Access Denied"}) {
		t.Errorf("quiet: Deleted %v, Errors %v", deletedKeys(out), errorEntries(out))
	}
	if exists(t, root, "artifacts", "job1/tmp/c") {
		t.Error("quiet delete left job1/tmp/c")
	}

	// No key it may delete: the request itself is refused, before the
	// bucket's existence is looked at.
	before := env.storeFiles(t)
	_, err := job.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String("artifacts"), Delete: &types.Delete{Objects: objectIDs("job1/keep", "other/x")}})
	wantCode(t, err, "AccessDenied")
	_, err = job.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String("nope"), Delete: &types.Delete{Objects: objectIDs("job1/tmp/a")}})
	wantCode(t, err, "AccessDenied")
	if after := env.storeFiles(t); !slices.Equal(before, after) {
		t.Fatalf("refused requests changed the store:\nbefore %v\nafter  %v", before, after)
	}
	_, err = root.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String("nope"), Delete: &types.Delete{Objects: objectIDs("x")}})
	wantCode(t, err, "NoSuchBucket")

	// What the SDK sent: a CRC32 and no Content-MD5, which must be enough.
	env.wire.mu.Lock()
	defer env.wire.mu.Unlock()
	for _, hd := range env.wire.deletes {
		if hd.Get("Content-Md5") == "" && hd.Get("X-Amz-Checksum-Crc32") == "" && !strings.Contains(hd.Get("X-Amz-Trailer"), "crc32") {
			t.Errorf("a DeleteObjects carried neither Content-MD5 nor a CRC32: %v", hd)
		}
	}
	t.Logf("DeleteObjects integrity headers: Content-MD5 %q, x-amz-checksum-crc32 %q, x-amz-trailer %q",
		env.wire.deletes[0].Get("Content-Md5"), env.wire.deletes[0].Get("X-Amz-Checksum-Crc32"), env.wire.deletes[0].Get("X-Amz-Trailer"))
}

// corruptChecksum makes the SDK send a wrong x-amz-checksum-crc32 (after
// computing the right one, before signing).
func corruptChecksum(stack *middleware.Stack) error {
	return stack.Finalize.Insert(middleware.FinalizeMiddlewareFunc("corruptChecksum",
		func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			req := in.Request.(*smithyhttp.Request)
			if req.Header.Get("X-Amz-Checksum-Crc32") == "" {
				return middleware.FinalizeOutput{}, middleware.Metadata{}, fmt.Errorf("no x-amz-checksum-crc32 to corrupt: %v", req.Header)
			}
			req.Header.Set("X-Amz-Checksum-Crc32", "AAAAAA==")
			return next.HandleFinalize(ctx, in)
		}), "Signing", middleware.Before)
}

func TestDeleteObjectsLimitsAndIntegrity(t *testing.T) {
	env := newEnv(t)
	ctx := context.Background()
	c := env.root3()
	must[*s3.CreateBucketOutput](t)(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bkt")}))
	putString(t, c, "bkt", "keep", "keep")

	keys := make([]string, 1001)
	for i := range keys {
		keys[i] = fmt.Sprintf("k/%04d", i)
	}
	keys[1000] = "keep"
	_, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String("bkt"), Delete: &types.Delete{Objects: objectIDs(keys...)}})
	wantCode(t, err, "MalformedXML")
	if !exists(t, c, "bkt", "keep") {
		t.Fatal("a refused DeleteObjects of 1001 keys deleted one")
	}
	out := must[*s3.DeleteObjectsOutput](t)(c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String("bkt"), Delete: &types.Delete{Objects: objectIDs(keys[:1000]...)}}))
	if len(out.Deleted) != 1000 || len(out.Errors) != 0 {
		t.Fatalf("1000 keys: %d deleted, %d errors", len(out.Deleted), len(out.Errors))
	}

	// A wrong checksum, through the SDK.
	_, err = c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String("bkt"), Delete: &types.Delete{Objects: objectIDs("keep")}},
		s3.WithAPIOptions(corruptChecksum))
	wantCode(t, err, "BadDigest")
	if !exists(t, c, "bkt", "keep") {
		t.Fatal("a DeleteObjects with a bad checksum deleted its key")
	}

	// Headers the SDK never sends wrong, by hand.
	body := []byte(`<Delete><Object><Key>keep</Key></Object></Delete>`)
	md5sum := md5.Sum(body)
	goodMD5 := base64.StdEncoding.EncodeToString(md5sum[:])
	crc := crc32.ChecksumIEEE(body)
	goodCRC := base64.StdEncoding.EncodeToString([]byte{byte(crc >> 24), byte(crc >> 16), byte(crc >> 8), byte(crc)})
	for _, tc := range []struct {
		name string
		body []byte
		hdr  map[string]string
		code string
	}{
		{"no integrity header", body, nil, "InvalidRequest"},
		{"only an algorithm", body, map[string]string{"x-amz-sdk-checksum-algorithm": "CRC32"}, "InvalidRequest"},
		{"bad Content-MD5", body, map[string]string{"Content-MD5": "1B2M2Y8AsgTpgAmY7PhCfg=="}, "BadDigest"},
		{"invalid Content-MD5", body, map[string]string{"Content-MD5": "nope"}, "InvalidDigest"},
		{"bad CRC32", body, map[string]string{"x-amz-checksum-crc32": "AAAAAA=="}, "BadDigest"},
		{"good MD5, bad CRC32", body, map[string]string{"Content-MD5": goodMD5, "x-amz-checksum-crc32": "AAAAAA=="}, "BadDigest"},
		{"not XML", []byte("<Delete><Object>"), map[string]string{"Content-MD5": md5Of([]byte("<Delete><Object>"))}, "MalformedXML"},
		{"no objects", []byte("<Delete></Delete>"), map[string]string{"Content-MD5": md5Of([]byte("<Delete></Delete>"))}, "MalformedXML"},
		{"empty key", []byte("<Delete><Object><Key></Key></Object></Delete>"), map[string]string{"Content-MD5": md5Of([]byte("<Delete><Object><Key></Key></Object></Delete>"))}, "MalformedXML"},
		{"too large", bytes.Repeat([]byte(" "), maxXMLBody+1), map[string]string{"Content-MD5": md5Of(bytes.Repeat([]byte(" "), maxXMLBody+1))}, "MalformedXML"},
	} {
		status, code, raw := env.signedRequest(t, http.MethodPost, "/bkt?delete", tc.body, tc.hdr)
		if code != tc.code || status != 400 {
			t.Errorf("%s: %d %s, want 400 %s: %s", tc.name, status, code, tc.code, raw)
		}
		if tc.code == "InvalidRequest" && !strings.Contains(string(raw), "Missing required header for this request: Content-MD5") {
			t.Errorf("%s: message %s", tc.name, raw)
		}
	}
	if !exists(t, c, "bkt", "keep") {
		t.Fatal("a refused DeleteObjects deleted its key")
	}

	// Content-MD5 alone (older clients) and a CRC32 alone are each enough;
	// S3's XML shape, namespace included.
	status, _, raw := env.signedRequest(t, http.MethodPost, "/bkt?delete", body, map[string]string{"x-amz-checksum-crc32": goodCRC})
	want := `<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Deleted><Key>keep</Key></Deleted></DeleteResult>`
	if status != 200 || !strings.Contains(string(raw), want) {
		t.Fatalf("CRC32 only: %d %s", status, raw)
	}
	if exists(t, c, "bkt", "keep") {
		t.Fatal("keep survived")
	}
	status, _, raw = env.signedRequest(t, http.MethodPost, "/bkt?delete", body, map[string]string{"Content-MD5": goodMD5})
	if status != 200 || !strings.Contains(string(raw), want) {
		t.Fatalf("Content-MD5 only: %d %s", status, raw)
	}

	// Versions and conditions.
	putString(t, c, "bkt", "v", "v")
	head := must[*s3.HeadObjectOutput](t)(c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("bkt"), Key: aws.String("v")}))
	out = must[*s3.DeleteObjectsOutput](t)(c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String("bkt"), Delete: &types.Delete{Objects: []types.ObjectIdentifier{
		{Key: aws.String("v"), VersionId: aws.String("3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY")},
		{Key: aws.String("v"), ETag: aws.String(`"0123456789abcdef0123456789abcdef"`)},
		{Key: aws.String("v"), Size: aws.Int64(1)},
	}}}))
	if got, want := errorEntries(out), []string{
		"v NoSuchVersion The specified version does not exist.",
		"v NotImplemented Conditional deletes on LastModifiedTime or Size are not implemented.",
		"v PreconditionFailed At least one of the pre-conditions you specified did not hold",
	}; !slices.Equal(got, want) || len(out.Deleted) != 0 {
		t.Fatalf("conditional deletes: errors %v, deleted %v", got, deletedKeys(out))
	}
	if !exists(t, c, "bkt", "v") {
		t.Fatal("a failed condition deleted the object")
	}
	out = must[*s3.DeleteObjectsOutput](t)(c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String("bkt"), Delete: &types.Delete{Objects: []types.ObjectIdentifier{
		{Key: aws.String("v"), ETag: head.ETag, VersionId: aws.String("null")},
	}}}))
	if len(out.Errors) != 0 || exists(t, c, "bkt", "v") {
		t.Fatalf("matching ETag: errors %v", errorEntries(out))
	}
}

func md5Of(b []byte) string {
	s := md5.Sum(b)
	return base64.StdEncoding.EncodeToString(s[:])
}

// FuzzDeleteObjectsBody feeds arbitrary DeleteObjects bodies through the
// parser and the whole handler (signed by root, with a correct
// Content-MD5): no panic, no 500, and a 200 answers for every object
// exactly once (bar Quiet's Deleted entries), in well-formed XML.
func FuzzDeleteObjectsBody(f *testing.F) {
	f.Add([]byte(`<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Object><Key>a</Key></Object><Object><Key>b/c</Key><VersionId>null</VersionId></Object><Quiet>true</Quiet></Delete>`))
	f.Add([]byte(`<Delete><Object><Key>a&amp;b&#x10FFFF;</Key><ETag>"x"</ETag></Object><Object><Key>k</Key><Size>1</Size></Object></Delete>`))
	f.Add([]byte(`<Delete><Object><Key>x</Key></Object><Quiet>maybe</Quiet></Delete>`))
	f.Add([]byte(`<Delete><Object></Object></Delete>`))
	f.Add([]byte(`<?xml version="1.0"?><!DOCTYPE d [<!ENTITY e "x">]><Delete><Object><Key>&e;</Key></Object></Delete>`))
	f.Add([]byte(strings.Repeat("<Delete>", 100)))

	dir := f.TempDir()
	h, err := New(filepath.Join(dir, "store"), testRegion, testAuth{}, slog.New(slog.DiscardHandler))
	if err != nil {
		f.Fatal(err)
	}
	h.st.createBucket("bkt")
	signer := v4.NewSigner()
	creds := aws.Credentials{AccessKeyID: rootAKID, SecretAccessKey: rootSecret}

	f.Fuzz(func(t *testing.T, body []byte) {
		req, perr := parseDeleteRequest(body)
		if perr == nil && (len(req.Objects) == 0 || len(req.Objects) > maxDeleteKeys) {
			t.Fatalf("parsed %d objects", len(req.Objects))
		}
		r := httptest.NewRequest(http.MethodPost, "http://s3.test/bkt?delete", bytes.NewReader(body))
		r.Header.Set("Content-MD5", md5Of(body))
		r.Header.Set("X-Amz-Content-Sha256", sigv4.UnsignedPayload)
		if err := signer.SignHTTP(context.Background(), creds, r, sigv4.UnsignedPayload, "s3", testRegion, time.Now()); err != nil {
			t.Fatal(err)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		res := w.Result()
		raw, _ := io.ReadAll(res.Body)
		switch {
		case perr != nil:
			if res.StatusCode != 400 {
				t.Fatalf("unparsable body answered %d: %s", res.StatusCode, raw)
			}
		case res.StatusCode != 200:
			t.Fatalf("parsed body answered %d: %s", res.StatusCode, raw)
		default:
			var out deleteResult
			if err := xml.Unmarshal(raw, &out); err != nil {
				t.Fatalf("answer is not XML: %v: %s", err, raw)
			}
			n := len(out.Deleted) + len(out.Errors)
			if req.Quiet && len(out.Deleted) != 0 || !req.Quiet && n != len(req.Objects) {
				t.Fatalf("%d objects (quiet %v), answered %d deleted, %d errors", len(req.Objects), req.Quiet, len(out.Deleted), len(out.Errors))
			}
		}
	})
}

// TestDeleteObjectVersionID: the store keeps no versions. DeleteObject
// with versionId=null deletes the object; any other id is S3's answer for
// an unversioned bucket, 400 InvalidArgument, and deletes nothing, whether
// or not the key exists. DELETE with a subresource (?tagging, ?acl) does
// not delete the object either.
func TestDeleteObjectVersionID(t *testing.T) {
	env := newEnv(t)
	ctx := context.Background()
	c := env.root3()
	must[*s3.CreateBucketOutput](t)(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bkt")}))
	putString(t, c, "bkt", "k", "content")

	for _, key := range []string{"k", "missing"} {
		for _, v := range []string{"3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY", "NULL"} {
			_, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("bkt"), Key: aws.String(key), VersionId: aws.String(v)})
			wantMessage(t, err, "InvalidArgument", "Invalid version id specified")
		}
	}
	status, code, raw := env.signedRequest(t, http.MethodDelete, "/bkt/k?versionId=abc", nil, nil)
	if status != 400 || code != "InvalidArgument" || !strings.Contains(string(raw), "<ArgumentName>versionId</ArgumentName><ArgumentValue>abc</ArgumentValue>") {
		t.Fatalf("versionId=abc: %d %s %s", status, code, raw)
	}
	status, code, raw = env.signedRequest(t, http.MethodDelete, "/bkt/k?versionId=", nil, nil)
	if status != 400 || code != "InvalidArgument" || !strings.Contains(string(raw), "Version id cannot be the empty string") {
		t.Fatalf("versionId=: %d %s %s", status, code, raw)
	}
	// DeleteObjectTagging deletes the tags, not the object; another
	// subresource is not served, and does not delete it either.
	status, code, raw = env.signedRequest(t, http.MethodDelete, "/bkt/k?tagging", nil, nil)
	if status != 204 {
		t.Fatalf("DELETE ?tagging: %d %s %s", status, code, raw)
	}
	status, code, raw = env.signedRequest(t, http.MethodDelete, "/bkt/k?acl", nil, nil)
	if status != 501 || code != "NotImplemented" {
		t.Fatalf("DELETE ?acl: %d %s %s", status, code, raw)
	}
	if got, _ := getString(t, c, "bkt", "k"); got != "content" {
		t.Fatalf("after refused deletes, k = %q", got)
	}

	must[*s3.DeleteObjectOutput](t)(c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("bkt"), Key: aws.String("k"), VersionId: aws.String("null")}))
	if exists(t, c, "bkt", "k") {
		t.Fatal("versionId=null did not delete the object")
	}
	// As without a version id, a missing key is deleted.
	must[*s3.DeleteObjectOutput](t)(c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("bkt"), Key: aws.String("k"), VersionId: aws.String("null")}))

	// DeleteObjects agrees: "null" deletes, another id is a NoSuchVersion
	// entry and deletes nothing.
	putString(t, c, "bkt", "k", "again")
	putString(t, c, "bkt", "k2", "kept")
	out := must[*s3.DeleteObjectsOutput](t)(c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String("bkt"), Delete: &types.Delete{Objects: []types.ObjectIdentifier{
		{Key: aws.String("k"), VersionId: aws.String("null")}, {Key: aws.String("k2"), VersionId: aws.String("3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY")},
	}}}))
	if got := deletedKeys(out); !slices.Equal(got, []string{"k"}) || len(out.Errors) != 1 || aws.ToString(out.Errors[0].Code) != "NoSuchVersion" {
		t.Fatalf("DeleteObjects: deleted %v, errors %v", got, errorEntries(out))
	}
	if exists(t, c, "bkt", "k") || !exists(t, c, "bkt", "k2") {
		t.Fatal("DeleteObjects with versions deleted the wrong objects")
	}
}
