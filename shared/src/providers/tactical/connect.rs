//! The Tactical client of a tenant's integration, built from its row (instance URL, settings)
//! and the tenant's secrets. The admin API's connection test and the jobs build it here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use uuid::Uuid;

use super::client::{LoginGate, TacticalAuth, TacticalClient, TacticalConfig, TokenSink};
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
/// `settings.auth_mode` (default `api_key`); credentials from the tenant secrets. In Knox mode the
/// saved token (`tacticalrmm_knox_token`) is used, a token obtained with the client is written
/// back there, the secret is read again before any login (another job or process may have saved a
/// newer token), and the clients of one account in this process share one [`LoginGate`]. Its
/// calls are counted by `calls`.
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
    let knox_user = match &config.auth {
        TacticalAuth::Knox { username, .. } => Some(username.trim().to_owned()),
        TacticalAuth::ApiKey(_) => None,
    };
    let mut client = TacticalClient::with_http(config, http)?;
    if let Some(user) = knox_user {
        let gate = login_gate(tenant, client.base_url(), &user);
        client = client.with_login_gate(gate);
    }
    let sink = KnoxTokenWriter { secrets: secrets.clone(), tenant };
    Ok(client.with_token_sink(Arc::new(sink)))
}

/// The [`LoginGate`] of a Knox account (tenant, instance, username) in this process: the clients
/// of every job of that account share it, so they log in one at a time (the others reuse the
/// token) and none logs in while Tactical's login throttle, once hit, lasts.
fn login_gate(tenant: Uuid, base_url: &str, username: &str) -> Arc<LoginGate> {
    static GATES: OnceLock<Mutex<HashMap<String, Arc<LoginGate>>>> = OnceLock::new();
    let key = format!("{tenant}\n{base_url}\n{username}");
    let mut gates = GATES.get_or_init(Mutex::default).lock().unwrap_or_else(|e| e.into_inner());
    gates.entry(key).or_default().clone()
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
                return;
            }
            // The chain must give the token back, or every job logs in again (and Tactical
            // throttles logins): an earlier provider of the read chain may shadow the written one.
            match self.secrets.get_tenant_secret(self.tenant, secrets::KNOX_TOKEN).await {
                Ok(Some(read)) if read.expose_secret() == token.expose_secret() => {}
                Ok(_) => tracing::warn!(
                    tenant = %self.tenant,
                    secret = secrets::KNOX_TOKEN,
                    "the new Knox token was stored, but the secret chain reads another value (an earlier provider of \
                     SECRET_READ_CHAIN, such as an environment variable, shadows it): every job will log in again \
                     and Tactical throttles logins; remove the other value"
                ),
                Err(e) => tracing::warn!(error = %e, "could not read the Knox token back"),
            }
        })
    }

    fn stored_token(&self) -> BoxFuture<'_, Option<SecretString>> {
        Box::pin(async move {
            match self.secrets.get_tenant_secret(self.tenant, secrets::KNOX_TOKEN).await {
                Ok(token) => token,
                Err(e) => {
                    tracing::warn!(error = %e, "could not read the saved Knox token; logging in");
                    None
                }
            }
        })
    }
}
