package sigv4

import (
	"errors"
	"strings"
)

// ErrUnknownAccessKey is what a Lookup returns (possibly wrapped) for an
// access key id it does not know. Verify turns it into an *Error of kind
// UnknownAccessKey; any other Lookup error is passed through as an internal
// failure.
var ErrUnknownAccessKey = errors.New("sigv4: unknown access key id")

// Kind classifies a verification failure. Transports map kinds to their own
// error codes: the AWS JSON protocol and S3's XML errors name them
// differently.
type Kind int

const (
	// MissingAuth: the request carries neither an Authorization header nor
	// presigned query parameters.
	MissingAuth Kind = iota + 1
	// IncompleteSignature: the Authorization header or presigned query is
	// malformed (a missing or repeated part, a malformed credential scope, no
	// date, an unsupported algorithm, host not signed, an invalid
	// X-Amz-Expires or x-amz-content-sha256 value, ...).
	IncompleteSignature
	// UnknownAccessKey: Lookup does not know the access key id.
	UnknownAccessKey
	// SignatureMismatch: the signature (or the declared payload hash) does
	// not match the request.
	SignatureMismatch
	// RequestExpired: the request date is more than MaxSkew away from now,
	// or a presigned URL is past its X-Amz-Expires.
	RequestExpired
	// WrongScope: the credential scope names another region, service, date
	// or terminator than it must.
	WrongScope
	// InvalidToken: the session token does not match the credential's (or
	// one is present where none is expected, or missing where one is).
	InvalidToken
	// ExpiredToken: the credential is past its Expires time.
	ExpiredToken
	// KeyNotAccepted: the signature is good, but the credential does not
	// work on this API (Credential.Refusal says why).
	KeyNotAccepted
)

var kindNames = [...]string{
	MissingAuth:         "MissingAuth",
	IncompleteSignature: "IncompleteSignature",
	UnknownAccessKey:    "UnknownAccessKey",
	SignatureMismatch:   "SignatureMismatch",
	RequestExpired:      "RequestExpired",
	WrongScope:          "WrongScope",
	InvalidToken:        "InvalidToken",
	ExpiredToken:        "ExpiredToken",
	KeyNotAccepted:      "KeyNotAccepted",
}

func (k Kind) String() string {
	if k > 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(invalid)"
}

// Error is a verification failure: the client's fault, to be answered with a
// 4xx. Message is worded like AWS's and safe to send to the client: it never
// contains a secret key or the expected signature.
type Error struct {
	Kind    Kind
	Message string

	// CanonicalRequest and StringToSign are set for SignatureMismatch so that
	// the server may log them at debug level (S3 also returns them to the
	// client). They contain no secret key, and the session token, if any, is
	// replaced by "<redacted>"; but they do hold the request's other signed
	// headers, which is why they are kept out of Message.
	CanonicalRequest string
	StringToSign     string
}

func (e *Error) Error() string {
	return "sigv4: " + e.Kind.String() + ": " + e.Message
}

func newError(k Kind, msg string) *Error {
	return &Error{Kind: k, Message: msg}
}

// clip shortens client-supplied text quoted in a message, so that a
// megabyte of header does not come back in the error (and the logs).
func clip(s string) string {
	const max = 128
	if len(s) <= max {
		return s
	}
	return strings.ToValidUTF8(s[:max], "") + "..."
}

// AWS's wording for the messages that do not depend on the request.
const (
	msgMissingAuth      = "Missing Authentication Token"
	msgMismatch         = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
	msgPayloadMismatch  = "The provided 'x-amz-content-sha256' header does not match what was computed."
	msgInvalidToken     = "The security token included in the request is invalid."
	msgExpiredToken     = "The security token included in the request is expired"
	msgPresignExpired   = "Request has expired"
	msgPresignNotYet    = "Request is not valid yet"
	msgBothAuthMethods  = "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified"
	msgMalformedQuery   = "The query string is not validly percent-encoded."
	msgBadCredential    = "The Credential is mal-formed; expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\"."
	msgHostNotSigned    = "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
	msgBadSignatureHex  = "The signature must be 64 hexadecimal characters."
	msgMissingDate      = "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
	msgBadPayloadHash   = "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, or a valid sha256 value."
	msgMissingPayload   = "Missing required header for this request: x-amz-content-sha256"
	msgRepeatedHeader   = "The request carries the header more than once: "
	msgUnsupportedAlgo  = "Unsupported Authorization Type; only AWS4-HMAC-SHA256 is supported."
	msgUnsupportedQAlgo = "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\""
)
