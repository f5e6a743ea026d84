// Package fedtest has fakes of the cloud providers that pipelined
// exchanges ID tokens with, for tests: AWS STS (AssumeRoleWithWebIdentity,
// GetCallerIdentity) and GCP workload identity federation (STS token
// exchange, IAM Credentials generateAccessToken) and Microsoft Entra ID
// (the token endpoint's client credentials grant with a federated
// assertion).
//
// The fakes verify ID tokens as the providers do, against the issuer's
// discovery document and JWKS fetched over HTTP, so that a test catches
// a token the real provider would refuse. Each has a script of injected
// failures, to exercise retries, and counts the requests.
package fedtest
