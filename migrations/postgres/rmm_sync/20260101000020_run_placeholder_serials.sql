-- Devices of a run whose reported serial number is a placeholder ("To Be Filled By O.E.M.",
-- "System Serial Number", "0", ...): stored as reported, never used to identify a device, counted
-- here (they are among items_created and items_updated too).
ALTER TABLE rmm_sync.sync_runs ADD COLUMN IF NOT EXISTS items_placeholder_serials integer NOT NULL DEFAULT 0;
