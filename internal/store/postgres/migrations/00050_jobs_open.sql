-- +goose Up
-- Open jobs (queued, dispatched or in progress) by action type and status,
-- for the metrics' counts (store.Counter.OpenJobs): finished jobs, which
-- pile up, are not in it, so a count reads only the open ones.
CREATE INDEX jobs_open ON jobs (category, owner, provider, version, status)
    WHERE status IN ('Queued', 'Dispatched', 'InProgress');

-- +goose Down
DROP INDEX jobs_open;
