package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pipelined/pipelined/internal/pgdsn"
)

// pgTimeout bounds each administrative statement, so that an unreachable
// database fails the run instead of hanging it.
const pgTimeout = 30 * time.Second

// pgSchema is the private schema one run keeps its tables in, so that runs
// never see each other's (or the tests') data.
type pgSchema struct {
	base string // the DSN given with -postgres
	name string
	DSN  string // base with search_path set to the schema
}

// createSchema creates bench_<random> and returns it with a DSN whose
// search_path points at it.
func createSchema(ctx context.Context, base string) (*pgSchema, error) {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	name := "bench_" + hex.EncodeToString(b[:])
	dsn, err := withSearchPath(base, name)
	if err != nil {
		return nil, err
	}
	if err := pgExec(ctx, base, "CREATE SCHEMA "+pgx.Identifier{name}.Sanitize()); err != nil {
		return nil, fmt.Errorf("create schema %s: %w", name, err)
	}
	return &pgSchema{base: base, name: name, DSN: dsn}, nil
}

// drop drops the schema and everything in it. It uses its own context: it
// runs at the end, also after ctrl-C has cancelled the run's context.
func (s *pgSchema) drop() error {
	if err := pgExec(context.Background(), s.base, "DROP SCHEMA IF EXISTS "+pgx.Identifier{s.name}.Sanitize()+" CASCADE"); err != nil {
		return fmt.Errorf("drop schema %s: %w", s.name, err)
	}
	return nil
}

func pgExec(ctx context.Context, dsn, sql string) error {
	ctx, cancel := context.WithTimeout(ctx, pgTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// withSearchPath points the DSN at schema; pipelined takes PostgreSQL as a
// postgres:// URL only.
func withSearchPath(dsn, schema string) (string, error) {
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		return "", fmt.Errorf("-postgres must be a postgres:// URL")
	}
	return pgdsn.WithSearchPath(dsn, schema)
}
