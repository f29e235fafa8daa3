-- Units of a job split into child jobs (see the Postgres migration for comments).
CREATE TABLE IF NOT EXISTS rmm_sync_job_units (
    parent_job_id   TEXT NOT NULL,
    unit_key        TEXT NOT NULL,
    args            TEXT NOT NULL DEFAULT '{}',
    status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
    child_job_id    TEXT,
    report          TEXT,
    error           TEXT,
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    finished_at     TEXT,
    PRIMARY KEY (parent_job_id, unit_key)
);
CREATE INDEX IF NOT EXISTS rmm_sync_job_units_created ON rmm_sync_job_units (created_at);
