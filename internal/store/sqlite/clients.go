package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/pipelined/pipelined/internal/store"
)

// Third-party clients (store.ThirdPartyClients). The queries are not in
// writeQueries: clients are written rarely (an operator issues or revokes
// one), so the writes run unprepared; the reads are prepared on first use
// on the read pool.
const (
	clientCols = `id, pipeline, stage, action, category, owner, provider, version,
		pipeline_created, token_hash, created, revoked`
	qClientInsert = `INSERT INTO third_party_clients (` + clientCols + `)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)`
	qClient            = `SELECT ` + clientCols + ` FROM third_party_clients WHERE id = ?`
	qClientByTokenHash = `SELECT ` + clientCols + ` FROM third_party_clients WHERE token_hash = ?`
	// qActionClient repeats the partial unique index's WHERE, so that
	// SQLite may use the index.
	qActionClient = `SELECT ` + clientCols + ` FROM third_party_clients
		WHERE pipeline = ? AND stage = ? AND action = ? AND revoked IS NULL`
	qClientRevoke = `UPDATE third_party_clients SET revoked = ? WHERE id = ? AND revoked IS NULL`
	qClientsAll   = `SELECT ` + clientCols + ` FROM third_party_clients
		ORDER BY pipeline, stage, action, created, id`
	qClientsOfPipeline = `SELECT ` + clientCols + ` FROM third_party_clients WHERE pipeline = ?
		ORDER BY pipeline, stage, action, created, id`
)

func scanClient(row interface{ Scan(...any) error }) (store.ThirdPartyClient, error) {
	var (
		c                        store.ThirdPartyClient
		pipelineCreated, created int64
		revoked                  sql.NullInt64
	)
	err := row.Scan(&c.ID, &c.Pipeline, &c.Stage, &c.Action,
		&c.ActionType.Category, &c.ActionType.Owner, &c.ActionType.Provider, &c.ActionType.Version,
		&pipelineCreated, &c.TokenHash, &created, &revoked)
	if err != nil {
		return c, err
	}
	c.PipelineCreated, c.Created = fromMillis(pipelineCreated), fromMillis(created)
	if revoked.Valid {
		c.Revoked = fromMillis(revoked.Int64)
	}
	if c.TokenHash == nil {
		c.TokenHash = []byte{}
	}
	return c, nil
}

// CreateClient stores a new active client.
func (s *Store) CreateClient(ctx context.Context, c store.ThirdPartyClient) (store.ThirdPartyClient, error) {
	c.Created, c.Revoked = now(), time.Time{}
	c.TokenHash = blob(c.TokenHash)
	err := s.write(ctx, func(w *wtx) error {
		_, err := w.exec(qClientInsert, c.ID, c.Pipeline, c.Stage, c.Action,
			c.ActionType.Category, c.ActionType.Owner, c.ActionType.Provider, c.ActionType.Version,
			toMillis(c.PipelineCreated), c.TokenHash, toMillis(c.Created))
		return err
	})
	if isUniqueViolation(err) {
		return store.ThirdPartyClient{}, fmt.Errorf("sqlite: create client %q: %w", c.ID, store.ErrAlreadyExists)
	}
	if err != nil {
		return store.ThirdPartyClient{}, fmt.Errorf("sqlite: create client %q: %w", c.ID, err)
	}
	c.PipelineCreated = fromMillis(toMillis(c.PipelineCreated))
	return c, nil
}

// GetClient reads a client by ID.
func (s *Store) GetClient(ctx context.Context, id string) (store.ThirdPartyClient, error) {
	c, err := scanClient(s.queryRow(ctx, qClient, id))
	if err != nil {
		return c, fmt.Errorf("sqlite: get client %q: %w", id, notFound(err))
	}
	return c, nil
}

// ClientByTokenHash finds a client by its token hash.
func (s *Store) ClientByTokenHash(ctx context.Context, hash []byte) (store.ThirdPartyClient, error) {
	c, err := scanClient(s.queryRow(ctx, qClientByTokenHash, blob(hash)))
	if err != nil {
		return c, fmt.Errorf("sqlite: client by token: %w", notFound(err))
	}
	return c, nil
}

// ActionClient returns the active client of a pipeline action.
func (s *Store) ActionClient(ctx context.Context, pipeline, stage, action string) (store.ThirdPartyClient, error) {
	c, err := scanClient(s.queryRow(ctx, qActionClient, pipeline, stage, action))
	if err != nil {
		return c, fmt.Errorf("sqlite: client of %q/%q/%q: %w", pipeline, stage, action, notFound(err))
	}
	return c, nil
}

// RevokeClient revokes a client; revoking a revoked one changes nothing.
func (s *Store) RevokeClient(ctx context.Context, id string) (store.ThirdPartyClient, error) {
	var c store.ThirdPartyClient
	err := s.write(ctx, func(w *wtx) error {
		if _, err := w.exec(qClientRevoke, toMillis(now()), id); err != nil {
			return err
		}
		var err error
		c, err = scanClient(w.queryRow(qClient, id))
		return err
	})
	if err != nil {
		return store.ThirdPartyClient{}, fmt.Errorf("sqlite: revoke client %q: %w", id, notFound(err))
	}
	return c, nil
}

// ListClients returns the clients of a pipeline ("" for all).
func (s *Store) ListClients(ctx context.Context, pipeline string) ([]store.ThirdPartyClient, error) {
	var (
		rows *sql.Rows
		err  error
	)
	if pipeline == "" {
		rows, err = s.query(ctx, qClientsAll)
	} else {
		rows, err = s.query(ctx, qClientsOfPipeline, pipeline)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: list clients: %w", err)
	}
	defer rows.Close()
	var out []store.ThirdPartyClient
	for rows.Next() {
		c, err := scanClient(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list clients: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list clients: %w", err)
	}
	return out, nil
}
