//! The integration row (`rmm_integrations`): load, upsert, connection state, disconnect.

use serde_json::{Map, Value};
use uuid::Uuid;

use super::IntegrationError;
use crate::db::sql::{ColType, P, fmt_ts, ts_out};
use crate::db::{Db, DbError};
use crate::providers::Provider;
use crate::secrets::SecretStore;

/// A tenant's integration row.
#[derive(Debug, Clone)]
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
pub async fn load(db: &Db, tenant: Uuid, provider: Provider) -> Result<Option<Integration>, DbError> {
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
        db.fetch(&sql, &[&tenant.to_string(), provider.slug()]).await?;
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

/// The tenant's integration with `provider`; [`IntegrationError::NotFound`] when it has none.
pub async fn require(db: &Db, tenant: Uuid, provider: Provider) -> Result<Integration, IntegrationError> {
    load(db, tenant, provider).await?.ok_or(IntegrationError::NotFound(provider))
}

/// An integration's instance URL and settings (`{}` when it has none); `None` when the
/// integration does not exist. What the provider clients are built from.
pub async fn config(db: &Db, tenant: Uuid, integration: Uuid) -> Result<Option<(Option<String>, Value)>, DbError> {
    let d = db.dialect();
    let sql = format!(
        "SELECT instance_url, {} FROM rmm_integrations WHERE tenant = {} AND integration_id = {}",
        d.text("settings"),
        d.param(1, ColType::Uuid),
        d.param(2, ColType::Uuid)
    );
    let rows: Vec<(Option<String>, Option<String>)> =
        db.fetch(&sql, &[&tenant.to_string(), &integration.to_string()]).await?;
    Ok(rows.into_iter().next().map(|(url, settings)| {
        let settings =
            settings.and_then(|s| serde_json::from_str(&s).ok()).unwrap_or_else(|| Value::Object(Default::default()));
        (url, settings)
    }))
}

/// Inserts the integration, or updates its URL and settings. A new integration is inactive;
/// `reconnect` makes an existing one inactive too (until its next successful test).
pub(crate) async fn upsert(
    db: &Db,
    tenant: Uuid,
    provider: Provider,
    integration_id: Uuid,
    url: Option<&str>,
    settings: &Map<String, Value>,
    reconnect: bool,
) -> Result<(), DbError> {
    let d = db.dialect();
    let now = fmt_ts(chrono::Utc::now());
    let settings_s = Value::Object(settings.clone()).to_string();
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
    let binds: [&str; 6] =
        [&tenant.to_string(), &integration_id.to_string(), provider.slug(), url.unwrap_or_default(), &settings_s, &now];
    db.execute(&sql, &binds).await?;
    Ok(())
}

/// A successful connection test: active, connected now, no sync error, and a token lifecycle
/// marked `reconnect_required` active again (the provider took the credentials).
pub(crate) async fn mark_connected(db: &Db, tenant: Uuid, integration: Uuid) -> Result<(), DbError> {
    if super::lifecycle::clear_reconnect_required(db, tenant, integration).await? {
        tracing::info!(%tenant, %integration, "connection test succeeded: reconnect_required cleared");
    }
    let d = db.dialect();
    let sql = format!(
        "UPDATE rmm_integrations SET is_active = {}, connected_at = {}, sync_error = NULL \
         WHERE tenant = {} AND integration_id = {}",
        P(d).bool(true),
        d.param(3, ColType::Timestamp),
        d.param(1, ColType::Uuid),
        d.param(2, ColType::Uuid),
    );
    db.execute(&sql, &[&tenant.to_string(), &integration.to_string(), &fmt_ts(chrono::Utc::now())]).await?;
    Ok(())
}

/// A failed connection test that deactivates: inactive, the error in `sync_error`.
pub(crate) async fn mark_failed(db: &Db, tenant: Uuid, integration: Uuid, error: &str) -> Result<(), DbError> {
    let d = db.dialect();
    let sql = format!(
        "UPDATE rmm_integrations SET is_active = {}, sync_error = {} WHERE tenant = {} AND integration_id = {}",
        P(d).bool(false),
        d.param(3, ColType::Text),
        d.param(1, ColType::Uuid),
        d.param(2, ColType::Uuid),
    );
    db.execute(&sql, &[&tenant.to_string(), &integration.to_string(), error]).await?;
    Ok(())
}

/// Disconnect: the provider's credential secrets deleted (the webhook secret is kept), the
/// integration inactive, not connected, no sync error. Mappings and assets stay.
pub async fn disconnect(
    db: &Db,
    secrets: &SecretStore,
    tenant: Uuid,
    provider: Provider,
) -> Result<(), IntegrationError> {
    let parts = super::parts_of(provider)?;
    let integ = require(db, tenant, provider).await?;
    for &name in parts.secrets() {
        if let Err(e) = secrets.set_tenant_secret(tenant, name, None).await {
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
    db.execute(&sql, &[&tenant.to_string(), &integ.integration_id.to_string()]).await?;
    Ok(())
}
