package joblogs

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf8"
)

// MaxEventBytes bounds a log event's message: a longer line is split into
// events of at most this many bytes (cut at a UTF-8 character boundary).
// CloudWatch Logs' own limit is 256 KiB per event.
const MaxEventBytes = 64 << 10

// nextEvent finds the first event of b, which starts at an event boundary:
// a line (its message without the newline), or, when no newline comes
// within MaxEventBytes, a piece of at most MaxEventBytes bytes ending at a
// character boundary. n is how many bytes of b the event takes. At the end
// of b an unterminated line is an event only when final is true (more bytes
// may complete it otherwise); ok is false when b holds no complete event.
//
// The split depends only on the bytes from the event's start, so the same
// log splits the same way whatever chunks it arrived in: a newline always
// ends an event, and a cut is made only when the next MaxEventBytes+1 bytes
// have no newline, which later bytes cannot change.
func nextEvent(b []byte, final bool) (msg []byte, n int, ok bool) {
	if len(b) == 0 {
		return nil, 0, false
	}
	window := b[:min(len(b), MaxEventBytes+1)]
	if i := bytes.IndexByte(window, '\n'); i >= 0 {
		return b[:i], i + 1, true
	}
	if len(b) > MaxEventBytes {
		c := MaxEventBytes
		// Back off to the start of a character (at most utf8.UTFMax-1
		// bytes), so that the cut does not split one.
		for k := 0; k < utf8.UTFMax-1 && c > 1 && !utf8.RuneStart(b[c]); k++ {
			c--
		}
		return b[:c], c, true
	}
	if final {
		return b, len(b), true
	}
	return nil, 0, false
}

// completeEvents returns how many leading bytes of b are complete events
// (b starts at an event boundary): everything up to the last newline, and
// after it the pieces of a line longer than MaxEventBytes.
func completeEvents(b []byte) int {
	end := bytes.LastIndexByte(b, '\n') + 1
	for {
		_, n, ok := nextEvent(b[end:], false)
		if !ok {
			return end
		}
		end += n
	}
}

// Chunk encodings (the first byte of store.LogChunk.Data).
const (
	// encRaw: the log's bytes as received; every event of the chunk has
	// the chunk's First time.
	encRaw = 'r'
	// encBlock: a compacted block, written when the log is finished:
	// a time index (uvarint count, then per entry the uvarint distance
	// from the previous entry's offset and the varint difference of its
	// time in milliseconds from the previous entry's, the first relative
	// to the chunk's start and First time), then the bytes, gzipped. An
	// entry says: the events that start at or after this offset have this
	// time (each entry is one of the chunks the block replaced).
	encBlock = 'z'
)

// maxBlockBytes bounds what one compacted block holds (and so what a
// decoder accepts to inflate).
const maxBlockBytes = 4 << 20

// timeMark is an entry of a block's time index.
type timeMark struct {
	off int64 // relative to the chunk's Offset
	ms  int64
}

// decodedChunk is a chunk's bytes with the times of its events.
type decodedChunk struct {
	data  []byte
	marks []timeMark // never empty; marks[0].off == 0
}

// timeAt returns the time of the event starting at relative offset off.
func (d *decodedChunk) timeAt(off int64) int64 {
	t := d.marks[0].ms
	for _, m := range d.marks[1:] {
		if m.off > off {
			break
		}
		t = m.ms
	}
	return t
}

var errBadChunk = errors.New("joblogs: malformed log chunk")

// decodeChunk decodes a chunk's data; length is the chunk's Length and
// firstMs its First time.
func decodeChunk(data []byte, length, firstMs int64) (*decodedChunk, error) {
	if len(data) == 0 {
		return nil, errBadChunk
	}
	switch data[0] {
	case encRaw:
		if int64(len(data)-1) != length {
			return nil, fmt.Errorf("%w: raw chunk of %d bytes, want %d", errBadChunk, len(data)-1, length)
		}
		return &decodedChunk{data: data[1:], marks: []timeMark{{0, firstMs}}}, nil
	case encBlock:
		return decodeBlock(data[1:], length, firstMs)
	}
	return nil, fmt.Errorf("%w: unknown encoding %q", errBadChunk, data[0])
}

func decodeBlock(b []byte, length, firstMs int64) (*decodedChunk, error) {
	if length < 0 || length > maxBlockBytes {
		return nil, fmt.Errorf("%w: block length %d", errBadChunk, length)
	}
	count, n := binary.Uvarint(b)
	if n <= 0 || count == 0 || count > uint64(length)+1 {
		return nil, fmt.Errorf("%w: time index count", errBadChunk)
	}
	b = b[n:]
	marks := make([]timeMark, 0, count)
	off, ms := int64(0), firstMs
	for i := uint64(0); i < count; i++ {
		d, n := binary.Uvarint(b)
		if n <= 0 || d > uint64(length) {
			return nil, fmt.Errorf("%w: time index offset", errBadChunk)
		}
		b = b[n:]
		dt, n := binary.Varint(b)
		if n <= 0 {
			return nil, fmt.Errorf("%w: time index time", errBadChunk)
		}
		b = b[n:]
		off += int64(d)
		ms += dt
		if off > length || (i == 0 && off != 0) || (i > 0 && d == 0) {
			return nil, fmt.Errorf("%w: time index offsets", errBadChunk)
		}
		marks = append(marks, timeMark{off, ms})
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errBadChunk, err)
	}
	data := make([]byte, length)
	if _, err := io.ReadFull(zr, data); err != nil {
		return nil, fmt.Errorf("%w: inflate: %v", errBadChunk, err)
	}
	// Exactly length bytes: one more is a lie about the length.
	var one [1]byte
	if k, _ := zr.Read(one[:]); k != 0 {
		return nil, fmt.Errorf("%w: block longer than its length", errBadChunk)
	}
	return &decodedChunk{data: data, marks: marks}, nil
}

// blockBuilder compacts consecutive chunks into one encBlock chunk.
type blockBuilder struct {
	raw   bytes.Buffer
	marks []timeMark
}

func (bb *blockBuilder) add(d *decodedChunk) {
	base := int64(bb.raw.Len())
	for _, m := range d.marks {
		off := base + m.off
		if n := len(bb.marks); n > 0 && bb.marks[n-1].off == off {
			bb.marks[n-1].ms = m.ms // an empty chunk's mark: the later wins
			continue
		}
		bb.marks = append(bb.marks, timeMark{off, m.ms})
	}
	bb.raw.Write(d.data)
}

func (bb *blockBuilder) encode() []byte {
	var out bytes.Buffer
	out.WriteByte(encBlock)
	var tmp [binary.MaxVarintLen64]byte
	out.Write(tmp[:binary.PutUvarint(tmp[:], uint64(len(bb.marks)))])
	prevOff, prevMs := int64(0), bb.marks[0].ms
	for _, m := range bb.marks {
		out.Write(tmp[:binary.PutUvarint(tmp[:], uint64(m.off-prevOff))])
		out.Write(tmp[:binary.PutVarint(tmp[:], m.ms-prevMs)])
		prevOff, prevMs = m.off, m.ms
	}
	zw, _ := gzip.NewWriterLevel(&out, gzip.BestSpeed)
	_, _ = zw.Write(bb.raw.Bytes())
	_ = zw.Close()
	return out.Bytes()
}

// msOf is t in unix milliseconds.
func msOf(t time.Time) int64 { return t.UnixMilli() }
