package sigv4

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

const (
	testRegion    = "us-east-1"
	testAKID      = "AKIDEXAMPLE"
	testSecret    = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
	tempAKID      = "ASIATEMPEXAMPLE"
	tempSecret    = "tempSecretKeyForTests/0123456789abcdefABCDEF"
	tempToken     = "FQoGZXIvYXdzEPT//////////wEaDtoken+with/odd=chars"
	expiredAKID   = "ASIAEXPIREDEXAMPLE"
	brokenAKID    = "AKIDBROKENLOOKUP"
	testPrincipal = "arn:aws:iam::123456789012:user/alice"
)

var (
	testNow = time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)
	errDB   = errors.New("database is down")

	longTermCreds = aws.Credentials{AccessKeyID: testAKID, SecretAccessKey: testSecret}
	tempCreds     = aws.Credentials{AccessKeyID: tempAKID, SecretAccessKey: tempSecret, SessionToken: tempToken}
)

func testLookup(_ context.Context, id string) (Credential, error) {
	switch id {
	case testAKID:
		return Credential{AccessKeyID: id, SecretAccessKey: testSecret, Principal: testPrincipal}, nil
	case tempAKID:
		return Credential{AccessKeyID: id, SecretAccessKey: tempSecret, SessionToken: tempToken,
			Principal: testPrincipal, Expires: testNow.Add(time.Hour)}, nil
	case expiredAKID:
		return Credential{AccessKeyID: id, SecretAccessKey: testSecret, Expires: testNow.Add(-time.Second)}, nil
	case brokenAKID:
		return Credential{}, errDB
	}
	return Credential{}, fmt.Errorf("access key %q: %w", id, ErrUnknownAccessKey)
}

func newTestVerifier(service string) *Verifier {
	return &Verifier{
		Region:  testRegion,
		Service: service,
		Lookup:  testLookup,
		Now:     func() time.Time { return testNow },
	}
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// sign signs req in place with the SDK's signer, the oracle.
func sign(t testing.TB, req *http.Request, creds aws.Credentials, payloadHash, service string, at time.Time, opts ...func(*v4.SignerOptions)) {
	t.Helper()
	err := v4.NewSigner().SignHTTP(context.Background(), creds, req, payloadHash, service, testRegion, at, opts...)
	if err != nil {
		t.Fatalf("SignHTTP: %v", err)
	}
}

// presign presigns req with the SDK and returns a new request for the
// presigned URL, carrying the headers the signature covers.
func presign(t testing.TB, req *http.Request, body []byte, creds aws.Credentials, payloadHash, service string, at time.Time, opts ...func(*v4.SignerOptions)) *http.Request {
	t.Helper()
	signedURL, headers, err := v4.NewSigner().PresignHTTP(context.Background(), creds, req, payloadHash, service, testRegion, at, opts...)
	if err != nil {
		t.Fatalf("PresignHTTP: %v", err)
	}
	out, err := http.NewRequest(req.Method, signedURL, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("NewRequest(%q): %v", signedURL, err)
	}
	for k, vs := range headers {
		if k == "Host" || k == "Content-Length" {
			continue // Go's client sends these from req.Host and req.ContentLength
		}
		out.Header[k] = vs
	}
	return out
}

func s3Options(o *v4.SignerOptions) { o.DisableURIPathEscaping = true }

// overWire returns the request as Go's HTTP server hands it to a handler,
// without a network: written out by the client's code and parsed back by the
// server's.
func overWire(t testing.TB, req *http.Request) (*http.Request, []byte) {
	t.Helper()
	var buf bytes.Buffer
	if err := req.Write(&buf); err != nil {
		t.Fatalf("writing request: %v", err)
	}
	sr, err := http.ReadRequest(bufio.NewReader(&buf))
	if err != nil {
		t.Fatalf("reading request back: %v", err)
	}
	body, err := io.ReadAll(sr.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return sr, body
}

type outcome struct {
	res *Result
	err error
	// what the handler saw, for tests that look at Go's server itself
	header http.Header
	host   string
}

// testServer is a real HTTP server whose handler runs Verify on every
// request, so the tests canonicalize exactly what Go's server hands over.
type testServer struct {
	*httptest.Server
	v        *Verifier
	got      chan outcome
	withBody atomic.Bool // pass the body to Verify, or nil
}

func newTestServer(t testing.TB, v *Verifier) *testServer {
	ts := &testServer{v: v, got: make(chan outcome, 1)}
	ts.withBody.Store(true)
	ts.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			ts.got <- outcome{err: err}
			return
		}
		if !ts.withBody.Load() {
			body = nil
		}
		res, err := ts.v.Verify(r.Context(), r, body)
		ts.got <- outcome{res: res, err: err, header: r.Header.Clone(), host: r.Host}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(ts.Close)
	return ts
}

func (ts *testServer) do(t testing.TB, req *http.Request) outcome {
	t.Helper()
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	select {
	case o := <-ts.got:
		return o
	case <-time.After(10 * time.Second):
		t.Fatalf("handler never ran for %s %s (status %s)", req.Method, req.URL, resp.Status)
		return outcome{}
	}
}

// mustVerify fails the test unless err is nil, showing the canonical request
// on a mismatch.
func mustVerify(t testing.TB, res *Result, err error) *Result {
	t.Helper()
	if err != nil {
		var e *Error
		if errors.As(err, &e) && e.Kind == SignatureMismatch {
			t.Fatalf("Verify: %v\ncanonical request:\n%s\nstring to sign:\n%s", err, e.CanonicalRequest, e.StringToSign)
		}
		t.Fatalf("Verify: %v", err)
	}
	if res == nil {
		t.Fatal("Verify returned neither result nor error")
	}
	return res
}

// wantKind fails the test unless err is an *Error of the kind, with a
// message that gives away no secret.
func wantKind(t testing.TB, err error, kind Kind) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("got error %v (%T), want an *Error of kind %v", err, err, kind)
	}
	if e.Kind != kind {
		t.Fatalf("got %v, want kind %v", err, kind)
	}
	if e.Message == "" {
		t.Errorf("%v: empty message", kind)
	}
	for _, s := range []string{testSecret, tempSecret} {
		if strings.Contains(e.Message, s) || strings.Contains(e.CanonicalRequest, s) || strings.Contains(e.StringToSign, s) {
			t.Errorf("%v: error gives away a secret key: %q", kind, e.Message)
		}
	}
	return e
}

// must is mustVerify for a call's two results: must(t)(v.Verify(...)).
func must(t testing.TB) func(*Result, error) *Result {
	return func(res *Result, err error) *Result {
		t.Helper()
		return mustVerify(t, res, err)
	}
}
