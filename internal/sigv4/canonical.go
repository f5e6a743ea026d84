package sigv4

import (
	"cmp"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// queryParam is one decoded name=value pair of the query string.
type queryParam struct{ name, value string }

// parseQuery decodes a raw query string into its pairs, in order, keeping
// repeated names. Unlike url.ParseQuery it does not drop pairs holding a
// semicolon: the client signed them like any other character. Empty pairs
// ("a=1&&b=2") are skipped as the SDKs skip them. It reports false when a
// percent-escape is malformed, because then what the client signed cannot be
// known.
func parseQuery(raw string) ([]queryParam, bool) {
	if raw == "" {
		return nil, true
	}
	params := make([]queryParam, 0, strings.Count(raw, "&")+1)
	for part := range strings.SplitSeq(raw, "&") {
		if part == "" {
			continue
		}
		name, value, _ := strings.Cut(part, "=")
		var err1, err2 error
		name, err1 = url.QueryUnescape(name)
		value, err2 = url.QueryUnescape(value)
		if err1 != nil || err2 != nil {
			return nil, false
		}
		params = append(params, queryParam{name, value})
	}
	return params, true
}

// canonicalQuery encodes every name and value, sorts the pairs by encoded
// name then encoded value (AWS sorts after encoding, and the two orders
// differ), and joins them. A name without a value becomes "name=". The
// presigned signature parameter is left out: it cannot sign itself.
func canonicalQuery(params []queryParam, presigned bool) string {
	if len(params) == 0 {
		return ""
	}
	enc := make([]queryParam, 0, len(params))
	size := 0
	for _, p := range params {
		if presigned && p.name == paramSignature {
			continue
		}
		e := queryParam{escape(p.name, false), escape(p.value, false)}
		size += len(e.name) + len(e.value) + 2
		enc = append(enc, e)
	}
	slices.SortFunc(enc, func(a, b queryParam) int {
		return cmp.Or(strings.Compare(a.name, b.name), strings.Compare(a.value, b.value))
	})
	var b strings.Builder
	b.Grow(size)
	for i, p := range enc {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.name)
		b.WriteByte('=')
		b.WriteString(p.value)
	}
	return b.String()
}

// requestPath returns the path as the client sent it, still escaped. The
// request line (RequestURI) is preferred over r.URL: r.URL.EscapedPath()
// re-escapes whenever the client's escaping differs from Go's preferred one,
// and a middleware may have rewritten r.URL; the signature covers the bytes
// the client sent.
func requestPath(r *http.Request) string {
	p := r.RequestURI
	// The absolute form, "http://host/path?query", is what Go's own client
	// sends for a URL with an Opaque part.
	if scheme, rest, ok := strings.Cut(p, "://"); ok && scheme != "" && !strings.ContainsAny(scheme, "/?") {
		if i := strings.IndexAny(rest, "/?"); i >= 0 && rest[i] == '/' {
			p = rest[i:]
		} else {
			p = "/"
		}
	}
	if p != "" && p[0] == '/' {
		if i := strings.IndexByte(p, '?'); i >= 0 {
			p = p[:i]
		}
	} else if r.URL != nil { // "*", or a request built in code
		p = r.URL.EscapedPath()
	}
	if p == "" {
		return "/"
	}
	return p
}

// canonicalURIs returns the canonical URI to check the signature against
// and, when it differs, a second one to try if the first does not match.
//
// The first is computed from the path as sent, which is what the SDKs sign:
// S3 signs it as is, every other service escapes it once more (a '%' becomes
// "%25"; this is the SDKs' "double escaping"). The SDKs send the path
// escaped the strict RFC 3986 way, so that is all it takes for them.
//
// The second is the decoded path escaped the strict RFC 3986 way, for when
// something between client and server (a proxy) re-escaped the path
// differently, say "!" for "%21". Both denote the same resource, so accepting
// a signature over either grants nothing the client did not sign.
//
// Neither is normalized ("/a/../b" stays as it is), matching the SDKs.
func canonicalURIs(r *http.Request, s3 bool) (string, string) {
	wire := requestPath(r)
	first := wire
	if !s3 {
		first = escape(wire, true)
	}
	decoded, err := url.PathUnescape(wire)
	if err != nil {
		return first, ""
	}
	second := escape(decoded, true)
	if !s3 {
		second = escape(second, true)
	}
	if second == first {
		return first, ""
	}
	return first, second
}

// escape percent-encodes every byte of s outside the RFC 3986 unreserved set
// (A-Z a-z 0-9 - . _ ~), in upper-case hex, keeping '/' when keepSlash. A
// space becomes "%20", never "+".
func escape(s string, keepSlash bool) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if !unreserved(s[i], keepSlash) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	const hexDigits = "0123456789ABCDEF"
	b := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c, keepSlash) {
			b = append(b, c)
		} else {
			b = append(b, '%', hexDigits[c>>4], hexDigits[c&15])
		}
	}
	return string(b)
}

func unreserved(c byte, keepSlash bool) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	case c == '-', c == '.', c == '_', c == '~':
		return true
	}
	return keepSlash && c == '/'
}

// appendCanonicalHeaders appends "name:value\n" for every signed header.
func appendCanonicalHeaders(b []byte, r *http.Request, names []string) []byte {
	hs := headerSource{r: r}
	for _, name := range names {
		b = append(b, name...)
		b = append(b, ':')
		if name == "host" {
			// Go moves the Host header out of r.Header into r.Host.
			host := r.Host
			if host == "" && r.URL != nil {
				host = r.URL.Host
			}
			b = appendTrimmed(b, host)
		} else {
			for i, v := range hs.values(name) {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendTrimmed(b, v)
			}
		}
		b = append(b, '\n')
	}
	return b
}

// headerSource finds a request's header values by lower-case name.
type headerSource struct {
	r *http.Request
	// byLower indexes r.Header by lower-case name, for keys that are not in
	// canonical form (a request built in code; Go's server canonicalizes
	// them all). It is built at the first miss, so that a long
	// SignedHeaders list of absent names costs linear time, not the product
	// of the list's and the header's lengths.
	byLower map[string][]string
}

// values returns the values of the header with the given lower-case name,
// in the order the client sent them.
func (s *headerSource) values(name string) []string {
	key, ok := canonicalKeys[name]
	if !ok {
		key = textproto.CanonicalMIMEHeaderKey(name)
	}
	if vs, ok := s.r.Header[key]; ok {
		return vs
	}
	if s.byLower == nil {
		s.byLower = make(map[string][]string, len(s.r.Header))
		for k, vs := range s.r.Header {
			lk := strings.ToLower(k)
			s.byLower[lk] = append(s.byLower[lk], vs...)
		}
	}
	if vs, ok := s.byLower[name]; ok {
		return vs
	}
	// Go's server moves these two out of the header map when it uses them
	// to frame the body.
	switch name {
	case "content-length":
		if s.r.ContentLength >= 0 && len(s.r.TransferEncoding) == 0 {
			return []string{strconv.FormatInt(s.r.ContentLength, 10)}
		}
	case "transfer-encoding":
		if len(s.r.TransferEncoding) > 0 {
			return []string{strings.Join(s.r.TransferEncoding, ",")}
		}
	}
	return nil
}

// canonicalKeys spares the allocation of CanonicalMIMEHeaderKey for the
// headers that nearly every request signs.
var canonicalKeys = map[string]string{
	"amz-sdk-invocation-id": "Amz-Sdk-Invocation-Id",
	"amz-sdk-request":       "Amz-Sdk-Request",
	"content-length":        "Content-Length",
	"content-md5":           "Content-Md5",
	"content-type":          "Content-Type",
	"date":                  "Date",
	"x-amz-content-sha256":  "X-Amz-Content-Sha256",
	"x-amz-date":            "X-Amz-Date",
	"x-amz-security-token":  "X-Amz-Security-Token",
	"x-amz-target":          "X-Amz-Target",
	"x-amz-user-agent":      "X-Amz-User-Agent",
}

// appendTrimmed appends v without leading or trailing spaces and with every
// run of inner spaces collapsed to one, as SigV4 asks.
func appendTrimmed(b []byte, v string) []byte {
	v = strings.Trim(v, " \t")
	space := false
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == ' ' {
			if space {
				continue
			}
			space = true
		} else {
			space = false
		}
		b = append(b, c)
	}
	return b
}
