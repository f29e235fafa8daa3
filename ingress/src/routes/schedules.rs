//! Schedules of an integration's job kinds: interval minutes or cron.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use rmm_jobs::Scope;
use rmm_jobs::schedules::{Cadence, ScheduleScope, ScheduleStore};
use rmm_shared::integrations as svc;
use uuid::Uuid;

use super::{AdminAuth, ApiError, R, Reply, body, provider_of, tenant_read, tenant_write};
use crate::AppState;

#[derive(Object)]
pub struct ScheduleBody {
    pub interval_minutes: Option<u32>,
    /// Five-field cron expression, UTC.
    pub cron: Option<String>,
    pub enabled: Option<bool>,
}

pub struct SchedulesApi;

#[OpenApi]
impl SchedulesApi {
    /// Set the schedule of a job kind for the integration (interval minutes or cron).
    #[oai(path = "/tenants/:tenant/integrations/:provider/schedules/:kind", method = "put")]
    async fn put_schedule(
        &self,
        auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        tenant: Path<Uuid>,
        provider: Path<String>,
        kind: Path<String>,
        b: Json<ScheduleBody>,
    ) -> R {
        tenant_write(&auth.0, tenant.0)?;
        let p = provider_of(&provider)?;
        let entry = state.rt.registry.require_for(&kind, Some(&provider)).map_err(ApiError::from)?;
        if entry.scope != Scope::Integration {
            return Err(ApiError::BadRequest(body(format!("{} is not an integration job", kind.0))));
        }
        let integ = svc::require(&state.rt.db, tenant.0, p).await?;
        let cadence =
            Cadence::parse(b.interval_minutes, b.cron.as_deref()).map_err(|e| ApiError::BadRequest(body(e)))?;
        let scope = schedule_scope(tenant.0, &provider, integ.integration_id, &kind);
        let view = ScheduleStore::new(state.rt.db.clone()).put(&scope, &cadence, b.enabled.unwrap_or(true)).await?;
        Ok(Reply::Ok(Json(serde_json::to_value(view).unwrap_or_default())))
    }

    #[oai(path = "/tenants/:tenant/integrations/:provider/schedules/:kind", method = "get")]
    async fn get_schedule(
        &self,
        auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        tenant: Path<Uuid>,
        provider: Path<String>,
        kind: Path<String>,
    ) -> R {
        tenant_read(&auth.0, tenant.0)?;
        let p = provider_of(&provider)?;
        let integ = svc::require(&state.rt.db, tenant.0, p).await?;
        let scope = schedule_scope(tenant.0, &provider, integ.integration_id, &kind);
        match ScheduleStore::new(state.rt.db.clone()).get(&scope).await? {
            Some(v) => Ok(Reply::Ok(Json(serde_json::to_value(v).unwrap_or_default()))),
            None => Err(ApiError::NotFound(body("no schedule for this job kind"))),
        }
    }

    #[oai(path = "/tenants/:tenant/integrations/:provider/schedules/:kind", method = "delete")]
    async fn delete_schedule(
        &self,
        auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        tenant: Path<Uuid>,
        provider: Path<String>,
        kind: Path<String>,
    ) -> R {
        tenant_write(&auth.0, tenant.0)?;
        let p = provider_of(&provider)?;
        let integ = svc::require(&state.rt.db, tenant.0, p).await?;
        let scope = schedule_scope(tenant.0, &provider, integ.integration_id, &kind);
        if ScheduleStore::new(state.rt.db.clone()).delete(&scope).await? {
            Ok(Reply::NoContent)
        } else {
            Err(ApiError::NotFound(body("no schedule for this job kind")))
        }
    }
}

fn schedule_scope(tenant: Uuid, provider: &str, integration: Uuid, kind: &str) -> ScheduleScope {
    ScheduleScope {
        tenant: Some(tenant),
        provider: Some(provider.to_owned()),
        integration_id: Some(integration),
        kind: kind.to_owned(),
    }
}
