-- Worker keys (store.WorkerKey): long-lived access key pairs an operator
-- issues for the job workers of one action type. SigV4 needs the secret to
-- verify a signature, so it is kept sealed (encrypted by the caller), never
-- hashed. Names use the "C" collation (byte order, as in 00001); created
-- and revoked come from the database clock.

-- +goose Up

CREATE TABLE worker_keys (
    access_key_id text COLLATE "C" NOT NULL PRIMARY KEY,
    sealed_secret text             NOT NULL,
    category      text COLLATE "C" NOT NULL,
    owner         text COLLATE "C" NOT NULL,
    provider      text COLLATE "C" NOT NULL,
    version       text COLLATE "C" NOT NULL,
    description   text             NOT NULL,
    created       timestamptz      NOT NULL DEFAULT now(),
    revoked       timestamptz -- NULL: active
);

-- ListWorkerKeys: every key in (created, access_key_id) order.
CREATE INDEX worker_keys_list ON worker_keys (created, access_key_id);

-- +goose Down
DROP TABLE worker_keys;
