package federation

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"unicode/utf8"
)

// Provider names of a ProviderError.
const (
	ProviderAWSSTS            = "aws-sts"
	ProviderGCPSTS            = "gcp-sts"
	ProviderGCPIAMCredentials = "gcp-iamcredentials"
)

// ProviderError is a failed call to a cloud provider, after any retries.
type ProviderError struct {
	// Provider is ProviderAWSSTS, ProviderGCPSTS or
	// ProviderGCPIAMCredentials.
	Provider string
	// StatusCode is the HTTP status of the provider's answer, 0 when there
	// was none (a network failure).
	StatusCode int
	// Code is the provider's error code: STS's (InvalidIdentityToken,
	// AccessDenied...), GCP STS's OAuth error (invalid_grant...) or IAM
	// Credentials' status (PERMISSION_DENIED...). "" for network failures.
	Code string
	// Message is the provider's message, or the network failure. The ID
	// token, the federated token and credentials are removed from it: it
	// is safe to log and to return to the job.
	Message string
	// Retryable tells whether the last failure was of a retryable kind;
	// true with Attempts = RetryCount+1 means the retries ran out (or the
	// time bound stopped them).
	Retryable bool
	// Attempts is the number of calls made.
	Attempts int
	// Err is the underlying error, for errors.Is and errors.As. Its text is
	// not redacted: show Error() or Message instead.
	Err error
}

func (e *ProviderError) Error() string {
	var b strings.Builder
	b.WriteString(e.Provider)
	b.WriteString(": ")
	if e.Code != "" {
		b.WriteString(e.Code)
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, " (HTTP %d", e.StatusCode)
	} else {
		b.WriteString(" (no response")
	}
	if e.Attempts == 1 {
		b.WriteString(", 1 attempt)")
	} else {
		fmt.Fprintf(&b, ", %d attempts)", e.Attempts)
	}
	return b.String()
}

func (e *ProviderError) Unwrap() error { return e.Err }

// maxMessage bounds a provider message kept in an error: a misbehaving
// endpoint could answer with a whole page.
const maxMessage = 1024

// redact removes the secrets from a provider message: each secret whole,
// and each long dot-separated part of one, so that a JWT's payload or
// signature echoed alone is removed too. It also trims the message to
// maxMessage bytes.
func redact(msg string, secrets ...string) string {
	for _, s := range secrets {
		if s == "" {
			continue
		}
		msg = strings.ReplaceAll(msg, s, "[REDACTED]")
		for part := range strings.SplitSeq(s, ".") {
			if len(part) >= 16 {
				msg = strings.ReplaceAll(msg, part, "[REDACTED]")
			}
		}
	}
	if len(msg) > maxMessage {
		cut := maxMessage
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut] + "..."
	}
	return msg
}

// transient tells whether an error without a provider answer is worth
// another attempt: the connection could not be made or broke, or the
// single attempt timed out. ctx is the call's context: once it is done,
// nothing is retried.
func transient(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil {
		return false
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		// The call's context is not done, so this deadline was the
		// attempt's own (an HTTP client timeout).
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return true
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		// "no such host" is a configuration error; a failing resolver is
		// not.
		return dns.IsTimeout || dns.IsTemporary
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return false
}
