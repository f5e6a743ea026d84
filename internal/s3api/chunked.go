package s3api

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"strconv"
	"strings"
)

// Limits of the aws-chunked framing. A chunk header or trailer line longer
// than maxChunkLine is refused, as are more than maxTrailers trailer lines.
const (
	maxChunkLine = 4096
	maxTrailers  = 16
	// emptySHA256 is the hex SHA-256 of nothing: the "hash of the chunk's
	// headers" that every chunk string to sign carries.
	emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)

// Errors of the aws-chunked decoder; the handler maps them to S3 codes.
var (
	errChunkMalformed = errors.New("aws-chunked: malformed body")
	errChunkSignature = errors.New("aws-chunked: chunk signature does not match")
)

// chunkSigner holds what it takes to check chunk and trailer signatures:
// the request's signing key, date (ISO8601 basic), scope and seed
// signature. A nil *chunkSigner means the chunks are unsigned.
type chunkSigner struct {
	key     []byte
	date    string
	scope   string
	prevSig string
}

func (s *chunkSigner) sign(algo, hashHex string) string {
	var b strings.Builder
	b.Grow(256)
	b.WriteString(algo)
	b.WriteByte('\n')
	b.WriteString(s.date)
	b.WriteByte('\n')
	b.WriteString(s.scope)
	b.WriteByte('\n')
	b.WriteString(s.prevSig)
	b.WriteByte('\n')
	if algo == "AWS4-HMAC-SHA256-PAYLOAD" {
		b.WriteString(emptySHA256)
		b.WriteByte('\n')
	}
	b.WriteString(hashHex)
	mac := hmac.New(sha256.New, s.key)
	mac.Write([]byte(b.String()))
	return hex.EncodeToString(mac.Sum(nil))
}

// verify checks got against the expected signature and advances the chain.
func (s *chunkSigner) verify(algo, hashHex, got string) bool {
	want := s.sign(algo, hashHex)
	if !hmac.Equal([]byte(want), []byte(strings.ToLower(got))) {
		return false
	}
	s.prevSig = want
	return true
}

// chunkedReader decodes an aws-chunked body:
//
//	hex-size[;chunk-signature=sig]\r\n data \r\n ... 0[;chunk-signature=sig]\r\n
//	[trailer-name:value\r\n ... [x-amz-trailer-signature:sig\r\n]] \r\n
//
// It returns the decoded payload, verifying each chunk's signature (when
// signer is set) at the end of the chunk, before the Read that returns the
// chunk's last bytes completes; so a caller that commits only after io.EOF
// never commits unverified data. Trailers are collected in Trailers.
type chunkedReader struct {
	br      *bufio.Reader
	signer  *chunkSigner
	trailer bool // trailers are expected (and, if signed, their signature)

	remaining int64 // bytes left in the current chunk
	inChunk   bool  // a chunk's data has started and its CRLF is owed
	chunkSig  string
	h         hash.Hash
	done      bool
	err       error
	decoded   int64

	Trailers map[string]string
}

func newChunkedReader(r io.Reader, signer *chunkSigner, trailer bool) *chunkedReader {
	cr := &chunkedReader{br: bufio.NewReaderSize(r, 64<<10), signer: signer, trailer: trailer}
	if signer != nil {
		cr.h = sha256.New()
	}
	return cr
}

// Decoded is the number of payload bytes returned so far.
func (c *chunkedReader) Decoded() int64 { return c.decoded }

func (c *chunkedReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	for c.remaining == 0 {
		if c.done {
			return 0, io.EOF
		}
		if err := c.next(); err != nil {
			c.err = err
			return 0, err
		}
	}
	if int64(len(p)) > c.remaining {
		p = p[:c.remaining]
	}
	n, err := c.br.Read(p)
	c.remaining -= int64(n)
	c.decoded += int64(n)
	if c.h != nil {
		c.h.Write(p[:n])
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err == nil && c.remaining == 0 {
		// Finish the chunk now, so that bad data is never returned with a
		// nil error at the end of a chunk.
		err = c.endChunk()
	}
	if err != nil {
		c.err = err
	}
	return n, err
}

// endChunk reads the CRLF after a chunk's data and checks its signature.
func (c *chunkedReader) endChunk() error {
	if !c.inChunk {
		return nil
	}
	c.inChunk = false
	var crlf [2]byte
	if _, err := io.ReadFull(c.br, crlf[:]); err != nil {
		return errChunkMalformed
	}
	if crlf != [2]byte{'\r', '\n'} {
		return errChunkMalformed
	}
	return c.checkChunkSig()
}

func (c *chunkedReader) checkChunkSig() error {
	if c.signer == nil {
		return nil
	}
	sum := hex.EncodeToString(c.h.Sum(nil))
	c.h.Reset()
	if !c.signer.verify("AWS4-HMAC-SHA256-PAYLOAD", sum, c.chunkSig) {
		return errChunkSignature
	}
	return nil
}

// next reads the next chunk header; on the final chunk it also reads the
// trailers and the closing CRLF.
func (c *chunkedReader) next() error {
	if err := c.endChunk(); err != nil {
		return err
	}
	line, err := c.line()
	if err == io.EOF {
		return errChunkMalformed // the body ended before the final chunk
	}
	if err != nil {
		return err
	}
	sizeHex, ext, hasExt := strings.Cut(line, ";")
	if sizeHex == "" || len(sizeHex) > 16 {
		return errChunkMalformed
	}
	size, err := strconv.ParseInt(sizeHex, 16, 64)
	if err != nil || size < 0 {
		return errChunkMalformed
	}
	c.chunkSig = ""
	if c.signer != nil {
		name, sig, ok := strings.Cut(ext, "=")
		if !hasExt || !ok || name != "chunk-signature" || len(sig) != 64 {
			return errChunkMalformed
		}
		c.chunkSig = sig
	}
	// Unsigned chunks carry no extension we know; any is ignored, as HTTP
	// chunked encoding does.
	if size > 0 {
		c.remaining = size
		c.inChunk = true
		return nil
	}
	// The final, empty chunk.
	if err := c.checkChunkSig(); err != nil {
		return err
	}
	if err := c.readTrailers(); err != nil {
		return err
	}
	c.done = true
	return nil
}

func (c *chunkedReader) readTrailers() error {
	var canon bytes.Buffer
	trailerSig := ""
	for n := 0; ; n++ {
		line, err := c.line()
		if err == io.EOF || (err == nil && line == "") {
			// Some clients end the body right after the last trailer
			// without the closing CRLF; accept that only at EOF.
			break
		}
		if err != nil {
			return err
		}
		if n >= maxTrailers {
			return errChunkMalformed
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || name == "" {
			return errChunkMalformed
		}
		name = strings.ToLower(strings.TrimSpace(name))
		value = strings.TrimSpace(value)
		if !c.trailer {
			return errChunkMalformed
		}
		if name == "x-amz-trailer-signature" {
			if trailerSig != "" {
				return errChunkMalformed
			}
			trailerSig = value
			continue
		}
		if trailerSig != "" { // the signature must come last
			return errChunkMalformed
		}
		if c.Trailers == nil {
			c.Trailers = make(map[string]string)
		}
		if _, dup := c.Trailers[name]; dup {
			return errChunkMalformed
		}
		c.Trailers[name] = value
		canon.WriteString(name)
		canon.WriteByte(':')
		canon.WriteString(value)
		canon.WriteByte('\n')
	}
	if c.signer != nil && c.trailer {
		if trailerSig == "" {
			return errChunkSignature
		}
		sum := sha256.Sum256(canon.Bytes())
		if !c.signer.verify("AWS4-HMAC-SHA256-TRAILER", hex.EncodeToString(sum[:]), trailerSig) {
			return errChunkSignature
		}
	} else if trailerSig != "" {
		return errChunkMalformed
	}
	return nil
}

// line reads one CRLF-terminated line, without the CRLF. A bare EOF before
// any byte is returned as io.EOF.
func (c *chunkedReader) line() (string, error) {
	var b []byte
	for {
		frag, err := c.br.ReadSlice('\n')
		b = append(b, frag...)
		if len(b) > maxChunkLine {
			return "", errChunkMalformed
		}
		if err == nil {
			break
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF && len(b) == 0 {
			return "", io.EOF
		}
		return "", errChunkMalformed
	}
	if len(b) < 2 || b[len(b)-2] != '\r' {
		return "", errChunkMalformed
	}
	return string(b[:len(b)-2]), nil
}
