package sigv4

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/smithy-go/encoding/httpbinding"
)

// The tests in this file sign requests with the AWS SDK's signer and check
// that Verify accepts them, as Go's HTTP server delivers them.

var codePipelineBody = []byte(`{"name":"my-pipeline","version":3}`)

// newJSONRequest builds a CodePipeline call as the SDK's client sends it.
func newJSONRequest(t testing.TB, base string, body []byte) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "CodePipeline_20150709.GetPipeline")
	req.Header.Set("Amz-Sdk-Invocation-Id", "0b6c2f4e-7f1a-4c55-9a55-3d2f0e0b8c11")
	req.Header.Set("Amz-Sdk-Request", "attempt=1; max=3")
	req.Header.Set("User-Agent", "aws-sdk-go-v2/1.47.6 os/linux lang/go#1.26")
	return req
}

func TestOracleJSONPost(t *testing.T) {
	ts := newTestServer(t, newTestVerifier("codepipeline"))
	req := newJSONRequest(t, ts.URL, codePipelineBody)
	sign(t, req, longTermCreds, sha256Hex(codePipelineBody), "codepipeline", testNow)
	o := ts.do(t, req)
	res := mustVerify(t, o.res, o.err)

	if res.Credential.Principal != testPrincipal || res.Credential.AccessKeyID != testAKID {
		t.Errorf("Credential = %+v", res.Credential)
	}
	if want := "20250314/us-east-1/codepipeline/aws4_request"; res.Scope != want {
		t.Errorf("Scope = %q, want %q", res.Scope, want)
	}
	if want := sha256Hex(codePipelineBody); res.PayloadHash != want {
		t.Errorf("PayloadHash = %q, want %q", res.PayloadHash, want)
	}
	if !res.Date.Equal(testNow) {
		t.Errorf("Date = %v, want %v", res.Date, testNow)
	}
	if res.Presigned {
		t.Error("Presigned = true for a header-signed request")
	}
	if !strings.HasSuffix(req.Header.Get("Authorization"), "Signature="+res.SeedSignature) {
		t.Errorf("SeedSignature %q is not the request's signature (%q)", res.SeedSignature, req.Header.Get("Authorization"))
	}
	if want := deriveSigningKey(testSecret, "20250314", testRegion, "codepipeline"); !bytes.Equal(res.SigningKey, want) {
		t.Errorf("SigningKey = %x, want %x", res.SigningKey, want)
	}
	if want := []string{"amz-sdk-invocation-id", "amz-sdk-request", "content-length", "content-type", "host", "x-amz-date", "x-amz-target"}; strings.Join(res.SignedHeaders, ";") != strings.Join(want, ";") {
		t.Errorf("SignedHeaders = %q, want %q", res.SignedHeaders, want)
	}
	// Go's server keeps Content-Length in the header map; the SDK signed it.
	if o.header.Get("Content-Length") == "" {
		t.Log("note: Go's server no longer keeps Content-Length in r.Header; the r.ContentLength fallback is in use")
	}

	// The returned key is the caller's own: spoiling it must not spoil the
	// cache.
	for i := range res.SigningKey {
		res.SigningKey[i] = 0
	}
	req = newJSONRequest(t, ts.URL, codePipelineBody)
	sign(t, req, longTermCreds, sha256Hex(codePipelineBody), "codepipeline", testNow)
	o = ts.do(t, req)
	mustVerify(t, o.res, o.err)
}

func TestOracleQueryStrings(t *testing.T) {
	cases := []struct {
		name, raw string
		// resend the raw query as given instead of the SDK's canonical
		// rewrite of it: the server must accept any encoding that decodes
		// to the same parameters.
		resendRaw bool
	}{
		{"sorting", "b=2&a=1&c=3", true},
		{"repeated keys sorted by value", "k=2&k=10&k=1&k=", true},
		{"keys without values", "acl&versions&uploads=", true},
		{"plus is a space", "q=a+b+c", true},
		{"encoded plus", "q=a%2Bb", true},
		{"spaces", "q=hello world&x y=z", false},
		{"equals in value", "eq=a=b=c", true},
		{"encoded equals in key", "a%3Db=1", true},
		{"slashes", "prefix=/x/y/&delimiter=/", true},
		{"encoded slashes", "prefix=%2Fx%2Fy", true},
		{"unicode", "name=%E2%82%AC%20%C3%BCber&k%C3%A9y=v", true},
		{"reserved characters", "q=!*'();:@&$,?#[]", false},
		{"encoded reserved characters", "q=%21%2A%27%28%29%3B%3A%40%26%24%2C%3F%23%5B%5D", true},
		{"unreserved stay", "q=AZaz09-._~", true},
		{"lower-case escapes", "q=%c3%bc", true},
		{"empty pairs", "a=1&&b=2&", true},
		{"sort after encoding", "k=a-b&k=a/b&k=a.b", true},
		{"percent", "q=100%25", true},
	}
	v := newTestVerifier("codepipeline")
	ts := newTestServer(t, v)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			build := func() *http.Request {
				req, err := http.NewRequest(http.MethodGet, ts.URL+"/things", nil)
				if err != nil {
					t.Fatal(err)
				}
				req.URL.RawQuery = tc.raw
				sign(t, req, longTermCreds, sha256Hex(nil), "codepipeline", testNow)
				return req
			}
			o := ts.do(t, build())
			mustVerify(t, o.res, o.err)
			if tc.resendRaw {
				req := build()
				req.URL.RawQuery = tc.raw
				o := ts.do(t, req)
				mustVerify(t, o.res, o.err)
			}
		})
	}
}

func TestOracleHeaders(t *testing.T) {
	ts := newTestServer(t, newTestVerifier("codepipeline"))
	build := func() *http.Request {
		req := newJSONRequest(t, ts.URL, codePipelineBody)
		req.Header.Add("X-Amz-Meta-Multi", "one")
		req.Header.Add("X-Amz-Meta-Multi", "two   three")
		req.Header.Add("X-Amz-Meta-Multi", "four")
		req.Header.Set("X-Custom-Spaces", "  a    b   c  ")
		req.Header.Set("X-Comma", "x, y,z")
		req.Header["x-AMZ-odd-CASE"] = []string{"Odd  Value"} // not canonicalized by the client
		sign(t, req, longTermCreds, sha256Hex(codePipelineBody), "codepipeline", testNow)
		return req
	}

	o := ts.do(t, build())
	res := mustVerify(t, o.res, o.err)
	if got := o.header["X-Amz-Meta-Multi"]; len(got) != 3 {
		t.Errorf("server saw X-Amz-Meta-Multi = %q, want three separate values", got)
	}
	for _, h := range []string{"x-amz-meta-multi", "x-custom-spaces", "x-comma", "x-amz-odd-case"} {
		if !slices.Contains(res.SignedHeaders, h) {
			t.Errorf("%s was not signed: %q", h, res.SignedHeaders)
		}
	}

	t.Run("SignedHeaders in odd case and order", func(t *testing.T) {
		req := build()
		authz := req.Header.Get("Authorization")
		start := strings.Index(authz, "SignedHeaders=") + len("SignedHeaders=")
		end := start + strings.Index(authz[start:], ",")
		names := strings.Split(authz[start:end], ";")
		for i, n := range names {
			names[i] = strings.ToUpper(n[:1]) + n[1:]
		}
		names[0], names[len(names)-1] = names[len(names)-1], names[0]
		req.Header.Set("Authorization", authz[:start]+strings.Join(names, ";")+authz[end:])
		o := ts.do(t, req)
		mustVerify(t, o.res, o.err)
	})

	t.Run("unsigned header may change", func(t *testing.T) {
		req := build()
		req.Header.Set("User-Agent", "something else")
		req.Header.Set("X-Amzn-Trace-Id", "Root=1-5759e988-bd862e3fe1be46a994272793")
		o := ts.do(t, req)
		mustVerify(t, o.res, o.err)
	})

	t.Run("request built in code with non-canonical keys", func(t *testing.T) {
		req := build()
		sr, body := overWire(t, req)
		// Move a header to a non-canonical key, as code (not Go's server)
		// may do.
		sr.Header["x-amz-target"] = sr.Header["X-Amz-Target"]
		delete(sr.Header, "X-Amz-Target")
		res, err := newTestVerifier("codepipeline").Verify(t.Context(), sr, body)
		mustVerify(t, res, err)
	})
}

func TestOracleUnsignedPayload(t *testing.T) {
	ts := newTestServer(t, newTestVerifier("codepipeline"))
	for _, withBody := range []bool{true, false} {
		ts.withBody.Store(withBody)
		req := newJSONRequest(t, ts.URL, codePipelineBody)
		req.Header.Set("X-Amz-Content-Sha256", UnsignedPayload)
		sign(t, req, longTermCreds, UnsignedPayload, "codepipeline", testNow)
		o := ts.do(t, req)
		res := mustVerify(t, o.res, o.err)
		if res.PayloadHash != UnsignedPayload {
			t.Errorf("withBody=%v: PayloadHash = %q", withBody, res.PayloadHash)
		}
	}
}

func TestOracleDeclaredPayloadHash(t *testing.T) {
	ts := newTestServer(t, newTestVerifier("codepipeline"))
	for _, withBody := range []bool{true, false} {
		ts.withBody.Store(withBody)
		req := newJSONRequest(t, ts.URL, codePipelineBody)
		req.Header.Set("X-Amz-Content-Sha256", sha256Hex(codePipelineBody))
		sign(t, req, longTermCreds, sha256Hex(codePipelineBody), "codepipeline", testNow)
		o := ts.do(t, req)
		res := mustVerify(t, o.res, o.err)
		if res.PayloadHash != sha256Hex(codePipelineBody) {
			t.Errorf("withBody=%v: PayloadHash = %q", withBody, res.PayloadHash)
		}
	}
}

func TestOracleStreamingUpload(t *testing.T) {
	ts := newTestServer(t, newTestVerifier("s3"))
	ts.withBody.Store(false) // the S3 layer reads aws-chunked bodies itself
	chunked := []byte("400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n")
	req, err := http.NewRequest(http.MethodPut, ts.URL+"/bucket/big.bin", bytes.NewReader(chunked))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Amz-Content-Sha256", StreamingPayload)
	req.Header.Set("Content-Encoding", "aws-chunked")
	req.Header.Set("X-Amz-Decoded-Content-Length", "66560")
	sign(t, req, longTermCreds, StreamingPayload, "s3", testNow, s3Options)
	o := ts.do(t, req)
	res := mustVerify(t, o.res, o.err)
	if res.PayloadHash != StreamingPayload {
		t.Errorf("PayloadHash = %q", res.PayloadHash)
	}
	if !strings.HasSuffix(req.Header.Get("Authorization"), "Signature="+res.SeedSignature) {
		t.Errorf("SeedSignature %q is not the request's signature", res.SeedSignature)
	}
	if want := deriveSigningKey(testSecret, "20250314", testRegion, "s3"); !bytes.Equal(res.SigningKey, want) {
		t.Errorf("SigningKey = %x, want %x", res.SigningKey, want)
	}
}

// s3Keys are object keys (decoded) with characters that escape differently
// under Go's, the SDK's and RFC 3986's rules.
var s3Keys = []string{
	"/bucket/plain.txt",
	"/bucket/my key.txt",
	"/bucket/ünïcödé/€uro",
	"/bucket/a+b=c&d",
	"/bucket/(paren)!*'",
	"/bucket/colon:at@dollar$comma,semi;",
	"/bucket/dir//double//slash/",
	"/bucket/./dot/../dots",
	"/bucket/%25percent%",
	"/bucket/tilde~_-.ok",
	"/bucket/[brackets]{braces}^|`\"<>",
}

// lenientEscape escapes a path the way some clients and proxies do: like
// RFC 3986 but leaving the sub-delimiters and ':' '@' as they are.
func lenientEscape(p string) string {
	s := httpbinding.EscapePath(p, false)
	r := strings.NewReplacer("%21", "!", "%24", "$", "%26", "&", "%27", "'", "%28", "(", "%29", ")",
		"%2A", "*", "%2B", "+", "%2C", ",", "%3B", ";", "%3D", "=", "%3A", ":", "%40", "@")
	return r.Replace(s)
}

func TestOraclePaths(t *testing.T) {
	for _, service := range []string{"s3", "codepipeline"} {
		t.Run(service, func(t *testing.T) {
			ts := newTestServer(t, newTestVerifier(service))
			var opts []func(*v4.SignerOptions)
			if service == "s3" {
				opts = append(opts, s3Options)
			}
			for _, key := range s3Keys {
				escapings := map[string]string{
					"strict (the SDK's)": httpbinding.EscapePath(key, false),
					"Go's default":       "",
					"lenient":            lenientEscape(key),
				}
				for name, raw := range escapings {
					build := func(rawPath string) *http.Request {
						req, err := http.NewRequest(http.MethodGet, ts.URL, nil)
						if err != nil {
							t.Fatal(err)
						}
						req.URL.Path, req.URL.RawPath = key, rawPath
						req.Header.Set("X-Amz-Content-Sha256", UnsignedPayload)
						return req
					}
					t.Run(key+" "+name, func(t *testing.T) {
						req := build(raw)
						sign(t, req, longTermCreds, UnsignedPayload, service, testNow, opts...)
						o := ts.do(t, req)
						mustVerify(t, o.res, o.err)
					})
					// Signed strictly, re-escaped on the way (by a proxy).
					t.Run(key+" "+name+" re-escaped", func(t *testing.T) {
						req := build(httpbinding.EscapePath(key, false))
						sign(t, req, longTermCreds, UnsignedPayload, service, testNow, opts...)
						req.URL.RawPath = raw
						o := ts.do(t, req)
						mustVerify(t, o.res, o.err)
					})
				}
			}
		})
	}
}

// A client may send a path raw, characters and all, through URL.Opaque; the
// SDK then signs it as sent. Only the request line has it as sent: r.URL
// re-escapes it.
func TestOracleRawRequestLine(t *testing.T) {
	const raw = "/bucket/{curly}|^`\"quoted\"<angle>"
	for _, service := range []string{"s3", "codepipeline"} {
		t.Run(service, func(t *testing.T) {
			ts := newTestServer(t, newTestVerifier(service))
			req, err := http.NewRequest(http.MethodGet, ts.URL, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.URL.Opaque = "//" + req.URL.Host + raw
			req.Header.Set("X-Amz-Content-Sha256", UnsignedPayload)
			var opts []func(*v4.SignerOptions)
			if service == "s3" {
				opts = append(opts, s3Options)
			}
			sign(t, req, longTermCreds, UnsignedPayload, service, testNow, opts...)
			o := ts.do(t, req)
			mustVerify(t, o.res, o.err)
		})
	}
}

// Requests built in code, not read by Go's server: no RequestURI, and
// Content-Length only in r.ContentLength.
func TestOracleRequestBuiltInCode(t *testing.T) {
	req := newJSONRequest(t, "https://codepipeline.us-east-1.amazonaws.com", codePipelineBody)
	sign(t, req, longTermCreds, sha256Hex(codePipelineBody), "codepipeline", testNow)
	if req.Header.Get("Content-Length") != "" || req.RequestURI != "" {
		t.Fatal("test premise: a client request has neither Content-Length in its header map nor RequestURI")
	}
	res, err := newTestVerifier("codepipeline").Verify(t.Context(), req, codePipelineBody)
	res = mustVerify(t, res, err)
	if !slices.Contains(res.SignedHeaders, "content-length") {
		t.Errorf("content-length not signed: %q", res.SignedHeaders)
	}
}

func TestOracleSessionToken(t *testing.T) {
	ts := newTestServer(t, newTestVerifier("codepipeline"))
	req := newJSONRequest(t, ts.URL, codePipelineBody)
	sign(t, req, tempCreds, sha256Hex(codePipelineBody), "codepipeline", testNow)
	if req.Header.Get("X-Amz-Security-Token") != tempToken {
		t.Fatal("the SDK did not send the session token")
	}
	o := ts.do(t, req)
	res := mustVerify(t, o.res, o.err)
	if res.Credential.SessionToken != tempToken {
		t.Errorf("Credential = %+v", res.Credential)
	}
	if !slices.Contains(res.SignedHeaders, "x-amz-security-token") {
		t.Errorf("token not signed: %q", res.SignedHeaders)
	}
}

func TestOraclePresigned(t *testing.T) {
	ts := newTestServer(t, newTestVerifier("s3"))

	t.Run("GET", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodGet, ts.URL+"/bucket/report (final).pdf?response-content-type=application/pdf&X-Amz-Expires=300", nil)
		if err != nil {
			t.Fatal(err)
		}
		preq := presign(t, req, nil, longTermCreds, UnsignedPayload, "s3", testNow.Add(-4*time.Minute), s3Options)
		o := ts.do(t, preq)
		res := mustVerify(t, o.res, o.err)
		if !res.Presigned || res.PayloadHash != UnsignedPayload {
			t.Errorf("Presigned = %v, PayloadHash = %q", res.Presigned, res.PayloadHash)
		}
		if !strings.Contains(preq.URL.RawQuery, "X-Amz-Signature="+res.SeedSignature) {
			t.Errorf("SeedSignature %q not in %q", res.SeedSignature, preq.URL.RawQuery)
		}
	})

	t.Run("GET with session token", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodGet, ts.URL+"/bucket/key?X-Amz-Expires=60", nil)
		if err != nil {
			t.Fatal(err)
		}
		preq := presign(t, req, nil, tempCreds, UnsignedPayload, "s3", testNow, s3Options)
		if preq.URL.Query().Get("X-Amz-Security-Token") != tempToken {
			t.Fatalf("no token in %s", preq.URL)
		}
		o := ts.do(t, preq)
		mustVerify(t, o.res, o.err)
	})

	t.Run("PUT with signed header and payload hash", func(t *testing.T) {
		body := []byte("hello, presigned world")
		hash := sha256Hex(body)
		req, err := http.NewRequest(http.MethodPut, ts.URL+"/bucket/hello.txt?X-Amz-Expires=900&X-Amz-Content-Sha256="+hash, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "text/plain")
		req.Header.Set("X-Amz-Meta-Owner", "alice")
		preq := presign(t, req, body, longTermCreds, hash, "s3", testNow, s3Options)
		o := ts.do(t, preq)
		res := mustVerify(t, o.res, o.err)
		if res.PayloadHash != hash {
			t.Errorf("PayloadHash = %q, want %q", res.PayloadHash, hash)
		}
		if !slices.Contains(res.SignedHeaders, "content-type") || !slices.Contains(res.SignedHeaders, "x-amz-meta-owner") {
			t.Errorf("SignedHeaders = %q", res.SignedHeaders)
		}

		// The same URL with another body.
		preq = presign(t, req, nil, longTermCreds, hash, "s3", testNow, s3Options)
		preq.Body, preq.ContentLength = io.NopCloser(strings.NewReader("jello, presigned world")), int64(len(body))
		o = ts.do(t, preq)
		wantKind(t, o.err, SignatureMismatch)
	})

	t.Run("codepipeline", func(t *testing.T) {
		ts := newTestServer(t, newTestVerifier("codepipeline"))
		req, err := http.NewRequest(http.MethodGet, ts.URL+"/?Action=ListPipelines&X-Amz-Expires=60", nil)
		if err != nil {
			t.Fatal(err)
		}
		preq := presign(t, req, nil, longTermCreds, UnsignedPayload, "codepipeline", testNow)
		o := ts.do(t, preq)
		mustVerify(t, o.res, o.err)
	})
}

// Known answers from AWS's own documentation and test suite, independent of
// the SDK.
func TestKnownAnswers(t *testing.T) {
	t.Run("signing key", func(t *testing.T) {
		got := hex.EncodeToString(deriveSigningKey(testSecret, "20120215", "us-east-1", "iam"))
		if want := "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"; got != want {
			t.Errorf("signing key = %s, want %s", got, want)
		}
	})

	// S3's documented examples use another secret and key id.
	s3Verifier := func(now time.Time) *Verifier {
		return &Verifier{
			Region: "us-east-1", Service: "s3",
			Now: func() time.Time { return now },
			Lookup: func(_ context.Context, id string) (Credential, error) {
				if id != "AKIAIOSFODNN7EXAMPLE" {
					return Credential{}, ErrUnknownAccessKey
				}
				return Credential{AccessKeyID: id, SecretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}, nil
			},
		}
	}

	t.Run("S3 GET object with Authorization header", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodGet, "/test.txt", nil)
		r.Host = "examplebucket.s3.amazonaws.com"
		r.Header.Set("Range", "bytes=0-9")
		r.Header.Set("X-Amz-Content-Sha256", sha256Hex(nil))
		r.Header.Set("X-Amz-Date", "20130524T000000Z")
		r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
		res, err := s3Verifier(time.Date(2013, 5, 24, 0, 5, 0, 0, time.UTC)).Verify(t.Context(), r, nil)
		mustVerify(t, res, err)
	})

	t.Run("S3 presigned GET object", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodGet, "/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404", nil)
		r.Host = "examplebucket.s3.amazonaws.com"
		res, err := s3Verifier(time.Date(2013, 5, 24, 15, 0, 0, 0, time.UTC)).Verify(t.Context(), r, nil)
		mustVerify(t, res, err)
		_, err = s3Verifier(time.Date(2013, 5, 25, 0, 0, 1, 0, time.UTC)).Verify(t.Context(), r, nil)
		wantKind(t, err, RequestExpired)
	})

	// From the 2011 test suite, which dates requests with the Date header.
	t.Run("get-vanilla with Date header", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Host = "host.foo.com"
		r.Header.Set("Date", "Mon, 09 Sep 2011 23:36:00 GMT")
		r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20110909/us-east-1/host/aws4_request, SignedHeaders=date;host, Signature=b27ccfbfa7df52a200ff74193ca6e32d4b48b8856fab7ebf1c595d0670a7e470")
		v := &Verifier{
			Region: "us-east-1", Service: "host", Lookup: testLookup,
			Now: func() time.Time { return time.Date(2011, 9, 9, 23, 40, 0, 0, time.UTC) },
		}
		res, err := v.Verify(t.Context(), r, nil)
		mustVerify(t, res, err)
		if want := time.Date(2011, 9, 9, 23, 36, 0, 0, time.UTC); !res.Date.Equal(want) {
			t.Errorf("Date = %v, want %v", res.Date, want)
		}
		mac := hmac.New(sha256.New, res.SigningKey)
		mac.Write([]byte("AWS4-HMAC-SHA256\n20110909T233600Z\n20110909/us-east-1/host/aws4_request\n366b91fb121d72a00f46bbe8d395f53a102b06dfb7e79636515208ed3fa606b1"))
		if got := hex.EncodeToString(mac.Sum(nil)); got != res.SeedSignature {
			t.Errorf("SigningKey does not sign the documented string to sign: %s != %s", got, res.SeedSignature)
		}
	})
}
