package s3api

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// uploadMeta is uploads/<id>/upload.json.
type uploadMeta struct {
	Bucket      string            `json:"bucket"`
	Key         string            `json:"key"`
	ContentType string            `json:"contentType,omitempty"`
	Headers     map[string]string `json:"headers,omitempty"`
	UserMeta    map[string]string `json:"meta,omitempty"`
	Algo        string            `json:"checksumAlgorithm,omitempty"`
	// Tags are CreateMultipartUpload's x-amz-tagging, checked then and
	// given to the object at CompleteMultipartUpload.
	Tags      map[string]string `json:"tags,omitempty"`
	Initiated time.Time         `json:"initiated"`
	// Initiator is the principal of the credential that created the
	// upload (ListMultipartUploads' Initiator), never a secret.
	Initiator string `json:"initiator,omitempty"`
}

// partMeta is uploads/<id>/<n>.json.
type partMeta struct {
	Number    int               `json:"n"`
	Size      int64             `json:"size"`
	ETag      string            `json:"etag"`
	Checksums map[string]string `json:"checksums,omitempty"`
	Data      string            `json:"data"`
	Modified  time.Time         `json:"modified"`
}

var uploadIDRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

// newUploadID returns a fresh upload id: the creation time (Unix
// nanoseconds, 16 hex digits) then 64 random bits. Ids of the same key
// thus sort in the order the uploads were initiated, which is how
// ListMultipartUploads orders them and pages through them (S3 compares
// upload-id-marker lexicographically), and they stay unguessable.
func newUploadID() string {
	return fmt.Sprintf("%016x", uint64(time.Now().UnixNano())) + randHex(8)
}

func (h *Handler) uploadDir(id string) string { return filepath.Join(h.st.root, "uploads", id) }

// readUploadMeta reads uploads/<id>/upload.json.
func (h *Handler) readUploadMeta(id string) (*uploadMeta, error) {
	raw, err := os.ReadFile(filepath.Join(h.uploadDir(id), "upload.json"))
	if err != nil {
		return nil, err
	}
	var u uploadMeta
	if err := json.Unmarshal(raw, &u); err != nil {
		return nil, fmt.Errorf("s3api: corrupt upload %s: %w", id, err)
	}
	return &u, nil
}

// loadUpload finds the upload named by the request's uploadId, checking it
// belongs to the request's bucket and key.
func (h *Handler) loadUpload(q *request) (string, *uploadMeta, *s3Error) {
	id := q.get("uploadId")
	if !uploadIDRE.MatchString(id) {
		return "", nil, errNoSuchUpload()
	}
	u, err := h.readUploadMeta(id)
	if err != nil || u.Bucket != q.bucket || u.Key != q.key {
		return "", nil, errNoSuchUpload()
	}
	return id, u, nil
}

func writeJSONFile(s *store, path string, v any) error {
	tmp, err := s.tempJSON(v)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

func (h *Handler) createUpload(q *request) *s3Error {
	if _, e := h.readSmallBody(q); e != nil {
		return e
	}
	ctype, headers, user := requestMeta(q.r)
	algo := strings.ToLower(q.r.Header.Get("x-amz-checksum-algorithm"))
	if algo != "" {
		if _, ok := checksumAlgos[algo]; !ok {
			return errInvalidRequest("Invalid checksum algorithm: " + algo)
		}
	}
	tags, e := requestTags(q.r)
	if e != nil {
		return e
	}
	id := newUploadID()
	u := uploadMeta{Bucket: q.bucket, Key: q.key, ContentType: ctype, Headers: headers, UserMeta: user, Algo: algo,
		Tags: tags, Initiated: time.Now().UTC(), Initiator: q.res.Credential.Principal}
	// Held until upload.json is in place, so that a sweep never takes the
	// new directory for a crash leftover.
	unlock := h.uploads.lock(id)
	defer unlock()
	if err := os.Mkdir(h.uploadDir(id), 0o700); err != nil {
		return errInternal()
	}
	if err := writeJSONFile(h.st, filepath.Join(h.uploadDir(id), "upload.json"), u); err != nil {
		os.RemoveAll(h.uploadDir(id))
		return errInternal()
	}
	type result struct {
		XMLName  xml.Name `xml:"InitiateMultipartUploadResult"`
		NS       string   `xml:"xmlns,attr"`
		Bucket   string
		Key      string
		UploadId string
	}
	if algo != "" {
		q.w.Header().Set("x-amz-checksum-algorithm", strings.ToUpper(algo))
	}
	return writeXML(q.w, 200, result{NS: s3NS, Bucket: q.bucket, Key: q.key, UploadId: id})
}

// partNumber reads the partNumber of UploadPart and UploadPartCopy.
func partNumber(q *request) (int, *s3Error) {
	n, err := strconv.Atoi(q.get("partNumber"))
	if err != nil || n < 1 || n > maxParts {
		return 0, errInvalidArgument("Part number must be an integer between 1 and 10000, inclusive").withArgument("partNumber", q.get("partNumber"))
	}
	return n, nil
}

func (h *Handler) uploadPart(q *request) *s3Error {
	n, e := partNumber(q)
	if e != nil {
		return e
	}
	id, u, e := h.loadUpload(q)
	if e != nil {
		return e
	}
	wr, e := h.writeBody(q, u.Algo)
	if e != nil {
		return e
	}
	pm, e := h.putPart(q, id, n, wr)
	if e != nil {
		return e
	}
	q.w.Header().Set("ETag", `"`+pm.ETag+`"`)
	for a, v := range pm.Checksums {
		q.w.Header().Set(checksumHeader(a), v)
	}
	q.w.WriteHeader(http.StatusOK)
	return nil
}

// putPart makes wr, a part written to a temp file while no lock was held
// (so that parts upload in parallel), part n of upload id, replacing any
// part n before it. It moves the part in under the upload's lock, after
// checking the upload is still there: it may have been completed, aborted
// or swept while the part was written (NoSuchUpload then). Whatever
// happens, the temp file is gone when it returns.
func (h *Handler) putPart(q *request, id string, n int, wr *written) (*partMeta, *s3Error) {
	unlock := h.uploads.lock(id)
	defer unlock()
	if _, _, e := h.loadUpload(q); e != nil {
		os.Remove(wr.path)
		return nil, e
	}
	dir := h.uploadDir(id)
	pm := &partMeta{Number: n, Size: wr.size, ETag: wr.md5, Checksums: wr.checksums, Data: fmt.Sprintf("%05d.%s", n, randHex(8)), Modified: time.Now().UTC()}
	if err := os.Rename(wr.path, filepath.Join(dir, pm.Data)); err != nil {
		os.Remove(wr.path)
		if errors.Is(err, fs.ErrNotExist) { // aborted meanwhile
			return nil, errNoSuchUpload()
		}
		return nil, errInternal()
	}
	old, _ := readPart(filepath.Join(dir, strconv.Itoa(n)+".json"))
	if err := writeJSONFile(h.st, filepath.Join(dir, strconv.Itoa(n)+".json"), pm); err != nil {
		os.Remove(filepath.Join(dir, pm.Data))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errNoSuchUpload()
		}
		return nil, errInternal()
	}
	if old != nil && old.Data != pm.Data {
		os.Remove(filepath.Join(dir, filepath.Base(old.Data)))
	}
	return pm, nil
}

func readPart(path string) (*partMeta, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var p partMeta
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

func (h *Handler) parts(id string) (map[int]*partMeta, error) {
	ents, err := os.ReadDir(h.uploadDir(id))
	if err != nil {
		return nil, err
	}
	out := map[int]*partMeta{}
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		n, err := strconv.Atoi(name)
		if !ok || err != nil {
			continue
		}
		p, err := readPart(filepath.Join(h.uploadDir(id), e.Name()))
		if err != nil {
			continue
		}
		out[n] = p
	}
	return out, nil
}

type completePart struct {
	PartNumber        int
	ETag              string
	ChecksumCRC32     string
	ChecksumCRC32C    string
	ChecksumCRC64NVME string
	ChecksumSHA1      string
	ChecksumSHA256    string
}

func (p completePart) checksums() map[string]string {
	m := map[string]string{}
	for a, v := range map[string]string{"crc32": p.ChecksumCRC32, "crc32c": p.ChecksumCRC32C, "crc64nvme": p.ChecksumCRC64NVME, "sha1": p.ChecksumSHA1, "sha256": p.ChecksumSHA256} {
		if v != "" {
			m[a] = v
		}
	}
	return m
}

func (h *Handler) completeUpload(q *request) *s3Error {
	// A first look, to fail fast before reading the body.
	if _, _, e := h.loadUpload(q); e != nil {
		return e
	}
	body, e := h.readSmallBody(q)
	if e != nil {
		return e
	}
	var req struct {
		XMLName xml.Name       `xml:"CompleteMultipartUpload"`
		Parts   []completePart `xml:"Part"`
	}
	if err := xml.Unmarshal(body, &req); err != nil || len(req.Parts) == 0 || len(req.Parts) > maxParts {
		return errMalformedXML()
	}
	prev := 0
	for _, p := range req.Parts {
		if p.PartNumber <= prev {
			return errInvalidPartOrder()
		}
		prev = p.PartNumber
	}

	// From here to the upload's removal the upload is ours: no part
	// replaced, no abort or sweep (see sweep.go). Whoever held the lock
	// before us may have completed, aborted or swept it: look again.
	unlock := h.uploads.lock(q.get("uploadId"))
	defer unlock()
	id, u, e := h.loadUpload(q)
	if e != nil {
		return e
	}
	chosen, e := h.chooseParts(id, req.Parts)
	if e != nil {
		return e
	}
	path, size, etag, e := h.concatParts(id, chosen)
	if e != nil {
		return e
	}
	m := &objMeta{
		Key: u.Key, Size: size, ETag: etag, ContentType: u.ContentType, Headers: u.Headers,
		UserMeta: u.UserMeta, Modified: time.Now().UTC(), Parts: len(chosen), Tags: u.Tags,
	}
	if err := h.st.commit(q.bucket, path, m); err != nil {
		os.Remove(path)
		if errors.Is(err, fs.ErrNotExist) {
			return errNoSuchBucket()
		}
		h.log.Error("s3 complete: commit", "err", err)
		return errInternal()
	}
	if err := h.removeUpload(id); err != nil {
		// The object is committed; the sweeper removes the leftover.
		h.log.Warn("s3 complete: removing the upload", "upload_id", id, "err", err)
	}
	type result struct {
		XMLName  xml.Name `xml:"CompleteMultipartUploadResult"`
		NS       string   `xml:"xmlns,attr"`
		Location string
		Bucket   string
		Key      string
		ETag     string
	}
	return writeXML(q.w, 200, result{NS: s3NS, Location: "/" + q.bucket + "/" + q.key, Bucket: q.bucket, Key: q.key, ETag: `"` + etag + `"`})
}

// chooseParts checks the parts a CompleteMultipartUpload lists against
// those uploaded.
func (h *Handler) chooseParts(id string, want []completePart) ([]*partMeta, *s3Error) {
	have, err := h.parts(id)
	if err != nil {
		return nil, errNoSuchUpload()
	}
	var chosen []*partMeta
	for i, p := range want {
		pm := have[p.PartNumber]
		if pm == nil || strings.Trim(p.ETag, `" `) != pm.ETag {
			return nil, errInvalidPart()
		}
		for a, v := range p.checksums() {
			if got, ok := pm.Checksums[a]; ok && got != v {
				return nil, errInvalidPart()
			}
		}
		if i < len(want)-1 && pm.Size < minPartSize {
			return nil, errEntityTooSmall()
		}
		chosen = append(chosen, pm)
	}
	return chosen, nil
}

// concatParts concatenates the parts into a synced temp file and returns
// its path, size and multipart ETag ("md5-of-md5s-N"). (A rename-only
// scheme would avoid the copy, but one file per object keeps reads simple.)
func (h *Handler) concatParts(id string, chosen []*partMeta) (path string, size int64, etag string, e *s3Error) {
	f, err := h.st.pending()
	if err != nil {
		return "", 0, "", errInternal()
	}
	defer f.discard()
	etags := md5.New()
	buf := make([]byte, copyBufSize)
	for _, pm := range chosen {
		pf, err := os.Open(filepath.Join(h.uploadDir(id), filepath.Base(pm.Data)))
		if err != nil {
			return "", 0, "", errInvalidPart()
		}
		n, err := io.CopyBuffer(f, pf, buf)
		pf.Close()
		if err != nil || n != pm.Size {
			h.log.Error("s3 complete: copy part", "err", err)
			return "", 0, "", errInternal()
		}
		size += n
		raw, _ := hex.DecodeString(pm.ETag)
		etags.Write(raw)
	}
	path, err = f.finish()
	if err != nil {
		return "", 0, "", errInternal()
	}
	return path, size, fmt.Sprintf("%s-%d", hex.EncodeToString(etags.Sum(nil)), len(chosen)), nil
}

func (h *Handler) abortUpload(q *request) *s3Error {
	if _, _, e := h.loadUpload(q); e != nil {
		return e
	}
	unlock := h.uploads.lock(q.get("uploadId"))
	defer unlock()
	id, _, e := h.loadUpload(q)
	if e != nil {
		return e
	}
	if err := h.removeUpload(id); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return errNoSuchUpload()
		}
		h.log.Error("s3 abort", "err", err)
		return errInternal()
	}
	q.w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) listParts(q *request) *s3Error {
	id, u, e := h.loadUpload(q)
	if e != nil {
		return e
	}
	have, err := h.parts(id)
	if err != nil {
		return errNoSuchUpload()
	}
	marker, _ := strconv.Atoi(q.get("part-number-marker"))
	maxParts := 1000
	if v, err := strconv.Atoi(q.get("max-parts")); err == nil && v >= 0 {
		maxParts = min(v, 1000)
	}
	nums := make([]int, 0, len(have))
	for n := range have {
		if n > marker {
			nums = append(nums, n)
		}
	}
	sort.Ints(nums)
	type part struct {
		PartNumber     int
		LastModified   string
		ETag           string
		Size           int64
		ChecksumCRC32  string `xml:",omitempty"`
		ChecksumCRC32C string `xml:",omitempty"`
		ChecksumSHA1   string `xml:",omitempty"`
		ChecksumSHA256 string `xml:",omitempty"`
	}
	type result struct {
		XMLName              xml.Name `xml:"ListPartsResult"`
		NS                   string   `xml:"xmlns,attr"`
		Bucket               string
		Key                  string
		UploadId             string
		PartNumberMarker     int
		NextPartNumberMarker int
		MaxParts             int
		IsTruncated          bool
		Parts                []part `xml:"Part"`
	}
	out := result{NS: s3NS, Bucket: q.bucket, Key: u.Key, UploadId: id, PartNumberMarker: marker, MaxParts: maxParts}
	for i, n := range nums {
		if i >= maxParts {
			out.IsTruncated = true
			break
		}
		p := have[n]
		out.Parts = append(out.Parts, part{
			PartNumber: n, LastModified: p.Modified.Format(time.RFC3339Nano), ETag: `"` + p.ETag + `"`, Size: p.Size,
			ChecksumCRC32: p.Checksums["crc32"], ChecksumCRC32C: p.Checksums["crc32c"],
			ChecksumSHA1: p.Checksums["sha1"], ChecksumSHA256: p.Checksums["sha256"],
		})
		out.NextPartNumberMarker = n
	}
	return writeXML(q.w, 200, out)
}
