package sigv4

import (
	"encoding/hex"
	"slices"
	"strings"
	"time"
)

// authorization is the parsed form of what the client says it signed, from
// either the Authorization header or the presigned query parameters.
type authorization struct {
	accessKeyID string
	// scope is the credential scope, "20250101/us-east-1/s3/aws4_request",
	// and date, region, service and terminal are its four parts.
	scope                           string
	date, region, service, terminal string

	// signedHeaders are the lowercase names, sorted and unique;
	// signedHeadersLine is them joined with ';' as the canonical request
	// carries them.
	signedHeaders     []string
	signedHeadersLine string

	signature    [32]byte
	signatureHex string // lowercase
}

// parseAuthorization parses an Authorization header value:
//
//	AWS4-HMAC-SHA256 Credential=AKID/20250101/us-east-1/svc/aws4_request, SignedHeaders=host;x-amz-date, Signature=hex
//
// The three parts may come in any order, with or without spaces around the
// commas and equal signs; each must come exactly once.
func parseAuthorization(h string) (authorization, *Error) {
	h = strings.TrimLeft(h, " \t")
	algo, rest, _ := strings.Cut(h, " ")
	if algo != algorithm {
		return authorization{}, newError(IncompleteSignature, msgUnsupportedAlgo)
	}

	var cred, signed, sig string
	var haveCred, haveSigned, haveSig bool
	for part := range strings.SplitSeq(rest, ",") {
		part = strings.Trim(part, " \t")
		if part == "" {
			continue // tolerate ", ," and a trailing comma
		}
		key, value, ok := strings.Cut(part, "=")
		if !ok {
			return authorization{}, newError(IncompleteSignature,
				"'"+clip(part)+"' not a valid key=value pair (missing equal-sign) in Authorization header: '"+clip(h)+"'.")
		}
		key, value = strings.Trim(key, " \t"), strings.Trim(value, " \t")
		var dst *string
		var seen *bool
		switch key {
		case "Credential":
			dst, seen = &cred, &haveCred
		case "SignedHeaders":
			dst, seen = &signed, &haveSigned
		case "Signature":
			dst, seen = &sig, &haveSig
		default:
			return authorization{}, newError(IncompleteSignature,
				"Authorization header has an unknown parameter '"+clip(key)+"'.")
		}
		if *seen {
			return authorization{}, newError(IncompleteSignature,
				"Authorization header has the parameter '"+clip(key)+"' more than once.")
		}
		*dst, *seen = value, true
	}

	// AWS lists every missing part, not just the first.
	var missing []string
	if !haveCred {
		missing = append(missing, "Authorization header requires 'Credential' parameter.")
	}
	if !haveSig {
		missing = append(missing, "Authorization header requires 'Signature' parameter.")
	}
	if !haveSigned {
		missing = append(missing, "Authorization header requires 'SignedHeaders' parameter.")
	}
	if len(missing) > 0 {
		return authorization{}, newError(IncompleteSignature,
			strings.Join(missing, " ")+" Authorization="+clip(h))
	}
	return newAuthorization(cred, signed, sig)
}

// newAuthorization parses and checks the three parts of an authorization,
// wherever they came from.
func newAuthorization(cred, signed, sig string) (authorization, *Error) {
	var a authorization
	if err := a.parseCredential(cred); err != nil {
		return authorization{}, err
	}
	if err := a.parseSignedHeaders(signed); err != nil {
		return authorization{}, err
	}
	if len(sig) != 2*len(a.signature) {
		return authorization{}, newError(IncompleteSignature, msgBadSignatureHex)
	}
	if _, err := hex.Decode(a.signature[:], []byte(sig)); err != nil {
		return authorization{}, newError(IncompleteSignature, msgBadSignatureHex)
	}
	a.signatureHex = strings.ToLower(sig)
	return a, nil
}

// parseCredential splits "AKID/20250101/us-east-1/codepipeline/aws4_request".
// Whether region, service and terminal are the right ones is checked later
// (WrongScope); here only the shape is.
func (a *authorization) parseCredential(cred string) *Error {
	akid, scope, ok := strings.Cut(cred, "/")
	date, rest, ok2 := strings.Cut(scope, "/")
	region, rest, ok3 := strings.Cut(rest, "/")
	service, terminal, ok4 := strings.Cut(rest, "/")
	if !ok || !ok2 || !ok3 || !ok4 || akid == "" || region == "" || service == "" || terminal == "" ||
		strings.Contains(terminal, "/") || len(date) != len(scopeDateLayout) {
		return newError(IncompleteSignature, msgBadCredential)
	}
	if _, err := time.Parse(scopeDateLayout, date); err != nil {
		return newError(IncompleteSignature, msgBadCredential)
	}
	a.accessKeyID, a.scope = akid, scope
	a.date, a.region, a.service, a.terminal = date, region, service, terminal
	return nil
}

// parseSignedHeaders parses "host;x-amz-date". Names are compared in lower
// case and the canonical request lists them sorted, so a client that sent
// them in another case or order has still signed the same thing.
func (a *authorization) parseSignedHeaders(s string) *Error {
	lower := strings.ToLower(s) // no allocation when already lower case
	names := strings.Split(lower, ";")
	for _, n := range names {
		if !isToken(n) {
			return newError(IncompleteSignature, "SignedHeaders has an invalid header name: '"+clip(n)+"'.")
		}
	}
	if !slices.IsSorted(names) {
		slices.Sort(names)
		lower = strings.Join(names, ";")
	}
	hostSigned := false
	for i, n := range names {
		if i > 0 && names[i-1] == n {
			return newError(IncompleteSignature, "SignedHeaders lists '"+clip(n)+"' more than once.")
		}
		hostSigned = hostSigned || n == "host"
	}
	// Without host, a signature for one server would be good on any other
	// that shares the credential.
	if !hostSigned {
		return newError(IncompleteSignature, msgHostNotSigned)
	}
	a.signedHeaders, a.signedHeadersLine = names, lower
	return nil
}

// isToken reports whether s is a non-empty RFC 9110 token, the syntax of a
// header field name. Anything else (a newline, a colon) could make two
// different requests canonicalize alike.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
