package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/pipelined/pipelined/internal/store"
)

// Git hosts and connections (store.GitConnections). Times come from the
// database clock; SealedCredentials and VPC are kept as given.
const (
	gitHostCols       = `id, name, provider_type, endpoint, vpc, created`
	gitConnCols       = `id, name, provider_type, host_id, status, sealed_credentials, created, updated`
	gitListLimitBound = 1000
)

func scanGitHost(row pgx.Row) (store.GitHost, error) {
	var h store.GitHost
	if err := row.Scan(&h.ID, &h.Name, &h.ProviderType, &h.Endpoint, &h.VPC, &h.Created); err != nil {
		return h, err
	}
	h.Created = utc(h.Created)
	return h, nil
}

func scanGitConn(row pgx.Row) (store.GitConnection, error) {
	var c store.GitConnection
	if err := row.Scan(&c.ID, &c.Name, &c.ProviderType, &c.HostID, &c.Status, &c.SealedCredentials, &c.Created, &c.Updated); err != nil {
		return c, err
	}
	c.Created, c.Updated = utc(c.Created), utc(c.Updated)
	return c, nil
}

func boundLimit(limit int) int {
	if limit <= 0 || limit > gitListLimitBound {
		return gitListLimitBound
	}
	return limit
}

// CreateGitHost stores a host with its tags.
func (s *Store) CreateGitHost(ctx context.Context, h store.GitHost, tags []store.Tag) (store.GitHost, error) {
	var out store.GitHost
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		out, err = scanGitHost(tx.QueryRow(ctx, `INSERT INTO git_hosts (id, name, provider_type, endpoint, vpc, created)
			VALUES ($1, $2, $3, $4, $5, now()) RETURNING `+gitHostCols, h.ID, h.Name, h.ProviderType, h.Endpoint, h.VPC))
		if err != nil {
			return err
		}
		return replaceTags(ctx, tx, store.GitHostResource(h.ID), tags)
	})
	if isUniqueViolation(err) {
		return store.GitHost{}, fmt.Errorf("postgres: create git host %q: %w", h.ID, store.ErrAlreadyExists)
	}
	if err != nil {
		return store.GitHost{}, fmt.Errorf("postgres: create git host %q: %w", h.ID, mapErr(err))
	}
	return out, nil
}

// GetGitHost reads a host.
func (s *Store) GetGitHost(ctx context.Context, id string) (store.GitHost, error) {
	h, err := scanGitHost(s.pool.QueryRow(ctx, `SELECT `+gitHostCols+` FROM git_hosts WHERE id = $1`, id))
	if err != nil {
		return store.GitHost{}, fmt.Errorf("postgres: get git host %q: %w", id, mapErr(err))
	}
	return h, nil
}

// ListGitHosts lists hosts in ID order after the given ID.
func (s *Store) ListGitHosts(ctx context.Context, after string, limit int) ([]store.GitHost, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+gitHostCols+` FROM git_hosts WHERE id > $1 ORDER BY id LIMIT $2`, after, boundLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("postgres: list git hosts: %w", mapErr(err))
	}
	defer rows.Close()
	out := []store.GitHost{}
	for rows.Next() {
		h, err := scanGitHost(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: list git hosts: %w", mapErr(err))
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list git hosts: %w", mapErr(err))
	}
	return out, nil
}

// DeleteGitHost deletes a host that no connection uses, and its tags. The
// host row is locked first, so a connection created concurrently on it
// (which locks it too, FOR SHARE) either commits before and is seen, or
// waits and then finds the host gone.
func (s *Store) DeleteGitHost(ctx context.Context, id string) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var got string
		if err := tx.QueryRow(ctx, `SELECT id FROM git_hosts WHERE id = $1 FOR UPDATE`, id).Scan(&got); err != nil {
			return err
		}
		var inUse bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM git_connections WHERE host_id = $1)`, id).Scan(&inUse); err != nil {
			return err
		}
		if inUse {
			return store.ErrConflict
		}
		if _, err := tx.Exec(ctx, `DELETE FROM git_hosts WHERE id = $1`, id); err != nil {
			return err
		}
		return replaceTags(ctx, tx, store.GitHostResource(id), nil)
	})
	if err != nil {
		return fmt.Errorf("postgres: delete git host %q: %w", id, mapErr(err))
	}
	return nil
}

// CreateGitConnection stores a connection with its tags.
func (s *Store) CreateGitConnection(ctx context.Context, c store.GitConnection, tags []store.Tag) (store.GitConnection, error) {
	var out store.GitConnection
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if c.HostID != "" {
			var got string
			if err := tx.QueryRow(ctx, `SELECT id FROM git_hosts WHERE id = $1 FOR SHARE`, c.HostID).Scan(&got); err != nil {
				if mapErr(err) == store.ErrNotFound {
					return fmt.Errorf("host %q: %w", c.HostID, store.ErrNotFound)
				}
				return err
			}
		}
		var err error
		out, err = scanGitConn(tx.QueryRow(ctx, `INSERT INTO git_connections
			(id, name, provider_type, host_id, status, sealed_credentials, created, updated)
			VALUES ($1, $2, $3, $4, $5, $6, now(), now()) RETURNING `+gitConnCols,
			c.ID, c.Name, c.ProviderType, c.HostID, c.Status, c.SealedCredentials))
		if err != nil {
			return err
		}
		return replaceTags(ctx, tx, store.GitConnectionResource(c.ID), tags)
	})
	if isUniqueViolation(err) {
		return store.GitConnection{}, fmt.Errorf("postgres: create git connection %q: %w", c.ID, store.ErrAlreadyExists)
	}
	if err != nil {
		return store.GitConnection{}, fmt.Errorf("postgres: create git connection %q: %w", c.ID, mapErr(err))
	}
	return out, nil
}

// GetGitConnection reads a connection.
func (s *Store) GetGitConnection(ctx context.Context, id string) (store.GitConnection, error) {
	c, err := scanGitConn(s.pool.QueryRow(ctx, `SELECT `+gitConnCols+` FROM git_connections WHERE id = $1`, id))
	if err != nil {
		return store.GitConnection{}, fmt.Errorf("postgres: get git connection %q: %w", id, mapErr(err))
	}
	return c, nil
}

// ListGitConnections lists connections matching f in ID order.
func (s *Store) ListGitConnections(ctx context.Context, f store.GitConnectionFilter, after string, limit int) ([]store.GitConnection, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+gitConnCols+` FROM git_connections
		WHERE id > $1 AND ($2 = '' OR provider_type = $2) AND ($3 = '' OR host_id = $3)
		ORDER BY id LIMIT $4`, after, f.ProviderType, f.HostID, boundLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("postgres: list git connections: %w", mapErr(err))
	}
	defer rows.Close()
	out := []store.GitConnection{}
	for rows.Next() {
		c, err := scanGitConn(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: list git connections: %w", mapErr(err))
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list git connections: %w", mapErr(err))
	}
	return out, nil
}

// UpdateGitConnection stores fn's result for the stored connection, under
// a row lock.
func (s *Store) UpdateGitConnection(ctx context.Context, id string, fn func(store.GitConnection) (store.GitConnection, error)) (store.GitConnection, error) {
	var (
		out   store.GitConnection
		fnErr error
	)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		cur, err := scanGitConn(tx.QueryRow(ctx, `SELECT `+gitConnCols+` FROM git_connections WHERE id = $1 FOR UPDATE`, id))
		if err != nil {
			return err
		}
		next, err := fn(cur)
		if err != nil {
			fnErr = err
			return err
		}
		out, err = scanGitConn(tx.QueryRow(ctx, `UPDATE git_connections
			SET name = $2, provider_type = $3, status = $4, sealed_credentials = $5, updated = now()
			WHERE id = $1 RETURNING `+gitConnCols, id, next.Name, next.ProviderType, next.Status, next.SealedCredentials))
		return err
	})
	if fnErr != nil {
		return store.GitConnection{}, fnErr
	}
	if err != nil {
		return store.GitConnection{}, fmt.Errorf("postgres: update git connection %q: %w", id, mapErr(err))
	}
	return out, nil
}

// DeleteGitConnection deletes a connection and its tags.
func (s *Store) DeleteGitConnection(ctx context.Context, id string) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM git_connections WHERE id = $1`, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return store.ErrNotFound
		}
		return replaceTags(ctx, tx, store.GitConnectionResource(id), nil)
	})
	if err != nil {
		return fmt.Errorf("postgres: delete git connection %q: %w", id, mapErr(err))
	}
	return nil
}
