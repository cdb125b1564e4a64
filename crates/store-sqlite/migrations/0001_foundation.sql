-- Timestamps are INTEGER microseconds since the Unix epoch (UTC): they sort and compare
-- correctly, unlike RFC 3339 text with a varying number of fraction digits.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

CREATE TABLE abm_entries (
    id                  BLOB PRIMARY KEY NOT NULL,
    name                TEXT NOT NULL UNIQUE,
    certificate_pem     TEXT NOT NULL,
    sealed_private_key  BLOB NOT NULL,
    batch_size          INTEGER NOT NULL,
    abm_url             TEXT,
    sealed_server_token BLOB,
    token_expires_at    INTEGER,
    token_uploaded_at   INTEGER,
    problem_kind        TEXT,
    problem_message     TEXT,
    problem_since       INTEGER,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    CHECK ((sealed_server_token IS NULL) = (token_expires_at IS NULL)),
    CHECK ((sealed_server_token IS NULL) = (token_uploaded_at IS NULL)),
    CHECK ((problem_kind IS NULL) = (problem_message IS NULL))
);

CREATE TABLE api_keys (
    id           BLOB PRIMARY KEY NOT NULL,
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    created_by   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);
CREATE UNIQUE INDEX api_keys_active_name ON api_keys (name) WHERE revoked_at IS NULL;

CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    details TEXT NOT NULL
);
