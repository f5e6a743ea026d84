package s3api

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func hmacSHA(key []byte, s string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s))
	return m.Sum(nil)
}

func signingKey(secret, date, region string) []byte {
	k := hmacSHA([]byte("AWS4"+secret), date)
	k = hmacSHA(k, region)
	k = hmacSHA(k, "s3")
	return hmacSHA(k, "aws4_request")
}

// TestChunkSignatureAWSExample checks the chunk signatures of the example in
// AWS's "Signature Calculations for the Authorization Header: Transferring
// Payload in Multiple Chunks" (a 66560-byte object in 64 KiB chunks).
func TestChunkSignatureAWSExample(t *testing.T) {
	s := &chunkSigner{
		key:     signingKey("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "20130524", "us-east-1"),
		date:    "20130524T000000Z",
		scope:   "20130524/us-east-1/s3/aws4_request",
		prevSig: "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
	}
	var body bytes.Buffer
	for _, c := range []struct {
		n   int
		sig string
	}{
		{65536, "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"},
		{1024, "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"},
		{0, "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"},
	} {
		fmt.Fprintf(&body, "%x;chunk-signature=%s\r\n%s\r\n", c.n, c.sig, bytes.Repeat([]byte("a"), c.n))
	}
	got, err := io.ReadAll(newChunkedReader(&body, s, false))
	if err != nil || len(got) != 66560 {
		t.Fatalf("decoded %d bytes, err %v", len(got), err)
	}
}

// encodeChunked frames payload as aws-chunked with chunkSize chunks, signed
// when s is non-nil, with trailers when trailers is non-nil.
func encodeChunked(payload []byte, chunkSize int, s *chunkSigner, trailers map[string]string) []byte {
	var b bytes.Buffer
	for off, end := 0, 0; ; off = end {
		end = min(off+chunkSize, len(payload))
		chunk := payload[off:end]
		fmt.Fprintf(&b, "%x", len(chunk))
		if s != nil {
			sum := sha256.Sum256(chunk)
			sig := s.sign("AWS4-HMAC-SHA256-PAYLOAD", fmt.Sprintf("%x", sum))
			s.prevSig = sig
			b.WriteString(";chunk-signature=" + sig)
		}
		b.WriteString("\r\n")
		if len(chunk) == 0 {
			break
		}
		b.Write(chunk)
		b.WriteString("\r\n")
	}
	if trailers != nil {
		var canon strings.Builder
		for n, v := range trailers {
			fmt.Fprintf(&b, "%s:%s\r\n", n, v)
			canon.WriteString(n + ":" + v + "\n")
		}
		if s != nil {
			sum := sha256.Sum256([]byte(canon.String()))
			fmt.Fprintf(&b, "x-amz-trailer-signature:%s\r\n", s.sign("AWS4-HMAC-SHA256-TRAILER", fmt.Sprintf("%x", sum)))
		}
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

// chunkedPut sends a PUT with an aws-chunked body, the seed signed by the
// SDK's signer. corrupt, if set, alters the encoded body.
func chunkedPut(t *testing.T, env *testEnv, key, marker string, payload []byte, trailer map[string]string, corrupt func([]byte)) *http.Response {
	t.Helper()
	now := time.Now().UTC()
	req, _ := http.NewRequest(http.MethodPut, env.srv.URL+"/artifacts/"+key, nil)
	req.Header.Set("X-Amz-Content-Sha256", marker)
	req.Header.Set("Content-Encoding", "aws-chunked")
	req.Header.Set("X-Amz-Decoded-Content-Length", strconv.Itoa(len(payload)))
	if trailer != nil {
		var names []string
		for n := range trailer {
			names = append(names, n)
		}
		req.Header.Set("X-Amz-Trailer", strings.Join(names, ","))
	}
	// The encoded length must be known before signing: frame once with a
	// throwaway signer to measure (signatures have a fixed length).
	dummy := &chunkSigner{key: []byte("x"), prevSig: strings.Repeat("0", 64)}
	var signer *chunkSigner
	if marker != "STREAMING-UNSIGNED-PAYLOAD-TRAILER" {
		signer = dummy
	}
	n := len(encodeChunked(payload, 64<<10, signer, trailer))
	req.ContentLength = int64(n)
	req.Header.Set("Content-Length", strconv.Itoa(n))
	err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: rootAKID, SecretAccessKey: rootSecret}, req, marker, "s3", testRegion, now)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Del("Content-Length")
	authz := req.Header.Get("Authorization")
	seed := authz[strings.LastIndex(authz, "Signature=")+len("Signature="):]
	if signer != nil {
		signer = &chunkSigner{
			key:     signingKey(rootSecret, now.Format("20060102"), testRegion),
			date:    now.Format("20060102T150405Z"),
			scope:   now.Format("20060102") + "/" + testRegion + "/s3/aws4_request",
			prevSig: seed,
		}
	}
	body := encodeChunked(payload, 64<<10, signer, trailer)
	if corrupt != nil {
		corrupt(body)
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	resp, err := env.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestChunkedUploads(t *testing.T) {
	env := newEnv(t)
	ctx := context.Background()
	c := env.root3()
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("artifacts")}); err != nil {
		t.Fatal(err)
	}
	payload := bytes.Repeat([]byte("0123456789abcdef"), 20000) // 320000 bytes, 5 chunks
	crc := func() string { h := checksumAlgos["crc32"](); h.Write(payload); return sumBase64(h) }()
	badCRC := "AAAAAA=="
	type tc struct {
		name, marker string
		trailer      map[string]string
		corrupt      func([]byte)
		status       int
		code         string
	}
	flipData := func(b []byte) { b[bytes.Index(b, []byte("\r\n"))+10] ^= 1 }
	flipSig := func(b []byte) {
		i := bytes.Index(b, []byte("chunk-signature=")) + len("chunk-signature=")
		if b[i] == 'a' {
			b[i] = 'b'
		} else {
			b[i] = 'a'
		}
	}
	cases := []tc{
		{"signed", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", nil, nil, 200, ""},
		{"signed-trailer", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", map[string]string{"x-amz-checksum-crc32": crc}, nil, 200, ""},
		{"unsigned-trailer", "STREAMING-UNSIGNED-PAYLOAD-TRAILER", map[string]string{"x-amz-checksum-crc32": crc}, nil, 200, ""},
		{"signed-bad-data", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", nil, flipData, 403, "SignatureDoesNotMatch"},
		{"signed-bad-sig", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", nil, flipSig, 403, "SignatureDoesNotMatch"},
		{"signed-trailer-bad-crc", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", map[string]string{"x-amz-checksum-crc32": badCRC}, nil, 400, "BadDigest"},
		{"unsigned-trailer-bad-crc", "STREAMING-UNSIGNED-PAYLOAD-TRAILER", map[string]string{"x-amz-checksum-crc32": badCRC}, nil, 400, "BadDigest"},
		{"unsigned-trailer-bad-data", "STREAMING-UNSIGNED-PAYLOAD-TRAILER", map[string]string{"x-amz-checksum-crc32": crc}, flipData, 400, "BadDigest"},
		{"signed-trailer-tampered", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", map[string]string{"x-amz-checksum-crc32": crc}, func(b []byte) {
			i := bytes.LastIndex(b, []byte("x-amz-checksum-crc32:")) + len("x-amz-checksum-crc32:")
			copy(b[i:], badCRC)
		}, 403, "SignatureDoesNotMatch"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := chunkedPut(t, env, tc.name, tc.marker, payload, tc.trailer, tc.corrupt)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || (tc.code != "" && !bytes.Contains(body, []byte("<Code>"+tc.code+"</Code>"))) {
				t.Fatalf("status %d, body %s; want %d %s", resp.StatusCode, body, tc.status, tc.code)
			}
			_, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("artifacts"), Key: aws.String(tc.name)})
			if tc.status != 200 {
				if err == nil {
					t.Fatal("a refused upload was stored")
				}
				return
			}
			g, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("artifacts"), Key: aws.String(tc.name)})
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(g.Body)
			g.Body.Close()
			if !bytes.Equal(got, payload) {
				t.Fatalf("read back %d bytes, want %d", len(got), len(payload))
			}
		})
	}
}

func FuzzChunkedDecoder(f *testing.F) {
	payload := []byte("hello, fuzzer; hello, fuzzer")
	f.Add(encodeChunked(payload, 7, nil, map[string]string{"x-amz-checksum-crc32": "AAAAAA=="}), false)
	f.Add(encodeChunked(payload, 7, nil, nil), false)
	key := signingKey("secret", "20250101", "us-east-1")
	newSigner := func() *chunkSigner {
		return &chunkSigner{key: key, date: "20250101T000000Z", scope: "20250101/us-east-1/s3/aws4_request", prevSig: strings.Repeat("ab", 32)}
	}
	f.Add(encodeChunked(payload, 5, newSigner(), nil), true)
	f.Add(encodeChunked(payload, 5, newSigner(), map[string]string{"x-amz-checksum-sha256": "x"}), true)
	f.Add([]byte("ffffffffffffffff\r\n"), false)
	f.Add([]byte("0\r\n"), false)
	f.Fuzz(func(t *testing.T, body []byte, signed bool) {
		var s *chunkSigner
		if signed {
			s = newSigner()
		}
		for _, trailer := range []bool{false, true} {
			cr := newChunkedReader(bytes.NewReader(body), s, trailer)
			got, err := io.ReadAll(cr)
			if len(got) > len(body) {
				t.Fatalf("decoded %d bytes from %d", len(got), len(body))
			}
			if int64(len(got)) != cr.Decoded() {
				t.Fatalf("Decoded() = %d, returned %d", cr.Decoded(), len(got))
			}
			if err == nil && !signed {
				// Whatever decodes must re-encode to something that
				// decodes to the same bytes.
				again, err := io.ReadAll(newChunkedReader(bytes.NewReader(encodeChunked(got, 3, nil, cr.Trailers)), nil, true))
				if err != nil || !bytes.Equal(again, got) {
					t.Fatalf("re-encoding: %v", err)
				}
			}
			if s != nil {
				s = newSigner()
			}
		}
	})
}
