-- Each change the ingestion pipeline makes to an asset (see the Postgres migration).
CREATE TABLE IF NOT EXISTS rmm_sync_asset_history (
    seq                      INTEGER     PRIMARY KEY, -- the rowid: increasing (no AUTOINCREMENT, whose sqlite_sequence table AlgaPSA's schema check would see)
    tenant                   TEXT        NOT NULL,
    asset_id                 TEXT        NOT NULL,
    run_id                   TEXT,
    job_id                   TEXT,
    external_device_id       TEXT        NOT NULL,
    external_organization_id TEXT        NOT NULL,
    action                   VARCHAR(20) NOT NULL CHECK (action IN ('created', 'updated', 'moved', 'tombstoned')),
    changes                  TEXT        NOT NULL DEFAULT '[]',
    recorded_at              TEXT        NOT NULL
);

CREATE INDEX IF NOT EXISTS asset_history_asset_idx ON rmm_sync_asset_history (tenant, asset_id, seq DESC);
CREATE INDEX IF NOT EXISTS asset_history_recorded_idx ON rmm_sync_asset_history (recorded_at);
