package runner

import (
	"bytes"
	"strings"
	"testing"
)

// redactAll is the reference: the whole output at once, earliest match
// first, longest at a position.
func redactAll(s string, secrets []string) string {
	var b bytes.Buffer
	r := newRedactor(&b, secrets)
	_, _ = r.Write([]byte(s))
	_ = r.Flush()
	return b.String()
}

func TestRedactorHidesSecretsSplitAcrossWrites(t *testing.T) {
	secret := "s3cr3t-value-42"
	out := "token=" + secret + " and again " + secret + "!\n"
	for split := 1; split < len(out); split++ {
		var b bytes.Buffer
		r := newRedactor(&b, []string{secret, "short"})
		_, _ = r.Write([]byte(out[:split]))
		_, _ = r.Write([]byte(out[split:]))
		_ = r.Flush()
		if got, want := b.String(), "token=*** and again ***!\n"; got != want {
			t.Fatalf("split at %d: got %q, want %q", split, got, want)
		}
	}
	if got := redactAll("a short word", []string{"short"}); got != "a short word" {
		t.Errorf("a needle under %d bytes was redacted: %q", MinSecretLength, got)
	}
	if got := redactAll("xx-abcdefgh-yy", []string{"abcdef", "abcdefgh"}); got != "xx-***-yy" {
		t.Errorf("the longest needle at a position must win: %q", got)
	}
}

// FuzzRedactor: however the output is cut into writes, the result is the
// one-piece result, and no needle survives it.
func FuzzRedactor(f *testing.F) {
	f.Add("hello secret123 world", "secret123", uint8(3), uint8(7))
	f.Add("aaaaaaab", "aaaaab", uint8(1), uint8(2))
	f.Add("xsecretsecrety", "secret", uint8(5), uint8(1))
	f.Fuzz(func(t *testing.T, text, secret string, cut1, cut2 uint8) {
		if len(secret) < MinSecretLength {
			return
		}
		want := redactAll(text, []string{secret})
		a, b := int(cut1)%(len(text)+1), int(cut2)%(len(text)+1)
		if a > b {
			a, b = b, a
		}
		var buf bytes.Buffer
		r := newRedactor(&buf, []string{secret})
		for _, piece := range []string{text[:a], text[a:b], text[b:]} {
			_, _ = r.Write([]byte(piece))
		}
		_ = r.Flush()
		if buf.String() != want {
			t.Fatalf("pieces at %d,%d: got %q, want %q", a, b, buf.String(), want)
		}
		// A needle may reappear only by joining a mask with its
		// neighbours, never as text that was in the output.
		for _, piece := range strings.Split(want, Mask) {
			if strings.Contains(piece, secret) {
				t.Fatalf("secret survives in %q", want)
			}
		}
	})
}
