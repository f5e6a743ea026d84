// Package pgtest gives tests a private PostgreSQL schema.
//
// The server comes from the environment variable PIPELINED_TEST_POSTGRES, a
// pgx DSN such as
//
//	postgres://postgres@127.0.0.1:5432/test?sslmode=disable
//
// whose user may create schemas. Every call to DSN creates a fresh, uniquely
// named schema and returns a DSN whose search_path points at it, so tests can
// run in parallel against one database without seeing each other's tables;
// the schema is dropped when the test ends.
//
// Without the variable the tests are skipped, except on CI (CI=true) where
// they fail: CI must run them for real.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pipelined/pipelined/internal/pgdsn"
)

// EnvVar names the environment variable holding the test server's DSN.
const EnvVar = "PIPELINED_TEST_POSTGRES"

// schemaPrefix starts the name of every schema this package creates; the
// stale-schema sweep only ever touches schemas with this prefix.
const schemaPrefix = "pgtest_"

// staleAfter is the age after which a leftover schema (from a test binary
// that was killed before its cleanups ran) is dropped by the next run.
const staleAfter = 24 * time.Hour

// opTimeout bounds each administrative statement, so an unreachable server
// fails the test instead of hanging it.
const opTimeout = 30 * time.Second

var sweepOnce sync.Once

// DSN returns a DSN for a new, empty schema on the test server and drops the
// schema (with everything in it) in t.Cleanup. Cleanups run last-in
// first-out, so stores opened on the DSN after this call are closed before
// the schema is dropped.
func DSN(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvVar)
	if base == "" {
		const how = EnvVar + " is not set; set it to a PostgreSQL DSN whose user may create schemas, " +
			"e.g. " + EnvVar + "='postgres://postgres@127.0.0.1:5432/test?sslmode=disable'"
		if os.Getenv("CI") == "true" {
			t.Fatal("pgtest: CI=true but " + how)
		}
		t.Skip("pgtest: skipping PostgreSQL test: " + how)
	}

	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v", EnvVar, err)
	}
	defer conn.Close(context.Background())

	sweepOnce.Do(func() { sweepStale(ctx, t, conn) })

	schema, err := schemaName(t.Name(), time.Now())
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create schema %s: %v", schema, err)
	}
	t.Cleanup(func() { dropSchema(t, base, schema) })

	dsn, err := pgdsn.WithSearchPath(base, schema)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return dsn
}

func dropSchema(t testing.TB, base, schema string) {
	// t.Context() is already cancelled while cleanups run.
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Errorf("pgtest: drop schema %s: %v", schema, err)
		return
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
		t.Errorf("pgtest: drop schema %s: %v", schema, err)
	}
}

// schemaName builds pgtest_<unix seconds>_<random>_<test name>, cut to
// PostgreSQL's 63-byte identifier limit. The timestamp lets a later run
// recognise schemas left behind by a killed run; the random part makes the
// name unique; the test name is there for whoever looks at the database.
func schemaName(testName string, now time.Time) (string, error) {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random schema name: %w", err)
	}
	name := fmt.Sprintf("%s%d_%s_", schemaPrefix, now.Unix(), hex.EncodeToString(b[:]))
	for _, r := range strings.ToLower(testName) {
		if len(name) >= 63 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			name += string(r)
		default:
			name += "_"
		}
	}
	return strings.TrimRight(name, "_"), nil
}

// sweepStale drops schemas left by test runs that never ran their cleanups
// (killed, timed out). It runs once per test binary and is best effort.
func sweepStale(ctx context.Context, t testing.TB, conn *pgx.Conn) {
	rows, err := conn.Query(ctx,
		`SELECT nspname FROM pg_namespace WHERE starts_with(nspname, $1)`, schemaPrefix)
	if err != nil {
		t.Logf("pgtest: list stale schemas: %v", err)
		return
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Logf("pgtest: list stale schemas: %v", err)
		return
	}
	cutoff := time.Now().Add(-staleAfter).Unix()
	for _, name := range names {
		ts, _, _ := strings.Cut(strings.TrimPrefix(name, schemaPrefix), "_")
		created, err := strconv.ParseInt(ts, 10, 64)
		if err != nil || created > cutoff {
			continue
		}
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{name}.Sanitize()+" CASCADE"); err != nil {
			t.Logf("pgtest: drop stale schema %s: %v", name, err)
		}
	}
}
