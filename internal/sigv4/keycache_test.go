package sigv4

import (
	"bytes"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"
)

func TestKeyCacheIsBoundedAndRight(t *testing.T) {
	var c keyCache
	for i := range maxCachedKeys + 10 {
		secret := fmt.Sprint("secret-", i)
		if got, want := c.get(secret, "20250314", testRegion, "s3"), deriveSigningKey(secret, "20250314", testRegion, "s3"); !bytes.Equal(got, want) {
			t.Fatalf("key %d = %x, want %x", i, got, want)
		}
	}
	if n := len(c.keys); n > maxCachedKeys {
		t.Fatalf("cache holds %d keys, more than %d", n, maxCachedKeys)
	}
	// Every part of the scope is part of the cache key.
	base := c.get(testSecret, "20250314", testRegion, "s3")
	for _, other := range [][4]string{
		{testSecret + "x", "20250314", testRegion, "s3"},
		{testSecret, "20250315", testRegion, "s3"},
		{testSecret, "20250314", "eu-west-1", "s3"},
		{testSecret, "20250314", testRegion, "codepipeline"},
	} {
		if bytes.Equal(base, c.get(other[0], other[1], other[2], other[3])) {
			t.Errorf("%q shares a key with the base scope", other)
		}
	}
}

// Run with -race: Verify is called from many goroutines at once.
func TestConcurrentVerify(t *testing.T) {
	v := newTestVerifier("codepipeline")
	var reqs [][2]any
	for i := range 8 {
		creds := longTermCreds
		if i%2 == 1 {
			creds = tempCreds
		}
		r, body := signedJSON(t, creds, testNow.Add(-time.Duration(i)*time.Minute), nil)
		reqs = append(reqs, [2]any{r, body})
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 50 {
				rb := reqs[(g+i)%len(reqs)]
				if _, err := v.Verify(t.Context(), rb[0].(*http.Request), rb[1].([]byte)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}
