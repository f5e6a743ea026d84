package sqlite

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/pipelined/pipelined/internal/store"
)

// Enqueue adds an item to a queue and returns its id. Ids grow with every
// item and are never reused.
func (s *Store) Enqueue(ctx context.Context, queue string, payload []byte) (int64, error) {
	var id int64
	err := s.write(ctx, func(w *wtx) error {
		res, err := w.exec(qEnqueue, queue, toMillis(now()), blob(payload))
		if err != nil {
			return err
		}
		id, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: enqueue to %q: %w", queue, err)
	}
	return id, nil
}

// Claim hands up to max available items of queue to owner for leaseFor,
// oldest (lowest id) first. An item is available when it was never claimed
// or its claim has expired. The select and the update are one statement in
// one write transaction, and SQLite runs one write transaction at a time
// (across processes too), so no two claimers ever get the same item.
func (s *Store) Claim(ctx context.Context, queue, owner string, max int, leaseFor time.Duration) ([]store.WorkItem, error) {
	if max <= 0 {
		return nil, nil
	}
	var items []store.WorkItem
	err := s.write(ctx, func(w *wtx) error {
		t := now()
		until := t.Add(leaseFor)
		rows, err := w.query(qClaim, owner, toMillis(until), queue, toMillis(t), max)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				it             store.WorkItem
				until, created int64
			)
			if err := rows.Scan(&it.ID, &it.Queue, &it.Attempts, &it.ClaimedBy, &until, &created, &it.Payload); err != nil {
				return err
			}
			it.ClaimedUntil, it.Created = fromMillis(until), fromMillis(created)
			items = append(items, it)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: claim from %q for %q: %w", queue, owner, err)
	}
	// RETURNING gives no order guarantee.
	slices.SortFunc(items, func(a, b store.WorkItem) int { return cmp.Compare(a.ID, b.ID) })
	return items, nil
}

// Complete removes an item claimed by owner. An expired claim still counts
// until another claimer takes the item.
func (s *Store) Complete(ctx context.Context, id int64, owner string) error {
	err := s.write(ctx, func(w *wtx) error {
		res, err := w.exec(qComplete, id, owner)
		if err != nil {
			return err
		}
		if n, err := rowsAffected(res); err != nil {
			return err
		} else if n == 0 {
			return store.ErrNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: complete item %d for %q: %w", id, owner, err)
	}
	return nil
}
