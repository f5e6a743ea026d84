package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/pipelined/pipelined/internal/server"
	"github.com/pipelined/pipelined/internal/server/servertest"
)

func stsClient(srv *servertest.Instance, akid, secret, region string) *sts.Client {
	return sts.New(sts.Options{
		Region: region, BaseEndpoint: aws.String(srv.URL), RetryMaxAttempts: 1, HTTPClient: srv.HTTP,
		Credentials: credentials.NewStaticCredentialsProvider(akid, secret, ""),
	})
}

// TestSTSGetCallerIdentity: the call every AWS tool makes to learn who it
// is answers for the root credentials and for worker keys, on the same
// listener as the CodePipeline API, and refuses what it must.
func TestSTSGetCallerIdentity(t *testing.T) {
	srv, _ := engineServer(t, func(*server.Config) {})
	ctx := context.Background()

	out, err := stsClient(srv, servertest.AccessKeyID, servertest.SecretAccessKey, servertest.Region).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatalf("root GetCallerIdentity: %v", err)
	}
	if aws.ToString(out.Arn) != "arn:aws:iam::"+servertest.AccountID+":root" || aws.ToString(out.Account) != servertest.AccountID || aws.ToString(out.UserId) != servertest.AccountID {
		t.Fatalf("root identity: arn %q account %q user %q", aws.ToString(out.Arn), aws.ToString(out.Account), aws.ToString(out.UserId))
	}

	is, _ := issueWorkerKey(t, srv, srcType)
	out, err = stsClient(srv, is.Key.AccessKeyID, is.SecretAccessKey, servertest.Region).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatalf("worker key GetCallerIdentity: %v", err)
	}
	if want := "arn:aws:iam::" + servertest.AccountID + ":user/pipelined-worker/" + is.Key.AccessKeyID; aws.ToString(out.Arn) != want ||
		aws.ToString(out.Account) != servertest.AccountID || aws.ToString(out.UserId) != is.Key.AccessKeyID {
		t.Fatalf("worker identity: arn %q account %q user %q", aws.ToString(out.Arn), aws.ToString(out.Account), aws.ToString(out.UserId))
	}

	stsErr := func(err error) (string, int) {
		var ae smithy.APIError
		if !errors.As(err, &ae) {
			t.Fatalf("not an API error: %v", err)
		}
		var re interface{ HTTPStatusCode() int }
		status := 0
		if errors.As(err, &re) {
			status = re.HTTPStatusCode()
		}
		return ae.ErrorCode(), status
	}
	_, err = stsClient(srv, servertest.AccessKeyID, "wrong-secret", servertest.Region).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if code, status := stsErr(err); code != "SignatureDoesNotMatch" || status != 403 {
		t.Fatalf("wrong secret: %s %d (%v)", code, status, err)
	}
	_, err = stsClient(srv, "AKIAUNKNOWN000000000", "x", servertest.Region).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if code, status := stsErr(err); code != "InvalidClientTokenId" || status != 403 {
		t.Fatalf("unknown key: %s %d (%v)", code, status, err)
	}
	_, err = stsClient(srv, servertest.AccessKeyID, servertest.SecretAccessKey, "eu-west-1").GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if code, _ := stsErr(err); code != "SignatureDoesNotMatch" || !strings.Contains(err.Error(), servertest.Region) {
		t.Fatalf("wrong region: %v (want the expected region named)", err)
	}
	_, err = stsClient(srv, servertest.AccessKeyID, servertest.SecretAccessKey, servertest.Region).AssumeRole(ctx, &sts.AssumeRoleInput{
		RoleArn: aws.String("arn:aws:iam::" + servertest.AccountID + ":role/x"), RoleSessionName: aws.String("s")})
	if code, status := stsErr(err); code != "InvalidAction" || status != 400 || !strings.Contains(err.Error(), "Could not find operation AssumeRole for version 2011-06-15") {
		t.Fatalf("AssumeRole: %s %d (%v)", code, status, err)
	}

	// The CodePipeline API on the same "/" is unaffected.
	if _, err := srv.Client().ListPipelines(ctx, &codepipeline.ListPipelinesInput{}); err != nil {
		t.Fatal(err)
	}
}

// TestSTSWireShape: the XML is STS's, element for element, and so are
// errors (the query protocol's ErrorResponse).
func TestSTSWireShape(t *testing.T) {
	srv := servertest.Start(t)
	post := func(body string) (int, http.Header, string) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
		sum := sha256.Sum256([]byte(body))
		if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: servertest.AccessKeyID, SecretAccessKey: servertest.SecretAccessKey},
			req, hex.EncodeToString(sum[:]), "sts", servertest.Region, time.Now()); err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	ws := regexp.MustCompile(`>\s+<`)
	status, h, body := post("Action=GetCallerIdentity&Version=2011-06-15")
	reqID := h.Get("x-amzn-RequestId")
	want := `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult>` +
		`<Arn>arn:aws:iam::123456789012:root</Arn><UserId>123456789012</UserId><Account>123456789012</Account>` +
		`</GetCallerIdentityResult><ResponseMetadata><RequestId>` + reqID + `</RequestId></ResponseMetadata></GetCallerIdentityResponse>`
	if got := ws.ReplaceAllString(strings.TrimSpace(body), "><"); status != 200 || got != want || reqID == "" || h.Get("Content-Type") != "text/xml" {
		t.Fatalf("GetCallerIdentity: %d %s %s\ngot  %s\nwant %s", status, h.Get("Content-Type"), reqID, got, want)
	}
	status, h, body = post("Action=DecodeAuthorizationMessage&Version=2011-06-15&EncodedMessage=x")
	want = `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>InvalidAction</Code>` +
		`<Message>Could not find operation DecodeAuthorizationMessage for version 2011-06-15</Message></Error>` +
		`<RequestId>` + h.Get("x-amzn-RequestId") + `</RequestId></ErrorResponse>`
	if got := ws.ReplaceAllString(strings.TrimSpace(body), "><"); status != 400 || got != want {
		t.Fatalf("InvalidAction: %d\ngot  %s\nwant %s", status, got, want)
	}
	// Unsigned: the query protocol's MissingAuthenticationToken.
	resp, err := http.Post(srv.URL+"/", "application/x-www-form-urlencoded", strings.NewReader("Action=GetCallerIdentity&Version=2011-06-15"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 403 || !strings.Contains(string(b), "<Code>MissingAuthenticationToken</Code>") {
		t.Fatalf("unsigned: %d %s", resp.StatusCode, b)
	}
}
