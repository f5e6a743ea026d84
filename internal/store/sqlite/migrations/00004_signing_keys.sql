-- The OIDC issuer's key set (store.SigningKeys): one row, written only by
-- compare-and-swap on version. doc is the identity service's document, with
-- private keys already sealed; a BLOB, so that it round-trips byte for
-- byte. updated is integer unix milliseconds, UTC.

-- +goose Up

CREATE TABLE signing_keys (
    -- A fixed primary key makes this a single-row table: the first write of
    -- two racing writers wins the INSERT and the other changes nothing.
    id      INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL CHECK (version > 0),
    doc     BLOB    NOT NULL,
    updated INTEGER NOT NULL
);

-- +goose Down
DROP TABLE signing_keys;
