-- Per-agent webhook coalescing state (see the Postgres migration). SQLite's ingress serialises
-- writers and decides from the stored deliveries; the table exists so both stores share the
-- job's code.
CREATE TABLE IF NOT EXISTS rmm_sync_webhook_agents (
    tenant          TEXT NOT NULL,
    integration_id  TEXT NOT NULL,
    agent_id        TEXT NOT NULL,
    pending_job_id  TEXT,
    window_start    TEXT NOT NULL,
    PRIMARY KEY (tenant, integration_id, agent_id)
);
