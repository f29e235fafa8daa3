//! The AlgaPSA schema check (algapsa mode).
//!
//! Against a real AlgaPSA database rmm-sync creates nothing in `public`: it checks that every table,
//! view and column it reads or writes is there, and refuses to start otherwise, naming everything
//! that is missing at once (not only the first gap).
//!
//! [`REQUIRED`] is the list. It holds every column the standalone migrations
//! (`migrations/*/algapsa/`) create, except the few in [`NOT_REQUIRED`], which exist in AlgaPSA but
//! which rmm-sync never touches; requiring them would only reject older AlgaPSA installs for nothing.
//! The schema tests check that the two lists together cover the standalone tables exactly.

use std::collections::{BTreeMap, BTreeSet};

use super::{Db, DbError};

/// Table (or view) → the columns of it that rmm-sync reads or writes.
pub const REQUIRED: &[(&str, &[&str])] = &[
    ("tenants", &["tenant", "suspended_at", "suspended_reason"]),
    ("clients", &["tenant", "client_id", "client_name", "is_inactive"]),
    (
        "assets",
        &[
            "tenant",
            "asset_id",
            "client_id",
            "asset_tag",
            "serial_number",
            "name",
            "status",
            "location",
            "created_at",
            "updated_at",
            "asset_type",
            "rmm_provider",
            "rmm_device_id",
            "rmm_organization_id",
            "agent_status",
            "last_seen_at",
            "last_rmm_sync_at",
        ],
    ),
    (
        "workstation_assets",
        &[
            "tenant",
            "asset_id",
            "os_type",
            "os_version",
            "cpu_model",
            "cpu_cores",
            "ram_gb",
            "storage_type",
            "storage_capacity_gb",
            "gpu_model",
            "last_login",
            "installed_software",
            "agent_version",
            "antivirus_status",
            "antivirus_product",
            "last_reboot_at",
            "pending_patches",
            "failed_patches",
            "last_patch_scan_at",
            "system_info",
            "disk_usage",
            "current_user",
            "uptime_seconds",
            "lan_ip",
            "wan_ip",
            "cpu_utilization_percent",
            "memory_usage_percent",
            "memory_used_gb",
            "pending_os_patches",
            "pending_software_patches",
        ],
    ),
    (
        "server_assets",
        &[
            "tenant",
            "asset_id",
            "os_type",
            "os_version",
            "cpu_model",
            "cpu_cores",
            "ram_gb",
            "storage_config",
            "raid_config",
            "is_virtual",
            "hypervisor",
            "network_interfaces",
            "primary_ip",
            "installed_services",
            "agent_version",
            "antivirus_status",
            "antivirus_product",
            "last_reboot_at",
            "pending_patches",
            "failed_patches",
            "last_patch_scan_at",
            "system_info",
            "disk_usage",
            "cpu_usage_percent",
            "memory_usage_percent",
            "installed_software",
            "current_user",
            "uptime_seconds",
            "lan_ip",
            "wan_ip",
            "memory_used_gb",
            "pending_os_patches",
            "pending_software_patches",
        ],
    ),
    (
        "tenant_external_entity_mappings",
        &[
            "id",
            "tenant",
            "integration_type",
            "alga_entity_type",
            "alga_entity_id",
            "external_entity_id",
            "external_realm_id",
            "sync_status",
            "last_synced_at",
            "metadata",
            "created_at",
            "updated_at",
        ],
    ),
    (
        "rmm_integrations",
        &[
            "tenant",
            "integration_id",
            "provider",
            "instance_url",
            "is_active",
            "connected_at",
            "last_sync_at",
            "last_full_sync_at",
            "last_incremental_sync_at",
            "sync_status",
            "sync_error",
            "settings",
            "created_at",
            "updated_at",
        ],
    ),
    (
        "rmm_organization_mappings",
        &[
            "tenant",
            "mapping_id",
            "integration_id",
            "external_organization_id",
            "external_organization_name",
            "client_id",
            "auto_sync_assets",
            "auto_create_tickets",
            "metadata",
            "last_synced_at",
            "created_at",
            "updated_at",
            "default_contact_id",
        ],
    ),
    (
        "rmm_alerts",
        &[
            "tenant",
            "alert_id",
            "integration_id",
            "external_alert_id",
            "external_device_id",
            "asset_id",
            "severity",
            "priority",
            "status",
            "source_type",
            "alert_class",
            "message",
            "device_name",
            "ticket_id",
            "triggered_at",
            "resolved_at",
            "metadata",
            "created_at",
            "updated_at",
            "activity_type",
            "acknowledged_at",
            "acknowledged_by",
            "dedup_key",
            "occurrence_count",
            "last_occurrence_at",
            "matched_rule_id",
            "auto_ticket_created",
            "suppressed_by_window_id",
        ],
    ),
    (
        "software_catalog",
        &[
            "software_id",
            "tenant",
            "name",
            "publisher",
            "normalized_name",
            "category",
            "software_type",
            "is_managed",
            "is_security_relevant",
            "created_at",
            "updated_at",
        ],
    ),
    (
        "asset_software",
        &[
            "tenant",
            "asset_id",
            "software_id",
            "version",
            "install_date",
            "install_path",
            "size_bytes",
            "first_seen_at",
            "last_seen_at",
            "is_current",
            "uninstalled_at",
        ],
    ),
    (
        "asset_facts",
        &[
            "tenant",
            "asset_fact_id",
            "asset_id",
            "source_type",
            "provider",
            "integration_id",
            "namespace",
            "fact_key",
            "label",
            "value_text",
            "value_number",
            "value_bool",
            "value_json",
            "source",
            "source_updated_at",
            "last_synced_at",
            "is_available",
            "created_at",
            "updated_at",
        ],
    ),
    // AlgaPSA's UI reads software through this view; rmm-sync only needs it to exist (its column
    // list has changed across AlgaPSA versions, and rmm-sync never selects from it).
    ("v_asset_software_details", &[]),
];

/// Columns the standalone migrations create (because AlgaPSA has them) that rmm-sync never reads or
/// writes, so the check does not require them.
pub const NOT_REQUIRED: &[(&str, &[&str])] = &[
    (
        "tenants",
        &[
            "client_name",
            "email",
            "phone_number",
            "industry",
            "payment_platform_id",
            "payment_method_id",
            "auth_service_id",
            "plan",
            "created_at",
            "updated_at",
            "product_code",
        ],
    ),
    (
        "assets",
        &[
            "purchase_date",
            "warranty_end_date",
            "attributes",
            "notes_document_id",
            "location_id",
            "service_id",
            "stock_unit_id",
        ],
    ),
];

/// Everything rmm-sync needs that the database lacks: `missing table <name>` for each absent table or
/// view and `missing column <table>.<column>` for each absent column of a present one, in the order
/// of [`REQUIRED`]. Empty when the schema is complete.
pub async fn missing(db: &Db) -> Result<Vec<String>, DbError> {
    let names: Vec<String> = REQUIRED.iter().map(|(t, _)| (*t).to_owned()).collect();
    // (relation, column) pairs; a NULL column marks the relation itself as present.
    let rows: Vec<(String, Option<String>)> = match db {
        Db::Postgres(pool) => {
            sqlx::query_as(
                "SELECT t.table_name::text, NULL::text \
                 FROM information_schema.tables t \
                 WHERE t.table_schema = ANY (current_schemas(false)) AND t.table_name::text = ANY ($1) \
                 UNION ALL \
                 SELECT c.table_name::text, c.column_name::text \
                 FROM information_schema.columns c \
                 WHERE c.table_schema = ANY (current_schemas(false)) AND c.table_name::text = ANY ($1)",
            )
            .bind(&names)
            .fetch_all(pool)
            .await?
        }
        Db::Sqlite(pool) => {
            sqlx::query_as(
                "SELECT m.name, p.name \
                 FROM sqlite_master m LEFT JOIN pragma_table_info(m.name) p \
                 WHERE m.type IN ('table', 'view') AND m.name IN (SELECT value FROM json_each(?1))",
            )
            .bind(serde_json::to_string(&names).expect("a list of strings serializes"))
            .fetch_all(pool)
            .await?
        }
    };
    Ok(compare(REQUIRED, &rows))
}

/// Fails with [`DbError::SchemaMismatch`] listing everything [`missing`] reports.
pub async fn verify(db: &Db) -> Result<(), DbError> {
    let missing = missing(db).await?;
    if missing.is_empty() { Ok(()) } else { Err(DbError::SchemaMismatch(missing)) }
}

/// What `required` lacks given the `(relation, column)` rows the database reported.
fn compare(required: &[(&str, &[&str])], rows: &[(String, Option<String>)]) -> Vec<String> {
    let mut present: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (table, column) in rows {
        let columns = present.entry(table.as_str()).or_default();
        if let Some(column) = column {
            columns.insert(column.as_str());
        }
    }
    let mut out = Vec::new();
    for (table, columns) in required {
        match present.get(table) {
            None => out.push(format!("missing table {table}")),
            Some(have) => {
                out.extend(columns.iter().filter(|c| !have.contains(*c)).map(|c| format!("missing column {table}.{c}")))
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(pairs: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
        pairs.iter().map(|(t, c)| ((*t).to_owned(), c.map(str::to_owned))).collect()
    }

    #[test]
    fn reports_every_missing_table_and_column() {
        let required: &[(&str, &[&str])] = &[("a", &["x", "y", "z"]), ("b", &["x"]), ("v", &[]), ("w", &[])];
        let got = compare(required, &rows(&[("a", None), ("a", Some("y")), ("v", None), ("other", Some("x"))]));
        assert_eq!(got, ["missing column a.x", "missing column a.z", "missing table b", "missing table w"]);
        let all = compare(
            required,
            &rows(&[("a", Some("x")), ("a", Some("y")), ("a", Some("z")), ("b", Some("x")), ("v", None), ("w", None)]),
        );
        assert!(all.is_empty(), "{all:?}");
    }

    #[test]
    fn lists_have_no_duplicates_and_do_not_overlap() {
        let mut seen = BTreeSet::new();
        for (table, columns) in REQUIRED.iter().chain(NOT_REQUIRED) {
            for c in *columns {
                assert!(seen.insert((*table, *c)), "{table}.{c} listed twice");
            }
        }
        let tables: BTreeSet<&str> = REQUIRED.iter().map(|(t, _)| *t).collect();
        assert_eq!(tables.len(), REQUIRED.len(), "a table is listed twice in REQUIRED");
        assert!(NOT_REQUIRED.iter().all(|(t, _)| tables.contains(t)), "NOT_REQUIRED names a table REQUIRED lacks");
    }
}
