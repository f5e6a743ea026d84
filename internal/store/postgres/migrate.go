package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// migrations holds the schema, one goose SQL file per version. Files are
// only ever added: a released migration is never edited.
//
//go:embed migrations/*.sql
var migrations embed.FS

// Waiting for another replica's migrations: retry the lock every second
// for up to five minutes. Migrations are small; a replica that cannot get
// the lock in that time fails to start rather than hang.
const (
	lockRetrySeconds = 1
	lockRetries      = 300
)

// migrate applies the pending migrations to the first schema of cfg's
// search_path and returns that schema's name. goose needs a *sql.DB: one is
// opened on cfg just for this and closed again.
//
// Concurrent replicas serialize on a session-level advisory lock that goose
// holds on its connection while it migrates. The lock id is derived from the
// schema, so deployments (and tests) in different schemas of one database do
// not wait for each other.
func migrate(ctx context.Context, cfg *pgx.ConnConfig) (schema string, err error) {
	db := stdlib.OpenDB(*cfg)
	defer func() {
		if cerr := db.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("migrations: %w", cerr)
		}
	}()
	// goose uses one connection for the lock and the migrations.
	db.SetMaxOpenConns(2)

	schema, err = currentSchema(ctx, db)
	if err != nil {
		return "", err
	}
	locker, err := lock.NewPostgresSessionLocker(
		lock.WithLockID(migrationLockID(schema)),
		lock.WithLockTimeout(lockRetrySeconds, lockRetries),
	)
	if err != nil {
		return "", fmt.Errorf("migrations: %w", err)
	}
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return "", fmt.Errorf("migrations: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys,
		goose.WithSessionLocker(locker),
		// Only the embedded migrations, never ones registered globally by
		// other packages of the binary.
		goose.WithDisableGlobalRegistry(true),
	)
	if err != nil {
		return "", fmt.Errorf("migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return "", fmt.Errorf("migrations in schema %q: %w", schema, err)
	}
	return schema, nil
}

// currentSchema returns the schema unqualified tables are created in: the
// first schema of the search_path that exists.
func currentSchema(ctx context.Context, db *sql.DB) (string, error) {
	var schema sql.NullString
	if err := db.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return "", fmt.Errorf("migrations: %w", err)
	}
	if !schema.Valid {
		return "", errors.New("migrations: no schema of the search_path exists; create it first")
	}
	return schema.String, nil
}

// migrationLockID is the advisory lock id for migrating schema.
func migrationLockID(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("pipelined migrations\x00" + schema))
	return int64(h.Sum64())
}
