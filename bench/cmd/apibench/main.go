// Command apibench measures pipelined through its API. It builds
// ./cmd/pipelined, runs every server as its own child process, drives them
// with one SigV4-signing client, and prints a markdown report. See
// bench/README.md for what each number means.
//
// The api suite (the default) measures API throughput, latency, memory and
// write rate against a loopback no-op HTTP server (the ceiling of the HTTP
// path on this machine), moto_server (for scale), and pipelined on SQLite
// and PostgreSQL:
//
//	go run ./bench/cmd/apibench [-duration 5s] [-conns 4] [-pipelines 10000] \
//	    [-postgres DSN] [-moto=true] [-out FILE] [-perf DIR]
//
// The engine suite measures running pipelines: the orchestration overhead
// of a 10-stage pipeline whose custom actions complete at once, and
// -executions concurrent executions of a PARALLEL pipeline, with job
// workers in this process:
//
//	go run ./bench/cmd/apibench -suite engine [-duration 5s] [-executions 1000] \
//	    [-workers 8] [-starters 4] [-timeout 10m] [-job-poll-wait D] \
//	    [-worker-keys=true] [-postgres DSN] [-out FILE] [-perf DIR]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// options are apibench's flags.
type options struct {
	suite     string // "api" or "engine"
	duration  time.Duration
	conns     int
	pipelines int
	postgres  string
	moto      bool
	out       string
	perfDir   string
	serveNoop string // hidden: run the no-op server on this address and nothing else

	// The engine suite.
	executions int           // concurrent executions of the PARALLEL pipeline
	workers    int           // job workers draining them
	starters   int           // goroutines calling StartPipelineExecution
	timeout    time.Duration // bound on the concurrent run
	pollWait   string        // --job-poll-wait for the servers; empty: the server's default
	workerKeys bool          // measure the job throughput again with the workers signing with worker keys
}

func parseFlags(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("apibench", flag.ContinueOnError)
	fs.StringVar(&o.suite, "suite", "api", "what to measure: `api` (API throughput, latency, memory), engine (running pipelines) or net (read throughput and latency while slow connections are held)")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "how long each measurement runs (plus a short warm-up)")
	fs.IntVar(&o.conns, "conns", 4, "concurrent connections (closed-loop workers) for throughput and fill")
	fs.IntVar(&o.pipelines, "pipelines", 10000, "pipelines stored for the large-store latency measurement")
	fs.StringVar(&o.postgres, "postgres", "", "PostgreSQL DSN whose user may create schemas; enables the PostgreSQL measurements")
	fs.BoolVar(&o.moto, "moto", true, "also measure moto_server (must be on PATH)")
	fs.StringVar(&o.out, "out", "", "also write the markdown report to this file")
	fs.StringVar(&o.perfDir, "perf", "", "record a `perf record -g` CPU profile of the pipelined server(s) during each throughput measurement into this `dir`")
	fs.IntVar(&o.executions, "executions", 1000, "engine suite: executions of the PARALLEL pipeline started at once")
	fs.IntVar(&o.workers, "workers", 8, "engine suite: job workers (goroutines) draining the concurrent executions")
	fs.IntVar(&o.starters, "starters", 4, "engine suite: goroutines calling StartPipelineExecution concurrently")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "engine suite: give up on the concurrent executions after this")
	fs.StringVar(&o.pollWait, "job-poll-wait", "", "engine suite: pass --job-poll-wait with this `duration` to the servers (0: PollForJobs answers at once); default: the server's default")
	fs.BoolVar(&o.workerKeys, "worker-keys", true, "engine suite: measure the job throughput a second time, each worker signing with a worker key per action type instead of the root credentials")
	fs.StringVar(&o.serveNoop, "serve-noop", "", "internal: serve the no-op handler on this address")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	switch {
	case o.suite != "api" && o.suite != "engine" && o.suite != "net":
		return nil, fmt.Errorf("-suite must be api, engine or net, not %q", o.suite)
	case o.duration <= 0:
		return nil, errors.New("-duration must be positive")
	case o.conns < 1:
		return nil, errors.New("-conns must be at least 1")
	case o.pipelines < seedPipelines:
		return nil, fmt.Errorf("-pipelines must be at least %d", seedPipelines)
	case o.executions < 1 || o.workers < 1 || o.starters < 1:
		return nil, errors.New("-executions, -workers and -starters must be at least 1")
	case o.timeout <= 0:
		return nil, errors.New("-timeout must be positive")
	}
	if o.pollWait != "" {
		if _, err := time.ParseDuration(o.pollWait); err != nil {
			return nil, fmt.Errorf("-job-poll-wait: %w", err)
		}
	}
	return o, nil
}

func main() {
	log.SetFlags(log.Ltime)
	log.SetPrefix("apibench: ")
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		log.Print(err)
		os.Exit(2)
	}
	if o.serveNoop != "" {
		if err := serveNoop(o.serveNoop); err != nil {
			log.Print(err)
			os.Exit(1)
		}
		return
	}

	// SIGINT/SIGTERM cancel the context; every child process is stopped by the
	// deferred cleanup in run before the program exits.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		log.Print(err)
		os.Exit(1)
	}
}

// run executes the whole benchmark and writes the report to stdout (and to
// -out). Progress goes to the log (stderr) so that stdout is the report alone.
func run(ctx context.Context, o *options, stdout io.Writer) (err error) {
	b, err := newBench(o)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := b.close(); cerr != nil && err == nil {
			err = cerr
		}
	}()

	var rep suiteReport = b.report
	runSuite := b.runAll
	switch o.suite {
	case "engine":
		rep, runSuite = b.engine, b.runEngine
	case "net":
		rep, runSuite = b.net, b.runNet
	}
	if err := runSuite(ctx); err != nil {
		// Print what was measured so far: a partial report still helps.
		if rep.hasData() {
			rep.write(stdout)
		}
		return err
	}

	var buf strings.Builder
	rep.write(&buf)
	if _, err := io.WriteString(stdout, buf.String()); err != nil {
		return err
	}
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(buf.String()), 0o644); err != nil {
			return fmt.Errorf("write -out: %w", err)
		}
		log.Printf("report written to %s", o.out)
	}
	if n := rep.totalErrors(); n > 0 {
		return fmt.Errorf("the run had %d failed requests; see the Errors section of the report", n)
	}
	return nil
}

// suiteReport is the report of one suite.
type suiteReport interface {
	hasData() bool
	write(w io.Writer)
	totalErrors() int64
}
