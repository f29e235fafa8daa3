//! Reading the asset history (`rmm_sync.asset_history`): each change the ingestion pipeline made
//! to an asset, newest first. Written by [`crate::ingest`] in each page's transaction; pruned by
//! the `maintenance` job with the sync runs.

use serde::Serialize;
use uuid::Uuid;

use crate::db::sql::{ColType, ts_out};
use crate::db::{Db, DbError};
use crate::ingest::changes::FieldChange;

/// Most entries one read returns.
pub const MAX_LIMIT: u32 = 500;

/// One recorded change of an asset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryEntry {
    /// Increases with every entry; `before` of the next page.
    pub seq: i64,
    pub tenant: Uuid,
    pub asset_id: Uuid,
    pub recorded_at: String,
    /// `created`, `updated`, `moved` or `tombstoned`.
    pub action: String,
    /// The sync run; absent for a single-device refresh (webhook, asset refresh).
    pub run_id: Option<Uuid>,
    /// The job that wrote it.
    pub job_id: Option<String>,
    pub external_device_id: String,
    pub external_organization_id: String,
    pub changes: Vec<FieldChange>,
}

type Row = (i64, String, String, String, String, Option<String>, Option<String>, String, String, String);

/// Which entries to read.
#[derive(Debug, Clone, Copy, Default)]
pub struct HistoryQuery {
    /// One tenant, or every tenant.
    pub tenant: Option<Uuid>,
    /// One asset, or every asset.
    pub asset_id: Option<Uuid>,
    /// Entries older than this `seq` (the previous page's last).
    pub before: Option<i64>,
    pub limit: u32,
}

/// The entries `q` selects, newest first.
pub async fn read(db: &Db, q: HistoryQuery) -> Result<Vec<HistoryEntry>, DbError> {
    let d = db.dialect();
    let mut binds: Vec<String> = Vec::new();
    let mut filters: Vec<String> = Vec::new();
    let mut push = |col: &str, op: &str, value: String, ty: ColType| {
        binds.push(value);
        filters.push(format!("{col} {op} {}", d.param(binds.len(), ty)));
    };
    if let Some(t) = q.tenant {
        push("tenant", "=", t.to_string(), ColType::Uuid);
    }
    if let Some(a) = q.asset_id {
        push("asset_id", "=", a.to_string(), ColType::Uuid);
    }
    if let Some(b) = q.before {
        push("seq", "<", b.to_string(), ColType::BigInt);
    }
    let filter = if filters.is_empty() { String::new() } else { format!("WHERE {}", filters.join(" AND ")) };
    let sql = format!(
        "SELECT seq, {tenant}, {asset}, {at}, action, {run}, job_id, external_device_id, external_organization_id, \
         {changes} FROM {table} {filter} ORDER BY seq DESC LIMIT {limit}",
        tenant = d.text("tenant"),
        asset = d.text("asset_id"),
        at = ts_out(d, "recorded_at"),
        run = d.text("run_id"),
        changes = d.text("changes"),
        table = db.ours("asset_history"),
        limit = q.limit.clamp(1, MAX_LIMIT),
    );
    let refs: Vec<&str> = binds.iter().map(String::as_str).collect();
    let rows: Vec<Row> = db.fetch(&sql, &refs).await?;
    Ok(rows
        .into_iter()
        .filter_map(|(seq, tenant, asset, at, action, run, job, device, org, changes)| {
            Some(HistoryEntry {
                seq,
                tenant: tenant.parse().ok()?,
                asset_id: asset.parse().ok()?,
                recorded_at: at,
                action,
                run_id: run.and_then(|r| r.parse().ok()),
                job_id: job,
                external_device_id: device,
                external_organization_id: org,
                changes: serde_json::from_str(&changes).unwrap_or_default(),
            })
        })
        .collect())
}
