-- Git hosts and connections (store.GitHost, store.GitConnection): the
-- CodeConnections resources Git source actions fetch through. Credentials
-- are sealed by the caller under the master key. Timestamps are integer
-- unix milliseconds, UTC.

-- +goose Up

CREATE TABLE git_hosts (
    id            TEXT    NOT NULL PRIMARY KEY,
    name          TEXT    NOT NULL,
    provider_type TEXT    NOT NULL,
    endpoint      TEXT    NOT NULL,
    vpc           BLOB, -- NULL: none
    created       INTEGER NOT NULL
);

CREATE TABLE git_connections (
    id                 TEXT    NOT NULL PRIMARY KEY,
    name               TEXT    NOT NULL,
    provider_type      TEXT    NOT NULL,
    host_id            TEXT    NOT NULL, -- '' for cloud providers
    status             TEXT    NOT NULL,
    sealed_credentials TEXT    NOT NULL, -- '' until set
    created            INTEGER NOT NULL,
    updated            INTEGER NOT NULL
);

-- DeleteGitHost refuses while a connection uses the host.
CREATE INDEX git_connections_host ON git_connections (host_id);

-- +goose Down
DROP TABLE git_connections;
DROP TABLE git_hosts;
