-- A minimum OS at enrollment (docs/protocol.md §6.5): the global minimum per OS, `latest`
-- or a dotted version, and what enrollment did with each device below its minimum: held
-- for an update, or let through because it cannot be asked. One row per kind of event and
-- device, counted, so a device asking again does not grow the table. Timestamps are Unix
-- microseconds.
CREATE TABLE minimum_os (
    os         TEXT PRIMARY KEY NOT NULL,
    minimum    TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE os_update_events (
    serial_number    TEXT NOT NULL,
    outcome          TEXT NOT NULL,
    device_version   TEXT NOT NULL,
    required_version TEXT NOT NULL,
    udid             TEXT NOT NULL,
    device_build     TEXT,
    required_build   TEXT,
    reason           TEXT,
    first_at         INTEGER NOT NULL,
    last_at          INTEGER NOT NULL,
    count            INTEGER NOT NULL,
    PRIMARY KEY (serial_number, outcome, device_version, required_version)
);
