package identity

import (
	"strings"
	"testing"
)

// FuzzSubjectClaims: ParseSubjectClaims accepts only distinct known keys,
// and a sub built from what it accepts is key:value pairs in that order.
func FuzzSubjectClaims(f *testing.F) {
	for _, s := range []string{"pipeline_name,stage,action", "", ",", "job_id,job_id", "account_id, region", "x,y"} {
		f.Add(s)
	}
	c := &Claims{AccountID: "1", Region: "r", PipelineName: "p", Stage: "s", Action: "a", JobID: "j"}
	f.Fuzz(func(t *testing.T, v string) {
		keys, err := ParseSubjectClaims(v)
		if err != nil {
			return
		}
		if len(keys) == 0 || len(keys) > maxSubjectClaims {
			t.Fatalf("%q parsed into %d keys", v, len(keys))
		}
		sub, err := subject(c, keys)
		if err != nil {
			t.Fatalf("accepted keys %v do not build a sub: %v", keys, err)
		}
		if !strings.HasPrefix(sub, keys[0]+":") {
			t.Fatalf("sub %q does not start with %s", sub, keys[0])
		}
	})
}

func TestRequestTokenRoundTrip(t *testing.T) {
	id, nonce, ok := ParseRequestToken(RequestToken("0b6c4f8e-1d2a-4c55-9d1e-0a6f1e2b3c4d", "n:o:n:c:e"))
	if !ok || id != "0b6c4f8e-1d2a-4c55-9d1e-0a6f1e2b3c4d" || nonce != "n:o:n:c:e" {
		t.Fatalf("got %q %q %v", id, nonce, ok)
	}
	if _, _, ok := ParseRequestToken("no-separator"); ok {
		t.Fatal("a token without a colon parsed")
	}
}
