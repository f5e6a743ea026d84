package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pipelined/pipelined/internal/store"
)

// Job session credentials (store.SessionCredentials). Created comes from
// the database clock; Expires is kept as given, at millisecond precision
// (as SQLite keeps it).
const sessionCols = `access_key_id, job_id, sealed_secret, sealed_token, scope, expires, created`

func scanSession(row pgx.Row) (store.SessionCredential, error) {
	var c store.SessionCredential
	if err := row.Scan(&c.AccessKeyID, &c.JobID, &c.SealedSecret, &c.SealedToken, &c.Scope, &c.Expires, &c.Created); err != nil {
		return c, err
	}
	c.Expires, c.Created = utc(c.Expires), utc(c.Created)
	if c.Scope == nil {
		c.Scope = []byte{}
	}
	return c, nil
}

// CreateSessionCredential stores a new session credential.
func (s *Store) CreateSessionCredential(ctx context.Context, c store.SessionCredential) (store.SessionCredential, error) {
	out, err := scanSession(s.pool.QueryRow(ctx, `INSERT INTO session_credentials (`+sessionCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, now()) RETURNING `+sessionCols,
		c.AccessKeyID, c.JobID, c.SealedSecret, c.SealedToken, blob(c.Scope), c.Expires.UTC().Truncate(time.Millisecond)))
	if isUniqueViolation(err) {
		return store.SessionCredential{}, fmt.Errorf("postgres: create session credential: %w", store.ErrAlreadyExists)
	}
	if err != nil {
		return store.SessionCredential{}, fmt.Errorf("postgres: create session credential: %w", mapErr(err))
	}
	return out, nil
}

// GetSessionCredential reads a session credential by access key id.
func (s *Store) GetSessionCredential(ctx context.Context, accessKeyID string) (store.SessionCredential, error) {
	c, err := scanSession(s.pool.QueryRow(ctx, `SELECT `+sessionCols+` FROM session_credentials WHERE access_key_id = $1`, accessKeyID))
	if err != nil {
		return c, fmt.Errorf("postgres: get session credential: %w", mapErr(err))
	}
	return c, nil
}

// LatestSessionCredential returns the job's credential that expires last.
func (s *Store) LatestSessionCredential(ctx context.Context, jobID string) (store.SessionCredential, error) {
	c, err := scanSession(s.pool.QueryRow(ctx, `SELECT `+sessionCols+` FROM session_credentials WHERE job_id = $1
		ORDER BY expires DESC, access_key_id DESC LIMIT 1`, jobID))
	if err != nil {
		return c, fmt.Errorf("postgres: session credential of job %q: %w", jobID, mapErr(err))
	}
	return c, nil
}

// DeleteSessionCredentials deletes up to limit expired credentials.
func (s *Store) DeleteSessionCredentials(ctx context.Context, expiredBy time.Time, limit int) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM session_credentials WHERE access_key_id IN (
		SELECT access_key_id FROM session_credentials WHERE expires <= $1 ORDER BY expires LIMIT $2)`,
		expiredBy.UTC(), limit)
	if err != nil {
		return 0, fmt.Errorf("postgres: delete session credentials: %w", mapErr(err))
	}
	return int(tag.RowsAffected()), nil
}
