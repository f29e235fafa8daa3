//! The admin API under `/api/v1` (`Authorization: Bearer <key>`; tenant-scoped keys only see
//! their tenant, and another tenant's resources answer 404 to them).

use std::sync::Arc;

use poem::Request;
use poem::web::Data;
use poem_openapi::auth::{ApiKey, Bearer};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, SecurityScheme};
use rand::RngCore;
use rmm_jobs::providers::tactical as tac;
use rmm_jobs::providers::tanium as tan;
use rmm_jobs::schedules::{Cadence, ScheduleScope, ScheduleStore};
use rmm_jobs::sqlx_util::{P, ts_out};
use rmm_jobs::store::{CancelOutcome, JobFilter, nullable};
use rmm_jobs::{JobRequest, JobStatus, RuntimeError, Scope, Trigger};
use rmm_shared::config::SchemaMode;
use rmm_shared::db::sql::{ColType, fmt_ts};
use rmm_shared::db::{Db, DbError};
use rmm_shared::providers::tactical::secrets as tac_secrets;
use rmm_shared::providers::tanium::secrets as tan_secrets;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::AppState;
use crate::auth::{Principal, authenticate};

/// `Authorization: Bearer <key>`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", checker = "check_bearer")]
pub struct AdminAuth(Principal);

async fn check_bearer(req: &Request, bearer: Bearer) -> Option<Principal> {
    principal(req, &bearer.token).await
}

/// AlgaPSA's `x-api-key` header (tenant-scoped key), for the AlgaPSA-compatible sync route.
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

fn tenant_read(p: &Principal, tenant: Uuid) -> Result<(), ApiError> {
    // Another tenant's resources do not exist for a tenant key.
    if p.can_read(tenant) { Ok(()) } else { Err(ApiError::NotFound(body("tenant not found"))) }
}

fn tenant_write(p: &Principal, tenant: Uuid) -> Result<(), ApiError> {
    tenant_read(p, tenant)?;
    if p.can_write(tenant) { Ok(()) } else { Err(ApiError::Forbidden(body("this key is read-only"))) }
}

fn provider_ok(provider: &str) -> Result<(), ApiError> {
    if rmm_jobs::providers::by_slug(provider).is_some() {
        Ok(())
    } else {
        let known = rmm_jobs::providers::slugs().join(", ");
        Err(ApiError::NotFound(body(format!("unknown provider {provider:?}; providers: {known}"))))
    }
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

/// `••••abcd` (AlgaPSA's maskSecret).
fn mask(s: &str) -> String {
    let n = s.chars().count();
    if n == 0 {
        String::new()
    } else if n <= 4 {
        "•".repeat(n)
    } else {
        let tail: String = s.chars().skip(n - 4).collect();
        format!("{}{tail}", "•".repeat(n - 4))
    }
}

/// A tenant's integration row, as the admin API and the CLI read it.
pub struct Integration {
    pub integration_id: Uuid,
    pub instance_url: Option<String>,
    pub is_active: bool,
    pub settings: Map<String, Value>,
    pub connected_at: Option<String>,
    pub last_sync_at: Option<String>,
    pub sync_error: Option<String>,
}

/// The tenant's integration with `provider`, if it has one.
pub async fn load_integration(db: &Db, tenant: Uuid, provider: &str) -> Result<Option<Integration>, DbError> {
    let d = db.dialect();
    let ts = |c: &str| ts_out(d, c);
    let sql = format!(
        "SELECT {}, instance_url, CAST(CASE WHEN is_active THEN 1 ELSE 0 END AS BIGINT), {}, {}, {}, sync_error \
         FROM rmm_integrations WHERE tenant = {} AND provider = {}",
        d.text("integration_id"),
        d.text("settings"),
        ts("connected_at"),
        ts("last_sync_at"),
        d.param(1, ColType::Uuid),
        d.param(2, ColType::Text)
    );
    #[allow(clippy::type_complexity)]
    let rows: Vec<(String, Option<String>, i64, Option<String>, Option<String>, Option<String>, Option<String>)> =
        db.fetch(&sql, &[&tenant.to_string(), provider]).await?;
    Ok(rows.into_iter().next().map(|(id, url, active, settings, connected, last, err)| Integration {
        integration_id: id.parse().unwrap_or_default(),
        instance_url: url,
        is_active: active != 0,
        settings: settings.and_then(|s| serde_json::from_str(&s).ok()).unwrap_or_default(),
        connected_at: connected,
        last_sync_at: last,
        sync_error: err,
    }))
}

async fn require_integration(db: &Db, tenant: Uuid, provider: &str) -> Result<Integration, ApiError> {
    load_integration(db, tenant, provider)
        .await?
        .ok_or_else(|| ApiError::NotFound(body(format!("no {provider} integration for this tenant"))))
}

async fn tenant_exists(db: &Db, tenant: Uuid) -> Result<bool, DbError> {
    let d = db.dialect();
    let rows: Vec<(i64,)> = db
        .fetch(
            &format!("SELECT CAST(1 AS BIGINT) FROM tenants WHERE tenant = {}", d.param(1, ColType::Uuid)),
            &[&tenant.to_string()],
        )
        .await?;
    Ok(!rows.is_empty())
}

/// Body of `PUT /tenants/{tenant}` and `PUT /tenants/{tenant}/clients/{client_id}`.
#[derive(Object)]
pub struct NameBody {
    pub name: String,
    /// Tenant contact e-mail (tenants only; default `admin@<tenant>.invalid`).
    pub email: Option<String>,
}

/// Body of `PUT /tenants/{tenant}/integrations/{provider}`: every field optional; what is given
/// is merged into what is saved.
#[derive(Object, Default)]
pub struct IntegrationBody {
    pub instance_url: Option<String>,
    /// `api_key` or `knox`.
    pub auth_mode: Option<String>,
    pub api_key: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Merged key by key into the integration's settings (`null` removes a key).
    pub settings: Option<Value>,
    /// Tanium: the API Gateway token (`token-…`).
    pub api_token: Option<String>,
    /// Tanium: the Asset API base URL for the fallback (`""` removes it).
    pub asset_api_url: Option<String>,
    /// Tanium: refresh assets of an empty computer group from the Asset API.
    pub use_asset_api_fallback: Option<bool>,
}

#[derive(Object, Default)]
pub struct TestBody {
    pub totp_code: Option<String>,
}

#[derive(Object, Default)]
pub struct MappingPatch {
    /// The AlgaPSA client the Tactical client maps to (`null` unassigns).
    pub client_id: Option<Option<Uuid>>,
    pub auto_sync_assets: Option<bool>,
    pub default_contact_id: Option<Option<Uuid>>,
}

#[derive(Object, Default)]
pub struct JobBody {
    /// The kind's own arguments (e.g. `{"mode": "incremental"}` for `sync-devices`).
    pub args: Option<Value>,
}

/// AlgaPSA's sync request.
#[derive(Object)]
pub struct AlgaSyncBody {
    /// `full` or `incremental`.
    #[oai(rename = "syncType")]
    pub sync_type: String,
}

#[derive(Object)]
pub struct ScheduleBody {
    pub interval_minutes: Option<u32>,
    /// Five-field cron expression, UTC.
    pub cron: Option<String>,
    pub enabled: Option<bool>,
}

pub struct AdminApi;

#[OpenApi]
impl AdminApi {
    /// Create or rename a tenant (standalone mode only).
    #[oai(path = "/tenants/:tenant", method = "put")]
    async fn put_tenant(
        &self,
        auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        tenant: Path<Uuid>,
        b: Json<NameBody>,
    ) -> R {
        standalone(&state)?;
        if !auth.0.is_global() || !auth.0.write {
            return Err(ApiError::Forbidden(body("creating tenants needs a global read-write key")));
        }
        let name = b.name.trim();
        if name.is_empty() {
            return Err(ApiError::BadRequest(body("name is required")));
        }
        let db = &state.rt.db;
        let d = db.dialect();
        let email = b.email.clone().unwrap_or_else(|| format!("admin@{}.invalid", tenant.0));
        let sql = format!(
            "INSERT INTO tenants (tenant, client_name, email) VALUES ({}, {}, {}) \
             ON CONFLICT (tenant) DO UPDATE SET client_name = excluded.client_name",
            d.param(1, ColType::Uuid),
            d.param(2, ColType::Text),
            d.param(3, ColType::Text)
        );
        db.execute(&sql, &[&tenant.0.to_string(), name, &email]).await?;
        Ok(Reply::Ok(Json(json!({ "tenant": tenant.0, "name": name }))))
    }

    /// Create or rename a client of a tenant (standalone mode only).
    #[oai(path = "/tenants/:tenant/clients/:client_id", method = "put")]
    async fn put_client(
        &self,
        auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        tenant: Path<Uuid>,
        client_id: Path<Uuid>,
        b: Json<NameBody>,
    ) -> R {
        standalone(&state)?;
        tenant_write(&auth.0, tenant.0)?;
        let name = b.name.trim();
        if name.is_empty() {
            return Err(ApiError::BadRequest(body("name is required")));
        }
        let db = &state.rt.db;
        if !tenant_exists(db, tenant.0).await? {
            return Err(ApiError::NotFound(body("tenant not found")));
        }
        let d = db.dialect();
        let sql = format!(
            "INSERT INTO clients (tenant, client_id, client_name) VALUES ({}, {}, {}) \
             ON CONFLICT (tenant, client_id) DO UPDATE SET client_name = excluded.client_name",
            d.param(1, ColType::Uuid),
            d.param(2, ColType::Uuid),
            d.param(3, ColType::Text)
        );
        match db.execute(&sql, &[&tenant.0.to_string(), &client_id.0.to_string(), name]).await {
            Ok(_) => Ok(Reply::Ok(Json(json!({ "tenant": tenant.0, "client_id": client_id.0, "name": name })))),
            Err(e) if e.to_string().contains("UNIQUE") || e.to_string().contains("unique") => {
                Err(ApiError::Conflict(body(format!("another client of this tenant is already named {name:?}"))))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Save integration settings and credentials (merged with what is saved).
    #[oai(path = "/tenants/:tenant/integrations/:provider", method = "put")]
    async fn put_integration(
        &self,
        auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        tenant: Path<Uuid>,
        provider: Path<String>,
        b: Json<IntegrationBody>,
    ) -> R {
        tenant_write(&auth.0, tenant.0)?;
        provider_ok(&provider)?;
        let (db, secrets) = (&state.rt.db, &state.rt.secrets);
        if !tenant_exists(db, tenant.0).await? {
            return Err(ApiError::NotFound(body("tenant not found")));
        }
        let tanium = provider.as_str() == tan::PROVIDER.slug();
        if tanium && (b.auth_mode.is_some() || b.api_key.is_some() || b.username.is_some() || b.password.is_some()) {
            return Err(ApiError::BadRequest(body(
                "auth_mode, api_key, username and password are Tactical RMM settings; a Tanium integration takes \
                 instance_url (the Gateway URL), api_token, asset_api_url and use_asset_api_fallback",
            )));
        }
        if !tanium && (b.api_token.is_some() || b.asset_api_url.is_some() || b.use_asset_api_fallback.is_some()) {
            return Err(ApiError::BadRequest(body(
                "api_token, asset_api_url and use_asset_api_fallback are Tanium settings; a Tactical RMM integration \
                 takes instance_url, auth_mode, api_key, username and password",
            )));
        }
        let existing = load_integration(db, tenant.0, &provider).await?;
        let mut settings = existing.as_ref().map(|i| i.settings.clone()).unwrap_or_default();
        let mut reconnect = existing.is_none();
        if let Some(mode) = &b.auth_mode {
            if mode != "api_key" && mode != "knox" {
                return Err(ApiError::BadRequest(body("auth_mode must be api_key or knox")));
            }
            reconnect |= settings.get("auth_mode").and_then(Value::as_str) != Some(mode.as_str());
            settings.insert("auth_mode".into(), json!(mode));
        }
        match &b.settings {
            None => {}
            Some(Value::Object(m)) => {
                for (k, v) in m {
                    if k == "auth_mode" {
                        continue;
                    }
                    if v.is_null() {
                        settings.remove(k);
                    } else {
                        settings.insert(k.clone(), v.clone());
                    }
                }
            }
            Some(_) => return Err(ApiError::BadRequest(body("settings must be a JSON object"))),
        }
        if !tanium && let Err(e) = tac::forward::AlertMode::from_settings(&Value::Object(settings.clone())) {
            return Err(ApiError::BadRequest(body(&e)));
        }
        let url = match &b.instance_url {
            Some(u) => {
                let normalized = if tanium {
                    rmm_shared::providers::tanium::gateway_base_url(u).ok()
                } else {
                    rmm_shared::providers::tactical::client::normalize_base_url(u)
                };
                let Some(n) = normalized else {
                    return Err(ApiError::BadRequest(body("instance_url is not a valid http(s) URL")));
                };
                reconnect |= existing.as_ref().and_then(|i| i.instance_url.as_deref()) != Some(n.as_str());
                Some(n)
            }
            None => existing.as_ref().and_then(|i| i.instance_url.clone()),
        };
        let put = |name: &'static str, v: &Option<String>| {
            let v = v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(|v| SecretString::from(v.to_owned()));
            async move {
                match v {
                    Some(v) => secrets.set_tenant_secret(tenant.0, name, Some(&v)).await.map(|_| true),
                    None => Ok(false),
                }
            }
        };
        let secret_err = |e: rmm_shared::secrets::SecretError| {
            tracing::error!(error = %e, "secret write failed");
            ApiError::Unavailable(body("the secret store is unavailable"))
        };
        if tanium {
            let token = match b.api_token.as_deref() {
                Some(t) => Some(
                    rmm_shared::providers::tanium::check_token(t)
                        .map_err(|e| ApiError::BadRequest(body(e.to_string())))?,
                ),
                None => None,
            };
            let asset = match b.asset_api_url.as_deref().map(str::trim) {
                None => None,
                Some("") => Some(None),
                Some(a) => match rmm_shared::providers::tanium::asset_api_base_url(a) {
                    Ok(n) => Some(Some(n)),
                    Err(_) => return Err(ApiError::BadRequest(body("asset_api_url is not a valid http(s) URL"))),
                },
            };
            if let Some(t) = &token {
                secrets.set_tenant_secret(tenant.0, tan_secrets::API_TOKEN, Some(t)).await.map_err(secret_err)?;
                reconnect = true;
            }
            if let (Some(u), Some(_)) = (&url, &b.instance_url) {
                let v = SecretString::from(u.clone());
                secrets.set_tenant_secret(tenant.0, tan_secrets::GATEWAY_URL, Some(&v)).await.map_err(secret_err)?;
            }
            if let Some(a) = &asset {
                let v = a.clone().map(SecretString::from);
                secrets
                    .set_tenant_secret(tenant.0, tan_secrets::ASSET_API_URL, v.as_ref())
                    .await
                    .map_err(secret_err)?;
            }
            // AlgaPSA's shape, merged (AlgaPSA replaces the whole settings object here).
            let mut ps = settings.get("provider_settings").and_then(Value::as_object).cloned().unwrap_or_default();
            let mut t = ps.get("tanium").and_then(Value::as_object).cloned().unwrap_or_default();
            t.insert("gateway_url".into(), json!(url));
            if let Some(a) = &asset {
                t.insert("asset_api_url".into(), json!(a));
            }
            t.entry("asset_api_url").or_insert(Value::Null);
            if let Some(f) = b.use_asset_api_fallback {
                t.insert("use_asset_api_fallback".into(), json!(f));
            }
            t.entry("use_asset_api_fallback").or_insert(json!(false));
            ps.insert("tanium".into(), Value::Object(t));
            settings.insert("provider_settings".into(), Value::Object(ps));
        } else {
            reconnect |= put(tac_secrets::API_KEY, &b.api_key).await.map_err(secret_err)?;
            reconnect |= put(tac_secrets::USERNAME, &b.username).await.map_err(secret_err)?;
            reconnect |= put(tac_secrets::PASSWORD, &b.password).await.map_err(secret_err)?;
            if !settings.contains_key("auth_mode") {
                settings.insert("auth_mode".into(), json!("api_key"));
            }
        }
        let d = db.dialect();
        let now = fmt_ts(chrono::Utc::now());
        let settings_s = Value::Object(settings.clone()).to_string();
        let url_s = url.clone().unwrap_or_default();
        let active_expr = if reconnect { P(d).bool(false) } else { "rmm_integrations.is_active" };
        let sql = format!(
            "INSERT INTO rmm_integrations (tenant, integration_id, provider, instance_url, is_active, settings, created_at, updated_at) \
             VALUES ({t}, {i}, {p}, NULLIF({u}, ''), {f}, {s}, {n}, {n}) \
             ON CONFLICT (tenant, provider) DO UPDATE SET instance_url = excluded.instance_url, settings = excluded.settings, \
             is_active = {active_expr}, updated_at = excluded.updated_at",
            t = d.param(1, ColType::Uuid),
            i = d.param(2, ColType::Uuid),
            p = d.param(3, ColType::Text),
            u = d.param(4, ColType::Text),
            f = P(d).bool(false),
            s = d.param(5, ColType::Json),
            n = d.param(6, ColType::Timestamp),
        );
        let id = existing.as_ref().map(|i| i.integration_id).unwrap_or_else(Uuid::new_v4);
        db.execute(&sql, &[&tenant.0.to_string(), &id.to_string(), &provider, &url_s, &settings_s, &now]).await?;
        let view = integration_view(&state, tenant.0, &provider).await?;
        Ok(Reply::Ok(Json(view)))
    }

    /// Settings (secrets masked) and the connection summary.
    #[oai(path = "/tenants/:tenant/integrations/:provider", method = "get")]
    async fn get_integration(
        &self,
        auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        tenant: Path<Uuid>,
        provider: Path<String>,
    ) -> R {
        tenant_read(&auth.0, tenant.0)?;
        provider_ok(&provider)?;
        require_integration(&state.rt.db, tenant.0, &provider).await?;
        Ok(Reply::Ok(Json(integration_view(&state, tenant.0, &provider).await?)))
    }

    /// Disconnect: credentials deleted (the webhook secret is kept), integration inactive.
    #[oai(path = "/tenants/:tenant/integrations/:provider", method = "delete")]
    async fn delete_integration(
        &self,
        auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        tenant: Path<Uuid>,
        provider: Path<String>,
    ) -> R {
        tenant_write(&auth.0, tenant.0)?;
        provider_ok(&provider)?;
        let db = &state.rt.db;
        let integ = require_integration(db, tenant.0, &provider).await?;
        let names: &[&str] = if provider.as_str() == tan::PROVIDER.slug() {
            &[tan_secrets::GATEWAY_URL, tan_secrets::API_TOKEN, tan_secrets::ASSET_API_URL]
        } else {
            &[
                tac_secrets::INSTANCE_URL,
                tac_secrets::API_KEY,
                tac_secrets::USERNAME,
                tac_secrets::PASSWORD,
                tac_secrets::KNOX_TOKEN,
            ]
        };
        for &name in names {
            if let Err(e) = state.rt.secrets.set_tenant_secret(tenant.0, name, None).await {
                tracing::warn!(error = %e, secret = name, "could not delete a secret on disconnect");
            }
        }
        let d = db.dialect();
        let sql = format!(
            "UPDATE rmm_integrations SET is_active = {f}, connected_at = NULL, sync_error = NULL WHERE tenant = {} AND integration_id = {}",
            d.param(1, ColType::Uuid),
            d.param(2, ColType::Uuid),
            f = P(d).bool(false),
        );
        db.execute(&sql, &[&tenant.0.to_string(), &integ.integration_id.to_string()]).await?;
        Ok(Reply::NoContent)
    }

    /// Connection test; on success the integration becomes active.
    #[oai(path = "/tenants/:tenant/integrations/:provider/test", method = "post")]
    async fn test_integration(
        &self,
        auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        tenant: Path<Uuid>,
        provider: Path<String>,
        b: Json<TestBody>,
    ) -> R {
        tenant_write(&auth.0, tenant.0)?;
        provider_ok(&provider)?;
        let db = &state.rt.db;
        let integ = require_integration(db, tenant.0, &provider).await?;
        if provider.as_str() == tan::PROVIDER.slug() {
            return test_tanium(&state, tenant.0, integ.integration_id).await;
        }
        let client = match tac::build_client(&state.rt, tenant.0, integ.integration_id).await {
            Ok(c) => c,
            Err(e) => return Ok(Reply::Ok(Json(json!({ "success": false, "error": e.to_string() })))),
        };
        if let Some(code) = b.totp_code.as_deref().map(str::trim).filter(|c| !c.is_empty())
            && let Err(e) = client.login_with_totp(code).await
        {
            return Ok(Reply::Ok(Json(json!({ "success": false, "error": e.user_message() }))));
        }
        match client.test_connection().await {
            Ok(clients) => {
                let d = db.dialect();
                let sql = format!(
                    "UPDATE rmm_integrations SET is_active = {t}, connected_at = {}, sync_error = NULL WHERE tenant = {} AND integration_id = {}",
                    d.param(1, ColType::Timestamp),
                    d.param(2, ColType::Uuid),
                    d.param(3, ColType::Uuid),
                    t = P(d).bool(true),
                );
                db.execute(
                    &sql,
                    &[&fmt_ts(chrono::Utc::now()), &tenant.0.to_string(), &integ.integration_id.to_string()],
                )
                .await?;
                Ok(Reply::Ok(Json(json!({ "success": true, "clients": clients }))))
            }
            Err(rmm_shared::providers::tactical::error::TacticalError::TotpRequired) => {
                Ok(Reply::Ok(Json(json!({ "success": false, "totpRequired": true, "error": "TOTP code required" }))))
            }
            Err(e) => Ok(Reply::Ok(Json(json!({ "success": false, "error": e.user_message() })))),
        }
    }

    /// Organisation mappings of the integration.
    #[oai(path = "/tenants/:tenant/integrations/:provider/mappings", method = "get")]
    async fn list_mappings(
        &self,
        auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        tenant: Path<Uuid>,
        provider: Path<String>,
    ) -> R {
        tenant_read(&auth.0, tenant.0)?;
        provider_ok(&provider)?;
        let db = &state.rt.db;
        let integ = require_integration(db, tenant.0, &provider).await?;
        let d = db.dialect();
        let sql = format!(
            "SELECT {}, external_organization_id, external_organization_name, {}, \
             CAST(CASE WHEN auto_sync_assets THEN 1 ELSE 0 END AS BIGINT), {} \
             FROM rmm_organization_mappings WHERE tenant = {} AND integration_id = {} ORDER BY external_organization_name",
            d.text("mapping_id"),
            d.text("client_id"),
            d.text("default_contact_id"),
            d.param(1, ColType::Uuid),
            d.param(2, ColType::Uuid)
        );
        #[allow(clippy::type_complexity)]
        let rows: Vec<(String, String, Option<String>, Option<String>, i64, Option<String>)> =
            db.fetch(&sql, &[&tenant.0.to_string(), &integ.integration_id.to_string()]).await?;
        let list: Vec<Value> = rows
            .into_iter()
            .map(|(id, ext, name, client, auto, contact)| {
                json!({ "mapping_id": id, "external_organization_id": ext, "external_organization_name": name,
                        "client_id": client, "auto_sync_assets": auto != 0, "default_contact_id": contact })
            })
            .collect();
        Ok(Reply::Ok(Json(json!({ "mappings": list }))))
    }

    /// Change one organisation mapping.
    #[oai(path = "/tenants/:tenant/integrations/:provider/mappings/:mapping_id", method = "patch")]
    async fn patch_mapping(
        &self,
        auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        tenant: Path<Uuid>,
        provider: Path<String>,
        mapping_id: Path<Uuid>,
        b: Json<MappingPatch>,
    ) -> R {
        tenant_write(&auth.0, tenant.0)?;
        provider_ok(&provider)?;
        let db = &state.rt.db;
        let integ = require_integration(db, tenant.0, &provider).await?;
        let d = db.dialect();
        let mut sets = Vec::new();
        let mut binds: Vec<String> =
            vec![tenant.0.to_string(), integ.integration_id.to_string(), mapping_id.0.to_string()];
        let uuid_or_null = |n: usize| nullable(&P(d), n, "uuid");
        if let Some(c) = b.client_id {
            if let Some(c) = c {
                let exists: Vec<(i64,)> = db
                    .fetch(
                        &format!(
                            "SELECT CAST(1 AS BIGINT) FROM clients WHERE tenant = {} AND client_id = {}",
                            d.param(1, ColType::Uuid),
                            d.param(2, ColType::Uuid)
                        ),
                        &[&tenant.0.to_string(), &c.to_string()],
                    )
                    .await?;
                if exists.is_empty() {
                    return Err(ApiError::BadRequest(body(format!("client {c} does not exist in this tenant"))));
                }
            }
            binds.push(c.map(|c| c.to_string()).unwrap_or_default());
            sets.push(format!("client_id = {}", uuid_or_null(binds.len())));
        }
        if let Some(a) = b.auto_sync_assets {
            sets.push(format!("auto_sync_assets = {}", P(d).bool(a)));
        }
        if let Some(c) = b.default_contact_id {
            binds.push(c.map(|c| c.to_string()).unwrap_or_default());
            sets.push(format!("default_contact_id = {}", uuid_or_null(binds.len())));
        }
        if sets.is_empty() {
            return Err(ApiError::BadRequest(body(
                "nothing to change: give client_id, auto_sync_assets or default_contact_id",
            )));
        }
        let sql = format!(
            "UPDATE rmm_organization_mappings SET {} WHERE tenant = {} AND integration_id = {} AND mapping_id = {}",
            sets.join(", "),
            d.param(1, ColType::Uuid),
            d.param(2, ColType::Uuid),
            d.param(3, ColType::Uuid)
        );
        let b: Vec<&str> = binds.iter().map(String::as_str).collect();
        if db.execute(&sql, &b).await? == 0 {
            return Err(ApiError::NotFound(body("mapping not found")));
        }
        Ok(Reply::Ok(Json(json!({ "mapping_id": mapping_id.0, "updated": true }))))
    }

    /// What to paste into Tactical's alert template (creates the webhook secret on first use).
    #[oai(path = "/tenants/:tenant/integrations/tacticalrmm/webhook", method = "get")]
    async fn webhook_info(&self, auth: AdminAuth, state: Data<&Arc<AppState>>, tenant: Path<Uuid>) -> R {
        tenant_write(&auth.0, tenant.0)?;
        let secrets = &state.rt.secrets;
        let err = |e: rmm_shared::secrets::SecretError| {
            tracing::error!(error = %e, "webhook secret");
            ApiError::Unavailable(body("the secret store is unavailable"))
        };
        let secret = match secrets.get_tenant_secret(tenant.0, tac_secrets::WEBHOOK).await.map_err(err)? {
            Some(s) => s.expose_secret().to_owned(),
            None => {
                let mut bytes = [0u8; 24];
                rand::rng().fill_bytes(&mut bytes);
                let s = hex::encode(bytes);
                secrets
                    .set_tenant_secret(tenant.0, tac_secrets::WEBHOOK, Some(&SecretString::from(s.clone())))
                    .await
                    .map_err(err)?;
                s
            }
        };
        let settings = &state.rt.settings.http;
        let base = settings.public_url.clone().unwrap_or_else(|| format!("http://{}", settings.bind));
        let url = format!("{}/api/webhooks/tacticalrmm?tenant={}", base.trim_end_matches('/'), tenant.0);
        let template = json!({
            "agent_id": "{{agent.agent_id}}", "alert_id": "{{alert.id}}", "event": "trigger",
            "severity": "{{alert.severity}}", "message": "{{alert.message}}", "alert_time": "{{alert.alert_time}}",
            "client_id": "{{client.id}}", "site_id": "{{site.id}}", "alert_type": "{{alert.alert_type}}",
            "hostname": "{{agent.hostname}}"
        });
        let mut resolve = template.clone();
        resolve["event"] = json!("resolve");
        let headers = json!({ "Content-Type": "application/json", "X-Alga-Webhook-Secret": secret });
        Ok(Reply::Ok(Json(json!({
            "url": url,
            "method": "POST",
            "headerName": "X-Alga-Webhook-Secret",
            "secret": secret,
            "payloadTemplate": serde_json::to_string_pretty(&template).unwrap_or_default(),
            "resolvedPayloadTemplate": serde_json::to_string_pretty(&resolve).unwrap_or_default(),
            "headersJson": serde_json::to_string_pretty(&headers).unwrap_or_default(),
        }))))
    }

    /// Enqueue a job of the integration → 202 `{job_id}`.
    #[oai(path = "/tenants/:tenant/integrations/:provider/jobs/:kind", method = "post")]
    async fn enqueue_job(
        &self,
        auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        tenant: Path<Uuid>,
        provider: Path<String>,
        kind: Path<String>,
        b: Json<JobBody>,
    ) -> R {
        tenant_write(&auth.0, tenant.0)?;
        provider_ok(&provider)?;
        let entry = state.rt.registry.require_for(&kind, Some(&provider)).map_err(ApiError::from)?;
        if entry.scope != Scope::Integration {
            return Err(ApiError::BadRequest(body(format!(
                "{} is a service-wide job, not an integration job",
                kind.0
            ))));
        }
        let integ = require_integration(&state.rt.db, tenant.0, &provider).await?;
        let args = b.0.args.unwrap_or_else(|| json!({}));
        let req =
            JobRequest::for_integration(kind.0, tenant.0, provider.0, integ.integration_id, Trigger::Admin).args(args);
        let job_id = state.rt.queue.enqueue(req).await?;
        Ok(Reply::Accepted(Json(json!({ "job_id": job_id }))))
    }

    /// AlgaPSA's route: `{syncType: "full"|"incremental"}` with a tenant key in `x-api-key`.
    #[oai(path = "/integrations/rmm/:provider/sync", method = "post")]
    async fn alga_sync(
        &self,
        auth: AlgaApiKey,
        state: Data<&Arc<AppState>>,
        provider: Path<String>,
        b: Json<AlgaSyncBody>,
    ) -> R {
        provider_ok(&provider)?;
        let Some(tenant) = auth.0.tenant else {
            return Err(ApiError::BadRequest(body("this route needs a tenant-scoped key")));
        };
        tenant_write(&auth.0, tenant)?;
        let mode = match b.sync_type.as_str() {
            "full" | "incremental" => b.sync_type.clone(),
            _ => return Err(ApiError::BadRequest(body("syncType must be full or incremental"))),
        };
        let integ = require_integration(&state.rt.db, tenant, &provider).await?;
        let kind = rmm_jobs::providers::by_slug(&provider).map(|p| p.device_sync_kind()).unwrap_or_default();
        let req = JobRequest::for_integration(kind, tenant, provider.0, integ.integration_id, Trigger::Admin)
            .args(json!({ "mode": mode }));
        let job_id = state.rt.queue.enqueue(req).await?;
        Ok(Reply::Accepted(Json(json!({ "success": true, "job_id": job_id }))))
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
        provider_ok(&provider)?;
        let entry = state.rt.registry.require_for(&kind, Some(&provider)).map_err(ApiError::from)?;
        if entry.scope != Scope::Integration {
            return Err(ApiError::BadRequest(body(format!("{} is not an integration job", kind.0))));
        }
        let integ = require_integration(&state.rt.db, tenant.0, &provider).await?;
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
        provider_ok(&provider)?;
        let integ = require_integration(&state.rt.db, tenant.0, &provider).await?;
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
        provider_ok(&provider)?;
        let integ = require_integration(&state.rt.db, tenant.0, &provider).await?;
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

/// The Tanium connection test: the probe query. Success activates the integration; a failure
/// deactivates it and keeps the error in `sync_error` (AlgaPSA's behaviour, with the real text).
async fn test_tanium(state: &AppState, tenant: Uuid, integration: Uuid) -> R {
    let db = &state.rt.db;
    let result = match tan::build_client(&state.rt, tenant, integration).await {
        Ok((client, _)) => client.test_connection().await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let d = db.dialect();
    let (t, i) = (tenant.to_string(), integration.to_string());
    let (u1, u2) = (d.param(1, ColType::Uuid), d.param(2, ColType::Uuid));
    match &result {
        Ok(_) => {
            let sql = format!(
                "UPDATE rmm_integrations SET is_active = {}, connected_at = {}, sync_error = NULL \
                 WHERE tenant = {u1} AND integration_id = {u2}",
                P(d).bool(true),
                d.param(3, ColType::Timestamp)
            );
            db.execute(&sql, &[&t, &i, &fmt_ts(chrono::Utc::now())]).await?;
        }
        Err(e) => {
            let sql = format!(
                "UPDATE rmm_integrations SET is_active = {}, sync_error = {} WHERE tenant = {u1} AND integration_id = {u2}",
                P(d).bool(false),
                d.param(3, ColType::Text)
            );
            db.execute(&sql, &[&t, &i, e]).await?;
        }
    }
    Ok(Reply::Ok(Json(match result {
        Ok(groups) => json!({ "success": true, "computerGroupsVisible": groups > 0 }),
        Err(e) => json!({ "success": false, "error": e }),
    })))
}

async fn integration_view(state: &AppState, tenant: Uuid, provider: &str) -> Result<Value, ApiError> {
    let db = &state.rt.db;
    let secrets = &state.rt.secrets;
    let integ = require_integration(db, tenant, provider).await?;
    let get = |name: &'static str| async move {
        secrets.get_tenant_secret(tenant, name).await.ok().flatten().map(|s| s.expose_secret().to_owned())
    };
    let tanium = provider == tan::PROVIDER.slug();
    let instance_url = match &integ.instance_url {
        Some(u) => Some(u.clone()),
        None if tanium => get(tan_secrets::GATEWAY_URL).await,
        None => get(tac_secrets::INSTANCE_URL).await,
    };
    let credentials = if tanium {
        let token = get(tan_secrets::API_TOKEN).await;
        let t = tan::tanium_settings(&Value::Object(integ.settings.clone())).clone();
        let asset = match t.get("asset_api_url").and_then(Value::as_str) {
            Some(a) => Some(a.to_owned()),
            None => get(tan_secrets::ASSET_API_URL).await,
        };
        json!({
            "hasApiToken": token.is_some(),
            "apiTokenMasked": token.as_deref().map(mask).unwrap_or_default(),
            "assetApiUrl": asset,
            "useAssetApiFallback": t.get("use_asset_api_fallback") == Some(&Value::Bool(true)),
        })
    } else {
        let api_key = get(tac_secrets::API_KEY).await;
        let username = get(tac_secrets::USERNAME).await;
        let knox = get(tac_secrets::KNOX_TOKEN).await;
        json!({
            "hasApiKey": api_key.is_some(),
            "apiKeyMasked": api_key.as_deref().map(mask).unwrap_or_default(),
            "hasKnoxCredentials": username.is_some(),
            "username": username,
            "hasKnoxToken": knox.is_some(),
            "knoxTokenMasked": knox.as_deref().map(mask).unwrap_or_default(),
        })
    };
    let d = db.dialect();
    let t = tenant.to_string();
    let i = integ.integration_id.to_string();
    let (u1, u2) = (d.param(1, ColType::Uuid), d.param(2, ColType::Uuid));
    let scalar = |sql: String| {
        let (t, i) = (t.clone(), i.clone());
        async move { db.fetch::<(i64,)>(&sql, &[&t, &i]).await.map(|r| r.first().map(|x| x.0).unwrap_or(0)) }
    };
    let mapped = scalar(format!(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM rmm_organization_mappings WHERE tenant = {u1} AND integration_id = {u2}"
    ))
    .await?;
    let alerts = scalar(format!(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM rmm_alerts WHERE tenant = {u1} AND integration_id = {u2} AND status = 'active'"
    ))
    .await?;
    let devices: Vec<(i64,)> = db
        .fetch(
            &format!(
                "SELECT CAST(COUNT(*) AS BIGINT) FROM assets WHERE tenant = {} AND rmm_provider = {} AND rmm_device_id IS NOT NULL",
                d.param(1, ColType::Uuid),
                d.param(2, ColType::Text)
            ),
            &[&t, provider],
        )
        .await?;
    let by_status: Vec<(Option<String>, i64)> = db
        .fetch(
            &format!(
                "SELECT agent_status, CAST(COUNT(*) AS BIGINT) FROM assets WHERE tenant = {} AND rmm_provider = {} \
                 AND rmm_device_id IS NOT NULL GROUP BY agent_status",
                d.param(1, ColType::Uuid),
                d.param(2, ColType::Text)
            ),
            &[&t, provider],
        )
        .await?;
    let mut statuses = Map::new();
    for (s, n) in by_status {
        statuses.insert(s.unwrap_or_else(|| "unknown".into()), json!(n));
    }
    Ok(json!({
        "provider": provider,
        "integration_id": integ.integration_id,
        "config": {
            "instanceUrl": instance_url,
            "authMode": if tanium { json!("api_token") } else { integ.settings.get("auth_mode").cloned().unwrap_or(json!("api_key")) },
            "isActive": integ.is_active,
            "connectedAt": integ.connected_at,
            "lastSyncAt": integ.last_sync_at,
            "syncError": integ.sync_error,
        },
        "settings": Value::Object(integ.settings.clone()),
        "credentials": credentials,
        "summary": {
            "mappedOrganizations": mapped,
            "syncedDevices": devices.first().map(|x| x.0).unwrap_or(0),
            "activeAlerts": alerts,
            "byAgentStatus": Value::Object(statuses),
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_like_algapsa() {
        assert_eq!(mask(""), "");
        assert_eq!(mask("abc"), "•••");
        assert_eq!(mask("api_abcdefghijklmnop"), format!("{}mnop", "•".repeat(16)));
    }
}
