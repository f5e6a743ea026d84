// Package sigv4 verifies AWS Signature Version 4 on incoming HTTP requests,
// both the Authorization-header form and presigned URLs.
//
// It is written by hand because the AWS SDK for Go only signs: its signer
// has no verifying counterpart, and its canonicalization lives in an internal
// package. The server side needs things a signer does not: parsing what the
// client claims to have signed, reproducing the canonical request from what
// Go's HTTP server hands us (r.Host, the raw request line, the header map),
// checking clocks, scopes and session tokens, and answering with errors a
// transport can map to AWS's error codes. The SDK's signer is used in the
// tests as the oracle.
//
// The algorithm is described at
// https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html.
package sigv4

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const (
	algorithm       = "AWS4-HMAC-SHA256"
	terminator      = "aws4_request"
	amzDateLayout   = "20060102T150405Z"
	scopeDateLayout = "20060102"

	// DefaultMaxSkew is how far a request's date may be from the server's
	// clock when Verifier.MaxSkew is zero; it is AWS's value.
	DefaultMaxSkew = 15 * time.Minute

	// maxPresignExpires is the longest X-Amz-Expires AWS allows: a week.
	maxPresignExpires = 7 * 24 * 60 * 60
)

// Values of x-amz-content-sha256 other than a hex SHA-256.
const (
	// UnsignedPayload: the signature does not cover the body.
	UnsignedPayload = "UNSIGNED-PAYLOAD"
	// StreamingPayload: an aws-chunked body whose chunks are each signed,
	// chained from the request's signature (Result.SeedSignature).
	StreamingPayload = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
	// StreamingPayloadTrailer: as StreamingPayload, with signed trailers.
	StreamingPayloadTrailer = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
	// StreamingUnsignedPayloadTrailer: an aws-chunked body, chunks unsigned,
	// with trailers.
	StreamingUnsignedPayloadTrailer = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
	// StreamingEvents: a signed event stream.
	StreamingEvents = "STREAMING-AWS4-HMAC-SHA256-EVENTS"
)

// Names of the presigned-URL query parameters and of the headers Verify
// reads itself.
const (
	paramAlgorithm     = "X-Amz-Algorithm"
	paramCredential    = "X-Amz-Credential"
	paramDate          = "X-Amz-Date"
	paramExpires       = "X-Amz-Expires"
	paramSignedHeaders = "X-Amz-SignedHeaders"
	paramSignature     = "X-Amz-Signature"
	paramSecurityToken = "X-Amz-Security-Token"
	paramContentSHA256 = "X-Amz-Content-Sha256"

	headerAuthorization = "Authorization"
	headerDate          = "Date"
	headerAmzDate       = "X-Amz-Date"
	headerSecurityToken = "X-Amz-Security-Token"
	headerContentSHA256 = "X-Amz-Content-Sha256"
)

// Credential is what a Lookup returns for an access key id.
type Credential struct {
	AccessKeyID     string
	SecretAccessKey string
	// SessionToken, when non-empty, must equal the request's
	// X-Amz-Security-Token (header or query parameter). When empty, a request
	// that carries a token is rejected.
	SessionToken string
	// Principal is an opaque identity (an ARN) for the caller's use; Verify
	// passes it through.
	Principal string
	// Scope is opaque to Verify, which passes it through like Principal:
	// what the credential may do (for example the action type a worker key
	// is limited to), for the caller to enforce. Nil: no limit set here.
	Scope any
	// Expires, when non-zero, is when the credential stops working.
	Expires time.Time
	// Refusal, when non-empty, says why this credential does not work
	// here (a key of another kind, for another API): Verify checks the
	// signature and then refuses the request with an *Error of kind
	// KeyNotAccepted and this message. Only the key's holder, who signed
	// correctly, learns it; everyone else gets what a wrong signature gets.
	Refusal string
}

// Lookup finds the credential for an access key id. It returns an error
// wrapping ErrUnknownAccessKey for keys it does not know; any other error is
// treated as an internal failure and returned from Verify as is (wrapped).
type Lookup func(ctx context.Context, accessKeyID string) (Credential, error)

// Verifier checks SigV4 signatures for one region and service. Its exported
// fields must be set before first use and not changed after; it is safe for
// concurrent use, and must not be copied after first use (it holds a cache).
type Verifier struct {
	Region  string // the credential scope must name this region
	Service string // and this service: "codepipeline", "s3", ...
	Lookup  Lookup
	// MaxSkew is how far the request's date may be from Now; zero means
	// DefaultMaxSkew.
	MaxSkew time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time

	keys keyCache
}

// Result describes a successfully verified request.
type Result struct {
	Credential Credential
	// PayloadHash is the value the signature covered: a lower- or upper-case
	// hex SHA-256 of the body, UnsignedPayload, or one of the STREAMING-*
	// markers (aws-chunked uploads, whose chunks the S3 layer checks later
	// from SeedSignature and SigningKey).
	PayloadHash string
	// SeedSignature is the request's signature, lower-case hex.
	SeedSignature string
	// SigningKey is the derived key for Scope; the caller's own copy.
	SigningKey []byte
	// Date is the request's X-Amz-Date (or Date header), in UTC.
	Date time.Time
	// Scope is the credential scope: "20250101/us-east-1/s3/aws4_request".
	Scope string
	// Presigned tells whether the request was authorized by query
	// parameters (a presigned URL) rather than the Authorization header.
	Presigned bool
	// SignedHeaders are the lower-case names of the headers the signature
	// covers, sorted. S3 may use it to insist that x-amz-* headers be signed.
	SignedHeaders []string
}

// request is what Verify reads from an *http.Request before it knows the key.
type request struct {
	auth      authorization
	presigned bool
	amzDate   string // the date as it goes into the string to sign
	date      time.Time
	expires   time.Duration // presigned only
	params    []queryParam

	token, contentSHA       string
	hasToken, hasContentSHA bool
}

// Verify checks the request's signature.
//
// body is the full request body when the caller has read it, or nil when it
// has not (streaming S3 uploads); a nil body of a request whose
// ContentLength is 0 counts as the empty body. With a body, the payload hash
// signed is the x-amz-content-sha256 header's value when present (which, if
// a hex hash, must match the body) or else the body's hash. Without one, the
// header is taken as given and must be present. Presigned URLs sign
// UNSIGNED-PAYLOAD unless they carry X-Amz-Content-Sha256.
//
// A failure of the client's making is an *Error; any other error (Lookup
// failing, a Verifier without a Lookup) is the server's and should be
// answered with a 500.
func (v *Verifier) Verify(ctx context.Context, r *http.Request, body []byte) (*Result, error) {
	if r == nil {
		return nil, errors.New("sigv4: nil request")
	}
	if v.Lookup == nil {
		return nil, errors.New("sigv4: Verifier has no Lookup")
	}
	req, e := parseRequest(r)
	if e != nil {
		return nil, e
	}
	a := &req.auth
	now := v.now()
	// The cheap checks come before Lookup, which may hit a database.
	if e := v.checkScope(req); e != nil {
		return nil, e
	}
	if e := v.checkTime(req, now); e != nil {
		return nil, e
	}
	payload, e := payloadHash(req, r, body)
	if e != nil {
		return nil, e
	}

	cred, err := v.Lookup(ctx, a.accessKeyID)
	if errors.Is(err, ErrUnknownAccessKey) {
		return nil, newError(UnknownAccessKey, msgInvalidToken)
	}
	if err != nil {
		return nil, fmt.Errorf("sigv4: looking up access key: %w", err)
	}
	if cred.SecretAccessKey == "" {
		return nil, errors.New("sigv4: Lookup returned a credential without a secret")
	}

	key := v.keys.get(cred.SecretAccessKey, a.date, a.region, a.service)
	query := canonicalQuery(req.params, req.presigned)
	first, second := canonicalURIs(r, v.Service == "s3")
	creq, sts, ok := check(r, req, key, first, query, payload)
	if !ok && second != "" {
		_, _, ok = check(r, req, key, second, query, payload)
	}
	if !ok {
		debug := string(creq)
		if req.hasToken {
			// A session token is a credential: keep it out of logs.
			debug = strings.ReplaceAll(debug, escape(req.token, false), "<redacted>")
			debug = strings.ReplaceAll(debug, strings.Trim(req.token, " \t"), "<redacted>")
		}
		return nil, &Error{
			Kind:             SignatureMismatch,
			Message:          msgMismatch,
			CanonicalRequest: debug,
			StringToSign:     string(sts),
		}
	}

	// The token and the credential's lifetime are checked only once the
	// signature is good, so that someone without the secret key learns
	// nothing about them.
	if e := checkToken(req, cred); e != nil {
		return nil, e
	}
	if !cred.Expires.IsZero() && !now.Before(cred.Expires) {
		return nil, newError(ExpiredToken, msgExpiredToken)
	}
	if cred.Refusal != "" {
		return nil, newError(KeyNotAccepted, cred.Refusal)
	}

	return &Result{
		Credential:    cred,
		PayloadHash:   payload,
		SeedSignature: a.signatureHex,
		SigningKey:    append([]byte(nil), key...),
		Date:          req.date,
		Scope:         a.scope,
		Presigned:     req.presigned,
		SignedHeaders: a.signedHeaders,
	}, nil
}

func (v *Verifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

func (v *Verifier) maxSkew() time.Duration {
	if v.MaxSkew > 0 {
		return v.MaxSkew
	}
	return DefaultMaxSkew
}

// parseRequest finds and parses the authorization, from the header or the
// query, and the values that go with it.
func parseRequest(r *http.Request) (*request, *Error) {
	rawQuery := ""
	if r.URL != nil {
		rawQuery = r.URL.RawQuery
	}
	authz := r.Header[headerAuthorization]
	params, ok := parseQuery(rawQuery)
	if !ok {
		if len(authz) == 0 && !strings.Contains(rawQuery, "X-Amz-") {
			return nil, newError(MissingAuth, msgMissingAuth)
		}
		return nil, newError(IncompleteSignature, msgMalformedQuery)
	}
	presigned := false
	for _, p := range params {
		if p.name == paramAlgorithm || p.name == paramCredential || p.name == paramSignature {
			presigned = true
			break
		}
	}

	req := &request{params: params, presigned: presigned}
	var e *Error
	switch {
	case len(authz) > 0 && presigned:
		return nil, newError(IncompleteSignature, msgBothAuthMethods)
	case len(authz) > 1:
		return nil, newError(IncompleteSignature, msgRepeatedHeader+headerAuthorization)
	case len(authz) == 1:
		e = req.parseHeaderAuth(r, authz[0])
	case presigned:
		e = req.parseQueryAuth()
	default:
		return nil, newError(MissingAuth, msgMissingAuth)
	}
	if e != nil {
		return nil, e
	}
	if e := req.readTokenAndContentSHA(r); e != nil {
		return nil, e
	}
	return req, nil
}

func (req *request) parseHeaderAuth(r *http.Request, authz string) *Error {
	a, e := parseAuthorization(authz)
	if e != nil {
		return e
	}
	req.auth = a
	if v, e := singleHeader(r, headerAmzDate); e != nil {
		return e
	} else if v != "" {
		t, ok := parseAmzDate(v)
		if !ok {
			return newError(IncompleteSignature, "X-Amz-Date must be in the ISO8601 basic format (20060102T150405Z), got '"+clip(v)+"'.")
		}
		req.amzDate, req.date = v, t
		return nil
	}
	// AWS accepts the HTTP Date header in place of X-Amz-Date; the string to
	// sign then carries it in the ISO8601 basic format.
	v, e := singleHeader(r, headerDate)
	if e != nil {
		return e
	}
	if v == "" {
		return newError(IncompleteSignature, msgMissingDate)
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return newError(IncompleteSignature, "Date header is not a valid HTTP date: '"+clip(v)+"'.")
	}
	req.date = t.UTC()
	req.amzDate = req.date.Format(amzDateLayout)
	return nil
}

func (req *request) parseQueryAuth() *Error {
	var vals [6]string
	var seen [6]bool
	names := [6]string{paramAlgorithm, paramCredential, paramDate, paramExpires, paramSignedHeaders, paramSignature}
	for _, p := range req.params {
		for i, n := range names {
			if p.name == n {
				if seen[i] {
					return newError(IncompleteSignature, "Query parameter "+n+" is given more than once.")
				}
				vals[i], seen[i] = p.value, true
			}
		}
	}
	for _, s := range seen {
		if !s {
			return newError(IncompleteSignature, "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.")
		}
	}
	algo, cred, date, expires, signed, sig := vals[0], vals[1], vals[2], vals[3], vals[4], vals[5]
	if algo != algorithm {
		return newError(IncompleteSignature, msgUnsupportedQAlgo)
	}
	a, e := newAuthorization(cred, signed, sig)
	if e != nil {
		return e
	}
	req.auth = a
	t, ok := parseAmzDate(date)
	if !ok {
		return newError(IncompleteSignature, "X-Amz-Date must be in the ISO8601 basic format (20060102T150405Z), got '"+clip(date)+"'.")
	}
	req.amzDate, req.date = date, t
	// Digits only: Atoi would also take "+60".
	n, err := strconv.Atoi(expires)
	if err != nil || strings.Trim(expires, "0123456789") != "" || n < 1 {
		return newError(IncompleteSignature, "X-Amz-Expires must be a whole number of seconds from 1 to 604800, got '"+clip(expires)+"'.")
	}
	if n > maxPresignExpires {
		return newError(IncompleteSignature, "X-Amz-Expires must be less than a week (in seconds) that is 604800")
	}
	req.expires = time.Duration(n) * time.Second
	return nil
}

// readTokenAndContentSHA reads the session token and the declared payload
// hash, each from the header or the query. Giving either twice, with
// different values, is refused rather than guessed at.
func (req *request) readTokenAndContentSHA(r *http.Request) *Error {
	var e *Error
	req.token, req.hasToken, e = headerOrParam(r, req.params, headerSecurityToken, paramSecurityToken)
	if e != nil {
		return e
	}
	req.hasToken = req.hasToken && req.token != "" // an empty token is no token
	req.contentSHA, req.hasContentSHA, e = headerOrParam(r, req.params, headerContentSHA256, paramContentSHA256)
	return e
}

func headerOrParam(r *http.Request, params []queryParam, header, param string) (string, bool, *Error) {
	hv := r.Header[header]
	if len(hv) > 1 {
		return "", false, newError(IncompleteSignature, msgRepeatedHeader+header)
	}
	value, found := "", len(hv) == 1
	if found {
		value = hv[0]
	}
	for _, p := range params {
		if p.name != param {
			continue
		}
		if found && p.value != value {
			return "", false, newError(IncompleteSignature, "The request gives "+param+" more than once, with different values.")
		}
		value, found = p.value, true
	}
	return value, found, nil
}

// singleHeader returns the header's value, "" if absent, and refuses a
// header given more than once.
func singleHeader(r *http.Request, name string) (string, *Error) {
	vs := r.Header[name]
	if len(vs) > 1 {
		return "", newError(IncompleteSignature, msgRepeatedHeader+name)
	}
	if len(vs) == 0 {
		return "", nil
	}
	return vs[0], nil
}

func parseAmzDate(s string) (time.Time, bool) {
	if len(s) != len(amzDateLayout) {
		return time.Time{}, false
	}
	t, err := time.Parse(amzDateLayout, s)
	return t, err == nil
}

// checkScope checks the credential scope against the Verifier and the date.
func (v *Verifier) checkScope(req *request) *Error {
	a := &req.auth
	switch {
	case a.terminal != terminator:
		return newError(WrongScope, "Credential should be scoped with a valid terminator: 'aws4_request', not '"+clip(a.terminal)+"'.")
	case a.region != v.Region:
		return newError(WrongScope, "Credential should be scoped to a valid region: this server expects '"+v.Region+
			"', not '"+clip(a.region)+"'. Set the client's region to '"+v.Region+"' (AWS_REGION, AWS_DEFAULT_REGION or --region).")
	case a.service != v.Service:
		return newError(WrongScope, "Credential should be scoped to correct service: '"+v.Service+"'.")
	case a.date != req.amzDate[:len(scopeDateLayout)]:
		return newError(WrongScope, "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '"+
			a.date+"' != '"+req.amzDate[:len(scopeDateLayout)]+"', from '"+req.amzDate+"'.")
	}
	return nil
}

// checkTime checks the request's date against the clock: within MaxSkew
// either way for a signed header, and for a presigned URL not past its
// expiry (nor more than MaxSkew in the future).
func (v *Verifier) checkTime(req *request, now time.Time) *Error {
	skew := v.maxSkew()
	if req.presigned {
		switch {
		case req.date.After(now.Add(skew)):
			return newError(RequestExpired, msgPresignNotYet)
		case now.After(req.date.Add(req.expires)):
			return newError(RequestExpired, msgPresignExpired)
		}
		return nil
	}
	f := func(t time.Time) string { return t.UTC().Format(amzDateLayout) }
	switch {
	case req.date.Before(now.Add(-skew)):
		return newError(RequestExpired, "Signature expired: "+req.amzDate+" is now earlier than "+
			f(now.Add(-skew))+" ("+f(now)+" - "+formatSkew(skew)+")")
	case req.date.After(now.Add(skew)):
		return newError(RequestExpired, "Signature not yet current: "+req.amzDate+" is still later than "+
			f(now.Add(skew))+" ("+f(now)+" + "+formatSkew(skew)+")")
	}
	return nil
}

// formatSkew words a duration as AWS does in its expiry message: "15 min.".
func formatSkew(d time.Duration) string {
	if d%time.Minute == 0 {
		return strconv.FormatInt(int64(d/time.Minute), 10) + " min."
	}
	return d.String()
}

// payloadHash returns the payload hash the signature must cover.
func payloadHash(req *request, r *http.Request, body []byte) (string, *Error) {
	if body == nil && r.ContentLength == 0 && len(r.TransferEncoding) == 0 {
		body = []byte{}
	}
	if !req.hasContentSHA {
		switch {
		case req.presigned:
			return UnsignedPayload, nil
		case body == nil:
			return "", newError(IncompleteSignature, msgMissingPayload)
		}
		sum := sha256.Sum256(body)
		return hex.EncodeToString(sum[:]), nil
	}
	declared := req.contentSHA
	switch declared {
	case UnsignedPayload, StreamingPayload, StreamingPayloadTrailer, StreamingUnsignedPayloadTrailer, StreamingEvents:
		return declared, nil
	}
	var want [sha256.Size]byte
	if len(declared) != hex.EncodedLen(len(want)) {
		return "", newError(IncompleteSignature, msgBadPayloadHash)
	}
	if _, err := hex.Decode(want[:], []byte(declared)); err != nil {
		return "", newError(IncompleteSignature, msgBadPayloadHash)
	}
	if body != nil && sha256.Sum256(body) != want {
		return "", newError(SignatureMismatch, msgPayloadMismatch)
	}
	return declared, nil
}

// check builds the canonical request with the given canonical URI and
// reports whether the request's signature matches it. It returns the
// canonical request and string to sign for debug logging.
func check(r *http.Request, req *request, key []byte, uri, query, payload string) (creq, sts []byte, ok bool) {
	a := &req.auth
	method := r.Method
	if method == "" {
		method = http.MethodGet // as Go's client reads an empty Method
	}
	creq = make([]byte, 0, 512)
	creq = append(creq, method...)
	creq = append(creq, '\n')
	creq = append(creq, uri...)
	creq = append(creq, '\n')
	creq = append(creq, query...)
	creq = append(creq, '\n')
	creq = appendCanonicalHeaders(creq, r, a.signedHeaders)
	creq = append(creq, '\n')
	creq = append(creq, a.signedHeadersLine...)
	creq = append(creq, '\n')
	creq = append(creq, payload...)

	sum := sha256.Sum256(creq)
	sts = make([]byte, 0, len(algorithm)+len(req.amzDate)+len(a.scope)+3+hex.EncodedLen(len(sum)))
	sts = append(sts, algorithm+"\n"...)
	sts = append(sts, req.amzDate...)
	sts = append(sts, '\n')
	sts = append(sts, a.scope...)
	sts = append(sts, '\n')
	sts = hex.AppendEncode(sts, sum[:])

	mac := hmac.New(sha256.New, key)
	mac.Write(sts)
	var got [sha256.Size]byte
	return creq, sts, hmac.Equal(mac.Sum(got[:0]), a.signature[:])
}

// checkToken compares the request's session token with the credential's, in
// constant time.
func checkToken(req *request, cred Credential) *Error {
	switch {
	case cred.SessionToken == "" && !req.hasToken:
		return nil
	case cred.SessionToken == "" || !req.hasToken:
		return newError(InvalidToken, msgInvalidToken)
	case subtle.ConstantTimeCompare([]byte(req.token), []byte(cred.SessionToken)) != 1:
		return newError(InvalidToken, msgInvalidToken)
	}
	return nil
}
