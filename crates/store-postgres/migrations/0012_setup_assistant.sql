-- Devices stuck in Setup Assistant (README, "Devices stuck in Setup Assistant").
-- awaiting_since: when the device began waiting for DeviceConfigured (its TokenUpdate said
-- AwaitingConfiguration); NULL while it does not wait. A row waiting before this migration
-- counts from its last change.
ALTER TABLE mdm_enrollments ADD COLUMN awaiting_since TIMESTAMPTZ;
UPDATE mdm_enrollments SET awaiting_since = updated_at WHERE awaiting_configuration;
-- Listing the stuck devices reads only those waiting, oldest wait first.
CREATE INDEX mdm_enrollments_awaiting ON mdm_enrollments (awaiting_since)
    WHERE awaiting_since IS NOT NULL;
-- How many times the device answered NotNow to a command.
ALTER TABLE mdm_commands ADD COLUMN not_now_count BIGINT NOT NULL DEFAULT 0;
