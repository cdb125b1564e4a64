CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE abm_entries (
    id                  UUID PRIMARY KEY,
    name                TEXT NOT NULL UNIQUE,
    certificate_pem     TEXT NOT NULL,
    sealed_private_key  BYTEA NOT NULL,
    batch_size          INTEGER NOT NULL,
    abm_url             TEXT,
    sealed_server_token BYTEA,
    token_expires_at    TIMESTAMPTZ,
    token_uploaded_at   TIMESTAMPTZ,
    problem_kind        TEXT,
    problem_message     TEXT,
    problem_since       TIMESTAMPTZ,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    CHECK ((sealed_server_token IS NULL) = (token_expires_at IS NULL)),
    CHECK ((sealed_server_token IS NULL) = (token_uploaded_at IS NULL)),
    CHECK ((problem_kind IS NULL) = (problem_message IS NULL))
);

CREATE TABLE api_keys (
    id           UUID PRIMARY KEY,
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    created_by   TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);
CREATE UNIQUE INDEX api_keys_active_name ON api_keys (name) WHERE revoked_at IS NULL;

CREATE TABLE audit_log (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      TIMESTAMPTZ NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    details JSONB NOT NULL
);
