-- Webhook deliveries: every accepted Tactical alert webhook is stored here, in the same transaction
-- that enqueues the `sync-agent` job which records its alert and refreshes the agent.
CREATE TABLE IF NOT EXISTS rmm_sync.webhook_deliveries (
    delivery_id     text PRIMARY KEY,                 -- ULID
    tenant          uuid NOT NULL,
    integration_id  uuid NOT NULL,
    provider        text NOT NULL,
    agent_id        text NOT NULL,
    body            jsonb NOT NULL,                   -- the parsed webhook object
    received_at     timestamptz NOT NULL DEFAULT now(),
    job_id          text NOT NULL,                    -- the sync-agent job that processes it
    processed_at    timestamptz,
    outcome         text                              -- what recording the alert did
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_agent ON rmm_sync.webhook_deliveries (tenant, integration_id, agent_id, received_at DESC);
CREATE INDEX IF NOT EXISTS webhook_deliveries_pending ON rmm_sync.webhook_deliveries (tenant, integration_id, agent_id) WHERE processed_at IS NULL;
CREATE INDEX IF NOT EXISTS webhook_deliveries_received ON rmm_sync.webhook_deliveries (received_at);
