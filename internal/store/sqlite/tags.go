package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/pipelined/pipelined/internal/store"
)

// Tags returns the tags of a resource key sorted by key (byte order).
func (s *Store) Tags(ctx context.Context, resource string) ([]store.Tag, error) {
	rows, err := s.query(ctx, qTags, resource)
	if err != nil {
		return nil, fmt.Errorf("sqlite: tags of %q: %w", resource, err)
	}
	tags, err := scanTags(rows)
	if err != nil {
		return nil, fmt.Errorf("sqlite: tags of %q: %w", resource, err)
	}
	return tags, nil
}

// UpdateTags replaces a resource's tags with fn's result in one
// transaction. When fn returns a key twice, the last value wins.
func (s *Store) UpdateTags(ctx context.Context, resource string, fn func(current []store.Tag) ([]store.Tag, error)) error {
	var fnErr error
	err := s.write(ctx, func(w *wtx) error {
		rows, err := w.query(qTags, resource)
		if err != nil {
			return err
		}
		current, err := scanTags(rows)
		if err != nil {
			return err
		}
		next, err := fn(current)
		if err != nil {
			fnErr = err
			return err
		}
		return replaceTags(w, resource, next)
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return fmt.Errorf("sqlite: update tags of %q: %w", resource, err)
	}
	return nil
}

// replaceTags makes tags the resource's only tags.
func replaceTags(w *wtx, resource string, tags []store.Tag) error {
	if _, err := w.exec(qTagsClear, resource); err != nil {
		return err
	}
	for _, t := range tags {
		if _, err := w.exec(qTagPut, resource, t.Key, t.Value); err != nil {
			return err
		}
	}
	return nil
}

// scanTags reads (key, value) rows and closes them.
func scanTags(rows *sql.Rows) ([]store.Tag, error) {
	defer rows.Close()
	tags := []store.Tag{}
	for rows.Next() {
		var t store.Tag
		if err := rows.Scan(&t.Key, &t.Value); err != nil {
			return nil, err
		}
		tags = append(tags, t)
	}
	return tags, rows.Err()
}
