package s3api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/pipelined/pipelined/internal/sigv4"
)

const (
	testRegion = "us-east-1"
	rootAKID   = "AKIAROOTEXAMPLE"
	rootSecret = "rootSecretKeyForTests/0123456789abcdef"
	jobAKID    = "ASIAJOBEXAMPLE"
	jobSecret  = "jobSecretKeyForTests/0123456789abcdefXYZ"
	jobToken   = "FQoGZXIvYXdzEPT//////////wEaDjobtoken+x/y="
)

// testAuth lets the root key do anything and the job key read and write
// only under artifacts/job1/.
type testAuth struct{}

func (testAuth) Lookup(_ context.Context, id string) (sigv4.Credential, error) {
	switch id {
	case rootAKID:
		return sigv4.Credential{AccessKeyID: id, SecretAccessKey: rootSecret, Principal: "root"}, nil
	case jobAKID:
		return sigv4.Credential{AccessKeyID: id, SecretAccessKey: jobSecret, SessionToken: jobToken,
			Principal: "job1", Expires: time.Now().Add(time.Hour)}, nil
	}
	return sigv4.Credential{}, fmt.Errorf("%q: %w", id, sigv4.ErrUnknownAccessKey)
}

func (testAuth) Allow(_ context.Context, c sigv4.Credential, op Op, bucket, key string) bool {
	if c.Principal == "root" {
		return true
	}
	return bucket == "artifacts" && (op == Read || op == Write) && strings.HasPrefix(key, "job1/")
}

// wireLog records what arrived on the wire, to show that the clients'
// default configuration really used aws-chunked.
type wireLog struct {
	mu       sync.Mutex
	payloads map[string]int // x-amz-content-sha256 marker (or "hex") -> count
	chunked  int            // requests with Content-Encoding: aws-chunked
	ops      []string       // "METHOD[ q1&q2][ copy]" (query parameter names), in order
	deletes  []http.Header  // the headers of each POST ?delete
}

func (l *wireLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		p := r.Header.Get("X-Amz-Content-Sha256")
		if len(p) == 64 {
			p = "hex"
		}
		l.payloads[p]++
		if strings.Contains(r.Header.Get("Content-Encoding"), "aws-chunked") {
			l.chunked++
		}
		var names []string
		for k := range r.URL.Query() {
			if k != "x-id" {
				names = append(names, k)
			}
		}
		slices.Sort(names)
		op := r.Method
		if len(names) > 0 {
			op += " " + strings.Join(names, "&")
		}
		if r.Header.Get("X-Amz-Copy-Source") != "" {
			op += " copy"
		}
		l.ops = append(l.ops, op)
		if r.Method == http.MethodPost && r.URL.Query().Has("delete") {
			l.deletes = append(l.deletes, r.Header.Clone())
		}
		l.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

func (l *wireLog) snapshot() (map[string]int, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := map[string]int{}
	for k, v := range l.payloads {
		m[k] = v
	}
	return m, l.chunked
}

// opCount counts the requests logged as op ("POST delete", "PUT copy", ...).
func (l *wireLog) opCount(op string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, o := range l.ops {
		if o == op {
			n++
		}
	}
	return n
}

type testEnv struct {
	h    *Handler
	srv  *httptest.Server
	dir  string // the store's directory
	root string // its parent: nothing but dir may appear there
	wire *wireLog
}

// newEnv starts the handler behind a TLS test server: the SDKs send
// trailing checksums (aws-chunked) only over HTTPS.
func newEnv(t testing.TB) *testEnv {
	t.Helper()
	return newEnvAuth(t, testAuth{})
}

// newEnvAuth is newEnv with another Authorizer.
func newEnvAuth(t testing.TB, auth Authorizer) *testEnv {
	t.Helper()
	logLevel := slog.LevelWarn
	if testing.Verbose() {
		logLevel = slog.LevelDebug
	}
	return newEnvWith(t, auth, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel})))
}

// newEnvWith is newEnv with another Authorizer and logger.
func newEnvWith(t testing.TB, auth Authorizer, log *slog.Logger) *testEnv {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "store")
	h, err := New(dir, testRegion, auth, log)
	if err != nil {
		t.Fatal(err)
	}
	wl := &wireLog{payloads: map[string]int{}}
	srv := httptest.NewTLSServer(wl.wrap(h))
	t.Cleanup(srv.Close)
	return &testEnv{h: h, srv: srv, dir: dir, root: root, wire: wl}
}

func (e *testEnv) client(akid, secret, token string, opts ...func(*s3.Options)) *s3.Client {
	o := s3.Options{
		Region:       testRegion,
		BaseEndpoint: aws.String(e.srv.URL),
		UsePathStyle: true,
		HTTPClient:   e.srv.Client(),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: akid, SecretAccessKey: secret, SessionToken: token}, nil
		}),
		Retryer: aws.NopRetryer{},
	}
	return s3.New(o, opts...)
}

func (e *testEnv) root3() *s3.Client { return e.client(rootAKID, rootSecret, "") }

// randomFile writes n pseudo-random bytes to a file and returns its path
// and SHA-256.
func randomFile(t testing.TB, dir string, n int64, seed uint64) (string, string) {
	t.Helper()
	path := filepath.Join(dir, fmt.Sprintf("rand-%d-%d", n, seed))
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	src := rand.NewChaCha8([32]byte{byte(seed)})
	if _, err := io.CopyN(io.MultiWriter(f, h), src, n); err != nil {
		t.Fatal(err)
	}
	return path, hex.EncodeToString(h.Sum(nil))
}

func fileSHA(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// storeFiles lists the regular files under the store's bucket and upload
// directories, relative to dir.
func (e *testEnv) storeFiles(t testing.TB) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(e.dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasSuffix(p, ".created") {
			rel, _ := filepath.Rel(e.dir, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

// signedRequest sends a request signed by the root credentials (SigV4 with
// the body's SHA-256), with extra headers, and returns the status, the
// error code of an error body ("" otherwise) and the body.
func (e *testEnv) signedRequest(t testing.TB, method, path string, body []byte, hdr map[string]string) (int, string, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	sum := sha256.Sum256(body)
	payload := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", payload)
	creds := aws.Credentials{AccessKeyID: rootAKID, SecretAccessKey: rootSecret}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, payload, "s3", testRegion, time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	var eb struct{ Code string }
	if resp.StatusCode >= 300 {
		xml.Unmarshal(out, &eb)
	}
	return resp.StatusCode, eb.Code, out
}

// runTool runs a client command (python3 with boto3, the aws CLI) with env
// and returns its output, failing t if it fails. A process that dies of a
// signal is run once more: the aws CLI's Python crashed once in CI with
// SIGSEGV during a parallel download, which is the client's crash, not an
// answer of the server; a second crash fails the test.
func runTool(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	for attempt := 1; ; attempt++ {
		cmd := exec.Command(name, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err == nil {
			return string(out)
		}
		var exit *exec.ExitError
		if attempt == 1 && errors.As(err, &exit) && exit.ProcessState.Sys().(syscall.WaitStatus).Signaled() {
			t.Logf("%s %v died (%v); running it again\n%s", name, args, err, out)
			continue
		}
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}
