package sqlite

import (
	"context"
	"fmt"

	"github.com/pipelined/pipelined/internal/store"
)

// Git hosts and connections (store.GitConnections). Written rarely (an
// operator creates one), so the writes run unprepared, as for worker keys.
const (
	gitHostCols       = `id, name, provider_type, endpoint, vpc, created`
	qGitHostInsert    = `INSERT INTO git_hosts (` + gitHostCols + `) VALUES (?, ?, ?, ?, ?, ?)`
	qGitHost          = `SELECT ` + gitHostCols + ` FROM git_hosts WHERE id = ?`
	qGitHosts         = `SELECT ` + gitHostCols + ` FROM git_hosts WHERE id > ? ORDER BY id LIMIT ?`
	qGitHostDelete    = `DELETE FROM git_hosts WHERE id = ?`
	qGitHostInUse     = `SELECT EXISTS (SELECT 1 FROM git_connections WHERE host_id = ?)`
	gitConnCols       = `id, name, provider_type, host_id, status, sealed_credentials, created, updated`
	qGitConnInsert    = `INSERT INTO git_connections (` + gitConnCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`
	qGitConn          = `SELECT ` + gitConnCols + ` FROM git_connections WHERE id = ?`
	qGitConns         = `SELECT ` + gitConnCols + ` FROM git_connections WHERE id > ? AND (? = '' OR provider_type = ?) AND (? = '' OR host_id = ?) ORDER BY id LIMIT ?`
	qGitConnUpdate    = `UPDATE git_connections SET name = ?, provider_type = ?, status = ?, sealed_credentials = ?, updated = ? WHERE id = ?`
	qGitConnDelete    = `DELETE FROM git_connections WHERE id = ?`
	qGitHostExists    = `SELECT EXISTS (SELECT 1 FROM git_hosts WHERE id = ?)`
	gitListLimitBound = 1000
)

func scanGitHost(row interface{ Scan(...any) error }) (store.GitHost, error) {
	var (
		h       store.GitHost
		created int64
		vpc     []byte
	)
	if err := row.Scan(&h.ID, &h.Name, &h.ProviderType, &h.Endpoint, &vpc, &created); err != nil {
		return h, err
	}
	if vpc != nil {
		h.VPC = vpc
	}
	h.Created = fromMillis(created)
	return h, nil
}

func scanGitConn(row interface{ Scan(...any) error }) (store.GitConnection, error) {
	var (
		c                store.GitConnection
		created, updated int64
	)
	if err := row.Scan(&c.ID, &c.Name, &c.ProviderType, &c.HostID, &c.Status, &c.SealedCredentials, &created, &updated); err != nil {
		return c, err
	}
	c.Created, c.Updated = fromMillis(created), fromMillis(updated)
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
	h.Created = fromMillis(toMillis(now()))
	var vpc any
	if h.VPC != nil {
		vpc = h.VPC
	}
	err := s.write(ctx, func(w *wtx) error {
		if _, err := w.exec(qGitHostInsert, h.ID, h.Name, h.ProviderType, h.Endpoint, vpc, toMillis(h.Created)); err != nil {
			return err
		}
		return replaceTags(w, store.GitHostResource(h.ID), tags)
	})
	if isUniqueViolation(err) {
		return store.GitHost{}, fmt.Errorf("sqlite: create git host %q: %w", h.ID, store.ErrAlreadyExists)
	}
	if err != nil {
		return store.GitHost{}, fmt.Errorf("sqlite: create git host %q: %w", h.ID, err)
	}
	return h, nil
}

// GetGitHost reads a host.
func (s *Store) GetGitHost(ctx context.Context, id string) (store.GitHost, error) {
	h, err := scanGitHost(s.queryRow(ctx, qGitHost, id))
	if err != nil {
		return store.GitHost{}, fmt.Errorf("sqlite: get git host %q: %w", id, notFound(err))
	}
	return h, nil
}

// ListGitHosts lists hosts in ID order after the given ID.
func (s *Store) ListGitHosts(ctx context.Context, after string, limit int) ([]store.GitHost, error) {
	rows, err := s.query(ctx, qGitHosts, after, boundLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("sqlite: list git hosts: %w", err)
	}
	defer rows.Close()
	out := []store.GitHost{}
	for rows.Next() {
		h, err := scanGitHost(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list git hosts: %w", err)
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list git hosts: %w", err)
	}
	return out, nil
}

// DeleteGitHost deletes a host that no connection uses, and its tags.
func (s *Store) DeleteGitHost(ctx context.Context, id string) error {
	err := s.write(ctx, func(w *wtx) error {
		var inUse bool
		if err := w.queryRow(qGitHostInUse, id).Scan(&inUse); err != nil {
			return err
		}
		if inUse {
			return store.ErrConflict
		}
		res, err := w.exec(qGitHostDelete, id)
		if err != nil {
			return err
		}
		if n, err := rowsAffected(res); err != nil {
			return err
		} else if n == 0 {
			return store.ErrNotFound
		}
		_, err = w.exec(qTagsClear, store.GitHostResource(id))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: delete git host %q: %w", id, err)
	}
	return nil
}

// CreateGitConnection stores a connection with its tags.
func (s *Store) CreateGitConnection(ctx context.Context, c store.GitConnection, tags []store.Tag) (store.GitConnection, error) {
	c.Created = fromMillis(toMillis(now()))
	c.Updated = c.Created
	err := s.write(ctx, func(w *wtx) error {
		if c.HostID != "" {
			var exists bool
			if err := w.queryRow(qGitHostExists, c.HostID).Scan(&exists); err != nil {
				return err
			}
			if !exists {
				return fmt.Errorf("host %q: %w", c.HostID, store.ErrNotFound)
			}
		}
		if _, err := w.exec(qGitConnInsert, c.ID, c.Name, c.ProviderType, c.HostID, c.Status, c.SealedCredentials,
			toMillis(c.Created), toMillis(c.Updated)); err != nil {
			return err
		}
		return replaceTags(w, store.GitConnectionResource(c.ID), tags)
	})
	if isUniqueViolation(err) {
		return store.GitConnection{}, fmt.Errorf("sqlite: create git connection %q: %w", c.ID, store.ErrAlreadyExists)
	}
	if err != nil {
		return store.GitConnection{}, fmt.Errorf("sqlite: create git connection %q: %w", c.ID, err)
	}
	return c, nil
}

// GetGitConnection reads a connection.
func (s *Store) GetGitConnection(ctx context.Context, id string) (store.GitConnection, error) {
	c, err := scanGitConn(s.queryRow(ctx, qGitConn, id))
	if err != nil {
		return store.GitConnection{}, fmt.Errorf("sqlite: get git connection %q: %w", id, notFound(err))
	}
	return c, nil
}

// ListGitConnections lists connections matching f in ID order.
func (s *Store) ListGitConnections(ctx context.Context, f store.GitConnectionFilter, after string, limit int) ([]store.GitConnection, error) {
	rows, err := s.query(ctx, qGitConns, after, f.ProviderType, f.ProviderType, f.HostID, f.HostID, boundLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("sqlite: list git connections: %w", err)
	}
	defer rows.Close()
	out := []store.GitConnection{}
	for rows.Next() {
		c, err := scanGitConn(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list git connections: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list git connections: %w", err)
	}
	return out, nil
}

// UpdateGitConnection stores fn's result for the stored connection.
func (s *Store) UpdateGitConnection(ctx context.Context, id string, fn func(store.GitConnection) (store.GitConnection, error)) (store.GitConnection, error) {
	var (
		out   store.GitConnection
		fnErr error
	)
	err := s.write(ctx, func(w *wtx) error {
		cur, err := scanGitConn(w.queryRow(qGitConn, id))
		if err != nil {
			return notFound(err)
		}
		next, err := fn(cur)
		if err != nil {
			fnErr = err
			return err
		}
		next.ID, next.HostID, next.Created = cur.ID, cur.HostID, cur.Created
		next.Updated = fromMillis(toMillis(now()))
		if _, err := w.exec(qGitConnUpdate, next.Name, next.ProviderType, next.Status, next.SealedCredentials, toMillis(next.Updated), id); err != nil {
			return err
		}
		out = next
		return nil
	})
	if fnErr != nil {
		return store.GitConnection{}, fnErr
	}
	if err != nil {
		return store.GitConnection{}, fmt.Errorf("sqlite: update git connection %q: %w", id, err)
	}
	return out, nil
}

// DeleteGitConnection deletes a connection and its tags.
func (s *Store) DeleteGitConnection(ctx context.Context, id string) error {
	err := s.write(ctx, func(w *wtx) error {
		res, err := w.exec(qGitConnDelete, id)
		if err != nil {
			return err
		}
		if n, err := rowsAffected(res); err != nil {
			return err
		} else if n == 0 {
			return store.ErrNotFound
		}
		_, err = w.exec(qTagsClear, store.GitConnectionResource(id))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: delete git connection %q: %w", id, err)
	}
	return nil
}
