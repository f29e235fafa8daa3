//! NinjaOne pending patch counts on the extension rows (`pending_patches`, `pending_os_patches`,
//! `pending_software_patches`, `failed_patches`, `last_patch_scan_at`).
//!
//! Two ways to read them, both kept because they trade calls for rows:
//! - [`PatchSource::Reports`] (the default): the fleet-wide query reports
//!   `GET /v2/queries/os-patches` and `GET /v2/queries/software-patches` (cursor paging), a few
//!   calls for the whole instance;
//! - [`PatchSource::PerDevice`]: `GET /v2/device/{id}/os-patches` and `…/software-patches` for
//!   every mapped device, two calls per device (what AlgaPSA's patch sync does).
//!
//! A report row counts as pending unless its status is `FAILED` (counted in `failed_patches`),
//! `REJECTED` or `INSTALLED` (not counted). A mapped device with no rows has 0 pending patches.
//! The device sync leaves these columns alone (its snapshots set `patches_untouched`), so the
//! counts stay between two patch syncs.

use std::collections::HashMap;

use chrono::Utc;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::client::NinjaClient;
use super::error::NinjaError;
use super::software::assets_by_device;
use super::sync::SyncError;
use crate::db::Db;
use crate::db::sql::{ColType, fmt_ts};

/// Where the counts are read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PatchSource {
    /// The fleet-wide query reports.
    #[default]
    Reports,
    /// Two calls per mapped device.
    PerDevice,
}

/// The reports read, in the order the counts are kept.
pub const REPORTS: [PatchKind; 2] = [PatchKind::Os, PatchKind::Software];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    Os,
    Software,
}

impl PatchKind {
    /// The report's name in NinjaOne's paths.
    pub fn report(self) -> &'static str {
        match self {
            PatchKind::Os => "os-patches",
            PatchKind::Software => "software-patches",
        }
    }
}

/// One device's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PatchCounts {
    pub pending_os: i64,
    pub pending_software: i64,
    pub failed: i64,
}

impl PatchCounts {
    /// Counts one report row of the given kind.
    pub fn add(&mut self, kind: PatchKind, row: &Value) {
        let status = row.get("status").and_then(Value::as_str).unwrap_or_default().trim().to_ascii_uppercase();
        match status.as_str() {
            "FAILED" => self.failed += 1,
            "REJECTED" | "INSTALLED" => {}
            _ => match kind {
                PatchKind::Os => self.pending_os += 1,
                PatchKind::Software => self.pending_software += 1,
            },
        }
    }

    pub fn pending(&self) -> i64 {
        self.pending_os + self.pending_software
    }
}

/// What a patch sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PatchSyncReport {
    pub source: PatchSource,
    /// Patch rows read (including those of unmapped devices).
    pub items_processed: u64,
    /// Extension rows written.
    pub items_updated: u64,
    /// Mapped devices with at least one pending patch.
    pub devices_with_pending: u64,
    /// Devices in the reports with no asset.
    pub devices_unmapped: u64,
    /// Calls made to NinjaOne (report pages or per-device reads).
    pub calls: u64,
}

/// Report pages before one is taken for a paging loop.
const MAX_PAGES: u64 = 100_000;
/// Per-device reads in flight at once.
const PER_DEVICE_CONCURRENCY: usize = 8;
/// Extension rows per statement.
const BATCH: usize = 1000;

fn device_key(row: &Value) -> Option<String> {
    match row.get("deviceId") {
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        _ => None,
    }
}

/// Reads the counts of every mapped NinjaOne device and writes them on its extension row.
pub async fn sync_patches(
    db: &Db,
    tenant: Uuid,
    client: &NinjaClient,
    source: PatchSource,
) -> Result<PatchSyncReport, SyncError> {
    let assets = assets_by_device(db, tenant).await?;
    let mut report = PatchSyncReport { source, ..Default::default() };
    let mut counts: HashMap<String, PatchCounts> = assets.keys().map(|k| (k.clone(), PatchCounts::default())).collect();
    match source {
        PatchSource::Reports => {
            let mut unmapped = std::collections::HashSet::new();
            for kind in REPORTS {
                let mut cursor: Option<String> = None;
                let mut pages = 0u64;
                loop {
                    let (rows, next) = client.query_page(kind.report(), cursor.as_deref(), &[]).await?;
                    pages += 1;
                    for row in &rows {
                        report.items_processed += 1;
                        let Some(device) = device_key(row) else { continue };
                        match counts.get_mut(&device) {
                            Some(c) => c.add(kind, row),
                            None => {
                                unmapped.insert(device);
                            }
                        }
                    }
                    match next {
                        Some(n) if Some(&n) != cursor.as_ref() && pages < MAX_PAGES => cursor = Some(n),
                        _ => break,
                    }
                }
                report.calls += pages;
            }
            report.devices_unmapped = unmapped.len() as u64;
        }
        PatchSource::PerDevice => {
            let ids: Vec<(String, i64)> =
                assets.keys().filter_map(|k| Some((k.clone(), k.parse::<i64>().ok()?))).collect();
            let read: Vec<(String, Option<PatchCounts>, u64, u64)> = futures::stream::iter(ids)
                .map(|(key, id)| async move {
                    let mut c = PatchCounts::default();
                    let (mut calls, mut rows) = (0u64, 0u64);
                    for kind in REPORTS {
                        calls += 1;
                        match client.device_report(id, kind.report()).await {
                            Ok(list) => {
                                rows += list.len() as u64;
                                list.iter().for_each(|r| c.add(kind, r));
                            }
                            // A device NinjaOne no longer has: its counts are left as they are.
                            Err(NinjaError::Http(e)) if e.status() == Some(404) => return Ok((key, None, calls, rows)),
                            Err(e) => return Err(e),
                        }
                    }
                    Ok::<_, NinjaError>((key, Some(c), calls, rows))
                })
                .buffer_unordered(PER_DEVICE_CONCURRENCY)
                .try_collect()
                .await?;
            for (key, c, calls, rows) in read {
                report.calls += calls;
                report.items_processed += rows;
                match c {
                    Some(c) => {
                        counts.insert(key, c);
                    }
                    None => {
                        counts.remove(&key);
                    }
                }
            }
        }
    }
    report.devices_with_pending = counts.values().filter(|c| c.pending() > 0).count() as u64;
    let rows: Vec<Value> = counts
        .iter()
        .filter_map(|(device, c)| {
            let asset = assets.get(device)?;
            Some(json!({
                "asset_id": asset, "pending_patches": c.pending(), "pending_os_patches": c.pending_os,
                "pending_software_patches": c.pending_software, "failed_patches": c.failed,
            }))
        })
        .collect();
    report.items_updated = write_counts(db, tenant, &rows).await?;
    Ok(report)
}

/// Writes the counts (and `last_patch_scan_at = now`) on whichever extension table holds each
/// asset: one statement per table per batch.
async fn write_counts(db: &Db, tenant: Uuid, rows: &[Value]) -> Result<u64, SyncError> {
    let d = db.dialect();
    let cols = [
        ("asset_id", ColType::Uuid),
        ("pending_patches", ColType::Int),
        ("pending_os_patches", ColType::Int),
        ("pending_software_patches", ColType::Int),
        ("failed_patches", ColType::Int),
    ];
    let tenant_s = tenant.to_string();
    let now_s = fmt_ts(Utc::now());
    let mut written = 0u64;
    for batch in rows.chunks(BATCH) {
        let data = Value::Array(batch.to_vec()).to_string();
        written += db
            .in_write_tx(async |tx| {
                let mut n = 0;
                for table in ["workstation_assets", "server_assets"] {
                    let sql = format!(
                        "UPDATE {table} SET pending_patches = r.pending_patches, pending_os_patches = r.pending_os_patches, \
                         pending_software_patches = r.pending_software_patches, failed_patches = r.failed_patches, \
                         last_patch_scan_at = {now} \
                         FROM {rs} WHERE {table}.tenant = {t} AND {table}.asset_id = r.asset_id",
                        t = d.param(1, ColType::Uuid),
                        now = d.param(2, ColType::Timestamp),
                        rs = d.recordset(3, &cols),
                    );
                    n += tx.execute(&sql, &[&tenant_s, &now_s, &data]).await?;
                }
                Ok::<_, SyncError>(n)
            })
            .await?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_count_as_pending_failed_or_nothing() {
        let mut c = PatchCounts::default();
        for s in ["PENDING", "MANUAL", "approved", ""] {
            c.add(PatchKind::Os, &json!({"status": s}));
        }
        c.add(PatchKind::Os, &json!({}));
        c.add(PatchKind::Software, &json!({"status": "PENDING"}));
        c.add(PatchKind::Software, &json!({"status": "FAILED"}));
        c.add(PatchKind::Os, &json!({"status": "REJECTED"}));
        c.add(PatchKind::Os, &json!({"status": "INSTALLED"}));
        assert_eq!(c, PatchCounts { pending_os: 5, pending_software: 1, failed: 1 });
        assert_eq!(c.pending(), 6);
    }

    #[test]
    fn device_ids_are_numbers_or_strings() {
        assert_eq!(device_key(&json!({"deviceId": 42})).as_deref(), Some("42"));
        assert_eq!(device_key(&json!({"deviceId": " 7 "})).as_deref(), Some("7"));
        assert_eq!(device_key(&json!({"deviceId": null})), None);
    }
}
