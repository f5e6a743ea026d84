// Command condbench measures stage conditions (issue 14's targets) with an
// in-process pipelined whose actions finish at once (an executor that
// succeeds in the transition that starts it), so that what is measured is
// the engine's transitions and the conditions, not job workers:
//
//  1. the latency of StartPipelineExecution on a three-stage pipeline, which
//     runs every stage in that one transition, beside the same pipeline with
//     a beforeEntry VariableCheck rule on its second stage, interleaved in
//     one run: the p99 difference is what the condition adds to the stage
//     transition;
//  2. N stages waiting on closed deployment windows (N executions of a
//     PARALLEL pipeline held at a beforeEntry DeploymentWindow): goroutines
//     and database transactions per second while they wait, beside the same
//     server idle (PostgreSQL's xact_commit of a database created for the
//     run; SQLite has no such counter).
//
// Usage: go run ./bench/cmd/condbench [-runs 300] [-waiting 1000] [-postgres DSN]
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"runtime"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline/types"
	"github.com/jackc/pgx/v5"

	"github.com/pipelined/pipelined/internal/actiontypes"
	"github.com/pipelined/pipelined/internal/engine"
	"github.com/pipelined/pipelined/internal/server"
)

// instant succeeds every action in the transition that starts it, with an
// output variable for the VariableCheck to read.
type instant struct{}

func (instant) Name() string { return "condbench-instant" }
func (instant) Start(s *engine.Step) error {
	s.Succeed("instant", "", map[string]string{"Commit": "abc123"})
	return nil
}
func (instant) Timer(*engine.Step, json.RawMessage) error { return nil }
func (instant) Abandon(*engine.Step) error                { return nil }

var (
	srcKey   = actiontypes.Key{Category: "Source", Owner: "Custom", Provider: "BenchSource", Version: "1"}
	buildKey = actiontypes.Key{Category: "Build", Owner: "Custom", Provider: "BenchBuild", Version: "1"}
)

const akid, secret = "AKIDCONDBENCH0000000", "condbench-secret-key-000000000000000000000"

func main() {
	runs := flag.Int("runs", 300, "executions per pipeline for the latency measurement")
	waiting := flag.Int("waiting", 1000, "stages waiting on deployment windows")
	window := flag.Duration("window", 10*time.Second, "how long the waiting stages are watched")
	pg := flag.String("postgres", "", "PostgreSQL DSN (a private schema is created and dropped); without it: SQLite")
	flag.Parse()
	if err := run(*runs, *waiting, *window, *pg); err != nil {
		fmt.Fprintln(os.Stderr, "condbench:", err)
		os.Exit(1)
	}
}

func run(runs, waiting int, watch time.Duration, pgDSN string) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "condbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg := server.Config{
		Listen: "127.0.0.1:0", DataDir: dir, RootAccessKeyID: akid, RootSecretAccessKey: secret,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), SourcePollInterval: -1,
		Executors: map[actiontypes.Key]engine.Executor{srcKey: instant{}, buildKey: instant{}},
	}
	backend := "SQLite"
	var counter *pgx.Conn
	if pgDSN != "" {
		backend = "PostgreSQL"
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		// A database of its own: pg_stat_database then counts this server's
		// transactions only (other programs may use the given database).
		dbName := "condbench_" + hex.EncodeToString(b)
		admin, err := pgx.Connect(ctx, pgDSN)
		if err != nil {
			return err
		}
		defer admin.Close(ctx)
		if _, err := admin.Exec(ctx, "CREATE DATABASE "+dbName); err != nil {
			return fmt.Errorf("create database (the DSN's user must be allowed to): %w", err)
		}
		defer admin.Exec(context.Background(), "DROP DATABASE "+dbName+" WITH (FORCE)") //nolint:errcheck
		u, err := url.Parse(pgDSN)
		if err != nil {
			return err
		}
		u.Path = "/" + dbName
		cfg.Database = u.String()
		if counter, err = pgx.Connect(ctx, cfg.Database); err != nil {
			return err
		}
		defer counter.Close(context.Background())
	}
	sctx, stop := context.WithCancel(ctx)
	srv, err := server.New(sctx, cfg)
	if err != nil {
		stop()
		return err
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx) }()
	defer func() { stop(); <-done }()
	c := codepipeline.New(codepipeline.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://" + srv.Addr()),
		Credentials: credentials.NewStaticCredentialsProvider(akid, secret, ""), RetryMaxAttempts: 1})
	for _, k := range []actiontypes.Key{srcKey, buildKey} {
		if _, err := c.CreateCustomActionType(ctx, &codepipeline.CreateCustomActionTypeInput{
			Category: types.ActionCategory(k.Category), Provider: aws.String(k.Provider), Version: aws.String("1"),
			InputArtifactDetails:  &types.ArtifactDetails{MaximumCount: 5},
			OutputArtifactDetails: &types.ArtifactDetails{MaximumCount: 5},
		}); err != nil {
			return err
		}
	}
	fmt.Printf("# condbench (%s, %d runs, %d waiting stages)\n\n", backend, runs, waiting)

	// 1. Stage transition with and without a beforeEntry VariableCheck.
	plain, checked := pipeline("plain", types.ExecutionModeSuperseded, nil), pipeline("checked", types.ExecutionModeSuperseded, &types.BeforeEntryConditions{
		Conditions: []types.Condition{{Result: types.ResultFail, Rules: []types.RuleDeclaration{{Name: aws.String("Commit"),
			RuleTypeId:    &types.RuleTypeId{Category: types.RuleCategoryRule, Owner: types.RuleOwnerAws, Provider: aws.String("VariableCheck"), Version: aws.String("1")},
			Configuration: map[string]string{"Variable": "#{SourceVars.Commit}", "Operator": "EQ", "Value": "abc123"}}}}}})
	for _, p := range []*types.PipelineDeclaration{plain, checked} {
		if _, err := c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: p}); err != nil {
			return err
		}
	}
	lat := map[string][]time.Duration{}
	for i := 0; i < runs+runs/10; i++ {
		for _, name := range []string{"plain", "checked"} {
			t0 := time.Now()
			out, err := c.StartPipelineExecution(ctx, &codepipeline.StartPipelineExecutionInput{Name: aws.String(name)})
			d := time.Since(t0)
			if err != nil {
				return err
			}
			if i < runs/10 {
				continue // warm-up
			}
			lat[name] = append(lat[name], d)
			if i == runs/10 {
				ex, err := c.GetPipelineExecution(ctx, &codepipeline.GetPipelineExecutionInput{PipelineName: aws.String(name), PipelineExecutionId: out.PipelineExecutionId})
				if err != nil || ex.PipelineExecution.Status != types.PipelineExecutionStatusSucceeded {
					return fmt.Errorf("%s did not succeed within its start: %v %v", name, ex, err)
				}
			}
		}
	}
	p50p, p99p := pct(lat["plain"], 50), pct(lat["plain"], 99)
	p50c, p99c := pct(lat["checked"], 50), pct(lat["checked"], 99)
	fmt.Println("## StartPipelineExecution running 3 stages in one transition")
	fmt.Println()
	fmt.Println("| pipeline | p50 | p99 |")
	fmt.Println("|---|---|---|")
	fmt.Printf("| no condition | %s | %s |\n", ms(p50p), ms(p99p))
	fmt.Printf("| beforeEntry VariableCheck on stage 2 | %s | %s |\n", ms(p50c), ms(p99c))
	fmt.Printf("\nAdded by the condition: p50 %s, p99 %s (target: under 5 ms p99); ratio p99 %.2f\n\n", ms(p50c-p50p), ms(p99c-p99p), float64(p99c)/float64(p99p))

	// 2. Waiting stages: goroutines and transactions per second.
	idleG, idleTx, err := observe(ctx, counter, watch)
	if err != nil {
		return err
	}
	win := pipeline("windows", types.ExecutionModeParallel, &types.BeforeEntryConditions{Conditions: []types.Condition{{Result: types.ResultFail, Rules: []types.RuleDeclaration{{
		Name: aws.String("Closed"), RuleTypeId: &types.RuleTypeId{Category: types.RuleCategoryRule, Owner: types.RuleOwnerAws, Provider: aws.String("DeploymentWindow"), Version: aws.String("1")},
		Configuration: map[string]string{"Cron": "* * * ? * * 2199"}}}}}})
	if _, err := c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: win}); err != nil {
		return err
	}
	for i := 1; i < waiting; i++ { // CreatePipeline started the first
		if _, err := c.StartPipelineExecution(ctx, &codepipeline.StartPipelineExecutionInput{Name: aws.String("windows")}); err != nil {
			return err
		}
	}
	st, err := c.GetPipelineState(ctx, &codepipeline.GetPipelineStateInput{Name: aws.String("windows")})
	if err != nil || st.StageStates[1].BeforeEntryConditionState == nil || st.StageStates[1].BeforeEntryConditionState.LatestExecution.Status != types.ConditionExecutionStatusInProgress {
		return fmt.Errorf("the stages are not waiting: %v", err)
	}
	waitG, waitTx, err := observe(ctx, counter, watch)
	if err != nil {
		return err
	}
	fmt.Printf("## %d stages waiting on deployment windows\n\n", waiting)
	fmt.Println("| server | goroutines | database transactions/s |")
	fmt.Println("|---|---|---|")
	fmt.Printf("| idle | %d | %s |\n", idleG, txs(idleTx, counter))
	fmt.Printf("| %d stages waiting | %d | %s |\n", waiting, waitG, txs(waitTx, counter))
	fmt.Printf("\nGoroutines added per waiting stage: %.3f\n", float64(waitG-idleG)/float64(waiting))
	return nil
}

func txs(v float64, counter *pgx.Conn) string {
	if counter == nil {
		return "n/a (SQLite)"
	}
	return fmt.Sprintf("%.1f", v)
}

// observe samples goroutines (the maximum seen) and the database's committed
// transactions per second over d (PostgreSQL only). The counting connection's
// own two reads are subtracted.
func observe(ctx context.Context, counter *pgx.Conn, d time.Duration) (int, float64, error) {
	read := func() (int64, error) {
		if counter == nil {
			return 0, nil
		}
		var n int64
		err := counter.QueryRow(ctx, "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()").Scan(&n)
		return n, err
	}
	// pg_stat counters are flushed by backends about once a second.
	time.Sleep(1500 * time.Millisecond)
	before, err := read()
	if err != nil {
		return 0, 0, err
	}
	maxG := 0
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if g := runtime.NumGoroutine(); g > maxG {
			maxG = g
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond)
	after, err := read()
	if err != nil {
		return 0, 0, err
	}
	return maxG, float64(after-before-1) / (d + 3*time.Second).Seconds(), nil
}

func pipeline(name string, mode types.ExecutionMode, gate *types.BeforeEntryConditions) *types.PipelineDeclaration {
	id := func(k actiontypes.Key) *types.ActionTypeId {
		return &types.ActionTypeId{Category: types.ActionCategory(k.Category), Owner: types.ActionOwnerCustom, Provider: aws.String(k.Provider), Version: aws.String("1")}
	}
	build := func(n string) types.ActionDeclaration {
		return types.ActionDeclaration{Name: aws.String(n), ActionTypeId: id(buildKey), InputArtifacts: []types.InputArtifact{{Name: aws.String("Code")}}}
	}
	return &types.PipelineDeclaration{
		Name: aws.String(name), RoleArn: aws.String("arn:aws:iam::123456789012:role/r"), PipelineType: types.PipelineTypeV2, ExecutionMode: mode,
		ArtifactStore: &types.ArtifactStore{Type: types.ArtifactStoreTypeS3, Location: aws.String("artifacts")},
		Stages: []types.StageDeclaration{
			{Name: aws.String("Source"), Actions: []types.ActionDeclaration{{Name: aws.String("Checkout"), ActionTypeId: id(srcKey), Namespace: aws.String("SourceVars"),
				OutputArtifacts: []types.OutputArtifact{{Name: aws.String("Code")}}}}},
			{Name: aws.String("Build"), BeforeEntry: gate, Actions: []types.ActionDeclaration{build("Compile")}},
			{Name: aws.String("Ship"), Actions: []types.ActionDeclaration{build("Deploy")}},
		},
	}
}

func pct(ds []time.Duration, p int) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s)*p + 99) / 100
	if i > 0 {
		i--
	}
	return s[i]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }
