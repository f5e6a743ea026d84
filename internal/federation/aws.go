package federation

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// AWS exchanges ID tokens for AWS credentials with STS
// AssumeRoleWithWebIdentity. The zero AWS calls STS in us-east-1.
type AWS struct {
	// Endpoint is the STS endpoint URL; "" uses the SDK's standard
	// endpoint for Region (https://sts.{Region}.amazonaws.com). Unlike
	// config.LoadDefaultConfig, AWS_ENDPOINT_URL_STS and the shared
	// config files are not read: the server's own AWS settings (for its
	// artifact store, say) must not redirect jobs' token exchanges.
	Endpoint string
	// Region is the STS region; "" is us-east-1.
	Region string
	// HTTPClient makes the requests; nil uses the SDK's default client.
	// Its Timeout, if any, bounds a single attempt.
	HTTPClient *http.Client
	// MaxTotal bounds a call including its retries; 0 is
	// DefaultMaxTotal.
	MaxTotal time.Duration
	// Sleep waits between attempts; nil waits on a timer (ending early
	// when ctx does). Tests replace it so as not to sleep for real.
	Sleep func(ctx context.Context, d time.Duration) error

	// now and rnd replace time.Now and rand.Float64 in tests.
	now func() time.Time
	rnd func() float64
}

// AWSCredentials are temporary credentials of an assumed role.
type AWSCredentials struct {
	AccessKeyID, SecretAccessKey, SessionToken string
	Expiration                                 time.Time
	// AssumedRoleARN is the session's ARN,
	// arn:aws:sts::{account}:assumed-role/{role}/{session}.
	AssumedRoleARN string
	// SubjectFromWebIdentityToken is the token's sub, as STS read it.
	SubjectFromWebIdentityToken string
}

// AssumeRoleInput is one AssumeRoleWithWebIdentity request.
type AssumeRoleInput struct {
	// RoleARN is the role to assume; its trust policy must allow the
	// issuer's IAM OIDC provider (and normally conditions on sub and aud).
	RoleARN string
	// SessionName names the session in the assumed-role ARN and
	// CloudTrail (2 to 64 of [\w+=,.@-]).
	SessionName string
	// WebIdentityToken is the ID token. It is never put in an error.
	WebIdentityToken string
	// Duration is the lifetime of the credentials, in whole seconds
	// (STS accepts 15 minutes up to the role's maximum session duration);
	// 0 leaves it to STS (one hour).
	Duration time.Duration
	// RetryInvalidIdentityToken makes InvalidIdentityToken retryable when
	// its message says STS could not find or use the issuer's IAM OIDC
	// provider or keys yet: IAM is eventually consistent, and a new
	// provider (or a new audience on it) can take seconds to reach STS.
	// An InvalidIdentityToken about the token itself (its audience, its
	// signature, its claims) is never retried: the same token would be
	// refused again.
	RetryInvalidIdentityToken bool
}

// AssumeRoleWithWebIdentity exchanges in.WebIdentityToken for credentials
// of in.RoleARN, retrying retryable failures under policy. Retried:
// network failures, throttling, STS's internal errors and 5xx, and
// IDPCommunicationError (STS could not reach the issuer's discovery or
// JWKS); InvalidIdentityToken only with in.RetryInvalidIdentityToken.
// Never retried: AccessDenied (the trust policy refused), expired tokens
// and any other client error. A failure is a *ProviderError.
func (a *AWS) AssumeRoleWithWebIdentity(ctx context.Context, in AssumeRoleInput, policy RetryPolicy) (AWSCredentials, error) {
	client := a.client()
	params := &sts.AssumeRoleWithWebIdentityInput{
		RoleArn:          aws.String(in.RoleARN),
		RoleSessionName:  aws.String(in.SessionName),
		WebIdentityToken: aws.String(in.WebIdentityToken),
	}
	if in.Duration > 0 {
		params.DurationSeconds = aws.Int32(int32(in.Duration / time.Second))
	}
	var out *sts.AssumeRoleWithWebIdentityOutput
	attempts := 0
	c := newCaller(a.MaxTotal, a.Sleep, a.now, a.rnd)
	err := c.run(ctx, policy, func(ctx context.Context) *ProviderError {
		attempts++
		o, err := client.AssumeRoleWithWebIdentity(ctx, params)
		if err != nil {
			return awsError(ctx, err, in)
		}
		out = o
		return nil
	})
	if err != nil {
		return AWSCredentials{}, err
	}
	cr := out.Credentials
	if cr == nil || aws.ToString(cr.AccessKeyId) == "" || aws.ToString(cr.SecretAccessKey) == "" || aws.ToString(cr.SessionToken) == "" {
		return AWSCredentials{}, &ProviderError{Provider: ProviderAWSSTS, StatusCode: http.StatusOK, Code: "InvalidResponse", Message: "AssumeRoleWithWebIdentity answered without credentials", Attempts: attempts}
	}
	creds := AWSCredentials{
		AccessKeyID:                 *cr.AccessKeyId,
		SecretAccessKey:             *cr.SecretAccessKey,
		SessionToken:                *cr.SessionToken,
		Expiration:                  aws.ToTime(cr.Expiration).UTC(),
		SubjectFromWebIdentityToken: aws.ToString(out.SubjectFromWebIdentityToken),
	}
	if out.AssumedRoleUser != nil {
		creds.AssumedRoleARN = aws.ToString(out.AssumedRoleUser.Arn)
	}
	return creds, nil
}

// client is an STS client for one call. It is built per call so that the
// AWS fields are read when used; the cost is small next to the request.
func (a *AWS) client() *sts.Client {
	region := a.Region
	if region == "" {
		region = "us-east-1"
	}
	o := sts.Options{
		Region: region,
		// AssumeRoleWithWebIdentity is not signed: the token is the
		// authentication, and the server has no AWS identity to add.
		Credentials: aws.AnonymousCredentials{},
		// Our policy decides what is retried and how long to wait; the
		// SDK's retryer would multiply the attempts.
		Retryer: aws.NopRetryer{},
	}
	if a.Endpoint != "" {
		o.BaseEndpoint = aws.String(strings.TrimRight(a.Endpoint, "/"))
	}
	if a.HTTPClient != nil {
		o.HTTPClient = a.HTTPClient
	}
	return sts.New(o)
}

// STS error codes the retry decision knows.
var (
	awsRetryableCodes = map[string]bool{
		"IDPCommunicationError":       true,
		"Throttling":                  true,
		"ThrottlingException":         true,
		"RequestLimitExceeded":        true,
		"TooManyRequestsException":    true,
		"RequestThrottled":            true,
		"RequestThrottledException":   true,
		"InternalFailure":             true,
		"InternalError":               true,
		"InternalServerError":         true,
		"ServiceUnavailable":          true,
		"ServiceUnavailableException": true,
	}
	// awsFinalCodes are never retried whatever their status: the same
	// request would get the same answer.
	awsFinalCodes = map[string]bool{
		"AccessDenied":               true,
		"AccessDeniedException":      true,
		"ExpiredTokenException":      true,
		"ExpiredToken":               true,
		"InvalidIdentityToken":       true,
		"IDPRejectedClaim":           true,
		"MalformedPolicyDocument":    true,
		"PackedPolicyTooLarge":       true,
		"RegionDisabledException":    true,
		"ValidationError":            true,
		"InvalidParameterValue":      true,
		"InvalidClientTokenId":       true,
		"InvalidAuthorizationHeader": true,
	}
)

// awsError converts an SDK error into a ProviderError and decides whether
// it is retryable.
func awsError(ctx context.Context, err error, in AssumeRoleInput) *ProviderError {
	pe := &ProviderError{Provider: ProviderAWSSTS, Err: err}
	var resp *smithyhttp.ResponseError
	if errors.As(err, &resp) && resp.Response != nil && resp.Response.Response != nil {
		pe.StatusCode = resp.HTTPStatusCode()
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		pe.Code = api.ErrorCode()
		pe.Message = api.ErrorMessage()
	}
	if pe.Message == "" {
		pe.Message = err.Error()
	}
	pe.Message = redact(pe.Message, in.WebIdentityToken)

	switch {
	case pe.Code == "InvalidIdentityToken":
		pe.Retryable = in.RetryInvalidIdentityToken && providerNotReady(pe.Message)
	case awsFinalCodes[pe.Code]:
		pe.Retryable = false
	case awsRetryableCodes[pe.Code]:
		pe.Retryable = true
	case pe.StatusCode == http.StatusTooManyRequests || pe.StatusCode >= 500:
		pe.Retryable = true
	case pe.StatusCode == 0:
		pe.Retryable = transient(ctx, err)
	}
	return pe
}

// providerNotReady reports whether an InvalidIdentityToken message is
// about the identity provider not being usable yet (propagation, or STS
// failing to fetch the issuer's keys) rather than about the token.
func providerNotReady(msg string) bool {
	m := strings.ToLower(msg)
	for _, s := range []string{
		"no openidconnect provider found",
		"couldn't retrieve verification key",
		"could not retrieve verification key",
		"unable to retrieve verification key",
	} {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}
