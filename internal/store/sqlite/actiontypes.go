package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/pipelined/pipelined/internal/store"
)

// PutActionType creates, replaces or deletes (marks Deleted) an action type
// in one transaction. The store keeps Created from the stored one (now when
// there is none) and sets Updated to now; the key is always key.
func (s *Store) PutActionType(ctx context.Context, key store.ActionTypeKey, fn func(current *store.ActionType) (*store.ActionType, error)) (*store.ActionType, error) {
	var (
		out   *store.ActionType
		fnErr error
	)
	err := s.write(ctx, func(w *wtx) error {
		var current *store.ActionType
		at, err := scanActionType(w.queryRow(qActionType,
			key.Category, key.Owner, key.Provider, key.Version))
		switch {
		case err == nil:
			current = &at
		case !errors.Is(err, sql.ErrNoRows):
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
		n.Updated = now()
		n.Created = n.Updated
		if current != nil {
			n.Created = current.Created
			if n.Updated.Before(current.Updated) {
				n.Updated = current.Updated
			}
		}
		n.Definition = blob(n.Definition)
		if _, err := w.exec(qActionTypePut,
			key.Category, key.Owner, key.Provider, key.Version, n.Deleted,
			toMillis(n.Created), toMillis(n.Updated), n.Definition); err != nil {
			return err
		}
		out = &n
		return nil
	})
	if fnErr != nil {
		return nil, fnErr
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: put action type %v: %w", key, err)
	}
	return out, nil
}

// GetActionType returns an action type, deleted ones included.
func (s *Store) GetActionType(ctx context.Context, key store.ActionTypeKey) (store.ActionType, error) {
	at, err := scanActionType(s.queryRow(ctx, qActionType,
		key.Category, key.Owner, key.Provider, key.Version))
	if err != nil {
		return store.ActionType{}, fmt.Errorf("sqlite: get action type %v: %w", key, notFound(err))
	}
	return at, nil
}

// ListActionTypes returns up to limit action types that are not deleted, of
// owner ("" for all), ordered by (Category, Owner, Provider, Version) in
// byte order, after the given key (nil: from the start).
func (s *Store) ListActionTypes(ctx context.Context, owner string, after *store.ActionTypeKey, limit int) ([]store.ActionType, error) {
	if limit <= 0 {
		return nil, nil
	}
	var (
		where = []string{"deleted = 0"}
		args  []any
	)
	if owner != "" {
		where = append(where, "owner = ?")
		args = append(args, owner)
	}
	if after != nil {
		where = append(where, "(category, owner, provider, version) > (?, ?, ?, ?)")
		args = append(args, after.Category, after.Owner, after.Provider, after.Version)
	}
	args = append(args, limit)
	q := `SELECT ` + actionTypeCols + ` FROM action_types WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY category, owner, provider, version LIMIT ?`

	// At most four distinct query texts; each is prepared once.
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list action types: %w", err)
	}
	defer rows.Close()
	var out []store.ActionType
	for rows.Next() {
		at, err := scanActionType(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list action types: %w", err)
		}
		out = append(out, at)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list action types: %w", err)
	}
	return out, nil
}

// scanner is *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// scanActionType reads one row of actionTypeCols.
func scanActionType(row scanner) (store.ActionType, error) {
	var (
		at               store.ActionType
		created, updated int64
	)
	if err := row.Scan(&at.Category, &at.Owner, &at.Provider, &at.Version, &at.Deleted,
		&created, &updated, &at.Definition); err != nil {
		return store.ActionType{}, err
	}
	at.Created, at.Updated = fromMillis(created), fromMillis(updated)
	return at, nil
}
