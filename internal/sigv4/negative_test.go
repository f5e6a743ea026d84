package sigv4

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

const testBase = "https://codepipeline.us-east-1.amazonaws.com"

// signedJSON returns a CodePipeline call signed by the SDK, as Go's server
// hands it over, with its body. edit, when non-nil, changes the request
// before it is signed.
func signedJSON(t testing.TB, creds aws.Credentials, at time.Time, edit func(*http.Request)) (*http.Request, []byte) {
	t.Helper()
	req := newJSONRequest(t, testBase, codePipelineBody)
	if edit != nil {
		edit(req)
	}
	sign(t, req, creds, sha256Hex(codePipelineBody), "codepipeline", at)
	return overWire(t, req)
}

func TestBaselineVerifies(t *testing.T) {
	r, body := signedJSON(t, longTermCreds, testNow, nil)
	res, err := newTestVerifier("codepipeline").Verify(t.Context(), r, body)
	mustVerify(t, res, err)
}

func TestMissingAuth(t *testing.T) {
	r, body := signedJSON(t, longTermCreds, testNow, nil)
	r.Header.Del("Authorization")
	_, err := newTestVerifier("codepipeline").Verify(t.Context(), r, body)
	e := wantKind(t, err, MissingAuth)
	if e.Message != "Missing Authentication Token" {
		t.Errorf("message = %q", e.Message)
	}

	// A query that is not presigned, even a malformed one, is no auth.
	r.URL.RawQuery = "a=%zz&b=1"
	_, err = newTestVerifier("codepipeline").Verify(t.Context(), r, body)
	wantKind(t, err, MissingAuth)
}

func TestMalformedAuthorization(t *testing.T) {
	r, body := signedJSON(t, longTermCreds, testNow, nil)
	good := r.Header.Get("Authorization")
	a, e := parseAuthorization(good)
	if e != nil {
		t.Fatal(e)
	}
	cred := "Credential=" + a.accessKeyID + "/" + a.scope
	signed := "SignedHeaders=" + a.signedHeadersLine
	sig := "Signature=" + a.signatureHex

	cases := map[string]string{
		"empty":                     "",
		"algorithm only":            "AWS4-HMAC-SHA256",
		"other scheme":              "Bearer abc.def.ghi",
		"sigv2":                     "AWS " + testAKID + ":frJIUN8DYpKDtOLCwo//yllqDzg=",
		"sigv4a":                    "AWS4-ECDSA-P256-SHA256 " + cred + ", " + signed + ", " + sig,
		"lower-case algorithm":      "aws4-hmac-sha256 " + cred + ", " + signed + ", " + sig,
		"no Credential":             "AWS4-HMAC-SHA256 " + signed + ", " + sig,
		"no SignedHeaders":          "AWS4-HMAC-SHA256 " + cred + ", " + sig,
		"no Signature":              "AWS4-HMAC-SHA256 " + cred + ", " + signed,
		"Credential twice":          "AWS4-HMAC-SHA256 " + cred + ", " + cred + ", " + signed + ", " + sig,
		"unknown part":              "AWS4-HMAC-SHA256 " + cred + ", " + signed + ", " + sig + ", Foo=bar",
		"part without equals":       "AWS4-HMAC-SHA256 " + cred + ", " + signed + ", " + sig + ", junk",
		"four-part credential":      "AWS4-HMAC-SHA256 Credential=" + testAKID + "/20250314/us-east-1/codepipeline, " + signed + ", " + sig,
		"six-part credential":       "AWS4-HMAC-SHA256 " + cred + "/extra, " + signed + ", " + sig,
		"empty access key":          "AWS4-HMAC-SHA256 Credential=/" + a.scope + ", " + signed + ", " + sig,
		"empty region":              "AWS4-HMAC-SHA256 Credential=" + testAKID + "/20250314//codepipeline/aws4_request, " + signed + ", " + sig,
		"bad scope date":            "AWS4-HMAC-SHA256 Credential=" + testAKID + "/2025-03-14/us-east-1/codepipeline/aws4_request, " + signed + ", " + sig,
		"impossible scope date":     "AWS4-HMAC-SHA256 Credential=" + testAKID + "/20250231/us-east-1/codepipeline/aws4_request, " + signed + ", " + sig,
		"signature not hex":         "AWS4-HMAC-SHA256 " + cred + ", " + signed + ", Signature=" + strings.Repeat("z", 64),
		"signature short":           "AWS4-HMAC-SHA256 " + cred + ", " + signed + ", " + sig[:len(sig)-2],
		"signature empty":           "AWS4-HMAC-SHA256 " + cred + ", " + signed + ", Signature=",
		"host not signed":           "AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=content-type;x-amz-date, " + sig,
		"empty signed header name":  "AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=host;;x-amz-date, " + sig,
		"signed header twice":       "AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=host;x-amz-date;Host, " + sig,
		"newline in signed headers": "AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=host;x-amz-date\nx, " + sig,
		"colon in signed headers":   "AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=host;x:y, " + sig,
	}
	v := newTestVerifier("codepipeline")
	for name, h := range cases {
		t.Run(name, func(t *testing.T) {
			r := r.Clone(t.Context())
			r.Header["Authorization"] = []string{h}
			_, err := v.Verify(t.Context(), r, body)
			wantKind(t, err, IncompleteSignature)
		})
	}

	// What must be tolerated: spacing and order.
	tolerated := map[string]string{
		"no spaces":      "AWS4-HMAC-SHA256 " + cred + "," + signed + "," + sig,
		"extra spaces":   "  AWS4-HMAC-SHA256    " + cred + " ,   " + signed + " ,\t" + sig + "  ",
		"other order":    "AWS4-HMAC-SHA256 " + sig + ", " + cred + ", " + signed,
		"spaces at =":    "AWS4-HMAC-SHA256 Credential = " + a.accessKeyID + "/" + a.scope + ", " + signed + ", " + sig,
		"trailing ,":     "AWS4-HMAC-SHA256 " + cred + ", " + signed + ", " + sig + ",",
		"upper-case hex": "AWS4-HMAC-SHA256 " + cred + ", " + signed + ", Signature=" + strings.ToUpper(a.signatureHex),
	}
	for name, h := range tolerated {
		t.Run(name, func(t *testing.T) {
			r := r.Clone(t.Context())
			r.Header["Authorization"] = []string{h}
			res, err := v.Verify(t.Context(), r, body)
			mustVerify(t, res, err)
		})
	}

	t.Run("two Authorization headers", func(t *testing.T) {
		r := r.Clone(t.Context())
		r.Header["Authorization"] = []string{good, good}
		_, err := v.Verify(t.Context(), r, body)
		wantKind(t, err, IncompleteSignature)
	})
	t.Run("header and presigned query", func(t *testing.T) {
		r := r.Clone(t.Context())
		r.URL.RawQuery = "X-Amz-Signature=" + a.signatureHex
		_, err := v.Verify(t.Context(), r, body)
		wantKind(t, err, IncompleteSignature)
	})
	t.Run("no date", func(t *testing.T) {
		r := r.Clone(t.Context())
		r.Header.Del("X-Amz-Date")
		_, err := v.Verify(t.Context(), r, body)
		e := wantKind(t, err, IncompleteSignature)
		if e.Message != msgMissingDate {
			t.Errorf("message = %q", e.Message)
		}
	})
	t.Run("malformed date", func(t *testing.T) {
		r := r.Clone(t.Context())
		r.Header.Set("X-Amz-Date", "2025-03-14T15:09:26Z")
		_, err := v.Verify(t.Context(), r, body)
		wantKind(t, err, IncompleteSignature)
	})
	t.Run("two dates", func(t *testing.T) {
		r := r.Clone(t.Context())
		r.Header.Add("X-Amz-Date", "20250314T150926Z")
		_, err := v.Verify(t.Context(), r, body)
		wantKind(t, err, IncompleteSignature)
	})
	t.Run("malformed query", func(t *testing.T) {
		r := r.Clone(t.Context())
		r.URL.RawQuery = "a=%zz"
		_, err := v.Verify(t.Context(), r, body)
		wantKind(t, err, IncompleteSignature)
	})
}

func TestUnknownAccessKey(t *testing.T) {
	creds := longTermCreds
	creds.AccessKeyID = "AKIDNOBODYKNOWS"
	r, body := signedJSON(t, creds, testNow, nil)
	_, err := newTestVerifier("codepipeline").Verify(t.Context(), r, body)
	wantKind(t, err, UnknownAccessKey)
}

func TestLookupFailureIsNotTheClients(t *testing.T) {
	creds := longTermCreds
	creds.AccessKeyID = brokenAKID
	r, body := signedJSON(t, creds, testNow, nil)
	_, err := newTestVerifier("codepipeline").Verify(t.Context(), r, body)
	var e *Error
	if errors.As(err, &e) || !errors.Is(err, errDB) {
		t.Fatalf("got %v, want the Lookup's own error, not an *Error", err)
	}

	v := newTestVerifier("codepipeline")
	v.Lookup = nil
	if _, err := v.Verify(t.Context(), r, body); err == nil || errors.As(err, &e) {
		t.Fatalf("Verifier without Lookup: got %v", err)
	}
	if _, err := newTestVerifier("codepipeline").Verify(t.Context(), nil, nil); err == nil {
		t.Fatal("nil request verified")
	}
}

func TestWrongSecret(t *testing.T) {
	creds := longTermCreds
	creds.SecretAccessKey = "not-the-secret"
	r, body := signedJSON(t, creds, testNow, nil)
	_, err := newTestVerifier("codepipeline").Verify(t.Context(), r, body)
	e := wantKind(t, err, SignatureMismatch)
	if e.Message != msgMismatch {
		t.Errorf("message = %q", e.Message)
	}
	if !strings.HasPrefix(e.CanonicalRequest, "POST\n/\n\n") || !strings.HasPrefix(e.StringToSign, "AWS4-HMAC-SHA256\n20250314T150926Z\n") {
		t.Errorf("debug fields not set: %q / %q", e.CanonicalRequest, e.StringToSign)
	}
	// The expected signature is a secret of sorts: a forger would use it.
	good, _ := signedJSON(t, longTermCreds, testNow, nil)
	a, _ := parseAuthorization(good.Header.Get("Authorization"))
	if strings.Contains(e.Error(), a.signatureHex) || strings.Contains(e.CanonicalRequest, a.signatureHex) || strings.Contains(e.StringToSign, a.signatureHex) {
		t.Error("the error gives away the expected signature")
	}
}

func TestWrongScope(t *testing.T) {
	t.Run("region", func(t *testing.T) {
		req := newJSONRequest(t, testBase, codePipelineBody)
		if err := v4.NewSigner().SignHTTP(t.Context(), longTermCreds, req, sha256Hex(codePipelineBody), "codepipeline", "eu-west-1", testNow); err != nil {
			t.Fatal(err)
		}
		r, body := overWire(t, req)
		_, err := newTestVerifier("codepipeline").Verify(t.Context(), r, body)
		e := wantKind(t, err, WrongScope)
		if e.Message != "Credential should be scoped to a valid region: this server expects 'us-east-1', not 'eu-west-1'. Set the client's region to 'us-east-1' (AWS_REGION, AWS_DEFAULT_REGION or --region)." {
			t.Errorf("message = %q", e.Message)
		}
	})
	t.Run("service", func(t *testing.T) {
		req := newJSONRequest(t, testBase, codePipelineBody)
		sign(t, req, longTermCreds, sha256Hex(codePipelineBody), "codebuild", testNow)
		r, body := overWire(t, req)
		_, err := newTestVerifier("codepipeline").Verify(t.Context(), r, body)
		e := wantKind(t, err, WrongScope)
		if e.Message != "Credential should be scoped to correct service: 'codepipeline'." {
			t.Errorf("message = %q", e.Message)
		}
	})
	r, body := signedJSON(t, longTermCreds, testNow, nil)
	authz := r.Header.Get("Authorization")
	for name, edit := range map[string][2]string{
		"terminator": {"/aws4_request", "/aws5_request"},
		"date":       {"/20250314/", "/20250313/"},
	} {
		t.Run(name, func(t *testing.T) {
			r := r.Clone(t.Context())
			r.Header.Set("Authorization", strings.Replace(authz, edit[0], edit[1], 1))
			_, err := newTestVerifier("codepipeline").Verify(t.Context(), r, body)
			wantKind(t, err, WrongScope)
		})
	}
}

func TestClockSkew(t *testing.T) {
	v := newTestVerifier("codepipeline")
	for _, tc := range []struct {
		offset time.Duration
		ok     bool
	}{
		{-16 * time.Minute, false},
		{-14 * time.Minute, true},
		{14 * time.Minute, true},
		{16 * time.Minute, false},
		{-24 * time.Hour, false},
	} {
		r, body := signedJSON(t, longTermCreds, testNow.Add(tc.offset), nil)
		res, err := v.Verify(t.Context(), r, body)
		if tc.ok {
			mustVerify(t, res, err)
			continue
		}
		e := wantKind(t, err, RequestExpired)
		if tc.offset == -16*time.Minute {
			want := "Signature expired: 20250314T145326Z is now earlier than 20250314T145426Z (20250314T150926Z - 15 min.)"
			if e.Message != want {
				t.Errorf("message = %q\nwant      %q", e.Message, want)
			}
		}
		if tc.offset > 0 && !strings.HasPrefix(e.Message, "Signature not yet current: ") {
			t.Errorf("message = %q", e.Message)
		}
	}

	// MaxSkew is honored.
	v.MaxSkew = time.Minute
	r, body := signedJSON(t, longTermCreds, testNow.Add(-2*time.Minute), nil)
	_, err := v.Verify(t.Context(), r, body)
	wantKind(t, err, RequestExpired)
}

func TestTampering(t *testing.T) {
	v := newTestVerifier("codepipeline")
	cases := map[string]func(r *http.Request, body []byte) []byte{
		"body": func(r *http.Request, body []byte) []byte {
			return []byte(strings.Replace(string(body), "my-pipeline", "ur-pipeline", 1))
		},
		"signed header": func(r *http.Request, body []byte) []byte {
			r.Header.Set("X-Amz-Target", "CodePipeline_20150709.DeletePipeline")
			return body
		},
		"signed header added a value": func(r *http.Request, body []byte) []byte {
			r.Header.Add("Content-Type", "text/plain")
			return body
		},
		"host": func(r *http.Request, body []byte) []byte {
			r.Host = "codepipeline.eu-west-1.amazonaws.com"
			return body
		},
		"method": func(r *http.Request, body []byte) []byte {
			r.Method = http.MethodPut
			return body
		},
		"path": func(r *http.Request, body []byte) []byte {
			r.RequestURI, r.URL.Path = "/other", "/other"
			return body
		},
		"query added": func(r *http.Request, body []byte) []byte {
			r.URL.RawQuery = "force=true"
			return body
		},
		"date": func(r *http.Request, body []byte) []byte {
			r.Header.Set("X-Amz-Date", "20250314T150927Z")
			return body
		},
		"session token": func(r *http.Request, body []byte) []byte {
			r.Header.Set("X-Amz-Security-Token", tempToken+"x")
			return body
		},
		"signature": func(r *http.Request, body []byte) []byte {
			h := r.Header.Get("Authorization")
			last := h[len(h)-1]
			if last == '0' {
				last = '1'
			} else {
				last = '0'
			}
			r.Header.Set("Authorization", h[:len(h)-1]+string(last))
			return body
		},
	}
	for name, tamper := range cases {
		t.Run(name, func(t *testing.T) {
			r, body := signedJSON(t, tempCreds, testNow, nil)
			body = tamper(r, body)
			_, err := v.Verify(t.Context(), r, body)
			e := wantKind(t, err, SignatureMismatch)
			if strings.Contains(e.CanonicalRequest, tempToken) {
				t.Errorf("the session token is in the debug canonical request:\n%s", e.CanonicalRequest)
			}
		})
	}

	t.Run("query", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodGet, testBase+"/things?limit=10&next=abc", nil)
		if err != nil {
			t.Fatal(err)
		}
		sign(t, req, longTermCreds, sha256Hex(nil), "codepipeline", testNow)
		r, _ := overWire(t, req)
		must(t)(v.Verify(t.Context(), r, nil))
		for _, q := range []string{"limit=11&next=abc", "limit=10", "limit=10&next=abc&next=abd", "limit=10&next=abc&x"} {
			r := r.Clone(t.Context())
			r.URL.RawQuery = q
			_, err := v.Verify(t.Context(), r, nil)
			wantKind(t, err, SignatureMismatch)
		}
	})

	t.Run("body against declared hash", func(t *testing.T) {
		r, body := signedJSON(t, longTermCreds, testNow, func(r *http.Request) {
			r.Header.Set("X-Amz-Content-Sha256", sha256Hex(codePipelineBody))
		})
		must(t)(v.Verify(t.Context(), r, body))
		_, err := v.Verify(t.Context(), r, []byte(`{"name":"other"}`))
		e := wantKind(t, err, SignatureMismatch)
		if e.Message != msgPayloadMismatch {
			t.Errorf("message = %q", e.Message)
		}
	})

	t.Run("declared hash", func(t *testing.T) {
		r, body := signedJSON(t, longTermCreds, testNow, func(r *http.Request) {
			r.Header.Set("X-Amz-Content-Sha256", UnsignedPayload)
		})
		r.Header.Set("X-Amz-Content-Sha256", sha256Hex(body))
		_, err := v.Verify(t.Context(), r, body)
		wantKind(t, err, SignatureMismatch)
	})
}

func TestPayloadHashRules(t *testing.T) {
	v := newTestVerifier("codepipeline")
	t.Run("no body, no header", func(t *testing.T) {
		r, _ := signedJSON(t, longTermCreds, testNow, nil)
		_, err := v.Verify(t.Context(), r, nil)
		e := wantKind(t, err, IncompleteSignature)
		if e.Message != msgMissingPayload {
			t.Errorf("message = %q", e.Message)
		}
	})
	t.Run("no body because none was sent", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodGet, testBase+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		sign(t, req, longTermCreds, sha256Hex(nil), "codepipeline", testNow)
		r, _ := overWire(t, req)
		must(t)(v.Verify(t.Context(), r, nil))
	})
	for _, bad := range []string{"", "STREAMING-SOMETHING-ELSE", "unsigned-payload", strings.Repeat("g", 64), sha256Hex(nil)[:63]} {
		t.Run("invalid "+bad, func(t *testing.T) {
			r, body := signedJSON(t, longTermCreds, testNow, func(r *http.Request) {
				r.Header.Set("X-Amz-Content-Sha256", bad)
			})
			_, err := v.Verify(t.Context(), r, body)
			wantKind(t, err, IncompleteSignature)
		})
	}
}

func TestSessionTokens(t *testing.T) {
	v := newTestVerifier("codepipeline")
	t.Run("token of another session", func(t *testing.T) {
		creds := tempCreds
		creds.SessionToken = "an-old-token-for-the-same-key"
		r, body := signedJSON(t, creds, testNow, nil)
		_, err := v.Verify(t.Context(), r, body)
		e := wantKind(t, err, InvalidToken)
		if e.Message != msgInvalidToken {
			t.Errorf("message = %q", e.Message)
		}
	})
	t.Run("no token for a temporary key", func(t *testing.T) {
		creds := tempCreds
		creds.SessionToken = ""
		r, body := signedJSON(t, creds, testNow, nil)
		_, err := v.Verify(t.Context(), r, body)
		wantKind(t, err, InvalidToken)
	})
	t.Run("token for a long-term key", func(t *testing.T) {
		creds := longTermCreds
		creds.SessionToken = "unexpected"
		r, body := signedJSON(t, creds, testNow, nil)
		_, err := v.Verify(t.Context(), r, body)
		wantKind(t, err, InvalidToken)
	})
	t.Run("token in header and query, different", func(t *testing.T) {
		r, body := signedJSON(t, tempCreds, testNow, nil)
		r.URL.RawQuery = "X-Amz-Security-Token=" + url.QueryEscape(tempToken+"2")
		_, err := v.Verify(t.Context(), r, body)
		wantKind(t, err, IncompleteSignature)
	})
	t.Run("expired credential", func(t *testing.T) {
		creds := longTermCreds
		creds.AccessKeyID = expiredAKID
		r, body := signedJSON(t, creds, testNow, nil)
		_, err := v.Verify(t.Context(), r, body)
		wantKind(t, err, ExpiredToken)
	})
	t.Run("the secret is checked before the token", func(t *testing.T) {
		creds := tempCreds
		creds.SecretAccessKey, creds.SessionToken = "guess", "guess"
		r, body := signedJSON(t, creds, testNow, nil)
		_, err := v.Verify(t.Context(), r, body)
		wantKind(t, err, SignatureMismatch)
	})
}

func TestPresignedNegative(t *testing.T) {
	v := newTestVerifier("s3")
	presigned := func(t *testing.T, expires string, at time.Time) *http.Request {
		req, err := http.NewRequest(http.MethodGet, "https://bucket.s3.amazonaws.com/key.txt", nil)
		if err != nil {
			t.Fatal(err)
		}
		if expires != "" {
			req.URL.RawQuery = "X-Amz-Expires=" + url.QueryEscape(expires)
		}
		preq := presign(t, req, nil, tempCreds, UnsignedPayload, "s3", at, s3Options)
		r, _ := overWire(t, preq)
		return r
	}

	t.Run("expired", func(t *testing.T) {
		r := presigned(t, "60", testNow.Add(-61*time.Second))
		_, err := v.Verify(t.Context(), r, nil)
		e := wantKind(t, err, RequestExpired)
		if e.Message != "Request has expired" {
			t.Errorf("message = %q", e.Message)
		}
		must(t)(v.Verify(t.Context(), presigned(t, "60", testNow.Add(-59*time.Second)), nil))
		// A week-old URL that was given a week.
		must(t)(v.Verify(t.Context(), presigned(t, "604800", testNow.Add(-604799*time.Second)), nil))
	})
	t.Run("not yet valid", func(t *testing.T) {
		r := presigned(t, "60", testNow.Add(20*time.Minute))
		_, err := v.Verify(t.Context(), r, nil)
		wantKind(t, err, RequestExpired)
	})
	for _, bad := range []string{"", "0", "-1", "+60", "604801", "1e3", "abc", "99999999999999999999"} {
		t.Run("X-Amz-Expires="+bad, func(t *testing.T) {
			_, err := v.Verify(t.Context(), presigned(t, bad, testNow), nil)
			wantKind(t, err, IncompleteSignature)
		})
	}

	good := presigned(t, "300", testNow)
	must(t)(v.Verify(t.Context(), good, nil))
	tamper := map[string]func(q url.Values){
		"expires":      func(q url.Values) { q.Set("X-Amz-Expires", "3000") },
		"added param":  func(q url.Values) { q.Set("versionId", "7") },
		"token":        func(q url.Values) { q.Set("X-Amz-Security-Token", tempToken+"x") },
		"signed hdrs":  func(q url.Values) { q.Set("X-Amz-SignedHeaders", "host;x-amz-date") },
		"date":         func(q url.Values) { q.Set("X-Amz-Date", "20250314T150900Z") },
		"second sig":   func(q url.Values) { q.Add("X-Amz-Signature", q.Get("X-Amz-Signature")) },
		"algorithm":    func(q url.Values) { q.Set("X-Amz-Algorithm", "AWS4-HMAC-SHA512") },
		"no signature": func(q url.Values) { q.Del("X-Amz-Signature") },
	}
	want := map[string]Kind{
		"expires": SignatureMismatch, "added param": SignatureMismatch, "token": SignatureMismatch,
		"signed hdrs": SignatureMismatch, "date": SignatureMismatch,
		"second sig": IncompleteSignature, "algorithm": IncompleteSignature, "no signature": IncompleteSignature,
	}
	for name, edit := range tamper {
		t.Run("tampered "+name, func(t *testing.T) {
			r := good.Clone(t.Context())
			q := r.URL.Query()
			edit(q)
			r.URL.RawQuery = q.Encode()
			r.RequestURI = r.URL.RequestURI()
			_, err := v.Verify(t.Context(), r, nil)
			e := wantKind(t, err, want[name])
			if strings.Contains(e.CanonicalRequest, url.QueryEscape(tempToken)[:20]) {
				t.Errorf("the session token is in the debug canonical request:\n%s", e.CanonicalRequest)
			}
		})
	}
}
