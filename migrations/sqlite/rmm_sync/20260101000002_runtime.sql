-- Job runtime: job status, schedules and admin API keys (see the Postgres migration for comments).
-- Timestamps are UTC text, '%Y-%m-%dT%H:%M:%fZ'. The queue (apalis) keeps its own tables Jobs/Workers.

CREATE TABLE IF NOT EXISTS rmm_sync_job_runs (
    job_id              TEXT PRIMARY KEY,
    task_id             TEXT NOT NULL,
    kind                TEXT NOT NULL,
    tenant              TEXT,
    provider            TEXT,
    integration_id      TEXT,
    trigger             TEXT NOT NULL CHECK (trigger IN ('webhook', 'admin', 'schedule')),
    correlation_id      TEXT NOT NULL,
    args                TEXT NOT NULL DEFAULT '{}',
    status              TEXT NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'running', 'retrying', 'waiting', 'done', 'failed', 'cancelled', 'skipped')),
    attempts            INTEGER NOT NULL DEFAULT 0,
    max_attempts        INTEGER NOT NULL,
    deferrals           INTEGER NOT NULL DEFAULT 0,
    progress_processed  INTEGER NOT NULL DEFAULT 0,
    progress_total      INTEGER,
    result              TEXT,
    last_error          TEXT,
    worker              TEXT,
    schedule_id         TEXT,
    retry_of            TEXT,
    retried_as          TEXT,
    dispatched          INTEGER NOT NULL DEFAULT 1,
    run_at              TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    created_at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    started_at          TEXT,
    finished_at         TEXT,
    updated_at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX IF NOT EXISTS rmm_sync_job_runs_tenant_created ON rmm_sync_job_runs (tenant, created_at DESC);
CREATE INDEX IF NOT EXISTS rmm_sync_job_runs_status_kind ON rmm_sync_job_runs (status, kind);
CREATE INDEX IF NOT EXISTS rmm_sync_job_runs_finished ON rmm_sync_job_runs (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS rmm_sync_job_runs_outbox ON rmm_sync_job_runs (created_at) WHERE dispatched = 0;

CREATE TABLE IF NOT EXISTS rmm_sync_schedules (
    schedule_id       TEXT PRIMARY KEY,
    scope_key         TEXT NOT NULL UNIQUE,
    tenant            TEXT,
    provider          TEXT,
    integration_id    TEXT,
    kind              TEXT NOT NULL,
    interval_minutes  INTEGER CHECK (interval_minutes IS NULL OR interval_minutes > 0),
    cron              TEXT,
    enabled           INTEGER NOT NULL DEFAULT 1,
    next_run_at       TEXT NOT NULL,
    last_run_at       TEXT,
    last_job_id       TEXT,
    last_skip_reason  TEXT,
    created_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CHECK ((interval_minutes IS NULL) <> (cron IS NULL))
);
CREATE INDEX IF NOT EXISTS rmm_sync_schedules_due ON rmm_sync_schedules (next_run_at) WHERE enabled = 1;
CREATE INDEX IF NOT EXISTS rmm_sync_schedules_tenant ON rmm_sync_schedules (tenant);

CREATE TABLE IF NOT EXISTS rmm_sync_api_keys (
    key_id        TEXT PRIMARY KEY,
    key_hash      TEXT NOT NULL UNIQUE,
    key_prefix    TEXT NOT NULL,
    tenant        TEXT,
    scope         TEXT NOT NULL CHECK (scope IN ('read', 'write')),
    name          TEXT,
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    last_used_at  TEXT,
    revoked_at    TEXT
);
