package sigv4

import (
	"context"
	"net/http"
	"testing"
)

// BenchmarkVerify verifies a typical CodePipeline call: a JSON POST signed
// by the SDK, as Go's server hands it over.
func BenchmarkVerify(b *testing.B) {
	r, body := signedJSON(b, longTermCreds, testNow, nil)
	ctx := context.Background()

	b.Run("CodePipeline POST", func(b *testing.B) {
		v := newTestVerifier("codepipeline")
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(ctx, r, body); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("CodePipeline POST parallel", func(b *testing.B) {
		v := newTestVerifier("codepipeline")
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := v.Verify(ctx, r, body); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})

	// What the signing-key cache saves: a fresh Verifier derives the key
	// every time.
	b.Run("CodePipeline POST uncached key", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			v := newTestVerifier("codepipeline")
			if _, err := v.Verify(ctx, r, body); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("S3 presigned GET", func(b *testing.B) {
		req, err := http.NewRequest(http.MethodGet, "https://bucket.s3.amazonaws.com/some/key.txt?X-Amz-Expires=300", nil)
		if err != nil {
			b.Fatal(err)
		}
		r, _ := overWire(b, presign(b, req, nil, longTermCreds, UnsignedPayload, "s3", testNow, s3Options))
		v := newTestVerifier("s3")
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(ctx, r, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}
