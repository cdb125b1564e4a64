-- ABM device records per entry, kept when removed from ABM (removed_at), and the sync
-- bookkeeping: state (cursor), runs, and the lease that keeps one sync per entry.
CREATE TABLE abm_devices (
    entry_id             BLOB NOT NULL REFERENCES abm_entries (id) ON DELETE CASCADE,
    serial_number        TEXT NOT NULL,
    model                TEXT NOT NULL,
    description          TEXT,
    color                TEXT,
    asset_tag            TEXT,
    device_family        TEXT,
    os                   TEXT,
    device_assigned_by   TEXT,
    device_assigned_date INTEGER,
    profile_status       TEXT,
    profile_uuid         TEXT,
    profile_assign_time  INTEGER,
    profile_push_time    INTEGER,
    op_type              TEXT,
    op_date              INTEGER,
    removed_at           INTEGER,
    seen_generation      INTEGER NOT NULL,
    first_seen_at        INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    PRIMARY KEY (entry_id, serial_number)
) WITHOUT ROWID;
CREATE INDEX abm_devices_serial ON abm_devices (serial_number);

CREATE TABLE abm_sync_state (
    entry_id   BLOB PRIMARY KEY NOT NULL REFERENCES abm_entries (id) ON DELETE CASCADE,
    cursor     TEXT,
    phase      TEXT NOT NULL,
    generation INTEGER NOT NULL,
    reconcile  INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE abm_sync_runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    entry_id    BLOB NOT NULL REFERENCES abm_entries (id) ON DELETE CASCADE,
    trigger     TEXT NOT NULL,
    holder      TEXT NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    pages       INTEGER NOT NULL DEFAULT 0,
    added       INTEGER NOT NULL DEFAULT 0,
    modified    INTEGER NOT NULL DEFAULT 0,
    removed     INTEGER NOT NULL DEFAULT 0,
    outcome     TEXT NOT NULL,
    error       TEXT
);
CREATE INDEX abm_sync_runs_entry ON abm_sync_runs (entry_id, id);

CREATE TABLE abm_sync_leases (
    entry_id   BLOB PRIMARY KEY NOT NULL REFERENCES abm_entries (id) ON DELETE CASCADE,
    holder     TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
