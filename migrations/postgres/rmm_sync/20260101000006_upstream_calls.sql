-- Upstream calls per minute, tenant and provider, for the status page. Every process adds its
-- counts every few seconds in one upsert (calls = calls + …). Calls not made for a tenant are
-- counted under the nil UUID. The retention job deletes rows older than a day.
CREATE TABLE IF NOT EXISTS rmm_sync.upstream_calls (
    minute    timestamptz NOT NULL,               -- start of the minute (UTC)
    tenant    uuid        NOT NULL,
    provider  text        NOT NULL,
    calls     bigint      NOT NULL DEFAULT 0,     -- attempts sent, retries included
    errors    bigint      NOT NULL DEFAULT 0,     -- of which: no answer, or HTTP 400 and above
    PRIMARY KEY (minute, tenant, provider)
);
CREATE INDEX IF NOT EXISTS upstream_calls_tenant_minute ON rmm_sync.upstream_calls (tenant, minute);
