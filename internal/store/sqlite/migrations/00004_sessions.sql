-- Job session credentials (store.SessionCredential): the temporary access
-- keys handed to jobs as artifactCredentials for the embedded artifact
-- store. The secret and the session token are sealed under the master key
-- by the caller. Timestamps are integer unix milliseconds, UTC.

-- +goose Up

CREATE TABLE session_credentials (
    access_key_id TEXT    NOT NULL PRIMARY KEY,
    job_id        TEXT    NOT NULL,
    sealed_secret TEXT    NOT NULL,
    sealed_token  TEXT    NOT NULL,
    scope         BLOB    NOT NULL,
    expires       INTEGER NOT NULL,
    created       INTEGER NOT NULL
);

-- LatestSessionCredential: a job's credential that expires last.
CREATE INDEX session_credentials_job ON session_credentials (job_id, expires, access_key_id);
-- DeleteSessionCredentials: the expired ones.
CREATE INDEX session_credentials_expires ON session_credentials (expires);

-- +goose Down
DROP TABLE session_credentials;
