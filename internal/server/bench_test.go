package server_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/codepipeline"

	"github.com/pipelined/pipelined/internal/server/servertest"
)

// BenchmarkAPI drives the full stack in-process (for profiling with
// -cpuprofile; bench/cmd/apibench is the benchmark of record).
func BenchmarkAPI(b *testing.B) {
	srv := servertest.Start(b)
	c := srv.Client()
	for i := range 10 {
		if _, err := c.CreatePipeline(context.Background(), &codepipeline.CreatePipelineInput{Pipeline: examplePipeline(fmt.Sprint("p", i))}); err != nil {
			b.Fatal(err)
		}
	}
	for _, call := range []struct{ name, target, body string }{
		{"GetPipeline", "CodePipeline_20150709.GetPipeline", `{"name":"p3"}`},
		{"ListPipelines", "CodePipeline_20150709.ListPipelines", `{"maxResults":100}`},
	} {
		b.Run(call.name, func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r := rawCall(b, srv.URL, call.target, call.body, rootSigner)
					if r.status != 200 {
						b.Fatalf("%d %s", r.status, r.raw)
					}
				}
			})
		})
	}
}
