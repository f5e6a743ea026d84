package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline/types"
	"github.com/aws/smithy-go"

	"github.com/pipelined/pipelined/internal/pgtest"
)

// TestSixteenPollersTwoReplicas: 16 workers long-polling two replicas on
// one PostgreSQL database share 2,000 jobs; every job is acknowledged by
// exactly one worker, and none is lost.
//
// The workers behave as real ones do: a poll that fails in transit (a
// connection closed under a response, seen about once in a few hundred
// runs, from the client's side) is logged and polled again, and the jobs
// that response carried come back to the queue after --job-ack-timeout,
// under new nonces, for another worker. The short timeout keeps that
// inside the test's time; an error the service answers still fails it.
func TestSixteenPollersTwoReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two servers and 2,000 jobs")
	}
	dsn := pgtest.DSN(t)
	flags := []string{"--job-poll-wait=5s", "--job-ack-timeout=5s"}
	a := startReplicaAt(t, dsn, t.TempDir(), freeAddr(t), flags...)
	b := startReplicaAt(t, dsn, t.TempDir(), freeAddr(t), flags...)
	ca, cb := a.client(), b.client()
	ctx := context.Background()

	for _, cat := range []types.ActionCategory{types.ActionCategorySource, types.ActionCategoryBuild} {
		in := &codepipeline.CreateCustomActionTypeInput{Category: cat, Provider: aws.String("Many"), Version: aws.String("1"),
			InputArtifactDetails: &types.ArtifactDetails{MinimumCount: 0, MaximumCount: 1}, OutputArtifactDetails: &types.ArtifactDetails{MinimumCount: 0, MaximumCount: 1}}
		if cat == types.ActionCategorySource {
			in.InputArtifactDetails.MaximumCount, in.OutputArtifactDetails.MinimumCount = 0, 1
		}
		if _, err := ca.CreateCustomActionType(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	typeOf := func(cat types.ActionCategory) *types.ActionTypeId {
		return &types.ActionTypeId{Category: cat, Owner: types.ActionOwnerCustom, Provider: aws.String("Many"), Version: aws.String("1")}
	}
	// 50 sources and 50 builds: 100 jobs an execution, 20 executions.
	var sources, builds []types.ActionDeclaration
	for i := range 50 {
		art := fmt.Sprintf("A%02d", i)
		sources = append(sources, types.ActionDeclaration{Name: aws.String("S" + art), ActionTypeId: typeOf(types.ActionCategorySource), OutputArtifacts: []types.OutputArtifact{{Name: aws.String(art)}}})
		builds = append(builds, types.ActionDeclaration{Name: aws.String("B" + art), ActionTypeId: typeOf(types.ActionCategoryBuild), InputArtifacts: []types.InputArtifact{{Name: aws.String(art)}}})
	}
	p := &types.PipelineDeclaration{
		Name: aws.String("many"), RoleArn: aws.String("arn:aws:iam::123456789012:role/r"), PipelineType: types.PipelineTypeV2, ExecutionMode: types.ExecutionModeParallel,
		ArtifactStore: &types.ArtifactStore{Type: types.ArtifactStoreTypeS3, Location: aws.String("artifacts")},
		Stages:        []types.StageDeclaration{{Name: aws.String("Source"), Actions: sources}, {Name: aws.String("Build"), Actions: builds}},
	}

	var mu sync.Mutex
	acked := map[string]int{} // job id -> successful acknowledgements
	var errs []error
	transport := 0 // polls that failed in transit (at most 3 are tolerated)
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range 16 {
		c := []*codepipeline.Client{ca, cb}[i%2]
		cat := []types.ActionCategory{types.ActionCategorySource, types.ActionCategoryBuild}[(i/2)%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for wctx.Err() == nil {
				out, err := c.PollForJobs(wctx, &codepipeline.PollForJobsInput{ActionTypeId: typeOf(cat), MaxBatchSize: aws.Int32(5)})
				if err != nil {
					if wctx.Err() != nil {
						return
					}
					mu.Lock()
					if _, answered := errors.AsType[smithy.APIError](err); answered || transport >= 3 {
						errs = append(errs, err)
						mu.Unlock()
						return
					}
					transport++
					mu.Unlock()
					t.Logf("a poll failed in transit; polling again: %v", err)
					continue
				}
				for _, j := range out.Jobs {
					if _, err := c.AcknowledgeJob(wctx, &codepipeline.AcknowledgeJobInput{JobId: j.Id, Nonce: j.Nonce}); err != nil {
						mu.Lock()
						errs = append(errs, fmt.Errorf("ack %s: %w", aws.ToString(j.Id), err))
						mu.Unlock()
						continue
					}
					mu.Lock()
					acked[aws.ToString(j.Id)]++
					mu.Unlock()
					if _, err := c.PutJobSuccessResult(wctx, &codepipeline.PutJobSuccessResultInput{JobId: j.Id}); err != nil {
						mu.Lock()
						errs = append(errs, fmt.Errorf("result %s: %w", aws.ToString(j.Id), err))
						mu.Unlock()
					}
				}
			}
		}()
	}
	defer func() { stop(); wg.Wait() }()

	started := time.Now()
	if _, err := cb.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: p}); err != nil { // execution 1
		t.Fatal(err)
	}
	for i := range 19 {
		c := []*codepipeline.Client{ca, cb}[i%2]
		if _, err := c.StartPipelineExecution(ctx, &codepipeline.StartPipelineExecutionInput{Name: aws.String("many")}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(3 * time.Minute) // 2,000 jobs; generous for a loaded 2-core machine
	for {
		out, err := ca.ListPipelineExecutions(ctx, &codepipeline.ListPipelineExecutionsInput{PipelineName: aws.String("many")})
		if err != nil {
			t.Fatal(err)
		}
		done := 0
		for _, e := range out.PipelineExecutionSummaries {
			if e.Status == types.PipelineExecutionStatusSucceeded {
				done++
			}
		}
		if done == 20 {
			break
		}
		if time.Now().After(deadline) {
			// Read under the lock, fail without it: the deferred wg.Wait
			// waits for pollers that take the lock (holding it through
			// t.Fatalf deadlocked the test until go test's timeout).
			mu.Lock()
			msg := fmt.Sprintf("%d of 20 executions succeeded, %d jobs acknowledged; errors: %v", done, len(acked), errs)
			mu.Unlock()
			t.Fatal(msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
	elapsed := time.Since(started)
	mu.Lock()
	defer mu.Unlock()
	if len(errs) > 0 {
		t.Errorf("%d worker errors, first: %v", len(errs), errs[0])
	}
	if len(acked) != 2000 {
		t.Errorf("%d distinct jobs acknowledged, want 2000", len(acked))
	}
	for id, n := range acked {
		if n != 1 {
			t.Errorf("job %s acknowledged by %d workers", id, n)
		}
	}
	t.Logf("2,000 jobs through 16 pollers on 2 replicas in %v", elapsed)
}
