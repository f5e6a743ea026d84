package logsapi

import (
	"strings"
	"testing"
)

// FuzzParsePattern: any filter pattern compiles or is refused, never
// panics; a plain word pattern matches the messages that contain it.
func FuzzParsePattern(f *testing.F) {
	for _, s := range []string{"", "ERROR", `"out of memory"`, "?a ?b", "ERROR -Retry", `"unterminated`, "{ $.x = 1 }", "[a, b]", "%re%", "- -", `"a\"b"`} {
		f.Add(s, "an ERROR out of memory")
	}
	f.Fuzz(func(t *testing.T, pattern, msg string) {
		match, err := ParsePattern(pattern)
		if err != nil {
			return
		}
		_ = match([]byte(msg))
		if w := strings.TrimSpace(pattern); w != "" && !strings.ContainsAny(w, " \t\"?-{[%\\") {
			if !match([]byte("<" + w + ">")) {
				t.Fatalf("pattern %q does not match a message containing it", w)
			}
		}
	})
}

// FuzzTokens: pagination tokens of any text decode or are refused; what
// the server encodes decodes back to itself.
func FuzzTokens(f *testing.F) {
	f.Add(encodeToken(token{Kind: "e", Stream: "s", Time: 5, Offset: 7}))
	f.Add(posToken('f', 123))
	f.Add("b/" + strings.Repeat("9", 56))
	f.Add("eyJrIjoiZSJ9")
	f.Fuzz(func(t *testing.T, s string) {
		if tok, err := decodeToken(s); err == nil {
			if back, err := decodeToken(encodeToken(tok)); err != nil || back != tok {
				t.Fatalf("token %+v does not round-trip: %+v %v", tok, back, err)
			}
		}
		if dir, off, ok := parsePosToken(s); ok {
			if off < 0 || posToken(dir, off) != s {
				t.Fatalf("position token %q parsed as %c %d", s, dir, off)
			}
		}
	})
}
