package s3api

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"hash"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// CopyObject (PUT /bucket/key with x-amz-copy-source).
//
// Authorization: Write on the destination (the request-level check, made
// by serve before anything is read) and Read on the source (made here,
// before the source's existence is revealed). Either refused: AccessDenied
// and nothing written.
//
// Tags (x-amz-tagging-directive): COPY, the default, gives the copy the
// source's tags, as read with the source's sidecar (Read on the source
// covers them); REPLACE gives it x-amz-tagging's, or none. UploadPartCopy
// copies no tags: a multipart upload's tags are those of its
// CreateMultipartUpload.
//
// The data is copied to a temp file (copyRange, which UploadPartCopy
// shares) and committed like a PutObject (fsync, rename, sidecar rename),
// so a crash never leaves a half object. The copy is byte for byte, so the
// source's stored checksums carry over; they, and the MD5 of a single-part
// source, are recomputed on the way and compared, so a source whose data
// was damaged on disk is refused (InternalError), not silently duplicated.

// copySource is the object x-amz-copy-source names.
type copySource struct{ bucket, key string }

// parseCopySource parses x-amz-copy-source: "[/]bucket/key", URL-encoded,
// optionally followed by "?versionId=...". The store keeps no versions, so
// the only version id it can honour is "null" (in S3, the version of an
// object in an unversioned bucket); any other is refused.
func parseCopySource(v string) (copySource, *s3Error) {
	raw, query, hasQuery := strings.Cut(v, "?")
	if hasQuery {
		vals, err := url.ParseQuery(query)
		if err != nil {
			return copySource{}, errInvalidCopySource()
		}
		for name := range vals {
			if name != "versionId" {
				return copySource{}, errInvalidArgument("Unsupported x-amz-copy-source parameter: " + name)
			}
		}
		if vals.Get("versionId") != "null" {
			return copySource{}, errInvalidArgument("Invalid version id specified: this store keeps no object versions; copy the current object (no versionId, or versionId=null).")
		}
	}
	p, err := url.PathUnescape(raw)
	if err != nil {
		return copySource{}, errInvalidCopySource()
	}
	bucket, key, ok := strings.Cut(strings.TrimPrefix(p, "/"), "/")
	if !ok || !validBucket(bucket) || !validKey(key) {
		return copySource{}, errInvalidCopySource()
	}
	return copySource{bucket: bucket, key: key}, nil
}

// metadataDirective reports whether x-amz-metadata-directive is REPLACE
// (the request's metadata) rather than COPY (the source's, the default).
func metadataDirective(r *http.Request) (replace bool, e *s3Error) {
	switch strings.ToUpper(r.Header.Get("x-amz-metadata-directive")) {
	case "", "COPY":
		return false, nil
	case "REPLACE":
		return true, nil
	}
	return false, errInvalidArgument("Unknown metadata directive.")
}

// copyPreconditions evaluates the x-amz-copy-source-if-* headers against
// the source, with S3's precedence: a present if-match (if-none-match)
// decides alone, without if-unmodified-since (if-modified-since).
func copyPreconditions(hd http.Header, m *objMeta) *s3Error {
	// HTTP dates have whole seconds.
	mod := m.Modified.Truncate(time.Second)
	if v := hd.Get("x-amz-copy-source-if-match"); v != "" {
		if !etagMatch(v, m.ETag) {
			return errPrecondition()
		}
	} else if t, ok := headerTime(hd, "x-amz-copy-source-if-unmodified-since"); ok && mod.After(t) {
		return errPrecondition()
	}
	if v := hd.Get("x-amz-copy-source-if-none-match"); v != "" {
		if etagMatch(v, m.ETag) {
			return errPrecondition()
		}
	} else if t, ok := headerTime(hd, "x-amz-copy-source-if-modified-since"); ok && !mod.After(t) {
		return errPrecondition()
	}
	return nil
}

// headerTime parses an HTTP date header; S3 ignores one it cannot parse.
func headerTime(hd http.Header, name string) (time.Time, bool) {
	v := hd.Get(name)
	if v == "" {
		return time.Time{}, false
	}
	t, err := http.ParseTime(v)
	return t, err == nil
}

type copyResult struct {
	XMLName           xml.Name `xml:"CopyObjectResult"`
	NS                string   `xml:"xmlns,attr"`
	ETag              string
	LastModified      string
	ChecksumType      string `xml:",omitempty"`
	ChecksumCRC32     string `xml:",omitempty"`
	ChecksumCRC32C    string `xml:",omitempty"`
	ChecksumCRC64NVME string `xml:",omitempty"`
	ChecksumSHA1      string `xml:",omitempty"`
	ChecksumSHA256    string `xml:",omitempty"`
}

func (h *Handler) copyObject(q *request) *s3Error {
	src, e := parseCopySource(q.r.Header.Get("x-amz-copy-source"))
	if e != nil {
		return e
	}
	replace, e := metadataDirective(q.r)
	if e != nil {
		return e
	}
	// Tags: the source's (COPY, the default), or x-amz-tagging's
	// (REPLACE; none without it). Under COPY, x-amz-tagging is ignored, as
	// S3 documents it: it is used "in conjunction with" REPLACE.
	replaceTags, e := taggingDirective(q.r)
	if e != nil {
		return e
	}
	var newTags map[string]string
	if replaceTags {
		if newTags, e = requestTags(q.r); e != nil {
			return e
		}
	}
	addAlgo := strings.ToLower(q.r.Header.Get("x-amz-checksum-algorithm"))
	if _, ok := checksumAlgos[addAlgo]; addAlgo != "" && !ok {
		return errInvalidRequest("Invalid checksum algorithm: " + addAlgo)
	}
	// A copy has no body; reading it checks the signed payload hash.
	if _, e := h.readSmallBody(q); e != nil {
		return e
	}
	m, f, e := h.openCopySource(q, src)
	if e != nil {
		return e
	}
	defer f.Close()
	// Onto itself, a copy must change something: its metadata, or add a
	// checksum. (Storage class and encryption, S3's other reasons, are not
	// kept by this store. Its tags are not among S3's reasons: a tagging
	// directive REPLACE alone does not make the copy legal; that is what
	// PutObjectTagging is for.)
	if src.bucket == q.bucket && src.key == q.key && !replace && (addAlgo == "" || m.Checksums[addAlgo] != "") {
		return errCopyToItself()
	}
	if m.Size > maxObjectSize {
		return errCopySourceTooLarge()
	}
	wr, e := h.copyRange(q, f, m, 0, m.Size, addAlgo)
	if e != nil {
		return e
	}
	nm := &objMeta{Key: q.key, Size: wr.size, ETag: wr.md5, Checksums: wr.checksums, Modified: time.Now().UTC(),
		ContentType: m.ContentType, Headers: m.Headers, UserMeta: m.UserMeta, Tags: m.Tags}
	if replace {
		nm.ContentType, nm.Headers, nm.UserMeta = requestMeta(q.r)
	}
	if replaceTags {
		nm.Tags = newTags
	}
	if err := h.st.commit(q.bucket, wr.path, nm); err != nil {
		os.Remove(wr.path)
		if errors.Is(err, fs.ErrNotExist) {
			return errNoSuchBucket()
		}
		h.log.Error("s3 copy: commit", "err", err, "request_id", q.id)
		return errInternal()
	}
	return writeXML(q.w, 200, copyResultOf(nm))
}

// openCopySource opens the source object of a copy (CopyObject,
// UploadPartCopy): Read on it is authorized first, so that a caller who
// may not read it learns nothing, not even whether it exists; then the
// x-amz-copy-source-if-* conditions are evaluated against it. The caller
// closes the file.
func (h *Handler) openCopySource(q *request, src copySource) (*objMeta, *os.File, *s3Error) {
	if !h.auth.Allow(q.r.Context(), q.res.Credential, Read, src.bucket, src.key) {
		return nil, nil, errAccessDenied()
	}
	if !h.st.bucketExists(src.bucket) {
		return nil, nil, errNoSuchBucket()
	}
	m, f, err := h.st.open(src.bucket, src.key)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, errNoSuchKey()
	}
	if err != nil {
		h.log.Error("s3 copy: open source", "err", err, "request_id", q.id)
		return nil, nil, errInternal()
	}
	if e := copyPreconditions(q.r.Header, m); e != nil {
		f.Close()
		return nil, nil, e
	}
	return m, f, nil
}

func copyResultOf(m *objMeta) copyResult {
	out := copyResult{
		NS: s3NS, ETag: `"` + m.ETag + `"`, LastModified: m.Modified.UTC().Format(s3Time),
		ChecksumCRC32: m.Checksums["crc32"], ChecksumCRC32C: m.Checksums["crc32c"], ChecksumCRC64NVME: m.Checksums["crc64nvme"],
		ChecksumSHA1: m.Checksums["sha1"], ChecksumSHA256: m.Checksums["sha256"],
	}
	if len(m.Checksums) > 0 {
		out.ChecksumType = "FULL_OBJECT"
	}
	return out
}

// copyRange copies length bytes of the source object m (open as src),
// from offset start, to a synced temp file, computing their MD5 and the
// checksums of algos ("" entries are skipped). A copy of the whole object
// also recomputes the source's recorded digests (its MD5 if it is
// single-part, and each stored checksum) and checks them, so that a source
// whose data was damaged on disk is refused (InternalError), not silently
// duplicated; its checksums are then among those returned. (A range cannot
// be checked against digests of the whole object; the data file's size
// still must be the recorded one.)
func (h *Handler) copyRange(q *request, src *os.File, m *objMeta, start, length int64, algos ...string) (*written, *s3Error) {
	whole := start == 0 && length == m.Size
	hashes := map[string]hash.Hash{}
	if whole {
		for a := range m.Checksums {
			if newHash, ok := checksumAlgos[a]; ok {
				hashes[a] = newHash()
			}
		}
	}
	for _, a := range algos {
		if newHash, ok := checksumAlgos[a]; ok && hashes[a] == nil {
			hashes[a] = newHash()
		}
	}
	if fi, err := src.Stat(); err != nil || fi.Size() != m.Size {
		h.log.Error("s3 copy: the source's data file does not have its recorded size", "err", err, "key", m.Key, "request_id", q.id)
		return nil, errInternal()
	}
	f, err := h.st.pending()
	if err != nil {
		h.log.Error("s3 temp file", "err", err)
		return nil, errInternal()
	}
	defer f.discard()
	md := md5.New()
	ws := []io.Writer{f, md}
	for _, hh := range hashes {
		ws = append(ws, hh)
	}
	n, err := io.CopyBuffer(io.MultiWriter(ws...), io.NewSectionReader(src, start, length), make([]byte, copyBufSize))
	if err != nil || n != length {
		h.log.Error("s3 copy: read source", "err", err, "size", n, "want", length, "request_id", q.id)
		return nil, errInternal()
	}
	md5Hex := hex.EncodeToString(md.Sum(nil))
	sums := map[string]string{}
	damaged := whole && m.Parts == 0 && md5Hex != m.ETag
	for a, hh := range hashes {
		sums[a] = sumBase64(hh)
		if want, stored := m.Checksums[a]; whole && stored && want != sums[a] {
			damaged = true
		}
	}
	if damaged {
		h.log.Error("s3 copy: the source's data does not match its recorded digests", "key", m.Key, "request_id", q.id)
		return nil, errInternal()
	}
	path, err := f.finish()
	if err != nil {
		h.log.Error("s3 sync", "err", err)
		return nil, errInternal()
	}
	return &written{path: path, size: n, md5: md5Hex, checksums: sums}, nil
}
