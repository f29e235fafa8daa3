//! The Level client of a tenant's integration, built from its row (API URL), the tenant's API key
//! secret and the service's upstream settings. The admin API's connection test and the jobs build
//! it here.

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use uuid::Uuid;

use super::client::{LevelClient, LevelConfig};
use super::error::LevelError;
use super::{DEFAULT_BASE_URL, secrets};
use crate::config::UpstreamSettings;
use crate::http::{HttpClient, RateLimit};
use crate::secrets::{SecretError, SecretStore};
use crate::upstream_calls::CallCounter;

/// Why no client could be built.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("the Level integration does not exist")]
    NoIntegration,
    #[error("secret {name}: {source}")]
    Secret { name: &'static str, source: SecretError },
    #[error(transparent)]
    Level(#[from] LevelError),
}

impl ConnectError {
    /// Worth another attempt.
    pub fn is_transient(&self) -> bool {
        match self {
            ConnectError::NoIntegration => false,
            ConnectError::Secret { .. } => true,
            ConnectError::Level(e) => e.retry_after().is_some() || e.is_transient(),
        }
    }

    /// What a connection test reports (and a job records).
    pub fn message(&self) -> String {
        match self {
            ConnectError::Level(e) => match e.retry_after() {
                Some(after) => format!("rate limited upstream, retry after {after:?}: {e}"),
                None if e.is_transient() => e.diagnostic(),
                None => e.user_message(),
            },
            other => other.to_string(),
        }
    }
}

/// The API URL of an integration row: its `instance_url`, else Level's.
pub fn base_url(instance_url: Option<&str>) -> String {
    instance_url.map(str::trim).filter(|u| !u.is_empty()).unwrap_or(DEFAULT_BASE_URL).to_owned()
}

/// The client of an integration read with [`crate::integrations::config`] (`None`: it does not
/// exist). URL: the row's, else the `levelio_instance_url` secret, else Level's. Key: the `levelio_api_key` secret. Rate limit: `upstream.levelio_requests_per_second`
/// (burst twice that), shared per Level host by every client of the process (and every process
/// with the Redis limiter). Calls are counted by `calls`.
pub async fn client(
    secrets: &SecretStore,
    tenant: Uuid,
    config: Option<(Option<String>, Value)>,
    upstream: &UpstreamSettings,
    calls: CallCounter,
) -> Result<LevelClient, ConnectError> {
    let Some((url, _settings)) = config else {
        return Err(ConnectError::NoIntegration);
    };
    let url = match url.filter(|u| !u.trim().is_empty()) {
        Some(u) => Some(u),
        None => secrets
            .get_tenant_secret(tenant, secrets::INSTANCE_URL)
            .await
            .map_err(|source| ConnectError::Secret { name: secrets::INSTANCE_URL, source })?
            .map(|u| u.expose_secret().to_owned()),
    };
    let key = secrets
        .get_tenant_secret(tenant, secrets::API_KEY)
        .await
        .map_err(|source| ConnectError::Secret { name: secrets::API_KEY, source })?
        .map(|k| k.expose_secret().trim().to_owned())
        .filter(|k| !k.is_empty())
        .ok_or(LevelError::ApiKeyNotConfigured)?;
    let mut config = LevelConfig::new(base_url(url.as_deref()), SecretString::from(key));
    let rps = upstream.levelio_requests_per_second;
    config.http.rate_limit = RateLimit::per_second(rps, rps.saturating_mul(2));
    let http = HttpClient::new(config.http.clone()).map_err(LevelError::from)?.with_call_counter(calls);
    Ok(LevelClient::with_http(config, http)?)
}
