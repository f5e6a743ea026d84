-- Console users (store.ConsoleUser) and their sessions (store.ConsoleSession).
-- Passwords are kept as the caller's PHC hash string; sessions by a hash of
-- their id, never the id. Timestamps are integer unix milliseconds, UTC.

-- +goose Up

CREATE TABLE console_users (
    name          TEXT    NOT NULL PRIMARY KEY,
    role          TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0,
    created       INTEGER NOT NULL,
    updated       INTEGER NOT NULL
);

CREATE TABLE console_sessions (
    id_hash   BLOB    NOT NULL PRIMARY KEY,
    user_name TEXT    NOT NULL REFERENCES console_users (name) ON DELETE CASCADE,
    created   INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    expires   INTEGER NOT NULL
);

-- Signing a user out everywhere (disabled, new password).
CREATE INDEX console_sessions_user ON console_sessions (user_name);

-- +goose Down
DROP TABLE console_sessions;
DROP TABLE console_users;
