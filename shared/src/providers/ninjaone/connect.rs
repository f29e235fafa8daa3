//! The NinjaOne client of a tenant's integration, built from its row (instance URL, settings),
//! the tenant's secrets and the service's upstream settings. The admin API's connection test and
//! the jobs build it here.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use uuid::Uuid;

use super::client::{NinjaClient, NinjaConfig};
use super::error::NinjaError;
use super::region_url;
use super::secrets;
use super::token::{Grant, OAuthApp, TokenStore, Tokens, needs_reconnect};
use crate::config::UpstreamSettings;
use crate::db::Db;
use crate::http::{HttpClient, RateLimit};
use crate::secrets::{SecretError, SecretStore};
use crate::upstream_calls::CallCounter;

/// Why no client could be built.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The integration row is gone.
    #[error("the NinjaOne integration does not exist")]
    NoIntegration,
    /// A tenant secret could not be read.
    #[error("secret {name}: {source}")]
    Secret { name: &'static str, source: SecretError },
    /// Missing settings or credentials, a refused refresh token, or a client that cannot be made.
    #[error(transparent)]
    Ninja(#[from] NinjaError),
}

impl ConnectError {
    /// Worth another attempt.
    pub fn is_transient(&self) -> bool {
        match self {
            ConnectError::NoIntegration => false,
            ConnectError::Secret { .. } => true,
            ConnectError::Ninja(e) => e.is_transient(),
        }
    }

    /// What a connection test reports (and a job records).
    pub fn message(&self) -> String {
        match self {
            ConnectError::Ninja(e) if e.is_transient() => e.diagnostic(),
            other => other.to_string(),
        }
    }
}

/// The instance URL of an integration: the row's `instance_url`, else the URL of
/// `settings.region`, else the US instance.
pub fn instance_url(url: Option<String>, settings: &Value) -> String {
    url.filter(|u| !u.trim().is_empty()).unwrap_or_else(|| {
        settings.get("region").and_then(Value::as_str).and_then(region_url).unwrap_or(super::REGIONS[0].1).to_owned()
    })
}

/// The OAuth app of a tenant: `ninjaone_client_id` and `ninjaone_client_secret`.
pub async fn oauth_app(store: &SecretStore, tenant: Uuid) -> Result<OAuthApp, ConnectError> {
    let get = |name: &'static str| async move {
        store
            .get_tenant_secret(tenant, name)
            .await
            .map(|s| s.map(|v| v.expose_secret().trim().to_owned()).filter(|v| !v.is_empty()))
            .map_err(|source| ConnectError::Secret { name, source })
    };
    let (Some(id), Some(secret)) = (get(secrets::CLIENT_ID).await?, get(secrets::CLIENT_SECRET).await?) else {
        return Err(NinjaError::NotConfigured("the OAuth client id and client secret are not set".into()).into());
    };
    Ok(OAuthApp { client_id: id, client_secret: SecretString::from(secret) })
}

/// The client of an integration read with [`crate::integrations::config`] (`None`: it does not
/// exist). An integration whose refresh token was refused is refused here too
/// ([`NinjaError::ReconnectRequired`]) without calling NinjaOne.
pub async fn client(
    db: &Db,
    store: &SecretStore,
    tenant: Uuid,
    integration: Uuid,
    config: Option<(Option<String>, Value)>,
    upstream: &UpstreamSettings,
    calls: CallCounter,
) -> Result<NinjaClient, ConnectError> {
    let Some((url, settings)) = config else {
        return Err(ConnectError::NoIntegration);
    };
    if needs_reconnect(&settings) {
        return Err(NinjaError::ReconnectRequired.into());
    }
    let app = oauth_app(store, tenant).await?;
    let mut config = NinjaConfig::new(instance_url(url, &settings));
    config.http.rate_limit =
        RateLimit::per_second(upstream.ninjaone_requests_per_second, upstream.ninjaone_burst.max(1));
    config.page_size = upstream.ninjaone_page_size;
    let base = super::normalize_base_url(&config.base_url)
        .and_then(|u| url::Url::parse(&u).ok())
        .ok_or_else(|| NinjaError::NotConfigured(format!("{:?} is not a NinjaOne URL", config.base_url)))?;
    let http = HttpClient::new(config.http.clone()).map_err(NinjaError::from)?.with_call_counter(calls);
    let token_store = TokenStore { db: db.clone(), secrets: store.clone(), tenant, integration };
    let tokens = Arc::new(Tokens::new(token_store, app, Grant::from_settings(&settings), base));
    Ok(NinjaClient::new(config, http, tokens)?)
}
