-- The execution engine's state (see docs/engine.md and store.PipelineTx).
-- Timestamps are integer unix milliseconds, UTC, as the engine gives them.
-- Every table has a pipeline column: DeletePipeline deletes by it, and a
-- PipelineTx only ever touches its own pipeline's rows.

-- +goose Up

-- pipeline_runtime holds one document per pipeline. On SQLite the write
-- transaction is the pipeline's engine lock, so the row is only written by
-- SetRuntime (doc NULL never happens here; it is allowed so that the schema
-- matches PostgreSQL's, where the row doubles as the lock).
CREATE TABLE pipeline_runtime (
    pipeline TEXT NOT NULL PRIMARY KEY,
    doc      BLOB
);

-- executions: seq is the rowid. AUTOINCREMENT makes it increase across the
-- whole store and never be reused, even after the newest execution was
-- deleted with its pipeline, so a seq names one execution for ever (it is
-- ListExecutions' paging cursor). id, the engine's UUID, is the key the
-- engine looks executions up by. doc is last: columns after a large blob
-- would need its overflow pages read.
CREATE TABLE executions (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT    NOT NULL UNIQUE,
    pipeline     TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    active       INTEGER NOT NULL CHECK (active IN (0, 1)),
    client_token TEXT    NOT NULL DEFAULT '',
    created      INTEGER NOT NULL,
    updated      INTEGER NOT NULL,
    doc          BLOB    NOT NULL
);

-- ListExecutions: a pipeline's executions newest first, from a seq down.
CREATE INDEX executions_pipeline ON executions (pipeline, seq);
-- ActiveExecutions: only the few unfinished ones of a pipeline.
CREATE INDEX executions_active ON executions (pipeline, seq) WHERE active = 1;
-- A clientRequestToken starts one execution per pipeline.
CREATE UNIQUE INDEX executions_client_token ON executions (pipeline, client_token)
    WHERE client_token <> '';

CREATE TABLE timers (
    id       TEXT    NOT NULL PRIMARY KEY,
    pipeline TEXT    NOT NULL,
    due      INTEGER NOT NULL,
    payload  BLOB    NOT NULL
);

-- DueTimers: earliest first, ties by id.
CREATE INDEX timers_due ON timers (due, id);
CREATE INDEX timers_pipeline ON timers (pipeline);

CREATE TABLE jobs (
    id           TEXT    NOT NULL PRIMARY KEY,
    category     TEXT    NOT NULL,
    owner        TEXT    NOT NULL,
    provider     TEXT    NOT NULL,
    version      TEXT    NOT NULL,
    query_value  TEXT    NOT NULL DEFAULT '',
    pipeline     TEXT    NOT NULL,
    execution_id TEXT    NOT NULL DEFAULT '',
    status       TEXT    NOT NULL,
    nonce        TEXT    NOT NULL DEFAULT '',
    deadline     INTEGER NOT NULL,
    created      INTEGER NOT NULL,
    updated      INTEGER NOT NULL,
    doc          BLOB    NOT NULL
);

-- ClaimJobs scans an action type's claimable jobs oldest first. The index
-- holds only jobs a claim can take (Queued, or Dispatched and maybe past
-- their deadline): finished jobs, which pile up, are not in it, so the
-- scan never skips over them. ClaimJobs repeats the predicate word for word
-- (SQLite uses a partial index only when the query implies its WHERE).
CREATE INDEX jobs_claim ON jobs (category, owner, provider, version, created, id)
    WHERE status IN ('Queued', 'Dispatched');
CREATE INDEX jobs_pipeline ON jobs (pipeline);

-- +goose Down
DROP TABLE jobs;
DROP TABLE timers;
DROP TABLE executions;
DROP TABLE pipeline_runtime;
