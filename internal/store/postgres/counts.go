package postgres

import (
	"context"
	"fmt"

	"github.com/pipelined/pipelined/internal/store"
)

// Counts for metrics (store.Counter). OpenJobs reads the jobs_open
// partial index.

// OpenJobs counts open jobs by action type and status.
func (s *Store) OpenJobs(ctx context.Context) ([]store.JobCount, error) {
	rows, err := s.pool.Query(ctx, `SELECT category, owner, provider, version, status, count(*) FROM jobs
		WHERE status IN ('Queued', 'Dispatched', 'InProgress')
		GROUP BY category, owner, provider, version, status`)
	if err != nil {
		return nil, fmt.Errorf("postgres: open jobs: %w", mapErr(err))
	}
	defer rows.Close()
	var out []store.JobCount
	for rows.Next() {
		var c store.JobCount
		if err := rows.Scan(&c.ActionType.Category, &c.ActionType.Owner, &c.ActionType.Provider, &c.ActionType.Version, &c.Status, &c.Count); err != nil {
			return nil, fmt.Errorf("postgres: open jobs: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: open jobs: %w", mapErr(err))
	}
	return out, nil
}

// CountTimers counts the timers whose ID ends with suffix.
func (s *Store) CountTimers(ctx context.Context, suffix string) (int, error) {
	if suffix == "" {
		return 0, fmt.Errorf("postgres: count timers: the suffix must be a non-empty string")
	}
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM timers WHERE right(id, length($1)) = $1`, suffix).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: count timers: %w", mapErr(err))
	}
	return n, nil
}

// CountTimersByPipeline counts the timers whose ID ends with suffix, by
// pipeline.
func (s *Store) CountTimersByPipeline(ctx context.Context, suffix string) (map[string]int, error) {
	if suffix == "" {
		return nil, fmt.Errorf("postgres: count timers: the suffix must be a non-empty string")
	}
	rows, err := s.pool.Query(ctx, `SELECT pipeline, count(*) FROM timers WHERE right(id, length($1)) = $1 GROUP BY pipeline`, suffix)
	if err != nil {
		return nil, fmt.Errorf("postgres: count timers by pipeline: %w", mapErr(err))
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var p string
		var n int
		if err := rows.Scan(&p, &n); err != nil {
			return nil, fmt.Errorf("postgres: count timers by pipeline: %w", err)
		}
		out[p] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: count timers by pipeline: %w", mapErr(err))
	}
	return out, nil
}
