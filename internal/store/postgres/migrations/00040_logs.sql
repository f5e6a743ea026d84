-- Job logs (store.LogStream, store.LogChunk): one stream per job, its bytes
-- in chunks keyed (job_id, seq) with their byte range. Names use the "C"
-- collation (byte order); times are bigint unix milliseconds (the event
-- timestamps of CloudWatch Logs), given by the service.

-- +goose Up

CREATE TABLE log_streams (
    job_id       text COLLATE "C" NOT NULL PRIMARY KEY,
    pipeline     text COLLATE "C" NOT NULL,
    name         text COLLATE "C" NOT NULL,
    length       bigint NOT NULL,
    tail         bytea  NOT NULL,
    next_seq     bigint NOT NULL,
    first_event  bigint, -- NULL: no event yet
    last_event   bigint,
    stored_bytes bigint NOT NULL,
    created      bigint NOT NULL,
    updated      bigint NOT NULL,
    finished     bigint, -- NULL: open
    compacted    boolean NOT NULL DEFAULT false
);

-- DescribeLogStreams and lookups by name: a pipeline's streams in name order.
CREATE UNIQUE INDEX log_streams_name ON log_streams (pipeline, name);
-- The compactor: open or uncompacted streams.
CREATE INDEX log_streams_pending ON log_streams (updated) WHERE NOT compacted;
-- The retention sweep.
CREATE INDEX log_streams_finished ON log_streams (finished) WHERE finished IS NOT NULL;

CREATE TABLE log_chunks (
    job_id      text COLLATE "C" NOT NULL,
    seq         bigint NOT NULL,
    off         bigint NOT NULL,
    length      bigint NOT NULL,
    first_event bigint NOT NULL,
    last_event  bigint NOT NULL,
    data        bytea  NOT NULL,
    PRIMARY KEY (job_id, seq)
);

-- Reads seek by byte offset.
CREATE INDEX log_chunks_off ON log_chunks (job_id, off);
-- Chunks are raw output or already gzip-compressed blocks: TOAST keeps them
-- out of line without compressing them again.
ALTER TABLE log_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

-- +goose Down
DROP TABLE log_chunks;
DROP TABLE log_streams;
