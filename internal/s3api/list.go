package s3api

import (
	"encoding/base64"
	"encoding/xml"
	"strconv"
	"strings"
	"time"
)

type listEntry struct {
	Key          string
	LastModified string
	ETag         string
	Size         int64
	StorageClass string
}

type listPrefix struct{ Prefix string }

type listV2Result struct {
	XMLName               xml.Name `xml:"ListBucketResult"`
	NS                    string   `xml:"xmlns,attr"`
	Name                  string
	Prefix                string
	Delimiter             string `xml:",omitempty"`
	StartAfter            string `xml:",omitempty"`
	ContinuationToken     string `xml:",omitempty"`
	NextContinuationToken string `xml:",omitempty"`
	KeyCount              int
	MaxKeys               int
	EncodingType          string `xml:",omitempty"`
	IsTruncated           bool
	Contents              []listEntry
	CommonPrefixes        []listPrefix
}

func (h *Handler) listObjectsV2(q *request) *s3Error {
	prefix, delim := q.get("prefix"), q.get("delimiter")
	maxKeys := 1000
	if v := q.get("max-keys"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return errInvalidArgument("Provided max-keys not an integer or within integer range")
		}
		maxKeys = min(n, 1000)
	}
	enc := q.get("encoding-type")
	if enc != "" && enc != "url" {
		return errInvalidArgument("Invalid Encoding Method specified in Request")
	}
	marker := q.get("start-after")
	token := q.get("continuation-token")
	if q.has("continuation-token") {
		raw, err := base64.RawURLEncoding.DecodeString(token)
		if err != nil || token == "" {
			return errInvalidArgument("The continuation token provided is incorrect")
		}
		marker = string(raw)
	}
	objs, err := h.st.list(q.bucket, prefix)
	if err != nil {
		h.log.Error("s3 list", "err", err)
		return errInternal()
	}
	e := func(s string) string {
		if enc == "url" {
			return urlEncode(s)
		}
		return s
	}
	out := listV2Result{
		NS: s3NS, Name: q.bucket, Prefix: e(prefix), Delimiter: e(delim), StartAfter: e(q.get("start-after")),
		ContinuationToken: token, MaxKeys: maxKeys, EncodingType: enc,
	}
	last, lastPrefix := "", ""
	for _, m := range objs {
		if m.Key <= marker {
			continue
		}
		// A token may name a common prefix: skip everything under it.
		if delim != "" && strings.HasSuffix(marker, delim) && strings.HasPrefix(m.Key, marker) {
			continue
		}
		cp := ""
		if delim != "" {
			if i := strings.Index(m.Key[len(prefix):], delim); i >= 0 {
				cp = m.Key[:len(prefix)+i+len(delim)]
			}
		}
		if cp != "" && cp == lastPrefix {
			continue
		}
		if out.KeyCount >= maxKeys {
			out.IsTruncated = true
			break
		}
		out.KeyCount++
		if cp != "" {
			lastPrefix, last = cp, cp
			out.CommonPrefixes = append(out.CommonPrefixes, listPrefix{e(cp)})
			continue
		}
		last = m.Key
		out.Contents = append(out.Contents, listEntry{
			Key: e(m.Key), LastModified: m.Modified.UTC().Format(time.RFC3339Nano), ETag: `"` + m.ETag + `"`,
			Size: m.Size, StorageClass: "STANDARD",
		})
	}
	if out.IsTruncated {
		out.NextContinuationToken = base64.RawURLEncoding.EncodeToString([]byte(last))
	}
	return writeXML(q.w, 200, out)
}

// urlEncode escapes s for encoding-type=url: everything but RFC 3986
// unreserved characters and '/' is percent-encoded.
func urlEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-_.~/", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteString("%" + strings.ToUpper(strconv.FormatInt(int64(c)>>4, 16)+strconv.FormatInt(int64(c)&15, 16)))
	}
	return b.String()
}
