// Package federation exchanges the ID tokens pipelined issues to jobs for
// cloud credentials: AWS STS AssumeRoleWithWebIdentity, and GCP workload
// identity federation (STS token exchange, then IAM Credentials
// generateAccessToken for a service account), and Microsoft Entra ID
// workload identity federation (a client credentials grant with the ID
// token as the client assertion).
//
// Every call runs under a RetryPolicy in Harness's shapes (fixed delay,
// equal jitter, full jitter), chosen by the API caller and bounded by the
// server (MaxRetryCount, MaxDelay, and a total time per call). Only
// failures another attempt could fix are retried: network failures,
// throttling, the providers' internal errors, AWS's
// IDPCommunicationError and Entra's AADSTS50166. Failures are *ProviderError values whose
// messages never carry the token or credentials, so that they can be
// logged and shown to the job.
//
// Package fedtest has fakes of the providers for tests.
package federation
