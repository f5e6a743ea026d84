package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"
)

// migrations holds the schema, one goose SQL file per version. Files are
// only ever added: a released migration is never edited.
//
//go:embed migrations/*.sql
var migrations embed.FS

// migrate applies the pending migrations to db (the write pool: goose runs
// each migration in a transaction, which there starts with BEGIN IMMEDIATE
// and so excludes other writers, also other processes').
func migrate(ctx context.Context, db *sql.DB) error {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, fsys,
		// Only the embedded migrations, never ones registered globally by
		// other packages of the binary.
		goose.WithDisableGlobalRegistry(true),
	)
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	return nil
}
