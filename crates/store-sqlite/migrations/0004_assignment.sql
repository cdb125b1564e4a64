-- ADE profile assignment. What an admin configures: profiles and their versions, Apple's
-- definitions of them per entry, OS defaults, device groups (static members), explicit
-- per-serial profiles, and the assignment generation that every configuration change bumps.
-- What GuardMDM tracks: one assignment record per ABM device, and each entry's last pass.
--
-- Explicit profiles and group members are keyed by serial alone: a serial may be assigned
-- before any entry has seen it, and follows the device from one entry to another.

CREATE TABLE ade_profiles (
    id         BLOB PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL UNIQUE,
    version    INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);

-- The current specification is the row of the profile's current version.
CREATE TABLE ade_profile_versions (
    profile_id BLOB NOT NULL REFERENCES ade_profiles (id) ON DELETE CASCADE,
    version    INTEGER NOT NULL,
    spec       TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (profile_id, version)
) WITHOUT ROWID;

CREATE TABLE ade_profile_definitions (
    entry_id   BLOB NOT NULL REFERENCES abm_entries (id) ON DELETE CASCADE,
    profile_id BLOB NOT NULL,
    version    INTEGER NOT NULL,
    apple_uuid TEXT NOT NULL,
    defined_at INTEGER NOT NULL,
    PRIMARY KEY (entry_id, profile_id, version),
    FOREIGN KEY (profile_id, version)
        REFERENCES ade_profile_versions (profile_id, version) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX ade_profile_definitions_profile ON ade_profile_definitions (profile_id, version);

-- Profiles in use cannot be deleted (the store checks first; RESTRICT is the second guard).
CREATE TABLE ade_os_defaults (
    os         TEXT PRIMARY KEY NOT NULL,
    profile_id BLOB NOT NULL REFERENCES ade_profiles (id) ON DELETE RESTRICT,
    updated_at INTEGER NOT NULL
);
CREATE INDEX ade_os_defaults_profile ON ade_os_defaults (profile_id);

CREATE TABLE device_groups (
    id         BLOB PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL UNIQUE,
    rule       TEXT,
    profile_id BLOB REFERENCES ade_profiles (id) ON DELETE RESTRICT,
    priority   INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX device_groups_profile ON device_groups (profile_id);

CREATE TABLE device_group_members (
    group_id      BLOB NOT NULL REFERENCES device_groups (id) ON DELETE CASCADE,
    serial_number TEXT NOT NULL,
    PRIMARY KEY (group_id, serial_number)
) WITHOUT ROWID;
CREATE INDEX device_group_members_serial ON device_group_members (serial_number);

CREATE TABLE device_profiles (
    serial_number TEXT PRIMARY KEY NOT NULL,
    profile_id    BLOB NOT NULL REFERENCES ade_profiles (id) ON DELETE RESTRICT,
    updated_at    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX device_profiles_profile ON device_profiles (profile_id);

-- One row: the counter every configuration change bumps in its transaction.
CREATE TABLE assignment_generation (
    id         INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    generation INTEGER NOT NULL
);
INSERT INTO assignment_generation (id, generation) VALUES (1, 0);

-- Keyed like abm_devices, but with no foreign key to it: device pages do not pay for one, and
-- the entry's cascade removes both. profile_id is what was resolved, kept as history when the
-- profile is deleted later: no foreign key either.
CREATE TABLE abm_device_assignments (
    entry_id        BLOB NOT NULL REFERENCES abm_entries (id) ON DELETE CASCADE,
    serial_number   TEXT NOT NULL,
    profile_id      BLOB,
    profile_version INTEGER,
    rule            TEXT NOT NULL,
    state           TEXT NOT NULL,
    apple_uuid      TEXT,
    attempted_at    INTEGER,
    retry_at        INTEGER,
    attempts        INTEGER NOT NULL,
    last_error      TEXT,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (entry_id, serial_number)
) WITHOUT ROWID;
-- Listing devices by assignment state, by serial (with and without an entry).
CREATE INDEX abm_device_assignments_entry_state
    ON abm_device_assignments (entry_id, state, serial_number);
CREATE INDEX abm_device_assignments_state
    ON abm_device_assignments (state, serial_number, entry_id);

CREATE TABLE assignment_passes (
    entry_id    BLOB PRIMARY KEY NOT NULL REFERENCES abm_entries (id) ON DELETE CASCADE,
    generation  INTEGER NOT NULL,
    finished_at INTEGER NOT NULL,
    summary     TEXT NOT NULL,
    error       TEXT
);
