-- Pages of a full fetch, appended in arrival order (the rowid) before they are merged into
-- abm_devices in serial order: appending writes each record once, where storing pages of
-- random serials directly rewrites a leaf of every serial-keyed B-tree per device.
-- No foreign key: a check per staged row (on PostgreSQL a row lock on the entry each) would
-- cost more than the append itself. A page is staged in the transaction that saves the entry's
-- sync state, whose foreign key refuses a deleted entry; deleting an entry deletes its staged
-- records (delete_abm_entry).
CREATE TABLE abm_device_stage (
    seq                  INTEGER PRIMARY KEY,
    entry_id             BLOB NOT NULL,
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
