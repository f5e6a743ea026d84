package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/pipelined/pipelined/internal/store"
)

const qTags = `SELECT key, value FROM tags WHERE resource = $1 ORDER BY key`

// Tags returns the tags of a resource key sorted by key (byte order); none
// is an empty, non-nil slice.
func (s *Store) Tags(ctx context.Context, resource string) ([]store.Tag, error) {
	tags, err := queryTags(ctx, s.pool, resource)
	if err != nil {
		return nil, fmt.Errorf("postgres: tags of %q: %w", resource, mapErr(err))
	}
	return tags, nil
}

// UpdateTags replaces a resource's tags with fn's result in one
// transaction. When fn returns a key twice, the last value wins.
//
// Concurrent updates of one resource (also from other replicas) queue on a
// transaction-scoped advisory lock taken before the read, so each fn sees
// the tags the previous one stored and none is lost. A row lock would not
// do: a resource without tags has no row to lock.
func (s *Store) UpdateTags(ctx context.Context, resource string, fn func(current []store.Tag) ([]store.Tag, error)) error {
	var fnErr error
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := lockKey(ctx, tx, advisoryClassTags, resource); err != nil {
			return err
		}
		current, err := queryTags(ctx, tx, resource)
		if err != nil {
			return err
		}
		next, err := fn(current)
		if err != nil {
			fnErr = err
			return err
		}
		return replaceTags(ctx, tx, resource, next)
	})
	if fnErr != nil {
		// fn's own error, as fn returned it.
		return fnErr
	}
	if err != nil {
		return fmt.Errorf("postgres: update tags of %q: %w", resource, mapErr(err))
	}
	return nil
}

// querier is a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func queryTags(ctx context.Context, q querier, resource string) ([]store.Tag, error) {
	rows, err := q.Query(ctx, qTags, resource)
	if err != nil {
		return nil, err
	}
	tags := []store.Tag{}
	var t store.Tag
	_, err = pgx.ForEachRow(rows, []any{&t.Key, &t.Value}, func() error {
		tags = append(tags, t)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return tags, nil
}

// replaceTags makes tags the resource's only tags, in two statements
// whatever their number: the new ones go in as two arrays. A key given
// twice keeps its last value (one INSERT cannot write a row twice, so
// duplicates are removed here).
func replaceTags(ctx context.Context, tx pgx.Tx, resource string, tags []store.Tag) error {
	if _, err := tx.Exec(ctx, `DELETE FROM tags WHERE resource = $1`, resource); err != nil {
		return err
	}
	if len(tags) == 0 {
		return nil
	}
	last := make(map[string]int, len(tags))
	for i, t := range tags {
		last[t.Key] = i
	}
	keys := make([]string, 0, len(last))
	values := make([]string, 0, len(last))
	for i, t := range tags {
		if last[t.Key] == i {
			keys = append(keys, t.Key)
			values = append(values, t.Value)
		}
	}
	_, err := tx.Exec(ctx, `INSERT INTO tags (resource, key, value)
		SELECT $1, k, v FROM unnest($2::text[], $3::text[]) AS t (k, v)`,
		resource, keys, values)
	return err
}
