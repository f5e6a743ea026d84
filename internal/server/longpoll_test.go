package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/codepipeline"

	"github.com/pipelined/pipelined/internal/server"
	"github.com/pipelined/pipelined/internal/server/servertest"
)

// A poll with nothing queued waits, and answers within milliseconds of a
// job being queued; with nothing queued it answers empty after the wait.
func TestLongPolling(t *testing.T) {
	servertest.EachBackend(t, func(t *testing.T, backend servertest.Options) {
		_, c := engineServer(t, backend, func(cfg *server.Config) { cfg.JobPollWait = 3 * time.Second })
		ctx := context.Background()
		start := time.Now()
		out := must(c.PollForJobs(ctx, &codepipeline.PollForJobsInput{ActionTypeId: srcType}))
		if waited := time.Since(start); len(out.Jobs) != 0 || waited < 2900*time.Millisecond {
			t.Fatalf("an idle poll answered %d jobs after %v, want none after ~3s", len(out.Jobs), waited)
		}
		type result struct {
			jobs int
			at   time.Time
		}
		got := make(chan result, 1)
		go func() {
			out, err := c.PollForJobs(ctx, &codepipeline.PollForJobsInput{ActionTypeId: srcType})
			if err != nil {
				t.Error(err)
			}
			got <- result{len(out.Jobs), time.Now()}
		}()
		time.Sleep(300 * time.Millisecond) // the poll is waiting
		queued := time.Now()
		if _, err := c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: gatePipeline("woken", "")}); err != nil {
			t.Fatal(err) // starts an execution: a source job is queued
		}
		r := <-got
		if r.jobs != 1 {
			t.Fatalf("the waiting poll got %d jobs", r.jobs)
		}
		if d := r.at.Sub(queued); d > 500*time.Millisecond {
			t.Errorf("the waiting poll answered %v after the job was queued", d)
		}
		t.Logf("job queued → waiting poll answered: %v", r.at.Sub(queued))
	})
}
