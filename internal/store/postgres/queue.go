package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pipelined/pipelined/internal/store"
)

// Enqueue adds an item to a queue and returns its id. Ids grow with every
// item and are never reused.
func (s *Store) Enqueue(ctx context.Context, queue string, payload []byte) (int64, error) {
	var id int64
	if err := s.pool.QueryRow(ctx, `INSERT INTO work_items (queue, payload) VALUES ($1, $2) RETURNING id`,
		queue, blob(payload)).Scan(&id); err != nil {
		return 0, fmt.Errorf("postgres: enqueue to %q: %w", queue, mapErr(err))
	}
	return id, nil
}

// Claim hands up to max available items of queue to owner for leaseFor,
// oldest (lowest id) first. An item is available when it was never claimed
// or its claim has expired (by the database clock).
//
// Select and update are one statement, so one transaction. FOR UPDATE SKIP
// LOCKED makes concurrent claimers, on any replica, pass over the rows
// another one is taking instead of waiting for them, and when a row was
// claimed and committed between this statement's snapshot and its lock,
// PostgreSQL re-checks the WHERE on the new row version and drops it: no
// two claimers ever get the same item. A claimer may get fewer than max
// items while others are claiming; the rest are there for the next call.
func (s *Store) Claim(ctx context.Context, queue, owner string, max int, leaseFor time.Duration) ([]store.WorkItem, error) {
	if max <= 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `WITH available AS (
			SELECT id FROM work_items
			WHERE queue = $1 AND (claimed_until IS NULL OR claimed_until <= now())
			ORDER BY id
			LIMIT $2
			FOR UPDATE SKIP LOCKED
		)
		UPDATE work_items w
		SET claimed_by = $3, claimed_until = now() + $4 * interval '1 microsecond',
			attempts = w.attempts + 1
		FROM available
		WHERE w.id = available.id
		RETURNING w.id, w.queue, w.attempts, w.claimed_by, w.claimed_until, w.created, w.payload`,
		queue, max, owner, micros(leaseFor))
	if err != nil {
		return nil, fmt.Errorf("postgres: claim from %q for %q: %w", queue, owner, mapErr(err))
	}
	var (
		items []store.WorkItem
		it    store.WorkItem
	)
	_, err = pgx.ForEachRow(rows, []any{&it.ID, &it.Queue, &it.Attempts, &it.ClaimedBy, &it.ClaimedUntil, &it.Created, &it.Payload}, func() error {
		it.ClaimedUntil, it.Created = utc(it.ClaimedUntil), utc(it.Created)
		items = append(items, it)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: claim from %q for %q: %w", queue, owner, mapErr(err))
	}
	// RETURNING gives no order guarantee.
	slices.SortFunc(items, func(a, b store.WorkItem) int { return cmp.Compare(a.ID, b.ID) })
	return items, nil
}

// Complete removes an item claimed by owner. An expired claim still counts
// until another claimer takes the item.
func (s *Store) Complete(ctx context.Context, id int64, owner string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM work_items WHERE id = $1 AND claimed_by = $2`, id, owner)
	if err == nil && tag.RowsAffected() == 0 {
		err = store.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("postgres: complete item %d for %q: %w", id, owner, mapErr(err))
	}
	return nil
}
