// Package pgdsn edits PostgreSQL connection strings the way pgx parses them.
package pgdsn

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// WithSearchPath returns dsn with search_path set to schema through the
// "options" start-up parameter (-c search_path=...), which PostgreSQL applies
// as the session default (and psql understands too). Options already in the
// DSN (or PGOPTIONS) are kept: the combined value is appended, and pgx lets
// the last occurrence of a parameter win. The DSN is extended as text, not
// re-encoded, because pgx and libpq parse URLs differently from net/url ('#'
// is data, '+' is a literal plus). schema must be a plain lower-case
// identifier: it is not quoted. Tests and benchmarks use it to give every run
// a schema of its own.
func WithSearchPath(dsn, schema string) (string, error) {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return "", fmt.Errorf("parse DSN: %w", err)
	}
	opts := strings.TrimSpace(cfg.RuntimeParams["options"] + " -c search_path=" + schema)
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		sep := "&"
		switch {
		case !strings.Contains(dsn, "?"):
			sep = "?"
		case strings.HasSuffix(dsn, "?"), strings.HasSuffix(dsn, "&"):
			sep = ""
		}
		// QueryEscape writes spaces as '+', which pgx would keep literally.
		return dsn + sep + "options=" + strings.ReplaceAll(url.QueryEscape(opts), "+", "%20"), nil
	}
	// Keyword/value: quote the value, escaping \ and ' with a backslash.
	quoted := strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(opts)
	return dsn + " options='" + quoted + "'", nil
}
