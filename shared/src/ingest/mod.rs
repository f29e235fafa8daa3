//! The shared ingestion pipeline: every provider hands device snapshots here, page by page.
//!
//! Plan, then apply: [`plan::plan_page`] decides what to write (pure, unit-tested without a
//! database); [`apply`] loads the rows a page touches and writes the plan with set-based statements
//! in one transaction per page. A page that fails is retried device by device, so one bad device
//! costs only itself and every device's asset, extension row and mapping stay together.
//!
//! Devices are correlated with existing rows by the provider's device id only (mapping in the
//! same scope, in any scope, then `(rmm_provider, rmm_device_id)`), never by serial number; a
//! placeholder serial ([`serial`]) is stored as reported and counted.
//!
//! Every page is ingested for an [`IngestRun`]: the sync run its asset changes ([`changes`]) are
//! recorded under in `rmm_sync.asset_history`, or a dry run ([`dry_run`]) that plans and writes
//! nothing.

pub mod apply;
pub mod changes;
pub mod dry_run;
pub mod plan;
pub mod serial;
pub mod snapshot;

use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

pub use plan::Item;
pub use snapshot::{
    AgentStatus, AssetType, DeviceSnapshot, DiskUsage, ExtensionSnapshot, IngestAction, IngestCounts, IngestOutcome,
    Lifecycle, Provider,
};

use crate::db::{Db, DbError};

/// What a page is ingested for: a recorded run (its id, and the job that wrote it), no run (a
/// single-device refresh), or a dry run gathering what it would do.
#[derive(Debug, Default)]
pub struct IngestRun {
    run_id: Option<Uuid>,
    job_id: Option<String>,
    dry: Option<Mutex<dry_run::DryRun>>,
}

impl IngestRun {
    /// Writes; changes are recorded with this run and job (either may be unknown).
    pub fn recorded(run_id: Option<Uuid>, job_id: Option<&str>) -> Self {
        IngestRun { run_id, job_id: job_id.map(str::to_owned), dry: None }
    }

    /// Plans only: nothing is written, the plan is gathered ([`IngestRun::take_dry_run`]).
    pub fn dry() -> Self {
        IngestRun { dry: Some(Mutex::default()), ..Default::default() }
    }

    /// [`IngestRun::dry`] when `dry`, else [`IngestRun::recorded`].
    pub fn new(dry: bool, run_id: Option<Uuid>, job_id: Option<&str>) -> Self {
        if dry { IngestRun::dry() } else { IngestRun::recorded(run_id, job_id) }
    }

    pub fn is_dry(&self) -> bool {
        self.dry.is_some()
    }

    pub fn run_id(&self) -> Option<Uuid> {
        self.run_id
    }

    pub fn job_id(&self) -> Option<&str> {
        self.job_id.as_deref()
    }

    /// What the dry run gathered so far (and resets it); `None` when this run writes.
    pub fn take_dry_run(&self) -> Option<dry_run::DryRun> {
        self.dry.as_ref().map(|m| std::mem::take(&mut *m.lock().unwrap_or_else(|e| e.into_inner())))
    }
}

/// What a page (or a run of pages) did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IngestReport {
    pub counts: IngestCounts,
    pub outcomes: Vec<IngestOutcome>,
}

impl IngestReport {
    /// The errors of failed and skipped devices, in order (`sync_error` takes the first few).
    pub fn errors(&self) -> impl Iterator<Item = &str> {
        self.outcomes.iter().filter_map(|o| o.error.as_deref())
    }

    /// Records the outcome of `snapshot`'s device; a created or updated device whose serial is a
    /// placeholder is counted as such.
    fn push(&mut self, outcome: IngestOutcome, snapshot: &DeviceSnapshot) {
        self.counts.record(outcome.action);
        if matches!(outcome.action, IngestAction::Created | IngestAction::Updated)
            && serial::is_reported_placeholder(snapshot.serial_number.as_deref())
        {
            self.counts.placeholder_serials += 1;
        }
        self.outcomes.push(outcome);
    }
}

/// Ingests one page in one transaction. If the page as a whole fails, each device is retried on
/// its own; a device that still fails is reported `failed` with the database's message. In a dry
/// run the page is read and planned in a read-only transaction and its plan gathered.
pub async fn ingest_page(
    db: &Db,
    tenant: Uuid,
    run: &IngestRun,
    items: &[Item<'_>],
    now: DateTime<Utc>,
) -> Result<IngestReport, DbError> {
    let mut report = IngestReport::default();
    if items.is_empty() {
        return Ok(report);
    }
    if let Some(dry) = &run.dry {
        let (plan, changes) = apply::plan_only(db, tenant, items, now).await?;
        dry.lock().unwrap_or_else(|e| e.into_inner()).record(items, &plan.outcomes, changes);
        for (o, item) in plan.outcomes.into_iter().zip(items) {
            report.push(o, item.snapshot);
        }
        return Ok(report);
    }
    match apply_with_retry(db, tenant, run, items, now).await {
        Ok(plan) => {
            // One outcome per item, in order.
            for (o, item) in plan.outcomes.into_iter().zip(items) {
                report.push(o, item.snapshot);
            }
            if report.counts.created > 0 {
                refresh_planner_stats(db).await;
            }
            return Ok(report);
        }
        Err(e) if items.len() == 1 || is_connection_error(&e) => {
            if is_connection_error(&e) {
                return Err(e);
            }
            report.push(failed(items[0].snapshot, &e), items[0].snapshot);
            return Ok(report);
        }
        Err(e) => tracing::warn!(error = %e, devices = items.len(), "page failed; retrying its devices one by one"),
    }
    for item in items {
        match apply_with_retry(db, tenant, run, std::slice::from_ref(item), now).await {
            Ok(plan) => plan.outcomes.into_iter().for_each(|o| report.push(o, item.snapshot)),
            Err(e) if is_connection_error(&e) => return Err(e),
            Err(e) => report.push(failed(item.snapshot, &e), item.snapshot),
        }
    }
    Ok(report)
}

/// Ingests snapshots in pages of `page_size`, with no caller-resolved clients.
pub async fn ingest_snapshots(
    db: &Db,
    tenant: Uuid,
    run: &IngestRun,
    snapshots: &[DeviceSnapshot],
    page_size: usize,
) -> Result<IngestReport, DbError> {
    let mut report = IngestReport::default();
    for page in snapshots.chunks(page_size.max(1)) {
        let items: Vec<Item<'_>> = page.iter().map(|s| Item { snapshot: s, client_id: None }).collect();
        let r = ingest_page(db, tenant, run, &items, Utc::now()).await?;
        report.counts.add(&r.counts);
        report.outcomes.extend(r.outcomes);
    }
    Ok(report)
}

async fn apply_with_retry(
    db: &Db,
    tenant: Uuid,
    run: &IngestRun,
    items: &[Item<'_>],
    now: DateTime<Utc>,
) -> Result<plan::PagePlan, DbError> {
    match apply::apply_page(db, tenant, run, items, now).await {
        // A unique violation means another writer got there between our read and write (only
        // possible for rows outside our device locks); a fresh read resolves it.
        Err(e) if is_unique_violation(&e) => apply::apply_page(db, tenant, run, items, now).await,
        other => other,
    }
}

/// The tables a page writes, whose planner statistics matter to the page's own statements, with
/// the columns those statements look rows up by.
const WRITTEN_TABLES: [(&str, &str); 4] = [
    ("assets", "tenant, asset_id, client_id, rmm_provider, rmm_device_id"),
    ("workstation_assets", "tenant, asset_id"),
    ("server_assets", "tenant, asset_id"),
    (
        "tenant_external_entity_mappings",
        "id, tenant, integration_type, alga_entity_type, alga_entity_id, external_entity_id, external_realm_id",
    ),
];

/// Re-analyses a written table once it holds more than twice the rows its statistics know of.
///
/// A first sync into a new (or nearly empty) table outruns autovacuum: every page's lookups and
/// foreign-key checks are planned for an empty table and fall back to sequential scans, so each page
/// gets slower than the one before. Analysing at each doubling keeps the plans right at a bounded
/// cost (a handful of ANALYZE runs, whatever the fleet size). Only the columns the page statements
/// look rows up by are analysed: the wide ones (`metadata`, `system_info`, `disk_usage`) cost most
/// of a full ANALYZE and no page statement filters on them. An ANALYZE of some columns leaves the
/// table's change counter alone, so autovacuum still analyses the whole table later. Tables we do
/// not own are skipped by Postgres with a warning; nothing fails.
async fn refresh_planner_stats(db: &Db) {
    let Db::Postgres(_) = db else { return };
    let names = serde_json::to_string(&WRITTEN_TABLES.map(|(t, _)| t)).expect("json");
    let stale: Result<Vec<(String,)>, _> = db
        .fetch(
            "SELECT CAST(s.relname AS TEXT) FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid \
             WHERE s.schemaname = ANY(current_schemas(false)) \
             AND s.relname = ANY(ARRAY(SELECT json_array_elements_text($1::json))) \
             AND s.n_live_tup > 2 * GREATEST(c.reltuples, 0) + 500",
            &[&names],
        )
        .await;
    for (table,) in stale.unwrap_or_default() {
        if let Some((name, columns)) = WRITTEN_TABLES.iter().find(|(t, _)| *t == table)
            && let Err(e) = db.execute(&format!("ANALYZE {name} ({columns})"), &[]).await
        {
            tracing::debug!(%table, error = %e, "could not refresh planner statistics");
        }
    }
}

fn failed(snapshot: &DeviceSnapshot, e: &DbError) -> IngestOutcome {
    IngestOutcome {
        external_device_id: snapshot.external_device_id.clone(),
        action: IngestAction::Failed,
        asset_id: None,
        error: Some(format!("Failed to ingest device {}: {e}", snapshot.external_device_id)),
    }
}

fn is_unique_violation(e: &DbError) -> bool {
    matches!(e, DbError::Sql(sqlx::Error::Database(d)) if d.is_unique_violation())
}

/// Errors that say the database itself is unreachable: retrying device by device would not help.
fn is_connection_error(e: &DbError) -> bool {
    matches!(
        e,
        DbError::Sql(sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_))
            | DbError::Connect { .. }
    )
}
