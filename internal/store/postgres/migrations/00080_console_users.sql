-- Console users (store.ConsoleUser) and their sessions (store.ConsoleSession).
-- Passwords are kept as the caller's PHC hash string; sessions by a hash of
-- their id, never the id. Names use the "C" collation (byte order); times
-- come from the database clock, except expires (the caller's).

-- +goose Up

CREATE TABLE console_users (
    name          text COLLATE "C" NOT NULL PRIMARY KEY,
    role          text             NOT NULL,
    password_hash text             NOT NULL,
    disabled      boolean          NOT NULL DEFAULT false,
    created       timestamptz      NOT NULL DEFAULT now(),
    updated       timestamptz      NOT NULL DEFAULT now()
);

CREATE TABLE console_sessions (
    id_hash   bytea            NOT NULL PRIMARY KEY,
    user_name text COLLATE "C" NOT NULL REFERENCES console_users (name) ON DELETE CASCADE,
    created   timestamptz      NOT NULL DEFAULT now(),
    last_seen timestamptz      NOT NULL DEFAULT now(),
    expires   timestamptz      NOT NULL
);

-- Signing a user out everywhere (disabled, new password).
CREATE INDEX console_sessions_user ON console_sessions (user_name);

-- +goose Down
DROP TABLE console_sessions;
DROP TABLE console_users;
