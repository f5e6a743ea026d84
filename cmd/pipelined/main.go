// Command pipelined is a self-hosted continuous-delivery server that speaks
// the AWS CodePipeline API.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/pipelined/pipelined/internal/awsjson"
	"github.com/pipelined/pipelined/internal/commandspec"
	"github.com/pipelined/pipelined/internal/httplimit"
	"github.com/pipelined/pipelined/internal/server"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stdout, stderr)
	case "admin":
		return adminMain(args[1:], stdout, stderr)
	case "runner":
		return runnerMain(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "pipelined", versionString())
		return 0
	case "help", "--help", "-help", "-h":
		usage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "pipelined: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "dev-" + s.Value[:12]
			}
		}
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			return bi.Main.Version
		}
	}
	return "dev"
}

func usage(w io.Writer) {
	fmt.Fprint(w, `pipelined: a self-hosted continuous-delivery server that speaks the AWS CodePipeline API.

Usage:
  pipelined serve [flags]            run the server
  pipelined admin <command> [flags]  operator commands against a running server: register third-party
                                     action types, issue, revoke and list third-party clients and
                                     worker keys (pipelined admin help lists them)
  pipelined runner --server URL      run Compute/AWS/Commands/1 actions for a server on this machine
                                     (pipelined runner --help lists its flags)
  pipelined version                  print the version
  pipelined help                     show this help

Flags of serve (each also set by the environment variable shown):
`)
	fs, _ := serveFlags(io.Discard)
	printFlags(w, fs)
	fmt.Fprint(w, `
Secrets are read from the environment only (never flags, which other users can see in ps):
  PIPELINED_ROOT_ACCESS_KEY_ID, PIPELINED_ROOT_SECRET_ACCESS_KEY
        the root access key pair that signs API requests; when unset, a pair is
        generated on first start and written to <data-dir>/credentials (mode 0600)
  PIPELINED_MASTER_KEY
        32-byte key (base64 or hex) that encrypts secrets in the database; when unset,
        one is generated into <data-dir>/master.key. Every replica needs the same key.
`)
}

func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		def := ""
		if f.DefValue != "" {
			def = fmt.Sprintf(" (default %q)", f.DefValue)
		}
		fmt.Fprintf(w, "  --%s  [%s]%s\n        %s\n", f.Name, envName(f.Name), def, f.Usage)
	})
}

func envName(flagName string) string {
	return "PIPELINED_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

type serveOptions struct {
	cfg          server.Config
	runnerLabels string
	logLevel     string
	logFormat    string
}

func serveFlags(stderr io.Writer) (*flag.FlagSet, *serveOptions) {
	o := &serveOptions{}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.cfg.Listen, "listen", "127.0.0.1:8480", "host:port to listen on (one listener serves the API, /healthz and /metrics)")
	fs.StringVar(&o.cfg.DataDir, "data-dir", "pipelined-data", "directory for the SQLite database, the generated credentials and master key")
	fs.StringVar(&o.cfg.Database, "database", "", "database: empty for SQLite in the data dir, a SQLite file path or sqlite://PATH, or postgres://USER@HOST:PORT/DB")
	fs.StringVar(&o.cfg.PublicURL, "public-url", "", "the URL clients reach this server at (default: http://<listen address>)")
	fs.StringVar(&o.cfg.Region, "region", "us-east-1", "the AWS region this server presents itself as; requests must be signed for it")
	fs.StringVar(&o.cfg.AccountID, "account-id", "000000000000", "the 12-digit account id used in ARNs")
	fs.IntVar(&o.cfg.MaxPipelines, "max-pipelines", 10000, "the most pipelines the server holds (LimitExceededException past it)")
	fs.DurationVar(&o.cfg.ShutdownTimeout, "shutdown-timeout", 20*time.Second, "how long SIGTERM waits for requests in flight")
	fs.DurationVar(&o.cfg.JobAckTimeout, "job-ack-timeout", 5*time.Minute, "a job handed to a worker by PollForJobs returns to the queue, under a new nonce, unless acknowledged within this")
	fs.DurationVar(&o.cfg.JobTimeout, "job-timeout", time.Hour, "an acknowledged job whose action and action type set no timeout fails unless it reports a result within this")
	fs.DurationVar(&o.cfg.JobPollWait, "job-poll-wait", 10*time.Second, "PollForJobs waits up to this for a job when none is queued, and answers within milliseconds when one is (long polling; 0 answers at once)")
	fs.DurationVar(&o.cfg.ApprovalTimeout, "approval-timeout", 7*24*time.Hour, "a manual approval without timeoutInMinutes fails after this")
	fs.DurationVar(&o.cfg.ArtifactCredentialsTTL, "artifact-credentials-ttl", time.Hour, "how long the artifactCredentials in job data last (15m to 1h); workers renew them with GetJobDetails")
	fs.StringVar(&o.cfg.ArtifactS3Endpoint, "artifact-s3-endpoint", "", "use an external S3-compatible artifact store at this URL (credentials from the standard AWS chain) instead of the embedded one")
	fs.StringVar(&o.cfg.ArtifactRoleARN, "artifact-role-arn", "", "external artifact store: the role STS AssumeRole issues job credentials for (narrowed to each job's objects by a session policy)")
	fs.StringVar(&o.cfg.ArtifactSTSEndpoint, "artifact-sts-endpoint", "", "external artifact store: the STS endpoint URL (default: the AWS SDK's standard resolution)")
	fs.DurationVar(&o.cfg.ArtifactUploadExpiry, "artifact-upload-expiry", 7*24*time.Hour, "embedded artifact store: remove multipart uploads never completed or aborted this long after they began (negative: never)")
	fs.DurationVar(&o.cfg.WorkerKeyCacheTTL, "worker-key-cache-ttl", 10*time.Second, "how long the API caches a worker key lookup: a key revoked on another replica works here at most this long after (negative: no cache)")
	fs.DurationVar(&o.cfg.Logs.Retention, "log-retention", 30*24*time.Hour, "how long a job's log is kept after the job ended, then deleted by a background sweep (negative: forever)")
	fs.DurationVar(&o.cfg.SourcePollInterval, "source-poll-interval", time.Minute, "how often S3 source actions with PollForSourceChanges check their object, starting an execution when it changed (negative: never)")
	fs.Int64Var(&o.cfg.GitCacheMaxBytes, "git-cache-max-bytes", 10<<30, "Git sources: the most disk the repository mirrors under <data-dir>/git may use; the least recently used are removed beyond it")
	fs.StringVar(&o.cfg.Identity.OIDCAlgorithm, "oidc-algorithm", "RS256", "workload identity: the signing algorithm of ID tokens, RS256 or ES256 (a change applies from the key generated after it)")
	fs.DurationVar(&o.cfg.Identity.OIDCKeyRotation, "oidc-key-rotation", 24*time.Hour, "workload identity: how long a signing key signs before the next one (published one period ahead) takes over")
	fs.DurationVar(&o.cfg.Identity.OIDCTokenTTL, "oidc-token-ttl", time.Hour, "workload identity: the lifetime of ID tokens (5m to 12h); retired keys stay in the JWKS this long plus 5m")
	fs.StringVar(&o.cfg.Identity.AWSSTSEndpoint, "aws-sts-endpoint", "", "workload identity: the STS endpoint AssumeRoleWithWebIdentity goes to (default: https://sts.<region>.amazonaws.com)")
	fs.StringVar(&o.cfg.Identity.GCPSTSEndpoint, "gcp-sts-endpoint", "https://sts.googleapis.com", "workload identity: GCP's Security Token Service base URL (token exchange)")
	fs.StringVar(&o.cfg.Identity.GCPIAMCredentialsEndpoint, "gcp-iam-credentials-endpoint", "https://iamcredentials.googleapis.com", "workload identity: GCP's IAM Credentials base URL (service account access tokens)")
	fs.DurationVar(&o.cfg.ConsoleSessionIdle, "console-session-idle", 8*time.Hour, "web console: a session not used for this long ends (the user signs in again)")
	fs.DurationVar(&o.cfg.ConsoleSessionMaxAge, "console-session-max-age", 7*24*time.Hour, "web console: a session ends this long after sign-in, used or not")
	fs.IntVar(&o.cfg.Runner.Slots, "runner-slots", runtime.NumCPU(), "how many Commands actions the embedded runner runs at once on this host (0: no embedded runner; remote runners may still serve)")
	fs.StringVar(&o.runnerLabels, "runner-labels", "", "the embedded runner's labels, ComputeType=VALUE,EnvironmentType=VALUE (it runs the Commands actions with exactly these)")
	fs.StringVar(&o.cfg.Runner.WorkDir, "runner-work-dir", "", "where the embedded runner makes the jobs' temporary work directories (default: the system's temporary directory)")
	fs.DurationVar(&o.cfg.Runner.Lease, "runner-lease", server.DefaultRunnerLease, "a Commands job whose runner sends no heartbeat for this long fails with RunnerLost")
	fs.StringVar(&o.cfg.Identity.AzureTokenEndpoint, "azure-token-endpoint", "https://login.microsoftonline.com", "workload identity: Microsoft Entra ID's authority; Azure exchanges POST to <this>/<tenant>/oauth2/v2.0/token")
	// Limits on slow, stalled or numerous clients (internal/httplimit).
	fs.DurationVar(&o.cfg.Limits.ReadTimeout, "read-timeout", httplimit.DefaultReadTimeout, "a request's headers and body must arrive within this of its first byte (bodies above read-timeout × min-body-rate get longer; long polls wait after the body and are not limited by it)")
	fs.Int64Var(&o.cfg.Limits.MinBodyRate, "min-body-rate", httplimit.DefaultMinBodyRate, "bytes per second a body larger than read-timeout × this must keep up on average to stay within its extended deadline (negative: no extension)")
	fs.DurationVar(&o.cfg.Limits.IdleTimeout, "idle-timeout", httplimit.DefaultIdleTimeout, "a keep-alive connection with no request for this long is closed")
	fs.IntVar(&o.cfg.Limits.MaxConnections, "max-connections", httplimit.DefaultMaxConnections, "the most concurrent connections; one beyond is answered 503 and closed (negative: no cap)")
	fs.Int64Var(&o.cfg.Limits.MaxAPIBody, "max-api-body", awsjson.DefaultMaxBody, "the largest CodePipeline API request body in bytes (pipeline and action type definitions; other operations take at most 1 MiB)")
	fs.Int64Var(&o.cfg.Limits.MaxUnverifiedBodyBytes, "max-unverified-body-bytes", httplimit.DefaultBudget, "API request body bytes held in memory before their signatures are verified, across requests (beyond 64 KiB each); past it requests are answered 503")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", "text", "text or json")
	return fs, o
}

func serve(args []string, stdout, stderr io.Writer) int {
	fs, o := serveFlags(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: pipelined serve [flags]")
		printFlags(stderr, fs)
	}
	// Environment first, so that flags given on the command line win.
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if v, ok := os.LookupEnv(envName(f.Name)); ok && envErr == nil {
			if err := f.Value.Set(v); err != nil {
				envErr = fmt.Errorf("%s=%q: %w", envName(f.Name), v, err)
			}
		}
	})
	if envErr != nil {
		fmt.Fprintln(stderr, "pipelined:", envErr)
		return 2
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "pipelined serve: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	logger, err := newLogger(stderr, o.logLevel, o.logFormat)
	if err != nil {
		fmt.Fprintln(stderr, "pipelined:", err)
		return 2
	}
	o.cfg.Logger = logger
	if o.cfg.Runner.Labels, err = commandspec.ParseLabels(o.runnerLabels); err != nil {
		fmt.Fprintln(stderr, "pipelined serve: --runner-labels:", err)
		return 2
	}
	o.cfg.RootAccessKeyID = os.Getenv("PIPELINED_ROOT_ACCESS_KEY_ID")
	o.cfg.RootSecretAccessKey = os.Getenv("PIPELINED_ROOT_SECRET_ACCESS_KEY")
	o.cfg.MasterKey = os.Getenv("PIPELINED_MASTER_KEY")

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	srv, err := server.New(ctx, o.cfg)
	if err != nil {
		logger.Error("cannot start", "err", err)
		return 1
	}
	if err := srv.Serve(ctx); err != nil {
		logger.Error("server stopped with an error", "err", err)
		return 1
	}
	logger.Info("stopped")
	return 0
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text or json", format)
}
