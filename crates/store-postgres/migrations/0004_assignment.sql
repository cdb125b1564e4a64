-- ADE profile assignment. What an admin configures: profiles and their versions, Apple's
-- definitions of them per entry, OS defaults, device groups (static members), explicit
-- per-serial profiles, and the assignment generation that every configuration change bumps.
-- What GuardMDM tracks: one assignment record per ABM device, and each entry's last pass.
--
-- Explicit profiles and group members are keyed by serial alone: a serial may be assigned
-- before any entry has seen it, and follows the device from one entry to another.

CREATE TABLE ade_profiles (
    id         UUID PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    version    BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

-- The current specification is the row of the profile's current version.
CREATE TABLE ade_profile_versions (
    profile_id UUID NOT NULL REFERENCES ade_profiles (id) ON DELETE CASCADE,
    version    BIGINT NOT NULL,
    spec       JSONB NOT NULL,
    created_by TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (profile_id, version)
);

CREATE TABLE ade_profile_definitions (
    entry_id   UUID NOT NULL REFERENCES abm_entries (id) ON DELETE CASCADE,
    profile_id UUID NOT NULL,
    version    BIGINT NOT NULL,
    apple_uuid TEXT NOT NULL,
    defined_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (entry_id, profile_id, version),
    FOREIGN KEY (profile_id, version)
        REFERENCES ade_profile_versions (profile_id, version) ON DELETE CASCADE
);
CREATE INDEX ade_profile_definitions_profile ON ade_profile_definitions (profile_id, version);

-- Profiles in use cannot be deleted (the store checks first; RESTRICT is the second guard).
CREATE TABLE ade_os_defaults (
    os         TEXT PRIMARY KEY,
    profile_id UUID NOT NULL REFERENCES ade_profiles (id) ON DELETE RESTRICT,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX ade_os_defaults_profile ON ade_os_defaults (profile_id);

CREATE TABLE device_groups (
    id         UUID PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    rule       JSONB,
    profile_id UUID REFERENCES ade_profiles (id) ON DELETE RESTRICT,
    priority   INTEGER NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX device_groups_profile ON device_groups (profile_id);

CREATE TABLE device_group_members (
    group_id      UUID NOT NULL REFERENCES device_groups (id) ON DELETE CASCADE,
    serial_number TEXT NOT NULL,
    PRIMARY KEY (group_id, serial_number)
);
CREATE INDEX device_group_members_serial ON device_group_members (serial_number, group_id);

CREATE TABLE device_profiles (
    serial_number TEXT PRIMARY KEY,
    profile_id    UUID NOT NULL REFERENCES ade_profiles (id) ON DELETE RESTRICT,
    updated_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX device_profiles_profile ON device_profiles (profile_id);

-- One row: the counter every configuration change bumps in its transaction. Bumping it first
-- also serialises configuration changes (the row lock), so a check and the write it guards
-- see the same configuration.
CREATE TABLE assignment_generation (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    generation BIGINT NOT NULL
);
INSERT INTO assignment_generation (id, generation) VALUES (1, 0);

-- Keyed like abm_devices, but with no foreign key to it: device pages do not pay for one, and
-- the entry's cascade removes both. profile_id is what was resolved, kept as history when the
-- profile is deleted later: no foreign key either.
CREATE TABLE abm_device_assignments (
    entry_id        UUID NOT NULL REFERENCES abm_entries (id) ON DELETE CASCADE,
    serial_number   TEXT NOT NULL,
    profile_id      UUID,
    profile_version BIGINT,
    rule            TEXT NOT NULL,
    state           TEXT NOT NULL,
    apple_uuid      TEXT,
    attempted_at    TIMESTAMPTZ,
    retry_at        TIMESTAMPTZ,
    attempts        BIGINT NOT NULL,
    last_error      TEXT,
    updated_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (entry_id, serial_number)
);
-- Listing devices by assignment state, by serial (with and without an entry).
CREATE INDEX abm_device_assignments_entry_state
    ON abm_device_assignments (entry_id, state, serial_number);
CREATE INDEX abm_device_assignments_state
    ON abm_device_assignments (state, serial_number, entry_id);

CREATE TABLE assignment_passes (
    entry_id    UUID PRIMARY KEY REFERENCES abm_entries (id) ON DELETE CASCADE,
    generation  BIGINT NOT NULL,
    finished_at TIMESTAMPTZ NOT NULL,
    summary     JSONB NOT NULL,
    error       TEXT
);
