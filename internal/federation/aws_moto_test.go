package federation

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/pipelined/pipelined/internal/artifacts/mototest"
)

// TestAWSAgainstMoto runs the exchange against moto's STS, a separate
// implementation of the protocol from the fake's: the SDK configuration
// (anonymous, unsigned AssumeRoleWithWebIdentity, BaseEndpoint) must work
// with it, and the credentials must then sign requests moto accepts.
// moto does not verify the token; the fake's tests cover that.
func TestAWSAgainstMoto(t *testing.T) {
	endpoint := mototest.Start(t)
	iss := newTestIssuer(t)
	tok := iss.token(t, testSubject, "sts.amazonaws.com", 5*time.Minute)
	a := &AWS{Endpoint: endpoint, Region: "us-east-1"}
	creds, err := a.AssumeRoleWithWebIdentity(t.Context(), AssumeRoleInput{
		RoleARN:          testRoleARN,
		SessionName:      "pipelined-job-moto",
		WebIdentityToken: tok,
		Duration:         15 * time.Minute,
	}, RetryPolicy{})
	if err != nil {
		t.Fatal(err)
	}
	if creds.AccessKeyID == "" || creds.SecretAccessKey == "" || creds.SessionToken == "" {
		t.Fatalf("incomplete credentials (access key ID %q)", creds.AccessKeyID)
	}
	if creds.Expiration.IsZero() || creds.Expiration.Before(time.Now()) {
		t.Errorf("Expiration = %v", creds.Expiration)
	}
	if creds.AssumedRoleARN != "arn:aws:sts::123456789012:assumed-role/deploy/pipelined-job-moto" {
		t.Errorf("AssumedRoleARN = %q", creds.AssumedRoleARN)
	}

	id, err := stsClient(endpoint, creds).GetCallerIdentity(t.Context(), &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatalf("GetCallerIdentity with the assumed role's credentials: %v", err)
	}
	if aws.ToString(id.Arn) != creds.AssumedRoleARN {
		t.Errorf("GetCallerIdentity names %q, want the assumed role %q", aws.ToString(id.Arn), creds.AssumedRoleARN)
	}
}
