//! The Tanium client of a tenant's integration, built from its row (Gateway URL, settings), the
//! tenant's secrets and the service's upstream settings. The admin API's connection test and the
//! jobs build it here.

use secrecy::ExposeSecret;
use serde_json::Value;
use uuid::Uuid;

use super::client::{TaniumClient, TaniumConfig};
use super::error::TaniumError;
use super::secrets;
use super::sync::SyncOptions;
use crate::config::UpstreamSettings;
use crate::http::RateLimit;
use crate::secrets::{SecretError, SecretStore};
use crate::upstream_calls::CallCounter;

/// Why no client could be built.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The integration row is gone.
    #[error("the Tanium integration does not exist")]
    NoIntegration,
    /// A tenant secret could not be read.
    #[error("secret {name}: {source}")]
    Secret { name: &'static str, source: SecretError },
    /// No Gateway URL or token, or a client that cannot be made.
    #[error(transparent)]
    Tanium(#[from] TaniumError),
}

impl ConnectError {
    /// Worth another attempt (a secret store that did not answer, a transient Tanium error).
    pub fn is_transient(&self) -> bool {
        match self {
            ConnectError::NoIntegration => false,
            ConnectError::Secret { .. } => true,
            ConnectError::Tanium(e) => e.retry_after().is_some() || e.is_transient(),
        }
    }

    /// What a connection test reports (and a job records): Tanium's message, its diagnostic for a
    /// transient error, the wait for a rate limit.
    pub fn message(&self) -> String {
        match self {
            ConnectError::Tanium(e) => match e.retry_after() {
                Some(after) => format!("rate limited upstream, retry after {after:?}: {e}"),
                None if e.is_transient() => e.diagnostic(),
                None => e.to_string(),
            },
            other => other.to_string(),
        }
    }
}

/// `settings.provider_settings.tanium`, or `null`.
pub fn tanium_settings(settings: &Value) -> &Value {
    static EMPTY: Value = Value::Null;
    settings.pointer("/provider_settings/tanium").unwrap_or(&EMPTY)
}

/// The client of an integration read with [`crate::integrations::config`] (`None`: it does not
/// exist) and its sync options. Gateway URL: the row's `instance_url`, else the
/// `tanium_gateway_url` secret. Token: `tanium_api_token`. Asset API URL:
/// `settings.provider_settings.tanium.asset_api_url`, else the `tanium_asset_api_url` secret.
/// Rate limit and page size from `upstream`; its calls are counted by `calls`.
pub async fn client(
    secrets: &SecretStore,
    tenant: Uuid,
    config: Option<(Option<String>, Value)>,
    upstream: &UpstreamSettings,
    calls: CallCounter,
) -> Result<(TaniumClient, SyncOptions), ConnectError> {
    let Some((url, settings)) = config else {
        return Err(ConnectError::NoIntegration);
    };
    let secret = |name: &'static str| async move {
        secrets
            .get_tenant_secret(tenant, name)
            .await
            .map(|s| s.map(|v| v.expose_secret().trim().to_owned()).filter(|v| !v.is_empty()))
            .map_err(|source| ConnectError::Secret { name, source })
    };
    let gateway = match url.filter(|u| !u.trim().is_empty()) {
        Some(u) => u,
        None => secret(secrets::GATEWAY_URL).await?.ok_or(TaniumError::NotConfigured)?,
    };
    let token = secret(secrets::API_TOKEN).await?.ok_or(TaniumError::NotConfigured)?;
    let tanium = tanium_settings(&settings);
    let asset = match tanium.get("asset_api_url").and_then(Value::as_str).filter(|s| !s.trim().is_empty()) {
        Some(a) => Some(a.to_owned()),
        None => secret(secrets::ASSET_API_URL).await?,
    };
    let options =
        SyncOptions { use_asset_api_fallback: tanium.get("use_asset_api_fallback") == Some(&Value::Bool(true)) };
    let mut config = TaniumConfig::new(gateway, token.into());
    config.asset_api_url = asset;
    let rps = upstream.tanium_requests_per_second;
    config.http.rate_limit = RateLimit::per_second(rps, rps.saturating_mul(2));
    config.page_size = i64::from(upstream.tanium_page_size.clamp(1, 1000));
    Ok((TaniumClient::new(config)?.with_call_counter(calls), options))
}
