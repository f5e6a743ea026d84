package sqlite

import (
	"bytes"
	"context"
	"fmt"

	"time"

	"github.com/pipelined/pipelined/internal/store"
)

// Console users and sessions (store.ConsoleUsers). Users are written
// rarely, so their statements run unprepared; session reads happen on every
// console request and are prepared on first use on the read pool.
const (
	consoleUserCols     = `name, role, password_hash, disabled, created, updated`
	qConsoleUser        = `SELECT ` + consoleUserCols + ` FROM console_users WHERE name = ?`
	qConsoleUsers       = `SELECT ` + consoleUserCols + ` FROM console_users ORDER BY name`
	consoleSessionCols  = `id_hash, user_name, created, last_seen, expires`
	qConsoleSession     = `SELECT ` + consoleSessionCols + ` FROM console_sessions WHERE id_hash = ?`
	qConsoleSessionsDel = `DELETE FROM console_sessions WHERE user_name = ?`
)

func scanConsoleUser(row interface{ Scan(...any) error }) (store.ConsoleUser, error) {
	var (
		u                store.ConsoleUser
		disabled         int
		created, updated int64
	)
	if err := row.Scan(&u.Name, &u.Role, &u.PasswordHash, &disabled, &created, &updated); err != nil {
		return u, err
	}
	u.Disabled = disabled != 0
	u.Created, u.Updated = fromMillis(created), fromMillis(updated)
	return u, nil
}

func scanConsoleSession(row interface{ Scan(...any) error }) (store.ConsoleSession, error) {
	var (
		s                        store.ConsoleSession
		created, seen, expiresAt int64
	)
	if err := row.Scan(&s.IDHash, &s.User, &created, &seen, &expiresAt); err != nil {
		return s, err
	}
	s.Created, s.LastSeen, s.Expires = fromMillis(created), fromMillis(seen), fromMillis(expiresAt)
	return s, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// CreateConsoleUser stores a new user.
func (s *Store) CreateConsoleUser(ctx context.Context, u store.ConsoleUser) (store.ConsoleUser, error) {
	u.Created = now()
	u.Updated = u.Created
	err := s.write(ctx, func(w *wtx) error {
		_, err := w.exec(`INSERT INTO console_users (`+consoleUserCols+`) VALUES (?, ?, ?, ?, ?, ?)`,
			u.Name, u.Role, u.PasswordHash, boolInt(u.Disabled), toMillis(u.Created), toMillis(u.Updated))
		return err
	})
	if isUniqueViolation(err) {
		return store.ConsoleUser{}, fmt.Errorf("sqlite: create console user %q: %w", u.Name, store.ErrAlreadyExists)
	}
	if err != nil {
		return store.ConsoleUser{}, fmt.Errorf("sqlite: create console user %q: %w", u.Name, err)
	}
	return u, nil
}

// GetConsoleUser reads a user.
func (s *Store) GetConsoleUser(ctx context.Context, name string) (store.ConsoleUser, error) {
	u, err := scanConsoleUser(s.queryRow(ctx, qConsoleUser, name))
	if err != nil {
		return store.ConsoleUser{}, fmt.Errorf("sqlite: get console user %q: %w", name, notFound(err))
	}
	return u, nil
}

// ListConsoleUsers returns every user by name.
func (s *Store) ListConsoleUsers(ctx context.Context) ([]store.ConsoleUser, error) {
	rows, err := s.query(ctx, qConsoleUsers)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list console users: %w", err)
	}
	defer rows.Close()
	var out []store.ConsoleUser
	for rows.Next() {
		u, err := scanConsoleUser(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list console users: %w", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list console users: %w", err)
	}
	return out, nil
}

// UpdateConsoleUser applies fn in one write transaction.
func (s *Store) UpdateConsoleUser(ctx context.Context, name string, fn func(u *store.ConsoleUser) error) (store.ConsoleUser, error) {
	var out store.ConsoleUser
	var fnErr error
	err := s.write(ctx, func(w *wtx) error {
		old, err := scanConsoleUser(w.queryRow(qConsoleUser, name))
		if err != nil {
			return notFound(err)
		}
		u := old
		if fnErr = fn(&u); fnErr != nil {
			return fnErr
		}
		u.Name, u.Created, u.Updated = old.Name, old.Created, now()
		if _, err := w.exec(`UPDATE console_users SET role = ?, password_hash = ?, disabled = ?, updated = ? WHERE name = ?`,
			u.Role, u.PasswordHash, boolInt(u.Disabled), toMillis(u.Updated), name); err != nil {
			return err
		}
		if (u.Disabled && !old.Disabled) || u.PasswordHash != old.PasswordHash {
			if _, err := w.exec(qConsoleSessionsDel, name); err != nil {
				return err
			}
		}
		out = u
		return nil
	})
	if fnErr != nil {
		return store.ConsoleUser{}, fnErr
	}
	if err != nil {
		return store.ConsoleUser{}, fmt.Errorf("sqlite: update console user %q: %w", name, err)
	}
	return out, nil
}

// CreateConsoleSession stores a new session of an existing user.
func (s *Store) CreateConsoleSession(ctx context.Context, cs store.ConsoleSession) (store.ConsoleSession, error) {
	cs.Created = now()
	cs.LastSeen = cs.Created
	cs.Expires = cs.Expires.UTC().Truncate(time.Millisecond)
	cs.IDHash = bytes.Clone(cs.IDHash)
	err := s.write(ctx, func(w *wtx) error {
		var one int
		if err := w.queryRow(`SELECT 1 FROM console_users WHERE name = ?`, cs.User).Scan(&one); err != nil {
			return notFound(err)
		}
		_, err := w.exec(`INSERT INTO console_sessions (`+consoleSessionCols+`) VALUES (?, ?, ?, ?, ?)`,
			cs.IDHash, cs.User, toMillis(cs.Created), toMillis(cs.LastSeen), toMillis(cs.Expires))
		return err
	})
	if isUniqueViolation(err) {
		return store.ConsoleSession{}, fmt.Errorf("sqlite: create console session: %w", store.ErrAlreadyExists)
	}
	if err != nil {
		return store.ConsoleSession{}, fmt.Errorf("sqlite: create console session of %q: %w", cs.User, err)
	}
	return cs, nil
}

// GetConsoleSession reads a session by its id hash.
func (s *Store) GetConsoleSession(ctx context.Context, idHash []byte) (store.ConsoleSession, error) {
	cs, err := scanConsoleSession(s.queryRow(ctx, qConsoleSession, idHash))
	if err != nil {
		return store.ConsoleSession{}, fmt.Errorf("sqlite: get console session: %w", notFound(err))
	}
	return cs, nil
}

// TouchConsoleSession sets LastSeen to now.
func (s *Store) TouchConsoleSession(ctx context.Context, idHash []byte) error {
	err := s.write(ctx, func(w *wtx) error {
		res, err := w.exec(`UPDATE console_sessions SET last_seen = ? WHERE id_hash = ?`, toMillis(now()), idHash)
		if err != nil {
			return err
		}
		if n, err := rowsAffected(res); err != nil {
			return err
		} else if n == 0 {
			return store.ErrNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: touch console session: %w", err)
	}
	return nil
}

// DeleteConsoleSession deletes a session.
func (s *Store) DeleteConsoleSession(ctx context.Context, idHash []byte) error {
	err := s.write(ctx, func(w *wtx) error {
		_, err := w.exec(`DELETE FROM console_sessions WHERE id_hash = ?`, idHash)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: delete console session: %w", err)
	}
	return nil
}

// DeleteStaleConsoleSessions deletes expired and idle sessions.
func (s *Store) DeleteStaleConsoleSessions(ctx context.Context, at, idleBefore time.Time) (int, error) {
	var n int64
	err := s.write(ctx, func(w *wtx) error {
		res, err := w.exec(`DELETE FROM console_sessions WHERE expires < ? OR last_seen < ?`, toMillis(at), toMillis(idleBefore))
		if err != nil {
			return err
		}
		n, err = rowsAffected(res)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete stale console sessions: %w", err)
	}
	return int(n), nil
}
