package s3api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pipelined/pipelined/internal/sigv4"
)

// Op is the kind of access a request needs; Authorizer.Allow decides.
type Op int

const (
	// Read: GetObject, HeadObject, GetObjectTagging (reading an object's
	// tags is reading the object), HeadBucket (key ""), ListParts, and the
	// source object of CopyObject (whose tags it copies, by default) and
	// UploadPartCopy.
	Read Op = iota + 1
	// Write: PutObject, PutObjectTagging and DeleteObjectTagging (changing
	// an object's tags is writing the object), the multipart upload
	// operations (UploadPartCopy included, on the upload's key), and
	// CopyObject's destination object.
	Write
	// Delete: DeleteObject, each key of DeleteObjects, DeleteBucket
	// (key "").
	Delete
	// List: ListObjectsV2, ListMultipartUploads (key "").
	List
	// CreateBucket (key "").
	CreateBucket
	// ListBuckets (bucket and key "").
	ListBuckets
)

var opNames = [...]string{Read: "Read", Write: "Write", Delete: "Delete", List: "List", CreateBucket: "CreateBucket", ListBuckets: "ListBuckets"}

func (o Op) String() string {
	if o > 0 && int(o) < len(opNames) {
		return opNames[o]
	}
	return "Op(" + strconv.Itoa(int(o)) + ")"
}

// Authorizer resolves credentials and decides what their holders may do.
type Authorizer interface {
	// Lookup resolves an access key id (the root key or a job's session
	// credential), with sigv4.Lookup's semantics: an error wrapping
	// sigv4.ErrUnknownAccessKey for keys it does not know.
	Lookup(ctx context.Context, accessKeyID string) (sigv4.Credential, error)
	// Allow decides whether the principal of a verified request may do op
	// on bucket/key ("" key for bucket-level operations).
	Allow(ctx context.Context, cred sigv4.Credential, op Op, bucket, key string) bool
}

// Limits.
const (
	maxObjectSize = 5 << 30 // a single PUT or part
	minPartSize   = 5 << 20 // every part but the last
	maxParts      = 10000
	maxXMLBody    = 4 << 20
	copyBufSize   = 256 << 10
)

// Handler serves the S3 REST API, path-style, over objects on local disk.
type Handler struct {
	st       *store
	verifier *sigv4.Verifier
	auth     Authorizer
	log      *slog.Logger
	metrics  *metrics    // nil until RegisterMetrics
	uploads  uploadLocks // one lock per multipart upload; see sweep.go
}

// New returns a handler keeping its buckets under dir (created if needed)
// and checking SigV4 signatures for service "s3" in region.
func New(dir string, region string, auth Authorizer, log *slog.Logger) (*Handler, error) {
	if auth == nil {
		return nil, errors.New("s3api: nil Authorizer")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	st, err := newStore(dir)
	if err != nil {
		return nil, fmt.Errorf("s3api: %w", err)
	}
	return &Handler{
		st:       st,
		verifier: &sigv4.Verifier{Region: region, Service: "s3", Lookup: auth.Lookup},
		auth:     auth,
		log:      log,
	}, nil
}

// request is one request being served.
type request struct {
	w      http.ResponseWriter
	r      *http.Request
	id     string
	res    *sigv4.Result
	bucket string
	key    string
	q      map[string][]string
}

func (q *request) has(name string) bool { _, ok := q.q[name]; return ok }
func (q *request) get(name string) string {
	if v := q.q[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// splitPath splits a path-style request path into bucket and key.
func splitPath(p string) (bucket, key string) {
	p = strings.TrimPrefix(p, "/")
	bucket, key, _ = strings.Cut(p, "/")
	return bucket, key
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := strings.ToUpper(randHex(8))
	w.Header().Set("x-amz-request-id", id)
	w.Header().Set("x-amz-id-2", base64.StdEncoding.EncodeToString([]byte(id)))
	w.Header().Set("Server", "pipelined")
	cw := &countingWriter{ResponseWriter: w}
	w = cw
	body := &countingBody{ReadCloser: r.Body}
	if r.Body != nil {
		r.Body = body
	}
	q := &request{w: w, r: r, id: id, q: r.URL.Query()}
	q.bucket, q.key = splitPath(r.URL.Path)

	start := time.Now()
	e := h.serve(q)
	if e != nil {
		if e.Status >= 500 {
			h.log.Error("s3 request failed", "method", r.Method, "path", r.URL.Path, "code", e.Code, "request_id", id)
		} else {
			h.log.Info("s3 request refused", append(refusedAttrs(r), "status", e.Status, "code", e.Code, "msg", e.Message, "request_id", id)...)
		}
		writeError(w, r, e, id)
		h.metrics.observe(r.Method, e.Code, body.n, cw.n)
		return
	}
	h.metrics.observe(r.Method, "", body.n, cw.n)
	h.log.Debug("s3 request", "method", r.Method, "path", r.URL.Path, "request_id", id, "took", time.Since(start))
}

func (h *Handler) serve(q *request) *s3Error {
	r := q.r
	res, err := h.verifier.Verify(r.Context(), r, nil)
	if err != nil {
		var se *sigv4.Error
		if !errors.As(err, &se) {
			h.log.Error("s3 authentication failed", "err", err, "request_id", q.id)
			return errInternal()
		}
		return errFromSigv4(err, strings.Contains(r.URL.RawQuery, "X-Amz-Signature"))
	}
	q.res = res

	rt := h.route(q)
	if rt.handle == nil {
		return errNotImplemented()
	}
	if q.bucket != "" && !validBucket(q.bucket) {
		return errInvalidBucket()
	}
	if q.key != "" && !validKey(q.key) {
		return errInvalidKey()
	}
	if rt.perKey {
		return rt.handle(q)
	}
	if !h.auth.Allow(r.Context(), res.Credential, rt.op, q.bucket, q.key) {
		return errAccessDenied()
	}
	if rt.op != CreateBucket && rt.op != ListBuckets && !h.st.bucketExists(q.bucket) {
		return errNoSuchBucket()
	}
	return rt.handle(q)
}

// route is how a request is served.
type route struct {
	// op is what the request needs on its bucket and key, checked with the
	// Authorizer before handle runs (and before the body is read).
	op     Op
	handle func(*request) *s3Error
	// perKey: the request names its keys in its body (DeleteObjects), so
	// handle authorizes each of them, and checks the bucket exists, itself.
	perKey bool
}

// route picks the operation for the request; a nil handle means not
// implemented.
func (h *Handler) route(q *request) route {
	m := q.r.Method
	switch {
	case q.bucket == "":
		if m == http.MethodGet {
			return route{op: ListBuckets, handle: h.listBuckets}
		}
	case q.key == "":
		switch {
		case m == http.MethodPut && len(q.q) == 0:
			return route{op: CreateBucket, handle: h.createBucket}
		case m == http.MethodHead:
			return route{op: Read, handle: func(*request) *s3Error { return nil }}
		case m == http.MethodDelete && len(q.q) == 0:
			return route{op: Delete, handle: h.deleteBucket}
		case m == http.MethodGet && q.get("list-type") == "2":
			return route{op: List, handle: h.listObjectsV2}
		case m == http.MethodGet && q.has("uploads"):
			return route{op: List, handle: h.listUploads}
		case m == http.MethodGet && q.has("location"):
			return route{op: List, handle: h.bucketLocation}
		case m == http.MethodPost && q.has("delete"):
			return route{handle: h.deleteObjects, perKey: true}
		}
	default:
		if q.r.Header.Get("x-amz-copy-source") != "" {
			return h.copyRoute(q)
		}
		if q.has("tagging") {
			return h.taggingRoute(q)
		}
		switch m {
		case http.MethodGet:
			if q.has("uploadId") {
				return route{op: Read, handle: h.listParts}
			}
			if len(q.q) == 0 || onlyPresignParams(q.q) {
				return route{op: Read, handle: h.getObject}
			}
		case http.MethodHead:
			return route{op: Read, handle: h.getObject}
		case http.MethodPut:
			if q.has("uploadId") && q.has("partNumber") {
				return route{op: Write, handle: h.uploadPart}
			}
			if !q.has("uploadId") && !q.has("acl") {
				return route{op: Write, handle: h.putObject}
			}
		case http.MethodPost:
			if q.has("uploads") {
				return route{op: Write, handle: h.createUpload}
			}
			if q.has("uploadId") {
				return route{op: Write, handle: h.completeUpload}
			}
		case http.MethodDelete:
			if q.has("uploadId") {
				return route{op: Write, handle: h.abortUpload}
			}
			// Not DELETE with another subresource (?acl and the
			// like): that must not delete the object.
			if onlyParams(q.q, "versionId") {
				return route{op: Delete, handle: h.deleteObject}
			}
		}
	}
	return route{}
}

// taggingRoute routes the ?tagging subresource of an object: reading the
// tags is a Read of the object, changing them a Write (see tagging.go).
// Any parameter but versionId (and a presigned URL's) is not served.
func (h *Handler) taggingRoute(q *request) route {
	if !onlyParams(q.q, "tagging", "versionId") {
		return route{}
	}
	switch q.r.Method {
	case http.MethodGet:
		return route{op: Read, handle: h.getObjectTagging}
	case http.MethodPut:
		return route{op: Write, handle: h.putObjectTagging}
	case http.MethodDelete:
		return route{op: Write, handle: h.deleteObjectTagging}
	}
	return route{}
}

// copyRoute routes a request with x-amz-copy-source. CopyObject and
// UploadPartCopy are authorized here as a Write of their destination (for
// UploadPartCopy, the upload's key, as for UploadPart); their handlers then
// check Read on the source.
func (h *Handler) copyRoute(q *request) route {
	if q.r.Method != http.MethodPut {
		return route{}
	}
	if q.has("uploadId") && q.has("partNumber") {
		return route{op: Write, handle: h.uploadPartCopy}
	}
	if q.has("uploadId") || q.has("partNumber") || q.has("tagging") || q.has("acl") {
		return route{}
	}
	return route{op: Write, handle: h.copyObject}
}

// onlyParams tells whether every query parameter belongs to a presigned
// URL, is the SDKs' x-id, or is one of names.
func onlyParams(v map[string][]string, names ...string) bool {
	for k := range v {
		if !strings.HasPrefix(k, "X-Amz-") && k != "x-id" && !slices.Contains(names, k) {
			return false
		}
	}
	return true
}

// onlyPresignParams tells whether every query parameter belongs to a
// presigned URL or to GetObject's response-header overrides we ignore.
func onlyPresignParams(v map[string][]string) bool {
	for k := range v {
		if !strings.HasPrefix(k, "X-Amz-") && k != "x-id" && k != "partNumber" && !strings.HasPrefix(k, "response-") {
			return false
		}
	}
	return true
}

func writeXML(w http.ResponseWriter, status int, v any) *s3Error {
	body, err := xml.Marshal(v)
	if err != nil {
		return errInternal()
	}
	out := append([]byte(xml.Header), body...)
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(status)
	w.Write(out)
	return nil
}

const s3NS = "http://s3.amazonaws.com/doc/2006-03-01/"

// --- buckets ---

func (h *Handler) createBucket(q *request) *s3Error {
	if !validBucket(q.bucket) {
		return errInvalidBucket()
	}
	// The body, if any, is a CreateBucketConfiguration (a location
	// constraint); read it so the signature's payload hash is checked.
	if _, e := h.readSmallBody(q); e != nil {
		return e
	}
	created, err := h.st.createBucket(q.bucket)
	if err != nil {
		h.log.Error("s3 create bucket", "err", err)
		return errInternal()
	}
	if !created {
		return newErr(409, "BucketAlreadyOwnedByYou", "Your previous request to create the named bucket succeeded and you already own it.")
	}
	q.w.Header().Set("Location", "/"+q.bucket)
	q.w.WriteHeader(http.StatusOK)
	return nil
}

func (h *Handler) deleteBucket(q *request) *s3Error {
	err := h.st.deleteBucket(q.bucket)
	if errors.Is(err, errBucketNotEmpty) {
		return newErr(409, "BucketNotEmpty", "The bucket you tried to delete is not empty")
	}
	if err != nil {
		return errInternal()
	}
	q.w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) bucketLocation(q *request) *s3Error {
	type loc struct {
		XMLName xml.Name `xml:"LocationConstraint"`
		NS      string   `xml:"xmlns,attr"`
		Value   string   `xml:",chardata"`
	}
	region := h.verifier.Region
	if region == "us-east-1" {
		region = ""
	}
	return writeXML(q.w, 200, loc{NS: s3NS, Value: region})
}

func (h *Handler) listBuckets(q *request) *s3Error {
	bs, err := h.st.listBuckets()
	if err != nil {
		return errInternal()
	}
	type bucket struct {
		Name         string
		CreationDate string
	}
	type result struct {
		XMLName xml.Name `xml:"ListAllMyBucketsResult"`
		NS      string   `xml:"xmlns,attr"`
		Owner   struct{ ID, DisplayName string }
		Buckets []bucket `xml:"Buckets>Bucket"`
	}
	out := result{NS: s3NS}
	out.Owner.ID, out.Owner.DisplayName = "pipelined", "pipelined"
	for _, b := range bs {
		if !h.auth.Allow(q.r.Context(), q.res.Credential, List, b.Name, "") &&
			!h.auth.Allow(q.r.Context(), q.res.Credential, Read, b.Name, "") {
			continue
		}
		out.Buckets = append(out.Buckets, bucket{Name: b.Name, CreationDate: b.Created.UTC().Format(time.RFC3339)})
	}
	return writeXML(q.w, 200, out)
}

// --- request bodies ---

// readSmallBody reads an XML request body (at most maxXMLBody), checking it
// against the signed payload hash.
func (h *Handler) readSmallBody(q *request) ([]byte, *s3Error) {
	body, e := h.bodyReader(q)
	if e != nil {
		return nil, e
	}
	b, err := io.ReadAll(io.LimitReader(body.r, maxXMLBody+1))
	if err != nil {
		return nil, body.mapErr(err)
	}
	if len(b) > maxXMLBody {
		return nil, errMalformedXML()
	}
	if e := body.finish(); e != nil {
		return nil, e
	}
	return b, nil
}

// payload is a request body being read and checked: r yields the decoded
// bytes; finish, called after r returned io.EOF, checks what can only be
// checked at the end (payload hash, decoded length, trailing checksums).
type payload struct {
	r        io.Reader
	size     int64 // decoded length, -1 if unknown
	sha      hash.Hash
	wantSHA  []byte
	chunked  *chunkedReader
	counter  *countingReader
	trailers []string // checksum algorithms announced in x-amz-trailer
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (h *Handler) bodyReader(q *request) (*payload, *s3Error) {
	r := q.r
	p := &payload{size: r.ContentLength}
	var body io.Reader = r.Body
	if r.Body == nil {
		body = http.NoBody
	}
	switch ph := q.res.PayloadHash; ph {
	case sigv4.UnsignedPayload:
	case sigv4.StreamingPayload, sigv4.StreamingPayloadTrailer, sigv4.StreamingUnsignedPayloadTrailer:
		dl := r.Header.Get("x-amz-decoded-content-length")
		n, err := strconv.ParseInt(dl, 10, 64)
		if err != nil || n < 0 {
			return nil, errMissingLength()
		}
		p.size = n
		var signer *chunkSigner
		if ph != sigv4.StreamingUnsignedPayloadTrailer {
			signer = &chunkSigner{
				key:     q.res.SigningKey,
				date:    q.res.Date.UTC().Format("20060102T150405Z"),
				scope:   q.res.Scope,
				prevSig: q.res.SeedSignature,
			}
		}
		trailer := ph != sigv4.StreamingPayload
		if trailer {
			for t := range strings.SplitSeq(r.Header.Get("x-amz-trailer"), ",") {
				t = strings.TrimSpace(t)
				if t == "" {
					continue
				}
				a := checksumAlgoOf(t)
				if a == "" {
					return nil, errInvalidRequest("Unsupported trailer: " + t)
				}
				p.trailers = append(p.trailers, a)
			}
		}
		p.chunked = newChunkedReader(body, signer, trailer)
		body = p.chunked
	case sigv4.StreamingEvents:
		return nil, errNotImplemented()
	default:
		want, err := hex.DecodeString(ph)
		if err != nil || len(want) != sha256.Size {
			return nil, errSHA256Mismatch()
		}
		p.sha, p.wantSHA = sha256.New(), want
		body = io.TeeReader(body, p.sha)
	}
	p.counter = &countingReader{r: body}
	p.r = p.counter
	return p, nil
}

func (p *payload) mapErr(err error) *s3Error {
	if isReadTimeout(err) {
		return errRequestTimeout()
	}
	switch {
	case errors.Is(err, errChunkSignature):
		return errChunkSigMismatch()
	case errors.Is(err, errChunkMalformed):
		return errIncompleteBody()
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return errTooLarge()
	}
	return errIncompleteBody()
}

func (p *payload) finish() *s3Error {
	if p.size >= 0 && p.counter.n != p.size {
		return errIncompleteBody()
	}
	if p.sha != nil && !equalBytes(p.sha.Sum(nil), p.wantSHA) {
		return errSHA256Mismatch()
	}
	return nil
}

func equalBytes(a, b []byte) bool { return string(a) == string(b) }

// written is an object or part body written to a temp file.
type written struct {
	path      string
	size      int64
	md5       string // hex
	checksums map[string]string
}

// writeBody streams the request body to a synced temp file, checking
// Content-MD5, the signed payload hash, aws-chunked signatures and any
// x-amz-checksum-* header or trailer. extraAlgo, if set, is an algorithm
// to compute even if the client sent no value (a multipart upload's).
func (h *Handler) writeBody(q *request, extraAlgo string) (*written, *s3Error) {
	body, e := h.bodyReader(q)
	if e != nil {
		return nil, e
	}
	if body.size < 0 {
		return nil, errMissingLength()
	}
	if body.size > maxObjectSize {
		return nil, errTooLarge()
	}
	dg, e := newDigests(q.r, body, extraAlgo)
	if e != nil {
		return nil, e
	}

	f, err := h.st.pending()
	if err != nil {
		h.log.Error("s3 temp file", "err", err)
		return nil, errInternal()
	}
	defer f.discard()
	src := io.LimitReader(body.r, body.size+1)
	n, err := io.CopyBuffer(io.MultiWriter(f, dg), src, make([]byte, copyBufSize))
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			h.log.Error("s3 write", "err", err)
			return nil, errInternal()
		}
		return nil, body.mapErr(err)
	}
	if n != body.size {
		return nil, errIncompleteBody()
	}
	if body.chunked != nil {
		// Drain the framing after the last data byte: the final chunk and
		// the trailers.
		if _, err := io.Copy(io.Discard, body.r); err != nil {
			return nil, body.mapErr(err)
		}
		if body.counter.n != body.size {
			return nil, errIncompleteBody()
		}
	}
	if e := body.finish(); e != nil {
		return nil, e
	}
	md5Hex, sums, e := dg.verify(body)
	if e != nil {
		return nil, e
	}
	path, err := f.finish()
	if err != nil {
		h.log.Error("s3 sync", "err", err)
		return nil, errInternal()
	}
	return &written{path: path, size: n, md5: md5Hex, checksums: sums}, nil
}

// readVerifiedBody reads a small XML request body (at most maxXMLBody)
// that must carry an integrity value, as S3 requires of DeleteObjects:
// Content-MD5 (older clients) or an x-amz-checksum-* header or trailer
// (current SDKs send CRC32 and no Content-MD5). Whichever is sent is
// verified, besides the signed payload hash and chunk signatures.
func (h *Handler) readVerifiedBody(q *request) ([]byte, *s3Error) {
	body, e := h.bodyReader(q)
	if e != nil {
		return nil, e
	}
	dg, e := newDigests(q.r, body, "")
	if e != nil {
		return nil, e
	}
	if !dg.given(body) {
		return nil, errMissingContentMD5()
	}
	var buf bytes.Buffer
	n, err := io.Copy(io.MultiWriter(&buf, dg), io.LimitReader(body.r, maxXMLBody+1))
	if err != nil {
		return nil, body.mapErr(err)
	}
	if n > maxXMLBody {
		return nil, errMalformedXML()
	}
	// Under the limit, the copy read to io.EOF: an aws-chunked body's final
	// chunk and trailers are consumed.
	if e := body.finish(); e != nil {
		return nil, e
	}
	if _, _, e := dg.verify(body); e != nil {
		return nil, e
	}
	return buf.Bytes(), nil
}

// objectHeaders picks the headers stored with an object.
var storedHeaders = []string{"Cache-Control", "Content-Disposition", "Content-Language", "Expires"}

func requestMeta(r *http.Request) (ctype string, headers, user map[string]string) {
	ctype = r.Header.Get("Content-Type")
	headers = map[string]string{}
	for _, n := range storedHeaders {
		if v := r.Header.Get(n); v != "" {
			headers[n] = v
		}
	}
	var enc []string
	for e := range strings.SplitSeq(r.Header.Get("Content-Encoding"), ",") {
		if e = strings.TrimSpace(e); e != "" && !strings.EqualFold(e, "aws-chunked") {
			enc = append(enc, e)
		}
	}
	if len(enc) > 0 {
		headers["Content-Encoding"] = strings.Join(enc, ",")
	}
	user = map[string]string{}
	for name, vs := range r.Header {
		if n, ok := strings.CutPrefix(strings.ToLower(name), "x-amz-meta-"); ok && n != "" {
			user[n] = strings.Join(vs, ",")
		}
	}
	return ctype, headers, user
}

// --- objects ---

func (h *Handler) putObject(q *request) *s3Error {
	tags, e := requestTags(q.r)
	if e != nil {
		return e
	}
	wr, e := h.writeBody(q, "")
	if e != nil {
		return e
	}
	ctype, headers, user := requestMeta(q.r)
	m := &objMeta{
		Key: q.key, Size: wr.size, ETag: wr.md5, ContentType: ctype,
		Headers: headers, UserMeta: user, Checksums: wr.checksums, Modified: time.Now().UTC(),
		Tags: tags,
	}
	if err := h.st.commit(q.bucket, wr.path, m); err != nil {
		os.Remove(wr.path)
		if errors.Is(err, fs.ErrNotExist) {
			return errNoSuchBucket()
		}
		h.log.Error("s3 commit", "err", err)
		return errInternal()
	}
	hd := q.w.Header()
	hd.Set("ETag", `"`+m.ETag+`"`)
	for a, v := range m.Checksums {
		hd.Set(checksumHeader(a), v)
	}
	q.w.WriteHeader(http.StatusOK)
	return nil
}

// deleteObject serves DeleteObject. With ?versionId=, the store keeping no
// versions (its buckets are S3's unversioned buckets), "null" names the
// object, which is deleted. Any other id is refused, and nothing deleted,
// with what S3 answers for an unversioned bucket: 400 InvalidArgument
// "Invalid version id specified" (ArgumentName versionId), whether or not
// the key exists; an empty id is InvalidArgument "Version id cannot be the
// empty string". (Not NoSuchVersion, which is DeleteObjects' per-key entry
// for the same request, nor S3's 204 for a well-formed but unknown id,
// which only a versioned bucket answers.)
func (h *Handler) deleteObject(q *request) *s3Error {
	if e := versionParam(q); e != nil {
		return e
	}
	if err := h.st.remove(q.bucket, q.key); err != nil {
		h.log.Error("s3 delete", "err", err)
		return errInternal()
	}
	q.w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) getObject(q *request) *s3Error {
	m, f, err := h.st.open(q.bucket, q.key)
	if errors.Is(err, fs.ErrNotExist) {
		return errNoSuchKey()
	}
	if err != nil {
		h.log.Error("s3 open", "err", err)
		return errInternal()
	}
	defer f.Close()
	r, w := q.r, q.w
	etag := `"` + m.ETag + `"`
	hd := w.Header()
	setObjectHeaders(hd, m)

	if im := r.Header.Get("If-Match"); im != "" && !etagMatch(im, m.ETag) {
		return errPrecondition()
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatch(inm, m.ETag) {
		hd.Del("Content-Type")
		w.WriteHeader(http.StatusNotModified)
		return nil
	}

	start, length, status := int64(0), m.Size, http.StatusOK
	if rg := r.Header.Get("Range"); rg != "" {
		s, l, ok, satisfiable := parseRange(rg, m.Size)
		if ok && !satisfiable {
			hd.Set("Content-Range", "bytes */"+strconv.FormatInt(m.Size, 10))
			e := newErr(416, "InvalidRange", "The requested range is not satisfiable")
			e.extra = []xmlElem{
				{XMLName: xml.Name{Local: "RangeRequested"}, Value: rg},
				{XMLName: xml.Name{Local: "ActualObjectSize"}, Value: strconv.FormatInt(m.Size, 10)},
			}
			return e
		}
		if ok {
			start, length, status = s, l, http.StatusPartialContent
			hd.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", s, s+l-1, m.Size))
		}
	}
	if status == http.StatusOK && strings.EqualFold(r.Header.Get("x-amz-checksum-mode"), "ENABLED") && m.Parts == 0 {
		for a, v := range m.Checksums {
			hd.Set(checksumHeader(a), v)
		}
		if len(m.Checksums) > 0 {
			hd.Set("x-amz-checksum-type", "FULL_OBJECT")
		}
	}
	hd.Set("ETag", etag)
	hd.Set("Content-Length", strconv.FormatInt(length, 10))
	w.WriteHeader(status)
	if r.Method == http.MethodHead || length == 0 {
		return nil
	}
	if start > 0 {
		if _, err := f.Seek(start, io.SeekStart); err != nil {
			return nil // headers are sent; the client sees a short body
		}
	}
	// io.Copy from a LimitedReader over an *os.File lets net/http use
	// sendfile.
	if _, err := io.Copy(w, io.LimitReader(f, length)); err != nil {
		h.log.Debug("s3 get: copy", "err", err, "request_id", q.id)
	}
	return nil
}

func setObjectHeaders(hd http.Header, m *objMeta) {
	ct := m.ContentType
	if ct == "" {
		ct = "binary/octet-stream"
	}
	hd.Set("Content-Type", ct)
	hd.Set("Last-Modified", m.Modified.UTC().Format(http.TimeFormat))
	hd.Set("Accept-Ranges", "bytes")
	for n, v := range m.Headers {
		hd.Set(n, v)
	}
	for n, v := range m.UserMeta {
		hd["X-Amz-Meta-"+n] = []string{v}
	}
	if len(m.Tags) > 0 {
		hd.Set("x-amz-tagging-count", strconv.Itoa(len(m.Tags)))
	}
}

func etagMatch(header, etag string) bool {
	for t := range strings.SplitSeq(header, ",") {
		t = strings.TrimSpace(t)
		t = strings.TrimPrefix(t, "W/")
		if t == "*" || strings.Trim(t, `"`) == etag {
			return true
		}
	}
	return false
}

// parseRange parses a single "bytes=" range. ok is false when the header
// is to be ignored (malformed, several ranges, another unit): S3 then
// serves the whole object. satisfiable is false for a range past the end.
func parseRange(h string, size int64) (start, length int64, ok, satisfiable bool) {
	spec, found := strings.CutPrefix(h, "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false, false
	}
	a, b, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false, false
	}
	num := func(s string) (int64, bool) {
		if s == "" || strings.Trim(s, "0123456789") != "" {
			return 0, false
		}
		n, err := strconv.ParseInt(s, 10, 64)
		return n, err == nil
	}
	if a == "" { // suffix: the last b bytes
		n, good := num(b)
		if !good {
			return 0, 0, false, false
		}
		if n == 0 {
			return 0, 0, true, false
		}
		n = min(n, size)
		if n == 0 {
			return 0, 0, true, false
		}
		return size - n, n, true, true
	}
	s, good := num(a)
	if !good {
		return 0, 0, false, false
	}
	e := size - 1
	if b != "" {
		v, good := num(b)
		if !good || v < s {
			return 0, 0, false, false
		}
		e = min(v, size-1)
	}
	if s >= size {
		return 0, 0, true, false
	}
	return s, e - s + 1, true, true
}
