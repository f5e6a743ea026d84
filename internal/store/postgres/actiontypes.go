package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/pipelined/pipelined/internal/store"
)

const (
	actionTypeCols = `category, owner, provider, version, deleted, created, updated, definition`
	qActionType    = `SELECT ` + actionTypeCols + ` FROM action_types
		WHERE category = $1 AND owner = $2 AND provider = $3 AND version = $4`
)

// PutActionType creates, replaces or deletes (marks Deleted) an action type
// in one transaction. The store keeps Created from the stored one (now when
// there is none) and sets Updated to now; the key is always key.
//
// Concurrent puts of one key (also from other replicas) queue on a
// transaction-scoped advisory lock taken before the read, so each fn sees
// what the previous one stored, even when the key did not exist yet.
func (s *Store) PutActionType(ctx context.Context, key store.ActionTypeKey, fn func(current *store.ActionType) (*store.ActionType, error)) (*store.ActionType, error) {
	var (
		out   *store.ActionType
		fnErr error
	)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := lockKey(ctx, tx, advisoryClassActionTypes, store.ActionTypeResource(key)); err != nil {
			return err
		}
		var current *store.ActionType
		at, err := scanActionType(tx.QueryRow(ctx, qActionType,
			key.Category, key.Owner, key.Provider, key.Version))
		switch {
		case err == nil:
			current = &at
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}

		var arg *store.ActionType
		if current != nil {
			c := *current // fn may keep or change its argument freely
			arg = &c
		}
		next, err := fn(arg)
		if err != nil {
			fnErr = err
			return err
		}
		if next == nil {
			out = current
			return nil
		}

		n := *next
		n.ActionTypeKey = key
		n.Definition = blob(n.Definition)
		// On insert created = updated = now(); on update created stays and
		// updated never goes back, even if the database clock does.
		if err := tx.QueryRow(ctx, `INSERT INTO action_types (`+actionTypeCols+`)
			VALUES ($1, $2, $3, $4, $5, now(), now(), $6)
			ON CONFLICT (category, owner, provider, version) DO UPDATE SET
				deleted = excluded.deleted,
				updated = greatest(excluded.updated, action_types.updated),
				definition = excluded.definition
			RETURNING created, updated`,
			key.Category, key.Owner, key.Provider, key.Version, n.Deleted, n.Definition,
		).Scan(&n.Created, &n.Updated); err != nil {
			return err
		}
		n.Created, n.Updated = utc(n.Created), utc(n.Updated)
		out = &n
		return nil
	})
	if fnErr != nil {
		// fn's own error, as fn returned it.
		return nil, fnErr
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: put action type %v: %w", key, mapErr(err))
	}
	return out, nil
}

// GetActionType returns an action type, deleted ones included.
func (s *Store) GetActionType(ctx context.Context, key store.ActionTypeKey) (store.ActionType, error) {
	at, err := scanActionType(s.pool.QueryRow(ctx, qActionType,
		key.Category, key.Owner, key.Provider, key.Version))
	if err != nil {
		return store.ActionType{}, fmt.Errorf("postgres: get action type %v: %w", key, mapErr(err))
	}
	return at, nil
}

// ListActionTypes returns up to limit action types that are not deleted, of
// owner ("" for all), ordered by (Category, Owner, Provider, Version) in
// byte order, after the given key (nil: from the start). The row comparison
// follows the primary key's order, so a page is one index range scan.
func (s *Store) ListActionTypes(ctx context.Context, owner string, after *store.ActionTypeKey, limit int) ([]store.ActionType, error) {
	if limit <= 0 {
		return nil, nil
	}
	q := `SELECT ` + actionTypeCols + ` FROM action_types
		WHERE NOT deleted AND ($1 = '' OR owner = $1)`
	args := []any{owner}
	if after != nil {
		q += ` AND (category, owner, provider, version) > ($2, $3, $4, $5)`
		args = append(args, after.Category, after.Owner, after.Provider, after.Version)
	}
	q += fmt.Sprintf(` ORDER BY category, owner, provider, version LIMIT $%d`, len(args)+1)
	args = append(args, limit)

	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: list action types: %w", mapErr(err))
	}
	defer rows.Close()
	var out []store.ActionType
	for rows.Next() {
		at, err := scanActionType(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: list action types: %w", mapErr(err))
		}
		out = append(out, at)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list action types: %w", mapErr(err))
	}
	return out, nil
}

// scanActionType reads one row of actionTypeCols from a pgx.Row or pgx.Rows.
func scanActionType(row pgx.Row) (store.ActionType, error) {
	var at store.ActionType
	if err := row.Scan(&at.Category, &at.Owner, &at.Provider, &at.Version, &at.Deleted,
		&at.Created, &at.Updated, &at.Definition); err != nil {
		return store.ActionType{}, err
	}
	at.Created, at.Updated = utc(at.Created), utc(at.Updated)
	return at, nil
}
