-- The arguments a schedule's jobs are enqueued with (e.g. {"mode": "incremental"} for the device
-- sync that AlgaPSA's `PUT /api/v1/integrations/rmm/{provider}/device-sync` sets up).
ALTER TABLE rmm_sync.schedules ADD COLUMN IF NOT EXISTS args jsonb NOT NULL DEFAULT '{}';
