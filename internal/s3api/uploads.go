package s3api

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ListMultipartUploads (GET /bucket?uploads).
//
// Authorized as List on the bucket, like ListObjectsV2: it reveals the keys
// being written, which is what listing a bucket reveals, so whoever may not
// list a bucket may not list its uploads either (job credentials may not;
// they only know, and may ListParts of, the uploads they started).

type owner struct {
	ID          string
	DisplayName string
}

type uploadListEntry struct {
	Key               string
	UploadId          string
	Initiator         owner
	Owner             owner
	StorageClass      string
	Initiated         string
	ChecksumAlgorithm string `xml:",omitempty"`
}

type listUploadsResult struct {
	XMLName            xml.Name `xml:"ListMultipartUploadsResult"`
	NS                 string   `xml:"xmlns,attr"`
	Bucket             string
	KeyMarker          string
	UploadIdMarker     string
	NextKeyMarker      string
	NextUploadIdMarker string
	Prefix             string
	Delimiter          string `xml:",omitempty"`
	MaxUploads         int
	EncodingType       string `xml:",omitempty"`
	IsTruncated        bool
	Uploads            []uploadListEntry `xml:"Upload"`
	CommonPrefixes     []listPrefix
}

// s3Time is the time format of S3's XML bodies.
const s3Time = "2006-01-02T15:04:05.000Z"

// pendingUpload is an upload in progress.
type pendingUpload struct {
	id string
	u  *uploadMeta
}

// bucketUploads returns the bucket's uploads whose keys start with prefix,
// sorted by key, then by id (so by initiation; see newUploadID). It reads
// every upload's upload.json: there are few at any time, as they last
// minutes and the sweeper removes the abandoned ones.
func (h *Handler) bucketUploads(bucket, prefix string) ([]pendingUpload, error) {
	ents, err := os.ReadDir(filepath.Join(h.st.root, "uploads"))
	if err != nil {
		return nil, err
	}
	var out []pendingUpload
	for _, e := range ents {
		if !e.IsDir() || !uploadIDRE.MatchString(e.Name()) {
			continue
		}
		u, err := h.readUploadMeta(e.Name())
		if err != nil {
			continue // completed meanwhile, or a crash leftover for the sweeper
		}
		if u.Bucket == bucket && strings.HasPrefix(u.Key, prefix) {
			out = append(out, pendingUpload{id: e.Name(), u: u})
		}
	}
	slices.SortFunc(out, func(a, b pendingUpload) int {
		if c := strings.Compare(a.u.Key, b.u.Key); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	return out, nil
}

// afterMarker tells whether an upload comes after the page markers: S3
// lists keys after key-marker, and uploads of key-marker itself whose ids
// are after upload-id-marker.
func afterMarker(p pendingUpload, keyMarker, idMarker string) bool {
	if keyMarker == "" {
		return true
	}
	return p.u.Key > keyMarker || p.u.Key == keyMarker && idMarker != "" && p.id > idMarker
}

func (h *Handler) listUploads(q *request) *s3Error {
	prefix, delim := q.get("prefix"), q.get("delimiter")
	maxUploads := 1000
	if v := q.get("max-uploads"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return errInvalidArgument("Provided max-uploads not an integer or within integer range")
		}
		maxUploads = min(n, 1000)
	}
	enc := q.get("encoding-type")
	if enc != "" && enc != "url" {
		return errInvalidArgument("Invalid Encoding Method specified in Request")
	}
	keyMarker, idMarker := q.get("key-marker"), q.get("upload-id-marker")
	if keyMarker == "" {
		idMarker = "" // S3 ignores upload-id-marker without key-marker
	}
	ups, err := h.bucketUploads(q.bucket, prefix)
	if err != nil {
		h.log.Error("s3 list uploads", "err", err)
		return errInternal()
	}
	e := func(s string) string {
		if enc == "url" {
			return urlEncode(s)
		}
		return s
	}
	out := listUploadsResult{
		NS: s3NS, Bucket: q.bucket, KeyMarker: e(keyMarker), UploadIdMarker: idMarker,
		Prefix: e(prefix), Delimiter: e(delim), MaxUploads: maxUploads, EncodingType: enc,
	}
	n, lastKey, lastID, lastPrefix := 0, "", "", ""
	for _, p := range ups {
		if !afterMarker(p, keyMarker, idMarker) {
			continue
		}
		// A key-marker may name a common prefix: skip everything under it.
		if delim != "" && strings.HasSuffix(keyMarker, delim) && strings.HasPrefix(p.u.Key, keyMarker) {
			continue
		}
		cp := commonPrefix(p.u.Key, prefix, delim)
		if cp != "" && cp == lastPrefix {
			continue
		}
		if n >= maxUploads {
			out.IsTruncated = true
			break
		}
		n++
		if cp != "" {
			lastPrefix, lastKey, lastID = cp, cp, ""
			out.CommonPrefixes = append(out.CommonPrefixes, listPrefix{e(cp)})
			continue
		}
		lastKey, lastID = p.u.Key, p.id
		out.Uploads = append(out.Uploads, uploadEntry(p, e))
	}
	out.NextKeyMarker, out.NextUploadIdMarker = e(lastKey), lastID
	return writeXML(q.w, 200, out)
}

// commonPrefix is the prefix key rolls up into under delim ("" if none).
func commonPrefix(key, prefix, delim string) string {
	if delim == "" {
		return ""
	}
	if i := strings.Index(key[len(prefix):], delim); i >= 0 {
		return key[:len(prefix)+i+len(delim)]
	}
	return ""
}

func uploadEntry(p pendingUpload, enc func(string) string) uploadListEntry {
	initiator := owner{ID: "pipelined", DisplayName: "pipelined"}
	if p.u.Initiator != "" {
		initiator = owner{ID: p.u.Initiator, DisplayName: p.u.Initiator}
	}
	return uploadListEntry{
		Key: enc(p.u.Key), UploadId: p.id, Initiator: initiator,
		Owner:        owner{ID: "pipelined", DisplayName: "pipelined"},
		StorageClass: "STANDARD", Initiated: p.u.Initiated.UTC().Format(s3Time),
		ChecksumAlgorithm: strings.ToUpper(p.u.Algo),
	}
}
