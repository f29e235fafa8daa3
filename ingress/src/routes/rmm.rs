//! AlgaPSA's v1 RMM routes, with AlgaPSA's contract (a tenant-scoped key in `x-api-key`), so that
//! what calls AlgaPSA's API can call rmm-sync instead:
//!
//! * `GET /integrations/rmm` and `GET /integrations/rmm/{provider}`: the tenant's integrations
//!   with AlgaPSA's status fields, and rmm-sync's own (schedules, token lifecycle, counts, last
//!   runs);
//! * `PUT /integrations/rmm/{provider}/device-sync` `{enabled, intervalMinutes}` and
//!   `PUT /integrations/rmm/{provider}/alert-polling` (AlgaPSA's `alertPolling` setting): stored as
//!   rmm-sync's own schedules of the provider's device sync (incremental) and alert reconciliation.
//!   The integration's `settings.deviceSync` and `settings.alertPolling` are left alone: they drive
//!   AlgaPSA's own scheduler, which must not run the same syncs as well;
//! * `POST /integrations/rmm/{provider}/sync` `{syncType}` (default `incremental`): enqueues the
//!   provider's device sync;
//! * `POST /assets/{asset_id}/rmm/refresh`: enqueues the single-device refresh of the provider the
//!   asset is mapped to (`tenant_external_entity_mappings`).
//!
//! Differences from AlgaPSA, each because rmm-sync runs its syncs as jobs: the sync and the refresh
//! answer `202` with the job at once instead of `200` after the work; errors are rmm-sync's
//! `{"error": "..."}`.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use rmm_jobs::schedules::{Cadence, ScheduleScope, ScheduleStore, ScheduleView};
use rmm_jobs::{JobRequest, Trigger};
use rmm_shared::db::sql::{ColType, ts_out};
use rmm_shared::db::{Db, DbError};
use rmm_shared::integrations::{self as svc, lifecycle};
use rmm_shared::providers::Provider;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{AlgaApiKey, ApiError, R, Reply, body, provider_of, tenant_read, tenant_write};
use crate::AppState;
use crate::auth::Principal;

/// AlgaPSA's device-sync bounds (minutes): `DEVICE_SYNC_MIN_MINUTES`, `…_MAX_…`, `…_DEFAULT_…`.
pub const DEVICE_SYNC_MINUTES: (i64, i64, i64) = (15, 1440, 60);
/// AlgaPSA's alert-polling bounds (minutes): 5 to 60, 15 by default.
pub const ALERT_POLLING_MINUTES: (i64, i64, i64) = (5, 60, 15);
/// Sync runs shown per integration (`lastRuns`).
const LAST_RUNS: i64 = 5;

/// `PUT /integrations/rmm/{provider}/device-sync` and `…/alert-polling`.
#[derive(Object)]
pub struct ScheduleSetting {
    /// Run it on a schedule, or not.
    pub enabled: bool,
    /// Minutes between runs: 15–1440 for the device sync (default 60), 5–60 for alert polling
    /// (default 15). Out of range is refused, not clamped.
    #[oai(rename = "intervalMinutes")]
    pub interval_minutes: Option<i64>,
}

/// `POST /integrations/rmm/{provider}/sync` (the body may be empty).
#[derive(Object)]
pub struct AlgaSyncBody {
    /// `full` or `incremental` (default).
    #[oai(rename = "syncType")]
    pub sync_type: Option<String>,
}

pub struct AlgaRmmApi;

#[OpenApi]
impl AlgaRmmApi {
    /// AlgaPSA's route: every RMM integration of the key's tenant, with its status, schedules,
    /// counts and last runs → `{data: [...]}`.
    #[oai(path = "/integrations/rmm", method = "get")]
    async fn list_rmm(&self, auth: AlgaApiKey, state: Data<&Arc<AppState>>) -> R {
        let tenant = key_tenant(&auth.0)?;
        tenant_read(&auth.0, tenant)?;
        Ok(Reply::Ok(Json(json!({ "data": statuses(&state.rt.db, tenant, None).await? }))))
    }

    /// AlgaPSA's route: one integration's status → `{data: {...}}`.
    #[oai(path = "/integrations/rmm/:provider", method = "get")]
    async fn get_rmm(&self, auth: AlgaApiKey, state: Data<&Arc<AppState>>, provider: Path<String>) -> R {
        let tenant = key_tenant(&auth.0)?;
        tenant_read(&auth.0, tenant)?;
        let p = provider_of(&provider)?;
        Ok(Reply::Ok(Json(json!({ "data": one_status(&state.rt.db, tenant, p).await? }))))
    }

    /// AlgaPSA's route: turn the recurring (incremental) device sync on or off and set its cadence
    /// (15–1440 minutes, default 60), as rmm-sync's schedule of the provider's device sync →
    /// `{data: {...}}` (the integration's status).
    #[oai(path = "/integrations/rmm/:provider/device-sync", method = "put")]
    async fn put_device_sync(
        &self,
        auth: AlgaApiKey,
        state: Data<&Arc<AppState>>,
        provider: Path<String>,
        b: Json<ScheduleSetting>,
    ) -> R {
        let tenant = key_tenant(&auth.0)?;
        tenant_write(&auth.0, tenant)?;
        let p = provider_of(&provider)?;
        let minutes = interval(b.interval_minutes, DEVICE_SYNC_MINUTES)?;
        let kind = provider_jobs(p)?.device_sync_kind();
        put_schedule(&state, tenant, p, kind, minutes, b.enabled, Some(&json!({ "mode": "incremental" }))).await
    }

    /// AlgaPSA's `alertPolling` setting: turn the recurring reconciliation of the RMM's active
    /// alerts on or off and set its cadence (5–60 minutes, default 15), as rmm-sync's schedule of
    /// the provider's alert backfill → `{data: {...}}`. `400` for a provider without alerts.
    #[oai(path = "/integrations/rmm/:provider/alert-polling", method = "put")]
    async fn put_alert_polling(
        &self,
        auth: AlgaApiKey,
        state: Data<&Arc<AppState>>,
        provider: Path<String>,
        b: Json<ScheduleSetting>,
    ) -> R {
        let tenant = key_tenant(&auth.0)?;
        tenant_write(&auth.0, tenant)?;
        let p = provider_of(&provider)?;
        let minutes = interval(b.interval_minutes, ALERT_POLLING_MINUTES)?;
        let Some(kind) = provider_jobs(p)?.alert_poll_kind() else {
            return Err(ApiError::BadRequest(body(format!("Alert polling is not available for provider '{p}'."))));
        };
        put_schedule(&state, tenant, p, kind, minutes, b.enabled, None).await
    }

    /// AlgaPSA's route: run a device sync now, `{syncType: "full"|"incremental"}` (default
    /// `incremental`; an integration never synced runs in full) → `202` with the job of the
    /// provider's device sync.
    #[oai(path = "/integrations/rmm/:provider/sync", method = "post")]
    async fn alga_sync(
        &self,
        auth: AlgaApiKey,
        state: Data<&Arc<AppState>>,
        provider: Path<String>,
        b: Json<Option<AlgaSyncBody>>,
    ) -> R {
        let tenant = key_tenant(&auth.0)?;
        tenant_write(&auth.0, tenant)?;
        let p = provider_of(&provider)?;
        let sync_type = match b.0.and_then(|b| b.sync_type).as_deref() {
            None | Some("incremental") => "incremental",
            Some("full") => "full",
            Some(_) => return Err(ApiError::BadRequest(body("syncType must be full or incremental"))),
        };
        let integ = require(&state.rt.db, tenant, p).await?;
        if !integ.is_active {
            // AlgaPSA answers 400 here (and 409 for the refresh).
            return Err(ApiError::BadRequest(body(format!("The {p} integration is not active."))));
        }
        callable(p, &integ)?;
        let kind = provider_jobs(p)?.device_sync_kind();
        let req = JobRequest::for_integration(kind, tenant, p.slug(), integ.integration_id, Trigger::Admin)
            .args(json!({ "mode": sync_type }));
        let job_id = state.rt.queue.enqueue(req).await?;
        Ok(Reply::Accepted(Json(json!({
            "success": true,
            "job_id": job_id,
            "data": { "provider": p, "syncType": sync_type, "kind": kind, "jobId": job_id },
        }))))
    }

    /// AlgaPSA's route: refresh one asset from the RMM it is mapped to (its
    /// `tenant_external_entity_mappings` row) → `202` with the job of that provider's
    /// single-device refresh. `404` for an unknown asset or one no RMM manages; `409` when its
    /// integration is inactive or must be reconnected.
    #[oai(path = "/assets/:asset_id/rmm/refresh", method = "post")]
    async fn refresh_asset(&self, auth: AlgaApiKey, state: Data<&Arc<AppState>>, asset_id: Path<Uuid>) -> R {
        let tenant = key_tenant(&auth.0)?;
        tenant_write(&auth.0, tenant)?;
        let db = &state.rt.db;
        let Some((p, device_id)) = asset_mapping(db, tenant, asset_id.0).await? else {
            return Err(ApiError::NotFound(body("Asset is not managed by an RMM provider")));
        };
        let integ = require(db, tenant, p).await?;
        callable(p, &integ)?;
        let Some(kind) = provider_jobs(p)?.device_refresh_kind() else {
            return Err(ApiError::Conflict(body(format!("{p} has no single-device refresh; run its device sync"))));
        };
        let req = JobRequest::for_integration(kind, tenant, p.slug(), integ.integration_id, Trigger::Admin)
            .args(json!({ "agent_id": device_id }));
        let job_id = state.rt.queue.enqueue(req).await?;
        let asset = asset_id.0;
        Ok(Reply::Accepted(Json(json!({
            "data": {
                "assetId": asset,
                "provider": p,
                "integrationId": integ.integration_id,
                "deviceId": device_id,
                "kind": kind,
                "jobId": job_id,
            },
            "job_id": job_id,
            "message": "RMM refresh queued",
            "_links": {
                "self": { "href": format!("/api/v1/assets/{asset}/rmm/refresh"), "method": "POST" },
                "job": { "href": format!("/api/v1/jobs/{job_id}") },
            },
        }))))
    }
}

/// The key's tenant: these routes name no tenant, the key does.
fn key_tenant(p: &Principal) -> Result<Uuid, ApiError> {
    p.tenant.ok_or_else(|| ApiError::BadRequest(body("this route needs a tenant-scoped key")))
}

fn provider_jobs(p: Provider) -> Result<&'static dyn rmm_jobs::providers::ProviderJobs, ApiError> {
    rmm_jobs::providers::get(p).ok_or_else(|| ApiError::NotFound(body(format!("rmm-sync runs no {p} jobs"))))
}

/// `intervalMinutes` within AlgaPSA's bounds `(min, max, default)`.
fn interval(given: Option<i64>, (min, max, default): (i64, i64, i64)) -> Result<u32, ApiError> {
    match given {
        None => Ok(default as u32),
        Some(m) if (min..=max).contains(&m) => Ok(m as u32),
        Some(m) => {
            Err(ApiError::BadRequest(body(format!("intervalMinutes must be between {min} and {max} (got {m})"))))
        }
    }
}

/// The integration, with AlgaPSA's answer when there is none.
async fn require(db: &Db, tenant: Uuid, p: Provider) -> Result<svc::Integration, ApiError> {
    svc::load(db, tenant, p)
        .await?
        .ok_or_else(|| ApiError::NotFound(body(format!("No {p} integration is configured for this tenant"))))
}

/// Refuses (`409`) to call the RMM of an inactive integration or of one that must be
/// reconnected (AlgaPSA's refresh answers 409 to both).
fn callable(p: Provider, integ: &svc::Integration) -> Result<(), ApiError> {
    if !integ.is_active {
        return Err(ApiError::Conflict(body(format!("The {p} integration is not active."))));
    }
    if lifecycle::needs_reconnect(&Value::Object(integ.settings.clone())) {
        return Err(ApiError::Conflict(body(format!(
            "The {p} integration needs to be reconnected before this action can run \
             (settings.tokenLifecycle.status = {})",
            lifecycle::RECONNECT_REQUIRED
        ))));
    }
    Ok(())
}

/// Stores the tenant's `kind` schedule of its `p` integration (`404` without one) every
/// `minutes`, with the arguments its jobs are enqueued with → `{data: {...}}` (the integration's
/// status).
async fn put_schedule(
    state: &AppState,
    tenant: Uuid,
    p: Provider,
    kind: &str,
    minutes: u32,
    enabled: bool,
    args: Option<&Value>,
) -> R {
    let integ = require(&state.rt.db, tenant, p).await?;
    let scope = scope(tenant, p, integ.integration_id, kind);
    ScheduleStore::new(state.rt.db.clone()).put_with_args(&scope, &Cadence::Every(minutes), enabled, args).await?;
    Ok(Reply::Ok(Json(json!({ "data": one_status(&state.rt.db, tenant, p).await? }))))
}

fn scope(tenant: Uuid, p: Provider, integration: Uuid, kind: &str) -> ScheduleScope {
    ScheduleScope {
        tenant: Some(tenant),
        provider: Some(p.slug().to_owned()),
        integration_id: Some(integration),
        kind: kind.to_owned(),
    }
}

/// The provider and device id of the asset's RMM mapping (a live one first, then the newest);
/// `404 Asset not found` when the tenant has no such asset.
async fn asset_mapping(db: &Db, tenant: Uuid, asset: Uuid) -> Result<Option<(Provider, String)>, ApiError> {
    let d = db.dialect();
    let (t, a) = (tenant.to_string(), asset.to_string());
    let found: Vec<(i64,)> = db
        .fetch(
            &format!(
                "SELECT CAST(COUNT(*) AS BIGINT) FROM assets WHERE tenant = {} AND asset_id = {}",
                d.param(1, ColType::Uuid),
                d.param(2, ColType::Uuid)
            ),
            &[&t, &a],
        )
        .await?;
    if found.first().is_none_or(|r| r.0 == 0) {
        return Err(ApiError::NotFound(body("Asset not found")));
    }
    let rows: Vec<(String, String)> = db
        .fetch(
            &format!(
                "SELECT integration_type, external_entity_id FROM tenant_external_entity_mappings \
                 WHERE tenant = {} AND alga_entity_type = 'asset' AND alga_entity_id = {} \
                 ORDER BY CASE WHEN sync_status = 'deleted' THEN 1 ELSE 0 END, updated_at DESC",
                d.param(1, ColType::Uuid),
                d.param(2, ColType::Text)
            ),
            &[&t, &a],
        )
        .await?;
    Ok(rows.into_iter().find_map(|(slug, device)| svc::provider(&slug).ok().map(|p| (p, device))))
}

/// One integration row as read for the status.
#[derive(sqlx::FromRow)]
struct StatusRow {
    provider: String,
    integration_id: String,
    is_active: i64,
    sync_status: Option<String>,
    sync_error: Option<String>,
    connected_at: Option<String>,
    last_sync_at: Option<String>,
    last_full_sync_at: Option<String>,
    last_incremental_sync_at: Option<String>,
    settings: Option<String>,
}

async fn one_status(db: &Db, tenant: Uuid, p: Provider) -> Result<Value, ApiError> {
    statuses(db, tenant, Some(p))
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::NotFound(body(format!("No {p} integration is configured for this tenant"))))
}

/// The status of the tenant's integrations (of `only`, when given) with a provider rmm-sync runs:
/// AlgaPSA's fields (`provider`, `integrationId`, `isActive`, `syncStatus`, `syncError`,
/// `connectedAt`, `lastSyncAt`, `deviceCount`, `deviceSyncEnabled`, `deviceSyncIntervalMinutes`,
/// `lastIncrementalSyncAt`), then rmm-sync's.
async fn statuses(db: &Db, tenant: Uuid, only: Option<Provider>) -> Result<Vec<Value>, DbError> {
    let d = db.dialect();
    let t = tenant.to_string();
    let sql = format!(
        "SELECT provider, {} AS integration_id, CAST(CASE WHEN is_active THEN 1 ELSE 0 END AS BIGINT) AS is_active, \
         sync_status, sync_error, {} AS connected_at, {} AS last_sync_at, {} AS last_full_sync_at, \
         {} AS last_incremental_sync_at, {} AS settings FROM rmm_integrations WHERE tenant = {} ORDER BY provider",
        d.text("integration_id"),
        ts_out(d, "connected_at"),
        ts_out(d, "last_sync_at"),
        ts_out(d, "last_full_sync_at"),
        ts_out(d, "last_incremental_sync_at"),
        d.text("settings"),
        d.param(1, ColType::Uuid),
    );
    let rows: Vec<StatusRow> = db.fetch(&sql, &[&t]).await?;
    let devices: Vec<(String, i64)> = db
        .fetch(
            &format!(
                "SELECT rmm_provider, CAST(COUNT(*) AS BIGINT) FROM assets WHERE tenant = {} AND rmm_provider IS NOT NULL \
                 GROUP BY rmm_provider",
                d.param(1, ColType::Uuid)
            ),
            &[&t],
        )
        .await?;
    let schedules = ScheduleStore::new(db.clone()).list(Some(tenant)).await?;
    let mut out = Vec::new();
    for row in rows {
        let Ok(p) = svc::provider(&row.provider) else { continue };
        if only.is_some_and(|o| o != p) {
            continue;
        }
        let Some(jobs) = rmm_jobs::providers::get(p) else { continue };
        let Ok(integration) = row.integration_id.parse::<Uuid>() else { continue };
        let schedule = |kind: Option<&str>| -> Option<&ScheduleView> {
            let kind = kind?;
            schedules.iter().find(|s| s.provider.as_deref() == Some(p.slug()) && s.kind == kind)
        };
        let device_sync = schedule(Some(jobs.device_sync_kind()));
        let alert_polling = schedule(jobs.alert_poll_kind());
        let settings: Value = row.settings.as_deref().and_then(|s| serde_json::from_str(s).ok()).unwrap_or(Value::Null);
        let token_status = lifecycle::token_status(&settings).map(str::to_owned);
        let counts = svc::summary(db, tenant, p, integration).await?;
        let runs = last_runs(db, tenant, integration).await?;
        out.push(json!({
            "provider": p,
            "integrationId": integration,
            "isActive": row.is_active != 0,
            "syncStatus": row.sync_status,
            "syncError": row.sync_error,
            "connectedAt": row.connected_at,
            "lastSyncAt": row.last_sync_at,
            "deviceCount": devices.iter().find(|(s, _)| s == p.slug()).map_or(0, |(_, n)| *n),
            "deviceSyncEnabled": device_sync.is_some_and(|s| s.enabled),
            "deviceSyncIntervalMinutes": device_sync.and_then(|s| s.interval_minutes).unwrap_or(DEVICE_SYNC_MINUTES.2),
            "lastIncrementalSyncAt": row.last_incremental_sync_at,
            "lastFullSyncAt": row.last_full_sync_at,
            "alertPollingAvailable": jobs.alert_poll_kind().is_some(),
            "alertPollingEnabled": alert_polling.is_some_and(|s| s.enabled),
            "alertPollingIntervalMinutes": alert_polling.and_then(|s| s.interval_minutes).unwrap_or(ALERT_POLLING_MINUTES.2),
            "tokenLifecycleStatus": token_status,
            "reconnectRequired": lifecycle::needs_reconnect(&settings),
            "counts": counts,
            "lastRuns": runs,
            "schedules": { "deviceSync": device_sync, "alertPolling": alert_polling },
        }));
    }
    Ok(out)
}

/// The integration's newest sync runs.
async fn last_runs(db: &Db, tenant: Uuid, integration: Uuid) -> Result<Vec<Value>, DbError> {
    let d = db.dialect();
    let sql = format!(
        "SELECT {}, kind, \"trigger\", status, {}, {}, CAST(items_processed AS BIGINT), CAST(items_created AS BIGINT), \
         CAST(items_updated AS BIGINT), CAST(items_deleted AS BIGINT), CAST(items_skipped AS BIGINT), \
         CAST(items_failed AS BIGINT), job_id FROM {} WHERE tenant = {} AND integration_id = {} \
         ORDER BY started_at DESC LIMIT {LAST_RUNS}",
        d.text("run_id"),
        ts_out(d, "started_at"),
        ts_out(d, "finished_at"),
        db.ours("sync_runs"),
        d.param(1, ColType::Uuid),
        d.param(2, ColType::Uuid),
    );
    type RunRow =
        (String, String, String, String, Option<String>, Option<String>, i64, i64, i64, i64, i64, i64, Option<String>);
    let rows: Vec<RunRow> = db.fetch(&sql, &[&tenant.to_string(), &integration.to_string()]).await?;
    Ok(rows
        .into_iter()
        .map(
            |(
                id,
                kind,
                trigger,
                status,
                started,
                finished,
                processed,
                created,
                updated,
                deleted,
                skipped,
                failed,
                job,
            )| {
                json!({
                    "runId": id, "kind": kind, "trigger": trigger, "status": status,
                    "startedAt": started, "finishedAt": finished, "jobId": job,
                    "counts": { "processed": processed, "created": created, "updated": updated,
                                "deleted": deleted, "skipped": skipped, "failed": failed },
                })
            },
        )
        .collect())
}
