//! Jobs: enqueue a job of an integration, look at, retry and cancel jobs.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use rmm_jobs::store::{CancelOutcome, JobFilter};
use rmm_jobs::{JobRequest, JobStatus, Scope, Trigger};
use rmm_shared::integrations as svc;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{AdminAuth, ApiError, R, Reply, body, provider_of, tenant_write};
use crate::AppState;
use crate::auth::Principal;

#[derive(Object, Default)]
pub struct JobBody {
    /// The kind's own arguments (e.g. `{"mode": "incremental"}` for `sync-devices`).
    pub args: Option<Value>,
}

pub struct JobsApi;

#[OpenApi]
impl JobsApi {
    /// Enqueue a job of the integration → 202 `{job_id}`.
    #[oai(path = "/tenants/:tenant/integrations/:provider/jobs/:kind", method = "post")]
    #[allow(clippy::too_many_arguments)] // each argument is a request part poem-openapi extracts
    async fn enqueue_job(
        &self,
        auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        tenant: Path<Uuid>,
        provider: Path<String>,
        kind: Path<String>,
        /// Plan only: the device sync reads the provider and the current rows, writes nothing, and
        /// its job's `detail.dry_run` says per organisation what it would create, update, move and
        /// tombstone. Device-sync kinds only (400 for the others).
        dry_run: Query<Option<bool>>,
        b: Json<JobBody>,
    ) -> R {
        tenant_write(&auth.0, tenant.0)?;
        let p = provider_of(&provider)?;
        let entry = state.rt.registry.require_for(&kind, Some(&provider)).map_err(ApiError::from)?;
        if entry.scope != Scope::Integration {
            return Err(ApiError::BadRequest(body(format!(
                "{} is a service-wide job, not an integration job",
                kind.0
            ))));
        }
        let mut args = b.0.args.unwrap_or_else(|| json!({}));
        if dry_run.0 == Some(true) {
            args = state.rt.registry.dry_run_args(entry, args).map_err(|e| ApiError::BadRequest(body(e)))?;
        }
        let integ = svc::require(&state.rt.db, tenant.0, p).await?;
        let req =
            JobRequest::for_integration(kind.0, tenant.0, provider.0, integ.integration_id, Trigger::Admin).args(args);
        let job_id = state.rt.queue.enqueue(req).await?;
        Ok(Reply::Accepted(Json(json!({ "job_id": job_id }))))
    }

    /// One job: kind, status, attempts, progress, result counts, last error.
    #[oai(path = "/jobs/:job_id", method = "get")]
    async fn get_job(&self, auth: AdminAuth, state: Data<&Arc<AppState>>, job_id: Path<String>) -> R {
        let job = visible_job(&auth.0, &state, &job_id).await?;
        Ok(Reply::Ok(Json(job_json(&job))))
    }

    /// Jobs, newest first.
    #[oai(path = "/jobs", method = "get")]
    async fn list_jobs(
        &self,
        auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        tenant: Query<Option<Uuid>>,
        status: Query<Option<String>>,
        kind: Query<Option<String>>,
        limit: Query<Option<u32>>,
    ) -> R {
        let tenant = match (auth.0.tenant, tenant.0) {
            (Some(own), Some(t)) if own != t => return Ok(Reply::Ok(Json(json!({ "jobs": [] })))),
            (Some(own), _) => Some(Some(own)),
            (None, t) => t.map(Some),
        };
        let status = match status.0.as_deref() {
            None => None,
            Some(s) => Some(JobStatus::parse(s).ok_or_else(|| {
                ApiError::BadRequest(body(format!(
                    "unknown status {s:?}; statuses: {}",
                    JobStatus::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                )))
            })?),
        };
        let filter = JobFilter { tenant, status, kind: kind.0, limit: limit.0.unwrap_or(100).clamp(1, 1000) };
        let jobs = state.rt.store().list(&filter).await?;
        Ok(Reply::Ok(Json(json!({ "jobs": jobs.iter().map(job_json).collect::<Vec<_>>() }))))
    }

    /// Re-queue a failed or cancelled job → 202 `{job_id}` of the new job.
    #[oai(path = "/jobs/:job_id/retry", method = "post")]
    async fn retry_job(&self, auth: AdminAuth, state: Data<&Arc<AppState>>, job_id: Path<String>) -> R {
        let job = visible_job(&auth.0, &state, &job_id).await?;
        writable_job(&auth.0, &job)?;
        let new_id = state.rt.queue.retry(&job_id).await?;
        Ok(Reply::Accepted(Json(json!({ "job_id": new_id, "retry_of": job.job_id }))))
    }

    /// Cancel a job that has not finished.
    #[oai(path = "/jobs/:job_id/cancel", method = "post")]
    async fn cancel_job(&self, auth: AdminAuth, state: Data<&Arc<AppState>>, job_id: Path<String>) -> R {
        let job = visible_job(&auth.0, &state, &job_id).await?;
        writable_job(&auth.0, &job)?;
        match state.rt.queue.cancel(&job_id).await? {
            CancelOutcome::Cancelled => Ok(Reply::Ok(Json(json!({ "job_id": job.job_id, "status": "cancelled" })))),
            CancelOutcome::AlreadyFinished(s) => {
                Err(ApiError::Conflict(body(format!("job {} already finished ({})", job.job_id, s.as_str()))))
            }
            CancelOutcome::NotFound => Err(ApiError::NotFound(body("job not found"))),
        }
    }
}

async fn visible_job(p: &Principal, state: &AppState, job_id: &str) -> Result<rmm_jobs::JobView, ApiError> {
    let job = state.rt.store().get(job_id).await?;
    match job {
        Some(j) if p.is_global() || (j.tenant.is_some() && j.tenant == p.tenant) => Ok(j),
        _ => Err(ApiError::NotFound(body(format!("job {job_id} not found")))),
    }
}

fn writable_job(p: &Principal, job: &rmm_jobs::JobView) -> Result<(), ApiError> {
    if p.write { Ok(()) } else { Err(ApiError::Forbidden(body(format!("this key is read-only (job {})", job.job_id)))) }
}

fn job_json(j: &rmm_jobs::JobView) -> Value {
    let counts = j.result.as_ref().and_then(|r| r.get("counts")).cloned();
    json!({
        "job_id": j.job_id,
        "kind": j.kind,
        "status": j.status,
        "tenant": j.tenant,
        "provider": j.provider,
        "integration_id": j.integration_id,
        "trigger": j.trigger,
        "correlation_id": j.correlation_id,
        "attempts": j.attempts,
        "max_attempts": j.max_attempts,
        "progress": { "processed": j.progress_processed, "total": j.progress_total },
        "counts": counts,
        "result": j.result,
        "last_error": j.last_error,
        "args": j.args,
        "retry_of": j.retry_of,
        "retried_as": j.retried_as,
        "run_at": j.run_at,
        "created_at": j.created_at,
        "started_at": j.started_at,
        "finished_at": j.finished_at,
    })
}
