package store

import "context"

// JobCount is how many jobs of an action type are in one status.
type JobCount struct {
	ActionType ActionTypeKey
	Status     string
	Count      int
}

// Counter counts engine state for metrics, from the database, so that
// every replica reports the same numbers and a restart loses none. Both
// stores implement it; each count reads an index, never the documents.
type Counter interface {
	// OpenJobs counts the jobs that are JobQueued, JobDispatched or
	// InProgress, by action type and status (no row for a count of 0).
	OpenJobs(ctx context.Context) ([]JobCount, error)
	// CountTimers counts the timers whose ID ends with suffix.
	CountTimers(ctx context.Context, suffix string) (int, error)
	// CountTimersByPipeline counts the same timers by pipeline (no entry
	// for a count of 0): the console's pending approvals per pipeline in
	// one query, whatever the number of pipelines.
	CountTimersByPipeline(ctx context.Context, suffix string) (map[string]int, error)
}

// OpenJobStatuses are the statuses OpenJobs counts.
var OpenJobStatuses = []string{JobQueued, JobDispatched, "InProgress"}
