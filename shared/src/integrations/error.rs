//! What the integration functions refuse, and how the API answers each refusal.

use crate::db::DbError;
use crate::providers::Provider;
use crate::secrets::SecretError;

#[derive(Debug, thiserror::Error)]
pub enum IntegrationError {
    /// Not a provider rmm-sync implements.
    #[error("unknown provider {0:?}; providers: {list}", list = super::providers().iter().map(|p| p.slug()).collect::<Vec<_>>().join(", "))]
    UnknownProvider(String),
    #[error("tenant not found")]
    TenantNotFound,
    /// The tenant has no integration with this provider.
    #[error("no {0} integration for this tenant")]
    NotFound(Provider),
    #[error("mapping not found")]
    MappingNotFound,
    /// The provider sends no webhooks rmm-sync takes.
    #[error("{0} integrations take no webhooks")]
    NoWebhook(Provider),
    /// The provider has no OAuth authorization step.
    #[error("{0} integrations have no OAuth authorization")]
    NoOAuth(Provider),
    /// Bad input; the message says what is wrong.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("secret store: {0}")]
    SecretStore(#[from] SecretError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl IntegrationError {
    /// The HTTP status the admin API answers with (the CLI prints it too).
    pub fn http_status(&self) -> u16 {
        match self {
            IntegrationError::UnknownProvider(_)
            | IntegrationError::TenantNotFound
            | IntegrationError::NotFound(_)
            | IntegrationError::MappingNotFound
            | IntegrationError::NoWebhook(_)
            | IntegrationError::NoOAuth(_) => 404,
            IntegrationError::Invalid(_) => 400,
            IntegrationError::Conflict(_) => 409,
            IntegrationError::SecretStore(_) | IntegrationError::Db(_) => 503,
        }
    }

    /// The message a caller sees: the store's own error stays in the logs.
    pub fn public_message(&self) -> String {
        match self {
            IntegrationError::SecretStore(_) => "the secret store is unavailable".into(),
            IntegrationError::Db(_) => "the database is unavailable; try again later".into(),
            other => other.to_string(),
        }
    }
}
