-- Job runtime: job status, schedules and admin API keys.
-- The queue itself (apalis) keeps its own tables in schema `apalis`.

-- One row per job the API returned an id for. The queue backend knows tasks; this table knows what
-- the API reports: tenant, trigger, progress, counts, the last error.
CREATE TABLE IF NOT EXISTS rmm_sync.job_runs (
    job_id              text PRIMARY KEY,           -- ULID, returned by the API
    task_id             text NOT NULL,              -- queue task carrying the job now (changes on delayed retry)
    kind                text NOT NULL,
    tenant              uuid,                        -- NULL for internal jobs (maintenance)
    provider            text,
    integration_id      uuid,
    trigger             text NOT NULL CHECK (trigger IN ('webhook', 'admin', 'schedule')),
    correlation_id      text NOT NULL,
    args                jsonb NOT NULL DEFAULT '{}',
    status              text NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'running', 'retrying', 'waiting', 'done', 'failed', 'cancelled', 'skipped')),
    attempts            integer NOT NULL DEFAULT 0,
    max_attempts        integer NOT NULL,
    deferrals           integer NOT NULL DEFAULT 0,
    progress_processed  bigint NOT NULL DEFAULT 0,
    progress_total      bigint,
    result              jsonb,
    last_error          text,
    worker              text,
    schedule_id         text,
    retry_of            text,
    retried_as          text,
    dispatched          boolean NOT NULL DEFAULT true, -- false: waiting in the outbox (Redis queue)
    run_at              timestamptz NOT NULL DEFAULT now(),
    created_at          timestamptz NOT NULL DEFAULT now(),
    started_at          timestamptz,
    finished_at         timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS job_runs_tenant_created ON rmm_sync.job_runs (tenant, created_at DESC);
CREATE INDEX IF NOT EXISTS job_runs_status_kind ON rmm_sync.job_runs (status, kind);
CREATE INDEX IF NOT EXISTS job_runs_finished ON rmm_sync.job_runs (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS job_runs_outbox ON rmm_sync.job_runs (created_at) WHERE NOT dispatched;

-- Recurring jobs. Never stored in AlgaPSA's settings.deviceSync.
CREATE TABLE IF NOT EXISTS rmm_sync.schedules (
    schedule_id       text PRIMARY KEY,               -- ULID
    scope_key         text NOT NULL UNIQUE,           -- '<tenant>:<provider>:<kind>' or 'global:<kind>'
    tenant            uuid,
    provider          text,
    integration_id    uuid,
    kind              text NOT NULL,
    interval_minutes  integer CHECK (interval_minutes IS NULL OR interval_minutes > 0),
    cron              text,
    enabled           boolean NOT NULL DEFAULT true,
    next_run_at       timestamptz NOT NULL,
    last_run_at       timestamptz,
    last_job_id       text,
    last_skip_reason  text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CHECK ((interval_minutes IS NULL) <> (cron IS NULL))
);
CREATE INDEX IF NOT EXISTS schedules_due ON rmm_sync.schedules (next_run_at) WHERE enabled;
CREATE INDEX IF NOT EXISTS schedules_tenant ON rmm_sync.schedules (tenant);

-- Admin API keys. Only the SHA-256 of a key is stored; the key is shown once when created.
CREATE TABLE IF NOT EXISTS rmm_sync.api_keys (
    key_id        text PRIMARY KEY,                   -- ULID
    key_hash      text NOT NULL UNIQUE,               -- hex SHA-256 of the whole key
    key_prefix    text NOT NULL,                      -- first characters, to recognise a key in lists
    tenant        uuid,                               -- NULL: global key
    scope         text NOT NULL CHECK (scope IN ('read', 'write')),
    name          text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
