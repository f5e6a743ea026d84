-- The initial schema. Tables are created unqualified, in the first schema of
-- the connection's search_path, so one database can hold several pipelined
-- deployments (and tests) in separate schemas.
--
-- Names and keys use the "C" collation: they compare and sort byte-wise, the
-- order Go's string comparison (and the SQLite backend) gives, whatever the
-- database's default collation is. Pagination ("after X") relies on the
-- index order and the comparison agreeing.
--
-- Payloads are bytea, not jsonb: jsonb would re-format the JSON (key order,
-- whitespace, duplicate keys), and the store returns what it was given.
-- Timestamps are timestamptz (microseconds) from the database clock, so
-- replicas with skewed clocks agree.

-- +goose Up

-- pipeline_heads has one row per pipeline: the summary of its latest
-- version. "Latest version of every pipeline, in name order, after X,
-- limit N" is then one range scan of its primary key instead of a
-- DISTINCT ON over every version. UpdatePipeline moves version forward with
-- a compare-and-swap in the same transaction as the new version's insert.
CREATE TABLE pipeline_heads (
    name           text COLLATE "C" NOT NULL PRIMARY KEY,
    version        integer     NOT NULL CHECK (version >= 1),
    pipeline_type  text        NOT NULL,
    execution_mode text        NOT NULL,
    created        timestamptz NOT NULL,
    updated        timestamptz NOT NULL
);

-- pipelines holds every version. Deleting a head deletes its versions.
CREATE TABLE pipelines (
    name           text COLLATE "C" NOT NULL REFERENCES pipeline_heads (name) ON DELETE CASCADE,
    version        integer     NOT NULL CHECK (version >= 1),
    pipeline_type  text        NOT NULL,
    execution_mode text        NOT NULL,
    created        timestamptz NOT NULL,
    updated        timestamptz NOT NULL,
    definition     bytea       NOT NULL,
    PRIMARY KEY (name, version)
);

-- tags of any resource, keyed by an opaque resource key (see
-- store.PipelineResource and store.ActionTypeResource).
CREATE TABLE tags (
    resource text COLLATE "C" NOT NULL,
    key      text COLLATE "C" NOT NULL,
    value    text NOT NULL,
    PRIMARY KEY (resource, key)
);

CREATE TABLE action_types (
    category   text COLLATE "C" NOT NULL,
    owner      text COLLATE "C" NOT NULL,
    provider   text COLLATE "C" NOT NULL,
    version    text COLLATE "C" NOT NULL,
    deleted    boolean     NOT NULL DEFAULT false,
    created    timestamptz NOT NULL,
    updated    timestamptz NOT NULL,
    definition bytea       NOT NULL,
    PRIMARY KEY (category, owner, provider, version)
);

-- work_items is the claimable queue. Identity ids are never reused, so an id
-- names one item for ever and a late Complete can never hit a newer item.
CREATE TABLE work_items (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue         text COLLATE "C" NOT NULL,
    attempts      integer     NOT NULL DEFAULT 0,
    claimed_by    text,        -- NULL: never claimed
    claimed_until timestamptz, -- NULL: never claimed; <= now(): claim expired
    created       timestamptz NOT NULL DEFAULT now(),
    payload       bytea       NOT NULL
);

-- Claim scans a queue oldest first (id order) and stops after max available
-- items; it must lock each row it takes, so it reads the rows anyway and
-- claimed_until need not be in the index.
CREATE INDEX work_items_claim ON work_items (queue, id);

CREATE TABLE leases (
    name       text COLLATE "C" NOT NULL PRIMARY KEY,
    holder     text        NOT NULL,
    expires_at timestamptz NOT NULL
);

-- +goose Down
DROP TABLE leases;
DROP TABLE work_items;
DROP TABLE action_types;
DROP TABLE tags;
DROP TABLE pipelines;
DROP TABLE pipeline_heads;
