package s3api

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

func createUpload(t *testing.T, c *s3.Client, bucket, key string) string {
	t.Helper()
	cu := must[*s3.CreateMultipartUploadOutput](t)(c.CreateMultipartUpload(context.Background(), &s3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key)}))
	return aws.ToString(cu.UploadId)
}

func uploadPart(t *testing.T, c *s3.Client, bucket, key, id string, n int32, body []byte) *s3.UploadPartOutput {
	t.Helper()
	return must[*s3.UploadPartOutput](t)(c.UploadPart(context.Background(), &s3.UploadPartInput{Bucket: aws.String(bucket), Key: aws.String(key), UploadId: aws.String(id),
		PartNumber: aws.Int32(n), Body: bytes.NewReader(body)}))
}

func completeInput(bucket, key, id string, etag *string) *s3.CompleteMultipartUploadInput {
	return &s3.CompleteMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key), UploadId: aws.String(id),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{PartNumber: aws.Int32(1), ETag: etag}}}}
}

func uploadIDs(ups []types.MultipartUpload) []string {
	var out []string
	for _, u := range ups {
		out = append(out, aws.ToString(u.Key)+" "+aws.ToString(u.UploadId))
	}
	return out
}

func TestListMultipartUploads(t *testing.T) {
	env := newEnv(t)
	ctx := context.Background()
	c := env.root3()
	for _, b := range []string{"artifacts", "other"} {
		must[*s3.CreateBucketOutput](t)(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)}))
	}
	// Created out of key order, two for one key: the list is by key,
	// then by initiation.
	var want []string
	for _, k := range []string{"b/1", "a/1", "c", "a/1", "a/2"} {
		want = append(want, k+" "+createUpload(t, c, "artifacts", k))
	}
	createUpload(t, c, "other", "a/1")
	slices.SortStableFunc(want, func(x, y string) int {
		return strings.Compare(strings.Fields(x)[0], strings.Fields(y)[0])
	})

	all := must[*s3.ListMultipartUploadsOutput](t)(c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String("artifacts")}))
	if got := uploadIDs(all.Uploads); !slices.Equal(got, want) {
		t.Fatalf("uploads:\n got %v\nwant %v", got, want)
	}
	u := all.Uploads[0]
	if aws.ToBool(all.IsTruncated) || u.Initiated == nil || time.Since(*u.Initiated) > time.Minute ||
		aws.ToString(u.Initiator.ID) != "root" || u.StorageClass != types.StorageClassStandard {
		t.Fatalf("ListMultipartUploads = truncated %v, first %+v", aws.ToBool(all.IsTruncated), u)
	}

	// Pages of two: key-marker and upload-id-marker, even inside a key.
	var paged []string
	in := &s3.ListMultipartUploadsInput{Bucket: aws.String("artifacts"), MaxUploads: aws.Int32(2)}
	pages := 0
	for {
		pg := must[*s3.ListMultipartUploadsOutput](t)(c.ListMultipartUploads(ctx, in))
		pages++
		if len(pg.Uploads) > 2 || aws.ToInt32(pg.MaxUploads) != 2 {
			t.Fatalf("page of %d (max %d)", len(pg.Uploads), aws.ToInt32(pg.MaxUploads))
		}
		paged = append(paged, uploadIDs(pg.Uploads)...)
		if !aws.ToBool(pg.IsTruncated) {
			break
		}
		in.KeyMarker, in.UploadIdMarker = pg.NextKeyMarker, pg.NextUploadIdMarker
		if pages > 10 {
			t.Fatal("paging does not end")
		}
	}
	if !slices.Equal(paged, want) || pages != 3 {
		t.Fatalf("paged in %d pages:\n got %v\nwant %v", pages, paged, want)
	}
	// upload-id-marker inside a key: what comes after the first a/1.
	pg := must[*s3.ListMultipartUploadsOutput](t)(c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String("artifacts"),
		KeyMarker: aws.String("a/1"), UploadIdMarker: aws.String(strings.Fields(want[0])[1])}))
	if got := uploadIDs(pg.Uploads); !slices.Equal(got, want[1:]) {
		t.Fatalf("after the first a/1: %v", got)
	}

	// Prefix and delimiter.
	pg = must[*s3.ListMultipartUploadsOutput](t)(c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String("artifacts"), Prefix: aws.String("a/")}))
	if got := uploadIDs(pg.Uploads); !slices.Equal(got, want[:3]) || aws.ToString(pg.Prefix) != "a/" {
		t.Fatalf("prefix a/: %v", got)
	}
	pg = must[*s3.ListMultipartUploadsOutput](t)(c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String("artifacts"), Delimiter: aws.String("/")}))
	var cps []string
	for _, p := range pg.CommonPrefixes {
		cps = append(cps, aws.ToString(p.Prefix))
	}
	if got := uploadIDs(pg.Uploads); !slices.Equal(got, want[4:]) || !slices.Equal(cps, []string{"a/", "b/"}) {
		t.Fatalf("delimiter /: uploads %v, prefixes %v", got, cps)
	}

	// Completed and aborted uploads leave the list.
	id := strings.Fields(want[4])[1]
	must[*s3.AbortMultipartUploadOutput](t)(c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String("artifacts"), Key: aws.String("c"), UploadId: aws.String(id)}))
	pg = must[*s3.ListMultipartUploadsOutput](t)(c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String("artifacts")}))
	if got := uploadIDs(pg.Uploads); !slices.Equal(got, want[:4]) {
		t.Fatalf("after abort: %v", got)
	}

	// Listing uploads is listing the bucket: not for job credentials.
	_, err := env.client(jobAKID, jobSecret, jobToken).ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String("artifacts")})
	wantCode(t, err, "AccessDenied")
	_, err = c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String("nope")})
	wantCode(t, err, "NoSuchBucket")
}

// TestSweepUploads: an upload initiated before the cutoff is removed, parts
// and all, and answers NoSuchUpload afterwards; a recent one is untouched
// and completes; crash leftovers without upload.json go by their age.
func TestSweepUploads(t *testing.T) {
	env := newEnv(t)
	ctx := context.Background()
	c := env.root3()
	must[*s3.CreateBucketOutput](t)(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("artifacts")}))

	oldID := createUpload(t, c, "artifacts", "old")
	oldPart := uploadPart(t, c, "artifacts", "old", oldID, 1, []byte("old part"))
	time.Sleep(5 * time.Millisecond)
	cutoff := time.Now()
	time.Sleep(5 * time.Millisecond)
	newID := createUpload(t, c, "artifacts", "new")
	newPart := uploadPart(t, c, "artifacts", "new", newID, 1, []byte("new part"))

	uploads := filepath.Join(env.dir, "uploads")
	leftover := func(id string, age time.Duration) {
		dir := filepath.Join(uploads, id)
		os.Mkdir(dir, 0o700)
		os.WriteFile(filepath.Join(dir, "00001.junk"), []byte("x"), 0o600)
		at := time.Now().Add(-age)
		if err := os.Chtimes(dir, at, at); err != nil {
			t.Fatal(err)
		}
	}
	oldLeftover, newLeftover := strings.Repeat("0", 31)+"1", strings.Repeat("0", 31)+"2"
	leftover(oldLeftover, time.Hour)
	leftover(newLeftover, -time.Second)
	leftover("not-an-upload", time.Hour) // not ours: never touched

	removed, err := env.h.SweepUploads(cutoff)
	if err != nil || removed != 2 {
		t.Fatalf("SweepUploads = %d, %v; want 2", removed, err)
	}
	var left []string
	ents, _ := os.ReadDir(uploads)
	for _, e := range ents {
		left = append(left, e.Name())
	}
	if want := []string{newLeftover, newID, "not-an-upload"}; !slices.Equal(left, sorted(want)) {
		t.Fatalf("uploads/ holds %v, want %v", left, sorted(want))
	}
	if tmp, _ := os.ReadDir(filepath.Join(env.dir, "tmp")); len(tmp) != 0 {
		t.Fatalf("tmp/ holds %v", tmp)
	}

	_, err = c.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String("artifacts"), Key: aws.String("old"), UploadId: aws.String(oldID)})
	wantCode(t, err, "NoSuchUpload")
	_, err = c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("artifacts"), Key: aws.String("old"), UploadId: aws.String(oldID), PartNumber: aws.Int32(2), Body: strings.NewReader("x")})
	wantCode(t, err, "NoSuchUpload")
	_, err = c.CompleteMultipartUpload(ctx, completeInput("artifacts", "old", oldID, oldPart.ETag))
	wantCode(t, err, "NoSuchUpload")
	if exists(t, c, "artifacts", "old") {
		t.Fatal("a swept upload became an object")
	}
	lu := must[*s3.ListMultipartUploadsOutput](t)(c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String("artifacts")}))
	if got := uploadIDs(lu.Uploads); !slices.Equal(got, []string{"new " + newID}) {
		t.Fatalf("uploads after the sweep: %v", got)
	}

	must[*s3.CompleteMultipartUploadOutput](t)(c.CompleteMultipartUpload(ctx, completeInput("artifacts", "new", newID, newPart.ETag)))
	if got, _ := getString(t, c, "artifacts", "new"); got != "new part" {
		t.Fatalf("the recent upload completed as %q", got)
	}
	if removed, err := env.h.SweepUploads(cutoff); removed != 0 || err != nil {
		t.Fatalf("second sweep = %d, %v", removed, err)
	}
}

func sorted(s []string) []string { slices.Sort(s); return s }

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRunUploadSweeper(t *testing.T) {
	var logs syncBuffer
	env := newEnvWith(t, testAuth{}, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := env.root3()
	must[*s3.CreateBucketOutput](t)(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("artifacts")}))
	id := createUpload(t, c, "artifacts", "abandoned")
	uploadPart(t, c, "artifacts", "abandoned", id, 1, []byte("part"))

	done := make(chan struct{})
	go func() { env.h.RunUploadSweeper(ctx, 200*time.Millisecond, 20*time.Millisecond); close(done) }()
	dir := filepath.Join(env.dir, "uploads", id)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(dir); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the sweeper never removed the abandoned upload")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("RunUploadSweeper did not return when its context was done")
	}
	out := logs.String()
	if !strings.Contains(out, "removed abandoned multipart uploads") || !strings.Contains(out, "removed=1") {
		t.Fatalf("the sweep was not logged:\n%s", out)
	}
	for _, secret := range []string{rootSecret, jobSecret, jobToken} {
		if strings.Contains(out, secret) {
			t.Fatal("a secret reached the log")
		}
	}

	// Bad durations: no sweep, an error, and it returns at once.
	logs.mu.Lock()
	logs.b.Reset()
	logs.mu.Unlock()
	id = createUpload(t, c, "artifacts", "kept")
	env.h.RunUploadSweeper(context.Background(), 0, time.Second)
	env.h.RunUploadSweeper(context.Background(), time.Hour, 0)
	if _, err := os.Stat(filepath.Join(env.dir, "uploads", id)); err != nil || !strings.Contains(logs.String(), "level=ERROR") {
		t.Fatalf("bad durations: upload %v, log %s", err, logs.String())
	}
}

// TestSweepRacesComplete runs SweepUploads against CompleteMultipartUpload
// and UploadPart of the same upload: Complete either commits the whole
// object or answers NoSuchUpload (then no object), UploadPart either
// succeeds or answers NoSuchUpload, and nothing is left behind. The
// upload has a 5 MiB part then a small one, so that Complete spends a
// while between opening its first and its second part; the sweeps start
// at random moments around it. Run it with -race.
func TestSweepRacesComplete(t *testing.T) {
	env := newEnv(t)
	ctx := context.Background()
	c := env.root3()
	must[*s3.CreateBucketOutput](t)(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("artifacts")}))
	rounds := 20
	if testing.Short() {
		rounds = 5
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), minPartSize/16)
	outcomes := map[string]int{}
	for i := range rounds {
		key := fmt.Sprintf("race/%d", i)
		tail := []byte(key)
		id := createUpload(t, c, "artifacts", key)
		p1 := uploadPart(t, c, "artifacts", key, id, 1, big)
		p2 := uploadPart(t, c, "artifacts", key, id, 2, tail)
		in := completeInput("artifacts", key, id, p1.ETag)
		in.MultipartUpload.Parts = append(in.MultipartUpload.Parts, types.CompletedPart{PartNumber: aws.Int32(2), ETag: p2.ETag})

		var wg sync.WaitGroup
		var completeErr, partErr, sweepErr error
		start := make(chan struct{})
		wg.Go(func() {
			<-start
			_, completeErr = c.CompleteMultipartUpload(ctx, in)
		})
		wg.Go(func() {
			<-start
			_, partErr = c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("artifacts"), Key: aws.String(key), UploadId: aws.String(id), PartNumber: aws.Int32(3), Body: strings.NewReader("late")})
		})
		wg.Go(func() {
			<-start
			for range 3 {
				time.Sleep(time.Duration(rand.IntN(6_000)) * time.Microsecond)
				if _, err := env.h.SweepUploads(time.Now().Add(time.Hour)); err != nil {
					sweepErr = err
				}
			}
		})
		close(start)
		wg.Wait()

		if sweepErr != nil {
			t.Fatalf("round %d: sweep: %v", i, sweepErr)
		}
		if code := apiCode(partErr); partErr != nil && code != "NoSuchUpload" {
			t.Fatalf("round %d: UploadPart: %v", i, partErr)
		}
		switch code := apiCode(completeErr); {
		case completeErr == nil:
			g := must[*s3.GetObjectOutput](t)(c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("artifacts"), Key: aws.String(key)}))
			got, err := io.ReadAll(g.Body)
			g.Body.Close()
			if err != nil || len(got) != len(big)+len(tail) || !bytes.Equal(got[:len(big)], big) || !bytes.Equal(got[len(big):], tail) {
				t.Fatalf("round %d: completed object is %d bytes, not the parts' %d", i, len(got), len(big)+len(tail))
			}
			outcomes["completed"]++
		case code == "NoSuchUpload":
			if exists(t, c, "artifacts", key) {
				t.Fatalf("round %d: Complete answered NoSuchUpload but the object exists", i)
			}
			outcomes["swept first"]++
		default:
			t.Fatalf("round %d: Complete: %v", i, completeErr)
		}
		// The upload is gone either way, and nothing is left in tmp/.
		if _, err := os.Stat(filepath.Join(env.dir, "uploads", id)); !os.IsNotExist(err) {
			t.Fatalf("round %d: the upload's directory is still there (%v)", i, err)
		}
		if tmp, _ := os.ReadDir(filepath.Join(env.dir, "tmp")); len(tmp) != 0 {
			t.Fatalf("round %d: tmp/ holds %v", i, tmp)
		}
	}
	t.Logf("outcomes: %v", outcomes)
}

// TestSweepSkipsUploadInUse: the sweeper leaves alone an upload whose lock
// is held (a Complete, Abort or UploadPart in progress), and a request
// waiting for the lock of an upload swept meanwhile answers NoSuchUpload.
func TestSweepSkipsUploadInUse(t *testing.T) {
	env := newEnv(t)
	ctx := context.Background()
	c := env.root3()
	must[*s3.CreateBucketOutput](t)(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("artifacts")}))
	id := createUpload(t, c, "artifacts", "k")
	p := uploadPart(t, c, "artifacts", "k", id, 1, []byte("part"))

	unlock := env.h.uploads.lock(id)
	if n, err := env.h.SweepUploads(time.Now().Add(time.Hour)); n != 0 || err != nil {
		unlock()
		t.Fatalf("swept an upload in use: %d, %v", n, err)
	}
	// A Complete arriving now waits for the lock ...
	done := make(chan error, 1)
	go func() {
		_, err := c.CompleteMultipartUpload(ctx, completeInput("artifacts", "k", id, p.ETag))
		done <- err
	}()
	select {
	case err := <-done:
		unlock()
		t.Fatalf("Complete did not wait for the upload's lock: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	// ... and the upload goes while it waits (as if an abort held the lock).
	if err := env.h.removeUpload(id); err != nil {
		t.Fatal(err)
	}
	unlock()
	wantCode(t, <-done, "NoSuchUpload")
	if exists(t, c, "artifacts", "k") {
		t.Fatal("the object exists")
	}
	if len(env.h.uploads.m) != 0 {
		t.Fatalf("locks left: %v", env.h.uploads.m)
	}
}
