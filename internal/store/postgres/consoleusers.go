package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pipelined/pipelined/internal/store"
)

// Console users and sessions (store.ConsoleUsers). Created, Updated and
// LastSeen come from the database clock; Expires is the caller's.
const (
	consoleUserCols    = `name, role, password_hash, disabled, created, updated`
	consoleSessionCols = `id_hash, user_name, created, last_seen, expires`
)

func scanConsoleUser(row pgx.Row) (store.ConsoleUser, error) {
	var u store.ConsoleUser
	if err := row.Scan(&u.Name, &u.Role, &u.PasswordHash, &u.Disabled, &u.Created, &u.Updated); err != nil {
		return u, err
	}
	u.Created, u.Updated = utc(u.Created), utc(u.Updated)
	return u, nil
}

func scanConsoleSession(row pgx.Row) (store.ConsoleSession, error) {
	var s store.ConsoleSession
	if err := row.Scan(&s.IDHash, &s.User, &s.Created, &s.LastSeen, &s.Expires); err != nil {
		return s, err
	}
	s.Created, s.LastSeen, s.Expires = utc(s.Created), utc(s.LastSeen), utc(s.Expires)
	return s, nil
}

// CreateConsoleUser stores a new user.
func (s *Store) CreateConsoleUser(ctx context.Context, u store.ConsoleUser) (store.ConsoleUser, error) {
	out, err := scanConsoleUser(s.pool.QueryRow(ctx, `INSERT INTO console_users
		(name, role, password_hash, disabled) VALUES ($1, $2, $3, $4) RETURNING `+consoleUserCols,
		u.Name, u.Role, u.PasswordHash, u.Disabled))
	if isUniqueViolation(err) {
		return store.ConsoleUser{}, fmt.Errorf("postgres: create console user %q: %w", u.Name, store.ErrAlreadyExists)
	}
	if err != nil {
		return store.ConsoleUser{}, fmt.Errorf("postgres: create console user %q: %w", u.Name, mapErr(err))
	}
	return out, nil
}

// GetConsoleUser reads a user.
func (s *Store) GetConsoleUser(ctx context.Context, name string) (store.ConsoleUser, error) {
	u, err := scanConsoleUser(s.pool.QueryRow(ctx, `SELECT `+consoleUserCols+` FROM console_users WHERE name = $1`, name))
	if err != nil {
		return store.ConsoleUser{}, fmt.Errorf("postgres: get console user %q: %w", name, mapErr(err))
	}
	return u, nil
}

// ListConsoleUsers returns every user by name.
func (s *Store) ListConsoleUsers(ctx context.Context) ([]store.ConsoleUser, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+consoleUserCols+` FROM console_users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("postgres: list console users: %w", mapErr(err))
	}
	defer rows.Close()
	var out []store.ConsoleUser
	for rows.Next() {
		u, err := scanConsoleUser(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: list console users: %w", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list console users: %w", mapErr(err))
	}
	return out, nil
}

// UpdateConsoleUser applies fn under the user's row lock.
func (s *Store) UpdateConsoleUser(ctx context.Context, name string, fn func(u *store.ConsoleUser) error) (store.ConsoleUser, error) {
	var out store.ConsoleUser
	var fnErr error
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		old, err := scanConsoleUser(tx.QueryRow(ctx, `SELECT `+consoleUserCols+` FROM console_users WHERE name = $1 FOR UPDATE`, name))
		if err != nil {
			return err
		}
		u := old
		if fnErr = fn(&u); fnErr != nil {
			return fnErr
		}
		out, err = scanConsoleUser(tx.QueryRow(ctx, `UPDATE console_users
			SET role = $2, password_hash = $3, disabled = $4, updated = now() WHERE name = $1
			RETURNING `+consoleUserCols, name, u.Role, u.PasswordHash, u.Disabled))
		if err != nil {
			return err
		}
		if (u.Disabled && !old.Disabled) || u.PasswordHash != old.PasswordHash {
			if _, err := tx.Exec(ctx, `DELETE FROM console_sessions WHERE user_name = $1`, name); err != nil {
				return err
			}
		}
		return nil
	})
	if fnErr != nil {
		return store.ConsoleUser{}, fnErr
	}
	if err != nil {
		return store.ConsoleUser{}, fmt.Errorf("postgres: update console user %q: %w", name, mapErr(err))
	}
	return out, nil
}

// CreateConsoleSession stores a new session of an existing user.
func (s *Store) CreateConsoleSession(ctx context.Context, cs store.ConsoleSession) (store.ConsoleSession, error) {
	out, err := scanConsoleSession(s.pool.QueryRow(ctx, `INSERT INTO console_sessions (id_hash, user_name, expires)
		SELECT $1, name, $3 FROM console_users WHERE name = $2
		RETURNING `+consoleSessionCols, cs.IDHash, cs.User, cs.Expires.UTC()))
	switch {
	case isUniqueViolation(err):
		return store.ConsoleSession{}, fmt.Errorf("postgres: create console session: %w", store.ErrAlreadyExists)
	case errors.Is(err, pgx.ErrNoRows):
		return store.ConsoleSession{}, fmt.Errorf("postgres: create console session of %q: %w", cs.User, store.ErrNotFound)
	case err != nil:
		return store.ConsoleSession{}, fmt.Errorf("postgres: create console session of %q: %w", cs.User, mapErr(err))
	}
	return out, nil
}

// GetConsoleSession reads a session by its id hash.
func (s *Store) GetConsoleSession(ctx context.Context, idHash []byte) (store.ConsoleSession, error) {
	cs, err := scanConsoleSession(s.pool.QueryRow(ctx, `SELECT `+consoleSessionCols+` FROM console_sessions WHERE id_hash = $1`, idHash))
	if err != nil {
		return store.ConsoleSession{}, fmt.Errorf("postgres: get console session: %w", mapErr(err))
	}
	return cs, nil
}

// TouchConsoleSession sets LastSeen to now.
func (s *Store) TouchConsoleSession(ctx context.Context, idHash []byte) error {
	tag, err := s.pool.Exec(ctx, `UPDATE console_sessions SET last_seen = now() WHERE id_hash = $1`, idHash)
	if err != nil {
		return fmt.Errorf("postgres: touch console session: %w", mapErr(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: touch console session: %w", store.ErrNotFound)
	}
	return nil
}

// DeleteConsoleSession deletes a session.
func (s *Store) DeleteConsoleSession(ctx context.Context, idHash []byte) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM console_sessions WHERE id_hash = $1`, idHash); err != nil {
		return fmt.Errorf("postgres: delete console session: %w", mapErr(err))
	}
	return nil
}

// DeleteStaleConsoleSessions deletes expired and idle sessions.
func (s *Store) DeleteStaleConsoleSessions(ctx context.Context, at, idleBefore time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM console_sessions WHERE expires < $1 OR last_seen < $2`, at.UTC(), idleBefore.UTC())
	if err != nil {
		return 0, fmt.Errorf("postgres: delete stale console sessions: %w", mapErr(err))
	}
	return int(tag.RowsAffected()), nil
}
