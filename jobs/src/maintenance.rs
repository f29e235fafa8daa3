//! `maintenance`: retention. Deletes finished queue tasks and job-status rows older than
//! `retention.finished_jobs_days`, and old rows of our other tables (finished sync runs, units of
//! split jobs, asset history, processed webhook deliveries), and per-minute upstream call counts
//! older than a day. Run by the scheduler every `retention.maintenance_interval_minutes`.

use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::kind::{JobKind, JobOutcome, Policy, Scope};
use crate::{JobCtx, JobError};
use rmm_shared::db::sql::{P, fmt_ts};

pub struct Maintenance;

/// Arguments of `maintenance` (all optional).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceArgs {
    /// Overrides `retention.finished_jobs_days` for this run.
    #[serde(default)]
    pub retention_days: Option<u32>,
}

impl JobKind for Maintenance {
    const NAME: &'static str = "maintenance";
    const SCOPE: Scope = Scope::Global;
    type Args = MaintenanceArgs;

    fn policy() -> Policy {
        Policy {
            max_attempts: 3,
            backoff_initial: Duration::from_secs(10),
            backoff_max: Duration::from_secs(120),
            timeout: Duration::from_secs(600),
            concurrency: Some(1),
            priority: 0,
            inline_retry_after: Duration::from_secs(5),
            max_deferrals: 0,
            listen: false,
        }
    }

    async fn run(ctx: JobCtx, args: MaintenanceArgs) -> Result<JobOutcome, JobError> {
        let days = args.retention_days.unwrap_or(ctx.runtime().settings.retention.finished_jobs_days);
        let age = Duration::from_secs(u64::from(days) * 86_400);
        let before = Utc::now() - chrono::Duration::days(i64::from(days));
        ctx.progress(0, Some(3)).await?;
        let tasks = ctx.queue().purge_finished(age).await.map_err(JobError::transient)?;
        ctx.progress(1, Some(3)).await?;
        let runs = ctx.runtime().store().prune(before).await?;
        ctx.progress(2, Some(3)).await?;
        // sync_runs: one row per provider sync run; finished ones follow the same retention.
        let p = P(ctx.db().dialect());
        let sql =
            format!("DELETE FROM {} WHERE finished_at IS NOT NULL AND finished_at < {}", p.t("sync_runs"), p.ts(1));
        let sync_runs = match ctx.db().execute(&sql, &[&fmt_ts(before)]).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "could not prune sync_runs");
                0
            }
        };
        // Asset history: kept as long as the runs that wrote it.
        let sql = format!("DELETE FROM {} WHERE recorded_at < {}", p.t("asset_history"), p.ts(1));
        let history = ctx.db().execute(&sql, &[&fmt_ts(before)]).await?;
        let units = crate::units::prune(ctx.db(), before).await?;
        // Webhook deliveries whose alert was recorded or forwarded.
        let sql = format!(
            "DELETE FROM {} WHERE processed_at IS NOT NULL AND received_at < {}",
            p.t("webhook_deliveries"),
            p.ts(1)
        );
        let deliveries = ctx.db().execute(&sql, &[&fmt_ts(before)]).await?;
        // Upstream calls per minute: the status page shows the last hour; a day is kept.
        let keep = chrono::Duration::from_std(rmm_shared::upstream_calls::KEEP).unwrap_or(chrono::Duration::days(1));
        let calls = rmm_shared::upstream_calls::prune(ctx.db(), Utc::now() - keep).await?;
        ctx.progress(3, Some(3)).await?;
        tracing::info!(days, tasks, runs, sync_runs, history, units, deliveries, calls, "retention done");
        Ok(JobOutcome::default()
            .count("queue_tasks_deleted", tasks)
            .count("job_runs_deleted", runs)
            .count("sync_runs_deleted", sync_runs)
            .count("asset_history_deleted", history)
            .count("job_units_deleted", units)
            .count("webhook_deliveries_deleted", deliveries)
            .count("upstream_call_minutes_deleted", calls))
    }
}
