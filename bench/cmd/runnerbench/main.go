// Command runnerbench measures Commands actions on the embedded runner
// (issue 12's targets) beside custom actions served by an in-process Go job
// worker, in one run of one in-process pipelined (SQLite):
//
//  1. dispatch latency: from a job being queued (its Created time, in the
//     transition that makes the action ready) to the Commands action's
//     process starting (`true` on the embedded runner), beside the time to
//     a custom action's job reaching a long-polling worker (PollForJobs
//     returning it);
//  2. overhead: a pipeline of an S3 source and 10 stages of one `true`
//     Commands action each, start to Succeeded, beside the same pipeline of
//     custom actions that the Go worker answers at once.
//
// Usage: go run ./bench/cmd/runnerbench [-runs 50] [-pipeline-runs 10]
package main

import (
	"archive/zip"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/pipelined/pipelined/internal/server"
)

const (
	rootKey    = "PLAKRUNNERBENCH00000"
	rootSecret = "runner-bench-secret-0123456789abcdefghij"
)

var (
	commandsType = &types.ActionTypeId{Category: types.ActionCategoryCompute, Owner: types.ActionOwnerAws, Provider: aws.String("Commands"), Version: aws.String("1")}
	customType   = &types.ActionTypeId{Category: types.ActionCategoryBuild, Owner: types.ActionOwnerCustom, Provider: aws.String("BenchWorker"), Version: aws.String("1")}
)

type timings struct {
	mu sync.Mutex
	at map[string]time.Time // job id → when it started / reached the worker
	ch chan string
}

func (t *timings) mark(job string) {
	now := time.Now()
	t.mu.Lock()
	t.at[job] = now
	t.mu.Unlock()
	select {
	case t.ch <- job:
	default:
	}
}

func main() {
	runs := flag.Int("runs", 50, "executions per dispatch measurement")
	pipelineRuns := flag.Int("pipeline-runs", 10, "executions per 10-stage pipeline")
	flag.Parse()
	if err := run(*runs, *pipelineRuns); err != nil {
		fmt.Fprintln(os.Stderr, "runnerbench:", err)
		os.Exit(1)
	}
}

func run(runs, pipelineRuns int) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, err := os.MkdirTemp("", "runnerbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("RUNNERBENCH_DEBUG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	started := &timings{at: map[string]time.Time{}, ch: make(chan string, 1024)}
	srv, err := server.New(ctx, server.Config{
		Listen: "127.0.0.1:0", DataDir: dir, RootAccessKeyID: rootKey, RootSecretAccessKey: rootSecret,
		Logger: logger, SourcePollInterval: -1,
		Runner: server.RunnerConfig{Slots: 2, WorkDir: dir, OnStart: func(job string, _ int) { started.mark(job) }},
	})
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	defer func() { cancel(); <-served }()
	url := "http://" + srv.Addr()
	creds := credentials.NewStaticCredentialsProvider(rootKey, rootSecret, "")
	c := codepipeline.New(codepipeline.Options{Region: "us-east-1", BaseEndpoint: aws.String(url), Credentials: creds})
	s3c := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(url), UsePathStyle: true, Credentials: creds})
	received := &timings{at: map[string]time.Time{}, ch: make(chan string, 1024)}
	workerCtx, stopWorker := context.WithCancel(ctx)
	defer stopWorker()
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { worker(workerCtx, c, received) })
	}
	defer wg.Wait()
	defer stopWorker()
	if err := setup(ctx, c, s3c); err != nil {
		return err
	}
	// Forget the jobs of the executions CreatePipeline started.
	for _, t := range []*timings{started, received} {
		for len(t.ch) > 0 {
			<-t.ch
		}
	}

	fmt.Printf("# runnerbench (%s)\n\n", time.Now().UTC().Format(time.RFC3339))
	// 1. Dispatch latency, interleaved: one Commands execution, one custom.
	var cmdLat, customLat []time.Duration
	for i := range runs + 2 {
		for _, m := range []struct {
			pipeline string
			t        *timings
			out      *[]time.Duration
		}{{"dispatch-commands", started, &cmdLat}, {"dispatch-custom", received, &customLat}} {
			if _, err := c.StartPipelineExecution(ctx, &codepipeline.StartPipelineExecutionInput{Name: aws.String(m.pipeline)}); err != nil {
				return err
			}
			var job string
			select {
			case job = <-m.t.ch:
			case <-time.After(60 * time.Second):
				return fmt.Errorf("%s: no job reached its runner or worker", m.pipeline)
			}
			j, err := srv.Store().GetJob(ctx, job)
			if err != nil {
				return err
			}
			m.t.mu.Lock()
			at := m.t.at[job]
			m.t.mu.Unlock()
			if i >= 2 { // warm-up
				*m.out = append(*m.out, at.Sub(j.Created))
			}
			if err := waitIdle(ctx, c, m.pipeline); err != nil {
				return err
			}
		}
	}
	fmt.Printf("## Dispatch latency (%d runs each, job queued → process started / job received)\n\n", runs)
	fmt.Println("| | p50 | p99 | max |")
	fmt.Println("|---|---|---|---|")
	for _, r := range []struct {
		name string
		d    []time.Duration
	}{{"Commands `true`, embedded runner (to process start)", cmdLat}, {"custom action, long-polling Go worker (to PollForJobs answer)", customLat}} {
		p50, p99, mx := pct(r.d, 50), pct(r.d, 99), pct(r.d, 100)
		fmt.Printf("| %s | %s | %s | %s |\n", r.name, ms(p50), ms(p99), ms(mx))
	}
	fmt.Printf("\nRatio Commands/custom: p50 %.2f×, p99 %.2f×\n\n", float64(pct(cmdLat, 50))/float64(pct(customLat, 50)), float64(pct(cmdLat, 99))/float64(pct(customLat, 99)))

	// 2. Ten-stage pipelines, interleaved.
	var cmdRun, customRun []time.Duration
	for i := range pipelineRuns + 1 {
		for _, m := range []struct {
			pipeline string
			out      *[]time.Duration
		}{{"ten-commands", &cmdRun}, {"ten-custom", &customRun}} {
			t0 := time.Now()
			if _, err := c.StartPipelineExecution(ctx, &codepipeline.StartPipelineExecutionInput{Name: aws.String(m.pipeline)}); err != nil {
				return err
			}
			if err := waitIdle(ctx, c, m.pipeline); err != nil {
				return err
			}
			if i > 0 {
				*m.out = append(*m.out, time.Since(t0))
			}
		}
	}
	fmt.Printf("## 10-stage pipeline, start → Succeeded (%d runs each; S3 source + 10 stages of one action)\n\n", pipelineRuns)
	fmt.Println("| | median | max |")
	fmt.Println("|---|---|---|")
	fmt.Printf("| Commands `true` (embedded runner) | %s | %s |\n", ms(pct(cmdRun, 50)), ms(pct(cmdRun, 100)))
	fmt.Printf("| custom actions (in-process Go worker) | %s | %s |\n", ms(pct(customRun, 50)), ms(pct(customRun, 100)))
	fmt.Printf("\nRatio Commands/custom (median): %.2f× (target ≤ 2×)\n", float64(pct(cmdRun, 50))/float64(pct(customRun, 50)))
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s)*p + 99) / 100
	return s[max(0, min(i, len(s))-1)]
}

// waitIdle waits for the pipeline's newest execution to end, and fails
// unless it succeeded.
func waitIdle(ctx context.Context, c *codepipeline.Client, name string) error {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		out, err := c.ListPipelineExecutions(ctx, &codepipeline.ListPipelineExecutionsInput{PipelineName: aws.String(name), MaxResults: aws.Int32(1)})
		if err != nil {
			return err
		}
		if len(out.PipelineExecutionSummaries) > 0 {
			switch out.PipelineExecutionSummaries[0].Status {
			case types.PipelineExecutionStatusSucceeded:
				return nil
			case types.PipelineExecutionStatusInProgress:
			default:
				return fmt.Errorf("%s: execution %s", name, out.PipelineExecutionSummaries[0].Status)
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	return fmt.Errorf("%s: no end within 2m", name)
}

// worker long-polls the custom type and answers every job with success.
func worker(ctx context.Context, c *codepipeline.Client, received *timings) {
	for ctx.Err() == nil {
		out, err := c.PollForJobs(ctx, &codepipeline.PollForJobsInput{ActionTypeId: customType, MaxBatchSize: aws.Int32(1)})
		if err != nil {
			continue
		}
		for _, j := range out.Jobs {
			received.mark(aws.ToString(j.Id))
			if _, err := c.AcknowledgeJob(ctx, &codepipeline.AcknowledgeJobInput{JobId: j.Id, Nonce: j.Nonce}); err != nil {
				continue
			}
			_, _ = c.PutJobSuccessResult(ctx, &codepipeline.PutJobSuccessResultInput{JobId: j.Id})
		}
	}
}

func setup(ctx context.Context, c *codepipeline.Client, s3c *s3.Client) error {
	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("src")}); err != nil {
		return err
	}
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	w, _ := zw.Create("README")
	_, _ = w.Write([]byte("bench"))
	_ = zw.Close()
	if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("src"), Key: aws.String("app.zip"), Body: bytes.NewReader(b.Bytes())}); err != nil {
		return err
	}
	if _, err := c.CreateCustomActionType(ctx, &codepipeline.CreateCustomActionTypeInput{Category: types.ActionCategoryBuild, Provider: customType.Provider, Version: customType.Version,
		InputArtifactDetails: &types.ArtifactDetails{MinimumCount: 0, MaximumCount: 5}, OutputArtifactDetails: &types.ArtifactDetails{MinimumCount: 0, MaximumCount: 5}}); err != nil {
		return err
	}
	action := func(name string, commands bool) types.ActionDeclaration {
		a := types.ActionDeclaration{Name: aws.String(name), ActionTypeId: customType, InputArtifacts: []types.InputArtifact{{Name: aws.String("Code")}}}
		if commands {
			a.ActionTypeId, a.Commands = commandsType, []string{"true"}
		}
		return a
	}
	for _, p := range []struct {
		name     string
		stages   int
		commands bool
	}{{"dispatch-commands", 1, true}, {"dispatch-custom", 1, false}, {"ten-commands", 10, true}, {"ten-custom", 10, false}} {
		decl := &types.PipelineDeclaration{
			Name: aws.String(p.name), RoleArn: aws.String("arn:aws:iam::000000000000:role/r"), PipelineType: types.PipelineTypeV2,
			ExecutionMode: types.ExecutionModeQueued,
			ArtifactStore: &types.ArtifactStore{Type: types.ArtifactStoreTypeS3, Location: aws.String("artifacts")},
			Stages: []types.StageDeclaration{{Name: aws.String("Source"), Actions: []types.ActionDeclaration{{
				Name: aws.String("Fetch"), ActionTypeId: &types.ActionTypeId{Category: types.ActionCategorySource, Owner: types.ActionOwnerAws, Provider: aws.String("S3"), Version: aws.String("1")},
				Configuration:   map[string]string{"S3Bucket": "src", "S3ObjectKey": "app.zip", "PollForSourceChanges": "false"},
				OutputArtifacts: []types.OutputArtifact{{Name: aws.String("Code")}},
			}}}},
		}
		for i := range p.stages {
			decl.Stages = append(decl.Stages, types.StageDeclaration{Name: aws.String(fmt.Sprintf("S%d", i)), Actions: []types.ActionDeclaration{action("A", p.commands)}})
		}
		if _, err := c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: decl}); err != nil {
			return err
		}
		if err := waitIdle(ctx, c, p.name); err != nil { // the run CreatePipeline starts
			return err
		}
	}
	return nil
}
