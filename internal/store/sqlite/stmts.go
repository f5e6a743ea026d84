package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"sync"
)

// stmtCache holds one pool's prepared statements by query text. database/sql
// re-prepares a statement on each connection of the pool as needed.
type stmtCache struct {
	db *sql.DB
	m  sync.Map // query -> *sql.Stmt
}

// prepared returns the statement for query if it has been prepared.
func (c *stmtCache) prepared(query string) (*sql.Stmt, bool) {
	st, ok := c.m.Load(query)
	if !ok {
		return nil, false
	}
	return st.(*sql.Stmt), true
}

// get returns the statement for query, preparing it on first use. Only for
// the read pool: on the write pool a transaction may hold the only
// connection, and preparing would wait for it.
func (c *stmtCache) get(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := c.prepared(query); ok {
		return st, nil
	}
	st, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if prev, loaded := c.m.LoadOrStore(query, st); loaded {
		// Another goroutine prepared it first; use theirs.
		_ = st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

func (c *stmtCache) prepareAll(ctx context.Context, queries []string) error {
	for _, q := range queries {
		if _, err := c.get(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

func (c *stmtCache) close() error {
	var errs []error
	c.m.Range(func(_, st any) bool {
		errs = append(errs, st.(*sql.Stmt).Close())
		return true
	})
	return errors.Join(errs...)
}

// queryRow runs a read on the read pool.
func (s *Store) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := s.reads.get(ctx, query)
	if err != nil {
		// *sql.Row cannot be built with an error outside database/sql; run
		// the query unprepared, which reports the same error from Scan.
		return s.rdb.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

// query runs a read on the read pool.
func (s *Store) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := s.reads.get(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// wtx is a write transaction. It runs the write pool's prepared statements
// (Tx.StmtContext reuses them on the transaction's connection, preparing
// there if needed), and a query writeQueries lacks unprepared.
type wtx struct {
	ctx    context.Context
	tx     *sql.Tx
	writes *stmtCache
}

func (w *wtx) exec(query string, args ...any) (sql.Result, error) {
	if st, ok := w.writes.prepared(query); ok {
		return w.tx.StmtContext(w.ctx, st).ExecContext(w.ctx, args...)
	}
	return w.tx.ExecContext(w.ctx, query, args...)
}

func (w *wtx) queryRow(query string, args ...any) *sql.Row {
	if st, ok := w.writes.prepared(query); ok {
		return w.tx.StmtContext(w.ctx, st).QueryRowContext(w.ctx, args...)
	}
	return w.tx.QueryRowContext(w.ctx, query, args...)
}

func (w *wtx) query(query string, args ...any) (*sql.Rows, error) {
	if st, ok := w.writes.prepared(query); ok {
		return w.tx.StmtContext(w.ctx, st).QueryContext(w.ctx, args...)
	}
	return w.tx.QueryContext(w.ctx, query, args...)
}
