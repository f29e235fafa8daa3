-- Units of a job that is split into child jobs (e.g. a device sync: one unit per mapped client).
-- The parent plans its units once, enqueues one child job per unit and collects their reports; a
-- parent that crashed resumes with the units already finished and does not run them again.
CREATE TABLE IF NOT EXISTS rmm_sync.job_units (
    parent_job_id   text NOT NULL,
    unit_key        text NOT NULL,
    args            jsonb NOT NULL DEFAULT '{}',
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
    child_job_id    text,                             -- the job that runs the unit
    report          jsonb,                            -- what the unit did (kind-specific)
    error           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    PRIMARY KEY (parent_job_id, unit_key)
);
CREATE INDEX IF NOT EXISTS job_units_created ON rmm_sync.job_units (created_at);
