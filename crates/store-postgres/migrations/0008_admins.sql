-- Dashboard accounts. Passwords are argon2id PHC strings; sessions are keyed by the SHA-256
-- of their token (the cookie value is never stored); failed sign-ins are rows, so every
-- instance sharing the database counts the same attempts.
CREATE TABLE admins (
    id              UUID PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    password_hash   TEXT NOT NULL,
    created_by      TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    last_sign_in_at TIMESTAMPTZ
);

CREATE TABLE admin_sessions (
    token_hash   TEXT PRIMARY KEY,
    admin_id     UUID NOT NULL REFERENCES admins (id) ON DELETE CASCADE,
    csrf_token   TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    last_seen_at TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX admin_sessions_admin ON admin_sessions (admin_id);
CREATE INDEX admin_sessions_expires ON admin_sessions (expires_at);
CREATE INDEX admin_sessions_last_seen ON admin_sessions (last_seen_at);

CREATE TABLE admin_sign_in_failures (
    id     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name   TEXT NOT NULL,
    client TEXT NOT NULL,
    -- A successful sign-in of the name stops its failures counting against the name (they
    -- still count against the client).
    counts_for_name BOOLEAN NOT NULL DEFAULT TRUE,
    at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX admin_sign_in_failures_name ON admin_sign_in_failures (name, at);
CREATE INDEX admin_sign_in_failures_client ON admin_sign_in_failures (client, at);
CREATE INDEX admin_sign_in_failures_at ON admin_sign_in_failures (at);
