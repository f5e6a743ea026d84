package pgtest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestSchemaName(t *testing.T) {
	now := time.Unix(1700000000, 0)
	a, err := schemaName("TestFoo/Sub_Test#01 with spaces and a very long name that goes on", now)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := schemaName("TestFoo", now)
	if a == b || len(a) > 63 || !strings.HasPrefix(a, schemaPrefix+"1700000000_") {
		t.Errorf("schemaName: %q, %q", a, b)
	}
	for _, r := range a {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			t.Fatalf("schemaName %q: character %q needs quoting", a, r)
		}
	}
}

// TestDSN checks that a DSN points at its own schema and that the schema is
// gone once the test that asked for it has finished.
func TestDSN(t *testing.T) {
	ctx := t.Context()
	var schema string
	t.Run("inner", func(t *testing.T) {
		dsn := DSN(t)
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		if err := conn.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(schema, schemaPrefix) {
			t.Fatalf("current_schema() = %q, want a %s... schema", schema, schemaPrefix)
		}
		if _, err := conn.Exec(ctx, "CREATE TABLE t (x int)"); err != nil {
			t.Fatal(err)
		}
	})
	if schema == "" {
		t.SkipNow() // inner was skipped (or failed): nothing to check.
	}
	conn, err := pgx.Connect(ctx, DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Errorf("schema %s still exists after its test ended", schema)
	}
}
