-- Third-party clients (store.ThirdPartyClient): the clientId/clientToken
-- pairs issued for pipeline actions of ThirdParty action types. Only a hash
-- of each token is kept. Timestamps are integer unix milliseconds, UTC.

-- +goose Up

CREATE TABLE third_party_clients (
    id               TEXT    NOT NULL PRIMARY KEY,
    pipeline         TEXT    NOT NULL,
    stage            TEXT    NOT NULL,
    action           TEXT    NOT NULL,
    category         TEXT    NOT NULL,
    owner            TEXT    NOT NULL,
    provider         TEXT    NOT NULL,
    version          TEXT    NOT NULL,
    pipeline_created INTEGER NOT NULL,
    -- token_hash is how a worker's token is looked up: unique, indexed.
    token_hash       BLOB    NOT NULL UNIQUE,
    created          INTEGER NOT NULL,
    revoked          INTEGER -- NULL: active
);

-- A pipeline action has at most one active client.
CREATE UNIQUE INDEX third_party_clients_active ON third_party_clients (pipeline, stage, action)
    WHERE revoked IS NULL;
-- ListClients: a pipeline's clients in (stage, action, created, id) order.
CREATE INDEX third_party_clients_list ON third_party_clients (pipeline, stage, action, created, id);

-- +goose Down
DROP TABLE third_party_clients;
