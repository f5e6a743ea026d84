package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pipelined/pipelined/internal/store"
)

// Job logs (store.Logs). Times are bigint unix milliseconds given by the
// service. Appends to one log take a row lock on its stream, or, for the
// first append (no row yet), an advisory lock on the job id.
const (
	advisoryClassLogs = 0x70740040

	logStreamCols = `job_id, pipeline, name, length, tail, next_seq, first_event, last_event,
		stored_bytes, created, updated, finished, compacted`
	logStreamListCols = `job_id, pipeline, name, length, ''::bytea, next_seq, first_event, last_event,
		stored_bytes, created, updated, finished, compacted`
	logChunkCols = `job_id, seq, off, length, first_event, last_event, data`
)

func scanLogStream(row pgx.Row) (store.LogStream, error) {
	var (
		ls                    store.LogStream
		first, last, finished *int64
		created, updated      int64
	)
	err := row.Scan(&ls.JobID, &ls.Pipeline, &ls.Name, &ls.Length, &ls.Tail, &ls.NextSeq,
		&first, &last, &ls.StoredBytes, &created, &updated, &finished, &ls.Compacted)
	if err != nil {
		return ls, err
	}
	ls.FirstEvent, ls.LastEvent, ls.Finished = optMillis(first), optMillis(last), optMillis(finished)
	ls.Created, ls.Updated = fromMillis(created), fromMillis(updated)
	if len(ls.Tail) == 0 {
		ls.Tail = nil
	}
	return ls, nil
}

func scanLogChunk(row pgx.Row) (store.LogChunk, error) {
	var (
		c           store.LogChunk
		first, last int64
	)
	err := row.Scan(&c.JobID, &c.Seq, &c.Offset, &c.Length, &first, &last, &c.Data)
	c.First, c.Last = fromMillis(first), fromMillis(last)
	return c, err
}

func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

func optMillis(v *int64) time.Time {
	if v == nil {
		return time.Time{}
	}
	return fromMillis(*v)
}

func nullMillis(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	ms := t.UnixMilli()
	return &ms
}

// AppendLog runs fn on the job's stream in a transaction holding its lock.
func (s *Store) AppendLog(ctx context.Context, jobID string, fn func(cur *store.LogStream) (*store.LogStream, *store.LogChunk, error)) (store.LogStream, error) {
	var (
		out   store.LogStream
		fnErr error
	)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var cur *store.LogStream
		ls, err := scanLogStream(tx.QueryRow(ctx, `SELECT `+logStreamCols+` FROM log_streams WHERE job_id = $1 FOR UPDATE`, jobID))
		switch {
		case err == nil:
			cur = &ls
		case errors.Is(err, pgx.ErrNoRows):
			// No row to lock: serialize the creators, then look again.
			if err := lockKey(ctx, tx, advisoryClassLogs, jobID); err != nil {
				return err
			}
			ls, err = scanLogStream(tx.QueryRow(ctx, `SELECT `+logStreamCols+` FROM log_streams WHERE job_id = $1 FOR UPDATE`, jobID))
			if err == nil {
				cur = &ls
			} else if !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
		default:
			return err
		}
		next, chunk, err := fn(cur)
		if err != nil {
			fnErr = err
			return err
		}
		if next == nil {
			if cur == nil {
				return store.ErrNotFound
			}
			out = *cur
			return nil
		}
		n := *next
		n.JobID = jobID
		if chunk != nil {
			if _, err := tx.Exec(ctx, `INSERT INTO log_chunks (`+logChunkCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
				jobID, chunk.Seq, chunk.Offset, chunk.Length, chunk.First.UnixMilli(), chunk.Last.UnixMilli(), blob(chunk.Data)); err != nil {
				return err
			}
		}
		if cur == nil {
			out, err = scanLogStream(tx.QueryRow(ctx, `INSERT INTO log_streams (`+logStreamCols+`)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING `+logStreamCols,
				jobID, n.Pipeline, n.Name, n.Length, blob(n.Tail), n.NextSeq, nullMillis(n.FirstEvent), nullMillis(n.LastEvent),
				n.StoredBytes, n.Created.UnixMilli(), n.Updated.UnixMilli(), nullMillis(n.Finished), n.Compacted))
		} else {
			out, err = scanLogStream(tx.QueryRow(ctx, `UPDATE log_streams SET length = $2, tail = $3, next_seq = $4,
				first_event = $5, last_event = $6, stored_bytes = $7, updated = $8, finished = $9, compacted = $10
				WHERE job_id = $1 RETURNING `+logStreamCols,
				jobID, n.Length, blob(n.Tail), n.NextSeq, nullMillis(n.FirstEvent), nullMillis(n.LastEvent),
				n.StoredBytes, n.Updated.UnixMilli(), nullMillis(n.Finished), n.Compacted))
		}
		return err
	})
	if fnErr != nil {
		return store.LogStream{}, fnErr
	}
	if isUniqueViolation(err) {
		return store.LogStream{}, fmt.Errorf("postgres: append log %q: %w", jobID, store.ErrAlreadyExists)
	}
	if err != nil {
		return store.LogStream{}, fmt.Errorf("postgres: append log %q: %w", jobID, mapErr(err))
	}
	return out, nil
}

// GetLogStream reads a job's stream.
func (s *Store) GetLogStream(ctx context.Context, jobID string) (store.LogStream, error) {
	ls, err := scanLogStream(s.pool.QueryRow(ctx, `SELECT `+logStreamCols+` FROM log_streams WHERE job_id = $1`, jobID))
	if err != nil {
		return store.LogStream{}, fmt.Errorf("postgres: get log stream %q: %w", jobID, mapErr(err))
	}
	return ls, nil
}

// LogStreamByName reads a stream by pipeline and name.
func (s *Store) LogStreamByName(ctx context.Context, pipeline, name string) (store.LogStream, error) {
	ls, err := scanLogStream(s.pool.QueryRow(ctx,
		`SELECT `+logStreamCols+` FROM log_streams WHERE pipeline = $1 AND name = $2`, pipeline, name))
	if err != nil {
		return store.LogStream{}, fmt.Errorf("postgres: get log stream %q of %q: %w", name, pipeline, mapErr(err))
	}
	return ls, nil
}

// ListLogStreams returns the streams q selects, in name order.
func (s *Store) ListLogStreams(ctx context.Context, q store.LogStreamQuery) ([]store.LogStream, error) {
	var b strings.Builder
	args := []any{q.Pipeline, q.After}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	b.WriteString(`SELECT ` + logStreamListCols + ` FROM log_streams WHERE pipeline = $1 AND name > $2`)
	switch {
	case len(q.Names) > 0:
		b.WriteString(` AND name = ANY(` + arg(q.Names) + `)`)
	case q.Prefix != "":
		p := arg(q.Prefix)
		b.WriteString(` AND left(name, length(` + p + `)) = ` + p)
	}
	if !q.EventsFrom.IsZero() {
		b.WriteString(` AND last_event >= ` + arg(q.EventsFrom.UnixMilli()))
	}
	if !q.EventsTo.IsZero() {
		b.WriteString(` AND first_event <= ` + arg(q.EventsTo.UnixMilli()))
	}
	b.WriteString(` ORDER BY name LIMIT ` + arg(q.Limit))
	rows, err := s.pool.Query(ctx, b.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: list log streams of %q: %w", q.Pipeline, mapErr(err))
	}
	return collectStreams(rows, "list log streams")
}

func collectStreams(rows pgx.Rows, what string) ([]store.LogStream, error) {
	defer rows.Close()
	var out []store.LogStream
	for rows.Next() {
		ls, err := scanLogStream(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: %s: %w", what, err)
		}
		out = append(out, ls)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: %s: %w", what, mapErr(err))
	}
	return out, nil
}

// ListLogGroups returns the pipelines that have streams.
func (s *Store) ListLogGroups(ctx context.Context, prefix, after string, limit int) ([]store.LogGroup, error) {
	rows, err := s.pool.Query(ctx, `SELECT pipeline, min(created), sum(stored_bytes)::bigint FROM log_streams
		WHERE pipeline > $1 AND left(pipeline, length($2)) = $2 GROUP BY pipeline ORDER BY pipeline LIMIT $3`,
		after, prefix, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: list log groups: %w", mapErr(err))
	}
	defer rows.Close()
	var out []store.LogGroup
	for rows.Next() {
		var (
			g       store.LogGroup
			created int64
		)
		if err := rows.Scan(&g.Pipeline, &created, &g.StoredBytes); err != nil {
			return nil, fmt.Errorf("postgres: list log groups: %w", err)
		}
		g.Created = fromMillis(created)
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list log groups: %w", mapErr(err))
	}
	return out, nil
}

func (s *Store) collectChunks(ctx context.Context, what, query string, args ...any) ([]store.LogChunk, error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: %s: %w", what, mapErr(err))
	}
	defer rows.Close()
	var out []store.LogChunk
	for rows.Next() {
		c, err := scanLogChunk(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: %s: %w", what, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: %s: %w", what, mapErr(err))
	}
	return out, nil
}

// LogChunks returns the chunks that end after from, by Seq.
func (s *Store) LogChunks(ctx context.Context, jobID string, from int64, limit int) ([]store.LogChunk, error) {
	return s.collectChunks(ctx, "log chunks of "+jobID, `SELECT `+logChunkCols+` FROM log_chunks
		WHERE job_id = $1 AND seq >= coalesce((SELECT max(seq) FROM log_chunks WHERE job_id = $1 AND off <= $2), 0)
		AND off + length > $2 ORDER BY seq LIMIT $3`, jobID, from, limit)
}

// LogChunksBefore returns the chunks that start before the offset, newest first.
func (s *Store) LogChunksBefore(ctx context.Context, jobID string, before int64, limit int) ([]store.LogChunk, error) {
	return s.collectChunks(ctx, "log chunks of "+jobID, `SELECT `+logChunkCols+` FROM log_chunks
		WHERE job_id = $1 AND off < $2 ORDER BY seq DESC LIMIT $3`, jobID, before, limit)
}

// ReplaceLogChunks replaces a run of chunks by one.
func (s *Store) ReplaceLogChunks(ctx context.Context, jobID string, fromSeq, toSeq int64, c store.LogChunk) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT 1 FROM log_streams WHERE job_id = $1 FOR UPDATE`, jobID); err != nil {
			return err
		}
		var (
			lo, hi    *int64
			n, stored int64
		)
		if err := tx.QueryRow(ctx, `SELECT min(off), max(off + length), count(*), coalesce(sum(length(data)), 0)::bigint FROM log_chunks
			WHERE job_id = $1 AND seq BETWEEN $2 AND $3`, jobID, fromSeq, toSeq).Scan(&lo, &hi, &n, &stored); err != nil {
			return err
		}
		if n == 0 || *lo != c.Offset || *hi != c.Offset+c.Length {
			return store.ErrConflict
		}
		if _, err := tx.Exec(ctx, `DELETE FROM log_chunks WHERE job_id = $1 AND seq BETWEEN $2 AND $3`, jobID, fromSeq, toSeq); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO log_chunks (`+logChunkCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			jobID, toSeq, c.Offset, c.Length, c.First.UnixMilli(), c.Last.UnixMilli(), blob(c.Data)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE log_streams SET stored_bytes = stored_bytes + $2 WHERE job_id = $1`, jobID, int64(len(c.Data))-stored)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: replace log chunks of %q: %w", jobID, mapErr(err))
	}
	return nil
}

// MarkLogCompacted flags a finished stream as compacted.
func (s *Store) MarkLogCompacted(ctx context.Context, jobID string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE log_streams SET compacted = true WHERE job_id = $1 AND finished IS NOT NULL`, jobID)
	if err == nil && tag.RowsAffected() == 0 {
		err = store.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("postgres: mark log %q compacted: %w", jobID, mapErr(err))
	}
	return nil
}

// PendingLogs returns open or uncompacted streams, least recently updated first.
func (s *Store) PendingLogs(ctx context.Context, limit int) ([]store.LogStream, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+logStreamListCols+` FROM log_streams WHERE NOT compacted
		ORDER BY updated, job_id LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: pending logs: %w", mapErr(err))
	}
	return collectStreams(rows, "pending logs")
}

// DeleteLogs deletes streams finished before the given time.
func (s *Store) DeleteLogs(ctx context.Context, finishedBefore time.Time, limit int) (int, error) {
	n := 0
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `DELETE FROM log_streams WHERE job_id IN (
			SELECT job_id FROM log_streams WHERE finished IS NOT NULL AND finished < $1
			ORDER BY finished LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING job_id`, finishedBefore.UnixMilli(), limit)
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		n = len(ids)
		if n == 0 {
			return nil
		}
		_, err = tx.Exec(ctx, `DELETE FROM log_chunks WHERE job_id = ANY($1)`, ids)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: delete logs: %w", mapErr(err))
	}
	return n, nil
}

// LogOffsetAt returns the offset of the first chunk whose last event is at
// or after t.
func (s *Store) LogOffsetAt(ctx context.Context, jobID string, t time.Time) (int64, error) {
	var off int64
	err := s.pool.QueryRow(ctx, `SELECT off FROM log_chunks WHERE job_id = $1 AND last_event >= $2 ORDER BY seq LIMIT 1`,
		jobID, t.UnixMilli()).Scan(&off)
	if err != nil {
		return 0, fmt.Errorf("postgres: log offset of %q at %v: %w", jobID, t, mapErr(err))
	}
	return off, nil
}
