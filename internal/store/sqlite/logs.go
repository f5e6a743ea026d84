package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/pipelined/pipelined/internal/store"
)

// Job logs (store.Logs). Appends go through the writer like every write
// (one writer: appends to one log never interleave); reads use the read
// pool, prepared on first use.
const (
	logStreamCols = `job_id, pipeline, name, length, tail, next_seq, first_event, last_event,
		stored_bytes, created, updated, finished, compacted`
	// The list queries leave the tail out (an empty blob in its place).
	logStreamListCols = `job_id, pipeline, name, length, x'', next_seq, first_event, last_event,
		stored_bytes, created, updated, finished, compacted`
	logChunkCols = `job_id, seq, off, length, first_event, last_event, data`

	qLogStream       = `SELECT ` + logStreamCols + ` FROM log_streams WHERE job_id = ?`
	qLogStreamByName = `SELECT ` + logStreamCols + ` FROM log_streams WHERE pipeline = ? AND name = ?`
	qLogStreamInsert = `INSERT INTO log_streams (` + logStreamCols + `)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	qLogStreamUpdate = `UPDATE log_streams SET length = ?, tail = ?, next_seq = ?, first_event = ?,
		last_event = ?, stored_bytes = ?, updated = ?, finished = ?, compacted = ? WHERE job_id = ?`
	qLogChunkInsert = `INSERT INTO log_chunks (` + logChunkCols + `) VALUES (?, ?, ?, ?, ?, ?, ?)`
	qLogChunks      = `SELECT ` + logChunkCols + ` FROM log_chunks
		WHERE job_id = ? AND seq >= coalesce((SELECT max(seq) FROM log_chunks WHERE job_id = ? AND off <= ?), 0)
		AND off + length > ? ORDER BY seq LIMIT ?`
	qLogChunksBefore = `SELECT ` + logChunkCols + ` FROM log_chunks
		WHERE job_id = ? AND off < ? ORDER BY seq DESC LIMIT ?`
	qLogChunkRange = `SELECT min(off), max(off + length), count(*), coalesce(sum(length(data)), 0)
		FROM log_chunks WHERE job_id = ? AND seq BETWEEN ? AND ?`
	qLogChunkDeleteRange = `DELETE FROM log_chunks WHERE job_id = ? AND seq BETWEEN ? AND ?`
	qLogMarkCompacted    = `UPDATE log_streams SET compacted = 1 WHERE job_id = ? AND finished IS NOT NULL`
	qLogPending          = `SELECT ` + logStreamListCols + ` FROM log_streams WHERE compacted = 0
		ORDER BY updated, job_id LIMIT ?`
	qLogExpired = `SELECT job_id FROM log_streams WHERE finished IS NOT NULL AND finished < ?
		ORDER BY finished LIMIT ?`
	qLogStreamDelete = `DELETE FROM log_streams WHERE job_id = ?`
	qLogChunksDelete = `DELETE FROM log_chunks WHERE job_id = ?`
	qLogGroups       = `SELECT pipeline, min(created), sum(stored_bytes) FROM log_streams
		WHERE pipeline > ? AND substr(pipeline, 1, length(?)) = ? GROUP BY pipeline ORDER BY pipeline LIMIT ?`
)

func scanLogStream(row interface{ Scan(...any) error }) (store.LogStream, error) {
	var (
		ls                    store.LogStream
		first, last, finished sql.NullInt64
		created, updated      int64
		compacted             bool
	)
	err := row.Scan(&ls.JobID, &ls.Pipeline, &ls.Name, &ls.Length, &ls.Tail, &ls.NextSeq,
		&first, &last, &ls.StoredBytes, &created, &updated, &finished, &compacted)
	if err != nil {
		return ls, err
	}
	ls.FirstEvent, ls.LastEvent, ls.Finished = optMillis(first), optMillis(last), optMillis(finished)
	ls.Created, ls.Updated, ls.Compacted = fromMillis(created), fromMillis(updated), compacted
	if len(ls.Tail) == 0 {
		ls.Tail = nil
	}
	return ls, nil
}

func scanLogChunk(row interface{ Scan(...any) error }) (store.LogChunk, error) {
	var (
		c           store.LogChunk
		first, last int64
	)
	err := row.Scan(&c.JobID, &c.Seq, &c.Offset, &c.Length, &first, &last, &c.Data)
	c.First, c.Last = fromMillis(first), fromMillis(last)
	return c, err
}

func optMillis(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return fromMillis(v.Int64)
}

func nullMillis(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return toMillis(t)
}

// AppendLog runs fn on the job's stream in a write transaction.
func (s *Store) AppendLog(ctx context.Context, jobID string, fn func(cur *store.LogStream) (*store.LogStream, *store.LogChunk, error)) (store.LogStream, error) {
	var out store.LogStream
	err := s.write(ctx, func(w *wtx) error {
		var cur *store.LogStream
		ls, err := scanLogStream(w.queryRow(qLogStream, jobID))
		switch {
		case err == nil:
			cur = &ls
		case notFound(err) != store.ErrNotFound:
			return err
		}
		next, chunk, err := fn(cur)
		if err != nil {
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
			if _, err := w.exec(qLogChunkInsert, jobID, chunk.Seq, chunk.Offset, chunk.Length,
				toMillis(chunk.First), toMillis(chunk.Last), blob(chunk.Data)); err != nil {
				return err
			}
		}
		if cur == nil {
			_, err = w.exec(qLogStreamInsert, jobID, n.Pipeline, n.Name, n.Length, blob(n.Tail), n.NextSeq,
				nullMillis(n.FirstEvent), nullMillis(n.LastEvent), n.StoredBytes, toMillis(n.Created),
				toMillis(n.Updated), nullMillis(n.Finished), n.Compacted)
		} else {
			_, err = w.exec(qLogStreamUpdate, n.Length, blob(n.Tail), n.NextSeq, nullMillis(n.FirstEvent),
				nullMillis(n.LastEvent), n.StoredBytes, toMillis(n.Updated), nullMillis(n.Finished), n.Compacted, jobID)
		}
		if err != nil {
			return err
		}
		out, err = scanLogStream(w.queryRow(qLogStream, jobID))
		return err
	})
	if isUniqueViolation(err) {
		return store.LogStream{}, fmt.Errorf("sqlite: append log %q: %w", jobID, store.ErrAlreadyExists)
	}
	if err != nil {
		return store.LogStream{}, fmt.Errorf("sqlite: append log %q: %w", jobID, err)
	}
	return out, nil
}

// GetLogStream reads a job's stream.
func (s *Store) GetLogStream(ctx context.Context, jobID string) (store.LogStream, error) {
	ls, err := scanLogStream(s.queryRow(ctx, qLogStream, jobID))
	if err != nil {
		return store.LogStream{}, fmt.Errorf("sqlite: get log stream %q: %w", jobID, notFound(err))
	}
	return ls, nil
}

// LogStreamByName reads a stream by pipeline and name.
func (s *Store) LogStreamByName(ctx context.Context, pipeline, name string) (store.LogStream, error) {
	ls, err := scanLogStream(s.queryRow(ctx, qLogStreamByName, pipeline, name))
	if err != nil {
		return store.LogStream{}, fmt.Errorf("sqlite: get log stream %q of %q: %w", name, pipeline, notFound(err))
	}
	return ls, nil
}

// ListLogStreams returns the streams q selects, in name order.
func (s *Store) ListLogStreams(ctx context.Context, q store.LogStreamQuery) ([]store.LogStream, error) {
	var (
		b    strings.Builder
		args = []any{q.Pipeline, q.After}
	)
	b.WriteString(`SELECT ` + logStreamListCols + ` FROM log_streams WHERE pipeline = ? AND name > ?`)
	switch {
	case len(q.Names) > 0:
		b.WriteString(` AND name IN (?` + strings.Repeat(`, ?`, len(q.Names)-1) + `)`)
		for _, n := range q.Names {
			args = append(args, n)
		}
	case q.Prefix != "":
		b.WriteString(` AND substr(name, 1, length(?)) = ?`)
		args = append(args, q.Prefix, q.Prefix)
	}
	if !q.EventsFrom.IsZero() {
		b.WriteString(` AND last_event >= ?`)
		args = append(args, toMillis(q.EventsFrom))
	}
	if !q.EventsTo.IsZero() {
		b.WriteString(` AND first_event <= ?`)
		args = append(args, toMillis(q.EventsTo))
	}
	b.WriteString(` ORDER BY name LIMIT ?`)
	args = append(args, q.Limit)
	// Not prepared: the text varies with the query's shape.
	rows, err := s.rdb.QueryContext(ctx, b.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list log streams of %q: %w", q.Pipeline, err)
	}
	return collectStreams(rows, "list log streams")
}

func collectStreams(rows *sql.Rows, what string) ([]store.LogStream, error) {
	defer rows.Close()
	var out []store.LogStream
	for rows.Next() {
		ls, err := scanLogStream(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: %s: %w", what, err)
		}
		out = append(out, ls)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: %s: %w", what, err)
	}
	return out, nil
}

// ListLogGroups returns the pipelines that have streams.
func (s *Store) ListLogGroups(ctx context.Context, prefix, after string, limit int) ([]store.LogGroup, error) {
	rows, err := s.query(ctx, qLogGroups, after, prefix, prefix, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list log groups: %w", err)
	}
	defer rows.Close()
	var out []store.LogGroup
	for rows.Next() {
		var (
			g       store.LogGroup
			created int64
		)
		if err := rows.Scan(&g.Pipeline, &created, &g.StoredBytes); err != nil {
			return nil, fmt.Errorf("sqlite: list log groups: %w", err)
		}
		g.Created = fromMillis(created)
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list log groups: %w", err)
	}
	return out, nil
}

func (s *Store) collectChunks(ctx context.Context, what, query string, args ...any) ([]store.LogChunk, error) {
	rows, err := s.query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %s: %w", what, err)
	}
	defer rows.Close()
	var out []store.LogChunk
	for rows.Next() {
		c, err := scanLogChunk(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: %s: %w", what, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: %s: %w", what, err)
	}
	return out, nil
}

// LogChunks returns the chunks that end after from, by Seq.
func (s *Store) LogChunks(ctx context.Context, jobID string, from int64, limit int) ([]store.LogChunk, error) {
	return s.collectChunks(ctx, "log chunks of "+jobID, qLogChunks, jobID, jobID, from, from, limit)
}

// LogChunksBefore returns the chunks that start before the offset, newest first.
func (s *Store) LogChunksBefore(ctx context.Context, jobID string, before int64, limit int) ([]store.LogChunk, error) {
	return s.collectChunks(ctx, "log chunks of "+jobID, qLogChunksBefore, jobID, before, limit)
}

// ReplaceLogChunks replaces a run of chunks by one.
func (s *Store) ReplaceLogChunks(ctx context.Context, jobID string, fromSeq, toSeq int64, c store.LogChunk) error {
	err := s.write(ctx, func(w *wtx) error {
		var (
			lo, hi    sql.NullInt64
			n, stored int64
		)
		if err := w.queryRow(qLogChunkRange, jobID, fromSeq, toSeq).Scan(&lo, &hi, &n, &stored); err != nil {
			return err
		}
		if n == 0 || lo.Int64 != c.Offset || hi.Int64 != c.Offset+c.Length {
			return store.ErrConflict
		}
		if _, err := w.exec(qLogChunkDeleteRange, jobID, fromSeq, toSeq); err != nil {
			return err
		}
		if _, err := w.exec(qLogChunkInsert, jobID, toSeq, c.Offset, c.Length,
			toMillis(c.First), toMillis(c.Last), blob(c.Data)); err != nil {
			return err
		}
		_, err := w.exec(`UPDATE log_streams SET stored_bytes = stored_bytes + ? WHERE job_id = ?`, int64(len(c.Data))-stored, jobID)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: replace log chunks of %q: %w", jobID, err)
	}
	return nil
}

// MarkLogCompacted flags a finished stream as compacted.
func (s *Store) MarkLogCompacted(ctx context.Context, jobID string) error {
	err := s.write(ctx, func(w *wtx) error {
		res, err := w.exec(qLogMarkCompacted, jobID)
		if err != nil {
			return err
		}
		n, err := rowsAffected(res)
		if err == nil && n == 0 {
			err = store.ErrNotFound
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: mark log %q compacted: %w", jobID, err)
	}
	return nil
}

// PendingLogs returns open or uncompacted streams, least recently updated first.
func (s *Store) PendingLogs(ctx context.Context, limit int) ([]store.LogStream, error) {
	rows, err := s.query(ctx, qLogPending, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: pending logs: %w", err)
	}
	return collectStreams(rows, "pending logs")
}

// DeleteLogs deletes streams finished before the given time.
func (s *Store) DeleteLogs(ctx context.Context, finishedBefore time.Time, limit int) (int, error) {
	deleted := 0
	err := s.write(ctx, func(w *wtx) error {
		rows, err := w.query(qLogExpired, toMillis(finishedBefore), limit)
		if err != nil {
			return err
		}
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, id := range ids {
			if _, err := w.exec(qLogChunksDelete, id); err != nil {
				return err
			}
			if _, err := w.exec(qLogStreamDelete, id); err != nil {
				return err
			}
		}
		deleted = len(ids)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete logs: %w", err)
	}
	return deleted, nil
}

// LogOffsetAt returns the offset of the first chunk whose last event is at
// or after t.
func (s *Store) LogOffsetAt(ctx context.Context, jobID string, t time.Time) (int64, error) {
	var off int64
	err := s.queryRow(ctx, `SELECT off FROM log_chunks WHERE job_id = ? AND last_event >= ? ORDER BY seq LIMIT 1`,
		jobID, toMillis(t)).Scan(&off)
	if err != nil {
		return 0, fmt.Errorf("sqlite: log offset of %q at %v: %w", jobID, t, notFound(err))
	}
	return off, nil
}
