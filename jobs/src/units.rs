//! Jobs split into units, each run by a child job (fan-out), so that a large sync is spread over
//! every worker process and a crashed sync resumes from its last finished unit.
//!
//! * The parent plans its units once and stores them in `rmm_sync.job_units` (keyed by the
//!   parent's job id). Each unit gets one child job, enqueued in the same transaction that records
//!   its id on the unit, so a unit never has two children and never none.
//! * A child runs its unit and stores the unit's report with [`finish_unit`]. A child that finds
//!   its unit finished already does nothing (a redelivered task).
//! * The parent waits for every unit, then reports on them all. A child job that failed for good
//!   (or was cancelled) fails its unit with the child's last error; the other units still run.
//! * When the parent itself crashes, its task is taken over by another worker (same job id): it
//!   finds its units, keeps the finished ones and waits for the rest.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rmm_shared::db::{Db, DbError};
use serde_json::Value;

use crate::envelope::JobRequest;
use crate::store::JobStatus;
use crate::{JobCtx, JobError};
use rmm_shared::db::sql::{Exec, P, now_text, parse_ts, ts_out};

/// How often the parent looks at its units.
const WATCH_EVERY: Duration = Duration::from_millis(250);

/// A unit as planned: a key unique within the parent, and the child job's request.
#[derive(Debug, Clone)]
pub struct UnitPlan {
    pub key: String,
    pub child: JobRequest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitStatus {
    Pending,
    Done,
    Failed,
}

impl UnitStatus {
    fn parse(s: &str) -> UnitStatus {
        match s {
            "done" => UnitStatus::Done,
            "failed" => UnitStatus::Failed,
            _ => UnitStatus::Pending,
        }
    }
}

/// A unit and what became of it.
#[derive(Debug, Clone)]
pub struct Unit {
    pub key: String,
    pub status: UnitStatus,
    pub child_job_id: Option<String>,
    /// The child's report (see [`finish_unit`]).
    pub report: Option<Value>,
    pub error: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
}

/// The units of a finished fan-out, and when they were planned (the first attempt's start).
#[derive(Debug, Clone)]
pub struct FanOut {
    pub units: Vec<Unit>,
    pub planned_at: DateTime<Utc>,
}

type UnitRow = (String, String, Option<String>, Option<String>, Option<String>, String);

async fn load(db: &Db, parent: &str) -> Result<Vec<Unit>, DbError> {
    let p = P(db.dialect());
    let rows: Vec<UnitRow> = db
        .fetch(
            &format!(
                "SELECT unit_key, status, child_job_id, {}, error, {} FROM {} WHERE parent_job_id = {} ORDER BY unit_key",
                p.json_out("report"),
                ts_out(p.0, "created_at"),
                p.t("job_units"),
                p.text(1)
            ),
            &[parent],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|(key, status, child_job_id, report, error, created)| Unit {
            key,
            status: UnitStatus::parse(&status),
            child_job_id,
            report: report.and_then(|r| serde_json::from_str(&r).ok()),
            error,
            created_at: parse_ts(&created),
        })
        .collect())
}

/// Runs the job's units as child jobs and waits for all of them. `plan` is called only when the
/// job has no units yet (its first attempt); a resumed attempt continues with the stored ones.
/// Progress is reported as units finished of units planned.
pub async fn run_units<F, Fut>(ctx: &JobCtx, plan: F) -> Result<FanOut, JobError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Vec<UnitPlan>, JobError>>,
{
    let db = ctx.db();
    let parent = ctx.job_id();
    let mut units = load(db, parent).await?;
    if units.is_empty() {
        let planned = plan().await?;
        insert_units(ctx, &planned).await?;
        units = load(db, parent).await?;
    } else {
        tracing::info!(job_id = parent, units = units.len(), "resuming: finished units are kept");
    }
    let planned_at = units.iter().filter_map(|u| u.created_at).min().unwrap_or_else(Utc::now);
    let total = units.len() as u64;
    loop {
        let mut finished = 0u64;
        for unit in &units {
            if unit.status != UnitStatus::Pending {
                finished += 1;
                continue;
            }
            let Some(child) = &unit.child_job_id else {
                // Planned but its child not enqueued yet (the parent stopped in between).
                start_child(ctx, unit).await?;
                continue;
            };
            let job = ctx.runtime().store().get(child).await?;
            let failure = match job {
                None => Some("its job no longer exists".to_owned()),
                Some(j) if matches!(j.status, JobStatus::Failed | JobStatus::Cancelled | JobStatus::Skipped) => {
                    Some(j.last_error.unwrap_or_else(|| format!("its job was {}", j.status.as_str())))
                }
                Some(j) if j.status == JobStatus::Done => Some("its job ended without a report".to_owned()),
                Some(_) => None,
            };
            if let Some(error) = failure {
                // The child may have finished the unit between the two reads: only a pending unit fails.
                fail_unit(db, parent, &unit.key, &error).await?;
                finished += 1;
            }
        }
        if let Err(e) = ctx.progress(finished, Some(total)).await {
            if matches!(e, JobError::Cancelled) {
                cancel_children(ctx, &units).await;
            }
            return Err(e);
        }
        units = load(db, parent).await?;
        if units.iter().all(|u| u.status != UnitStatus::Pending) {
            ctx.progress(total, Some(total)).await?;
            return Ok(FanOut { units, planned_at });
        }
        tokio::time::sleep(WATCH_EVERY).await;
    }
}

async fn insert_units(ctx: &JobCtx, planned: &[UnitPlan]) -> Result<(), JobError> {
    let db = ctx.db();
    let p = P(db.dialect());
    let now = now_text();
    let mut tx = db.begin_write().await?;
    for unit in planned {
        let mut child = unit.child.clone();
        child.correlation_id = Some(ctx.correlation_id().to_owned());
        let args = serde_json::json!({ "child": child_args_of(&child) }).to_string();
        tx.exec(
            &format!(
                "INSERT INTO {} (parent_job_id, unit_key, args, created_at) VALUES ({}, {}, {}, {}) \
                 ON CONFLICT (parent_job_id, unit_key) DO NOTHING",
                p.t("job_units"),
                p.text(1),
                p.text(2),
                p.json(3),
                p.ts(4)
            ),
            &[ctx.job_id(), &unit.key, &args, &now],
        )
        .await?;
    }
    tx.commit().await?;
    for unit in load(db, ctx.job_id()).await? {
        start_child(ctx, &unit).await?;
    }
    Ok(())
}

/// What is stored of a child request, to enqueue it later (after a crash before it was).
fn child_args_of(req: &JobRequest) -> Value {
    serde_json::json!({
        "kind": req.kind,
        "tenant": req.tenant,
        "provider": req.provider,
        "integration_id": req.integration_id,
        "trigger": req.trigger.as_str(),
        "correlation_id": req.correlation_id,
        "args": req.args,
    })
}

fn child_request(stored: &Value) -> Option<JobRequest> {
    let c = stored.get("child")?;
    let s = |k: &str| c.get(k).and_then(Value::as_str);
    let trigger = crate::Trigger::parse(s("trigger")?)?;
    let mut req = match (s("tenant"), s("provider"), s("integration_id")) {
        (Some(t), Some(p), Some(i)) => {
            JobRequest::for_integration(s("kind")?, t.parse().ok()?, p, i.parse().ok()?, trigger)
        }
        _ => JobRequest::global(s("kind")?, trigger),
    };
    req = req.args(c.get("args").cloned().unwrap_or(Value::Null));
    if let Some(id) = s("correlation_id") {
        req = req.correlation_id(id);
    }
    Some(req)
}

/// Enqueues the unit's child and records its id, in one transaction; does nothing when another
/// attempt did it first.
async fn start_child(ctx: &JobCtx, unit: &Unit) -> Result<(), JobError> {
    let db = ctx.db();
    let p = P(db.dialect());
    let stored: Vec<(String,)> = db
        .fetch(
            &format!(
                "SELECT {} FROM {} WHERE parent_job_id = {} AND unit_key = {} AND child_job_id IS NULL",
                p.json_out("args"),
                p.t("job_units"),
                p.text(1),
                p.text(2)
            ),
            &[ctx.job_id(), &unit.key],
        )
        .await?;
    let Some((args,)) = stored.into_iter().next() else { return Ok(()) };
    let stored: Value = serde_json::from_str(&args).unwrap_or(Value::Null);
    let Some(req) = child_request(&stored) else {
        fail_unit(db, ctx.job_id(), &unit.key, "the unit's stored job request is unreadable").await?;
        return Ok(());
    };
    let mut tx = db.begin_write().await?;
    let child = ctx.queue().enqueue_in_tx(&mut tx, req).await.map_err(JobError::transient)?;
    let claimed = tx
        .exec(
            &format!(
                "UPDATE {} SET child_job_id = {} WHERE parent_job_id = {} AND unit_key = {} AND child_job_id IS NULL",
                p.t("job_units"),
                p.text(1),
                p.text(2),
                p.text(3)
            ),
            &[&child, ctx.job_id(), &unit.key],
        )
        .await?;
    if claimed == 1 {
        tx.commit().await?;
        if let Err(e) = ctx.queue().relay_outbox().await {
            tracing::warn!(error = %e, "could not hand the unit's job to Redis yet; the relay will retry");
        }
    } else {
        tx.rollback().await?;
    }
    Ok(())
}

async fn cancel_children(ctx: &JobCtx, units: &[Unit]) {
    for unit in units.iter().filter(|u| u.status == UnitStatus::Pending) {
        if let Some(child) = &unit.child_job_id
            && let Err(e) = ctx.queue().cancel(child).await
        {
            tracing::warn!(error = %e, child, "could not cancel a unit's job");
        }
    }
}

/// The unit's status (`None`: no such unit).
pub async fn unit_status(db: &Db, parent: &str, key: &str) -> Result<Option<UnitStatus>, DbError> {
    let p = P(db.dialect());
    let rows: Vec<(String,)> = db
        .fetch(
            &format!(
                "SELECT status FROM {} WHERE parent_job_id = {} AND unit_key = {}",
                p.t("job_units"),
                p.text(1),
                p.text(2)
            ),
            &[parent, key],
        )
        .await?;
    Ok(rows.into_iter().next().map(|(s,)| UnitStatus::parse(&s)))
}

/// Stores what a unit did and marks it done (a child calls it when its work is written).
/// Returns `false` when the unit was already finished.
pub async fn finish_unit(db: &Db, parent: &str, key: &str, report: &Value) -> Result<bool, DbError> {
    let p = P(db.dialect());
    let n = db
        .execute(
            &format!(
                "UPDATE {} SET status = 'done', report = {}, finished_at = {} \
                 WHERE parent_job_id = {} AND unit_key = {} AND status = 'pending'",
                p.t("job_units"),
                p.json(1),
                p.ts(2),
                p.text(3),
                p.text(4)
            ),
            &[&report.to_string(), &now_text(), parent, key],
        )
        .await?;
    Ok(n == 1)
}

async fn fail_unit(db: &Db, parent: &str, key: &str, error: &str) -> Result<(), DbError> {
    let p = P(db.dialect());
    db.execute(
        &format!(
            "UPDATE {} SET status = 'failed', error = {}, finished_at = {} \
             WHERE parent_job_id = {} AND unit_key = {} AND status = 'pending'",
            p.t("job_units"),
            p.text(1),
            p.ts(2),
            p.text(3),
            p.text(4)
        ),
        &[error, &now_text(), parent, key],
    )
    .await?;
    Ok(())
}

/// Deletes the units of fan-outs planned before `before` (retention).
pub async fn prune(db: &Db, before: DateTime<Utc>) -> Result<u64, DbError> {
    let p = P(db.dialect());
    db.execute(
        &format!("DELETE FROM {} WHERE created_at < {}", p.t("job_units"), p.ts(1)),
        &[&rmm_shared::db::sql::fmt_ts(before)],
    )
    .await
}
