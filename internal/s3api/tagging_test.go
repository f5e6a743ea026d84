package s3api

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/pipelined/pipelined/internal/sigv4"
)

// getTags reads an object's tags with GetObjectTagging, as "k=v&k2=v2"
// in the order answered (unencoded, for reading).
func getTags(t *testing.T, c *s3.Client, bucket, key string) string {
	t.Helper()
	out := must[*s3.GetObjectTaggingOutput](t)(c.GetObjectTagging(context.Background(), &s3.GetObjectTaggingInput{Bucket: aws.String(bucket), Key: aws.String(key)}))
	return tagString(out.TagSet)
}

func tagString(ts []types.Tag) string {
	var s []string
	for _, tg := range ts {
		s = append(s, aws.ToString(tg.Key)+"="+aws.ToString(tg.Value))
	}
	return strings.Join(s, "&")
}

// tagSet builds a tag set from "k", "v", "k2", "v2", ...
func tagSet(kv ...string) *types.Tagging {
	ts := &types.Tagging{TagSet: []types.Tag{}}
	for i := 0; i+1 < len(kv); i += 2 {
		ts.TagSet = append(ts.TagSet, types.Tag{Key: aws.String(kv[i]), Value: aws.String(kv[i+1])})
	}
	return ts
}

func putTags(c *s3.Client, bucket, key string, tagging *types.Tagging) error {
	_, err := c.PutObjectTagging(context.Background(), &s3.PutObjectTaggingInput{Bucket: aws.String(bucket), Key: aws.String(key), Tagging: tagging})
	return err
}

func tagCount(p *int32) string {
	if p == nil {
		return "none"
	}
	return strconv.Itoa(int(*p))
}

// storeContents maps every file under the store's buckets and uploads to
// its content.
func (e *testEnv) storeContents(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, f := range e.storeFiles(t) {
		if strings.HasPrefix(f, "tmp/") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(e.dir, f))
		if err != nil {
			t.Fatal(err)
		}
		out[f] = string(b)
	}
	return out
}

// TestObjectTagging: tags given with PutObject's x-amz-tagging read back
// with GetObjectTagging, sorted by key, and are counted by GetObject and
// HeadObject's x-amz-tagging-count; PutObjectTagging replaces them and
// DeleteObjectTagging removes them, leaving the object's bytes, ETag and
// LastModified alone; a missing object is NoSuchKey.
func TestObjectTagging(t *testing.T) {
	env := newEnv(t)
	ctx := context.Background()
	c := env.root3()
	must[*s3.CreateBucketOutput](t)(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bkt")}))

	// Percent-encoding, "+" for a space, a key without a value.
	put := must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bkt"), Key: aws.String("k"),
		Body: strings.NewReader("content"), Tagging: aws.String("b=two%20words&a=1&c=x+y&empty=&%C3%BC=%E6%96%87&eq=a=b")}))
	const want = "a=1&b=two words&c=x y&empty=&eq=a=b&ü=文"
	if got := getTags(t, c, "bkt", "k"); got != want {
		t.Fatalf("tags = %q, want %q", got, want)
	}
	_, g := getString(t, c, "bkt", "k")
	head := must[*s3.HeadObjectOutput](t)(c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("bkt"), Key: aws.String("k")}))
	if tagCount(g.TagCount) != "6" || tagCount(head.TagCount) != "6" {
		t.Fatalf("x-amz-tagging-count: GetObject %s, HeadObject %s, want 6", tagCount(g.TagCount), tagCount(head.TagCount))
	}

	// An object without tags: an empty set, and no count.
	putString(t, c, "bkt", "plain", "x")
	if got := getTags(t, c, "bkt", "plain"); got != "" {
		t.Fatalf("tags of an untagged object = %q", got)
	}
	_, g = getString(t, c, "bkt", "plain")
	head = must[*s3.HeadObjectOutput](t)(c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("bkt"), Key: aws.String("plain")}))
	if g.TagCount != nil || head.TagCount != nil {
		t.Fatalf("x-amz-tagging-count of an untagged object: %s, %s", tagCount(g.TagCount), tagCount(head.TagCount))
	}

	// PutObjectTagging replaces the set; the object is otherwise the same
	// (its sidecar but for the tags, its data file).
	before, err := env.h.st.head("bkt", "k")
	if err != nil {
		t.Fatal(err)
	}
	unchanged := func(step string) {
		t.Helper()
		m, err := env.h.st.head("bkt", "k")
		if err != nil {
			t.Fatal(err)
		}
		if m.ETag != before.ETag || !m.Modified.Equal(before.Modified) || m.Data != before.Data || m.Size != before.Size {
			t.Fatalf("%s changed the object: %+v, was %+v", step, m, before)
		}
		got, g := getString(t, c, "bkt", "k")
		if got != "content" || aws.ToString(g.ETag) != aws.ToString(put.ETag) || !g.LastModified.Equal(before.Modified.Truncate(time.Second)) {
			t.Fatalf("%s: GetObject = %q, ETag %s, LastModified %v", step, got, aws.ToString(g.ETag), g.LastModified)
		}
	}
	must[*s3.PutObjectTaggingOutput](t)(c.PutObjectTagging(ctx, &s3.PutObjectTaggingInput{Bucket: aws.String("bkt"), Key: aws.String("k"), Tagging: tagSet("new", "v")}))
	if got := getTags(t, c, "bkt", "k"); got != "new=v" {
		t.Fatalf("after PutObjectTagging: %q", got)
	}
	unchanged("PutObjectTagging")
	_, g = getString(t, c, "bkt", "k")
	if tagCount(g.TagCount) != "1" {
		t.Fatalf("x-amz-tagging-count = %s, want 1", tagCount(g.TagCount))
	}

	must[*s3.DeleteObjectTaggingOutput](t)(c.DeleteObjectTagging(ctx, &s3.DeleteObjectTaggingInput{Bucket: aws.String("bkt"), Key: aws.String("k")}))
	if got := getTags(t, c, "bkt", "k"); got != "" {
		t.Fatalf("after DeleteObjectTagging: %q", got)
	}
	unchanged("DeleteObjectTagging")
	_, g = getString(t, c, "bkt", "k")
	if g.TagCount != nil {
		t.Fatalf("x-amz-tagging-count after DeleteObjectTagging: %s", tagCount(g.TagCount))
	}
	// And again, on an object without tags; an empty TagSet removes them
	// too.
	must[*s3.DeleteObjectTaggingOutput](t)(c.DeleteObjectTagging(ctx, &s3.DeleteObjectTaggingInput{Bucket: aws.String("bkt"), Key: aws.String("k")}))
	if err := putTags(c, "bkt", "k", tagSet("x", "1")); err != nil {
		t.Fatal(err)
	}
	if err := putTags(c, "bkt", "k", tagSet()); err != nil || getTags(t, c, "bkt", "k") != "" {
		t.Fatalf("an empty TagSet: %v, tags %q", err, getTags(t, c, "bkt", "k"))
	}
	unchanged("an empty TagSet")

	// A missing object or bucket; nothing is created.
	_, err = c.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String("bkt"), Key: aws.String("missing")})
	wantCode(t, err, "NoSuchKey")
	wantCode(t, putTags(c, "bkt", "missing", tagSet("a", "1")), "NoSuchKey")
	_, err = c.DeleteObjectTagging(ctx, &s3.DeleteObjectTaggingInput{Bucket: aws.String("bkt"), Key: aws.String("missing")})
	wantCode(t, err, "NoSuchKey")
	if exists(t, c, "bkt", "missing") {
		t.Fatal("tagging a missing object created it")
	}
	_, err = c.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String("nope"), Key: aws.String("k")})
	wantCode(t, err, "NoSuchBucket")

	// Versions: the store keeps none; "null" is the object.
	if err := putTags(c, "bkt", "k", tagSet("v", "1")); err != nil {
		t.Fatal(err)
	}
	gv := must[*s3.GetObjectTaggingOutput](t)(c.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String("bkt"), Key: aws.String("k"), VersionId: aws.String("null")}))
	if tagString(gv.TagSet) != "v=1" {
		t.Fatalf("versionId=null: %q", tagString(gv.TagSet))
	}
	_, err = c.PutObjectTagging(ctx, &s3.PutObjectTaggingInput{Bucket: aws.String("bkt"), Key: aws.String("k"), VersionId: aws.String("3HL4kqtJlcpXroDTDmJ"), Tagging: tagSet("w", "2")})
	wantCode(t, err, "InvalidArgument")
	if got := getTags(t, c, "bkt", "k"); got != "v=1" {
		t.Fatalf("a refused version changed the tags: %q", got)
	}

	// A PutObject replaces the object and its tags.
	putString(t, c, "bkt", "k", "new content")
	if got := getTags(t, c, "bkt", "k"); got != "" {
		t.Fatalf("tags after the object was replaced: %q", got)
	}
	tmpEmpty(t, env)
}

// TestObjectTaggingLimits: S3's limits on a tag set (10 tags, keys of 1
// to 128 and values of up to 256 UTF-16 code units, unique keys, no aws:
// keys), the document PutObjectTagging takes and the integrity value it
// requires, and the x-amz-tagging header; a refused request changes
// nothing.
func TestObjectTaggingLimits(t *testing.T) {
	env := newEnv(t)
	ctx := context.Background()
	c := env.root3()
	must[*s3.CreateBucketOutput](t)(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bkt")}))
	putString(t, c, "bkt", "k", "content")

	// The most S3 takes: 10 tags, 128-character keys, 256-character
	// values, counted in UTF-16 (😀 is two).
	var most []string
	for i := range 9 {
		most = append(most, strings.Repeat("k", 127)+strconv.Itoa(i), strings.Repeat("v", 256))
	}
	most = append(most, strings.Repeat("😀", 64), strings.Repeat("é", 256))
	if err := putTags(c, "bkt", "k", tagSet(most...)); err != nil {
		t.Fatalf("10 tags of the largest size: %v", err)
	}
	g := must[*s3.GetObjectTaggingOutput](t)(c.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String("bkt"), Key: aws.String("k")}))
	readBack := map[string]string{}
	for _, tg := range g.TagSet {
		readBack[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	wantBack := map[string]string{}
	for i := 0; i < len(most); i += 2 {
		wantBack[most[i]] = most[i+1]
	}
	if !maps.Equal(readBack, wantBack) {
		t.Fatalf("read back %d tags, not those set", len(g.TagSet))
	}
	saved := env.storeContents(t)

	var eleven []string
	for i := range 11 {
		eleven = append(eleven, "key-"+strconv.Itoa(i), "")
	}
	for _, tc := range []struct {
		name string
		tags *types.Tagging
		code string
	}{
		{"11 tags", tagSet(eleven...), "BadRequest"},
		{"a key of 129 characters", tagSet(strings.Repeat("k", 129), "v"), "InvalidTag"},
		{"a key of 65 characters outside the BMP", tagSet(strings.Repeat("😀", 65), "v"), "InvalidTag"},
		{"an empty key", tagSet("", "v"), "InvalidTag"},
		{"a value of 257 characters", tagSet("k", strings.Repeat("v", 257)), "InvalidTag"},
		{"two tags with the same key", tagSet("a", "1", "a", "2"), "InvalidTag"},
		{"an aws: key", tagSet("aws:cost", "1"), "InvalidTag"},
		{"an AWS: key", tagSet("AWS:cost", "1"), "InvalidTag"},
		{"a control character", tagSet("k", "a\tb"), "InvalidTag"},
	} {
		wantCode(t, putTags(c, "bkt", "k", tc.tags), tc.code)
	}
	if !maps.Equal(env.storeContents(t), saved) {
		t.Fatal("a refused PutObjectTagging changed the store")
	}

	// Bodies and headers the SDK never sends wrong, by hand.
	const good = `<Tagging><TagSet><Tag><Key>x</Key><Value>1</Value></Tag></TagSet></Tagging>`
	withMD5 := func(body string) map[string]string { return map[string]string{"Content-MD5": md5Of([]byte(body))} }
	for _, tc := range []struct {
		name, body string
		hdr        map[string]string
		status     int
		code       string
	}{
		{"no integrity header", good, nil, 400, "InvalidRequest"},
		{"bad Content-MD5", good, map[string]string{"Content-MD5": md5Of([]byte("other"))}, 400, "BadDigest"},
		{"bad CRC32", good, map[string]string{"x-amz-checksum-crc32": "AAAAAA=="}, 400, "BadDigest"},
		{"empty body", "", withMD5(""), 400, "MissingRequestBodyError"},
		{"not XML", "<Tagging><TagSet>", withMD5("<Tagging><TagSet>"), 400, "MalformedXML"},
		{"no TagSet", "<Tagging></Tagging>", withMD5("<Tagging></Tagging>"), 400, "MalformedXML"},
		{"another document", "<Tags><TagSet></TagSet></Tags>", withMD5("<Tags><TagSet></TagSet></Tags>"), 400, "MalformedXML"},
		{"a Tag without Value", "<Tagging><TagSet><Tag><Key>a</Key></Tag></TagSet></Tagging>",
			withMD5("<Tagging><TagSet><Tag><Key>a</Key></Tag></TagSet></Tagging>"), 400, "MalformedXML"},
		{"a Tag without Key", "<Tagging><TagSet><Tag><Value>a</Value></Tag></TagSet></Tagging>",
			withMD5("<Tagging><TagSet><Tag><Value>a</Value></Tag></TagSet></Tagging>"), 400, "MalformedXML"},
		{"a versionId", good, withMD5(good), 400, "InvalidArgument"},
	} {
		path := "/bkt/k?tagging"
		if tc.name == "a versionId" {
			path += "&versionId=abc"
		}
		status, code, raw := env.signedRequest(t, http.MethodPut, path, []byte(tc.body), tc.hdr)
		if status != tc.status || code != tc.code {
			t.Errorf("%s: %d %s, want %d %s: %s", tc.name, status, code, tc.status, tc.code, raw)
		}
		if tc.code == "InvalidRequest" && !strings.Contains(string(raw), "Missing required header for this request: Content-MD5") {
			t.Errorf("%s: %s", tc.name, raw)
		}
	}
	if !maps.Equal(env.storeContents(t), saved) {
		t.Fatal("a refused PutObjectTagging changed the store")
	}
	// InvalidTag names the key, as S3 does.
	status, code, raw := env.signedRequest(t, http.MethodPut, "/bkt/k?tagging",
		[]byte(`<Tagging><TagSet><Tag><Key>a</Key><Value>1</Value></Tag><Tag><Key>a</Key><Value>2</Value></Tag></TagSet></Tagging>`),
		withMD5(`<Tagging><TagSet><Tag><Key>a</Key><Value>1</Value></Tag><Tag><Key>a</Key><Value>2</Value></Tag></TagSet></Tagging>`))
	if status != 400 || code != "InvalidTag" || !strings.Contains(string(raw), "<Message>Cannot provide multiple Tags with the same key</Message>") ||
		!strings.Contains(string(raw), "<TagKey>a</TagKey>") {
		t.Fatalf("duplicate keys: %d %s %s", status, code, raw)
	}

	// Content-MD5 alone is enough, in any namespace; the answer is S3's
	// document.
	ns := `<Tagging xmlns="` + s3NS + `"><TagSet><Tag><Key>x</Key><Value>1 &amp; 2</Value></Tag></TagSet></Tagging>`
	if status, code, raw := env.signedRequest(t, http.MethodPut, "/bkt/k?tagging", []byte(ns), withMD5(ns)); status != 200 {
		t.Fatalf("a good document: %d %s %s", status, code, raw)
	}
	status, _, raw = env.signedRequest(t, http.MethodGet, "/bkt/k?tagging", nil, nil)
	if want := `<Tagging xmlns="` + s3NS + `"><TagSet><Tag><Key>x</Key><Value>1 &amp; 2</Value></Tag></TagSet></Tagging>`; status != 200 || !strings.Contains(string(raw), want) {
		t.Fatalf("GetObjectTagging: %d %s, want %s", status, raw, want)
	}
	status, _, raw = env.signedRequest(t, http.MethodGet, "/bkt/plain-missing?tagging", nil, nil)
	if status != 404 || !strings.Contains(string(raw), "<Code>NoSuchKey</Code>") {
		t.Fatalf("GetObjectTagging of a missing key: %d %s", status, raw)
	}
	if err := putTags(c, "bkt", "k", tagSet()); err != nil {
		t.Fatal(err)
	}
	status, _, raw = env.signedRequest(t, http.MethodGet, "/bkt/k?tagging", nil, nil)
	if want := `<Tagging xmlns="` + s3NS + `"><TagSet></TagSet></Tagging>`; status != 200 || !strings.Contains(string(raw), want) {
		t.Fatalf("GetObjectTagging of an untagged object: %d %s, want %s", status, raw, want)
	}

	// The x-amz-tagging header of PutObject and CreateMultipartUpload:
	// refused before anything is written.
	saved = env.storeContents(t)
	const invalidHeader = "The header &#39;x-amz-tagging&#39; shall be encoded as UTF-8 then URLEncoded URL query parameters without tag name duplicates."
	elevenHeader := strings.Repeat("k=&", 10) + "k11="
	for i := range 11 {
		elevenHeader = strings.Replace(elevenHeader, "k=", "k"+strconv.Itoa(i)+"=", 1)
	}
	for _, tc := range []struct{ header, code, msg string }{
		{"a=1&a=2", "InvalidArgument", invalidHeader},
		{"=1", "InvalidArgument", invalidHeader},
		{"a=%FF", "InvalidArgument", invalidHeader},
		{"a=%zz", "InvalidArgument", invalidHeader},
		{elevenHeader, "BadRequest", "Object tags cannot be greater than 10"},
		{"aws:cost=1", "InvalidTag", "System tags cannot be added/updated by requester"},
		{strings.Repeat("k", 129) + "=1", "InvalidTag", "The TagKey you have provided is invalid"},
		{"k=" + strings.Repeat("v", 257), "InvalidTag", "The TagValue you have provided is invalid"},
		{"k=%09", "InvalidTag", "The TagValue you have provided is invalid"},
	} {
		for _, path := range []string{"/bkt/new", "/bkt/new?uploads"} {
			method := http.MethodPut
			if strings.HasSuffix(path, "?uploads") {
				method = http.MethodPost
			}
			status, code, raw := env.signedRequest(t, method, path, []byte("x"), map[string]string{"x-amz-tagging": tc.header})
			if status != 400 || code != tc.code || !strings.Contains(string(raw), "<Message>"+tc.msg+"</Message>") {
				t.Errorf("%s %s with x-amz-tagging %.40q: %d %s %s", method, path, tc.header, status, code, raw)
			}
			if tc.code == "InvalidArgument" && !strings.Contains(string(raw), "<ArgumentName>x-amz-tagging</ArgumentName>") {
				t.Errorf("x-amz-tagging %q: no ArgumentName: %s", tc.header, raw)
			}
		}
	}
	if !maps.Equal(env.storeContents(t), saved) {
		t.Fatal("a refused x-amz-tagging header changed the store")
	}
	tmpEmpty(t, env)
}

// TestCopyObjectTagging: CopyObject copies the source's tags (tagging
// directive COPY, the default, under which x-amz-tagging is ignored) or
// sets x-amz-tagging's (REPLACE; none without it); UploadPartCopy copies
// no tags.
func TestCopyObjectTagging(t *testing.T) {
	env := newEnv(t)
	ctx := context.Background()
	c := env.root3()
	must[*s3.CreateBucketOutput](t)(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bkt")}))
	must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bkt"), Key: aws.String("src"),
		Body: strings.NewReader("source bytes"), Tagging: aws.String("a=1&b=2")}))

	for _, tc := range []struct {
		name      string
		in        s3.CopyObjectInput
		wantTags  string
		wantCount string
	}{
		{"default", s3.CopyObjectInput{}, "a=1&b=2", "2"},
		{"COPY", s3.CopyObjectInput{TaggingDirective: types.TaggingDirectiveCopy}, "a=1&b=2", "2"},
		{"COPY ignores x-amz-tagging", s3.CopyObjectInput{TaggingDirective: types.TaggingDirectiveCopy, Tagging: aws.String("c=3")}, "a=1&b=2", "2"},
		{"REPLACE", s3.CopyObjectInput{TaggingDirective: types.TaggingDirectiveReplace, Tagging: aws.String("c=3")}, "c=3", "1"},
		{"REPLACE without tags", s3.CopyObjectInput{TaggingDirective: types.TaggingDirectiveReplace}, "", "none"},
		{"metadata REPLACE keeps the tags", s3.CopyObjectInput{MetadataDirective: types.MetadataDirectiveReplace, Metadata: map[string]string{"m": "1"}}, "a=1&b=2", "2"},
	} {
		in := tc.in
		in.Bucket, in.Key, in.CopySource = aws.String("bkt"), aws.String("copy "+tc.name), copySrc("bkt", "src")
		must[*s3.CopyObjectOutput](t)(c.CopyObject(ctx, &in))
		if got := getTags(t, c, "bkt", "copy "+tc.name); got != tc.wantTags {
			t.Errorf("%s: tags %q, want %q", tc.name, got, tc.wantTags)
		}
		if body, g := getString(t, c, "bkt", "copy "+tc.name); body != "source bytes" || tagCount(g.TagCount) != tc.wantCount {
			t.Errorf("%s: %q, x-amz-tagging-count %s, want %s", tc.name, body, tagCount(g.TagCount), tc.wantCount)
		}
	}

	// Refused before anything is read or written.
	_, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("bkt"), Key: aws.String("bad"), CopySource: copySrc("bkt", "src"),
		TaggingDirective: types.TaggingDirectiveReplace, Tagging: aws.String("a=1&a=2")})
	wantCode(t, err, "InvalidArgument")
	status, code, raw := env.signedRequest(t, http.MethodPut, "/bkt/bad", nil, map[string]string{"x-amz-copy-source": "/bkt/src", "x-amz-tagging-directive": "MERGE"})
	if status != 400 || code != "InvalidArgument" {
		t.Fatalf("unknown tagging directive: %d %s %s", status, code, raw)
	}
	if exists(t, c, "bkt", "bad") {
		t.Fatal("a refused copy wrote its destination")
	}
	// Onto itself, tags are not a change S3 accepts; metadata is, and the
	// tags stay.
	_, err = c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("bkt"), Key: aws.String("src"), CopySource: copySrc("bkt", "src"),
		TaggingDirective: types.TaggingDirectiveReplace, Tagging: aws.String("c=3")})
	wantCode(t, err, "InvalidRequest")
	must[*s3.CopyObjectOutput](t)(c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("bkt"), Key: aws.String("src"), CopySource: copySrc("bkt", "src"),
		MetadataDirective: types.MetadataDirectiveReplace, Metadata: map[string]string{"m": "2"}}))
	if got := getTags(t, c, "bkt", "src"); got != "a=1&b=2" {
		t.Fatalf("after a copy onto itself: %q", got)
	}

	// UploadPartCopy ignores tags: the object gets its upload's (none).
	cu := must[*s3.CreateMultipartUploadOutput](t)(c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("bkt"), Key: aws.String("mp")}))
	pc := must[*s3.UploadPartCopyOutput](t)(c.UploadPartCopy(ctx, partCopy("bkt", "mp", *cu.UploadId, 1, copySrc("bkt", "src"), "")))
	must[*s3.CompleteMultipartUploadOutput](t)(c.CompleteMultipartUpload(ctx, completeInput("bkt", "mp", *cu.UploadId, pc.CopyPartResult.ETag)))
	if got := getTags(t, c, "bkt", "mp"); got != "" {
		t.Fatalf("UploadPartCopy carried tags: %q", got)
	}
	tmpEmpty(t, env)
}

// TestMultipartTagging: CreateMultipartUpload's x-amz-tagging is the
// object's at CompleteMultipartUpload; and the aws CLI v2's multipart copy
// (aws s3 cp of an object above 8 MB), which reads the source's tags with
// GetObjectTagging and passes them, percent-encoded, to
// CreateMultipartUpload, copies them.
func TestMultipartTagging(t *testing.T) {
	env := newEnv(t)
	ctx := context.Background()
	c := env.root3()
	must[*s3.CreateBucketOutput](t)(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bkt")}))

	cu := must[*s3.CreateMultipartUploadOutput](t)(c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("bkt"), Key: aws.String("mp"),
		Tagging: aws.String("stage=build&commit=abc123")}))
	up := uploadPart(t, c, "bkt", "mp", *cu.UploadId, 1, []byte("multipart bytes"))
	if exists(t, c, "bkt", "mp") {
		t.Fatal("the object exists before Complete")
	}
	must[*s3.CompleteMultipartUploadOutput](t)(c.CompleteMultipartUpload(ctx, completeInput("bkt", "mp", *cu.UploadId, up.ETag)))
	if got := getTags(t, c, "bkt", "mp"); got != "commit=abc123&stage=build" {
		t.Fatalf("tags of the completed upload: %q", got)
	}

	// The aws CLI v2's steps (awscli's SetTagsSubscriber): HeadObject and
	// GetObjectTagging of the source, then CreateMultipartUpload with
	// Tagging (botocore's percent_encode_sequence: %20 for a space),
	// UploadPartCopy, CompleteMultipartUpload.
	must[*s3.PutObjectTaggingOutput](t)(c.PutObjectTagging(ctx, &s3.PutObjectTaggingInput{Bucket: aws.String("bkt"), Key: aws.String("mp"),
		Tagging: tagSet("team", "ci cd", "path", "a/b+c", "ü", "✓")}))
	must[*s3.HeadObjectOutput](t)(c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("bkt"), Key: aws.String("mp")}))
	src := must[*s3.GetObjectTaggingOutput](t)(c.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String("bkt"), Key: aws.String("mp")}))
	var pairs []string
	for _, tg := range src.TagSet {
		enc := func(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }
		pairs = append(pairs, enc(aws.ToString(tg.Key))+"="+enc(aws.ToString(tg.Value)))
	}
	cu = must[*s3.CreateMultipartUploadOutput](t)(c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("bkt"), Key: aws.String("mp2"),
		Tagging: aws.String(strings.Join(pairs, "&"))}))
	pc := must[*s3.UploadPartCopyOutput](t)(c.UploadPartCopy(ctx, partCopy("bkt", "mp2", *cu.UploadId, 1, copySrc("bkt", "mp"), "")))
	must[*s3.CompleteMultipartUploadOutput](t)(c.CompleteMultipartUpload(ctx, completeInput("bkt", "mp2", *cu.UploadId, pc.CopyPartResult.ETag)))
	if got, want := getTags(t, c, "bkt", "mp2"), tagString(src.TagSet); got != want || want != "path=a/b+c&team=ci cd&ü=✓" {
		t.Fatalf("tags of the copy: %q, of the source %q", got, want)
	}
	if got, _ := getString(t, c, "bkt", "mp2"); got != "multipart bytes" {
		t.Fatalf("copy = %q", got)
	}
	tmpEmpty(t, env)
}

// tagAuth gives the job credential what a job has: Read on its input
// (artifacts/job1/in) and Write on its output (artifacts/job1/out), and
// nothing else.
type tagAuth struct{ testAuth }

func (a tagAuth) Allow(ctx context.Context, c sigv4.Credential, op Op, bucket, key string) bool {
	if c.Principal != "job1" {
		return a.testAuth.Allow(ctx, c, op, bucket, key)
	}
	return bucket == "artifacts" && (op == Read && key == "job1/in" || op == Write && key == "job1/out")
}

// TestTaggingSession: a job credential reads the tags of its input and
// writes (and deletes) those of its output, and nothing more; a refused
// request is AccessDenied, whether or not the object exists, and changes
// nothing.
func TestTaggingSession(t *testing.T) {
	env := newEnvAuth(t, tagAuth{})
	ctx := context.Background()
	root := env.root3()
	must[*s3.CreateBucketOutput](t)(root.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("artifacts")}))
	for key, tags := range map[string]string{"job1/in": "stage=build", "job1/out": "x=1", "shared/secret": "s=1"} {
		must[*s3.PutObjectOutput](t)(root.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("artifacts"), Key: aws.String(key),
			Body: strings.NewReader("data of " + key), Tagging: aws.String(tags)}))
	}
	job := env.client(jobAKID, jobSecret, jobToken)

	if got := getTags(t, job, "artifacts", "job1/in"); got != "stage=build" {
		t.Fatalf("the job read its input's tags as %q", got)
	}
	if err := putTags(job, "artifacts", "job1/out", tagSet("result", "ok")); err != nil {
		t.Fatal(err)
	}
	if got := getTags(t, root, "artifacts", "job1/out"); got != "result=ok" {
		t.Fatalf("output tags = %q", got)
	}
	must[*s3.DeleteObjectTaggingOutput](t)(job.DeleteObjectTagging(ctx, &s3.DeleteObjectTaggingInput{Bucket: aws.String("artifacts"), Key: aws.String("job1/out")}))
	if got := getTags(t, root, "artifacts", "job1/out"); got != "" {
		t.Fatalf("output tags after DeleteObjectTagging = %q", got)
	}
	if err := putTags(job, "artifacts", "job1/out", tagSet("result", "ok")); err != nil {
		t.Fatal(err)
	}

	saved := env.storeContents(t)
	for _, key := range []string{"job1/in", "job1/out", "shared/secret", "job1/missing", "shared/missing"} {
		_, getErr := job.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String("artifacts"), Key: aws.String(key)})
		putErr := putTags(job, "artifacts", key, tagSet("evil", "1"))
		_, delErr := job.DeleteObjectTagging(ctx, &s3.DeleteObjectTaggingInput{Bucket: aws.String("artifacts"), Key: aws.String(key)})
		for op, err := range map[string]error{"GetObjectTagging": getErr, "PutObjectTagging": putErr, "DeleteObjectTagging": delErr} {
			allowed := op == "GetObjectTagging" && key == "job1/in" || op != "GetObjectTagging" && key == "job1/out"
			if !allowed && apiCode(err) != "AccessDenied" {
				t.Errorf("%s of %s by the job: %v, want AccessDenied", op, key, err)
			}
		}
		if key == "job1/out" {
			// Allowed, so it changed them: put them back.
			if err := putTags(root, "artifacts", key, tagSet("result", "ok")); err != nil {
				t.Fatal(err)
			}
		}
	}
	_, err := job.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("artifacts"), Key: aws.String("job1/in"), Body: strings.NewReader("x"), Tagging: aws.String("evil=1")})
	wantCode(t, err, "AccessDenied")
	// The job may write its output but not read it: it cannot copy its
	// tags onto its output, nor copy the shared object's.
	_, err = job.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("artifacts"), Key: aws.String("job1/out"), CopySource: copySrc("artifacts", "shared/secret")})
	wantCode(t, err, "AccessDenied")
	// Compare, putting back what the allowed requests rewrote: the
	// sidecar of job1/out has the same content again, so any difference
	// is a refused request's.
	if got := env.storeContents(t); !maps.Equal(got, saved) {
		t.Fatalf("refused tagging requests changed the store:\nbefore %v\nafter  %v", slices.Sorted(maps.Keys(saved)), slices.Sorted(maps.Keys(got)))
	}

	// The job's copy of its input onto its output takes the input's tags;
	// its PutObject of the output sets them.
	must[*s3.CopyObjectOutput](t)(job.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("artifacts"), Key: aws.String("job1/out"), CopySource: copySrc("artifacts", "job1/in")}))
	if got := getTags(t, root, "artifacts", "job1/out"); got != "stage=build" {
		t.Fatalf("tags of the job's copy: %q", got)
	}
	must[*s3.PutObjectOutput](t)(job.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("artifacts"), Key: aws.String("job1/out"), Body: strings.NewReader("y"), Tagging: aws.String("a=b")}))
	if got := getTags(t, root, "artifacts", "job1/out"); got != "a=b" {
		t.Fatalf("tags of the job's PutObject: %q", got)
	}
	// Allowed, a missing input is NoSuchKey.
	must[*s3.DeleteObjectOutput](t)(root.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("artifacts"), Key: aws.String("job1/in")}))
	_, err = job.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String("artifacts"), Key: aws.String("job1/in")})
	wantCode(t, err, "NoSuchKey")
}

// TestSetTagsRacesPut: tag updates racing replacements of the same object
// never lose a body nor leave the key naming a missing data file: readers
// always find the data their sidecar names, with its ETag, and in the end
// the last object written is there, with no file left over. (A tag update
// that read the sidecar outside the commit lock would rename an old
// sidecar, naming a data file commit had deleted, over the new one.)
func TestSetTagsRacesPut(t *testing.T) {
	env := newEnv(t)
	st := env.h.st
	if _, err := st.createBucket("bkt"); err != nil {
		t.Fatal(err)
	}
	md5Hex := func(b []byte) string { s := md5.Sum(b); return hex.EncodeToString(s[:]) }
	commitBody := func(body string) error {
		f, err := st.tempFile()
		if err != nil {
			return err
		}
		f.WriteString(body)
		f.Close()
		return st.commit("bkt", f.Name(), &objMeta{Key: "k", Size: int64(len(body)), ETag: md5Hex([]byte(body)), Modified: time.Now().UTC()})
	}
	if err := commitBody("initial"); err != nil {
		t.Fatal(err)
	}
	const n = 150
	errs := make(chan error, 4*n)
	done := make(chan struct{})
	var writers, readers sync.WaitGroup
	writers.Go(func() {
		for i := range n {
			if err := commitBody(fmt.Sprintf("body %d", i)); err != nil {
				errs <- err
			}
		}
	})
	writers.Go(func() {
		for i := range n {
			if _, err := st.setTags("bkt", "k", map[string]string{"n": strconv.Itoa(i)}); err != nil {
				errs <- fmt.Errorf("setTags: %w", err)
			}
		}
	})
	readers.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			m, f, err := st.open("bkt", "k")
			if err != nil {
				errs <- fmt.Errorf("open: %w", err)
				continue
			}
			b, err := io.ReadAll(f)
			f.Close()
			if err != nil || md5Hex(b) != m.ETag {
				errs <- fmt.Errorf("read %q (%v), sidecar ETag %s", b, err, m.ETag)
			}
		}
	})
	writers.Wait()
	close(done)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	m, f, err := st.open("bkt", "k")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	f.Close()
	if want := fmt.Sprintf("body %d", n-1); string(b) != want {
		t.Fatalf("the object is %q, want %q", b, want)
	}
	dir, h := st.objDir("bkt", "k")
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, sorted([]string{h + ".json", m.Data})) {
		t.Fatalf("files %v, want the sidecar and %s", names, m.Data)
	}
	tmpEmpty(t, env)
}

// TestAWSCLITagging: aws s3api put-object-tagging and get-object-tagging
// round trip; boto3's put_object with Tagging (urlencode's "+" for a
// space), then get_object_tagging and get_object's TagCount.
func TestAWSCLITagging(t *testing.T) {
	needTool(t, "python3", "-c", "import boto3")
	needTool(t, "aws", "--version")
	env := newEnv(t)
	ctx := context.Background()
	c := env.root3()
	must[*s3.CreateBucketOutput](t)(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bkt")}))
	putString(t, c, "bkt", "k", "content")
	penv := pythonEnvAs(t, env, rootAKID, rootSecret, "")

	runTool(t, penv, "aws", "s3api", "put-object-tagging", "--bucket", "bkt", "--key", "k",
		"--tagging", `{"TagSet":[{"Key":"team","Value":"ci cd"},{"Key":"stage","Value":"build"}]}`)
	if got := getTags(t, c, "bkt", "k"); got != "stage=build&team=ci cd" {
		t.Fatalf("tags set by the aws CLI: %q", got)
	}
	raw := runTool(t, penv, "aws", "s3api", "get-object-tagging", "--bucket", "bkt", "--key", "k", "--output", "json")
	var out struct{ TagSet []struct{ Key, Value string } }
	if err := json.Unmarshal([]byte(raw), &out); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	if fmt.Sprint(out.TagSet) != "[{stage build} {team ci cd}]" {
		t.Fatalf("aws s3api get-object-tagging = %s", raw)
	}

	const script = `
import sys, json, boto3
from urllib.parse import urlencode
s3 = boto3.client("s3")
s3.put_object(Bucket="bkt", Key="b3", Body=b"x", Tagging=urlencode({"a": "b", "c": "d e"}))
tags = s3.get_object_tagging(Bucket="bkt", Key="b3")["TagSet"]
print(json.dumps([tags, s3.get_object(Bucket="bkt", Key="b3").get("TagCount")]))
`
	raw = runTool(t, penv, "python3", "-c", script)
	if got := strings.TrimSpace(raw); got != `[[{"Key": "a", "Value": "b"}, {"Key": "c", "Value": "d e"}], 2]` {
		t.Fatalf("boto3: %s", raw)
	}
	if n := env.wire.opCount("PUT tagging"); n != 1 {
		t.Errorf("%d PutObjectTagging requests, want 1", n)
	}
}

// FuzzTaggingBody feeds arbitrary PutObjectTagging bodies through the
// parser and the whole handler (signed by root, with a correct
// Content-MD5), and arbitrary x-amz-tagging headers through theirs: no
// panic, no 500; a body the parser refuses is a 400 that changes nothing,
// one it takes is a 200 after which GetObjectTagging answers that set,
// sorted, within S3's limits; the object's ETag, data and LastModified
// never change. A header the parser takes is within the limits, and reads
// back the same once encoded again.
func FuzzTaggingBody(f *testing.F) {
	f.Add([]byte(`<Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><TagSet><Tag><Key>a</Key><Value>1</Value></Tag><Tag><Key>b c</Key><Value></Value></Tag></TagSet></Tagging>`), "a=1&b=two%20words")
	f.Add([]byte(`<Tagging><TagSet><Tag><Key>a&amp;b&#x10FFFF;</Key><Value/></Tag></TagSet></Tagging>`), "a=%FF")
	f.Add([]byte(`<Tagging><TagSet><Tag><Key>a</Key><Value>1</Value></Tag><Tag><Key>a</Key><Value>2</Value></Tag></TagSet></Tagging>`), "a=1&a=2")
	f.Add([]byte(`<Tagging><TagSet><Tag><Key>aws:x</Key><Value>1</Value></Tag></TagSet></Tagging>`), "=&&=x")
	f.Add([]byte(`<Tagging><TagSet></TagSet></Tagging>`), "k=v=w+x")
	f.Add([]byte(`<Tagging><TagSet><Tag><Key>a</Key></Tag></TagSet></Tagging>`), "%C3%BC=%E6%96%87")
	f.Add([]byte(`<?xml version="1.0"?><!DOCTYPE d [<!ENTITY e "x">]><Tagging><TagSet><Tag><Key>&e;</Key><Value>1</Value></Tag></TagSet></Tagging>`), "")
	f.Add([]byte(strings.Repeat("<Tagging>", 100)), strings.Repeat("k=v&", 11))

	dir := f.TempDir()
	h, err := New(filepath.Join(dir, "store"), testRegion, testAuth{}, slog.New(slog.DiscardHandler))
	if err != nil {
		f.Fatal(err)
	}
	h.st.createBucket("bkt")
	tmp, err := h.st.tempFile()
	if err != nil {
		f.Fatal(err)
	}
	tmp.WriteString("x")
	tmp.Close()
	if err := h.st.commit("bkt", tmp.Name(), &objMeta{Key: "k", Size: 1, ETag: "9dd4e461268c8034f5c8564e155c67a6", Modified: time.Now().UTC()}); err != nil {
		f.Fatal(err)
	}
	orig, err := h.st.head("bkt", "k")
	if err != nil {
		f.Fatal(err)
	}
	signer := v4.NewSigner()
	creds := aws.Credentials{AccessKeyID: rootAKID, SecretAccessKey: rootSecret}
	serve := func(t *testing.T, method string, body []byte) (*http.Response, []byte) {
		r := httptest.NewRequest(method, "http://s3.test/bkt/k?tagging", bytes.NewReader(body))
		if method == http.MethodPut {
			r.Header.Set("Content-MD5", md5Of(body))
		}
		r.Header.Set("X-Amz-Content-Sha256", sigv4.UnsignedPayload)
		if err := signer.SignHTTP(context.Background(), creds, r, sigv4.UnsignedPayload, "s3", testRegion, time.Now()); err != nil {
			t.Fatal(err)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		res := w.Result()
		raw, _ := io.ReadAll(res.Body)
		return res, raw
	}
	withinLimits := func(t *testing.T, tags map[string]string) {
		t.Helper()
		if len(tags) > maxObjectTags {
			t.Fatalf("%d tags taken", len(tags))
		}
		for k, v := range tags {
			if utf16Len(k) < 1 || utf16Len(k) > maxTagKeyLen || utf16Len(v) > maxTagValueLen || !tagText(k) || !tagText(v) ||
				strings.HasPrefix(strings.ToLower(k), "aws:") {
				t.Fatalf("tag %q=%q taken", k, v)
			}
		}
	}

	f.Fuzz(func(t *testing.T, body []byte, header string) {
		if tags, e := parseTaggingHeader(header); e == nil {
			withinLimits(t, tags)
			var pairs []string
			for k, v := range tags {
				pairs = append(pairs, url.QueryEscape(k)+"="+url.QueryEscape(v))
			}
			again, e := parseTaggingHeader(strings.Join(pairs, "&"))
			if e != nil || !maps.Equal(again, tags) {
				t.Fatalf("header %q: %v, encoded again %v (%v)", header, tags, again, e)
			}
		} else if e.Status != 400 {
			t.Fatalf("header %q: %d", header, e.Status)
		}

		before, err := h.st.head("bkt", "k")
		if err != nil {
			t.Fatal(err)
		}
		want, perr := parseTaggingBody(body)
		res, raw := serve(t, http.MethodPut, body)
		after, err := h.st.head("bkt", "k")
		if err != nil {
			t.Fatal(err)
		}
		if after.ETag != orig.ETag || after.Data != orig.Data || !after.Modified.Equal(orig.Modified) || after.Size != orig.Size {
			t.Fatalf("tagging changed the object: %+v, was %+v", after, orig)
		}
		if len(body) == 0 || perr != nil {
			if res.StatusCode != 400 {
				t.Fatalf("refused body answered %d: %s", res.StatusCode, raw)
			}
			if !maps.Equal(after.Tags, before.Tags) {
				t.Fatalf("a refused body changed the tags from %v to %v", before.Tags, after.Tags)
			}
			return
		}
		if res.StatusCode != 200 {
			t.Fatalf("taken body answered %d: %s", res.StatusCode, raw)
		}
		withinLimits(t, want)
		res, raw = serve(t, http.MethodGet, nil)
		var doc taggingDoc
		if res.StatusCode != 200 || xml.Unmarshal(raw, &doc) != nil {
			t.Fatalf("GetObjectTagging: %d %s", res.StatusCode, raw)
		}
		if !slices.Equal(doc.TagSet.Tags, sortedTags(want)) {
			t.Fatalf("GetObjectTagging = %v, want %v", doc.TagSet.Tags, sortedTags(want))
		}
	})
}
