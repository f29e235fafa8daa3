//! The one handler every worker runs: kind lookup, tenant/integration gate, timeout, status.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::{AbortError, Attempt, BoxDynError, Data, TaskId, WorkerContext};
use futures::FutureExt;
use rmm_shared::db::sql::ColType;
use rmm_shared::integrations::lifecycle::{RECONNECT_REQUIRED, needs_reconnect_text};
use tracing::Instrument;

use crate::envelope::{JobEnvelope, Trigger};
use crate::kind::Scope;
use crate::queue::Continuation;
use crate::{JobCtx, JobError, Runtime};
use rmm_shared::db::sql::Exec;

/// How many `Retry-After` waits one attempt may sleep in place before deferring through the queue.
const MAX_INLINE_WAITS: u32 = 3;

/// A failed attempt that another attempt may fix, returned to the backend when the retry could not
/// be queued (the backend then runs the task again while its own attempt limit allows).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AttemptFailed(pub String);

/// Is `e` worth another attempt? (everything but aborts)
pub fn is_retryable(e: &BoxDynError) -> bool {
    e.downcast_ref::<AbortError>().is_none()
}

fn abort(msg: impl Into<String>) -> BoxDynError {
    Box::new(AbortError::new(AttemptFailed(msg.into())))
}

/// Runs one attempt of one job. Registered as the handler of every kind's worker.
pub async fn run_task(
    env: JobEnvelope,
    attempt: Attempt,
    task_id: TaskId,
    worker: WorkerContext,
    rt: Data<Runtime>,
) -> Result<serde_json::Value, BoxDynError> {
    // The backend counts attempts per task; a retry after a backoff is a new task.
    let attempt = env.attempts_before + (attempt.current() as u32).max(1);
    let span = tracing::info_span!("job", job_id = %env.job_id, kind = %env.kind, tenant = ?env.tenant,
        provider = ?env.provider, correlation_id = %env.correlation_id, trigger = env.trigger.as_str(), attempt,
        otel.name = tracing::field::Empty, otel.kind = tracing::field::Empty);
    if rmm_shared::telemetry::exporting() {
        span.record("otel.name", format!("job {}", env.kind).as_str());
        span.record("otel.kind", "consumer");
        // Continue the trace of whatever enqueued the job (an ingress request, another job).
        rmm_shared::telemetry::set_remote_parent(&span, env.traceparent.as_deref(), None);
    }
    let rt: Runtime = (*rt).clone();
    let result = run_inner(env, attempt, task_id.to_string(), worker, rt).instrument(span.clone()).await;
    if let Err(e) = &result {
        rmm_shared::telemetry::mark_error(&span, e.to_string());
    }
    result
}

async fn run_inner(
    env: JobEnvelope,
    attempt: u32,
    task_id: String,
    worker: WorkerContext,
    rt: Runtime,
) -> Result<serde_json::Value, BoxDynError> {
    let Some(entry) = rt.registry.get(&env.kind).cloned() else {
        tracing::error!("no handler for this job kind in this process");
        return Err(abort(format!("unknown job kind {}", env.kind)));
    };
    let policy = entry.policy;
    let store = rt.store();
    let job_id = env.job_id.clone();
    match store.mark_running(&job_id, &task_id, attempt, worker.name()).await.map_err(|e| Box::new(e) as BoxDynError)? {
        None => {
            tracing::warn!("job has no status row (deleted?); not running it");
            return Err(abort("job status row missing"));
        }
        Some(s) if s.is_finished() => {
            tracing::info!(status = s.as_str(), "job already finished (cancelled?); not running it");
            return Ok(serde_json::json!({ "skipped": s.as_str() }));
        }
        Some(_) => {}
    }
    if entry.scope == Scope::Integration {
        match gate(&mut rt.db.clone(), &env).await {
            Ok(None) => {}
            Ok(Some(reason)) => {
                tracing::info!(reason, "job skipped");
                store.mark_skipped(&job_id, reason).await.map_err(|e| Box::new(e) as BoxDynError)?;
                return Ok(serde_json::json!({ "skipped": reason }));
            }
            Err(e) => return fail(&rt, &env, attempt, &worker, e.to_string()).await,
        }
    }
    tracing::info!("job started");
    let started = std::time::Instant::now();
    let env = Arc::new(env);
    let ctx = JobCtx::new(env.clone(), attempt, policy.max_attempts, rt.clone());
    let mut inline_waits = 0;
    loop {
        // A panicking handler fails its attempt like any error (retried after the backoff, then
        // `failed` with the panic's message) instead of leaving the job `running`.
        let run = std::panic::AssertUnwindSafe((entry.run)(ctx.clone(), env.args.clone())).catch_unwind();
        let res = tokio::time::timeout(policy.timeout, run).await;
        let err = match res {
            Ok(Err(panic)) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "no message".into());
                tracing::error!(panic = %what, "job panicked");
                JobError::Transient(format!("the job panicked (a bug; please report it): {what}"))
            }
            Ok(Ok(Ok(outcome))) => {
                store.mark_done(&job_id, &outcome).await.map_err(|e| Box::new(e) as BoxDynError)?;
                tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, counts = ?outcome.counts, "job done");
                return Ok(serde_json::to_value(&outcome).unwrap_or_default());
            }
            Err(_) => JobError::Transient(format!("attempt timed out after {}", humanize(policy.timeout))),
            Ok(Ok(Err(e))) => e,
        };
        match err {
            JobError::RetryAfter { after, message } => {
                if after <= policy.inline_retry_after && inline_waits < MAX_INLINE_WAITS {
                    inline_waits += 1;
                    tracing::info!(wait_ms = after.as_millis() as u64, %message, "upstream asked to wait; waiting in place");
                    tokio::time::sleep(after).await;
                    continue;
                }
                if env.deferrals >= policy.max_deferrals {
                    let msg = format!("gave up after {} delays asked by the upstream: {message}", env.deferrals);
                    store.mark_failed(&job_id, &msg, true).await.map_err(|e| Box::new(e) as BoxDynError)?;
                    return Err(abort(msg));
                }
                let mut next = (*env).clone();
                next.deferrals += 1;
                match rt.queue.push_continuation(&next, after, Continuation::Deferred).await {
                    Ok(task) => {
                        tracing::info!(delay_s = after.as_secs(), next_task = %task, %message, "upstream asked to wait; job deferred");
                        return Ok(serde_json::json!({ "deferred_secs": after.as_secs(), "next_task": task }));
                    }
                    Err(e) => {
                        return fail(&rt, &env, attempt, &worker, format!("{message}; and deferring failed: {e}"))
                            .await;
                    }
                }
            }
            JobError::Cancelled => {
                tracing::info!("job cancelled while running");
                return Err(abort("cancelled"));
            }
            JobError::Permanent(msg) => {
                tracing::warn!(error = %msg, "job failed (not retryable)");
                store.mark_failed(&job_id, &msg, true).await.map_err(|e| Box::new(e) as BoxDynError)?;
                return Err(abort(msg));
            }
            JobError::Transient(msg) => return fail(&rt, &env, attempt, &worker, msg).await,
        }
    }
}

/// A retryable failure. While attempts remain, the next attempt is a new task due after the
/// kind's backoff (durable, and no worker slot is held meanwhile) and the job is `retrying`; after
/// the last one it is `failed`. If the retry cannot be queued, the error goes back to the backend,
/// which re-runs the task while its own attempt limit allows.
async fn fail(
    rt: &Runtime,
    env: &JobEnvelope,
    attempt: u32,
    worker: &WorkerContext,
    msg: String,
) -> Result<serde_json::Value, BoxDynError> {
    let Some(entry) = rt.registry.get(&env.kind) else { return Err(abort(msg)) };
    let policy = entry.policy;
    if attempt >= policy.max_attempts {
        tracing::warn!(error = %msg, "job failed on its last attempt");
        rt.store().mark_failed(&env.job_id, &msg, true).await.map_err(|e| Box::new(e) as BoxDynError)?;
        return Err(abort(msg));
    }
    let backoff = policy.backoff_before(attempt + 1);
    let mut next = env.clone();
    next.attempts_before = attempt;
    match rt.queue.push_continuation(&next, backoff, Continuation::Retry { error: &msg }).await {
        Ok(task) => {
            tracing::warn!(error = %msg, backoff_ms = backoff.as_millis() as u64, next_task = %task,
                shutting_down = worker.is_shutting_down(), "attempt failed; will retry");
            Ok(serde_json::json!({ "retry_in_secs": backoff.as_secs(), "next_task": task, "error": msg }))
        }
        Err(e) => {
            tracing::warn!(error = %msg, queue_error = %e, "attempt failed and the retry could not be queued");
            rt.store().mark_failed(&env.job_id, &msg, false).await.map_err(|e| Box::new(e) as BoxDynError)?;
            Err(Box::new(AttemptFailed(msg)))
        }
    }
}

/// Why a job of this integration must not run now, if it must not. A webhook's job of an
/// integration that must be reconnected still runs: it records the delivery's alerts (which need
/// no call to the RMM) and skips the refresh itself ([`crate::reconnect`]).
async fn gate(db: &mut impl Exec, env: &JobEnvelope) -> Result<Option<&'static str>, rmm_shared::db::DbError> {
    let (Some(tenant), Some(integration)) = (env.tenant, env.integration_id) else {
        return Ok(Some("job has no tenant or integration"));
    };
    Ok(match integration_gate(db, tenant, integration).await? {
        Some(RECONNECT_REQUIRED) if env.trigger == Trigger::Webhook => None,
        other => other,
    })
}

/// Why jobs of this integration must not run now (suspended tenant, inactive or missing
/// integration, or one whose `settings.tokenLifecycle.status` is `reconnect_required`, whatever
/// its provider), if they must not. The scheduler records the reason on the schedule
/// (`last_skip_reason`), the worker on the job (`skipped`, the reason as its `last_error`).
pub async fn integration_gate(
    db: &mut impl Exec,
    tenant: uuid::Uuid,
    integration: uuid::Uuid,
) -> Result<Option<&'static str>, rmm_shared::db::DbError> {
    let d = db.dialect();
    let t = tenant.to_string();
    let sql = format!(
        "SELECT CAST(CASE WHEN suspended_at IS NULL THEN 0 ELSE 1 END AS BIGINT) FROM tenants WHERE tenant = {}",
        d.param(1, ColType::Uuid)
    );
    let rows: Vec<(i64,)> = db.rows(&sql, &[&t]).await?;
    match rows.first() {
        None => return Ok(Some("tenant not found")),
        Some((1,)) => return Ok(Some("tenant suspended")),
        _ => {}
    }
    let sql = format!(
        "SELECT CAST(CASE WHEN is_active THEN 1 ELSE 0 END AS BIGINT), {} FROM rmm_integrations \
         WHERE tenant = {} AND integration_id = {}",
        d.text("settings"),
        d.param(1, ColType::Uuid),
        d.param(2, ColType::Uuid)
    );
    let rows: Vec<(i64, Option<String>)> = db.rows(&sql, &[&t, &integration.to_string()]).await?;
    Ok(match rows.first() {
        None => Some("integration not found"),
        Some((0, _)) => Some("integration inactive"),
        Some((_, settings)) if needs_reconnect_text(settings.as_deref()) => Some(RECONNECT_REQUIRED),
        _ => None,
    })
}

fn humanize(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 && s.is_multiple_of(60) { format!("{} min", s / 60) } else { format!("{:.1} s", d.as_secs_f64()) }
}
