-- Pages of a full fetch, appended in arrival order (the rowid) before they are merged into
-- abm_devices in serial order: appending writes each record once, where storing pages of
-- random serials directly rewrites a leaf of every serial-keyed B-tree per device.
CREATE TABLE abm_device_stage (
    seq                  INTEGER PRIMARY KEY,
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
    seen_generation      INTEGER NOT NULL
);
