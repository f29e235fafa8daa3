//! NinjaOne software inventory from the fleet-wide query report `GET /v2/queries/software`
//! (cursor paging): one pass over the report instead of one `GET /v2/device/{id}/software` per
//! device, into the software catalog and each mapped asset's software.

use std::collections::HashMap;

use chrono::{NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::PROVIDER;
use super::client::NinjaClient;
use super::sync::SyncError;
use crate::db::sql::ColType;
use crate::db::{Db, DbError};
use crate::software::{SoftwareItem, sync_asset_software};

/// What a software ingest did (AlgaPSA's counts).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SoftwareSyncReport {
    /// Report rows read (including those of unmapped devices).
    pub items_processed: u64,
    /// Rows installed or reinstalled.
    pub items_created: u64,
    /// Assets whose software was synced.
    pub items_updated: u64,
    pub items_failed: u64,
    /// Devices in the report with no asset.
    pub devices_unmapped: u64,
    /// Report pages read.
    pub pages: u64,
    pub errors: Vec<String>,
}

const BATCH: usize = 200;
/// Pages of one report before it is taken for a paging loop.
const MAX_PAGES: u64 = 100_000;

/// One report row as a software item; `None` without a name.
pub fn software_item(row: &Value) -> Option<SoftwareItem> {
    let s = |k: &str| row.get(k).and_then(Value::as_str).map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
    Some(SoftwareItem {
        name: s("name")?,
        version: s("version"),
        publisher: s("publisher"),
        install_path: s("location"),
        install_date: s("installDate").and_then(|d| NaiveDate::parse_from_str(d.get(..10)?, "%Y-%m-%d").ok()),
        size_bytes: row.get("size").and_then(Value::as_i64),
    })
}

/// NinjaOne device id → asset id, from the integration's mappings.
pub(super) async fn assets_by_device(db: &Db, tenant: Uuid) -> Result<HashMap<String, Uuid>, DbError> {
    let d = db.dialect();
    let rows: Vec<(String, String)> = db
        .fetch(
            &format!(
                "SELECT external_entity_id, {} FROM tenant_external_entity_mappings \
                 WHERE tenant = {} AND integration_type = '{PROVIDER}' AND alga_entity_type = 'asset'",
                d.text("alga_entity_id"),
                d.param(1, ColType::Uuid)
            ),
            &[&tenant.to_string()],
        )
        .await?;
    Ok(rows.into_iter().filter_map(|(dev, asset)| Some((dev, Uuid::parse_str(&asset).ok()?))).collect())
}

/// Reads the whole report (a device's rows may be spread over pages), then writes each mapped
/// device's software in batches.
pub async fn ingest_software(db: &Db, tenant: Uuid, client: &NinjaClient) -> Result<SoftwareSyncReport, SyncError> {
    let assets = assets_by_device(db, tenant).await?;
    let mut report = SoftwareSyncReport::default();
    let mut by_asset: HashMap<Uuid, Vec<SoftwareItem>> = HashMap::new();
    let mut unmapped = std::collections::HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let (rows, next) = client.query_page("software", cursor.as_deref(), &[]).await?;
        report.pages += 1;
        for row in &rows {
            report.items_processed += 1;
            let device = match row.get("deviceId") {
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::String(s)) => s.clone(),
                _ => continue,
            };
            match assets.get(&device) {
                Some(asset) => by_asset.entry(*asset).or_default().extend(software_item(row)),
                None => {
                    unmapped.insert(device);
                }
            }
        }
        match next {
            Some(n) if Some(&n) != cursor.as_ref() && report.pages < MAX_PAGES => cursor = Some(n),
            _ => break,
        }
    }
    report.devices_unmapped = unmapped.len() as u64;
    let now = Utc::now();
    let all: Vec<(Uuid, Vec<SoftwareItem>)> = by_asset.into_iter().collect();
    for batch in all.chunks(BATCH) {
        match sync_asset_software(db, tenant, batch, now).await {
            Ok(r) => {
                report.items_created += r.installed;
                report.items_updated += r.assets_touched;
            }
            Err(e) => {
                report.items_failed += batch.len() as u64;
                report.errors.push(format!("Failed to ingest NinjaOne software for {} assets: {e}", batch.len()));
            }
        }
    }
    Ok(report)
}
