// Package postgres is the implementation of store.Store for several
// pipelined replicas sharing one PostgreSQL database, on pgx/v5.
//
// Tables live in the first schema of the DSN's search_path (for example
// options=-c search_path=pipelined), so one database can hold several
// deployments. Migrations are applied by Open under a PostgreSQL advisory
// lock, so replicas that start together do not race.
//
// Concurrency between replicas: UpdatePipeline is optimistic (a
// compare-and-swap on the pipeline's head row; the loser gets
// store.ErrConflict); read-modify-write of tags and action types serialize
// on a transaction-scoped advisory lock per resource; InPipeline (and
// DeletePipeline) serialize per pipeline on the row lock of the pipeline's
// pipeline_runtime row (engine.go); Claim and ClaimJobs use
// SELECT ... FOR UPDATE SKIP LOCKED; leases compare against the database
// clock. Notify/Listen use PostgreSQL's NOTIFY/LISTEN (see Listen), which
// needs a real session: point the DSN at PostgreSQL or at a session-pooling
// proxy, not at a transaction-pooling one (PgBouncer pool_mode=transaction).
//
// Clock: every timestamp the store assigns is the database's now() (the
// start of the transaction), so replicas with skewed clocks agree. Values
// are returned in UTC at PostgreSQL's precision (microseconds). The
// engine's records (executions, timers, jobs) are the exception: their
// timestamps are the engine's, kept as given at millisecond precision, and
// ClaimJobs compares job deadlines with this process's clock, which set
// them.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pipelined/pipelined/internal/store"
)

// Store is a store.Store on one PostgreSQL schema. It is safe for
// concurrent use; several Stores (replicas) may share the schema.
type Store struct {
	pool *pgxpool.Pool
	// schema is current_schema() of the DSN: it namespaces the
	// notification channels, which are database-wide in PostgreSQL.
	schema string
	lis    *listener

	closeOnce sync.Once
}

var _ store.Store = (*Store)(nil)

// Open connects to the database at dsn (a pgx connection string: URL or
// keyword/value, with pool_* settings such as pool_max_conns), applies the
// pending migrations and returns the Store. The first schema of the
// search_path must exist.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors redact the password.
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	configurePool(cfg)

	schema, err := migrate(ctx, cfg.ConnConfig)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	// NewWithConfig connects lazily; fail now rather than on first use.
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	return &Store{
		pool:   pool,
		schema: schema,
		lis:    newListener(cfg.ConnConfig.Copy()),
	}, nil
}

// configurePool fills in what pgxpool's defaults leave out. The pool size
// stays pgxpool's (pool_max_conns, default max(4, NumCPU)): requests
// are short, and every replica's pool counts against the server's
// max_connections, so small is right.
func configurePool(cfg *pgxpool.Config) {
	rp := cfg.ConnConfig.RuntimeParams
	if rp["application_name"] == "" {
		// Shows up in pg_stat_activity, next to the listener's connection.
		rp["application_name"] = "pipelined"
	}
	if cfg.MaxConnLifetimeJitter == 0 {
		// Replicas started together would otherwise recycle all their
		// connections at the same moment, every MaxConnLifetime.
		cfg.MaxConnLifetimeJitter = cfg.MaxConnLifetime / 10
	}
}

// Close stops the listener, ending every Listen subscription, and closes the
// pool. It is safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.lis.close()
		s.pool.Close()
	})
	return nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: ping: %w", err)
	}
	return nil
}

// SQLSTATE codes the store maps to store errors.
const (
	codeUniqueViolation      = "23505"
	codeSerializationFailure = "40001"
	codeDeadlockDetected     = "40P01"
)

// sqlState returns err's SQLSTATE, or "" when err is not from the server.
func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

func isUniqueViolation(err error) bool { return sqlState(err) == codeUniqueViolation }

// mapErr turns what every method maps the same way into store errors:
// no rows is ErrNotFound; a serialization failure or a deadlock (the
// server aborted this transaction in favour of a concurrent one) is
// ErrConflict, keeping the server's error in the chain. Unique violations
// mean different things in different methods and are mapped there.
func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pgx.ErrNoRows):
		return store.ErrNotFound
	}
	switch sqlState(err) {
	case codeSerializationFailure, codeDeadlockDetected:
		return fmt.Errorf("%w: %w", store.ErrConflict, err)
	}
	return err
}

// blob returns b, or an empty slice for nil: the bytea columns are NOT NULL.
func blob(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// micros converts a duration to whole microseconds, PostgreSQL's interval
// precision, for "now() + $n * interval '1 microsecond'".
func micros(d time.Duration) int64 { return d.Microseconds() }

// utc returns t in UTC: pgx returns timestamptz in the local time zone, and
// values are compared (and printed) more predictably in one zone.
func utc(t time.Time) time.Time { return t.UTC() }

// advisoryClass* are the first key of pg_advisory_xact_lock(int, int) for
// each kind of record whose read-modify-write is serialized; the second key
// is hashtext() of the record's key. A hash collision only makes two
// unrelated writers wait for each other briefly.
const (
	advisoryClassTags        = 0x70740001 // "pt" 1
	advisoryClassActionTypes = 0x70740002
)

// lockKey takes the transaction-scoped advisory lock on (class, key): it is
// held until the transaction ends, and taken even when no row exists yet,
// which row locks (SELECT ... FOR UPDATE) cannot do.
func lockKey(ctx context.Context, tx pgx.Tx, class int32, key string) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1::int4, hashtext($2))`, class, key)
	return err
}
