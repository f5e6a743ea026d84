package sqlite

import (
	"context"
	"fmt"
	"strings"

	"github.com/pipelined/pipelined/internal/store"
)

// Counts for metrics (store.Counter), on the read pool. OpenJobs repeats
// the predicate of the jobs_open index word for word (SQLite uses a
// partial index only when the query implies its WHERE).
const (
	qOpenJobs = `SELECT category, owner, provider, version, status, count(*) FROM jobs
		WHERE status IN ('Queued', 'Dispatched', 'InProgress')
		GROUP BY category, owner, provider, version, status`
	qCountTimers           = `SELECT count(*) FROM timers WHERE substr(id, -length(?)) = ?`
	qCountTimersByPipeline = `SELECT pipeline, count(*) FROM timers WHERE substr(id, -length(?)) = ? GROUP BY pipeline`
)

// OpenJobs counts open jobs by action type and status.
func (s *Store) OpenJobs(ctx context.Context) ([]store.JobCount, error) {
	rows, err := s.query(ctx, qOpenJobs)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open jobs: %w", err)
	}
	defer rows.Close()
	var out []store.JobCount
	for rows.Next() {
		var c store.JobCount
		if err := rows.Scan(&c.ActionType.Category, &c.ActionType.Owner, &c.ActionType.Provider, &c.ActionType.Version, &c.Status, &c.Count); err != nil {
			return nil, fmt.Errorf("sqlite: open jobs: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: open jobs: %w", err)
	}
	return out, nil
}

// CountTimers counts the timers whose ID ends with suffix.
func (s *Store) CountTimers(ctx context.Context, suffix string) (int, error) {
	if suffix == "" || strings.ContainsRune(suffix, 0) {
		return 0, fmt.Errorf("sqlite: count timers: the suffix must be a non-empty string")
	}
	var n int
	if err := s.queryRow(ctx, qCountTimers, suffix, suffix).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: count timers: %w", err)
	}
	return n, nil
}

// CountTimersByPipeline counts the timers whose ID ends with suffix, by
// pipeline.
func (s *Store) CountTimersByPipeline(ctx context.Context, suffix string) (map[string]int, error) {
	if suffix == "" || strings.ContainsRune(suffix, 0) {
		return nil, fmt.Errorf("sqlite: count timers: the suffix must be a non-empty string")
	}
	rows, err := s.query(ctx, qCountTimersByPipeline, suffix, suffix)
	if err != nil {
		return nil, fmt.Errorf("sqlite: count timers by pipeline: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var p string
		var n int
		if err := rows.Scan(&p, &n); err != nil {
			return nil, fmt.Errorf("sqlite: count timers by pipeline: %w", err)
		}
		out[p] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: count timers by pipeline: %w", err)
	}
	return out, nil
}
