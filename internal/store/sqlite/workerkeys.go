package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/pipelined/pipelined/internal/store"
)

// Worker keys (store.WorkerKeys). As with the third-party clients, the
// queries are not in writeQueries: keys are written rarely (an operator
// issues or revokes one), so the writes run unprepared; the reads are
// prepared on first use on the read pool.
const (
	workerKeyCols = `access_key_id, sealed_secret, category, owner, provider, version,
		description, created, revoked`
	qWorkerKeyInsert = `INSERT INTO worker_keys (` + workerKeyCols + `)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)`
	qWorkerKey       = `SELECT ` + workerKeyCols + ` FROM worker_keys WHERE access_key_id = ?`
	qWorkerKeyRevoke = `UPDATE worker_keys SET revoked = ? WHERE access_key_id = ? AND revoked IS NULL`
	qWorkerKeys      = `SELECT ` + workerKeyCols + ` FROM worker_keys ORDER BY created, access_key_id`
)

func scanWorkerKey(row interface{ Scan(...any) error }) (store.WorkerKey, error) {
	var (
		k       store.WorkerKey
		created int64
		revoked sql.NullInt64
	)
	err := row.Scan(&k.AccessKeyID, &k.SealedSecret,
		&k.ActionType.Category, &k.ActionType.Owner, &k.ActionType.Provider, &k.ActionType.Version,
		&k.Description, &created, &revoked)
	if err != nil {
		return k, err
	}
	k.Created = fromMillis(created)
	if revoked.Valid {
		k.Revoked = fromMillis(revoked.Int64)
	}
	return k, nil
}

// CreateWorkerKey stores a new active key.
func (s *Store) CreateWorkerKey(ctx context.Context, k store.WorkerKey) (store.WorkerKey, error) {
	k.Created, k.Revoked = now(), time.Time{}
	err := s.write(ctx, func(w *wtx) error {
		_, err := w.exec(qWorkerKeyInsert, k.AccessKeyID, k.SealedSecret,
			k.ActionType.Category, k.ActionType.Owner, k.ActionType.Provider, k.ActionType.Version,
			k.Description, toMillis(k.Created))
		return err
	})
	if isUniqueViolation(err) {
		return store.WorkerKey{}, fmt.Errorf("sqlite: create worker key %q: %w", k.AccessKeyID, store.ErrAlreadyExists)
	}
	if err != nil {
		return store.WorkerKey{}, fmt.Errorf("sqlite: create worker key %q: %w", k.AccessKeyID, err)
	}
	return k, nil
}

// GetWorkerKey reads a key, revoked ones included.
func (s *Store) GetWorkerKey(ctx context.Context, accessKeyID string) (store.WorkerKey, error) {
	k, err := scanWorkerKey(s.queryRow(ctx, qWorkerKey, accessKeyID))
	if err != nil {
		return store.WorkerKey{}, fmt.Errorf("sqlite: get worker key %q: %w", accessKeyID, notFound(err))
	}
	return k, nil
}

// ListWorkerKeys returns every key, by Created then AccessKeyID.
func (s *Store) ListWorkerKeys(ctx context.Context) ([]store.WorkerKey, error) {
	rows, err := s.query(ctx, qWorkerKeys)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list worker keys: %w", err)
	}
	defer rows.Close()
	var out []store.WorkerKey
	for rows.Next() {
		k, err := scanWorkerKey(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list worker keys: %w", err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list worker keys: %w", err)
	}
	return out, nil
}

// RevokeWorkerKey revokes a key; revoking a revoked one changes nothing.
func (s *Store) RevokeWorkerKey(ctx context.Context, accessKeyID string) (store.WorkerKey, error) {
	var k store.WorkerKey
	err := s.write(ctx, func(w *wtx) error {
		if _, err := w.exec(qWorkerKeyRevoke, toMillis(now()), accessKeyID); err != nil {
			return err
		}
		var err error
		k, err = scanWorkerKey(w.queryRow(qWorkerKey, accessKeyID))
		return err
	})
	if err != nil {
		return store.WorkerKey{}, fmt.Errorf("sqlite: revoke worker key %q: %w", accessKeyID, notFound(err))
	}
	return k, nil
}
