-- The arguments a schedule's jobs are enqueued with (see the Postgres migration).
ALTER TABLE rmm_sync_schedules ADD COLUMN args TEXT NOT NULL DEFAULT '{}';
