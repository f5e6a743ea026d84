package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// bench holds the state of one run: the built binary, the children, the
// PostgreSQL schema, and the report being filled in.
type bench struct {
	o         *options
	root      string // module root (where go.mod is)
	tmp       string // binaries, data dirs and child logs; removed at the end
	pipelined string // the built server binary
	self      string // this program, re-executed as the no-op server
	masterKey string // shared by every pipelined, as replicas must
	tmpl      *template
	procs     procSet
	schema    *pgSchema     // nil without -postgres
	failed    bool          // keep tmp (and its logs) for a post-mortem
	report    *report       // the api suite's
	engine    *engineReport // the engine suite's
	net       *netReport    // the net suite's
	perfFiles []string      // profiles recorded with -perf
}

// backend is one pipelined storage configuration. Its data outlives the
// server processes: each phase starts a server on it and stops it, so that
// only the servers under measurement run at any time.
type backend struct {
	name     string // "SQLite" or "PostgreSQL"
	dataDir  string
	database string // --database; empty for SQLite in dataDir
	stored   int    // pipelines bench-00000.. already created
}

func newBench(o *options) (*bench, error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	tmpl, err := loadTemplate(root)
	if err != nil {
		return nil, err
	}
	var key [32]byte
	if _, err := rand.Read(key[:]); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "apibench-")
	if err != nil {
		return nil, err
	}
	b := &bench{
		o: o, root: root, tmp: tmp, self: self, tmpl: tmpl,
		masterKey: base64.StdEncoding.EncodeToString(key[:]),
		report:    newReport(o),
		engine:    newEngineReport(o),
		net:       &netReport{o: o, command: commandLine(os.Args[1:])},
	}
	return b, nil
}

// moduleRoot is the directory of the go.mod that the current directory is in.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run apibench from inside the pipelined module (go run ./bench/cmd/apibench)")
	}
	return filepath.Dir(gomod), nil
}

// close stops every child, drops the PostgreSQL schema (after the servers
// using it are gone) and removes the temporary directory, unless the run
// failed, in which case its logs are kept.
func (b *bench) close() error {
	errs := []error{b.procs.stopAll()}
	if b.schema != nil {
		errs = append(errs, b.schema.drop())
	}
	if b.failed {
		log.Printf("kept %s (server logs) for inspection", b.tmp)
	} else {
		errs = append(errs, os.RemoveAll(b.tmp))
	}
	return errors.Join(errs...)
}

// runAll runs every phase in report order.
func (b *bench) runAll(ctx context.Context) (err error) {
	defer func() {
		b.failed = err != nil
		b.report.perfFiles = b.perfFiles
	}()
	b.report.machine = machineInfo(ctx)
	if err := b.build(ctx); err != nil {
		return err
	}
	sqlite := &backend{name: "SQLite", dataDir: filepath.Join(b.tmp, "sqlite")}
	backends := []*backend{sqlite}
	var pg *backend
	if b.o.postgres != "" {
		s, err := createSchema(ctx, b.o.postgres)
		if err != nil {
			return err
		}
		b.schema = s
		log.Printf("PostgreSQL schema %s", s.name)
		pg = &backend{name: "PostgreSQL", dataDir: filepath.Join(b.tmp, "pg"), database: s.DSN}
		backends = append(backends, pg)
	}
	b.report.started = time.Now()
	defer func() { b.report.finished = time.Now() }()

	if err := b.readPhase(ctx, sqlite, pg); err != nil {
		return err
	}
	for _, be := range backends {
		if err := b.latencyPhase(ctx, be); err != nil {
			return err
		}
	}
	return b.writePhase(ctx, sqlite, pg)
}

// build compiles ./cmd/pipelined into the temporary directory, so that the
// numbers are of the code in this checkout.
func (b *bench) build(ctx context.Context) error {
	b.pipelined = filepath.Join(b.tmp, "pipelined")
	log.Printf("building ./cmd/pipelined")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", b.pipelined, "./cmd/pipelined")
	cmd.Dir = b.root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/pipelined: %w\n%s", err, out)
	}
	return nil
}

// server is a running child server and where to reach it.
type server struct {
	*proc
	url string
}

// startPipelined starts one pipelined process on be and waits until
// /healthz answers. replica numbers the processes sharing one database.
func (b *bench) startPipelined(ctx context.Context, be *backend, replica int) (*server, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	name := fmt.Sprintf("pipelined-%s-%d", strings.ToLower(be.name), replica)
	// Replicas share the database, not the data dir. (Only PostgreSQL has
	// more than one; SQLite's data dir is its database.)
	dataDir := be.dataDir
	if replica > 1 {
		dataDir = fmt.Sprintf("%s-%d", be.dataDir, replica)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	args := []string{b.pipelined, "serve",
		"--listen", addr, "--data-dir", dataDir, "--log-level", "warn",
		// The cap is far above what the run stores: the benchmark measures
		// the server, not its limit (the count behind it is paid regardless).
		"--max-pipelines", fmt.Sprint(max(1_000_000, 2*b.o.pipelines)),
	}
	if be.database != "" {
		args = append(args, "--database", be.database)
	}
	if b.o.pollWait != "" {
		args = append(args, "--job-poll-wait", b.o.pollWait)
	}
	env := []string{
		"PIPELINED_ROOT_ACCESS_KEY_ID=" + accessKeyID,
		"PIPELINED_ROOT_SECRET_ACCESS_KEY=" + secretKey,
		"PIPELINED_MASTER_KEY=" + b.masterKey,
	}
	p, err := b.procs.start(name, filepath.Join(b.tmp, name+".log"), env, args...)
	if err != nil {
		return nil, err
	}
	url := "http://" + addr
	if err := p.waitReady(ctx, healthz(url)); err != nil {
		return nil, errors.Join(err, p.stop())
	}
	return &server{proc: p, url: url}, nil
}

// startNoop starts this program as the no-op server.
func (b *bench) startNoop(ctx context.Context) (*server, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	p, err := b.procs.start("no-op", filepath.Join(b.tmp, "noop.log"), nil, b.self, "-serve-noop", addr)
	if err != nil {
		return nil, err
	}
	url := "http://" + addr
	if err := p.waitReady(ctx, healthz(url)); err != nil {
		return nil, errors.Join(err, p.stop())
	}
	return &server{proc: p, url: url}, nil
}

// seed makes sure pipelines bench-00000..n-1 exist on the backend.
func (b *bench) seed(ctx context.Context, c *client, be *backend, n int) (float64, error) {
	if be.stored >= n {
		return 0, nil
	}
	r, err := createSeq(ctx, c, b.tmpl, "", b.o.conns, be.stored, n)
	if err != nil {
		return 0, fmt.Errorf("%s: fill to %d pipelines: %w", be.name, n, err)
	}
	be.stored = n
	return r, nil
}
