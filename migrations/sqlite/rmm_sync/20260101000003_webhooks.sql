-- Webhook deliveries (see the Postgres migration for comments).
CREATE TABLE IF NOT EXISTS rmm_sync_webhook_deliveries (
    delivery_id     TEXT PRIMARY KEY,
    tenant          TEXT NOT NULL,
    integration_id  TEXT NOT NULL,
    provider        TEXT NOT NULL,
    agent_id        TEXT NOT NULL,
    body            TEXT NOT NULL,
    received_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    job_id          TEXT NOT NULL,
    processed_at    TEXT,
    outcome         TEXT
);
CREATE INDEX IF NOT EXISTS rmm_sync_webhook_deliveries_agent ON rmm_sync_webhook_deliveries (tenant, integration_id, agent_id, received_at DESC);
CREATE INDEX IF NOT EXISTS rmm_sync_webhook_deliveries_pending ON rmm_sync_webhook_deliveries (tenant, integration_id, agent_id) WHERE processed_at IS NULL;
CREATE INDEX IF NOT EXISTS rmm_sync_webhook_deliveries_received ON rmm_sync_webhook_deliveries (received_at);
