package executions_test

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/pipelined/pipelined/internal/server"
	"github.com/pipelined/pipelined/internal/server/servertest"
)

// A partner gets artifactCredentials from GetThirdPartyJobDetails and uses
// them on the embedded store: the source writes its output, the deploy
// reads it (and may not overwrite it).
func TestThirdPartyArtifactCredentials(t *testing.T) {
	srv, c, adm := setup(t, func(*server.Config) {}, "tpart")
	ctx := context.Background()
	s3For := func(cr *types.AWSSessionCredentials) *s3.Client {
		if cr == nil {
			t.Fatal("GetThirdPartyJobDetails gave no artifactCredentials")
		}
		return s3.New(s3.Options{Region: servertest.Region, BaseEndpoint: aws.String(srv.URL), UsePathStyle: true, RetryMaxAttempts: 1, HTTPClient: srv.HTTP,
			Credentials: credentials.NewStaticCredentialsProvider(aws.ToString(cr.AccessKeyId), aws.ToString(cr.SecretAccessKey), aws.ToString(cr.SessionToken))})
	}

	src := issue(t, adm, "tpart", "Source", "Fetch")
	job := pollOne(t, c, tpSource)
	d := details(t, c, aws.ToString(job.JobId), src.ClientToken)
	ack(t, c, aws.ToString(job.JobId), aws.ToString(d.Nonce), src.ClientToken)
	loc := d.Data.OutputArtifacts[0].Location.S3Location
	if _, err := s3For(d.Data.ArtifactCredentials).PutObject(ctx, &s3.PutObjectInput{Bucket: loc.BucketName, Key: loc.ObjectKey, Body: strings.NewReader("partner source")}); err != nil {
		t.Fatalf("partner writes its output: %v", err)
	}
	if _, err := c.PutThirdPartyJobSuccessResult(ctx, &codepipeline.PutThirdPartyJobSuccessResultInput{JobId: job.JobId, ClientToken: aws.String(src.ClientToken),
		CurrentRevision: &types.CurrentRevision{Revision: aws.String("r1"), ChangeIdentifier: aws.String("r1")}}); err != nil {
		t.Fatal(err)
	}

	dep := issue(t, adm, "tpart", "Deploy", "Ship")
	job = pollOne(t, c, tpDeploy)
	d = details(t, c, aws.ToString(job.JobId), dep.ClientToken)
	w := s3For(d.Data.ArtifactCredentials)
	in := d.Data.InputArtifacts[0].Location.S3Location
	out, err := w.GetObject(ctx, &s3.GetObjectInput{Bucket: in.BucketName, Key: in.ObjectKey})
	if err != nil {
		t.Fatalf("partner reads its input: %v", err)
	}
	b, _ := io.ReadAll(out.Body)
	out.Body.Close()
	if string(b) != "partner source" {
		t.Fatalf("input = %q", b)
	}
	if _, err := w.PutObject(ctx, &s3.PutObjectInput{Bucket: in.BucketName, Key: in.ObjectKey, Body: strings.NewReader("x")}); err == nil {
		t.Fatal("a partner overwrote its input")
	}
}
