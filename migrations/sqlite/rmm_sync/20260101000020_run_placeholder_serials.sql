-- Devices of a run whose reported serial number is a placeholder (see the Postgres migration).
ALTER TABLE rmm_sync_sync_runs ADD COLUMN items_placeholder_serials INTEGER NOT NULL DEFAULT 0;
