//! Tenants' RMM integrations: save settings and credentials (merged with what is saved), the view
//! with masked secrets and the summary counts, the connection test, disconnect, organisation
//! mappings, and the standalone tenants and clients. The admin API, the CLI and the demo call
//! these functions; what differs between providers lives in each provider's folder
//! (`providers/<provider>/integration.rs`) behind [`ProviderIntegration`], found with [`crate::providers::integration`].

pub mod connection;
mod error;
pub mod lifecycle;
pub mod mappings;
pub mod save;
pub mod store;
pub mod tenants;
pub mod view;

use futures::future::BoxFuture;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::config::HttpSettings;
use crate::providers::{Provider, integration as parts};
use crate::secrets::SecretStore;

pub use connection::{Connection, TestOutcome, test};
pub use error::IntegrationError;
pub use mappings::{Mapping, MappingPatch, mappings, patch_mapping};
pub use save::{IntegrationInput, save};
pub use store::{Integration, config, disconnect, load, require};
pub use tenants::{put_client, put_tenant, tenant_exists};
pub use view::{IntegrationView, Summary, mask, summary, view};

/// The providers rmm-sync implements, in [`Provider::ALL`] order.
pub fn providers() -> Vec<Provider> {
    Provider::ALL.into_iter().filter(|p| parts(*p).is_some()).collect()
}

/// The implemented provider named `slug`.
pub fn provider(slug: &str) -> Result<Provider, IntegrationError> {
    Provider::from_slug(slug)
        .filter(|p| parts(*p).is_some())
        .ok_or_else(|| IntegrationError::UnknownProvider(slug.to_owned()))
}

fn parts_of(provider: Provider) -> Result<&'static dyn ProviderIntegration, IntegrationError> {
    parts(provider).ok_or_else(|| IntegrationError::UnknownProvider(provider.slug().to_owned()))
}

/// What one provider adds to the provider-neutral integration functions.
pub trait ProviderIntegration: Send + Sync {
    /// Refuses the fields of an [`IntegrationInput`] that belong to other providers.
    fn refuse_foreign(&self, input: &IntegrationInput) -> Result<(), IntegrationError>;

    /// Applies the input's fields that belong in the settings before `settings` is merged
    /// (Tactical's `auth_mode`). True when the connection changed.
    fn before_merge(
        &self,
        input: &IntegrationInput,
        settings: &mut Map<String, Value>,
    ) -> Result<bool, IntegrationError>;

    /// Refuses merged settings the provider cannot run with.
    fn check_settings(&self, settings: &Map<String, Value>) -> Result<(), IntegrationError>;

    /// The instance URL as saved, `None` when `raw` is not a usable URL.
    fn normalize_url(&self, raw: &str) -> Option<String>;

    /// Writes the input's credentials to the tenant secrets and completes the settings. `url` is
    /// the normalised instance URL being saved. True when the connection changed.
    fn write<'a>(
        &'a self,
        secrets: &'a SecretStore,
        tenant: Uuid,
        input: &'a IntegrationInput,
        url: Option<&'a str>,
        settings: &'a mut Map<String, Value>,
    ) -> BoxFuture<'a, Result<bool, IntegrationError>>;

    /// The tenant secrets deleted on disconnect.
    fn secrets(&self) -> &'static [&'static str];

    /// The secret holding the instance URL when the row has none.
    fn url_secret(&self) -> &'static str;

    /// The instance URL the view shows when neither the row nor [`Self::url_secret`] has one (a
    /// provider with a fixed public API host).
    fn default_instance_url(&self) -> Option<&'static str> {
        None
    }

    /// The view's `authMode`.
    fn auth_mode(&self, settings: &Map<String, Value>) -> Value;

    /// The view's `credentials`: which secrets are set, masked.
    fn credentials<'a>(
        &'a self,
        secrets: &'a SecretStore,
        tenant: Uuid,
        settings: &'a Map<String, Value>,
    ) -> BoxFuture<'a, Value>;

    /// The connection test of an integration read with [`config`].
    fn test<'a>(
        &'a self,
        conn: &'a Connection<'a>,
        tenant: Uuid,
        config: Option<(Option<String>, Value)>,
        totp_code: Option<&'a str>,
    ) -> BoxFuture<'a, TestOutcome>;

    /// Whether a failed test makes the integration inactive and keeps the error in `sync_error`.
    fn failed_test_deactivates(&self) -> bool;

    /// What to paste into the RMM to send its webhooks here (URL, headers with the tenant's
    /// webhook secret, bodies), the secret made on first use; `None` for a provider whose
    /// webhooks rmm-sync does not take.
    fn webhook_setup<'a>(
        &'a self,
        _secrets: &'a SecretStore,
        _tenant: Uuid,
        _http: &'a HttpSettings,
    ) -> Option<BoxFuture<'a, Result<Value, IntegrationError>>> {
        None
    }

    /// OAuth providers: the provider's authorize URL for the tenant (with a signed `state` naming
    /// the tenant), which sends the admin's browser back to `redirect_uri` with a code. `None`
    /// for a provider without an OAuth step.
    fn oauth_authorize<'a>(
        &'a self,
        _conn: &'a Connection<'a>,
        _tenant: Uuid,
        _redirect_uri: &'a str,
    ) -> Option<BoxFuture<'a, Result<String, IntegrationError>>> {
        None
    }

    /// OAuth providers: checks the `state` made by [`ProviderIntegration::oauth_authorize`],
    /// exchanges the code for tokens and stores them; returns the tenant.
    fn oauth_callback<'a>(
        &'a self,
        _conn: &'a Connection<'a>,
        _state: &'a str,
        _code: &'a str,
        _redirect_uri: &'a str,
    ) -> Option<BoxFuture<'a, Result<Uuid, IntegrationError>>> {
        None
    }
}

/// Where an OAuth provider sends the admin's browser back:
/// `<http.public_url>/api/integrations/<provider>/callback`.
pub fn oauth_redirect_uri(http: &HttpSettings, provider: Provider) -> String {
    let base = http.public_url.clone().unwrap_or_else(|| format!("http://{}", http.bind));
    format!("{}/api/integrations/{}/callback", base.trim_end_matches('/'), provider.slug())
}

/// [`ProviderIntegration::oauth_authorize`] of `provider`.
pub async fn oauth_authorize(
    conn: &Connection<'_>,
    tenant: Uuid,
    provider: Provider,
    http: &HttpSettings,
) -> Result<String, IntegrationError> {
    let redirect = oauth_redirect_uri(http, provider);
    match parts_of(provider)?.oauth_authorize(conn, tenant, &redirect) {
        Some(f) => f.await,
        None => Err(IntegrationError::NoOAuth(provider)),
    }
}

/// [`ProviderIntegration::oauth_callback`] of `provider`.
pub async fn oauth_callback(
    conn: &Connection<'_>,
    provider: Provider,
    state: &str,
    code: &str,
    http: &HttpSettings,
) -> Result<Uuid, IntegrationError> {
    let redirect = oauth_redirect_uri(http, provider);
    match parts_of(provider)?.oauth_callback(conn, state, code, &redirect) {
        Some(f) => f.await,
        None => Err(IntegrationError::NoOAuth(provider)),
    }
}

/// [`ProviderIntegration::webhook_setup`] of `provider`.
pub async fn webhook_setup(
    secrets: &SecretStore,
    tenant: Uuid,
    provider: Provider,
    http: &HttpSettings,
) -> Result<Value, IntegrationError> {
    match parts_of(provider)?.webhook_setup(secrets, tenant, http) {
        Some(setup) => setup.await,
        None => Err(IntegrationError::NoWebhook(provider)),
    }
}

/// A tenant secret's value, `None` when unset or unreadable.
pub(crate) async fn secret_text(secrets: &SecretStore, tenant: Uuid, name: &str) -> Option<String> {
    use secrecy::ExposeSecret;
    secrets.get_tenant_secret(tenant, name).await.ok().flatten().map(|s| s.expose_secret().to_owned())
}
