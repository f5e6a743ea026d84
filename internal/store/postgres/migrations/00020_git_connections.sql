-- Git hosts and connections (store.GitHost, store.GitConnection): the
-- CodeConnections resources Git source actions fetch through. Credentials
-- are sealed by the caller under the master key. Ids use the "C" collation
-- (byte order, as in 00001); times come from the database clock.

-- +goose Up

CREATE TABLE git_hosts (
    id            text COLLATE "C" NOT NULL PRIMARY KEY,
    name          text             NOT NULL,
    provider_type text             NOT NULL,
    endpoint      text             NOT NULL,
    vpc           bytea, -- NULL: none
    created       timestamptz      NOT NULL DEFAULT now()
);

CREATE TABLE git_connections (
    id                 text COLLATE "C" NOT NULL PRIMARY KEY,
    name               text             NOT NULL,
    provider_type      text COLLATE "C" NOT NULL,
    host_id            text COLLATE "C" NOT NULL, -- '' for cloud providers
    status             text             NOT NULL,
    sealed_credentials text             NOT NULL, -- '' until set
    created            timestamptz      NOT NULL DEFAULT now(),
    updated            timestamptz      NOT NULL DEFAULT now()
);

-- DeleteGitHost refuses while a connection uses the host.
CREATE INDEX git_connections_host ON git_connections (host_id);

-- +goose Down
DROP TABLE git_connections;
DROP TABLE git_hosts;
