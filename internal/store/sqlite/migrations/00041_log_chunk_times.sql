-- Reads from a time on (FilterLogEvents' and GetLogEvents' startTime) find
-- the first chunk whose last event is at or after it.

-- +goose Up
CREATE INDEX log_chunks_time ON log_chunks (job_id, last_event);

-- +goose Down
DROP INDEX log_chunks_time;
