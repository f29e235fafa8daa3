-- W3C trace context (traceparent) of the request that enqueued a job (see the Postgres migration).
ALTER TABLE rmm_sync_job_runs ADD COLUMN traceparent TEXT;
