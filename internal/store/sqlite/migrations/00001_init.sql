-- The initial schema. Every timestamp is integer unix milliseconds, UTC.
-- Text comparisons use SQLite's default BINARY collation, so names sort in
-- byte order, the same order Go's string comparison gives.

-- +goose Up

-- pipeline_heads has one row per pipeline: the summary of its latest
-- version. It exists so that "latest version of every pipeline, in name
-- order, after X, limit N" is one range scan of a small clustered index
-- (WITHOUT ROWID: the primary key is the table) instead of a GROUP BY over
-- every version. UpdatePipeline maintains it in the same transaction as the
-- new version. Deleting a head deletes every version (ON DELETE CASCADE).
CREATE TABLE pipeline_heads (
    name           TEXT    NOT NULL PRIMARY KEY,
    version        INTEGER NOT NULL,
    pipeline_type  TEXT    NOT NULL,
    execution_mode TEXT    NOT NULL,
    created        INTEGER NOT NULL,
    updated        INTEGER NOT NULL
) WITHOUT ROWID;

-- pipelines holds every version. definition is the last column on purpose:
-- SQLite reads a row's columns in order, so columns after a large blob would
-- need its overflow pages read too.
CREATE TABLE pipelines (
    name           TEXT    NOT NULL REFERENCES pipeline_heads (name) ON DELETE CASCADE,
    version        INTEGER NOT NULL CHECK (version >= 1),
    pipeline_type  TEXT    NOT NULL,
    execution_mode TEXT    NOT NULL,
    created        INTEGER NOT NULL,
    updated        INTEGER NOT NULL,
    definition     BLOB    NOT NULL,
    PRIMARY KEY (name, version)
);

-- tags of any resource, by resource key (store.PipelineResource,
-- store.ActionTypeResource, ...): the store knows nothing of ARNs.
CREATE TABLE tags (
    resource TEXT NOT NULL,
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (resource, key)
) WITHOUT ROWID;

CREATE TABLE action_types (
    category   TEXT    NOT NULL,
    owner      TEXT    NOT NULL,
    provider   TEXT    NOT NULL,
    version    TEXT    NOT NULL,
    deleted    INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1)),
    created    INTEGER NOT NULL,
    updated    INTEGER NOT NULL,
    definition BLOB    NOT NULL,
    PRIMARY KEY (category, owner, provider, version)
);

-- work_items is the claimable queue. AUTOINCREMENT keeps ids from being
-- reused after the newest item is completed, so an id names one item for
-- ever and a late Complete can never hit a newer item.
CREATE TABLE work_items (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    queue         TEXT    NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    claimed_by    TEXT,    -- NULL: never claimed
    claimed_until INTEGER, -- NULL: never claimed; <= now: claim expired
    created       INTEGER NOT NULL,
    payload       BLOB    NOT NULL
);

-- Claim scans a queue oldest first (id order) and skips live claims; the
-- index covers both, so the scan never touches the table rows it skips.
CREATE INDEX work_items_claim ON work_items (queue, id, claimed_until);

CREATE TABLE leases (
    name    TEXT    NOT NULL PRIMARY KEY,
    holder  TEXT    NOT NULL,
    expires INTEGER NOT NULL
) WITHOUT ROWID;

-- +goose Down
DROP TABLE leases;
DROP TABLE work_items;
DROP TABLE action_types;
DROP TABLE tags;
DROP TABLE pipelines;
DROP TABLE pipeline_heads;
