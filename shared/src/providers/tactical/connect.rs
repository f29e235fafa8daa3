//! The Tactical client of a tenant's integration, built from its row (instance URL, settings)
//! and the tenant's secrets. The admin API's connection test and the jobs build it here.

use std::sync::Arc;

use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use uuid::Uuid;

use super::client::{TacticalAuth, TacticalClient, TacticalConfig, TokenSink};
use super::error::TacticalError;
use super::secrets;
use crate::http::HttpClient;
use crate::secrets::{SecretError, SecretStore};
use crate::upstream_calls::CallCounter;

/// Why no client could be built.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The integration row is gone.
    #[error("the Tactical RMM integration does not exist")]
    NoIntegration,
    /// A tenant secret could not be read.
    #[error("secret {name}: {source}")]
    Secret { name: &'static str, source: SecretError },
    /// Missing credentials or URL, or a client that cannot be made.
    #[error(transparent)]
    Tactical(#[from] TacticalError),
}

impl ConnectError {
    /// Worth another attempt (a secret store that did not answer, a transient Tactical error).
    pub fn is_transient(&self) -> bool {
        match self {
            ConnectError::NoIntegration => false,
            ConnectError::Secret { .. } => true,
            ConnectError::Tactical(e) => e.retry_after().is_some() || e.is_transient(),
        }
    }

    /// What a connection test reports (and a job records): Tactical's own message, its diagnostic
    /// for a transient error, the wait for a rate limit.
    pub fn message(&self) -> String {
        match self {
            ConnectError::Tactical(e) => match e.retry_after() {
                Some(after) => format!("rate limited upstream, retry after {after:?}: {}", e.user_message()),
                None if e.is_transient() => e.diagnostic(),
                None => e.user_message(),
            },
            other => other.to_string(),
        }
    }
}

/// The client of an integration read with [`crate::integrations::config`] (`None`: it does not
/// exist). Instance URL from the row, else the `tacticalrmm_instance_url` secret; auth mode from
/// `settings.auth_mode` (default `api_key`); credentials from the tenant secrets. A Knox token
/// obtained with the client is written back to `tacticalrmm_knox_token`. Its calls are counted
/// by `calls`.
pub async fn client(
    secrets: &SecretStore,
    tenant: Uuid,
    config: Option<(Option<String>, Value)>,
    calls: CallCounter,
) -> Result<TacticalClient, ConnectError> {
    let Some((url, settings)) = config else {
        return Err(ConnectError::NoIntegration);
    };
    let secret = |name: &'static str| async move {
        secrets.get_tenant_secret(tenant, name).await.map_err(|source| ConnectError::Secret { name, source })
    };
    let url = match url.filter(|u| !u.trim().is_empty()) {
        Some(u) => u,
        None => secret(secrets::INSTANCE_URL)
            .await?
            .map(|s| s.expose_secret().to_owned())
            .ok_or(TacticalError::InstanceUrlNotConfigured)?,
    };
    let auth = match settings.get("auth_mode").and_then(Value::as_str).unwrap_or("api_key") {
        "knox" => {
            let (Some(user), Some(password)) = (secret(secrets::USERNAME).await?, secret(secrets::PASSWORD).await?)
            else {
                return Err(TacticalError::KnoxCredentialsNotConfigured.into());
            };
            TacticalAuth::Knox {
                username: user.expose_secret().to_owned(),
                password,
                token: secret(secrets::KNOX_TOKEN).await?,
            }
        }
        _ => TacticalAuth::ApiKey(secret(secrets::API_KEY).await?.ok_or(TacticalError::ApiKeyNotConfigured)?),
    };
    let config = TacticalConfig::new(url, auth);
    let http = HttpClient::new(config.http.clone()).map_err(TacticalError::from)?.with_call_counter(calls);
    let client = TacticalClient::with_http(config, http)?;
    let sink = KnoxTokenWriter { secrets: secrets.clone(), tenant };
    Ok(client.with_token_sink(Arc::new(sink)))
}

/// Stores a Knox token obtained by a client in the tenant secret, so the next one reuses it.
struct KnoxTokenWriter {
    secrets: SecretStore,
    tenant: Uuid,
}

impl TokenSink for KnoxTokenWriter {
    fn on_token_refreshed<'a>(&'a self, token: &'a SecretString) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Err(e) = self.secrets.set_tenant_secret(self.tenant, secrets::KNOX_TOKEN, Some(token)).await {
                tracing::warn!(error = %e, "could not store the new Knox token; the next job logs in again");
            }
        })
    }
}
