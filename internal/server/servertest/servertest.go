// Package servertest runs a real pipelined server in-process for tests and
// hands out real AWS SDK clients pointed at it.
package servertest

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline"

	"github.com/pipelined/pipelined/internal/pgtest"
	"github.com/pipelined/pipelined/internal/server"
)

// Root credentials every test server uses.
const (
	AccessKeyID     = "PLAKTESTROOT00000000"
	SecretAccessKey = "test-root-secret-key-0123456789abcdefABCD"
	Region          = "us-east-1"
	AccountID       = "123456789012"
)

// Instance is a running server.
type Instance struct {
	*server.Server
	URL     string
	DataDir string
	Config  server.Config
	logs    *syncBuffer
	cancel  context.CancelFunc
	done    chan error
	// HTTP is the client every SDK client of this instance uses: its own
	// connection pool, closed before the server shuts down (a connection the
	// transport dialed but never used would hold Shutdown for 5 seconds).
	HTTP *http.Client
}

// Options adjust a test server's configuration before it starts.
type Options func(*server.Config)

// Start runs a server on a loopback port with a fresh data dir (or the one
// given through options) and stops it at the end of the test.
func Start(t testing.TB, opts ...Options) *Instance {
	t.Helper()
	cfg := server.Config{
		Listen: "127.0.0.1:0", DataDir: t.TempDir(), Region: Region, AccountID: AccountID,
		RootAccessKeyID: AccessKeyID, RootSecretAccessKey: SecretAccessKey,
		ShutdownTimeout: 5 * time.Second,
	}
	for _, o := range opts {
		o(&cfg)
	}
	return StartConfig(t, cfg)
}

// StartConfig runs a server with exactly cfg (Logger is replaced by a
// capturing logger).
func StartConfig(t testing.TB, cfg server.Config) *Instance {
	t.Helper()
	logs := &syncBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatalf("start server: %v", err)
	}
	in := &Instance{Server: srv, URL: "http://" + srv.Addr(), DataDir: cfg.DataDir, Config: cfg, logs: logs, cancel: cancel, done: make(chan error, 1),
		HTTP: &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}}
	go func() { in.done <- srv.Serve(ctx) }()
	t.Cleanup(func() { in.Stop(t) })
	return in
}

// Stop shuts the server down gracefully and waits for it (idempotent).
func (in *Instance) Stop(t testing.TB) {
	if in.cancel == nil {
		return
	}
	in.HTTP.CloseIdleConnections()
	in.cancel()
	in.cancel = nil
	select {
	case err := <-in.done:
		if err != nil {
			// A stuck request is a bug: show where every goroutine was.
			var dump strings.Builder
			_ = pprof.Lookup("goroutine").WriteTo(&dump, 2)
			t.Errorf("server stopped with error: %v\ngoroutines:\n%s", err, dump.String())
		}
	case <-time.After(15 * time.Second):
		t.Error("server did not stop within 15s")
	}
}

// Logs returns everything the server logged so far.
func (in *Instance) Logs() string { return in.logs.String() }

// Client returns a CodePipeline client signing with the root credentials.
func (in *Instance) Client() *codepipeline.Client {
	return in.ClientWith(AccessKeyID, SecretAccessKey, Region)
}

// ClientWith returns a CodePipeline client with the given credentials and
// region, and no retries (tests assert on first answers).
func (in *Instance) ClientWith(akid, secret, region string) *codepipeline.Client {
	return codepipeline.New(codepipeline.Options{
		Region:           region,
		BaseEndpoint:     aws.String(in.URL),
		Credentials:      credentials.NewStaticCredentialsProvider(akid, secret, ""),
		RetryMaxAttempts: 1,
		HTTPClient:       in.HTTP,
	})
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Backend is a storage backend the API tests run on.
type Backend struct {
	Name string
	// Options configure a server for the backend; call it inside the
	// subtest (it may skip the test when the backend is not available).
	Options func(t testing.TB) Options
}

// Backends are SQLite (always) and PostgreSQL (when PIPELINED_TEST_POSTGRES
// is set; skipped with a message otherwise, failed in CI).
var Backends = []Backend{
	{Name: "sqlite", Options: func(testing.TB) Options { return func(*server.Config) {} }},
	{Name: "postgres", Options: func(t testing.TB) Options {
		dsn := pgtest.DSN(t)
		return func(c *server.Config) { c.Database = dsn }
	}},
}

// EachBackend runs fn as a subtest per backend.
func EachBackend(t *testing.T, fn func(t *testing.T, backend Options)) {
	for _, b := range Backends {
		t.Run(b.Name, func(t *testing.T) { fn(t, b.Options(t)) })
	}
}
