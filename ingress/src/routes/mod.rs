//! The admin API under `/api/v1` (`Authorization: Bearer <key>`; tenant-scoped keys only see
//! their tenant, and another tenant's resources answer 404 to them). One module per resource;
//! the handlers check the caller, parse, call the service and render its answer.

pub mod assets;
pub mod integrations;
pub mod jobs;
pub mod rmm;
pub mod schedules;
pub mod tenants;

use std::sync::Arc;

use poem::Request;
use poem_openapi::auth::{ApiKey, Bearer};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, SecurityScheme};
use rmm_jobs::RuntimeError;
use rmm_shared::config::SchemaMode;
use rmm_shared::db::DbError;
use rmm_shared::integrations::IntegrationError;
use rmm_shared::providers::Provider;
use serde_json::Value;
use uuid::Uuid;

use crate::AppState;
use crate::auth::{Principal, authenticate};

/// Every route of the admin API.
pub type AdminApi = (
    tenants::TenantsApi,
    integrations::IntegrationsApi,
    jobs::JobsApi,
    schedules::SchedulesApi,
    assets::AssetsApi,
    rmm::AlgaRmmApi,
);

/// The admin API.
pub fn admin_api() -> AdminApi {
    (
        tenants::TenantsApi,
        integrations::IntegrationsApi,
        jobs::JobsApi,
        schedules::SchedulesApi,
        assets::AssetsApi,
        rmm::AlgaRmmApi,
    )
}

/// `Authorization: Bearer <key>`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", checker = "check_bearer")]
pub struct AdminAuth(Principal);

async fn check_bearer(req: &Request, bearer: Bearer) -> Option<Principal> {
    principal(req, &bearer.token).await
}

/// AlgaPSA's `x-api-key` header (tenant-scoped key), for AlgaPSA's v1 RMM routes ([`rmm`]).
#[derive(SecurityScheme)]
#[oai(ty = "api_key", key_name = "x-api-key", key_in = "header", checker = "check_api_key")]
pub struct AlgaApiKey(Principal);

async fn check_api_key(req: &Request, key: ApiKey) -> Option<Principal> {
    principal(req, &key.key).await
}

async fn principal(req: &Request, presented: &str) -> Option<Principal> {
    let state = req.data::<Arc<AppState>>()?;
    match authenticate(&state.rt.db, state.bootstrap_key.as_ref(), presented).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "API key lookup failed");
            None
        }
    }
}

/// `{"error": "..."}`.
#[derive(Object)]
pub struct ErrorBody {
    pub error: String,
}

#[derive(ApiResponse)]
pub enum ApiError {
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

fn body(msg: impl Into<String>) -> Json<ErrorBody> {
    Json(ErrorBody { error: msg.into() })
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        tracing::error!(error = %e, "database error in the admin API");
        ApiError::Unavailable(body("the database is unavailable; try again later"))
    }
}

impl From<RuntimeError> for ApiError {
    fn from(e: RuntimeError) -> Self {
        match e {
            RuntimeError::UnknownKind { .. } | RuntimeError::Invalid(_) => ApiError::BadRequest(body(e.to_string())),
            RuntimeError::NotFound(_) => ApiError::NotFound(body(e.to_string())),
            RuntimeError::Conflict(_) => ApiError::Conflict(body(e.to_string())),
            other => {
                tracing::error!(error = %other, "runtime error in the admin API");
                ApiError::Unavailable(body("the job store is unavailable; try again later"))
            }
        }
    }
}

impl From<IntegrationError> for ApiError {
    fn from(e: IntegrationError) -> Self {
        match &e {
            IntegrationError::Db(db) => tracing::error!(error = %db, "database error in the admin API"),
            IntegrationError::SecretStore(s) => tracing::error!(error = %s, "secret store error in the admin API"),
            _ => {}
        }
        let msg = body(e.public_message());
        match e.http_status() {
            400 => ApiError::BadRequest(msg),
            404 => ApiError::NotFound(msg),
            409 => ApiError::Conflict(msg),
            _ => ApiError::Unavailable(msg),
        }
    }
}

#[derive(ApiResponse)]
pub enum Reply {
    #[oai(status = 200)]
    Ok(Json<Value>),
    #[oai(status = 202)]
    Accepted(Json<Value>),
    #[oai(status = 204)]
    NoContent,
}

type R = Result<Reply, ApiError>;

/// A 200 answer with `v` as JSON.
fn ok(v: impl serde::Serialize) -> R {
    Ok(Reply::Ok(Json(serde_json::to_value(v).unwrap_or_default())))
}

fn tenant_read(p: &Principal, tenant: Uuid) -> Result<(), ApiError> {
    // Another tenant's resources do not exist for a tenant key.
    if p.can_read(tenant) { Ok(()) } else { Err(ApiError::NotFound(body("tenant not found"))) }
}

fn tenant_write(p: &Principal, tenant: Uuid) -> Result<(), ApiError> {
    tenant_read(p, tenant)?;
    if p.can_write(tenant) { Ok(()) } else { Err(ApiError::Forbidden(body("this key is read-only"))) }
}

/// The provider of the path, one rmm-sync implements (404 otherwise).
fn provider_of(slug: &str) -> Result<Provider, ApiError> {
    Ok(rmm_shared::integrations::provider(slug)?)
}

fn standalone(state: &AppState) -> Result<(), ApiError> {
    if state.rt.settings.schema_mode == SchemaMode::Standalone {
        Ok(())
    } else {
        Err(ApiError::Conflict(body(
            "tenants and clients are AlgaPSA's in algapsa schema mode; manage them in AlgaPSA",
        )))
    }
}
