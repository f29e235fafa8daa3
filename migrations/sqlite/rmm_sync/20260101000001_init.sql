-- rmm-sync's own state. SQLite has no schemas: our tables carry the prefix rmm_sync_ instead of
-- living in schema rmm_sync (see migrations/postgres/rmm_sync/). Nothing here references the
-- AlgaPSA tables by foreign key. Types as in migrations/sqlite/algapsa/: uuid and timestamps are
-- TEXT ('YYYY-MM-DDTHH:MM:SS.sssZ'), JSON is TEXT.

-- One row per sync run (a job execution that ingests from a provider).
CREATE TABLE rmm_sync_sync_runs (
    run_id          TEXT        NOT NULL,
    tenant          TEXT        NOT NULL,
    provider        VARCHAR(50) NOT NULL,
    integration_id  TEXT,
    kind            VARCHAR(50) NOT NULL,                    -- job name, e.g. sync-devices
    "trigger"       VARCHAR(20) NOT NULL,                    -- webhook | admin | schedule | cli
    status          VARCHAR(20) NOT NULL DEFAULT 'running',  -- running | completed | failed | cancelled
    started_at      TEXT        NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    finished_at     TEXT,
    items_processed INTEGER     NOT NULL DEFAULT 0,
    items_created   INTEGER     NOT NULL DEFAULT 0,
    items_updated   INTEGER     NOT NULL DEFAULT 0,
    items_deleted   INTEGER     NOT NULL DEFAULT 0,
    items_skipped   INTEGER     NOT NULL DEFAULT 0,
    items_failed    INTEGER     NOT NULL DEFAULT 0,
    errors          TEXT        NOT NULL DEFAULT '[]',
    "cursor"        TEXT,
    job_id          TEXT,
    CONSTRAINT sync_runs_pkey PRIMARY KEY (run_id),
    CONSTRAINT sync_runs_trigger_check CHECK ("trigger" IN ('webhook', 'admin', 'schedule', 'cli')),
    CONSTRAINT sync_runs_status_check CHECK (status IN ('running', 'completed', 'failed', 'cancelled'))
);

CREATE INDEX rmm_sync_sync_runs_tenant_provider_started_idx ON rmm_sync_sync_runs (tenant, provider, started_at DESC);
CREATE INDEX rmm_sync_sync_runs_status_idx ON rmm_sync_sync_runs (status);
