package pgdsn

import (
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestWithSearchPath(t *testing.T) {
	t.Setenv("PGOPTIONS", "")
	for _, tc := range []struct {
		dsn, want string
	}{
		{"postgres://u@h/db", "-c search_path=s1"},
		{"postgres://u@h/db?sslmode=disable", "-c search_path=s1"},
		{"postgresql://u:p%23w@h/db?sslmode=disable&", "-c search_path=s1"},
		{"postgres://u@h/db?options=-c%20statement_timeout%3D5s", "-c statement_timeout=5s -c search_path=s1"},
		{"host=h user=u dbname=db", "-c search_path=s1"},
		{"host=h user=u options='-c work_mem=64kB'", "-c work_mem=64kB -c search_path=s1"},
	} {
		dsn, err := WithSearchPath(tc.dsn, "s1")
		if err != nil {
			t.Errorf("WithSearchPath(%q): %v", tc.dsn, err)
			continue
		}
		cfg, err := pgconn.ParseConfig(dsn)
		if err != nil {
			t.Errorf("WithSearchPath(%q) = %q, does not parse: %v", tc.dsn, dsn, err)
			continue
		}
		if got := cfg.RuntimeParams["options"]; got != tc.want {
			t.Errorf("WithSearchPath(%q) = %q: options %q, want %q", tc.dsn, dsn, got, tc.want)
		}
	}
}
