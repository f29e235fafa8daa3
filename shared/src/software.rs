//! The software writer: `software_catalog` find-or-create and the `asset_software` current /
//! uninstalled lifecycle.
//!
//! Names are normalised as AlgaPSA's Tactical ingest does: trim, lowercase, collapse whitespace,
//! then drop every character outside `[A-Za-z0-9_ .+-]` and whitespace. Catalog rows are found by
//! `(normalized_name, publisher)`, NULL publishers included: AlgaPSA's unique index does not
//! dedupe NULLs, so creation is serialised per key (advisory locks on Postgres, the write lock on
//! SQLite) and runs in its own short transaction.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::db::sql::{ColType, Tx, fmt_ts};
use crate::db::{Db, DbError, Dialect};
use crate::ingest::apply::device_lock_key;
use crate::ingest::plan::truncate;

/// One installed product as a provider reports it.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct SoftwareItem {
    pub name: String,
    pub version: Option<String>,
    pub publisher: Option<String>,
    pub install_path: Option<String>,
    pub install_date: Option<NaiveDate>,
    pub size_bytes: Option<i64>,
}

/// What a software sync did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct SoftwareReport {
    /// Items given (including ones with an empty name, which are skipped).
    pub items_processed: u64,
    /// Rows inserted or flipped back to current.
    pub installed: u64,
    /// Rows marked uninstalled.
    pub uninstalled: u64,
    /// Catalog rows created.
    pub catalog_created: u64,
    /// Assets whose software was synced.
    pub assets_touched: u64,
}

/// AlgaPSA's catalog key normalisation (see the module docs).
pub fn normalize_name(name: &str) -> String {
    let lowered = name.trim().to_lowercase();
    let collapsed = lowered.split_whitespace().collect::<Vec<_>>().join(" ");
    collapsed
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || c.is_whitespace() || matches!(c, '.' | '+' | '-'))
        .collect()
}

fn clean(s: &Option<String>) -> Option<String> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)
}

type CatalogKey = (String, Option<String>);

/// Syncs the software of several assets in one pass: the listed items become current, current rows
/// not listed become uninstalled. An asset given with an empty list has all its software marked
/// uninstalled.
pub async fn sync_asset_software(
    db: &Db,
    tenant: Uuid,
    assets: &[(Uuid, Vec<SoftwareItem>)],
    now: DateTime<Utc>,
) -> Result<SoftwareReport, DbError> {
    let mut report = SoftwareReport::default();
    // Per asset, software key → item; the last item of a product wins.
    let mut wanted: BTreeMap<Uuid, BTreeMap<CatalogKey, (String, SoftwareItem)>> = BTreeMap::new();
    for (asset_id, items) in assets {
        let entry = wanted.entry(*asset_id).or_default();
        for item in items {
            report.items_processed += 1;
            let name = truncate(item.name.trim(), 500);
            if name.is_empty() {
                continue;
            }
            let key = (truncate(&normalize_name(&name), 500), clean(&item.publisher).map(|p| truncate(&p, 255)));
            entry.insert(key, (name, item.clone()));
        }
    }
    if wanted.is_empty() {
        return Ok(report);
    }
    let names: BTreeMap<CatalogKey, String> =
        wanted.values().flat_map(|m| m.iter().map(|(k, (name, _))| (k.clone(), name.clone()))).collect();
    let (catalog, created) = resolve_catalog(db, tenant, &names).await?;
    report.catalog_created = created;

    db.in_write_tx(async |tx| write_asset_software(tx, tenant, &wanted, &catalog, now, &mut report).await).await?;
    report.assets_touched = wanted.len() as u64;
    Ok(report)
}

async fn write_asset_software(
    tx: &mut Tx,
    tenant: Uuid,
    wanted: &BTreeMap<Uuid, BTreeMap<CatalogKey, (String, SoftwareItem)>>,
    catalog: &HashMap<CatalogKey, Uuid>,
    now: DateTime<Utc>,
    report: &mut SoftwareReport,
) -> Result<(), DbError> {
    let d = tx.dialect();
    let (t, n) = (d.param(1, ColType::Uuid), d.param(2, ColType::Timestamp));
    let tenant_s = tenant.to_string();
    let now_s = fmt_ts(now);
    let asset_ids: Vec<String> = wanted.keys().map(Uuid::to_string).collect();
    let asset_ids_j = serde_json::to_string(&asset_ids).expect("json");

    let current: Vec<(String, String, String)> = tx
        .fetch(
            &format!(
                "SELECT {}, {}, CAST(is_current AS TEXT) FROM asset_software WHERE tenant = {t} AND asset_id {}",
                d.text("asset_id"),
                d.text("software_id"),
                d.in_json(2, ColType::Uuid)
            ),
            &[&tenant_s, &asset_ids_j],
        )
        .await?;
    let existing: HashMap<(String, String), bool> =
        current.into_iter().map(|(a, s, c)| ((a, s), c == "true" || c == "1")).collect();

    let mut rows = Vec::new();
    for (asset_id, items) in wanted {
        for (key, (_, item)) in items {
            let software_id = catalog[key];
            match existing.get(&(asset_id.to_string(), software_id.to_string())) {
                Some(true) => {}
                _ => report.installed += 1,
            }
            rows.push(json!({
                "asset_id": asset_id,
                "software_id": software_id,
                "version": clean(&item.version).map(|v| truncate(&v, 100)),
                "install_path": clean(&item.install_path),
                "install_date": item.install_date.map(|d| d.to_string()),
                "size_bytes": item.size_bytes,
            }));
        }
    }
    if !rows.is_empty() {
        let date = match d {
            Dialect::Postgres => "CAST(r.install_date AS date)",
            Dialect::Sqlite => "r.install_date",
        };
        let sql = format!(
            "INSERT INTO asset_software (tenant, asset_id, software_id, version, install_path, install_date, size_bytes, \
             first_seen_at, last_seen_at, is_current, uninstalled_at) \
             SELECT {t}, r.asset_id, r.software_id, r.version, r.install_path, {date}, r.size_bytes, {n}, {n}, true, NULL FROM {rs} WHERE true \
             ON CONFLICT (tenant, asset_id, software_id) DO UPDATE SET last_seen_at = excluded.last_seen_at, \
             version = COALESCE(excluded.version, asset_software.version), \
             install_path = COALESCE(excluded.install_path, asset_software.install_path), \
             install_date = COALESCE(excluded.install_date, asset_software.install_date), \
             size_bytes = COALESCE(excluded.size_bytes, asset_software.size_bytes), \
             is_current = true, uninstalled_at = NULL",
            rs = d.recordset(
                3,
                &[
                    ("asset_id", ColType::Uuid),
                    ("software_id", ColType::Uuid),
                    ("version", ColType::Text),
                    ("install_path", ColType::Text),
                    ("install_date", ColType::Text),
                    ("size_bytes", ColType::BigInt),
                ]
            ),
        );
        tx.execute(&sql, &[&tenant_s, &now_s, &Value::Array(rows).to_string()]).await?;
    }
    // Current rows of these assets that this pass did not see.
    report.uninstalled = tx
        .execute(
            &format!(
                "UPDATE asset_software SET is_current = false, uninstalled_at = {n} \
                 WHERE tenant = {t} AND asset_id {} AND is_current AND last_seen_at <> {n}",
                d.in_json(3, ColType::Uuid)
            ),
            &[&tenant_s, &now_s, &asset_ids_j],
        )
        .await?;
    Ok(())
}

/// Finds or creates the catalog rows for `names` (key → display name); returns key → id and how
/// many rows were created.
async fn resolve_catalog(
    db: &Db,
    tenant: Uuid,
    names: &BTreeMap<CatalogKey, String>,
) -> Result<(HashMap<CatalogKey, Uuid>, u64), DbError> {
    db.in_write_tx(async |tx| {
        let d = tx.dialect();
        let t = d.param(1, ColType::Uuid);
        let tenant_s = tenant.to_string();
        if d == Dialect::Postgres {
            let keys: BTreeSet<i64> = names
                .keys()
                .map(|(n, p)| device_lock_key(tenant, "software_catalog", &format!("{n}\u{0}{}", p.as_deref().unwrap_or("\u{1}"))))
                .collect();
            let keys: Vec<String> = keys.iter().map(i64::to_string).collect();
            tx.execute(
                "SELECT pg_advisory_xact_lock(k) FROM (SELECT json_array_elements_text($1::json)::bigint AS k) s ORDER BY k",
                &[&serde_json::to_string(&keys).expect("json")],
            )
            .await?;
        }
        let wanted_names: BTreeSet<&str> = names.keys().map(|(n, _)| n.as_str()).collect();
        let rows: Vec<(String, String, Option<String>)> = tx
            .fetch(
                &format!(
                    "SELECT {}, normalized_name, publisher FROM software_catalog WHERE tenant = {t} AND normalized_name {} \
                     ORDER BY created_at, software_id",
                    d.text("software_id"),
                    d.in_json(2, ColType::Text)
                ),
                &[&tenant_s, &serde_json::to_string(&wanted_names).expect("json")],
            )
            .await?;
        let mut found: HashMap<CatalogKey, Uuid> = HashMap::new();
        for (id, name, publisher) in rows {
            if let Ok(id) = Uuid::parse_str(&id) {
                found.entry((name, publisher)).or_insert(id);
            }
        }
        let mut new_rows = Vec::new();
        for (key, name) in names {
            if !found.contains_key(key) {
                let id = Uuid::new_v4();
                found.insert(key.clone(), id);
                new_rows.push(json!({"software_id": id, "name": name, "normalized_name": key.0, "publisher": key.1}));
            }
        }
        let created = new_rows.len() as u64;
        if !new_rows.is_empty() {
            let sql = format!(
                "INSERT INTO software_catalog (software_id, tenant, name, normalized_name, publisher, category, software_type, \
                 is_managed, is_security_relevant) \
                 SELECT r.software_id, {t}, r.name, r.normalized_name, r.publisher, 'application', 'application', false, false FROM {rs}",
                rs = d.recordset(
                    2,
                    &[
                        ("software_id", ColType::Uuid),
                        ("name", ColType::Text),
                        ("normalized_name", ColType::Text),
                        ("publisher", ColType::Text),
                    ]
                ),
            );
            tx.execute(&sql, &[&tenant_s, &Value::Array(new_rows).to_string()]).await?;
        }
        Ok((found, created))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_normalise_like_algapsa() {
        assert_eq!(normalize_name("  Google   Chrome  "), "google chrome");
        assert_eq!(normalize_name("Microsoft Visual C++ 2019 (x64)"), "microsoft visual c++ 2019 x64");
        assert_eq!(normalize_name("7-Zip 22.01"), "7-zip 22.01");
        assert_eq!(normalize_name("Café Tool™"), "caf tool");
        assert_eq!(normalize_name("Tab\tSeparated"), "tab separated");
    }
}
