-- The execution engine's state (see docs/engine.md and store.PipelineTx).
-- Keys and names use the "C" collation (byte order, as in 00001); documents
-- are bytea (kept byte for byte); timestamps are timestamptz holding what
-- the engine gave, at millisecond precision. Every table has a pipeline
-- column: DeletePipeline deletes by it, and a PipelineTx only ever touches
-- its own pipeline's rows.

-- +goose Up

-- pipeline_runtime holds one document per pipeline, and its row is the
-- pipeline's engine lock: InPipeline inserts it if missing (doc NULL: no
-- runtime yet) and locks it FOR UPDATE before anything else, so transitions
-- of one pipeline serialize across replicas.
CREATE TABLE pipeline_runtime (
    pipeline text COLLATE "C" NOT NULL PRIMARY KEY,
    doc      bytea
);

-- executions: seq increases across the whole store (an identity is never
-- reused, so a seq names one execution for ever: it is ListExecutions'
-- paging cursor).
CREATE TABLE executions (
    id           text COLLATE "C" NOT NULL PRIMARY KEY,
    seq          bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    pipeline     text COLLATE "C" NOT NULL,
    status       text        NOT NULL,
    active       boolean     NOT NULL,
    client_token text COLLATE "C" NOT NULL DEFAULT '',
    created      timestamptz NOT NULL,
    updated      timestamptz NOT NULL,
    doc          bytea       NOT NULL
);

-- ListExecutions: a pipeline's executions newest first, from a seq down.
CREATE INDEX executions_pipeline ON executions (pipeline, seq);
-- ActiveExecutions: only the few unfinished ones of a pipeline.
CREATE INDEX executions_active ON executions (pipeline, seq) WHERE active;
-- A clientRequestToken starts one execution per pipeline.
CREATE UNIQUE INDEX executions_client_token ON executions (pipeline, client_token)
    WHERE client_token <> '';

CREATE TABLE timers (
    id       text COLLATE "C" NOT NULL PRIMARY KEY,
    pipeline text COLLATE "C" NOT NULL,
    due      timestamptz NOT NULL,
    payload  bytea       NOT NULL
);

-- DueTimers: earliest first, ties by id.
CREATE INDEX timers_due ON timers (due, id);
CREATE INDEX timers_pipeline ON timers (pipeline);

CREATE TABLE jobs (
    id           text COLLATE "C" NOT NULL PRIMARY KEY,
    category     text COLLATE "C" NOT NULL,
    owner        text COLLATE "C" NOT NULL,
    provider     text COLLATE "C" NOT NULL,
    version      text COLLATE "C" NOT NULL,
    query_value  text COLLATE "C" NOT NULL DEFAULT '',
    pipeline     text COLLATE "C" NOT NULL,
    execution_id text COLLATE "C" NOT NULL DEFAULT '',
    status       text        NOT NULL,
    nonce        text        NOT NULL DEFAULT '',
    deadline     timestamptz NOT NULL,
    created      timestamptz NOT NULL,
    updated      timestamptz NOT NULL,
    doc          bytea       NOT NULL
);

-- ClaimJobs scans an action type's claimable jobs oldest first and locks
-- the ones it takes (FOR UPDATE SKIP LOCKED). The index holds only jobs a
-- claim can take (Queued, or Dispatched and maybe past their deadline):
-- finished jobs, which pile up, are not in it, so the scan never reads
-- them. ClaimJobs repeats the predicate with the same literals, so the
-- planner can prove it implies the index's.
CREATE INDEX jobs_claim ON jobs (category, owner, provider, version, created, id)
    WHERE status IN ('Queued', 'Dispatched');
CREATE INDEX jobs_pipeline ON jobs (pipeline);

-- +goose Down
DROP TABLE jobs;
DROP TABLE timers;
DROP TABLE executions;
DROP TABLE pipeline_runtime;
