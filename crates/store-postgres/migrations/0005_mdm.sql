-- The MDM side: one-time enrollment challenges, identities the SCEP CA issued, enrollments
-- (check-in state), the per-device command queue, and sealed server secrets.
--
-- Enrollments and commands are keyed by the device channel id (UDID or EnrollmentID) and have
-- no foreign key between them: a device enrolling again keeps its commands, and queueing a
-- command does not pay for a check.

CREATE TABLE mdm_enroll_challenges (
    challenge_hash TEXT PRIMARY KEY,
    serial_number  TEXT NOT NULL,
    udid           TEXT NOT NULL,
    profile        TEXT,
    created_at     TIMESTAMPTZ NOT NULL,
    expires_at     TIMESTAMPTZ NOT NULL,
    used_at        TIMESTAMPTZ
);
-- Purging expired challenges.
CREATE INDEX mdm_enroll_challenges_expires ON mdm_enroll_challenges (expires_at);

CREATE TABLE mdm_identities (
    fingerprint   TEXT PRIMARY KEY,
    cert_serial   TEXT NOT NULL,
    udid          TEXT NOT NULL,
    serial_number TEXT NOT NULL,
    issued_at     TIMESTAMPTZ NOT NULL,
    not_after     TIMESTAMPTZ NOT NULL
);

CREATE TABLE mdm_enrollments (
    udid                   TEXT PRIMARY KEY,
    serial_number          TEXT,
    status                 TEXT NOT NULL,
    topic                  TEXT,
    identity_fingerprint   TEXT,
    push_token             BYTEA,
    push_magic             TEXT,
    unlock_token           BYTEA,
    awaiting_configuration BOOLEAN NOT NULL,
    device_info            JSONB NOT NULL,
    enrolled_at            TIMESTAMPTZ,
    last_seen_at           TIMESTAMPTZ NOT NULL,
    created_at             TIMESTAMPTZ NOT NULL,
    updated_at             TIMESTAMPTZ NOT NULL
);
-- Listing by status or serial number, in UDID order.
CREATE INDEX mdm_enrollments_status ON mdm_enrollments (status, udid);
CREATE INDEX mdm_enrollments_serial ON mdm_enrollments (serial_number, udid);

-- seq is the order commands were queued in: it breaks ties between equal created_at.
CREATE TABLE mdm_commands (
    uuid         TEXT PRIMARY KEY,
    seq          BIGINT GENERATED ALWAYS AS IDENTITY,
    udid         TEXT NOT NULL,
    request_type TEXT NOT NULL,
    payload      BYTEA NOT NULL,
    status       TEXT NOT NULL,
    result       BYTEA,
    created_by   TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    completed_at TIMESTAMPTZ
);
-- The next command of a device is one probe into (udid, 'queued'), however long its history;
-- requeueing a session's sent and not_now commands is a range of the same index.
CREATE INDEX mdm_commands_queue ON mdm_commands (udid, status, created_at, seq);
-- A device's commands, newest first.
CREATE INDEX mdm_commands_device ON mdm_commands (udid, created_at, seq);

CREATE TABLE mdm_secrets (
    name   TEXT PRIMARY KEY,
    sealed BYTEA NOT NULL
);
