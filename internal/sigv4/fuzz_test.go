package sigv4

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func FuzzParseAuthorization(f *testing.F) {
	const (
		cred = "Credential=AKIDEXAMPLE/20250314/us-east-1/codepipeline/aws4_request"
		sig  = "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
	)
	for _, s := range []string{
		"AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=host;x-amz-date, " + sig,
		"AWS4-HMAC-SHA256 " + cred + ",SignedHeaders=Host;X-Amz-Date;content-type," + sig,
		"  AWS4-HMAC-SHA256   " + sig + " , " + cred + " ,SignedHeaders = x-amz-date;host ,",
		"AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=host;host, " + sig,
		"AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=x-amz-date, " + sig,
		"AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=host;;, " + sig,
		"AWS4-HMAC-SHA256 Credential=a=b/20250314/r/s/t, SignedHeaders=host, " + sig,
		"AWS4-HMAC-SHA256 Credential=/20250314/r/s/t, SignedHeaders=host, " + sig,
		"AWS4-HMAC-SHA256 Credential=AKID/2025031/r/s/t, SignedHeaders=host, " + sig,
		"AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=host, Signature=" + strings.Repeat("Ab", 32),
		"AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=host, Signature=" + strings.Repeat("é", 32),
		"AWS4-HMAC-SHA256 Credential=Ω/20250314/ü/s/aws4_request, SignedHeaders=host, " + sig,
		"AWS4-HMAC-SHA256 =,=,=",
		"AWS4-HMAC-SHA256 ,,,,",
		"AWS4-HMAC-SHA256",
		"AWS4-HMAC-SHA256 ",
		"AWS4-ECDSA-P256-SHA256 " + cred,
		"Bearer token",
		"",
		"\x00\xff",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		a, e := parseAuthorization(h)
		if e != nil {
			if e.Kind != IncompleteSignature || e.Message == "" {
				t.Fatalf("parse error %v, want an IncompleteSignature with a message", e)
			}
			return
		}
		switch {
		case a.accessKeyID == "" || strings.Contains(a.accessKeyID, "/"):
			t.Fatalf("access key id %q", a.accessKeyID)
		case a.scope != a.date+"/"+a.region+"/"+a.service+"/"+a.terminal:
			t.Fatalf("scope %q is not its parts %q", a.scope, []string{a.date, a.region, a.service, a.terminal})
		case len(a.date) != 8 || a.region == "" || a.service == "" || a.terminal == "":
			t.Fatalf("scope parts %q", []string{a.date, a.region, a.service, a.terminal})
		case !slices.IsSorted(a.signedHeaders) || len(slices.Compact(slices.Clone(a.signedHeaders))) != len(a.signedHeaders):
			t.Fatalf("signed headers not sorted and unique: %q", a.signedHeaders)
		case !slices.Contains(a.signedHeaders, "host"):
			t.Fatalf("host not among signed headers %q", a.signedHeaders)
		case a.signedHeadersLine != strings.Join(a.signedHeaders, ";"):
			t.Fatalf("signed headers line %q != %q", a.signedHeadersLine, a.signedHeaders)
		case len(a.signatureHex) != 64 || strings.ToLower(a.signatureHex) != a.signatureHex:
			t.Fatalf("signature %q", a.signatureHex)
		}
		for _, n := range a.signedHeaders {
			if !isToken(n) || strings.ToLower(n) != n {
				t.Fatalf("signed header name %q", n)
			}
		}
		// What was understood, written out canonically, is understood the
		// same way again.
		canon := algorithm + " Credential=" + a.accessKeyID + "/" + a.scope +
			", SignedHeaders=" + a.signedHeadersLine + ", Signature=" + a.signatureHex
		b, e := parseAuthorization(canon)
		if e != nil {
			t.Fatalf("reparsing %q: %v", canon, e)
		}
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("reparsing %q:\n got %+v\nwant %+v", canon, b, a)
		}
	})
}

// fuzzRequest builds the request FuzzVerify verifies: a POST to
// pipelined.test whose request target, Authorization, X-Amz-Date and body
// are given.
func fuzzRequest(target, authz, amzDate string, body []byte) *http.Request {
	u, err := url.ParseRequestURI(target)
	if err != nil {
		u = &url.URL{Path: "/"} // Go's server would refuse it; Verify must still cope
	}
	r := &http.Request{
		Method:        http.MethodPost,
		URL:           u,
		RequestURI:    target,
		Host:          "pipelined.test",
		Header:        http.Header{"Content-Type": {"application/x-amz-json-1.1"}},
		ContentLength: int64(len(body)),
	}
	if authz != "" {
		r.Header.Set("Authorization", authz)
	}
	if amzDate != "" {
		r.Header.Set("X-Amz-Date", amzDate)
	}
	return r
}

type fuzzSeed struct {
	target, authz, amzDate string
	body                   []byte
}

// validFuzzSeeds returns inputs to fuzzRequest that verify: signed with the
// SDK, by header and presigned.
func validFuzzSeeds(t testing.TB) []fuzzSeed {
	var seeds []fuzzSeed
	for _, target := range []string{"/", "/a%20b/c?x=1&y=%2F&z", "/?list-type=2&prefix=a+b"} {
		req, err := http.NewRequest(http.MethodPost, "http://pipelined.test"+target, bytes.NewReader(codePipelineBody))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		sign(t, req, longTermCreds, sha256Hex(codePipelineBody), "codepipeline", testNow)
		seeds = append(seeds, fuzzSeed{req.URL.RequestURI(), req.Header.Get("Authorization"), req.Header.Get("X-Amz-Date"), codePipelineBody})
	}
	req, err := http.NewRequest(http.MethodPost, "http://pipelined.test/things?X-Amz-Expires=60", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	preq := presign(t, req, nil, tempCreds, UnsignedPayload, "codepipeline", testNow)
	seeds = append(seeds, fuzzSeed{preq.URL.RequestURI(), "", "", nil})
	return seeds
}

func TestValidFuzzSeedsVerify(t *testing.T) {
	v := newTestVerifier("codepipeline")
	for _, s := range validFuzzSeeds(t) {
		must(t)(v.Verify(t.Context(), fuzzRequest(s.target, s.authz, s.amzDate, s.body), s.body))
	}
}

func FuzzVerify(f *testing.F) {
	for _, s := range validFuzzSeeds(f) {
		f.Add(s.target, s.authz, s.amzDate, s.body)
	}
	valid := validFuzzSeeds(f)[0]
	f.Add("/", strings.Replace(valid.authz, "Credential=", "Credential= ", 1), valid.amzDate, valid.body)
	f.Add("*", valid.authz, valid.amzDate, valid.body)
	f.Add("http://pipelined.test/x?y", valid.authz, valid.amzDate, []byte(nil))
	f.Add("/%zz?%zz", valid.authz, "20250314T15092", []byte("{}"))
	f.Add("/?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20250314%2Fus-east-1%2Fcodepipeline%2Faws4_request&X-Amz-Date=20250314T150926Z&X-Amz-Expires=9&X-Amz-SignedHeaders=host&X-Amz-Signature=00", "", "", []byte(nil))
	f.Add("//", "AWS4-HMAC-SHA256 Credential=AKIDBROKENLOOKUP/20250314/us-east-1/codepipeline/aws4_request, SignedHeaders=host, Signature="+strings.Repeat("0", 64), "20250314T150926Z", []byte(nil))
	f.Add("", "", "", []byte(nil))

	v := newTestVerifier("codepipeline")
	f.Fuzz(func(t *testing.T, target, authz, amzDate string, body []byte) {
		r := fuzzRequest(target, authz, amzDate, body)
		res, err := v.Verify(context.Background(), r, body)
		if err == nil {
			if res == nil || res.Scope == "" || len(res.SigningKey) != 32 || res.Credential.SecretAccessKey == "" {
				t.Fatalf("verified, but result %+v", res)
			}
			return
		}
		var e *Error
		if !errors.As(err, &e) && !errors.Is(err, errDB) {
			t.Fatalf("error %v (%T) is neither an *Error nor the Lookup's", err, err)
		}
		if e != nil && (e.Kind < MissingAuth || e.Kind > ExpiredToken || e.Message == "") {
			t.Fatalf("error %#v", e)
		}
	})
}
