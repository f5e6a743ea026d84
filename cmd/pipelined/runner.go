package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"

	"github.com/pipelined/pipelined/internal/commandspec"
	"github.com/pipelined/pipelined/internal/runner"
)

type runnerOptions struct {
	server, s3Endpoint, region, labels, workDir string
	slots                                       int
	once                                        bool
	heartbeat, killGrace, maxJobTimeout         time.Duration
	logLevel, logFormat                         string
}

func runnerFlags() (*flag.FlagSet, *runnerOptions) {
	o := &runnerOptions{}
	fs := flag.NewFlagSet("runner", flag.ContinueOnError)
	fs.StringVar(&o.server, "server", "", "the pipelined server's URL (required)")
	fs.StringVar(&o.s3Endpoint, "s3-endpoint", "", "the artifact store's S3 endpoint (default: the server's URL, where the embedded store is)")
	fs.StringVar(&o.region, "region", "us-east-1", "the region the server presents itself as (requests are signed for it)")
	fs.IntVar(&o.slots, "slots", runtime.NumCPU(), "how many Commands jobs run at once")
	fs.StringVar(&o.labels, "labels", "", "the runner's labels, ComputeType=VALUE,EnvironmentType=VALUE: it runs the Commands actions whose configuration has exactly these (empty: actions without them)")
	fs.StringVar(&o.workDir, "work-dir", "", "where the jobs' temporary work directories are made (default: the system's temporary directory)")
	fs.BoolVar(&o.once, "once", false, "run one job, then exit (ephemeral runners)")
	fs.DurationVar(&o.heartbeat, "heartbeat-interval", 10*time.Second, "how often a running job's lease is renewed (the server's --runner-lease must be well above it)")
	fs.DurationVar(&o.killGrace, "kill-grace", 10*time.Second, "how long a cancelled job's processes get between SIGTERM and SIGKILL")
	fs.DurationVar(&o.maxJobTimeout, "max-job-timeout", 0, "stop every job after this long, below its own timeout (0: the job's timeout only)")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", "text", "text or json")
	return fs, o
}

// runnerMain is `pipelined runner`: a remote runner of Commands actions.
// It signs the job protocol with a worker key of Compute/AWS/Commands/1
// from the standard AWS credential chain (AWS_SHARED_CREDENTIALS_FILE and
// AWS_PROFILE as pipelined admin create-worker-key --credentials-file
// writes them, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), none of which
// reaches the jobs. The first SIGTERM or SIGINT stops taking jobs and lets
// running ones finish; the second cancels them (SIGTERM, grace, SIGKILL)
// and reports them failed; the third exits at once.
func runnerMain(args []string, stdout, stderr io.Writer) int {
	fs, o := runnerFlags()
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: pipelined runner --server URL [flags]")
		printFlags(stderr, fs)
	}
	if err := envToFlags(fs); err != nil {
		fmt.Fprintln(stderr, "pipelined:", err)
		return 2
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if o.server == "" || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	labels, err := commandspec.ParseLabels(o.labels)
	if err != nil {
		fmt.Fprintln(stderr, "pipelined runner: --labels:", err)
		return 2
	}
	logger, err := newLogger(stderr, o.logLevel, o.logFormat)
	if err != nil {
		fmt.Fprintln(stderr, "pipelined:", err)
		return 2
	}
	cfg, err := awsconfig.LoadDefaultConfig(context.Background(), awsconfig.WithRegion(o.region))
	if err != nil || cfg.Credentials == nil {
		fmt.Fprintln(stderr, "pipelined runner: no credentials: give it a worker key of Compute/AWS/Commands/1 (pipelined admin create-worker-key) through the standard AWS variables or credentials file:", err)
		return 2
	}
	if _, err := cfg.Credentials.Retrieve(context.Background()); err != nil {
		fmt.Fprintln(stderr, "pipelined runner: no credentials:", err)
		return 2
	}
	hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	remote := runner.NewRemote(o.server, o.region, cfg.Credentials, hc)
	s3 := o.s3Endpoint
	if s3 == "" {
		s3 = o.server
	}
	r := runner.New(remote, runner.Options{
		Slots: o.slots, Labels: labels, WorkDir: o.workDir, Once: o.once,
		PublicURL: o.server, S3Endpoint: s3, Region: o.region, HTTPClient: hc, Logs: remote,
		HeartbeatInterval: o.heartbeat, KillGrace: o.killGrace, MaxJobTimeout: o.maxJobTimeout, Logger: logger,
	})
	pollCtx, stopPolling := context.WithCancel(context.Background())
	jobCtx, cancelJobs := context.WithCancel(context.Background())
	defer cancelJobs()
	sigs := make(chan os.Signal, 3)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		for n := 1; ; n++ {
			<-sigs
			switch n {
			case 1:
				logger.Info("stopping: no new jobs; running jobs may finish (signal again to cancel them)")
				stopPolling()
			case 2:
				logger.Info("cancelling running jobs")
				cancelJobs()
			default:
				os.Exit(1)
			}
		}
	}()
	logger.Info("pipelined runner started", "server", o.server, "slots", o.slots, "labels", labels, "once", o.once)
	r.Run(pollCtx, jobCtx)
	logger.Info("runner stopped")
	return 0
}

// envToFlags sets flags from their PIPELINED_* variables (flags given on
// the command line win).
func envToFlags(fs *flag.FlagSet) error {
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if v, ok := os.LookupEnv(envName(f.Name)); ok && envErr == nil {
			if err := f.Value.Set(v); err != nil {
				envErr = fmt.Errorf("%s=%q: %w", envName(f.Name), v, err)
			}
		}
	})
	return envErr
}
