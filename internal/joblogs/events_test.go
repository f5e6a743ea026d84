package joblogs

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/pipelined/pipelined/internal/store"
)

// splitAll splits a whole log into event messages (its end is final).
func splitAll(b []byte) []string {
	var out []string
	for len(b) > 0 {
		msg, n, _ := nextEvent(b, true)
		out = append(out, string(msg))
		b = b[n:]
	}
	return out
}

// appendPieces feeds data to appendBytes in the given pieces, finishes the
// log, and returns the events read back from its chunks, and the chunks.
func appendPieces(t testing.TB, pieces [][]byte) ([]string, []store.LogChunk) {
	var (
		ls     store.LogStream
		chunks []store.LogChunk
		now    = time.UnixMilli(1_700_000_000_000)
	)
	for _, p := range pieces {
		next, c, err := appendBytes(ls, p, now)
		if err != nil {
			t.Fatal(err)
		}
		if c != nil {
			chunks = append(chunks, *c)
		}
		ls = *next
		now = now.Add(time.Millisecond)
	}
	if len(ls.Tail) > MaxEventBytes {
		t.Fatalf("tail of %d bytes, more than MaxEventBytes", len(ls.Tail))
	}
	if len(ls.Tail) > 0 {
		chunks = append(chunks, store.LogChunk{Offset: ls.Length - int64(len(ls.Tail)), Length: int64(len(ls.Tail)), First: now, Last: now, Data: append([]byte{encRaw}, ls.Tail...)})
	}
	var events []string
	off := int64(0)
	for _, c := range chunks {
		if c.Offset != off {
			t.Fatalf("chunk at %d, want %d", c.Offset, off)
		}
		d, err := decodeChunk(c.Data, c.Length, msOf(c.First))
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, splitAll(d.data)...)
		off += c.Length
	}
	return events, chunks
}

func TestSplitLines(t *testing.T) {
	long := strings.Repeat("x", MaxEventBytes+10)
	// A multi-byte character straddling the cut stays whole.
	wide := strings.Repeat("a", MaxEventBytes-1) + "é" + "b\n"
	for name, tc := range map[string]struct {
		in   string
		want []string
	}{
		"lines":         {"a\nb\n", []string{"a", "b"}},
		"empty lines":   {"\n\nx\n", []string{"", "", "x"}},
		"unterminated":  {"a\nb", []string{"a", "b"}},
		"long":          {long + "\n", []string{long[:MaxEventBytes], long[MaxEventBytes:]}},
		"exactly max":   {long[:MaxEventBytes] + "\nz\n", []string{long[:MaxEventBytes], "z"}},
		"utf8 boundary": {wide, []string{strings.Repeat("a", MaxEventBytes-1), "éb"}},
		"crlf kept":     {"a\r\n", []string{"a\r"}},
	} {
		got := splitAll([]byte(tc.in))
		if strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
			t.Errorf("%s: %d events %q, want %d", name, len(got), trunc(got), len(tc.want))
		}
		// Any piecing gives the same events.
		var pieces [][]byte
		for i := 0; i < len(tc.in); i += 7 {
			pieces = append(pieces, []byte(tc.in[i:min(i+7, len(tc.in))]))
		}
		if ev, _ := appendPieces(t, pieces); strings.Join(ev, "|") != strings.Join(got, "|") {
			t.Errorf("%s: in pieces %q", name, trunc(ev))
		}
	}
}

func trunc(s []string) []string {
	out := make([]string, len(s))
	for i, x := range s {
		if len(x) > 20 {
			x = x[:20] + "..."
		}
		out[i] = x
	}
	return out
}

// FuzzSplitPieces: however a log arrives in pieces, and whether or not its
// chunks are compacted, it splits into the same events, none longer than
// MaxEventBytes, none holding a newline, and the bytes come back whole.
func FuzzSplitPieces(f *testing.F) {
	f.Add([]byte("one\ntwo\nthree"), []byte{1, 5, 2})
	f.Add([]byte(strings.Repeat("é", MaxEventBytes)), []byte{200, 3})
	f.Add([]byte(strings.Repeat("ab\n", 100)), []byte{0, 0, 9})
	f.Add([]byte("\xff\xfe\n\x00"), []byte{1})
	f.Fuzz(func(t *testing.T, data []byte, cuts []byte) {
		// Stretch the data so that long lines occur.
		if len(data) > 0 && len(data) < 64 && len(cuts) > 0 && cuts[0]%4 == 0 {
			data = bytes.Repeat(data, MaxEventBytes/len(data)+2)
		}
		var pieces [][]byte
		rest := data
		for i := 0; len(rest) > 0; i++ {
			n := len(rest)
			if len(cuts) > 0 {
				n = min(len(rest), int(cuts[i%len(cuts)])*int(cuts[i%len(cuts)])+1)
			}
			pieces = append(pieces, rest[:n])
			rest = rest[n:]
		}
		want := splitAll(data)
		got, chunks := appendPieces(t, pieces)
		if len(got) != len(want) {
			t.Fatalf("%d events in pieces, %d whole", len(got), len(want))
		}
		var joined bytes.Buffer
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("event %d differs", i)
			}
			if len(got[i]) > MaxEventBytes || strings.Contains(got[i], "\n") {
				t.Fatalf("event %d: %d bytes or a newline", i, len(got[i]))
			}
			if utf8.Valid(data) && !utf8.ValidString(got[i]) {
				t.Fatalf("event %d: a character was cut", i)
			}
		}
		// Compaction keeps the bytes and the times.
		var bb blockBuilder
		for _, c := range chunks {
			d, _ := decodeChunk(c.Data, c.Length, msOf(c.First))
			bb.add(d)
			joined.Write(d.data)
		}
		if !bytes.Equal(joined.Bytes(), data) {
			t.Fatal("chunks do not hold the log's bytes")
		}
		if len(chunks) == 0 {
			return
		}
		blk := bb.encode()
		d, err := decodeChunk(blk, int64(len(data)), msOf(chunks[0].First))
		if err != nil {
			t.Fatalf("decode compacted block: %v", err)
		}
		if !bytes.Equal(d.data, data) {
			t.Fatal("compacted block lost bytes")
		}
		for _, c := range chunks {
			if got := d.timeAt(c.Offset); got != msOf(c.First) {
				t.Fatalf("time at %d: %d, want %d", c.Offset, got, msOf(c.First))
			}
		}
	})
}

// FuzzDecodeChunk: a stored chunk of any bytes decodes or fails, never
// panics, and never inflates past its stated length.
func FuzzDecodeChunk(f *testing.F) {
	var bb blockBuilder
	bb.add(&decodedChunk{data: []byte("a\nb\n"), marks: []timeMark{{0, 5}}})
	bb.add(&decodedChunk{data: []byte("c\n"), marks: []timeMark{{0, 9}}})
	f.Add(bb.encode(), int64(6))
	f.Add([]byte("rabc"), int64(3))
	f.Add([]byte("z\x02\x00\x00\x01\x05"), int64(4))
	f.Add([]byte{}, int64(0))
	f.Fuzz(func(t *testing.T, data []byte, length int64) {
		d, err := decodeChunk(data, length, 1000)
		if err != nil {
			return
		}
		if int64(len(d.data)) != length || len(d.marks) == 0 || d.marks[0].off != 0 {
			t.Fatalf("decoded %d bytes (length %d), marks %v", len(d.data), length, d.marks)
		}
		for pos := 0; pos < len(d.data); {
			_, n, ok := nextEvent(d.data[pos:], true)
			if !ok || n <= 0 {
				t.Fatal("no progress")
			}
			_ = d.timeAt(int64(pos))
			pos += n
		}
	})
}
