package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pipelined/pipelined/internal/store"
)

// Worker keys (store.WorkerKeys). Created and Revoked come from the
// database clock; SealedSecret is kept as given.
const workerKeyCols = `access_key_id, sealed_secret, category, owner, provider, version,
	description, created, revoked`

func scanWorkerKey(row pgx.Row) (store.WorkerKey, error) {
	var (
		k       store.WorkerKey
		revoked *time.Time
	)
	err := row.Scan(&k.AccessKeyID, &k.SealedSecret,
		&k.ActionType.Category, &k.ActionType.Owner, &k.ActionType.Provider, &k.ActionType.Version,
		&k.Description, &k.Created, &revoked)
	if err != nil {
		return k, err
	}
	k.Created = utc(k.Created)
	if revoked != nil {
		k.Revoked = utc(*revoked)
	}
	return k, nil
}

// CreateWorkerKey stores a new active key.
func (s *Store) CreateWorkerKey(ctx context.Context, k store.WorkerKey) (store.WorkerKey, error) {
	out, err := scanWorkerKey(s.pool.QueryRow(ctx, `INSERT INTO worker_keys
		(access_key_id, sealed_secret, category, owner, provider, version, description, created, revoked)
		VALUES ($1, $2, $3, $4, $5, $6, $7, now(), NULL)
		RETURNING `+workerKeyCols,
		k.AccessKeyID, k.SealedSecret,
		k.ActionType.Category, k.ActionType.Owner, k.ActionType.Provider, k.ActionType.Version,
		k.Description))
	if isUniqueViolation(err) {
		return store.WorkerKey{}, fmt.Errorf("postgres: create worker key %q: %w", k.AccessKeyID, store.ErrAlreadyExists)
	}
	if err != nil {
		return store.WorkerKey{}, fmt.Errorf("postgres: create worker key %q: %w", k.AccessKeyID, mapErr(err))
	}
	return out, nil
}

// GetWorkerKey reads a key, revoked ones included.
func (s *Store) GetWorkerKey(ctx context.Context, accessKeyID string) (store.WorkerKey, error) {
	k, err := scanWorkerKey(s.pool.QueryRow(ctx,
		`SELECT `+workerKeyCols+` FROM worker_keys WHERE access_key_id = $1`, accessKeyID))
	if err != nil {
		return store.WorkerKey{}, fmt.Errorf("postgres: get worker key %q: %w", accessKeyID, mapErr(err))
	}
	return k, nil
}

// ListWorkerKeys returns every key, by Created then AccessKeyID.
func (s *Store) ListWorkerKeys(ctx context.Context) ([]store.WorkerKey, error) {
	rows, err := s.pool.Query(ctx,
		`SELECT `+workerKeyCols+` FROM worker_keys ORDER BY created, access_key_id`)
	if err != nil {
		return nil, fmt.Errorf("postgres: list worker keys: %w", mapErr(err))
	}
	defer rows.Close()
	var out []store.WorkerKey
	for rows.Next() {
		k, err := scanWorkerKey(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: list worker keys: %w", err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list worker keys: %w", mapErr(err))
	}
	return out, nil
}

// RevokeWorkerKey revokes a key; revoking a revoked one changes nothing.
// One statement that always updates the row, keeping a Revoked already
// set: of two concurrent revokes, the second waits for the first and
// re-reads the row it committed (READ COMMITTED), so both return the same
// Revoked time (a CTE that updates only active keys and otherwise reads
// the table would read the second's older snapshot: an active key).
func (s *Store) RevokeWorkerKey(ctx context.Context, accessKeyID string) (store.WorkerKey, error) {
	k, err := scanWorkerKey(s.pool.QueryRow(ctx, `UPDATE worker_keys SET revoked = COALESCE(revoked, now())
		WHERE access_key_id = $1
		RETURNING `+workerKeyCols, accessKeyID))
	if err != nil {
		return store.WorkerKey{}, fmt.Errorf("postgres: revoke worker key %q: %w", accessKeyID, mapErr(err))
	}
	return k, nil
}
