-- AlgaPSA-compatible tables for STANDALONE mode only.
--
-- rmm-sync writes AlgaPSA's own tables. Against a real AlgaPSA database (schema_mode = "algapsa")
-- these tables already exist, this file is never run, and shared/src/db/schema_check.rs only checks
-- that every column we use is there. In standalone mode (trials, tests, the embedded default) this
-- file creates the subset of AlgaPSA's schema that rmm-sync reads and writes, so the same SQL runs
-- unchanged in both modes.
--
-- It mirrors the final, cumulative result of AlgaPSA's knex migrations at the public AlgaPSA
-- repository commit 432f5f5887b0… (2026-08-22), as recorded in research/algapsa-contract.md §1:
-- exact column names, types (knex string() = varchar(255), timestamp() = timestamptz), nullability,
-- defaults, primary keys, unique constraints and indexes (with AlgaPSA's names), and the foreign keys
-- of a plain (non-Citus) PostgreSQL install where both ends are created here. Deliberate omissions:
--   * tenants and clients carry only their key columns and the columns rmm-sync touches;
--   * the FKs of assets.notes_document_id, location_id, service_id and stock_unit_id are omitted
--     (documents, client_locations, service_catalog and stock_units are not created here), the
--     columns themselves are kept;
--   * rmm_alert_rules, rmm_maintenance_windows, asset_history, asset_type_registry and the other
--     extension tables are not created (rmm-sync does not use them).
-- Keep this file in step with migrations/sqlite/algapsa/ and schema_check::REQUIRED.

-- ---------------------------------------------------------------------------------------------
-- updated_at trigger function (AlgaPSA 20250502173321)
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION on_update_timestamp() RETURNS trigger AS $$
BEGIN
    NEW.updated_at = now();
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

-- ---------------------------------------------------------------------------------------------
-- tenants (key facts only, §1.2; suspension §1.1)
-- ---------------------------------------------------------------------------------------------
CREATE TABLE tenants (
    tenant              uuid        NOT NULL DEFAULT gen_random_uuid(),
    client_name         text        NOT NULL,
    email               text        NOT NULL,
    phone_number        text,
    industry            text,
    payment_platform_id text,
    payment_method_id   text,
    auth_service_id     text,
    plan                text,
    created_at          timestamptz,
    updated_at          timestamptz DEFAULT now(),
    product_code        text        DEFAULT 'psa',
    suspended_at        timestamptz,
    suspended_reason    text,
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
-- clients (the client_id key, §1.3)
-- ---------------------------------------------------------------------------------------------
CREATE TABLE clients (
    tenant      uuid    NOT NULL,
    client_id   uuid    NOT NULL DEFAULT gen_random_uuid(),
    client_name text    NOT NULL,
    is_inactive boolean DEFAULT false,
    CONSTRAINT clients_pkey PRIMARY KEY (tenant, client_id),
    CONSTRAINT clients_tenant_client_name_unique UNIQUE (tenant, client_name),
    -- exists only on non-Citus installs; target of assets_client_id_foreign
    CONSTRAINT clients_client_id_unique UNIQUE (client_id),
    CONSTRAINT clients_tenant_foreign FOREIGN KEY (tenant) REFERENCES tenants (tenant)
);

-- ---------------------------------------------------------------------------------------------
-- assets (§1.4)
-- ---------------------------------------------------------------------------------------------
CREATE TABLE assets (
    tenant              uuid         NOT NULL,
    asset_id            uuid         NOT NULL DEFAULT gen_random_uuid(),
    client_id           uuid         NOT NULL,
    asset_tag           text         NOT NULL,
    serial_number       text,
    name                text         NOT NULL,
    status              text         NOT NULL,
    location            text,
    purchase_date       timestamptz,
    warranty_end_date   timestamptz,
    attributes          jsonb,
    created_at          timestamptz  DEFAULT CURRENT_TIMESTAMP,
    updated_at          timestamptz  DEFAULT CURRENT_TIMESTAMP,
    asset_type          text         NOT NULL DEFAULT 'unknown',
    rmm_provider        varchar(50),
    rmm_device_id       varchar(255),
    rmm_organization_id varchar(255),
    agent_status        varchar(20),
    last_seen_at        timestamptz,
    last_rmm_sync_at    timestamptz,
    notes_document_id   uuid,  -- FK (tenant, notes_document_id) -> documents: omitted here
    location_id         uuid,  -- FK (location_id, tenant) -> client_locations: omitted here
    service_id          uuid,  -- FK (tenant, service_id) -> service_catalog: omitted here
    stock_unit_id       uuid,  -- FK (tenant, stock_unit_id) -> stock_units: omitted here
    CONSTRAINT assets_pkey PRIMARY KEY (tenant, asset_id),
    CONSTRAINT assets_tenant_foreign FOREIGN KEY (tenant) REFERENCES tenants (tenant),
    CONSTRAINT assets_client_id_foreign FOREIGN KEY (client_id) REFERENCES clients (client_id) ON DELETE CASCADE
);

-- not unique: AlgaPSA allows duplicate RMM assets
CREATE INDEX idx_assets_rmm_device ON assets (tenant, rmm_provider, rmm_device_id);
CREATE INDEX idx_assets_agent_status ON assets (tenant, agent_status);
CREATE INDEX idx_assets_notes_document ON assets (tenant, notes_document_id);
CREATE INDEX idx_assets_tenant_client_location ON assets (tenant, client_id, location_id);
CREATE INDEX idx_assets_stock_unit ON assets (tenant, stock_unit_id);

-- ---------------------------------------------------------------------------------------------
-- workstation_assets and server_assets (§1.5)
-- ---------------------------------------------------------------------------------------------
CREATE TABLE workstation_assets (
    tenant                   uuid         NOT NULL,
    asset_id                 uuid         NOT NULL,
    os_type                  varchar(255),
    os_version               varchar(255),
    cpu_model                varchar(255),
    cpu_cores                integer,
    ram_gb                   integer,
    storage_type             varchar(255),
    storage_capacity_gb      integer,
    gpu_model                varchar(255),
    last_login               timestamptz,
    installed_software       jsonb        DEFAULT '[]'::jsonb,
    agent_version            varchar(255),
    antivirus_status         varchar(50),
    antivirus_product        varchar(255),
    last_reboot_at           timestamptz,
    pending_patches          integer,
    failed_patches           integer,
    last_patch_scan_at       timestamptz,
    system_info              jsonb        DEFAULT '{}'::jsonb,
    disk_usage               jsonb        DEFAULT '[]'::jsonb,
    "current_user"           varchar(255),
    uptime_seconds           bigint,
    lan_ip                   varchar(45),
    wan_ip                   varchar(45),
    cpu_utilization_percent  numeric(5,2),
    memory_usage_percent     numeric(5,2),
    memory_used_gb           numeric(10,2),
    pending_os_patches       integer,
    pending_software_patches integer,
    CONSTRAINT workstation_assets_pkey PRIMARY KEY (tenant, asset_id),
    CONSTRAINT workstation_assets_tenant_asset_id_foreign FOREIGN KEY (tenant, asset_id)
        REFERENCES assets (tenant, asset_id) ON DELETE CASCADE
);

CREATE INDEX workstation_assets_tenant_os_type_index ON workstation_assets (tenant, os_type);
CREATE INDEX workstation_assets_tenant_last_login_index ON workstation_assets (tenant, last_login);
CREATE INDEX idx_workstation_assets_current_user ON workstation_assets (tenant, "current_user");

CREATE TABLE server_assets (
    tenant                   uuid         NOT NULL,
    asset_id                 uuid         NOT NULL,
    os_type                  varchar(255),
    os_version               varchar(255),
    cpu_model                varchar(255),
    cpu_cores                integer,
    ram_gb                   integer,
    storage_config           jsonb        DEFAULT '[]'::jsonb,
    raid_config              varchar(255),
    is_virtual               boolean      DEFAULT false,
    hypervisor               varchar(255),
    network_interfaces       jsonb        DEFAULT '[]'::jsonb,
    primary_ip               varchar(255),
    installed_services       jsonb        DEFAULT '[]'::jsonb,
    agent_version            varchar(255),
    antivirus_status         varchar(50),
    antivirus_product        varchar(255),
    last_reboot_at           timestamptz,
    pending_patches          integer,
    failed_patches           integer,
    last_patch_scan_at       timestamptz,
    system_info              jsonb        DEFAULT '{}'::jsonb,
    disk_usage               jsonb        DEFAULT '[]'::jsonb,
    cpu_usage_percent        numeric(5,2),
    memory_usage_percent     numeric(5,2),
    installed_software       jsonb        DEFAULT '[]'::jsonb,
    "current_user"           varchar(255),
    uptime_seconds           bigint,
    lan_ip                   varchar(45),
    wan_ip                   varchar(45),
    memory_used_gb           numeric(10,2),
    pending_os_patches       integer,
    pending_software_patches integer,
    CONSTRAINT server_assets_pkey PRIMARY KEY (tenant, asset_id),
    CONSTRAINT server_assets_tenant_asset_id_foreign FOREIGN KEY (tenant, asset_id)
        REFERENCES assets (tenant, asset_id) ON DELETE CASCADE
);

CREATE INDEX server_assets_tenant_os_type_index ON server_assets (tenant, os_type);
CREATE INDEX server_assets_tenant_is_virtual_index ON server_assets (tenant, is_virtual);
CREATE INDEX server_assets_tenant_primary_ip_index ON server_assets (tenant, primary_ip);
CREATE INDEX idx_server_assets_current_user ON server_assets (tenant, "current_user");

-- ---------------------------------------------------------------------------------------------
-- tenant_external_entity_mappings (§1.7). No updated_at trigger (dropped in 20250513130500).
-- ---------------------------------------------------------------------------------------------
CREATE TABLE tenant_external_entity_mappings (
    id                 uuid         NOT NULL DEFAULT gen_random_uuid(),
    tenant             uuid         NOT NULL,
    integration_type   varchar(50)  NOT NULL,
    alga_entity_type   varchar(50)  NOT NULL,
    alga_entity_id     varchar(255) NOT NULL,
    external_entity_id varchar(255) NOT NULL,
    external_realm_id  varchar(255),
    sync_status        varchar(20)  DEFAULT 'pending',
    last_synced_at     timestamptz,
    metadata           jsonb,
    created_at         timestamptz  NOT NULL DEFAULT now(),
    updated_at         timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT tenant_external_entity_mappings_pkey PRIMARY KEY (id, tenant),
    -- named after the column's original name (tenant_id, renamed in 20250512094730)
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
-- rmm_integrations (§1.8)
-- ---------------------------------------------------------------------------------------------
CREATE TABLE rmm_integrations (
    tenant                   uuid         NOT NULL,
    integration_id           uuid         NOT NULL DEFAULT gen_random_uuid(),
    provider                 varchar(50)  NOT NULL,
    instance_url             varchar(255),
    is_active                boolean      NOT NULL DEFAULT false,
    connected_at             timestamptz,
    last_sync_at             timestamptz,
    last_full_sync_at        timestamptz,
    last_incremental_sync_at timestamptz,
    sync_status              varchar(20)  DEFAULT 'pending',
    sync_error               text,
    settings                 jsonb        DEFAULT '{}'::jsonb,
    created_at               timestamptz  NOT NULL DEFAULT now(),
    updated_at               timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT rmm_integrations_pkey PRIMARY KEY (tenant, integration_id),
    CONSTRAINT rmm_integrations_tenant_foreign FOREIGN KEY (tenant) REFERENCES tenants (tenant) ON DELETE CASCADE,
    CONSTRAINT idx_rmm_integrations_tenant_provider UNIQUE (tenant, provider)
);

CREATE INDEX idx_rmm_integrations_tenant_active ON rmm_integrations (tenant, is_active);

CREATE TRIGGER set_timestamp_rmm_integrations
    BEFORE UPDATE ON rmm_integrations
    FOR EACH ROW EXECUTE PROCEDURE on_update_timestamp();

-- ---------------------------------------------------------------------------------------------
-- rmm_organization_mappings (§1.9)
-- ---------------------------------------------------------------------------------------------
CREATE TABLE rmm_organization_mappings (
    tenant                     uuid         NOT NULL,
    mapping_id                 uuid         NOT NULL DEFAULT gen_random_uuid(),
    integration_id             uuid         NOT NULL,
    external_organization_id   varchar(255) NOT NULL,
    external_organization_name varchar(255),
    client_id                  uuid,
    auto_sync_assets           boolean      NOT NULL DEFAULT true,
    auto_create_tickets        boolean      NOT NULL DEFAULT false,
    metadata                   jsonb        DEFAULT '{}'::jsonb,
    last_synced_at             timestamptz,
    created_at                 timestamptz  NOT NULL DEFAULT now(),
    updated_at                 timestamptz  NOT NULL DEFAULT now(),
    default_contact_id         uuid,  -- deliberately no FK (20260619120000)
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
    BEFORE UPDATE ON rmm_organization_mappings
    FOR EACH ROW EXECUTE PROCEDURE on_update_timestamp();

-- ---------------------------------------------------------------------------------------------
-- rmm_alerts (§1.10, including the 20260612090000 columns)
-- ---------------------------------------------------------------------------------------------
CREATE TABLE rmm_alerts (
    tenant                  uuid         NOT NULL,
    alert_id                uuid         NOT NULL DEFAULT gen_random_uuid(),
    integration_id          uuid         NOT NULL,
    external_alert_id       varchar(255) NOT NULL,
    external_device_id      varchar(255),
    asset_id                uuid,
    severity                varchar(20)  NOT NULL,
    priority                varchar(20),
    status                  varchar(20)  NOT NULL DEFAULT 'active',
    source_type             varchar(50),
    alert_class             varchar(100),
    message                 text,
    device_name             text,
    ticket_id               uuid,
    triggered_at            timestamptz,
    resolved_at             timestamptz,
    metadata                jsonb        DEFAULT '{}'::jsonb,
    created_at              timestamptz  NOT NULL DEFAULT now(),
    updated_at              timestamptz  NOT NULL DEFAULT now(),
    activity_type           varchar(100),
    acknowledged_at         timestamptz,
    acknowledged_by         uuid,
    dedup_key               varchar(255),
    occurrence_count        integer      NOT NULL DEFAULT 1,
    last_occurrence_at      timestamptz,
    matched_rule_id         uuid,
    auto_ticket_created     boolean      NOT NULL DEFAULT false,
    suppressed_by_window_id uuid,
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
    BEFORE UPDATE ON rmm_alerts
    FOR EACH ROW EXECUTE PROCEDURE on_update_timestamp();

-- ---------------------------------------------------------------------------------------------
-- software_catalog and asset_software (§1.12)
-- ---------------------------------------------------------------------------------------------
CREATE TABLE software_catalog (
    software_id          uuid         NOT NULL DEFAULT gen_random_uuid(),
    tenant               uuid         NOT NULL,
    name                 varchar(500) NOT NULL,
    publisher            varchar(255),
    normalized_name      varchar(500) NOT NULL,
    category             varchar(100),
    software_type        varchar(50)  NOT NULL DEFAULT 'application',
    is_managed           boolean      NOT NULL DEFAULT false,
    is_security_relevant boolean      NOT NULL DEFAULT false,
    created_at           timestamptz  NOT NULL DEFAULT now(),
    updated_at           timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT software_catalog_pkey PRIMARY KEY (tenant, software_id),
    CONSTRAINT software_catalog_tenant_foreign FOREIGN KEY (tenant) REFERENCES tenants (tenant) ON DELETE CASCADE,
    -- plain unique constraint: NULL publishers are not deduplicated by it
    CONSTRAINT idx_software_catalog_unique_name_publisher UNIQUE (tenant, normalized_name, publisher)
);

CREATE INDEX idx_software_catalog_tenant ON software_catalog (tenant);
CREATE INDEX idx_software_catalog_name ON software_catalog (tenant, normalized_name);
CREATE INDEX idx_software_catalog_publisher ON software_catalog (tenant, publisher);
CREATE INDEX idx_software_catalog_category ON software_catalog (tenant, category);
CREATE INDEX idx_software_catalog_managed ON software_catalog (tenant, is_managed);
CREATE INDEX idx_software_catalog_security ON software_catalog (tenant, is_security_relevant);

CREATE TRIGGER set_timestamp_software_catalog
    BEFORE UPDATE ON software_catalog
    FOR EACH ROW EXECUTE PROCEDURE on_update_timestamp();

CREATE TABLE asset_software (
    tenant         uuid         NOT NULL,
    asset_id       uuid         NOT NULL,
    software_id    uuid         NOT NULL,
    version        varchar(100),
    install_date   date,
    install_path   text,
    size_bytes     bigint,
    first_seen_at  timestamptz  NOT NULL DEFAULT now(),
    last_seen_at   timestamptz  NOT NULL DEFAULT now(),
    is_current     boolean      NOT NULL DEFAULT true,
    uninstalled_at timestamptz,
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
-- asset_facts (§1.13)
-- ---------------------------------------------------------------------------------------------
CREATE TABLE asset_facts (
    tenant            uuid          NOT NULL,
    asset_fact_id     uuid          NOT NULL DEFAULT gen_random_uuid(),
    asset_id          uuid          NOT NULL,
    source_type       text          NOT NULL,
    provider          text,
    integration_id    uuid,
    namespace         text          NOT NULL,
    fact_key          text          NOT NULL,
    label             text          NOT NULL,
    value_text        text,
    value_number      numeric(12,4),
    value_bool        boolean,
    value_json        jsonb         NOT NULL DEFAULT '{}'::jsonb,
    source            text          NOT NULL,
    source_updated_at timestamptz,
    last_synced_at    timestamptz,
    is_available      boolean       NOT NULL DEFAULT true,
    created_at        timestamptz   NOT NULL DEFAULT now(),
    updated_at        timestamptz   NOT NULL DEFAULT now(),
    CONSTRAINT asset_facts_pkey PRIMARY KEY (tenant, asset_fact_id),
    CONSTRAINT asset_facts_tenant_foreign FOREIGN KEY (tenant) REFERENCES tenants (tenant),
    CONSTRAINT asset_facts_tenant_asset_id_foreign FOREIGN KEY (tenant, asset_id)
        REFERENCES assets (tenant, asset_id) ON DELETE CASCADE,
    CONSTRAINT asset_facts_tenant_asset_fact_current_uk UNIQUE (tenant, asset_id, source_type, namespace, fact_key)
);

CREATE INDEX asset_facts_tenant_asset_idx ON asset_facts (tenant, asset_id);
