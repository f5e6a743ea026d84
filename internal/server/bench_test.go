package server_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline"

	"github.com/pipelined/pipelined/internal/server"
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

// BenchmarkPollForJobs: an empty PollForJobs (no long poll) signed by the
// root credentials and by a worker key, side by side, in-process: what the
// worker-key path (the key lookup through its cache, the scope checks)
// adds to a request.
func BenchmarkPollForJobs(b *testing.B) {
	srv := servertest.Start(b, func(c *server.Config) { c.JobPollWait = 0 })
	registerTestTypes(b, srv.Client())
	_, worker := issueWorkerKey(b, srv, buildType)
	for _, tc := range []struct {
		name string
		c    *codepipeline.Client
	}{{"root", srv.Client()}, {"worker-key", worker}} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			in := &codepipeline.PollForJobsInput{ActionTypeId: buildType, MaxBatchSize: aws.Int32(1)}
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := tc.c.PollForJobs(ctx, in); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
