-- Job session credentials (store.SessionCredential): the temporary access
-- keys handed to jobs as artifactCredentials for the embedded artifact
-- store. The secret and the session token are sealed under the master key
-- by the caller. Names use the "C" collation (byte order, as in 00001);
-- created comes from the database clock, expires is kept as given.

-- +goose Up

CREATE TABLE session_credentials (
    access_key_id text COLLATE "C" NOT NULL PRIMARY KEY,
    job_id        text COLLATE "C" NOT NULL,
    sealed_secret text        NOT NULL,
    sealed_token  text        NOT NULL,
    scope         bytea       NOT NULL,
    expires       timestamptz NOT NULL,
    created       timestamptz NOT NULL DEFAULT now()
);

-- LatestSessionCredential: a job's credential that expires last.
CREATE INDEX session_credentials_job ON session_credentials (job_id, expires, access_key_id);
-- DeleteSessionCredentials: the expired ones.
CREATE INDEX session_credentials_expires ON session_credentials (expires);

-- +goose Down
DROP TABLE session_credentials;
