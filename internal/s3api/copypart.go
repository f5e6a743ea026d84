package s3api

import (
	"encoding/xml"
	"strconv"
	"strings"
)

// UploadPartCopy (PUT /bucket/key?partNumber=N&uploadId=ID with
// x-amz-copy-source): a part whose bytes are those of an existing object,
// or of the byte range x-amz-copy-source-range names. The aws CLI copies
// objects above its multipart threshold (8 MB by default) between keys
// this way, part by part.
//
// Authorization is CopyObject's: Write on the destination, which is the
// upload's bucket and key (the request-level check serve makes before
// anything is read, as for UploadPart), and Read on the source, made before
// the source's existence is revealed (openCopySource). Either refused:
// AccessDenied, and nothing is written.
//
// The per-upload lock discipline is UploadPart's (see sweep.go): the bytes
// are copied to a temp file with no lock held, then putPart takes the
// upload's lock, checks the upload is still there (NoSuchUpload if it was
// completed, aborted or swept meanwhile, and the temp file is removed), and
// moves the part in.
//
// The part's ETag is the MD5 of the copied bytes. If the upload was created
// with a checksum algorithm, the part's checksum is computed over the
// copied bytes and returned in CopyPartResult, as S3 does: clients pass it
// back in CompleteMultipartUpload, which checks it.

// copySourceRange parses x-amz-copy-source-range against the source's size
// and returns the offset and length to copy ("" is the whole object).
// S3's answers, which we match: anything but "bytes=first-last" with
// first <= last (no suffix or open-ended ranges, no lists) is
// InvalidArgument naming the header's form; a range that starts past the
// object is InvalidRequest; one that ends past it is InvalidArgument
// "Range specified is not valid for source object of size: N".
func copySourceRange(v string, size int64) (start, length int64, e *s3Error) {
	if v == "" {
		return 0, size, nil
	}
	spec, ok := strings.CutPrefix(v, "bytes=")
	if !ok {
		return 0, 0, errCopyRangeForm(v)
	}
	a, b, ok := strings.Cut(spec, "-")
	first, okA := offset(a)
	last, okB := offset(b)
	if !ok || !okA || !okB || first > last {
		return 0, 0, errCopyRangeForm(v)
	}
	if first >= size {
		return 0, 0, errCopyRangeStart()
	}
	if last >= size {
		return 0, 0, errCopyRangeEnd(v, size)
	}
	return first, last - first + 1, nil
}

// offset parses a byte offset: decimal digits only.
func offset(s string) (int64, bool) {
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

type copyPartResult struct {
	XMLName           xml.Name `xml:"CopyPartResult"`
	NS                string   `xml:"xmlns,attr"`
	LastModified      string
	ETag              string
	ChecksumCRC32     string `xml:",omitempty"`
	ChecksumCRC32C    string `xml:",omitempty"`
	ChecksumCRC64NVME string `xml:",omitempty"`
	ChecksumSHA1      string `xml:",omitempty"`
	ChecksumSHA256    string `xml:",omitempty"`
}

func (h *Handler) uploadPartCopy(q *request) *s3Error {
	n, e := partNumber(q)
	if e != nil {
		return e
	}
	src, e := parseCopySource(q.r.Header.Get("x-amz-copy-source"))
	if e != nil {
		return e
	}
	// No body; reading it checks the signed payload hash.
	if _, e := h.readSmallBody(q); e != nil {
		return e
	}
	// A first look at the upload, to fail fast before reading the source;
	// putPart looks again under the upload's lock.
	id, u, e := h.loadUpload(q)
	if e != nil {
		return e
	}
	m, f, e := h.openCopySource(q, src)
	if e != nil {
		return e
	}
	defer f.Close()
	start, length, e := copySourceRange(q.r.Header.Get("x-amz-copy-source-range"), m.Size)
	if e != nil {
		return e
	}
	if length > maxObjectSize {
		return errCopySourceTooLarge()
	}
	wr, e := h.copyRange(q, f, m, start, length, u.Algo)
	if e != nil {
		return e
	}
	// The part keeps the upload's checksum only, like an uploaded part
	// the client sent no other checksum for. (copyRange also computes the
	// source's own, to check a whole-object copy against them.)
	sums := map[string]string{}
	if u.Algo != "" {
		sums[u.Algo] = wr.checksums[u.Algo]
	}
	wr.checksums = sums
	pm, e := h.putPart(q, id, n, wr)
	if e != nil {
		return e
	}
	return writeXML(q.w, 200, copyPartResult{
		NS: s3NS, LastModified: pm.Modified.Format(s3Time), ETag: `"` + pm.ETag + `"`,
		ChecksumCRC32: pm.Checksums["crc32"], ChecksumCRC32C: pm.Checksums["crc32c"], ChecksumCRC64NVME: pm.Checksums["crc64nvme"],
		ChecksumSHA1: pm.Checksums["sha1"], ChecksumSHA256: pm.Checksums["sha256"],
	})
}
