-- AlgaPSA-compatible tables for STANDALONE mode only, SQLite dialect.
--
-- The SQLite twin of migrations/postgres/algapsa/20260101000001_algapsa_tables.sql, which mirrors
-- AlgaPSA's migrations at the public AlgaPSA repository commit 432f5f5887b0… (2026-08-22), as
-- recorded in research/algapsa-contract.md §1. Same tables, column names, nullability, primary keys,
-- unique constraints and indexes (AlgaPSA's names), foreign keys and CHECKs, as close as SQLite
-- allows:
--   * uuid          -> TEXT (lower-case hyphenated text; no default: the application supplies ids)
--   * timestamptz   -> TEXT 'YYYY-MM-DDTHH:MM:SS.sssZ' (UTC), default strftime('%Y-%m-%dT%H:%M:%fZ','now')
--   * date          -> TEXT 'YYYY-MM-DD'
--   * jsonb         -> TEXT holding JSON, JSON defaults as string literals
--   * boolean       -> INTEGER 0/1
--   * numeric(p,s)  -> REAL (so values always decode as floating point)
--   * int / bigint  -> INTEGER
--   * varchar(n)    -> VARCHAR(n) (SQLite does not enforce the length; the application does)
--   * the BEFORE UPDATE on_update_timestamp() triggers become AFTER UPDATE triggers that set
--     updated_at only when the statement did not change it.
-- Foreign keys are enforced because every connection turns PRAGMA foreign_keys on.

-- ---------------------------------------------------------------------------------------------
-- tenants
-- ---------------------------------------------------------------------------------------------
CREATE TABLE tenants (
    tenant              TEXT NOT NULL,
    client_name         TEXT NOT NULL,
    email               TEXT NOT NULL,
    phone_number        TEXT,
    industry            TEXT,
    payment_platform_id TEXT,
    payment_method_id   TEXT,
    auth_service_id     TEXT,
    plan                TEXT,
    created_at          TEXT,
    updated_at          TEXT DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    product_code        TEXT DEFAULT 'psa',
    suspended_at        TEXT,
    suspended_reason    TEXT,
    CONSTRAINT tenants_pkey PRIMARY KEY (tenant),
    CONSTRAINT tenants_product_code_check
        CHECK (product_code IS NOT NULL AND product_code IN ('psa', 'algadesk')),
    CONSTRAINT tenants_suspended_reason_check
        CHECK (suspended_reason IS NULL OR suspended_reason = 'tenant_cancelled'),
    CONSTRAINT tenants_suspension_consistency_check
        CHECK ((suspended_at IS NULL AND suspended_reason IS NULL)
            OR (suspended_at IS NOT NULL AND suspended_reason IS NOT NULL))
);

-- ---------------------------------------------------------------------------------------------
-- clients
-- ---------------------------------------------------------------------------------------------
CREATE TABLE clients (
    tenant      TEXT    NOT NULL,
    client_id   TEXT    NOT NULL,
    client_name TEXT    NOT NULL,
    is_inactive INTEGER DEFAULT 0,
    CONSTRAINT clients_pkey PRIMARY KEY (tenant, client_id),
    CONSTRAINT clients_tenant_client_name_unique UNIQUE (tenant, client_name),
    CONSTRAINT clients_client_id_unique UNIQUE (client_id),
    CONSTRAINT clients_tenant_foreign FOREIGN KEY (tenant) REFERENCES tenants (tenant)
);

-- ---------------------------------------------------------------------------------------------
-- assets
-- ---------------------------------------------------------------------------------------------
CREATE TABLE assets (
    tenant              TEXT NOT NULL,
    asset_id            TEXT NOT NULL,
    client_id           TEXT NOT NULL,
    asset_tag           TEXT NOT NULL,
    serial_number       TEXT,
    name                TEXT NOT NULL,
    status              TEXT NOT NULL,
    location            TEXT,
    purchase_date       TEXT,
    warranty_end_date   TEXT,
    attributes          TEXT,
    created_at          TEXT DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at          TEXT DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    asset_type          TEXT NOT NULL DEFAULT 'unknown',
    rmm_provider        VARCHAR(50),
    rmm_device_id       VARCHAR(255),
    rmm_organization_id VARCHAR(255),
    agent_status        VARCHAR(20),
    last_seen_at        TEXT,
    last_rmm_sync_at    TEXT,
    notes_document_id   TEXT,
    location_id         TEXT,
    service_id          TEXT,
    stock_unit_id       TEXT,
    CONSTRAINT assets_pkey PRIMARY KEY (tenant, asset_id),
    CONSTRAINT assets_tenant_foreign FOREIGN KEY (tenant) REFERENCES tenants (tenant),
    CONSTRAINT assets_client_id_foreign FOREIGN KEY (client_id) REFERENCES clients (client_id) ON DELETE CASCADE
);

CREATE INDEX idx_assets_rmm_device ON assets (tenant, rmm_provider, rmm_device_id);
CREATE INDEX idx_assets_agent_status ON assets (tenant, agent_status);
CREATE INDEX idx_assets_notes_document ON assets (tenant, notes_document_id);
CREATE INDEX idx_assets_tenant_client_location ON assets (tenant, client_id, location_id);
CREATE INDEX idx_assets_stock_unit ON assets (tenant, stock_unit_id);

-- ---------------------------------------------------------------------------------------------
-- workstation_assets and server_assets
-- ---------------------------------------------------------------------------------------------
CREATE TABLE workstation_assets (
    tenant                   TEXT NOT NULL,
    asset_id                 TEXT NOT NULL,
    os_type                  VARCHAR(255),
    os_version               VARCHAR(255),
    cpu_model                VARCHAR(255),
    cpu_cores                INTEGER,
    ram_gb                   INTEGER,
    storage_type             VARCHAR(255),
    storage_capacity_gb      INTEGER,
    gpu_model                VARCHAR(255),
    last_login               TEXT,
    installed_software       TEXT DEFAULT '[]',
    agent_version            VARCHAR(255),
    antivirus_status         VARCHAR(50),
    antivirus_product        VARCHAR(255),
    last_reboot_at           TEXT,
    pending_patches          INTEGER,
    failed_patches           INTEGER,
    last_patch_scan_at       TEXT,
    system_info              TEXT DEFAULT '{}',
    disk_usage               TEXT DEFAULT '[]',
    "current_user"           VARCHAR(255),
    uptime_seconds           INTEGER,
    lan_ip                   VARCHAR(45),
    wan_ip                   VARCHAR(45),
    cpu_utilization_percent  REAL,
    memory_usage_percent     REAL,
    memory_used_gb           REAL,
    pending_os_patches       INTEGER,
    pending_software_patches INTEGER,
    CONSTRAINT workstation_assets_pkey PRIMARY KEY (tenant, asset_id),
    CONSTRAINT workstation_assets_tenant_asset_id_foreign FOREIGN KEY (tenant, asset_id)
        REFERENCES assets (tenant, asset_id) ON DELETE CASCADE
);

CREATE INDEX workstation_assets_tenant_os_type_index ON workstation_assets (tenant, os_type);
CREATE INDEX workstation_assets_tenant_last_login_index ON workstation_assets (tenant, last_login);
CREATE INDEX idx_workstation_assets_current_user ON workstation_assets (tenant, "current_user");

CREATE TABLE server_assets (
    tenant                   TEXT NOT NULL,
    asset_id                 TEXT NOT NULL,
    os_type                  VARCHAR(255),
    os_version               VARCHAR(255),
    cpu_model                VARCHAR(255),
    cpu_cores                INTEGER,
    ram_gb                   INTEGER,
    storage_config           TEXT DEFAULT '[]',
    raid_config              VARCHAR(255),
    is_virtual               INTEGER DEFAULT 0,
    hypervisor               VARCHAR(255),
    network_interfaces       TEXT DEFAULT '[]',
    primary_ip               VARCHAR(255),
    installed_services       TEXT DEFAULT '[]',
    agent_version            VARCHAR(255),
    antivirus_status         VARCHAR(50),
    antivirus_product        VARCHAR(255),
    last_reboot_at           TEXT,
    pending_patches          INTEGER,
    failed_patches           INTEGER,
    last_patch_scan_at       TEXT,
    system_info              TEXT DEFAULT '{}',
    disk_usage               TEXT DEFAULT '[]',
    cpu_usage_percent        REAL,
    memory_usage_percent     REAL,
    installed_software       TEXT DEFAULT '[]',
    "current_user"           VARCHAR(255),
    uptime_seconds           INTEGER,
    lan_ip                   VARCHAR(45),
    wan_ip                   VARCHAR(45),
    memory_used_gb           REAL,
    pending_os_patches       INTEGER,
    pending_software_patches INTEGER,
    CONSTRAINT server_assets_pkey PRIMARY KEY (tenant, asset_id),
    CONSTRAINT server_assets_tenant_asset_id_foreign FOREIGN KEY (tenant, asset_id)
        REFERENCES assets (tenant, asset_id) ON DELETE CASCADE
);

CREATE INDEX server_assets_tenant_os_type_index ON server_assets (tenant, os_type);
CREATE INDEX server_assets_tenant_is_virtual_index ON server_assets (tenant, is_virtual);
CREATE INDEX server_assets_tenant_primary_ip_index ON server_assets (tenant, primary_ip);
CREATE INDEX idx_server_assets_current_user ON server_assets (tenant, "current_user");

-- ---------------------------------------------------------------------------------------------
-- tenant_external_entity_mappings (no updated_at trigger, as in AlgaPSA)
-- ---------------------------------------------------------------------------------------------
CREATE TABLE tenant_external_entity_mappings (
    id                 TEXT         NOT NULL,
    tenant             TEXT         NOT NULL,
    integration_type   VARCHAR(50)  NOT NULL,
    alga_entity_type   VARCHAR(50)  NOT NULL,
    alga_entity_id     VARCHAR(255) NOT NULL,
    external_entity_id VARCHAR(255) NOT NULL,
    external_realm_id  VARCHAR(255),
    sync_status        VARCHAR(20)  DEFAULT 'pending',
    last_synced_at     TEXT,
    metadata           TEXT,
    created_at         TEXT         NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at         TEXT         NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT tenant_external_entity_mappings_pkey PRIMARY KEY (id, tenant),
    CONSTRAINT tenant_external_entity_mappings_tenant_id_foreign FOREIGN KEY (tenant)
        REFERENCES tenants (tenant) ON DELETE CASCADE,
    CONSTRAINT idx_unique_alga_mapping UNIQUE (tenant, integration_type, alga_entity_type, alga_entity_id)
);

CREATE UNIQUE INDEX idx_unique_external_mapping ON tenant_external_entity_mappings
    (tenant, integration_type, alga_entity_type, external_entity_id, COALESCE(external_realm_id, ''));
CREATE INDEX tenant_external_entity_mappings_tenant_id_index ON tenant_external_entity_mappings (tenant);
CREATE INDEX idx_tenant_integration ON tenant_external_entity_mappings (tenant, integration_type);
CREATE INDEX idx_tenant_integration_external ON tenant_external_entity_mappings
    (tenant, integration_type, external_entity_id);

-- ---------------------------------------------------------------------------------------------
-- rmm_integrations
-- ---------------------------------------------------------------------------------------------
CREATE TABLE rmm_integrations (
    tenant                   TEXT         NOT NULL,
    integration_id           TEXT         NOT NULL,
    provider                 VARCHAR(50)  NOT NULL,
    instance_url             VARCHAR(255),
    is_active                INTEGER      NOT NULL DEFAULT 0,
    connected_at             TEXT,
    last_sync_at             TEXT,
    last_full_sync_at        TEXT,
    last_incremental_sync_at TEXT,
    sync_status              VARCHAR(20)  DEFAULT 'pending',
    sync_error               TEXT,
    settings                 TEXT         DEFAULT '{}',
    created_at               TEXT         NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at               TEXT         NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT rmm_integrations_pkey PRIMARY KEY (tenant, integration_id),
    CONSTRAINT rmm_integrations_tenant_foreign FOREIGN KEY (tenant) REFERENCES tenants (tenant) ON DELETE CASCADE,
    CONSTRAINT idx_rmm_integrations_tenant_provider UNIQUE (tenant, provider)
);

CREATE INDEX idx_rmm_integrations_tenant_active ON rmm_integrations (tenant, is_active);

CREATE TRIGGER set_timestamp_rmm_integrations
    AFTER UPDATE ON rmm_integrations
    FOR EACH ROW WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE rmm_integrations SET updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    WHERE tenant = NEW.tenant AND integration_id = NEW.integration_id;
END;

-- ---------------------------------------------------------------------------------------------
-- rmm_organization_mappings
-- ---------------------------------------------------------------------------------------------
CREATE TABLE rmm_organization_mappings (
    tenant                     TEXT         NOT NULL,
    mapping_id                 TEXT         NOT NULL,
    integration_id             TEXT         NOT NULL,
    external_organization_id   VARCHAR(255) NOT NULL,
    external_organization_name VARCHAR(255),
    client_id                  TEXT,
    auto_sync_assets           INTEGER      NOT NULL DEFAULT 1,
    auto_create_tickets        INTEGER      NOT NULL DEFAULT 0,
    metadata                   TEXT         DEFAULT '{}',
    last_synced_at             TEXT,
    created_at                 TEXT         NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at                 TEXT         NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    default_contact_id         TEXT,
    CONSTRAINT rmm_organization_mappings_pkey PRIMARY KEY (tenant, mapping_id),
    CONSTRAINT rmm_organization_mappings_tenant_integration_id_foreign FOREIGN KEY (tenant, integration_id)
        REFERENCES rmm_integrations (tenant, integration_id) ON DELETE CASCADE,
    -- As in AlgaPSA: a composite SET NULL also nulls tenant, so deleting a mapped client fails.
    CONSTRAINT rmm_organization_mappings_tenant_client_id_foreign FOREIGN KEY (tenant, client_id)
        REFERENCES clients (tenant, client_id) ON DELETE SET NULL,
    CONSTRAINT idx_rmm_org_mappings_unique_external UNIQUE (tenant, integration_id, external_organization_id)
);

CREATE INDEX idx_rmm_org_mappings_client ON rmm_organization_mappings (tenant, client_id);
CREATE INDEX idx_rmm_org_mappings_default_contact ON rmm_organization_mappings (tenant, default_contact_id);

CREATE TRIGGER set_timestamp_rmm_organization_mappings
    AFTER UPDATE ON rmm_organization_mappings
    FOR EACH ROW WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE rmm_organization_mappings SET updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    WHERE tenant = NEW.tenant AND mapping_id = NEW.mapping_id;
END;

-- ---------------------------------------------------------------------------------------------
-- rmm_alerts
-- ---------------------------------------------------------------------------------------------
CREATE TABLE rmm_alerts (
    tenant                  TEXT         NOT NULL,
    alert_id                TEXT         NOT NULL,
    integration_id          TEXT         NOT NULL,
    external_alert_id       VARCHAR(255) NOT NULL,
    external_device_id      VARCHAR(255),
    asset_id                TEXT,
    severity                VARCHAR(20)  NOT NULL,
    priority                VARCHAR(20),
    status                  VARCHAR(20)  NOT NULL DEFAULT 'active',
    source_type             VARCHAR(50),
    alert_class             VARCHAR(100),
    message                 TEXT,
    device_name             TEXT,
    ticket_id               TEXT,
    triggered_at            TEXT,
    resolved_at             TEXT,
    metadata                TEXT         DEFAULT '{}',
    created_at              TEXT         NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at              TEXT         NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    activity_type           VARCHAR(100),
    acknowledged_at         TEXT,
    acknowledged_by         TEXT,
    dedup_key               VARCHAR(255),
    occurrence_count        INTEGER      NOT NULL DEFAULT 1,
    last_occurrence_at      TEXT,
    matched_rule_id         TEXT,
    auto_ticket_created     INTEGER      NOT NULL DEFAULT 0,
    suppressed_by_window_id TEXT,
    CONSTRAINT rmm_alerts_pkey PRIMARY KEY (tenant, alert_id),
    CONSTRAINT rmm_alerts_tenant_integration_id_foreign FOREIGN KEY (tenant, integration_id)
        REFERENCES rmm_integrations (tenant, integration_id) ON DELETE CASCADE,
    -- As in AlgaPSA: a composite SET NULL also nulls tenant, so deleting an alerted asset fails.
    CONSTRAINT rmm_alerts_tenant_asset_id_foreign FOREIGN KEY (tenant, asset_id)
        REFERENCES assets (tenant, asset_id) ON DELETE SET NULL,
    CONSTRAINT idx_rmm_alerts_unique_external UNIQUE (tenant, integration_id, external_alert_id)
);

CREATE INDEX idx_rmm_alerts_status ON rmm_alerts (tenant, status);
CREATE INDEX idx_rmm_alerts_severity ON rmm_alerts (tenant, severity);
CREATE INDEX idx_rmm_alerts_asset ON rmm_alerts (tenant, asset_id);
CREATE INDEX idx_rmm_alerts_triggered ON rmm_alerts (tenant, triggered_at);
CREATE INDEX idx_rmm_alerts_dedup ON rmm_alerts (tenant, integration_id, dedup_key);

CREATE TRIGGER set_timestamp_rmm_alerts
    AFTER UPDATE ON rmm_alerts
    FOR EACH ROW WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE rmm_alerts SET updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    WHERE tenant = NEW.tenant AND alert_id = NEW.alert_id;
END;

-- ---------------------------------------------------------------------------------------------
-- software_catalog and asset_software
-- ---------------------------------------------------------------------------------------------
CREATE TABLE software_catalog (
    software_id          TEXT         NOT NULL,
    tenant               TEXT         NOT NULL,
    name                 VARCHAR(500) NOT NULL,
    publisher            VARCHAR(255),
    normalized_name      VARCHAR(500) NOT NULL,
    category             VARCHAR(100),
    software_type        VARCHAR(50)  NOT NULL DEFAULT 'application',
    is_managed           INTEGER      NOT NULL DEFAULT 0,
    is_security_relevant INTEGER      NOT NULL DEFAULT 0,
    created_at           TEXT         NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at           TEXT         NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT software_catalog_pkey PRIMARY KEY (tenant, software_id),
    CONSTRAINT software_catalog_tenant_foreign FOREIGN KEY (tenant) REFERENCES tenants (tenant) ON DELETE CASCADE,
    -- plain unique constraint: NULL publishers are not deduplicated by it (same in SQLite)
    CONSTRAINT idx_software_catalog_unique_name_publisher UNIQUE (tenant, normalized_name, publisher)
);

CREATE INDEX idx_software_catalog_tenant ON software_catalog (tenant);
CREATE INDEX idx_software_catalog_name ON software_catalog (tenant, normalized_name);
CREATE INDEX idx_software_catalog_publisher ON software_catalog (tenant, publisher);
CREATE INDEX idx_software_catalog_category ON software_catalog (tenant, category);
CREATE INDEX idx_software_catalog_managed ON software_catalog (tenant, is_managed);
CREATE INDEX idx_software_catalog_security ON software_catalog (tenant, is_security_relevant);

CREATE TRIGGER set_timestamp_software_catalog
    AFTER UPDATE ON software_catalog
    FOR EACH ROW WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE software_catalog SET updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    WHERE tenant = NEW.tenant AND software_id = NEW.software_id;
END;

CREATE TABLE asset_software (
    tenant         TEXT         NOT NULL,
    asset_id       TEXT         NOT NULL,
    software_id    TEXT         NOT NULL,
    version        VARCHAR(100),
    install_date   TEXT,
    install_path   TEXT,
    size_bytes     INTEGER,
    first_seen_at  TEXT         NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    last_seen_at   TEXT         NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    is_current     INTEGER      NOT NULL DEFAULT 1,
    uninstalled_at TEXT,
    CONSTRAINT asset_software_pkey PRIMARY KEY (tenant, asset_id, software_id),
    CONSTRAINT asset_software_tenant_asset_id_foreign FOREIGN KEY (tenant, asset_id)
        REFERENCES assets (tenant, asset_id) ON DELETE CASCADE,
    CONSTRAINT asset_software_tenant_software_id_foreign FOREIGN KEY (tenant, software_id)
        REFERENCES software_catalog (tenant, software_id) ON DELETE CASCADE
);

CREATE INDEX idx_asset_software_asset_current ON asset_software (tenant, asset_id, is_current);
CREATE INDEX idx_asset_software_software_current ON asset_software (tenant, software_id, is_current);
CREATE INDEX idx_asset_software_first_seen ON asset_software (tenant, first_seen_at);
CREATE INDEX idx_asset_software_uninstalled ON asset_software (tenant, uninstalled_at);
CREATE INDEX idx_asset_software_version ON asset_software (tenant, software_id, version);

CREATE VIEW v_asset_software_details AS
SELECT
    asw.tenant,
    asw.asset_id,
    a.name AS asset_name,
    a.asset_type,
    a.client_id,
    c.client_name,
    sc.software_id,
    sc.name AS software_name,
    sc.publisher,
    sc.normalized_name,
    sc.category,
    sc.software_type,
    sc.is_managed,
    sc.is_security_relevant,
    asw.version,
    asw.install_date,
    asw.install_path,
    asw.size_bytes,
    asw.first_seen_at,
    asw.last_seen_at,
    asw.is_current,
    asw.uninstalled_at
FROM asset_software asw
JOIN software_catalog sc ON sc.tenant = asw.tenant AND sc.software_id = asw.software_id
JOIN assets a ON a.tenant = asw.tenant AND a.asset_id = asw.asset_id
LEFT JOIN clients c ON c.tenant = a.tenant AND c.client_id = a.client_id;

-- ---------------------------------------------------------------------------------------------
-- asset_facts
-- ---------------------------------------------------------------------------------------------
CREATE TABLE asset_facts (
    tenant            TEXT    NOT NULL,
    asset_fact_id     TEXT    NOT NULL,
    asset_id          TEXT    NOT NULL,
    source_type       TEXT    NOT NULL,
    provider          TEXT,
    integration_id    TEXT,
    namespace         TEXT    NOT NULL,
    fact_key          TEXT    NOT NULL,
    label             TEXT    NOT NULL,
    value_text        TEXT,
    value_number      REAL,
    value_bool        INTEGER,
    value_json        TEXT    NOT NULL DEFAULT '{}',
    source            TEXT    NOT NULL,
    source_updated_at TEXT,
    last_synced_at    TEXT,
    is_available      INTEGER NOT NULL DEFAULT 1,
    created_at        TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at        TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT asset_facts_pkey PRIMARY KEY (tenant, asset_fact_id),
    CONSTRAINT asset_facts_tenant_foreign FOREIGN KEY (tenant) REFERENCES tenants (tenant),
    CONSTRAINT asset_facts_tenant_asset_id_foreign FOREIGN KEY (tenant, asset_id)
        REFERENCES assets (tenant, asset_id) ON DELETE CASCADE,
    CONSTRAINT asset_facts_tenant_asset_fact_current_uk UNIQUE (tenant, asset_id, source_type, namespace, fact_key)
);

CREATE INDEX asset_facts_tenant_asset_idx ON asset_facts (tenant, asset_id);
