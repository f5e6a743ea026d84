package server

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/pipelined/pipelined/internal/dirlock"
)

// DataDirLockFile is the lock file a SQLite-backed server holds in its data
// dir for as long as it runs.
const DataDirLockFile = "pipelined.lock"

// sqlitePath is the SQLite database file cfg selects, or "" when the store
// is PostgreSQL (or the scheme is unsupported, which openStore reports).
func sqlitePath(cfg Config) string {
	db := cfg.Database
	switch {
	case strings.HasPrefix(db, "postgres://"), strings.HasPrefix(db, "postgresql://"):
		return ""
	case db == "":
		return filepath.Join(cfg.DataDir, "pipelined.db")
	case strings.HasPrefix(db, "sqlite://"):
		return strings.TrimPrefix(db, "sqlite://")
	case strings.Contains(db, "://"):
		return ""
	}
	return db
}

// dataLocks keeps a second process off what a SQLite-backed server does
// not share: the data dir (master key, credentials, embedded artifacts) and
// the database file, which each process caches. Both are locked, since two
// processes may share one without the other (two data dirs naming one
// --database file). PostgreSQL deployments lock nothing: replicas share the
// database by design and keep no state in the data dir that another
// replica's writes would make stale.
type dataLocks []*dirlock.Lock

func lockData(cfg Config) (dataLocks, error) {
	db := sqlitePath(cfg)
	if db == "" {
		return nil, nil
	}
	paths := []string{filepath.Join(canonicalDir(cfg.DataDir), DataDirLockFile)}
	if p := canonical(db) + ".lock"; p != paths[0] {
		paths = append(paths, p)
	}
	var locks dataLocks
	for _, p := range paths {
		l, err := dirlock.Acquire(p)
		if err != nil {
			locks.release()
			var held *dirlock.HeldError
			if errors.As(err, &held) {
				return nil, fmt.Errorf("another pipelined serves this SQLite data dir or database: %w; "+
					"stop it, or give this process its own --data-dir and --database (to run several processes on one database, use PostgreSQL)", err)
			}
			return nil, err
		}
		locks = append(locks, l)
	}
	return locks, nil
}

func (ls dataLocks) release() {
	for i := len(ls) - 1; i >= 0; i-- {
		_ = ls[i].Release()
	}
}

// canonical is path made absolute with its directory's symlinks resolved, so
// that two spellings of one file take one lock.
func canonical(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return path
	}
	dir, file := filepath.Split(abs)
	if resolved, err := filepath.EvalSymlinks(dir); err == nil {
		return filepath.Join(resolved, file)
	}
	return abs
}

// canonicalDir is an existing directory's absolute path, symlinks resolved.
func canonicalDir(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return dir
	}
	if resolved, err := filepath.EvalSymlinks(abs); err == nil {
		return resolved
	}
	return abs
}
