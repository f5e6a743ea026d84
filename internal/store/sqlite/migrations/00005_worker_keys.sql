-- Worker keys (store.WorkerKey): long-lived access key pairs an operator
-- issues for the job workers of one action type. SigV4 needs the secret to
-- verify a signature, so it is kept sealed (encrypted by the caller), never
-- hashed. Timestamps are integer unix milliseconds, UTC.

-- +goose Up

CREATE TABLE worker_keys (
    access_key_id TEXT    NOT NULL PRIMARY KEY,
    sealed_secret TEXT    NOT NULL,
    category      TEXT    NOT NULL,
    owner         TEXT    NOT NULL,
    provider      TEXT    NOT NULL,
    version       TEXT    NOT NULL,
    description   TEXT    NOT NULL,
    created       INTEGER NOT NULL,
    revoked       INTEGER -- NULL: active
);

-- ListWorkerKeys: every key in (created, access_key_id) order.
CREATE INDEX worker_keys_list ON worker_keys (created, access_key_id);

-- +goose Down
DROP TABLE worker_keys;
