package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pipelined/pipelined/internal/store"
)

// Third-party clients (store.ThirdPartyClients). Created and Revoked come
// from the database clock; PipelineCreated is kept as given.
const clientCols = `id, pipeline, stage, action, category, owner, provider, version,
	pipeline_created, token_hash, created, revoked`

func scanClient(row pgx.Row) (store.ThirdPartyClient, error) {
	var (
		c       store.ThirdPartyClient
		revoked *time.Time
	)
	err := row.Scan(&c.ID, &c.Pipeline, &c.Stage, &c.Action,
		&c.ActionType.Category, &c.ActionType.Owner, &c.ActionType.Provider, &c.ActionType.Version,
		&c.PipelineCreated, &c.TokenHash, &c.Created, &revoked)
	if err != nil {
		return c, err
	}
	c.PipelineCreated, c.Created = utc(c.PipelineCreated), utc(c.Created)
	if revoked != nil {
		c.Revoked = utc(*revoked)
	}
	if c.TokenHash == nil {
		c.TokenHash = []byte{}
	}
	return c, nil
}

// CreateClient stores a new active client.
func (s *Store) CreateClient(ctx context.Context, c store.ThirdPartyClient) (store.ThirdPartyClient, error) {
	out, err := scanClient(s.pool.QueryRow(ctx, `INSERT INTO third_party_clients
		(id, pipeline, stage, action, category, owner, provider, version, pipeline_created, token_hash, created, revoked)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now(), NULL)
		RETURNING `+clientCols,
		c.ID, c.Pipeline, c.Stage, c.Action,
		c.ActionType.Category, c.ActionType.Owner, c.ActionType.Provider, c.ActionType.Version,
		c.PipelineCreated, blob(c.TokenHash)))
	if isUniqueViolation(err) {
		return store.ThirdPartyClient{}, fmt.Errorf("postgres: create client %q: %w", c.ID, store.ErrAlreadyExists)
	}
	if err != nil {
		return store.ThirdPartyClient{}, fmt.Errorf("postgres: create client %q: %w", c.ID, mapErr(err))
	}
	return out, nil
}

// GetClient reads a client by ID.
func (s *Store) GetClient(ctx context.Context, id string) (store.ThirdPartyClient, error) {
	c, err := scanClient(s.pool.QueryRow(ctx, `SELECT `+clientCols+` FROM third_party_clients WHERE id = $1`, id))
	if err != nil {
		return c, fmt.Errorf("postgres: get client %q: %w", id, mapErr(err))
	}
	return c, nil
}

// ClientByTokenHash finds a client by its token hash.
func (s *Store) ClientByTokenHash(ctx context.Context, hash []byte) (store.ThirdPartyClient, error) {
	c, err := scanClient(s.pool.QueryRow(ctx, `SELECT `+clientCols+` FROM third_party_clients WHERE token_hash = $1`, blob(hash)))
	if err != nil {
		return c, fmt.Errorf("postgres: client by token: %w", mapErr(err))
	}
	return c, nil
}

// ActionClient returns the active client of a pipeline action.
func (s *Store) ActionClient(ctx context.Context, pipeline, stage, action string) (store.ThirdPartyClient, error) {
	c, err := scanClient(s.pool.QueryRow(ctx, `SELECT `+clientCols+` FROM third_party_clients
		WHERE pipeline = $1 AND stage = $2 AND action = $3 AND revoked IS NULL`, pipeline, stage, action))
	if err != nil {
		return c, fmt.Errorf("postgres: client of %q/%q/%q: %w", pipeline, stage, action, mapErr(err))
	}
	return c, nil
}

// RevokeClient revokes a client; revoking a revoked one changes nothing.
func (s *Store) RevokeClient(ctx context.Context, id string) (store.ThirdPartyClient, error) {
	// One UPDATE that keeps an existing revocation time: a revoke running
	// concurrently with another waits for its row lock and then sees the
	// committed time. (A CTE with a fallback SELECT read the statement's
	// snapshot there and answered the client as still active.)
	c, err := scanClient(s.pool.QueryRow(ctx, `UPDATE third_party_clients
		SET revoked = COALESCE(revoked, now()) WHERE id = $1
		RETURNING `+clientCols, id))
	if err != nil {
		return c, fmt.Errorf("postgres: revoke client %q: %w", id, mapErr(err))
	}
	return c, nil
}

// ListClients returns the clients of a pipeline ("" for all).
func (s *Store) ListClients(ctx context.Context, pipeline string) ([]store.ThirdPartyClient, error) {
	q := `SELECT ` + clientCols + ` FROM third_party_clients`
	var args []any
	if pipeline != "" {
		q += ` WHERE pipeline = $1`
		args = append(args, pipeline)
	}
	rows, err := s.pool.Query(ctx, q+` ORDER BY pipeline, stage, action, created, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: list clients: %w", mapErr(err))
	}
	defer rows.Close()
	var out []store.ThirdPartyClient
	for rows.Next() {
		c, err := scanClient(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: list clients: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list clients: %w", mapErr(err))
	}
	return out, nil
}
