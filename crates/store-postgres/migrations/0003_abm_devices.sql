-- ABM device records per entry, kept when removed from ABM (removed_at), and the sync
-- bookkeeping: state (cursor), runs, and the lease that keeps one sync per entry.
CREATE TABLE abm_devices (
    entry_id             UUID NOT NULL REFERENCES abm_entries (id) ON DELETE CASCADE,
    serial_number        TEXT NOT NULL,
    model                TEXT NOT NULL,
    description          TEXT,
    color                TEXT,
    asset_tag            TEXT,
    device_family        TEXT,
    os                   TEXT,
    device_assigned_by   TEXT,
    device_assigned_date TIMESTAMPTZ,
    profile_status       TEXT,
    profile_uuid         TEXT,
    profile_assign_time  TIMESTAMPTZ,
    profile_push_time    TIMESTAMPTZ,
    op_type              TEXT,
    op_date              TIMESTAMPTZ,
    removed_at           TIMESTAMPTZ,
    seen_generation      BIGINT NOT NULL,
    first_seen_at        TIMESTAMPTZ NOT NULL,
    updated_at           TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (entry_id, serial_number)
);
CREATE INDEX abm_devices_serial ON abm_devices (serial_number);

CREATE TABLE abm_sync_state (
    entry_id   UUID PRIMARY KEY NOT NULL REFERENCES abm_entries (id) ON DELETE CASCADE,
    cursor     TEXT,
    phase      TEXT NOT NULL,
    generation BIGINT NOT NULL,
    reconcile  BOOLEAN NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE abm_sync_runs (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entry_id    UUID NOT NULL REFERENCES abm_entries (id) ON DELETE CASCADE,
    trigger     TEXT NOT NULL,
    holder      TEXT NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    pages       BIGINT NOT NULL DEFAULT 0,
    added       BIGINT NOT NULL DEFAULT 0,
    modified    BIGINT NOT NULL DEFAULT 0,
    removed     BIGINT NOT NULL DEFAULT 0,
    outcome     TEXT NOT NULL,
    error       TEXT
);
CREATE INDEX abm_sync_runs_entry ON abm_sync_runs (entry_id, id);

CREATE TABLE abm_sync_leases (
    entry_id   UUID PRIMARY KEY NOT NULL REFERENCES abm_entries (id) ON DELETE CASCADE,
    holder     TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
