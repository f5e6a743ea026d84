-- The OIDC issuer's key set (store.SigningKeys): one row, written only by
-- compare-and-swap on version. doc is the identity service's document, with
-- private keys already sealed; bytea, not jsonb, so that it round-trips byte
-- for byte. updated comes from the database clock.

-- +goose Up

CREATE TABLE signing_keys (
    -- A fixed primary key makes this a single-row table: of replicas racing
    -- to store the first key set, INSERT ... ON CONFLICT DO NOTHING lets
    -- exactly one in, whatever the isolation level.
    id      smallint    NOT NULL PRIMARY KEY CHECK (id = 1),
    version bigint      NOT NULL CHECK (version > 0),
    doc     bytea       NOT NULL,
    updated timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE signing_keys;
