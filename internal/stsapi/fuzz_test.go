package stsapi

import (
	"context"
	"encoding/xml"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pipelined/pipelined/internal/sigv4"
)

// FuzzServe feeds arbitrary bodies, content types and Authorization
// headers to the router and the handler: no panic, no 500, and every
// answer is well-formed STS XML.
func FuzzServe(f *testing.F) {
	for _, s := range [][3]string{
		{"Action=GetCallerIdentity&Version=2011-06-15", formType, ""},
		{"Action=AssumeRole&Version=2011-06-15", formType + "; charset=utf-8", "AWS4-HMAC-SHA256 Credential=AKID/20250101/us-east-1/sts/aws4_request, SignedHeaders=host;x-amz-date, Signature=00"},
		{"%zz", formType, "AWS4-HMAC-SHA256 Credential=a/b/c/sts/aws4_request"},
		{"", "", "Credential=////"},
		{"Action=" + strings.Repeat("x", 300), "application/json", "AWS4-HMAC-SHA256 Credential=AKID/20250101/eu-west-1/sts/aws4_request, SignedHeaders=host, Signature=" + strings.Repeat("a", 64)},
	} {
		f.Add(s[0], s[1], s[2])
	}
	h := &Handler{
		Verifier: &sigv4.Verifier{Region: "us-east-1", Service: SigningService, Lookup: func(context.Context, string) (sigv4.Credential, error) {
			return sigv4.Credential{AccessKeyID: "AKID", SecretAccessKey: "secret", Principal: "arn:aws:iam::123456789012:root"}, nil
		}},
		AccountID: "123456789012",
	}
	f.Fuzz(func(t *testing.T, body, contentType, authz string) {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		r.Header.Set("Content-Type", contentType)
		if authz != "" {
			r.Header.Set("Authorization", authz)
			r.Header.Set("X-Amz-Date", "20250101T000000Z")
		}
		_ = Matches(r)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
		var e errorResponse
		if w.Code != 200 {
			if err := xml.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error.Code == "" {
				t.Fatalf("not an STS error: %v %s", err, w.Body)
			}
		}
	})
}

func TestMatches(t *testing.T) {
	cases := []struct {
		method, ctype, target, authz string
		want                         bool
	}{
		{"POST", "application/x-www-form-urlencoded; charset=utf-8", "", "", true},
		{"POST", "", "", "AWS4-HMAC-SHA256 Credential=AKID/20250101/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=x", true},
		{"POST", "application/x-amz-json-1.1", "CodePipeline_20150709.ListPipelines", "AWS4-HMAC-SHA256 Credential=AKID/20250101/us-east-1/codepipeline/aws4_request", false},
		{"POST", "application/x-www-form-urlencoded", "CodePipeline_20150709.ListPipelines", "", false},
		{"POST", "application/x-amz-json-1.1", "", "AWS4-HMAC-SHA256 Credential=AKID/20250101/us-east-1/codepipeline/aws4_request", false},
		{"GET", "application/x-www-form-urlencoded", "", "", false},
	}
	for _, c := range cases {
		r := httptest.NewRequest(c.method, "/", nil)
		r.Header.Set("Content-Type", c.ctype)
		if c.target != "" {
			r.Header.Set("X-Amz-Target", c.target)
		}
		if c.authz != "" {
			r.Header.Set("Authorization", c.authz)
		}
		if got := Matches(r); got != c.want {
			t.Errorf("%+v: Matches = %v", c, got)
		}
	}
}
