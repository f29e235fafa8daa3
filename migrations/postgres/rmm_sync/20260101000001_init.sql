-- rmm-sync's own state, in schema rmm_sync (never in public: in algapsa mode public belongs to
-- AlgaPSA). Nothing here references AlgaPSA's tables by foreign key, so the same tables work
-- against a real AlgaPSA database and against the standalone tables.
CREATE SCHEMA IF NOT EXISTS rmm_sync;

-- One row per sync run (a job execution that ingests from a provider).
CREATE TABLE rmm_sync.sync_runs (
    run_id          uuid        NOT NULL,
    tenant          uuid        NOT NULL,
    provider        varchar(50) NOT NULL,
    integration_id  uuid,
    kind            varchar(50) NOT NULL,                    -- job name, e.g. sync-devices
    "trigger"       varchar(20) NOT NULL,                    -- webhook | admin | schedule | cli
    status          varchar(20) NOT NULL DEFAULT 'running',  -- running | completed | failed | cancelled
    started_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    items_processed integer     NOT NULL DEFAULT 0,
    items_created   integer     NOT NULL DEFAULT 0,
    items_updated   integer     NOT NULL DEFAULT 0,
    items_deleted   integer     NOT NULL DEFAULT 0,
    items_skipped   integer     NOT NULL DEFAULT 0,
    items_failed    integer     NOT NULL DEFAULT 0,
    errors          jsonb       NOT NULL DEFAULT '[]'::jsonb,
    "cursor"        jsonb,
    job_id          text,
    CONSTRAINT sync_runs_pkey PRIMARY KEY (run_id),
    CONSTRAINT sync_runs_trigger_check CHECK ("trigger" IN ('webhook', 'admin', 'schedule', 'cli')),
    CONSTRAINT sync_runs_status_check CHECK (status IN ('running', 'completed', 'failed', 'cancelled'))
);

CREATE INDEX sync_runs_tenant_provider_started_idx ON rmm_sync.sync_runs (tenant, provider, started_at DESC);
CREATE INDEX sync_runs_status_idx ON rmm_sync.sync_runs (status);
