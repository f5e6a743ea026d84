package artifacts

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/pipelined/pipelined/internal/engine"
	"github.com/pipelined/pipelined/internal/secrets"
	"github.com/pipelined/pipelined/internal/sigv4"
	"github.com/pipelined/pipelined/internal/store"
	"github.com/pipelined/pipelined/internal/store/sqlite"
	"github.com/pipelined/pipelined/internal/wire"
)

func s3Artifact(name, bucket, key string) wire.Artifact {
	return wire.Artifact{Name: name, Location: &wire.ArtifactLocation{Type: wire.ArtifactLocationTypeS3,
		S3Location: &wire.S3ArtifactLocation{BucketName: bucket, ObjectKey: key}}}
}

func TestScopeOf(t *testing.T) {
	data := &wire.JobData{
		InputArtifacts:  []wire.Artifact{s3Artifact("B", "artifacts", "p/B/2"), s3Artifact("A", "artifacts", "p/A/1"), s3Artifact("X", "other-region", "p/X/9"), s3Artifact("A2", "artifacts", "p/A/1")},
		OutputArtifacts: []wire.Artifact{s3Artifact("Out", "artifacts", "p/Out/3")},
	}
	s, ok := ScopeOf("job-1", data)
	want := Scope{JobID: "job-1", Bucket: "artifacts", Read: []string{"p/A/1", "p/B/2"}, Write: []string{"p/Out/3"}}
	if !ok || !s.equal(want) || !slices.Equal(s.Read, want.Read) {
		t.Fatalf("ScopeOf = %+v, %v; want %+v", s, ok, want)
	}
	// A job without outputs takes its inputs' bucket; one without
	// artifacts has no scope.
	s, ok = ScopeOf("job-2", &wire.JobData{InputArtifacts: []wire.Artifact{s3Artifact("A", "artifacts", "k")}})
	if !ok || s.Bucket != "artifacts" || len(s.Write) != 0 || !slices.Equal(s.Read, []string{"k"}) {
		t.Fatalf("ScopeOf of a job without outputs = %+v, %v", s, ok)
	}
	if _, ok := ScopeOf("job-3", &wire.JobData{}); ok {
		t.Fatal("ScopeOf of a job without artifacts has a scope")
	}
}

func TestCheckTTL(t *testing.T) {
	for _, ok := range []time.Duration{15 * time.Minute, 30 * time.Minute, time.Hour} {
		if err := CheckTTL(ok); err != nil {
			t.Errorf("CheckTTL(%v) = %v", ok, err)
		}
	}
	for _, bad := range []time.Duration{0, 14*time.Minute + 59*time.Second, time.Hour + time.Second, -time.Hour} {
		if err := CheckTTL(bad); err == nil {
			t.Errorf("CheckTTL(%v) accepted", bad)
		}
	}
}

// The session policy is tested here exactly: moto, which the STS test
// runs against, does not enforce session policies, so this unit test is
// what shows that the credentials can do no more than the job needs.
func TestSessionPolicy(t *testing.T) {
	got, err := SessionPolicy(Scope{JobID: "j", Bucket: "artifacts", Read: []string{"app/Src/b", "app/Src/a"}, Write: []string{"app/Out/c"}})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"Version":"2012-10-17","Statement":[` +
		`{"Sid":"ReadInputArtifacts","Effect":"Allow","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::artifacts/app/Src/a","arn:aws:s3:::artifacts/app/Src/b"]},` +
		`{"Sid":"WriteOutputArtifacts","Effect":"Allow","Action":["s3:PutObject","s3:AbortMultipartUpload","s3:ListMultipartUploadParts"],"Resource":["arn:aws:s3:::artifacts/app/Out/c"]}]}`
	if got != want {
		t.Fatalf("policy\n got %s\nwant %s", got, want)
	}
	// Nothing but these statements: no list, no delete, no other bucket,
	// no wildcard.
	var doc policyDocument
	if err := json.Unmarshal([]byte(got), &doc); err != nil {
		t.Fatal(err)
	}
	for _, st := range doc.Statement {
		for _, r := range st.Resource {
			if strings.ContainsAny(r, "*?") || !strings.HasPrefix(r, "arn:aws:s3:::artifacts/") {
				t.Errorf("resource %q is not one object of the bucket", r)
			}
		}
	}

	// Only outputs; keys with IAM's special characters are escaped.
	got, err = SessionPolicy(Scope{JobID: "j", Bucket: "b", Write: []string{"we*ird?$key"}})
	if err != nil {
		t.Fatal(err)
	}
	want = `{"Version":"2012-10-17","Statement":[{"Sid":"WriteOutputArtifacts","Effect":"Allow","Action":["s3:PutObject","s3:AbortMultipartUpload","s3:ListMultipartUploadParts"],"Resource":["arn:aws:s3:::b/we${*}ird${?}${$}key"]}]}`
	if got != want {
		t.Fatalf("policy\n got %s\nwant %s", got, want)
	}
	// No objects: everything denied.
	got, err = SessionPolicy(Scope{JobID: "j", Bucket: "b"})
	if err != nil {
		t.Fatal(err)
	}
	want = `{"Version":"2012-10-17","Statement":[{"Sid":"NoArtifacts","Effect":"Deny","Action":["*"],"Resource":["*"]}]}`
	if got != want {
		t.Fatalf("policy\n got %s\nwant %s", got, want)
	}
	if _, err := SessionPolicy(Scope{JobID: "j"}); err == nil {
		t.Fatal("a scope without a bucket got a policy")
	}
}

func TestSessionName(t *testing.T) {
	if got := sessionName("0f8fad5b-d9cb-469f-a165-70867728950e"); got != "pipelined-job-0f8fad5b-d9cb-469f-a165-70867728950e" {
		t.Errorf("sessionName = %q", got)
	}
	if got := sessionName("a b/" + strings.Repeat("x", 80)); len(got) != 64 || !strings.HasPrefix(got, "pipelined-job-a_b_x") {
		t.Errorf("sessionName = %q", got)
	}
}

// localFixture is a Local on a fresh SQLite store with a movable clock,
// which starts one second into a credential period (TTL/2: 30 minutes).
type localFixture struct {
	st    store.Store
	key   []byte
	l     *Local
	mu    sync.Mutex
	now   time.Time
	jobID string
}

func (f *localFixture) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *localFixture) advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

const testJobID = "0f8fad5b-d9cb-469f-a165-70867728950e"

func newLocalFixture(t *testing.T) *localFixture {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &localFixture{st: st, key: newKey(), now: time.Now().Truncate(30 * time.Minute).Add(time.Second), jobID: testJobID}
	f.l = f.local(t, f.key)
	f.setJob(t, store.JobDispatched)
	return f
}

func newKey() []byte {
	key := make([]byte, secrets.KeySize)
	rand.Read(key)
	return key
}

// local is a Local of the fixture's store and clock (another replica)
// with the given master key.
func (f *localFixture) local(t *testing.T, key []byte) *Local {
	t.Helper()
	l, err := NewLocal(LocalConfig{
		Store: f.st, MasterKey: key, AccountID: "123456789012", TTL: time.Hour, Now: f.clock,
		Root: sigv4.Credential{AccessKeyID: "PLAKROOT", SecretAccessKey: "root-secret", Principal: "arn:aws:iam::123456789012:root"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// setJob stores the fixture's job, of testScope's artifacts (and one in
// another bucket, which is not in the scope), with the given status.
func (f *localFixture) setJob(t *testing.T, status string) {
	t.Helper()
	f.putJob(t, f.jobID, status)
}

func (f *localFixture) putJob(t *testing.T, id, status string) {
	t.Helper()
	data, err := json.Marshal(wire.JobData{
		InputArtifacts:  []wire.Artifact{s3Artifact("Src", "artifacts", "app/Src/in1"), s3Artifact("X", "other", "app/X/x")},
		OutputArtifacts: []wire.Artifact{s3Artifact("Out", "artifacts", "app/Out/out1")},
	})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := json.Marshal(engine.JobDoc{Stage: "Build", Action: "B", Data: data})
	if err != nil {
		t.Fatal(err)
	}
	err = f.st.InPipeline(t.Context(), "app", func(tx store.PipelineTx) error {
		return tx.PutJob(store.Job{ID: id, ActionType: store.ActionTypeKey{Category: "Build", Owner: "Custom", Provider: "B", Version: "1"},
			Pipeline: "app", ExecutionID: "x", Status: status, Doc: doc, Created: time.Now(), Updated: time.Now()})
	})
	if err != nil {
		t.Fatal(err)
	}
}

var testScope = Scope{JobID: testJobID, Bucket: "artifacts", Read: []string{"app/Src/in1"}, Write: []string{"app/Out/out1"}}

func TestLocalMintLookupAuthorize(t *testing.T) {
	f := newLocalFixture(t)
	ctx := t.Context()
	creds, exp, err := f.l.Mint(ctx, testScope)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(creds.AccessKeyId, "ASIA") || len(creds.AccessKeyId) != 43 || strings.Trim(creds.AccessKeyId, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") != "" ||
		len(creds.SecretAccessKey) != 40 || len(creds.SessionToken) < 40 {
		t.Fatalf("credentials look wrong: akid %q, secret length %d, token length %d", creds.AccessKeyId, len(creds.SecretAccessKey), len(creds.SessionToken))
	}
	// One second into the period: they expire at the end of the next one.
	if d := exp.Sub(f.clock()); d != time.Hour-time.Second {
		t.Errorf("expires in %v, want 59m59s", d)
	}
	// Nothing is stored: the credentials are derived.
	if strings.Contains(creds.AccessKeyId, creds.SecretAccessKey) || creds.SecretAccessKey == creds.SessionToken {
		t.Fatal("the credentials look degenerate")
	}

	// Lookup: from another replica (a Local with the same master key) too.
	other := f.local(t, f.key)
	for _, l := range []*Local{f.l, other} {
		c, err := l.Lookup(ctx, creds.AccessKeyId)
		if err != nil {
			t.Fatal(err)
		}
		if c.AccessKeyID != creds.AccessKeyId || c.SecretAccessKey != creds.SecretAccessKey || c.SessionToken != creds.SessionToken || !c.Expires.Equal(exp) ||
			c.Principal != "arn:aws:sts::123456789012:assumed-role/pipelined-job/"+testJobID {
			t.Fatalf("Lookup = %+v", c)
		}
	}
	if again, _, err := other.Mint(ctx, testScope); err != nil || again != creds {
		t.Fatalf("another replica minted other credentials: %v", err)
	}
	root, err := f.l.Lookup(ctx, "PLAKROOT")
	if err != nil || root.SecretAccessKey != "root-secret" {
		t.Fatalf("Lookup(root) = %+v, %v", root, err)
	}
	for _, bad := range []string{"ASIANOBODY0000000000", "", "ASIA", "AKIA" + creds.AccessKeyId[4:], creds.AccessKeyId + "A",
		creds.AccessKeyId[:42] + "8", strings.ToLower(creds.AccessKeyId), nonCanonical(creds.AccessKeyId)} {
		if _, err := f.l.Lookup(ctx, bad); !errors.Is(err, sigv4.ErrUnknownAccessKey) {
			t.Errorf("Lookup of the unknown key %q: %v", bad, err)
		}
	}

	sess, _ := f.l.Lookup(ctx, creds.AccessKeyId)
	for _, tc := range []struct {
		access      Access
		bucket, key string
		want        bool
	}{
		{AccessRead, "artifacts", "app/Src/in1", true},
		{AccessWrite, "artifacts", "app/Out/out1", true},
		{AccessWrite, "artifacts", "app/Src/in1", false}, // an input is not writable
		{AccessRead, "artifacts", "app/Out/out1", false}, // an output is not readable
		{AccessRead, "artifacts", "app/Src/in2", false},
		{AccessRead, "artifacts", "app/Src/in1/", false},
		{AccessRead, "artifacts", "app/Src/", false},
		{AccessRead, "other", "app/Src/in1", false},
		{AccessRead, "other", "app/X/x", false}, // an input in another bucket
		{AccessRead, "artifacts", "", false},
		{AccessOther, "artifacts", "app/Src/in1", false},
		{AccessOther, "artifacts", "", false},
	} {
		for _, l := range []*Local{f.l, other} {
			if got := l.Authorize(ctx, sess, tc.access, tc.bucket, tc.key); got != tc.want {
				t.Errorf("Authorize(%v, %s, %s) = %v, want %v", tc.access, tc.bucket, tc.key, got, tc.want)
			}
		}
		if !f.l.Authorize(ctx, root, tc.access, tc.bucket, tc.key) {
			t.Errorf("root may not %v %s/%s", tc.access, tc.bucket, tc.key)
		}
	}
	// Another token with the same key id is not the credential.
	forged := sess
	forged.SessionToken += "x"
	if f.l.Authorize(ctx, forged, AccessRead, "artifacts", "app/Src/in1") {
		t.Error("a credential with another token was authorized")
	}
	// In progress: still allowed; finished or gone: refused.
	f.setJob(t, engine.JobInProgress)
	if !f.l.Authorize(ctx, sess, AccessRead, "artifacts", "app/Src/in1") {
		t.Error("refused while the job is in progress")
	}
	for _, st := range []string{engine.JobSucceeded, engine.JobFailed, engine.JobTimedOut, engine.JobAbandoned} {
		f.setJob(t, st)
		if f.l.Authorize(ctx, sess, AccessWrite, "artifacts", "app/Out/out1") {
			t.Errorf("authorized while the job is %s", st)
		}
	}
	f.setJob(t, store.JobDispatched)
	// A job that does not exist: refused.
	gone := testScope
	gone.JobID = "9b2f1e3c-0000-4000-8000-000000000001"
	gc, _, err := f.l.Mint(ctx, gone)
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := f.l.Lookup(ctx, gc.AccessKeyId); f.l.Authorize(ctx, c, AccessRead, "artifacts", "app/Src/in1") {
		t.Error("authorized for a job that does not exist")
	}
	// Expired: refused (the verifier answers ExpiredToken first).
	f.advance(time.Hour)
	if f.l.Authorize(ctx, sess, AccessRead, "artifacts", "app/Src/in1") {
		t.Error("authorized after expiry")
	}
}

// An access key id names its job and expiry in the clear; changing either
// gives another credential, whose secrets only the master key's holder
// knows.
func TestLocalForgedAccessKey(t *testing.T) {
	f := newLocalFixture(t)
	ctx := t.Context()
	creds, exp, err := f.l.Mint(ctx, testScope)
	if err != nil {
		t.Fatal(err)
	}
	jobID, expires, ok := decode(creds.AccessKeyId)
	if !ok || jobID != testJobID || !expires.Equal(exp) {
		t.Fatalf("decode = %s, %v, %v", jobID, expires, ok)
	}
	f.putJob(t, "9b2f1e3c-0000-4000-8000-000000000002", store.JobDispatched)
	forge := func(job string, exp time.Time) string {
		id := uuid.MustParse(job)
		var b [akidPayload]byte
		copy(b[:], id[:])
		binary.BigEndian.PutUint64(b[16:], uint64(exp.Unix()))
		return akidPrefix + akidEncoding.EncodeToString(b[:])
	}
	for _, akid := range []string{
		forge(testJobID, exp.Add(24*time.Hour)),                           // a later expiry
		forge("9b2f1e3c-0000-4000-8000-000000000002", exp),                // another job
		forge("9b2f1e3c-0000-4000-8000-000000000002", exp.Add(time.Hour)), // both
	} {
		c, err := f.l.Lookup(ctx, akid)
		if err != nil {
			t.Fatal(err)
		}
		if c.SecretAccessKey == creds.SecretAccessKey || c.SessionToken == creds.SessionToken {
			t.Fatalf("the forged key %s has the original's secrets", akid)
		}
		// Signed with the original secret and token (what a forger has):
		// the verifier's secret differs (SignatureDoesNotMatch), and
		// Authorize refuses the token.
		forged := sigv4.Credential{AccessKeyID: akid, SecretAccessKey: creds.SecretAccessKey, SessionToken: creds.SessionToken, Expires: c.Expires}
		if f.l.Authorize(ctx, forged, AccessRead, "artifacts", "app/Src/in1") {
			t.Errorf("the forged key %s was authorized", akid)
		}
	}
}

// A new master key invalidates every credential made under the old one.
func TestLocalRotatedMasterKey(t *testing.T) {
	f := newLocalFixture(t)
	ctx := t.Context()
	creds, _, err := f.l.Mint(ctx, testScope)
	if err != nil {
		t.Fatal(err)
	}
	rotated := f.local(t, newKey())
	c, err := rotated.Lookup(ctx, creds.AccessKeyId)
	if err != nil {
		t.Fatal(err)
	}
	if c.SecretAccessKey == creds.SecretAccessKey || c.SessionToken == creds.SessionToken {
		t.Fatal("a rotated master key derives the same secrets")
	}
	old := sigv4.Credential{AccessKeyID: creds.AccessKeyId, SecretAccessKey: creds.SecretAccessKey, SessionToken: creds.SessionToken, Expires: c.Expires}
	if rotated.Authorize(ctx, old, AccessRead, "artifacts", "app/Src/in1") {
		t.Error("credentials of the old master key were authorized")
	}
	if !rotated.Authorize(ctx, c, AccessRead, "artifacts", "app/Src/in1") {
		t.Error("the rotated key's own credentials were refused")
	}
	if _, err := NewLocal(LocalConfig{Store: f.st, MasterKey: []byte("short"), Root: sigv4.Credential{AccessKeyID: "A", SecretAccessKey: "S"}}); err == nil {
		t.Error("NewLocal accepted a short master key")
	}
}

func TestLocalRenewal(t *testing.T) {
	f := newLocalFixture(t)
	ctx := t.Context()
	first, exp1, err := f.l.Mint(ctx, testScope)
	if err != nil {
		t.Fatal(err)
	}
	// More than half the lifetime left: the same credentials.
	f.advance(29 * time.Minute)
	again, exp2, err := f.l.Mint(ctx, testScope)
	if err != nil {
		t.Fatal(err)
	}
	if again != first || !exp2.Equal(exp1) {
		t.Fatalf("renewal within the first half issued new credentials")
	}
	// Half or less: new ones, with a new lifetime; the old ones still
	// work until they expire.
	f.advance(2 * time.Minute)
	renewed, exp3, err := f.l.Mint(ctx, testScope)
	if err != nil {
		t.Fatal(err)
	}
	if renewed.AccessKeyId == first.AccessKeyId || renewed.SessionToken == first.SessionToken || !exp3.After(exp1) {
		t.Fatalf("renewal after half the lifetime did not issue new credentials")
	}
	if d := exp3.Sub(f.clock()); d <= 30*time.Minute || d > time.Hour {
		t.Errorf("renewed credentials expire in %v", d)
	}
	c, err := f.l.Lookup(ctx, first.AccessKeyId)
	if err != nil || c.SessionToken != first.SessionToken || !f.l.Authorize(ctx, c, AccessRead, "artifacts", "app/Src/in1") {
		t.Fatalf("the earlier credentials no longer work: %v", err)
	}
	// Job ids are UUIDs.
	bad := testScope
	bad.JobID = "job-1"
	if _, _, err := f.l.Mint(ctx, bad); err == nil {
		t.Error("minted for a job id that is not a UUID")
	}
	bad.JobID = strings.ToUpper(testJobID)
	if _, _, err := f.l.Mint(ctx, bad); err == nil {
		t.Error("minted for a job id that is not a canonical UUID")
	}
}

func TestLocalEnsureBucketOnce(t *testing.T) {
	f := newLocalFixture(t)
	var calls []string
	cfg := f.l.cfg
	cfg.EnsureBucket = func(_ context.Context, b string) error { calls = append(calls, b); return nil }
	l, _ := NewLocal(cfg)
	for range 3 {
		if _, _, err := l.Mint(t.Context(), testScope); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(calls, []string{"artifacts"}) {
		t.Fatalf("EnsureBucket calls = %v", calls)
	}
}

// nonCanonical is akid with the unused low bits of its last character set:
// it decodes to the same job and expiry, but is not the key Mint made.
func nonCanonical(akid string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	i := strings.IndexByte(alphabet, akid[len(akid)-1])
	return akid[:len(akid)-1] + string(alphabet[i|7])
}
