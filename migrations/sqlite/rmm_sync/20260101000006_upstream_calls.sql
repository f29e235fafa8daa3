-- Upstream calls per minute, tenant and provider (see the Postgres migration).
CREATE TABLE IF NOT EXISTS rmm_sync_upstream_calls (
    minute    TEXT    NOT NULL,                   -- start of the minute, 2026-01-02T03:04:00.000Z
    tenant    TEXT    NOT NULL,
    provider  TEXT    NOT NULL,
    calls     INTEGER NOT NULL DEFAULT 0,
    errors    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (minute, tenant, provider)
);
CREATE INDEX IF NOT EXISTS rmm_sync_upstream_calls_tenant_minute ON rmm_sync_upstream_calls (tenant, minute);
