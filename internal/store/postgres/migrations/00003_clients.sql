-- Third-party clients (store.ThirdPartyClient): the clientId/clientToken
-- pairs issued for pipeline actions of ThirdParty action types. Only a hash
-- of each token is kept. Names use the "C" collation (byte order, as in
-- 00001); created and revoked come from the database clock.

-- +goose Up

CREATE TABLE third_party_clients (
    id               text COLLATE "C" NOT NULL PRIMARY KEY,
    pipeline         text COLLATE "C" NOT NULL,
    stage            text COLLATE "C" NOT NULL,
    action           text COLLATE "C" NOT NULL,
    category         text COLLATE "C" NOT NULL,
    owner            text COLLATE "C" NOT NULL,
    provider         text COLLATE "C" NOT NULL,
    version          text COLLATE "C" NOT NULL,
    pipeline_created timestamptz NOT NULL,
    -- token_hash is how a worker's token is looked up: unique, indexed.
    token_hash       bytea       NOT NULL UNIQUE,
    created          timestamptz NOT NULL DEFAULT now(),
    revoked          timestamptz -- NULL: active
);

-- A pipeline action has at most one active client.
CREATE UNIQUE INDEX third_party_clients_active ON third_party_clients (pipeline, stage, action)
    WHERE revoked IS NULL;
-- ListClients: a pipeline's clients in (stage, action, created, id) order.
CREATE INDEX third_party_clients_list ON third_party_clients (pipeline, stage, action, created, id);

-- +goose Down
DROP TABLE third_party_clients;
