package s3api

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"
	"net/http"
	"strings"
)

// crc64NVME is the CRC-64/NVME table (reflected polynomial), which S3 uses
// for x-amz-checksum-crc64nvme.
var crc64NVME = crc64.MakeTable(0x9a6c9329ac4bc9b5)

var crc32cTable = crc32.MakeTable(crc32.Castagnoli)

// checksumAlgos are the flexible-checksum algorithms S3 knows, by their
// lower-case names as they appear in x-amz-checksum-<name>.
var checksumAlgos = map[string]func() hash.Hash{
	"crc32":     func() hash.Hash { return crc32.NewIEEE() },
	"crc32c":    func() hash.Hash { return crc32.New(crc32cTable) },
	"crc64nvme": func() hash.Hash { return crc64.New(crc64NVME) },
	"sha1":      sha1.New,
	"sha256":    sha256.New,
}

// checksumHeader is the header (or trailer) name that carries algo's value.
func checksumHeader(algo string) string { return "x-amz-checksum-" + algo }

// checksumAlgoOf returns the algorithm named by a header or trailer name
// ("x-amz-checksum-crc32"), or "".
func checksumAlgoOf(name string) string {
	name = strings.ToLower(name)
	a, ok := strings.CutPrefix(name, "x-amz-checksum-")
	if !ok {
		return ""
	}
	if _, known := checksumAlgos[a]; !known {
		return ""
	}
	return a
}

func sumBase64(h hash.Hash) string { return base64.StdEncoding.EncodeToString(h.Sum(nil)) }

// digests checks a request body against the integrity values its client
// sent (Content-MD5, x-amz-checksum-* headers, and checksums announced as
// aws-chunked trailers) and computes the checksums to store with it. Write
// the decoded body to it, then call verify once the body is drained.
type digests struct {
	md5     hash.Hash
	wantMD5 []byte
	hashes  map[string]hash.Hash // by algorithm
	want    map[string]string    // values given in headers, then trailers
	w       io.Writer
}

// newDigests reads the request's integrity headers. extraAlgo, if set, is
// an algorithm to compute even if the client sent no value (a multipart
// upload's).
func newDigests(r *http.Request, body *payload, extraAlgo string) (*digests, *s3Error) {
	d := &digests{md5: md5.New(), hashes: map[string]hash.Hash{}, want: map[string]string{}}
	if cm := r.Header.Get("Content-MD5"); cm != "" {
		b, err := base64.StdEncoding.DecodeString(cm)
		if err != nil || len(b) != md5.Size {
			return nil, newErr(400, "InvalidDigest", "The Content-MD5 you specified was invalid.")
		}
		d.wantMD5 = b
	}
	// Checksums: declared in headers (verified against the value given),
	// announced as trailers (verified against the trailer), or requested
	// by algorithm only (computed and stored).
	for name, vs := range r.Header {
		if a := checksumAlgoOf(name); a != "" && len(vs) > 0 {
			d.hashes[a] = checksumAlgos[a]()
			d.want[a] = vs[0]
		}
	}
	for _, a := range body.trailers {
		d.hashes[a] = checksumAlgos[a]()
	}
	for _, a := range []string{strings.ToLower(r.Header.Get("x-amz-sdk-checksum-algorithm")), extraAlgo} {
		if a == "" {
			continue
		}
		if _, ok := checksumAlgos[a]; !ok {
			return nil, errInvalidRequest("Invalid checksum algorithm: " + a)
		}
		if d.hashes[a] == nil {
			d.hashes[a] = checksumAlgos[a]()
		}
	}
	ws := []io.Writer{d.md5}
	for _, hh := range d.hashes {
		ws = append(ws, hh)
	}
	d.w = io.MultiWriter(ws...)
	return d, nil
}

func (d *digests) Write(p []byte) (int, error) { return d.w.Write(p) }

// given tells whether the client sent any integrity value to check the
// body against (not merely an algorithm to compute).
func (d *digests) given(body *payload) bool {
	return d.wantMD5 != nil || len(d.want) > 0 || len(body.trailers) > 0
}

// verify checks the values the client sent, trailers included (so call it
// after the body was read to its end), and returns the body's MD5 (hex)
// and checksums (base64, by algorithm).
func (d *digests) verify(body *payload) (md5Hex string, sums map[string]string, e *s3Error) {
	if body.chunked != nil {
		for _, a := range body.trailers {
			v, ok := body.chunked.Trailers[checksumHeader(a)]
			if !ok {
				return "", nil, errInvalidRequest("The trailer " + checksumHeader(a) + " was announced but not sent.")
			}
			d.want[a] = v
		}
	}
	sum := d.md5.Sum(nil)
	if d.wantMD5 != nil && !equalBytes(sum, d.wantMD5) {
		return "", nil, errBadDigest()
	}
	sums = map[string]string{}
	for a, hh := range d.hashes {
		got := sumBase64(hh)
		if w, given := d.want[a]; given && w != got {
			return "", nil, newErr(400, "BadDigest", "The "+strings.ToUpper(a)+" you specified did not match the calculated checksum.")
		}
		sums[a] = got
	}
	return hex.EncodeToString(sum), sums, nil
}
