//! What every provider's device sync shares: its arguments (`full` or `incremental`), where an
//! incremental run starts, and the fan-out of a sync into one internal unit job per mapped scope
//! (Tactical client, …) or per scope the provider chooses, that any worker process may run
//! ([`crate::units`]).

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rmm_shared::db::sql::ColType;
use rmm_shared::ingest::IngestRun;
use rmm_shared::ingest::dry_run::DryRun;
use rmm_shared::providers::{MappedScope, UnitReport, mapped_scopes};
use rmm_shared::runs::RunOutcome;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::envelope::JobRequest;
use crate::kind::JobOutcome;
use crate::run::{counts_outcome, ids};
use crate::units::{UnitPlan, UnitStatus};
use crate::{JobCtx, JobError};

/// Incremental syncs look back this far before the last cursor, so that a device whose
/// `last_seen` was written while the previous run was reading is not missed.
pub const INCREMENTAL_OVERLAP: Duration = Duration::from_secs(300);

/// Arguments of a device sync (`sync-devices`, `tanium-full-sync`, ...).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncDevicesArgs {
    /// `full` (default) or `incremental` (devices seen since the last run's cursor).
    #[serde(default)]
    pub mode: SyncMode,
    /// Plan only: read the provider and the current rows, write nothing, and report per
    /// organisation what the sync would create, update, move and tombstone (the job's
    /// `detail.dry_run`). A dry run is not recorded as a sync run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

/// Runs a device sync's `body` (given how it ingests) as a recorded run; a dry run is not recorded
/// (no `sync_runs` row, no integration status, no events: the job row is its record).
pub async fn recorded_or_dry(
    ctx: &JobCtx,
    args: &SyncDevicesArgs,
    sync_type: &str,
    run_kind: rmm_shared::runs::RunKind,
    body: impl AsyncFnOnce(UnitRun) -> Result<(RunOutcome, JobOutcome), JobError>,
) -> Result<JobOutcome, JobError> {
    if args.dry_run {
        let (_, job) = body(UnitRun { run_id: None, dry_run: true }).await?;
        return Ok(job);
    }
    crate::run::recorded_run(ctx, sync_type, run_kind, async |run_id| {
        body(UnitRun { run_id: Some(run_id), dry_run: false }).await
    })
    .await
}

/// Puts a dry run's plan into a job outcome's detail (`detail.dry_run`).
pub fn with_dry_run(job: JobOutcome, dry_run: Option<DryRun>) -> JobOutcome {
    match dry_run {
        Some(plan) => job.with_detail("dry_run", serde_json::to_value(plan).expect("a dry run is JSON")),
        None => job,
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    #[default]
    Full,
    Incremental,
}

/// Where an incremental device sync starts: the last run's cursor less the overlap. `None` for a
/// full run, and for an incremental one of an integration never synced (it runs in full).
pub async fn incremental_since(ctx: &JobCtx, args: &SyncDevicesArgs) -> Result<Option<DateTime<Utc>>, JobError> {
    let (tenant, integration) = ids(ctx)?;
    Ok(match args.mode {
        SyncMode::Full => None,
        SyncMode::Incremental => last_cursor(ctx, tenant, integration)
            .await?
            .map(|c| c - chrono::Duration::from_std(INCREMENTAL_OVERLAP).unwrap_or_default()),
    })
}

/// The later of the integration's last incremental and last full sync.
async fn last_cursor(ctx: &JobCtx, tenant: Uuid, integration: Uuid) -> Result<Option<DateTime<Utc>>, JobError> {
    let db = ctx.db();
    let d = db.dialect();
    let sql = format!(
        "SELECT {}, {} FROM rmm_integrations WHERE tenant = {} AND integration_id = {}",
        rmm_shared::db::sql::ts_out(d, "last_incremental_sync_at"),
        rmm_shared::db::sql::ts_out(d, "last_full_sync_at"),
        d.param(1, ColType::Uuid),
        d.param(2, ColType::Uuid)
    );
    let rows: Vec<(Option<String>, Option<String>)> =
        db.fetch(&sql, &[&tenant.to_string(), &integration.to_string()]).await?;
    let parse = |s: Option<String>| s.as_deref().and_then(rmm_shared::db::sql::parse_ts);
    Ok(rows.into_iter().next().and_then(|(inc, full)| parse(inc).into_iter().chain(parse(full)).max()))
}

/// Arguments of a device-sync unit (set by the parent sync).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceUnitArgs {
    /// The sync job this unit belongs to.
    pub parent_job_id: String,
    /// The remote scope (e.g. the Tactical client pk; the unit key).
    pub scope: String,
    /// The AlgaPSA client the scope is mapped to.
    pub client_id: Uuid,
    /// Incremental: devices seen at or after this time; absent for a full pass.
    #[serde(default)]
    pub since: Option<DateTime<Utc>>,
    /// The parent's sync run, under which the unit's asset changes are recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<Uuid>,
    /// The parent is a dry run: plan only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

/// How a device sync ingests: under its run, or as a dry run (a fan-out passes it to its units).
#[derive(Debug, Clone, Copy, Default)]
pub struct UnitRun {
    pub run_id: Option<Uuid>,
    pub dry_run: bool,
}

impl UnitRun {
    /// The pipeline's view of it, for pages written by the job `job_id`.
    pub fn ingest(self, job_id: &str) -> IngestRun {
        IngestRun::new(self.dry_run, self.run_id, Some(job_id))
    }
}

/// Runs a device sync as one `unit_kind` job per mapped scope with auto-sync on, waits for them
/// and adds up their reports (a unit that failed or did not finish counts as a failed unit,
/// reported as `{scope_label} {scope}: {error}`). Returns the run's outcome (cursor: when the
/// units were planned) and the job's counts.
pub async fn fan_out(
    ctx: &JobCtx,
    unit_kind: &'static str,
    scope_label: &str,
    since: Option<DateTime<Utc>>,
    run: UnitRun,
) -> Result<(RunOutcome, JobOutcome), JobError> {
    let (tenant, integration) = ids(ctx)?;
    fan_out_over(ctx, unit_kind, scope_label, since, run, || async move {
        Ok(mapped_scopes(ctx.db(), tenant, integration).await?)
    })
    .await
}

/// [`fan_out`] over scopes the provider chooses (`scopes`, called only when the sync is planned,
/// not when a crashed sync resumes): e.g. one unit per top-level group of a nested hierarchy
/// rather than one per mapped scope. A unit's `client_id` is the scope's client, or nil when the
/// unit is not one mapped scope.
pub async fn fan_out_over<F, Fut>(
    ctx: &JobCtx,
    unit_kind: &'static str,
    scope_label: &str,
    since: Option<DateTime<Utc>>,
    run: UnitRun,
    scopes: F,
) -> Result<(RunOutcome, JobOutcome), JobError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Vec<MappedScope>, JobError>>,
{
    let (tenant, integration) = ids(ctx)?;
    let provider = ctx.provider().ok_or_else(|| JobError::Permanent("job has no provider".into()))?;
    let fan = crate::units::run_units(ctx, || async {
        let scopes = scopes().await?;
        let trigger = ctx.envelope().trigger;
        Ok(scopes
            .into_iter()
            .map(|s| {
                let args = DeviceUnitArgs {
                    parent_job_id: ctx.job_id().to_owned(),
                    scope: s.scope.clone(),
                    client_id: s.client_id,
                    since,
                    run_id: run.run_id,
                    dry_run: run.dry_run,
                };
                let child = JobRequest::for_integration(unit_kind, tenant, provider, integration, trigger)
                    .args(serde_json::to_value(args).expect("unit arguments are JSON"));
                UnitPlan { key: s.scope, child }
            })
            .collect())
    })
    .await?;
    let failed = |scope: &str, error: &str| UnitReport {
        units: 1,
        units_failed: 1,
        errors: vec![format!("{scope_label} {scope}: {error}")],
        ..Default::default()
    };
    let mut report = UnitReport::default();
    for unit in &fan.units {
        match (unit.status, &unit.report) {
            (UnitStatus::Done, Some(r)) => match serde_json::from_value::<UnitReport>(r.clone()) {
                Ok(r) => report.absorb(r),
                Err(e) => report.absorb(failed(&unit.key, &format!("unreadable unit report: {e}"))),
            },
            _ => report.absorb(failed(&unit.key, unit.error.as_deref().unwrap_or("did not finish"))),
        }
    }
    let outcome = RunOutcome { counts: report.counts, errors: report.errors.clone(), cursor: Some(fan.planned_at) };
    let job = report_outcome(&report);
    Ok((outcome, with_dry_run(job, report.dry_run)))
}

/// Runs one unit of a [`fan_out`]: nothing when it was already finished (a redelivery, or its
/// parent was pruned), otherwise `body` (ingesting for the parent's run, or as a dry run) and the
/// unit's report, with its dry-run plan, stored for the parent.
pub async fn run_unit(
    ctx: &JobCtx,
    args: &DeviceUnitArgs,
    body: impl AsyncFnOnce(&IngestRun) -> Result<UnitReport, JobError>,
) -> Result<JobOutcome, JobError> {
    let db = ctx.db();
    if crate::units::unit_status(db, &args.parent_job_id, &args.scope).await? != Some(UnitStatus::Pending) {
        return Ok(JobOutcome::default().count("units", 0));
    }
    let run = UnitRun { run_id: args.run_id, dry_run: args.dry_run }.ingest(ctx.job_id());
    let mut report = body(&run).await?;
    if let Some(plan) = run.take_dry_run() {
        report.dry_run.get_or_insert_with(Default::default).absorb(plan);
    }
    let value = serde_json::to_value(&report).map_err(|e| JobError::Permanent(e.to_string()))?;
    crate::units::finish_unit(db, &args.parent_job_id, &args.scope, &value).await?;
    Ok(report_outcome(&report))
}

fn report_outcome(r: &UnitReport) -> JobOutcome {
    counts_outcome(&r.counts)
        .count("placeholder_serials", r.counts.placeholder_serials)
        .count("units", r.units)
        .count("units_failed", r.units_failed)
}
