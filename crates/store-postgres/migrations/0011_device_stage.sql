-- Pages of a full fetch, appended in arrival order (seq) before they are merged into
-- abm_devices in serial order, so the serial-keyed indexes are written in key order once
-- per merge instead of at random once per page.
-- No foreign key: a check per staged row (on PostgreSQL a row lock on the entry each) would
-- cost more than the append itself. A page is staged in the transaction that saves the entry's
-- sync state, whose foreign key refuses a deleted entry; deleting an entry deletes its staged
-- records (delete_abm_entry).
CREATE TABLE abm_device_stage (
    seq                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entry_id             UUID NOT NULL,
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
    seen_generation      BIGINT NOT NULL
);
