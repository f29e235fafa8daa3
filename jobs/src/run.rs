//! What every provider's jobs share: the tenant and integration of a job, a sync recorded as a
//! run (`rmm_sync.sync_runs`, the integration's status, AlgaPSA's sync events), the counts a job
//! reports, and the retry policy of provider jobs.

use std::time::Duration;

use rmm_shared::events::{Event, EventType};
use rmm_shared::ingest::IngestCounts;
use rmm_shared::runs::{Run, RunKind, RunOutcome};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::kind::{JobOutcome, Policy};
use crate::{JobCtx, JobError};

pub fn ids(ctx: &JobCtx) -> Result<(Uuid, Uuid), JobError> {
    match (ctx.tenant(), ctx.integration_id()) {
        (Some(t), Some(i)) => Ok((t, i)),
        _ => Err(JobError::Permanent("job has no tenant or integration".into())),
    }
}

/// Runs `body` as one recorded sync run: `sync_runs` row, integration status, events.
pub async fn recorded<F>(ctx: &JobCtx, sync_type: &str, run_kind: RunKind, body: F) -> Result<JobOutcome, JobError>
where
    F: Future<Output = Result<(RunOutcome, JobOutcome), JobError>>,
{
    recorded_run(ctx, sync_type, run_kind, async move |_| body.await).await
}

/// [`recorded`] with a body that is given the run's id (the asset changes it makes are recorded
/// under it).
pub async fn recorded_run(
    ctx: &JobCtx,
    sync_type: &str,
    run_kind: RunKind,
    body: impl AsyncFnOnce(Uuid) -> Result<(RunOutcome, JobOutcome), JobError>,
) -> Result<JobOutcome, JobError> {
    let (tenant, integration) = ids(ctx)?;
    let db = ctx.db();
    let events = &ctx.runtime().events;
    let provider = ctx.provider().ok_or_else(|| JobError::Permanent("job has no provider".into()))?;
    let trigger = ctx.envelope().trigger.as_str();
    let run = Run::start_for_job(
        db,
        tenant,
        integration,
        provider,
        &ctx.envelope().kind,
        run_kind,
        trigger,
        Some(ctx.job_id()),
    )
    .await?;
    events.publish(&Event::sync(EventType::SyncStarted, tenant, integration, provider, sync_type, None, None)).await;
    match body(run.run_id).await {
        Ok((outcome, job)) => {
            run.finish(db, &outcome).await?;
            let ev = if outcome.succeeded() { EventType::SyncCompleted } else { EventType::SyncFailed };
            let err = outcome.sync_error();
            events
                .publish(&Event::sync(
                    ev,
                    tenant,
                    integration,
                    provider,
                    sync_type,
                    Some(&outcome.counts),
                    err.as_deref(),
                ))
                .await;
            Ok(job)
        }
        Err(e) => {
            let outcome = RunOutcome { errors: vec![e.to_string()], ..Default::default() };
            if let Err(db_err) = run.finish(db, &outcome).await {
                tracing::warn!(error = %db_err, "could not record the failed run");
            }
            let msg = e.to_string();
            events
                .publish(&Event::sync(
                    EventType::SyncFailed,
                    tenant,
                    integration,
                    provider,
                    sync_type,
                    None,
                    Some(&msg),
                ))
                .await;
            Err(e)
        }
    }
}

pub fn counts_outcome(c: &IngestCounts) -> JobOutcome {
    JobOutcome::default()
        .count("processed", c.processed)
        .count("created", c.created)
        .count("updated", c.updated)
        .count("deleted", c.deleted)
        .count("skipped", c.skipped)
        .count("failed", c.failed)
}

pub fn provider_policy(timeout_secs: u64) -> Policy {
    Policy {
        max_attempts: 4,
        backoff_initial: Duration::from_secs(15),
        backoff_max: Duration::from_secs(300),
        timeout: Duration::from_secs(timeout_secs),
        concurrency: None,
        priority: 0,
        inline_retry_after: Duration::from_secs(5),
        max_deferrals: 20,
        listen: false,
    }
}

/// No arguments.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}
