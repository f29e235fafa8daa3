-- Each change the ingestion pipeline makes to an asset: created, tracked fields changed (from/to),
-- moved to another client, tombstoned. Written one statement per page, in the page's transaction;
-- read per asset (GET /api/v1/tenants/{tenant}/assets/{asset_id}/history) and pruned with the
-- sync runs (retention.finished_jobs_days). Volatile values (last seen, uptime, ...) are not
-- tracked, so an unchanged resync writes no row here.
CREATE TABLE IF NOT EXISTS rmm_sync.asset_history (
    seq                      bigint GENERATED ALWAYS AS IDENTITY,
    tenant                   uuid        NOT NULL,
    asset_id                 uuid        NOT NULL,
    run_id                   uuid,                  -- the sync run; NULL for single-device refreshes
    job_id                   text,                  -- the job that wrote it
    external_device_id       text        NOT NULL,
    external_organization_id text        NOT NULL,
    action                   varchar(20) NOT NULL,  -- created | updated | moved | tombstoned
    changes                  jsonb       NOT NULL DEFAULT '[]'::jsonb,  -- [{field, from, to}]
    recorded_at              timestamptz NOT NULL,
    CONSTRAINT asset_history_pkey PRIMARY KEY (seq),
    CONSTRAINT asset_history_action_check CHECK (action IN ('created', 'updated', 'moved', 'tombstoned'))
);

CREATE INDEX IF NOT EXISTS asset_history_asset_idx ON rmm_sync.asset_history (tenant, asset_id, seq DESC);
-- Rows arrive in time order: a BRIN index serves the retention delete at almost no write cost.
CREATE INDEX IF NOT EXISTS asset_history_recorded_idx ON rmm_sync.asset_history USING brin (recorded_at);
