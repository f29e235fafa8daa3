-- W3C trace context (traceparent) of the request that enqueued a job, when traces are exported.
-- The queue payload carries it too; this copy serves the Redis outbox relay, which rebuilds the
-- payload from this row.
ALTER TABLE rmm_sync.job_runs ADD COLUMN IF NOT EXISTS traceparent text;
