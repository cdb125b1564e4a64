-- Every assignment pass marks the records of devices that left ABM: find those devices
-- through an index of the removed ones (few) instead of reading every device of the entry.
CREATE INDEX abm_devices_entry_removed ON abm_devices (entry_id, serial_number)
    WHERE removed_at IS NOT NULL;
