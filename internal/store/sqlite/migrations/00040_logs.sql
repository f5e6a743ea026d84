-- Job logs (store.LogStream, store.LogChunk): one stream per job, its bytes
-- in chunks keyed (job_id, seq) with their byte range. Times are integer
-- unix milliseconds, UTC.

-- +goose Up

CREATE TABLE log_streams (
    job_id       TEXT    NOT NULL PRIMARY KEY,
    pipeline     TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    length       INTEGER NOT NULL,
    tail         BLOB    NOT NULL,
    next_seq     INTEGER NOT NULL,
    first_event  INTEGER, -- NULL: no event yet
    last_event   INTEGER,
    stored_bytes INTEGER NOT NULL,
    created      INTEGER NOT NULL,
    updated      INTEGER NOT NULL,
    finished     INTEGER, -- NULL: open
    compacted    INTEGER NOT NULL DEFAULT 0
);

-- DescribeLogStreams and lookups by name: a pipeline's streams in name order.
CREATE UNIQUE INDEX log_streams_name ON log_streams (pipeline, name);
-- The compactor: open or uncompacted streams.
CREATE INDEX log_streams_pending ON log_streams (updated) WHERE compacted = 0;
-- The retention sweep.
CREATE INDEX log_streams_finished ON log_streams (finished) WHERE finished IS NOT NULL;

CREATE TABLE log_chunks (
    job_id      TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    off         INTEGER NOT NULL,
    length      INTEGER NOT NULL,
    first_event INTEGER NOT NULL,
    last_event  INTEGER NOT NULL,
    data        BLOB    NOT NULL,
    PRIMARY KEY (job_id, seq)
);

-- Reads seek by byte offset.
CREATE INDEX log_chunks_off ON log_chunks (job_id, off);

-- +goose Down
DROP TABLE log_chunks;
DROP TABLE log_streams;
