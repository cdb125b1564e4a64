-- What Apple's GET /account said about an entry's MDM server when its token was uploaded.
ALTER TABLE abm_entries ADD COLUMN server_name TEXT;
ALTER TABLE abm_entries ADD COLUMN server_uuid TEXT;
ALTER TABLE abm_entries ADD COLUMN org_name TEXT;
ALTER TABLE abm_entries ADD COLUMN admin_id TEXT;
ALTER TABLE abm_entries ADD COLUMN account_checked_at TIMESTAMPTZ;
