package s3api

import (
	"encoding/xml"
	"errors"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Object tagging: GetObjectTagging, PutObjectTagging and
// DeleteObjectTagging (GET, PUT and DELETE /bucket/key?tagging), and the
// x-amz-tagging header of PutObject, CreateMultipartUpload (applied at
// CompleteMultipartUpload) and CopyObject (with x-amz-tagging-directive
// REPLACE; COPY, the default, copies the source's tags). GetObject and
// HeadObject answer x-amz-tagging-count for an object that has tags.
//
// Authorization: reading the tags is a Read of the object, changing or
// deleting them a Write of it (see Op). A job credential may thus read the
// tags of its input artifacts and set those of its outputs.
//
// Storage: the tag set is a field of the object's sidecar (objMeta.Tags),
// so a new object's tags are committed with it. PutObjectTagging and
// DeleteObjectTagging rewrite the sidecar alone, under the store's commit
// lock (store.setTags): the object's data, ETag and LastModified do not
// change, as in S3, and a concurrent PutObject of the key either replaces
// the object with its tags before the update (which then applies to the
// new object) or after it; it never loses its body.
//
// Validation, as S3 answers (the S3 user guide's limits; the codes and
// messages as S3 is reported to answer them):
//
//   - at most 10 tags: 400 BadRequest "Object tags cannot be greater than
//     10" (not InvalidTag: that is what S3 answers, for the document and
//     the header alike);
//   - a key of 1 to 128 characters and a value of 0 to 256, counted, as S3
//     says it counts them, in UTF-16 code units (a character outside the
//     Basic Multilingual Plane counts two): InvalidTag "The TagKey (or
//     TagValue) you have provided is invalid" otherwise, with a TagKey
//     (and TagValue) element;
//   - unique keys: InvalidTag "Cannot provide multiple Tags with the same
//     key";
//   - no key beginning with "aws:" (any case), S3's reserved prefix:
//     InvalidTag "System tags cannot be added/updated by requester";
//   - no control characters (tab, CR, LF and the like, which S3 refuses
//     too, and some of which XML cannot carry back in GetObjectTagging's
//     answer): InvalidTag. S3 restricts tags further, to letters, digits,
//     white space and _ . : / = + - @; we do not, so a tag S3 would
//     refuse for its punctuation is kept here.
//
// PutObjectTagging's body is <Tagging><TagSet><Tag><Key/><Value/></Tag>...
// </TagSet></Tagging> (any namespace), at most maxXMLBody bytes, and
// must carry Content-MD5 or an x-amz-checksum-* value (S3 requires one for
// this call, and the SDKs send one): MalformedXML for another document, a
// missing TagSet, or a Tag without its Key or Value. An empty TagSet
// removes the tags, like DeleteObjectTagging.
//
// The x-amz-tagging header is a URL query: "k1=v1&k2=v2", percent-encoded
// UTF-8, "+" for a space, the first "=" ending the key (a pair without "="
// has the empty value). A key left empty, a duplicate key, a bad escape or
// bytes that are not UTF-8: 400 InvalidArgument "The header 'x-amz-tagging'
// shall be encoded as UTF-8 then URLEncoded URL query parameters without
// tag name duplicates." (ArgumentName x-amz-tagging); then the limits
// above. It is checked before any body byte is read.
//
// versionId: the store keeps no versions; "null" names the object, any
// other id is InvalidArgument, as for DeleteObject.

const (
	maxObjectTags  = 10
	maxTagKeyLen   = 128 // UTF-16 code units
	maxTagValueLen = 256
)

// tag is one key-value pair, in the order a request gave it.
type tag struct{ Key, Value string }

// taggingDoc is GetObjectTagging's answer.
type taggingDoc struct {
	XMLName xml.Name `xml:"Tagging"`
	NS      string   `xml:"xmlns,attr"`
	TagSet  struct {
		Tags []tag `xml:"Tag"`
	} `xml:"TagSet"`
}

// taggingRequest is PutObjectTagging's body; pointers tell a missing
// element from an empty one.
type taggingRequest struct {
	XMLName xml.Name `xml:"Tagging"`
	TagSet  *struct {
		Tags []struct {
			Key   *string `xml:"Key"`
			Value *string `xml:"Value"`
		} `xml:"Tag"`
	} `xml:"TagSet"`
}

// parseTaggingBody parses and checks a PutObjectTagging body.
func parseTaggingBody(body []byte) (map[string]string, *s3Error) {
	var req taggingRequest
	if err := xml.Unmarshal(body, &req); err != nil || req.TagSet == nil {
		return nil, errMalformedXML()
	}
	tags := make([]tag, 0, len(req.TagSet.Tags))
	for _, t := range req.TagSet.Tags {
		if t.Key == nil || t.Value == nil {
			return nil, errMalformedXML()
		}
		tags = append(tags, tag{Key: *t.Key, Value: *t.Value})
	}
	return checkTags(tags)
}

// parseTaggingHeader parses and checks an x-amz-tagging header; "" is no
// tags.
func parseTaggingHeader(v string) (map[string]string, *s3Error) {
	invalid := func() *s3Error {
		return errInvalidArgument("The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters without tag name duplicates.").
			withArgument("x-amz-tagging", v)
	}
	var tags []tag
	seen := map[string]bool{}
	for pair := range strings.SplitSeq(v, "&") {
		if pair == "" {
			continue
		}
		rawKey, rawValue, _ := strings.Cut(pair, "=")
		k, err1 := url.QueryUnescape(rawKey)
		val, err2 := url.QueryUnescape(rawValue)
		if err1 != nil || err2 != nil || k == "" || !utf8.ValidString(k) || !utf8.ValidString(val) || seen[k] {
			return nil, invalid()
		}
		seen[k] = true
		tags = append(tags, tag{Key: k, Value: val})
	}
	return checkTags(tags)
}

// requestTags reads the request's x-amz-tagging header.
func requestTags(r *http.Request) (map[string]string, *s3Error) {
	return parseTaggingHeader(r.Header.Get("x-amz-tagging"))
}

// checkTags applies S3's limits to a tag set and returns it as a map (nil
// for none).
func checkTags(tags []tag) (map[string]string, *s3Error) {
	if len(tags) > maxObjectTags {
		return nil, newErr(400, "BadRequest", "Object tags cannot be greater than 10")
	}
	if len(tags) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(tags))
	for _, t := range tags {
		if n := utf16Len(t.Key); n == 0 || n > maxTagKeyLen || !tagText(t.Key) {
			return nil, errInvalidTag("The TagKey you have provided is invalid", t.Key)
		}
		if utf16Len(t.Value) > maxTagValueLen || !tagText(t.Value) {
			e := errInvalidTag("The TagValue you have provided is invalid", t.Key)
			e.extra = append(e.extra, xmlElem{XMLName: xml.Name{Local: "TagValue"}, Value: t.Value})
			return nil, e
		}
		if strings.HasPrefix(strings.ToLower(t.Key), "aws:") {
			return nil, errInvalidTag("System tags cannot be added/updated by requester", t.Key)
		}
		if _, dup := out[t.Key]; dup {
			return nil, errInvalidTag("Cannot provide multiple Tags with the same key", t.Key)
		}
		out[t.Key] = t.Value
	}
	return out, nil
}

func errInvalidTag(msg, key string) *s3Error {
	e := newErr(400, "InvalidTag", msg)
	e.extra = []xmlElem{{XMLName: xml.Name{Local: "TagKey"}, Value: key}}
	return e
}

// utf16Len is the length of s in UTF-16 code units, which is how S3
// counts the characters of a tag.
func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		if r >= 0x10000 {
			n += 2
		} else {
			n++
		}
	}
	return n
}

// tagText refuses what no tag may hold: bytes that are not UTF-8, control
// characters, and the two non-characters XML cannot carry.
func tagText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == 0xFFFE || r == 0xFFFF {
			return false
		}
	}
	return true
}

// sortedTags lists a tag set sorted by key, as S3 lists it.
func sortedTags(tags map[string]string) []tag {
	out := make([]tag, 0, len(tags))
	for k, v := range tags {
		out = append(out, tag{Key: k, Value: v})
	}
	slices.SortFunc(out, func(a, b tag) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// versionParam checks a request's versionId: the store keeps no versions
// (its buckets are S3's unversioned buckets), so "null" names the object
// and any other id is refused, as S3 refuses it on an unversioned bucket:
// 400 InvalidArgument "Invalid version id specified", or "Version id cannot
// be the empty string".
func versionParam(q *request) *s3Error {
	if !q.has("versionId") {
		return nil
	}
	switch v := q.get("versionId"); v {
	case "null":
		return nil
	case "":
		return errEmptyVersionID()
	default:
		return errInvalidVersionID(v)
	}
}

func (h *Handler) getObjectTagging(q *request) *s3Error {
	if e := versionParam(q); e != nil {
		return e
	}
	m, err := h.st.head(q.bucket, q.key)
	if errors.Is(err, fs.ErrNotExist) {
		return errNoSuchKey()
	}
	if err != nil {
		h.log.Error("s3 get tagging", "err", err, "request_id", q.id)
		return errInternal()
	}
	out := taggingDoc{NS: s3NS}
	out.TagSet.Tags = sortedTags(m.Tags)
	return writeXML(q.w, http.StatusOK, out)
}

func (h *Handler) putObjectTagging(q *request) *s3Error {
	if e := versionParam(q); e != nil {
		return e
	}
	body, e := h.readVerifiedBody(q)
	if e != nil {
		return e
	}
	if len(body) == 0 {
		return newErr(400, "MissingRequestBodyError", "Request Body is empty")
	}
	tags, e := parseTaggingBody(body)
	if e != nil {
		return e
	}
	return h.setTags(q, tags, http.StatusOK)
}

func (h *Handler) deleteObjectTagging(q *request) *s3Error {
	if e := versionParam(q); e != nil {
		return e
	}
	// A DELETE has no body; reading it checks the signed payload hash.
	if _, e := h.readSmallBody(q); e != nil {
		return e
	}
	return h.setTags(q, nil, http.StatusNoContent)
}

// setTags replaces the object's tags and answers status.
func (h *Handler) setTags(q *request, tags map[string]string, status int) *s3Error {
	_, err := h.st.setTags(q.bucket, q.key, tags)
	if errors.Is(err, fs.ErrNotExist) {
		return errNoSuchKey()
	}
	if err != nil {
		h.log.Error("s3 set tagging", "err", err, "request_id", q.id)
		return errInternal()
	}
	q.w.WriteHeader(status)
	return nil
}

// taggingDirective reports whether x-amz-tagging-directive is REPLACE (the
// request's x-amz-tagging) rather than COPY (the source's tags, the
// default).
func taggingDirective(r *http.Request) (replace bool, e *s3Error) {
	switch v := r.Header.Get("x-amz-tagging-directive"); strings.ToUpper(v) {
	case "", "COPY":
		return false, nil
	case "REPLACE":
		return true, nil
	default:
		return false, errInvalidArgument("Unknown tagging directive.").withArgument("x-amz-tagging-directive", v)
	}
}
