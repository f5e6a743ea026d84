package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/pipelined/pipelined/internal/store"
)

// Job session credentials (store.SessionCredentials). Written once per job
// (and renewal), read on every S3 request of a worker: the writes run
// unprepared, the reads are prepared on first use on the read pool.
const (
	sessionCols    = `access_key_id, job_id, sealed_secret, sealed_token, scope, expires, created`
	qSessionInsert = `INSERT INTO session_credentials (` + sessionCols + `) VALUES (?, ?, ?, ?, ?, ?, ?)`
	qSession       = `SELECT ` + sessionCols + ` FROM session_credentials WHERE access_key_id = ?`
	qSessionLatest = `SELECT ` + sessionCols + ` FROM session_credentials WHERE job_id = ?
		ORDER BY expires DESC, access_key_id DESC LIMIT 1`
	qSessionsDelete = `DELETE FROM session_credentials WHERE access_key_id IN (
		SELECT access_key_id FROM session_credentials WHERE expires <= ? ORDER BY expires LIMIT ?)`
)

func scanSession(row interface{ Scan(...any) error }) (store.SessionCredential, error) {
	var (
		c                store.SessionCredential
		expires, created int64
	)
	if err := row.Scan(&c.AccessKeyID, &c.JobID, &c.SealedSecret, &c.SealedToken, &c.Scope, &expires, &created); err != nil {
		return c, err
	}
	c.Expires, c.Created = fromMillis(expires), fromMillis(created)
	if c.Scope == nil {
		c.Scope = []byte{}
	}
	return c, nil
}

// CreateSessionCredential stores a new session credential.
func (s *Store) CreateSessionCredential(ctx context.Context, c store.SessionCredential) (store.SessionCredential, error) {
	c.Created = now()
	c.Scope = blob(c.Scope)
	err := s.write(ctx, func(w *wtx) error {
		_, err := w.exec(qSessionInsert, c.AccessKeyID, c.JobID, c.SealedSecret, c.SealedToken, c.Scope,
			toMillis(c.Expires), toMillis(c.Created))
		return err
	})
	if isUniqueViolation(err) {
		return store.SessionCredential{}, fmt.Errorf("sqlite: create session credential: %w", store.ErrAlreadyExists)
	}
	if err != nil {
		return store.SessionCredential{}, fmt.Errorf("sqlite: create session credential: %w", err)
	}
	c.Expires = fromMillis(toMillis(c.Expires))
	return c, nil
}

// GetSessionCredential reads a session credential by access key id.
func (s *Store) GetSessionCredential(ctx context.Context, accessKeyID string) (store.SessionCredential, error) {
	c, err := scanSession(s.queryRow(ctx, qSession, accessKeyID))
	if err != nil {
		return c, fmt.Errorf("sqlite: get session credential: %w", notFound(err))
	}
	return c, nil
}

// LatestSessionCredential returns the job's credential that expires last.
func (s *Store) LatestSessionCredential(ctx context.Context, jobID string) (store.SessionCredential, error) {
	c, err := scanSession(s.queryRow(ctx, qSessionLatest, jobID))
	if err != nil {
		return c, fmt.Errorf("sqlite: session credential of job %q: %w", jobID, notFound(err))
	}
	return c, nil
}

// DeleteSessionCredentials deletes up to limit expired credentials.
func (s *Store) DeleteSessionCredentials(ctx context.Context, expiredBy time.Time, limit int) (int, error) {
	var n int64
	err := s.write(ctx, func(w *wtx) error {
		res, err := w.exec(qSessionsDelete, toMillis(expiredBy), limit)
		if err != nil {
			return err
		}
		n, err = rowsAffected(res)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete session credentials: %w", err)
	}
	return int(n), nil
}
