package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/pipelined/pipelined/internal/store"
)

// CreatePipeline stores version 1 of p (its Version, Created and Updated are
// ignored: the store assigns them) with its tags, under
// store.PipelineResource(p.Name).
func (s *Store) CreatePipeline(ctx context.Context, p store.Pipeline, tags []store.Tag) error {
	err := s.write(ctx, func(w *wtx) error {
		t := toMillis(now())
		_, err := w.exec(qHeadInsert, p.Name, p.PipelineType, p.ExecutionMode, t, t)
		if isUniqueViolation(err) {
			return store.ErrAlreadyExists
		}
		if err != nil {
			return err
		}
		if _, err := w.exec(qPipelineInsert,
			p.Name, 1, p.PipelineType, p.ExecutionMode, t, t, blob(p.Definition)); err != nil {
			return err
		}
		// Tags left behind by an earlier pipeline of the same name were
		// deleted with it; replace anyway, so the new pipeline has exactly
		// the tags it was created with.
		return replaceTags(w, store.PipelineResource(p.Name), tags)
	})
	if err != nil {
		return fmt.Errorf("sqlite: create pipeline %q: %w", p.Name, err)
	}
	return nil
}

// GetPipeline returns the given version of a pipeline, or the latest for 0.
// It is the server's hot path: one prepared statement on the read pool.
func (s *Store) GetPipeline(ctx context.Context, name string, version int) (store.Pipeline, error) {
	key := defKey{name: name, version: version}
	if p, ok := s.hub.reads.getPipeline(key); ok {
		return p, nil
	}
	gen := s.hub.reads.generation()
	var row *sql.Row
	switch {
	case version == 0:
		row = s.queryRow(ctx, qPipelineLatest, name)
	case version > 0:
		row = s.queryRow(ctx, qPipelineVersion, name, version)
	default:
		return store.Pipeline{}, fmt.Errorf("sqlite: get pipeline %q version %d: %w", name, version, store.ErrNotFound)
	}
	p, err := scanPipeline(row)
	if err != nil {
		return store.Pipeline{}, fmt.Errorf("sqlite: get pipeline %q version %d: %w", name, version, notFound(err))
	}
	s.hub.reads.putPipeline(key, gen, p)
	return p, nil
}

// UpdatePipeline stores fn's result as the next version. The write lock is
// taken when the transaction begins, so the latest version fn sees is still
// the latest at commit: on SQLite concurrent updates queue and never
// conflict. fn's Name, Version, Created and Updated are replaced by the
// store's.
func (s *Store) UpdatePipeline(ctx context.Context, name string, fn func(latest store.Pipeline) (store.Pipeline, error)) (store.Pipeline, error) {
	var (
		out   store.Pipeline
		fnErr error
	)
	err := s.write(ctx, func(w *wtx) error {
		latest, err := scanPipeline(w.queryRow(qPipelineLatest, name))
		if err != nil {
			return notFound(err)
		}
		next, err := fn(latest)
		if err != nil {
			fnErr = err
			return err
		}
		next.Name = name
		next.Version = latest.Version + 1
		next.Created = latest.Created
		// Never before the previous version, even if the clock stepped back.
		next.Updated = now()
		if next.Updated.Before(latest.Updated) {
			next.Updated = latest.Updated
		}
		t := toMillis(next.Updated)

		_, err = w.exec(qPipelineInsert,
			name, next.Version, next.PipelineType, next.ExecutionMode,
			toMillis(next.Created), t, blob(next.Definition))
		if isUniqueViolation(err) {
			return store.ErrConflict
		}
		if err != nil {
			return err
		}
		res, err := w.exec(qHeadAdvance,
			next.Version, next.PipelineType, next.ExecutionMode, t, name, latest.Version)
		if err != nil {
			return err
		}
		if n, err := rowsAffected(res); err != nil {
			return err
		} else if n != 1 {
			return store.ErrConflict
		}
		out = next
		return nil
	})
	if fnErr != nil {
		// fn's own error, as the caller returned it.
		return store.Pipeline{}, fnErr
	}
	if err != nil {
		return store.Pipeline{}, fmt.Errorf("sqlite: update pipeline %q: %w", name, err)
	}
	return out, nil
}

// DeletePipeline deletes the pipeline's head, which cascades to every
// version, its tags (store.PipelineResource(name)) and its engine state
// (runtime, executions, timers, jobs). The write transaction excludes every
// InPipeline, so no transition of the pipeline runs half before it.
func (s *Store) DeletePipeline(ctx context.Context, name string) error {
	err := s.write(ctx, func(w *wtx) error {
		res, err := w.exec(qHeadDelete, name)
		if err != nil {
			return err
		}
		if n, err := rowsAffected(res); err != nil {
			return err
		} else if n == 0 {
			return store.ErrNotFound
		}
		// The cascade needs foreign_keys on; delete explicitly as well, so a
		// connection without it can never leave versions behind.
		if _, err := w.exec(qPipelinesDelete, name); err != nil {
			return err
		}
		if _, err := w.exec(qTagsClear, store.PipelineResource(name)); err != nil {
			return err
		}
		return deleteEngineState(w, name)
	})
	if err != nil {
		return fmt.Errorf("sqlite: delete pipeline %q: %w", name, err)
	}
	return nil
}

// ListPipelines returns the latest versions of up to limit pipelines named
// after after, in byte order of name, without Definition.
func (s *Store) ListPipelines(ctx context.Context, after string, limit int) ([]store.Pipeline, error) {
	if limit <= 0 {
		return nil, nil
	}
	key := listKey{after: after, limit: limit}
	if page, ok := s.hub.reads.get(key); ok {
		return page, nil
	}
	gen := s.hub.reads.generation()
	rows, err := s.query(ctx, qPipelineList, after, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list pipelines after %q: %w", after, err)
	}
	defer rows.Close()
	out := make([]store.Pipeline, 0, min(limit, 64))
	for rows.Next() {
		var (
			p                store.Pipeline
			created, updated int64
		)
		if err := rows.Scan(&p.Name, &p.Version, &p.PipelineType, &p.ExecutionMode, &created, &updated); err != nil {
			return nil, fmt.Errorf("sqlite: list pipelines after %q: %w", after, err)
		}
		p.Created, p.Updated = fromMillis(created), fromMillis(updated)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list pipelines after %q: %w", after, err)
	}
	s.hub.reads.put(key, gen, out)
	return out, nil
}

// CountPipelines returns the number of pipelines.
func (s *Store) CountPipelines(ctx context.Context) (int, error) {
	var n int
	if err := s.queryRow(ctx, qPipelineCount).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: count pipelines: %w", err)
	}
	return n, nil
}

// scanPipeline reads one row of pipelineCols.
func scanPipeline(row *sql.Row) (store.Pipeline, error) {
	var (
		p                store.Pipeline
		created, updated int64
	)
	if err := row.Scan(&p.Name, &p.Version, &p.PipelineType, &p.ExecutionMode, &created, &updated, &p.Definition); err != nil {
		return store.Pipeline{}, err
	}
	p.Created, p.Updated = fromMillis(created), fromMillis(updated)
	return p, nil
}
