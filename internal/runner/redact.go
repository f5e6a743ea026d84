package runner

import (
	"bytes"
	"io"
	"slices"
)

// MinSecretLength is the shortest value the redactor hides: shorter ones
// would mask ordinary words and numbers all over the log (and say what
// the secret is by where the masks fall).
const MinSecretLength = 6

// Mask replaces a secret in the output.
const Mask = "***"

// redactor is an io.Writer that replaces every occurrence of its needles
// with Mask before passing bytes on. Output arrives in arbitrary pieces, so
// a secret may be split across writes: the redactor holds back the longest
// tail of what it has seen that could still become a needle, and releases
// it with the next write (or Flush).
type redactor struct {
	out     io.Writer
	needles [][]byte
	maxLen  int
	carry   []byte
	buf     []byte
}

// newRedactor returns a redactor writing to out. Needles shorter than
// MinSecretLength, and duplicates, are ignored.
func newRedactor(out io.Writer, secrets []string) *redactor {
	r := &redactor{out: out}
	for _, s := range secrets {
		if len(s) < MinSecretLength {
			continue
		}
		n := []byte(s)
		if slices.ContainsFunc(r.needles, func(o []byte) bool { return bytes.Equal(o, n) }) {
			continue
		}
		r.needles = append(r.needles, n)
		r.maxLen = max(r.maxLen, len(n))
	}
	// Longest first: at one position the longest needle wins.
	slices.SortFunc(r.needles, func(a, b []byte) int { return len(b) - len(a) })
	return r
}

// Write redacts p (with what was held back) and writes what is certain.
func (r *redactor) Write(p []byte) (int, error) {
	if len(r.needles) == 0 {
		_, err := r.out.Write(p)
		return len(p), err
	}
	data := append(r.carry, p...)
	r.buf = r.buf[:0]
	i := 0
	for {
		pos, n := r.next(data, i)
		if pos < 0 {
			break
		}
		r.buf = append(r.buf, data[i:pos]...)
		r.buf = append(r.buf, Mask...)
		i = pos + n
	}
	rest := data[i:]
	hold := r.partial(rest)
	r.buf = append(r.buf, rest[:len(rest)-hold]...)
	r.carry = append(r.carry[:0:0], rest[len(rest)-hold:]...)
	if len(r.buf) > 0 {
		if _, err := r.out.Write(r.buf); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// next finds the earliest needle occurrence at or after from (the longest
// at that position): its position and length, or -1.
func (r *redactor) next(data []byte, from int) (pos, n int) {
	pos = -1
	for _, nd := range r.needles {
		if k := bytes.Index(data[from:], nd); k >= 0 && (pos < 0 || from+k < pos) {
			pos, n = from+k, len(nd)
		}
	}
	return pos, n
}

// partial is the length of the longest suffix of data that is a proper
// prefix of a needle.
func (r *redactor) partial(data []byte) int {
	for k := min(len(data), r.maxLen-1); k > 0; k-- {
		tail := data[len(data)-k:]
		for _, nd := range r.needles {
			if len(nd) > k && bytes.HasPrefix(nd, tail) {
				return k
			}
		}
	}
	return 0
}

// Flush writes what was held back: the output ended, so it cannot become
// a needle any more.
func (r *redactor) Flush() error {
	if len(r.carry) == 0 {
		return nil
	}
	_, err := r.out.Write(r.carry)
	r.carry = r.carry[:0]
	return err
}
