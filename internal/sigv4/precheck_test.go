package sigv4

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// Precheck refuses, from the headers alone, what Verify would refuse for
// the same reason, and passes a well-signed request whatever its body.
func TestPrecheck(t *testing.T) {
	v := newTestVerifier("codepipeline")
	ctx := context.Background()
	body := []byte(`{"name":"p"}`)
	signed := func(creds aws.Credentials, at time.Time, region string) *http.Request {
		req, _ := http.NewRequest(http.MethodPost, "https://codepipeline.us-east-1.amazonaws.com/", strings.NewReader(string(body)))
		req.Header.Set("X-Amz-Target", "CodePipeline_20150709.GetPipeline")
		if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, sha256Hex(body), "codepipeline", region, at); err != nil {
			t.Fatal(err)
		}
		return req
	}
	if err := v.Precheck(ctx, signed(longTermCreds, testNow, testRegion)); err != nil {
		t.Fatalf("a well-signed request: %v", err)
	}
	// Precheck sees no body: a request whose body does not match still
	// passes it (Verify refuses it).
	req := signed(longTermCreds, testNow, testRegion)
	req.Body = http.NoBody
	if err := v.Precheck(ctx, req); err != nil {
		t.Fatalf("Precheck looked at the body: %v", err)
	}

	noAuth, _ := http.NewRequest(http.MethodPost, "https://x/", nil)
	wantKind(t, v.Precheck(ctx, noAuth), MissingAuth)

	garbled := signed(longTermCreds, testNow, testRegion)
	garbled.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=nonsense")
	wantKind(t, v.Precheck(ctx, garbled), IncompleteSignature)

	unknown := signed(aws.Credentials{AccessKeyID: "AKIDUNKNOWN", SecretAccessKey: testSecret}, testNow, testRegion)
	wantKind(t, v.Precheck(ctx, unknown), UnknownAccessKey)

	stale := signed(longTermCreds, testNow.Add(-time.Hour), testRegion)
	wantKind(t, v.Precheck(ctx, stale), RequestExpired)

	otherRegion := signed(longTermCreds, testNow, "eu-west-1")
	wantKind(t, v.Precheck(ctx, otherRegion), WrongScope)

	broken := signed(aws.Credentials{AccessKeyID: brokenAKID, SecretAccessKey: testSecret}, testNow, testRegion)
	if err := v.Precheck(ctx, broken); !errors.Is(err, errDB) {
		t.Errorf("a failing lookup: %v, want the lookup's error", err)
	}
}
