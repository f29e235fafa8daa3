-- Per-agent webhook coalescing state (PostgreSQL ingress): the sync-agent job that later
-- deliveries for the agent join while it has not started, and the start of the agent's current
-- coalescing window. The ingress takes this row with INSERT … ON CONFLICT DO UPDATE, which
-- serialises the decisions for one agent; the job clears pending_job_id when it starts.
CREATE TABLE IF NOT EXISTS rmm_sync.webhook_agents (
    tenant          uuid NOT NULL,
    integration_id  uuid NOT NULL,
    agent_id        text NOT NULL,
    pending_job_id  text,
    window_start    timestamptz NOT NULL,
    PRIMARY KEY (tenant, integration_id, agent_id)
);
