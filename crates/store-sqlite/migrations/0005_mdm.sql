-- The MDM side: one-time enrollment challenges, identities the SCEP CA issued, enrollments
-- (check-in state), the per-device command queue, and sealed server secrets.
--
-- Enrollments and commands are keyed by the device channel id (UDID or EnrollmentID) and have
-- no foreign key between them: a device enrolling again keeps its commands, and queueing a
-- command does not pay for a check.

CREATE TABLE mdm_enroll_challenges (
    challenge_hash TEXT PRIMARY KEY NOT NULL,
    serial_number  TEXT NOT NULL,
    udid           TEXT NOT NULL,
    profile        TEXT,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    used_at        INTEGER
) WITHOUT ROWID;
-- Purging expired challenges.
CREATE INDEX mdm_enroll_challenges_expires ON mdm_enroll_challenges (expires_at);

CREATE TABLE mdm_identities (
    fingerprint   TEXT PRIMARY KEY NOT NULL,
    cert_serial   TEXT NOT NULL,
    udid          TEXT NOT NULL,
    serial_number TEXT NOT NULL,
    issued_at     INTEGER NOT NULL,
    not_after     INTEGER NOT NULL
) WITHOUT ROWID;

-- A rowid table: an UnlockToken can be a few kilobytes.
CREATE TABLE mdm_enrollments (
    udid                   TEXT PRIMARY KEY NOT NULL,
    serial_number          TEXT,
    status                 TEXT NOT NULL,
    topic                  TEXT,
    identity_fingerprint   TEXT,
    push_token             BLOB,
    push_magic             TEXT,
    unlock_token           BLOB,
    awaiting_configuration INTEGER NOT NULL,
    device_info            TEXT NOT NULL,
    enrolled_at            INTEGER,
    last_seen_at           INTEGER NOT NULL,
    created_at             INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL
);
-- Listing by status or serial number, in UDID order.
CREATE INDEX mdm_enrollments_status ON mdm_enrollments (status, udid);
CREATE INDEX mdm_enrollments_serial ON mdm_enrollments (serial_number, udid);

-- seq (the rowid, AUTOINCREMENT so it never goes back) is the order commands were queued in:
-- it breaks ties between equal created_at.
CREATE TABLE mdm_commands (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid         TEXT NOT NULL UNIQUE,
    udid         TEXT NOT NULL,
    request_type TEXT NOT NULL,
    payload      BLOB NOT NULL,
    status       TEXT NOT NULL,
    result       BLOB,
    created_by   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    completed_at INTEGER
);
-- The next command of a device is one probe into (udid, 'queued'), however long its history;
-- requeueing a session's sent and not_now commands is a range of the same index.
CREATE INDEX mdm_commands_queue ON mdm_commands (udid, status, created_at, seq);
-- A device's commands, newest first.
CREATE INDEX mdm_commands_device ON mdm_commands (udid, created_at, seq);

CREATE TABLE mdm_secrets (
    name   TEXT PRIMARY KEY NOT NULL,
    sealed BLOB NOT NULL
);
