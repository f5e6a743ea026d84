// Package sqlite is the embedded implementation of store.Store, on
// modernc.org/sqlite (pure Go, no cgo).
//
// One Store is meant for one process. Several handles on the same file in
// the same process (a restart, tests) share notifications; handles in other
// processes share the data but not the notifications, which the store
// contract allows (Listen is a hint; listeners also poll).
//
// Connections: a pool of read-only connections serves the reads (WAL lets
// them run alongside the writer), and a pool of exactly one connection serves
// every write. SQLite allows one writer at a time anyway; queueing writers
// for one goroutine that commits them in groups (writer.go) is cheaper and
// fairer than letting them spin on SQLITE_BUSY. Write transactions start with BEGIN IMMEDIATE, so
// a handle in another process (or a second handle in this one) waits for the
// write lock up front, under busy_timeout, instead of failing when a read
// transaction tries to upgrade. A consequence: the callbacks of
// UpdatePipeline, UpdateTags and PutActionType run while the write lock is
// held, so they must be quick (as the store contract already requires them
// to be free of side effects). In exchange UpdatePipeline never returns
// store.ErrConflict here: concurrent updates queue.
//
// Every query is prepared once per pool (queries.go, stmts.go): GetPipeline,
// the server's hot path, is one prepared statement on the read pool.
//
// Clock: timestamps come from this process's clock (time.Now), truncated to
// the millisecond and stored as integer unix milliseconds, UTC.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/pipelined/pipelined/internal/store"
)

// busyTimeout is how long a connection waits for another connection's lock
// (in practice: another handle's write transaction) before SQLITE_BUSY. It
// only matters across handles; in one handle writers queue in the pool.
const busyTimeout = 10 * time.Second

// Store is a store.Store on one SQLite database file.
type Store struct {
	path string // cleaned absolute path; the key of the shared hub
	rdb  *sql.DB
	wdb  *sql.DB
	hub  *hub

	// Prepared statements of each pool, by query text.
	reads, writes stmtCache

	// done is closed by Close; it ends this handle's listeners.
	done      chan struct{}
	closeOnce sync.Once
	// cdb is the checkpointer's own connection; checkpointerDone closes
	// when its goroutine has returned.
	cdb              *sql.DB
	checkpointerDone chan struct{}
	closeErr         error

	// The writer goroutine (writer.go): every write goes through it.
	writerState
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the database at path and applies
// migrations. path is a file path; in-memory databases are not supported,
// because the read and write pools must see the same database.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("sqlite: open %q: want a file path", path)
	}
	// The driver splits its DSN at the first '?'.
	if strings.Contains(path, "?") {
		return nil, fmt.Errorf("sqlite: open %q: path must not contain '?'", path)
	}
	abs, err := canonicalPath(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %q: %w", path, err)
	}

	if err := restrictFileMode(abs); err != nil {
		return nil, fmt.Errorf("sqlite: open %q: %w", path, err)
	}
	s := &Store{path: abs, done: make(chan struct{})}
	s.hub = acquireHub(abs)
	if err := s.open(ctx); err != nil {
		// Close what was opened; the open error is the one worth reporting.
		_ = s.Close()
		return nil, fmt.Errorf("sqlite: open %q: %w", path, err)
	}
	return s, nil
}

func (s *Store) open(ctx context.Context) error {
	var err error
	s.wdb, err = sql.Open("sqlite", dsn(s.path, false))
	if err != nil {
		return err
	}
	s.wdb.SetMaxOpenConns(1)
	s.wdb.SetMaxIdleConns(1)
	s.wdb.SetConnMaxIdleTime(0)
	s.wdb.SetConnMaxLifetime(0)

	// The first connection creates the file and switches it to WAL; the
	// readers are opened after that and after the migrations, so they never
	// see a half-made schema.
	if err := s.wdb.PingContext(ctx); err != nil {
		return err
	}
	if err := s.hub.migrate(ctx, s.wdb); err != nil {
		return err
	}
	s.writes.db = s.wdb
	if err := s.writes.prepareAll(ctx, writeQueries); err != nil {
		return err
	}
	s.startWriter()

	s.rdb, err = sql.Open("sqlite", dsn(s.path, true))
	if err != nil {
		return err
	}
	n := max(4, runtime.GOMAXPROCS(0))
	s.rdb.SetMaxOpenConns(n)
	s.rdb.SetMaxIdleConns(n)
	s.rdb.SetConnMaxIdleTime(0)
	s.rdb.SetConnMaxLifetime(0)
	s.reads.db = s.rdb
	// The hot reads are prepared now, so that the first request does not
	// pay for it; the rest on first use.
	if err := s.reads.prepareAll(ctx, []string{qPipelineLatest, qPipelineVersion, qPipelineList}); err != nil {
		return err
	}
	return s.startCheckpointer()
}

// checkpointInterval is how often the background checkpointer copies the
// WAL into the database file.
const checkpointInterval = 250 * time.Millisecond

// startCheckpointer moves WAL checkpoints out of requests. SQLite's
// automatic checkpoint runs inside the commit that fills the WAL past its
// threshold, and its fsync (3-4 ms here) then lands in that request's
// latency; the write connection has wal_autocheckpoint off, and a dedicated
// connection runs PASSIVE checkpoints (which never block writers) in the
// background instead.
func (s *Store) startCheckpointer() error {
	var err error
	s.cdb, err = sql.Open("sqlite", dsn(s.path, false))
	if err != nil {
		return err
	}
	s.cdb.SetMaxOpenConns(1)
	s.cdb.SetMaxIdleConns(1)
	s.checkpointerDone = make(chan struct{})
	go func() {
		defer close(s.checkpointerDone)
		t := time.NewTicker(checkpointInterval)
		defer t.Stop()
		for {
			select {
			case <-s.done:
				return
			case <-t.C:
				// Busy (another checkpoint, a reader pinning the WAL) is
				// fine: the next tick tries again.
				_, _ = s.cdb.Exec("PRAGMA wal_checkpoint(PASSIVE)")
			}
		}
	}()
	return nil
}

// canonicalPath returns the cleaned absolute path of the database file,
// with the directory's symbolic links resolved: the key under which handles
// on the same file share notifications. (The file itself may not exist
// yet.)
func canonicalPath(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	dir, file := filepath.Split(abs)
	if resolved, err := filepath.EvalSymlinks(dir); err == nil {
		abs = filepath.Join(resolved, file)
	}
	return abs, nil
}

// dsn builds the driver's data source name for path. Readers get
// query_only, so a read that slips into the read pool by mistake fails
// loudly instead of racing the writer; the writer gets _txlock=immediate.
func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	// NORMAL is durable against application crashes in WAL mode; a power
	// loss may roll back the last transactions, never corrupt the file.
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(1)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Set("_txlock", "immediate")
		// Checkpoints run in the background (startCheckpointer).
		q.Add("_pragma", "wal_autocheckpoint(0)")
	}
	return path + "?" + q.Encode()
}

// Close ends this handle's listeners and closes its connections. It is safe
// to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.done)
		if s.checkpointerDone != nil {
			<-s.checkpointerDone
		}
		if s.writerDone != nil {
			<-s.writerDone // after its batch in flight
		}
		s.hub.unsubscribeAll(s)
		var errs []error
		if s.cdb != nil {
			// A last checkpoint, so that the WAL does not outgrow its
			// usual size between runs.
			_, _ = s.cdb.Exec("PRAGMA wal_checkpoint(PASSIVE)")
			errs = append(errs, s.cdb.Close())
		}
		errs = append(errs, s.reads.close(), s.writes.close())
		if s.rdb != nil {
			errs = append(errs, s.rdb.Close())
		}
		if s.wdb != nil {
			errs = append(errs, s.wdb.Close())
		}
		releaseHub(s.path)
		if err := errors.Join(errs...); err != nil {
			s.closeErr = fmt.Errorf("sqlite: close: %w", err)
		}
	})
	return s.closeErr
}

// Ping checks that the database answers on both pools.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.rdb.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	if err := s.wdb.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	return nil
}

// now is the store's clock: Go's, at the precision the schema keeps, so a
// value returned from a write equals the value read back later.
func now() time.Time {
	return time.Now().UTC().Truncate(time.Millisecond)
}

// toMillis and fromMillis convert between time.Time and the stored integer.
func toMillis(t time.Time) int64 { return t.UnixMilli() }

func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// blob returns b, or an empty slice for nil: the BLOB columns are NOT NULL.
func blob(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// isUniqueViolation reports whether err is a PRIMARY KEY or UNIQUE
// constraint failure.
func isUniqueViolation(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() {
	case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
		return true
	}
	return false
}

// notFound maps sql.ErrNoRows to store.ErrNotFound and leaves other errors.
func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	return err
}

// rowsAffected returns how many rows res changed.
func rowsAffected(res sql.Result) (int64, error) {
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("rows affected: %w", err)
	}
	return n, nil
}
