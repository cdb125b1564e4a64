-- The dashboard's device list sorts by model or by last change as well as by serial: an index
-- per order, ending with the serial and the entry like the listing's keyset, so a page is a
-- range scan however deep it is.
CREATE INDEX abm_devices_model ON abm_devices (model, serial_number, entry_id);
CREATE INDEX abm_devices_updated ON abm_devices (updated_at, serial_number, entry_id);
