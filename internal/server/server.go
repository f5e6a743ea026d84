// Package server assembles pipelined: it opens the store, loads the master
// key and root credentials, builds the services and the HTTP handlers, and
// runs the listener with graceful shutdown.
package server

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pipelined/pipelined/internal/actiontypes"
	"github.com/pipelined/pipelined/internal/admin"
	"github.com/pipelined/pipelined/internal/awsjson"
	"github.com/pipelined/pipelined/internal/builtin"
	"github.com/pipelined/pipelined/internal/connections"
	"github.com/pipelined/pipelined/internal/console"
	"github.com/pipelined/pipelined/internal/consoleusers"
	"github.com/pipelined/pipelined/internal/credentials"
	"github.com/pipelined/pipelined/internal/engine"
	"github.com/pipelined/pipelined/internal/executions"
	"github.com/pipelined/pipelined/internal/joblogs"
	"github.com/pipelined/pipelined/internal/jobnonce"
	"github.com/pipelined/pipelined/internal/logsapi"
	"github.com/pipelined/pipelined/internal/oidcapi"
	"github.com/pipelined/pipelined/internal/pipelines"
	"github.com/pipelined/pipelined/internal/runner"
	"github.com/pipelined/pipelined/internal/s3api"
	"github.com/pipelined/pipelined/internal/secrets"
	"github.com/pipelined/pipelined/internal/sigv4"
	"github.com/pipelined/pipelined/internal/store"
	"github.com/pipelined/pipelined/internal/store/postgres"
	"github.com/pipelined/pipelined/internal/store/sqlite"
	"github.com/pipelined/pipelined/internal/workerkeys"
)

// Config is the server's configuration; cmd/pipelined fills it from flags
// and PIPELINED_* environment variables.
type Config struct {
	Listen    string // host:port
	DataDir   string
	Database  string // "" (SQLite in DataDir), a SQLite path or sqlite:// URL, or a postgres:// URL
	PublicURL string // "" derives it from Listen
	Region    string
	AccountID string

	MaxPipelines int

	RootAccessKeyID     string
	RootSecretAccessKey string
	MasterKey           string // base64 or hex; "" reads or creates DataDir/master.key

	ShutdownTimeout time.Duration
	Logger          *slog.Logger

	// Engine tuning (zero: the engine's defaults). Tests shorten them.
	SweepInterval   time.Duration // how often due timers are looked for
	JobAckTimeout   time.Duration // a polled job returns to the queue unless acknowledged within it
	ApprovalTimeout time.Duration // an approval without timeoutInMinutes fails after it (7 days)
	JobPollWait     time.Duration // how long PollForJobs waits for a job when none is queued
	JobTimeout      time.Duration // an acknowledged job with no timeout of its own (action or type) fails after it (1 hour)
	// EngineNow, when set, is the engine's clock: transitions and due timers
	// (tests move it to open a deployment window).
	EngineNow func() time.Time
	// Executors registers extra action executors by action type (tests
	// and programs that embed the server); they take precedence over the
	// built-in ones.
	Executors map[actiontypes.Key]engine.Executor

	// Artifact store and job credentials (see artifacts.go in this
	// package). With no ArtifactS3Endpoint the embedded store serves
	// objects from DataDir/artifacts on this listener.
	ArtifactCredentialsTTL time.Duration // 15m-1h; zero: 1h
	ArtifactS3Endpoint     string        // an external S3-compatible store
	ArtifactRoleARN        string        // external store: the role STS AssumeRole issues job credentials for
	ArtifactSTSEndpoint    string        // external store: the STS endpoint ("": the standard resolution)
	// ArtifactUploadExpiry: the embedded store removes multipart uploads
	// initiated longer ago than this, never completed or aborted (a worker
	// that died mid-upload). Zero: DefaultUploadExpiry; negative: never.
	ArtifactUploadExpiry time.Duration
	// ArtifactAWSConfig, when set, is the AWS SDK configuration STS is
	// called with (tests); otherwise the standard chain.
	ArtifactAWSConfig *aws.Config
	// ArtifactNow, when set, is the clock of the embedded store's job
	// credentials (tests move it to exercise renewal).
	ArtifactNow func() time.Time

	// Built-in S3 actions (internal/builtin; see builtin.go in this package).
	SourcePollInterval time.Duration    // how often polled S3 sources are checked (0: 1m; negative: never)
	GitCacheMaxBytes   int64            // bound of the Git mirror cache under DataDir/git (0: gitsource.DefaultMaxBytes)
	BuiltinS3          *builtin.Options // nil: the S3 the artifact store is on; tests point it elsewhere

	// Workload identity: the OIDC issuer and token exchanges (identity.go).
	Identity IdentityConfig

	// Limits bound slow, stalled or numerous clients: read deadline,
	// connection cap, idle timeout, body limits (limits.go).
	Limits LimitsConfig

	// WorkerKeyCacheTTL is how long the CodePipeline API caches worker key
	// lookups, and so how long a key revoked on another replica keeps
	// working here (0: workerkeys.DefaultCacheTTL, 10s).
	WorkerKeyCacheTTL time.Duration

	// Logs configures job logs (joblogs.go).
	Logs LogConfig
	// MetricsCountInterval is how long the store-counted gauges
	// (pipelined_jobs, pipelined_approvals_pending) are reused between
	// scrapes (0: 5s; negative: counted at every scrape).
	MetricsCountInterval time.Duration

	// Web console sessions (console.go): a session ends after this long
	// unused, and this long after sign-in (zero: 8h and 7 days).
	ConsoleSessionIdle   time.Duration
	ConsoleSessionMaxAge time.Duration
	// ConsoleLiveRecheck is how often an open pipeline page re-reads the
	// pipeline without having heard of a change from this replica's engine
	// (changes made on other replicas); zero: 5s.
	ConsoleLiveRecheck time.Duration
	// Runner configures Commands actions and the embedded runner (runner.go).
	Runner RunnerConfig
}

// Server is a running pipelined.
type Server struct {
	cfg Config
	// ensureArtifactBucket creates an artifact bucket in the embedded store
	// (nil with an external S3).
	ensureArtifactBucket func(ctx context.Context, bucket string) error
	// s3 is the embedded artifact store (nil with an external S3).
	s3         *s3api.Handler
	engine     *engine.Engine
	executions *executions.Service
	log        *slog.Logger
	store      store.Store
	http       *http.Server
	listener   net.Listener
	root       credentials.Root
	builtin    *builtin.Runner // built-in S3 action workers and source poller (builtin.go)
	identity   *identityParts  // OIDC issuer and token endpoints (identity.go)
	workerKeys *workerkeys.Service
	// consoleUsers are the web console's users and sessions (console.go).
	consoleUsers *consoleusers.Service
	runner       *runner.Runner // the embedded Commands runner (runner.go); nil when off
	runnerHTTP   *http.Client
	locks        dataLocks // SQLite: the data dir and database locks (datalock.go)
	// connections: CodeConnections connections and hosts (connections.go).
	connections *connections.Service
	jobLogs     *joblogs.Service // job logs (joblogs.go)
	logsAPI     *logsapi.Handler // their CloudWatch Logs API (joblogs.go)
	// PublicURL is the URL clients reach the server at.
	PublicURL string
}

// New prepares a server: it opens the store (applying migrations), loads
// keys and credentials and binds the listener. Serve starts serving.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.AccountID == "" {
		cfg.AccountID = "000000000000"
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 20 * time.Second
	}
	log := cfg.Logger
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	locks, err := lockData(cfg)
	if err != nil {
		return nil, err
	}
	started := false
	defer func() {
		if !started {
			locks.release()
		}
	}()

	key, err := masterKey(cfg, log)
	if err != nil {
		return nil, err
	}
	sealer, err := secrets.New(key)
	if err != nil {
		return nil, err
	}
	credPath := filepath.Join(cfg.DataDir, "credentials")
	root, src, err := credentials.Load(cfg.RootAccessKeyID, cfg.RootSecretAccessKey, credPath)
	if err != nil {
		return nil, err
	}
	switch src {
	case credentials.Generated:
		log.Info("generated root credentials; use them with AWS_SHARED_CREDENTIALS_FILE", "file", credPath, "access_key_id", root.AccessKeyID)
	case credentials.FromFile:
		log.Info("loaded root credentials", "file", credPath, "access_key_id", root.AccessKeyID)
	default:
		log.Info("root credentials from the environment", "access_key_id", root.AccessKeyID)
	}

	st, err := openStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	nonces, err := jobnonce.New(key)
	if err != nil {
		st.Close()
		return nil, err
	}
	if err := hashLegacyNonces(ctx, st, nonces, log); err != nil {
		st.Close()
		return nil, err
	}
	rawStore := st
	st, tel := observeStore(st, log)
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		st.Close()
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, store: st, listener: ln, root: root, locks: locks}
	s.workerKeys = workerkeys.New(st, sealer, cfg.AccountID, cfg.WorkerKeyCacheTTL, log)
	s.PublicURL = cfg.PublicURL
	if s.PublicURL == "" {
		s.PublicURL = "http://" + ln.Addr().String()
	}
	s.PublicURL = strings.TrimRight(s.PublicURL, "/")

	var ex *executions.Service
	svc := pipelines.New(pipelines.Config{
		Store: st, Sealer: sealer, Region: cfg.Region, AccountID: cfg.AccountID, MaxPipelines: cfg.MaxPipelines,
		// CodePipeline starts a pipeline when it is created.
		AfterCreate: func(ctx context.Context, name string) error { return ex.StartOnCreate(ctx, name) },
		AfterUpdate: func(ctx context.Context, name string) error { return s.engine.PipelineUpdated(ctx, name) },
	})
	svc.OnHookError(func(op, name string, err error) {
		log.Error("pipeline "+op+" hook failed", "pipeline", name, "err", err)
	})
	s.engine = engine.New(engine.Config{
		Store: st, Definitions: svc, Logger: log, Observer: tel,
		AckTimeout: cfg.JobAckTimeout, DefaultApprovalTimeout: cfg.ApprovalTimeout, DefaultJobTimeout: cfg.JobTimeout,
		Nonces: nonces, Now: cfg.EngineNow,
	})
	// Built-in S3 actions become jobs, run by the workers of internal/builtin.
	for _, k := range builtin.Keys() {
		s.engine.RegisterExecutor(k, engine.JobExecutor())
	}
	for k, e := range cfg.Executors {
		s.engine.RegisterExecutor(k, e)
	}
	ex = executions.New(s.engine, st, svc, cfg.AccountID, cfg.JobPollWait)
	s.executions = ex
	artifactHandler, err := s.setupArtifacts(ctx, key)
	if err != nil {
		ln.Close()
		st.Close()
		return nil, err
	}
	// After the artifact store: the built-in S3 actions use its bucket hook.
	connAPI := s.setupConnections(sealer) // before the built-in workers: the Git source uses it
	s.builtin = builtin.New(s.engine, st, svc, s.builtinOptions())
	if s.cfg.Runner.Logs == nil {
		s.cfg.Runner.Logs = embeddedLogSink{s} // job logs (joblogs.go)
	}
	s.setupRunner()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.registerTelemetry(reg, tel, rawStore)
	if s.identity, err = s.setupIdentity(ctx, sealer, svc, reg); err != nil {
		ln.Close()
		st.Close()
		return nil, err
	}
	// The CodePipeline API takes the root credentials and worker keys (which
	// awsjson and the job operations confine to their action type's job
	// protocol); everything else takes root only.
	verifier := &sigv4.Verifier{Region: cfg.Region, Service: "codepipeline", Lookup: s.apiLookup}
	codepipeline := api{Service: svc, ex: ex}
	api := awsjson.New(codepipeline, awsjson.SigV4{Verifier: verifier}, s.apiBodyOptions(awsjson.Options{Logger: log, Registerer: reg}))

	consoleHandler, err := s.setupConsole(codepipeline)
	if err != nil {
		ln.Close()
		st.Close()
		return nil, err
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := st.Ping(ctx); err != nil {
			log.Warn("health check failed", "err", err)
			http.Error(w, "database unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	// The operator API (third-party action types and clients, worker keys),
	// signed by the root credentials, and only them, for its own signing
	// service.
	mux.Handle(admin.PathPrefix, admin.New(admin.Config{
		Store: st, Pipelines: svc, Logger: log, WorkerKeys: s.workerKeys, ConsoleUsers: s.consoleUsers, Connections: s.connections,
		Verifier: &sigv4.Verifier{Region: cfg.Region, Service: admin.SigningService, Lookup: s.rootLookup},
	}))
	// Workload identity: discovery and JWKS, and the token endpoints.
	mux.Handle(s.identity.issuer.DiscoveryPath(), s.identity.issuer.Handler())
	mux.Handle(s.identity.issuer.JWKSPath(), s.identity.issuer.Handler())
	mux.Handle(oidcapi.PathPrefix, s.identity.api)
	mux.Handle(console.PathPrefix, consoleHandler)
	s.setupJobLogs(mux)
	s.routeRunner(mux)
	mux.Handle("/", s.rootHandler(s.routeLogs(routeConnections(connAPI, api)), artifactHandler)) // STS, the landing page, the APIs, S3 (root.go)
	// Timeouts, body limits and the connection cap: limits.go.
	s.http = s.newHTTPServer(mux, log)
	started = true
	return s, nil
}

// rootLookup finds the credential of the root access key id, and of no
// other: the admin API's lookup. (The embedded S3 store has its own: root
// and the jobs' session credentials, artifacts.Local.)
func (s *Server) rootLookup(_ context.Context, accessKeyID string) (sigv4.Credential, error) {
	if subtle.ConstantTimeCompare([]byte(accessKeyID), []byte(s.root.AccessKeyID)) == 1 {
		return sigv4.Credential{
			AccessKeyID: s.root.AccessKeyID, SecretAccessKey: s.root.SecretAccessKey,
			Principal: fmt.Sprintf("arn:aws:iam::%s:root", s.cfg.AccountID),
		}, nil
	}
	return sigv4.Credential{}, sigv4.ErrUnknownAccessKey
}

// apiLookup is the CodePipeline API's lookup: the root credentials (checked
// first, in constant time), else a worker key.
func (s *Server) apiLookup(ctx context.Context, accessKeyID string) (sigv4.Credential, error) {
	if cred, err := s.rootLookup(ctx, accessKeyID); err == nil {
		return cred, nil
	}
	return s.workerKeys.Lookup(ctx, accessKeyID)
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.listener.Addr().String() }

// Store returns the server's store (for tests and tools in this module).
func (s *Server) Store() store.Store { return s.store }

// WorkerKeys returns the server's worker key service (for tests and tools
// in this module).
func (s *Server) WorkerKeys() *workerkeys.Service { return s.workerKeys }

// Serve serves until ctx is done, then shuts down gracefully: it stops
// accepting, lets requests in flight finish (up to ShutdownTimeout) and
// closes the store.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(s.listener) }()
	sweepCtx, stopSweeper := context.WithCancel(context.WithoutCancel(ctx))
	sweeperDone := make(chan struct{})
	go func() {
		defer close(sweeperDone)
		s.engine.RunSweeper(sweepCtx, engine.SweeperConfig{Interval: s.cfg.SweepInterval})
	}()
	wakeupsDone := make(chan struct{})
	go func() {
		defer close(wakeupsDone)
		s.executions.RunWakeups(sweepCtx, s.log)
	}()
	// Built-in S3 action workers and source poller: stopped first on shutdown,
	// since their S3 I/O may go through this server's own listener.
	identityDone := make(chan struct{})
	go func() { defer close(identityDone); s.identity.issuer.Run(sweepCtx) }()
	consoleDone := make(chan struct{})
	go func() { defer close(consoleDone); s.runConsoleSweeper(sweepCtx) }()
	uploadsDone := make(chan struct{})
	go func() { defer close(uploadsDone); s.runUploadSweeper(sweepCtx) }()
	logsDone := make(chan struct{})
	go func() { defer close(logsDone); s.runLogSweeper(sweepCtx) }()
	builtinCtx, stopBuiltin := context.WithCancel(context.WithoutCancel(ctx))
	builtinDone := make(chan struct{})
	go func() { defer close(builtinDone); s.builtin.Run(builtinCtx) }()
	// The embedded runner: polling stops with the built-in workers; its
	// jobs get half the shutdown timeout to finish, then are cancelled.
	runnerJobs, cancelRunnerJobs := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRunnerJobs()
	runnerDone := make(chan struct{})
	go func() { defer close(runnerDone); s.runRunner(builtinCtx, runnerJobs) }()
	s.log.Info("pipelined serving", "listen", s.Addr(), "public_url", s.PublicURL, "region", s.cfg.Region, "account_id", s.cfg.AccountID)
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		s.log.Info("shutting down")
		stopBuiltin() // built-in S3 actions: let jobs in flight finish
		<-builtinDone
		grace := time.AfterFunc(s.cfg.ShutdownTimeout/2, cancelRunnerJobs)
		<-runnerDone
		grace.Stop()
		s.executions.Drain()
		sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
		err = s.http.Shutdown(sctx)
		cancel()
		<-errc
	}
	// The sweeper stops after the last request, and releases its lease so
	// that another replica takes over at once.
	stopBuiltin()
	<-builtinDone
	cancelRunnerJobs()
	<-runnerDone
	stopSweeper()
	<-sweeperDone
	<-wakeupsDone
	<-identityDone
	<-uploadsDone
	<-logsDone
	<-consoleDone
	if cerr := s.store.Close(); err == nil {
		err = cerr
	}
	s.locks.release()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

func masterKey(cfg Config, log *slog.Logger) ([]byte, error) {
	if cfg.MasterKey != "" {
		return secrets.ParseKey(cfg.MasterKey)
	}
	path := filepath.Join(cfg.DataDir, "master.key")
	key, created, err := secrets.LoadOrCreateKeyFile(path)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	if created {
		log.Warn("generated a master key; back it up: without it the secrets in the database cannot be read", "file", path)
	}
	return key, nil
}

func openStore(ctx context.Context, cfg Config) (store.Store, error) {
	db := cfg.Database
	switch {
	case strings.HasPrefix(db, "postgres://"), strings.HasPrefix(db, "postgresql://"):
		return postgres.Open(ctx, db)
	case db == "":
		db = filepath.Join(cfg.DataDir, "pipelined.db")
	case strings.HasPrefix(db, "sqlite://"):
		db = strings.TrimPrefix(db, "sqlite://")
	case strings.Contains(db, "://"):
		return nil, fmt.Errorf("--database %q: unsupported scheme (use a SQLite file path, sqlite://PATH or postgres://...)", redactDSN(db))
	}
	return sqlite.Open(ctx, db)
}

// redactDSN drops the password of a database URL for messages and logs.
func redactDSN(dsn string) string {
	if i := strings.Index(dsn, "://"); i >= 0 {
		rest := dsn[i+3:]
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if c := strings.Index(rest[:at], ":"); c >= 0 {
				return dsn[:i+3] + rest[:c] + ":xxxxx" + rest[at:]
			}
		}
	}
	return dsn
}
