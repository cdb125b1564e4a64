-- Incremental assignment passes find their devices through indexes: those Apple changed since
-- the last pass, and the records pending or due for a retry.
CREATE INDEX abm_devices_entry_updated ON abm_devices (entry_id, updated_at);
CREATE INDEX abm_device_assignments_entry_retry
    ON abm_device_assignments (entry_id, retry_at)
    WHERE retry_at IS NOT NULL;
