package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pipelined/pipelined/internal/store"
)

const pipelineCols = `name, version, pipeline_type, execution_mode, created, updated, definition`

// CreatePipeline stores version 1 of p with its tags (under
// store.PipelineResource(p.Name)). p's Version, Created and Updated are
// ignored: the store assigns them.
func (s *Store) CreatePipeline(ctx context.Context, p store.Pipeline, tags []store.Tag) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var created time.Time
		err := tx.QueryRow(ctx, `INSERT INTO pipeline_heads
			(name, version, pipeline_type, execution_mode, created, updated)
			VALUES ($1, 1, $2, $3, now(), now()) RETURNING created`,
			p.Name, p.PipelineType, p.ExecutionMode).Scan(&created)
		if isUniqueViolation(err) {
			return store.ErrAlreadyExists
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO pipelines (`+pipelineCols+`)
			VALUES ($1, 1, $2, $3, $4, $4, $5)`,
			p.Name, p.PipelineType, p.ExecutionMode, created, blob(p.Definition)); err != nil {
			return err
		}
		// Tags of an earlier pipeline of the same name were deleted with
		// it; replace anyway, so the new one has exactly the given tags.
		return replaceTags(ctx, tx, store.PipelineResource(p.Name), tags)
	})
	if err != nil {
		return fmt.Errorf("postgres: create pipeline %q: %w", p.Name, mapErr(err))
	}
	return nil
}

// GetPipeline returns the given version of a pipeline, or the latest for 0.
// The latest is the highest version stored: UpdatePipeline writes the
// version and moves the head in one statement, so the two never disagree.
func (s *Store) GetPipeline(ctx context.Context, name string, version int) (store.Pipeline, error) {
	p, err := s.getPipeline(ctx, name, version)
	if err != nil {
		return store.Pipeline{}, fmt.Errorf("postgres: get pipeline %q version %d: %w", name, version, err)
	}
	return p, nil
}

// getPipeline is GetPipeline with its errors mapped but not wrapped.
func (s *Store) getPipeline(ctx context.Context, name string, version int) (store.Pipeline, error) {
	return queryPipeline(ctx, s.pool, name, version)
}

// rowQuerier is a pool or a transaction.
type rowQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// queryPipeline reads a version of a pipeline (0: the latest) through q,
// with its errors mapped but not wrapped.
func queryPipeline(ctx context.Context, q rowQuerier, name string, version int) (store.Pipeline, error) {
	var row pgx.Row
	switch {
	case version == 0:
		row = q.QueryRow(ctx, `SELECT `+pipelineCols+` FROM pipelines
			WHERE name = $1 ORDER BY version DESC LIMIT 1`, name)
	case version > 0:
		row = q.QueryRow(ctx, `SELECT `+pipelineCols+` FROM pipelines
			WHERE name = $1 AND version = $2`, name, version)
	default:
		return store.Pipeline{}, store.ErrNotFound
	}
	p, err := scanPipeline(row)
	return p, mapErr(err)
}

// UpdatePipeline stores fn's result as the next version, optimistically:
// it reads the latest version, calls fn without holding any lock, then in
// one statement moves the head from the version read to the next one
// (compare-and-swap) and inserts the new version. When another replica
// updated (or deleted) the pipeline in between, the swap matches no row and
// the result is store.ErrConflict; nothing is written, so no update is lost
// and no version skipped. The caller re-reads and retries.
//
// The swap compares the head's created time as well as its version, so a
// pipeline deleted and re-created in between (version 1 again) is not
// mistaken for the one fn saw. fn's Name, Version, Created and Updated are
// replaced by the store's.
func (s *Store) UpdatePipeline(ctx context.Context, name string, fn func(latest store.Pipeline) (store.Pipeline, error)) (store.Pipeline, error) {
	latest, err := s.getPipeline(ctx, name, 0)
	if err != nil {
		return store.Pipeline{}, fmt.Errorf("postgres: update pipeline %q: %w", name, err)
	}
	next, err := fn(latest)
	if err != nil {
		// fn's own error, as fn returned it.
		return store.Pipeline{}, err
	}
	next.Name = name
	next.Version = latest.Version + 1
	next.Definition = blob(next.Definition)

	// The data-modifying CTE makes swap and insert one atomic statement.
	// Under READ COMMITTED, an UPDATE that waited for a concurrent one
	// re-checks its WHERE against the row that one committed, so only one
	// of two concurrent swaps from the same version can match. updated
	// never goes back, even if the database clock does.
	err = s.pool.QueryRow(ctx, `WITH head AS (
			UPDATE pipeline_heads
			SET version = $2, pipeline_type = $3, execution_mode = $4,
				updated = greatest(now(), updated)
			WHERE name = $1 AND version = $5 AND created = $6
			RETURNING name, version, pipeline_type, execution_mode, created, updated
		)
		INSERT INTO pipelines (`+pipelineCols+`)
		SELECT name, version, pipeline_type, execution_mode, created, updated, $7 FROM head
		RETURNING created, updated`,
		name, next.Version, next.PipelineType, next.ExecutionMode,
		latest.Version, latest.Created, next.Definition,
	).Scan(&next.Created, &next.Updated)
	switch {
	case errors.Is(err, pgx.ErrNoRows), isUniqueViolation(err):
		err = store.ErrConflict
	case err != nil:
		err = mapErr(err)
	}
	if err != nil {
		return store.Pipeline{}, fmt.Errorf("postgres: update pipeline %q to version %d: %w", name, next.Version, err)
	}
	next.Created, next.Updated = utc(next.Created), utc(next.Updated)
	return next, nil
}

// DeletePipeline deletes the pipeline's head, which cascades to every
// version, the tags stored under store.PipelineResource(name), and the
// pipeline's engine state (runtime, executions, timers, jobs). It takes the
// pipeline's engine lock first, as InPipeline does, so it waits for a
// transition under way and deletes what that committed; a transition that
// waited for it finds no state left.
func (s *Store) DeletePipeline(ctx context.Context, name string) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := lockPipeline(ctx, tx, name); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `DELETE FROM pipeline_heads WHERE name = $1`, name)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return store.ErrNotFound
		}
		if _, err = tx.Exec(ctx, `DELETE FROM tags WHERE resource = $1`, store.PipelineResource(name)); err != nil {
			return err
		}
		return deleteEngineState(ctx, tx, name)
	})
	if err != nil {
		return fmt.Errorf("postgres: delete pipeline %q: %w", name, mapErr(err))
	}
	return nil
}

// ListPipelines returns the latest versions of up to limit pipelines named
// after after, in byte order of name, without Definition: one range scan
// of pipeline_heads' primary key.
func (s *Store) ListPipelines(ctx context.Context, after string, limit int) ([]store.Pipeline, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT name, version, pipeline_type, execution_mode, created, updated
		FROM pipeline_heads WHERE name > $1 ORDER BY name LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: list pipelines after %q: %w", after, mapErr(err))
	}
	out := make([]store.Pipeline, 0, min(limit, 1000))
	var p store.Pipeline
	_, err = pgx.ForEachRow(rows, []any{&p.Name, &p.Version, &p.PipelineType, &p.ExecutionMode, &p.Created, &p.Updated}, func() error {
		p.Created, p.Updated = utc(p.Created), utc(p.Updated)
		out = append(out, p)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: list pipelines after %q: %w", after, mapErr(err))
	}
	return out, nil
}

// CountPipelines returns the number of pipelines.
func (s *Store) CountPipelines(ctx context.Context) (int, error) {
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM pipeline_heads`).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: count pipelines: %w", mapErr(err))
	}
	return n, nil
}

// scanPipeline reads one row of pipelineCols.
func scanPipeline(row pgx.Row) (store.Pipeline, error) {
	var p store.Pipeline
	if err := row.Scan(&p.Name, &p.Version, &p.PipelineType, &p.ExecutionMode, &p.Created, &p.Updated, &p.Definition); err != nil {
		return store.Pipeline{}, err
	}
	p.Created, p.Updated = utc(p.Created), utc(p.Updated)
	return p, nil
}
