//! Saving an integration's settings and credentials, merged with what is saved.

use secrecy::SecretString;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{IntegrationError, IntegrationView, store};
use crate::db::Db;
use crate::providers::Provider;
use crate::secrets::SecretStore;

/// What to save; every field optional, what is given is merged into what is saved. Which fields
/// a provider takes is its own: the others are refused.
#[derive(Default)]
pub struct IntegrationInput {
    /// Tactical: the API host. Tanium: the Gateway URL.
    pub instance_url: Option<String>,
    /// Tactical: `api_key` or `knox`.
    pub auth_mode: Option<String>,
    /// Tactical: the API key.
    pub api_key: Option<SecretString>,
    /// Tactical with Knox auth.
    pub username: Option<String>,
    /// Tactical with Knox auth.
    pub password: Option<SecretString>,
    /// Merged key by key into the integration's settings (`null` removes a key); must be an object.
    pub settings: Option<Value>,
    /// Tanium: the API Gateway token.
    pub api_token: Option<SecretString>,
    /// Tanium: the Asset API base URL for the fallback (`""` removes it).
    pub asset_api_url: Option<String>,
    /// Tanium: refresh assets of an empty computer group from the Asset API.
    pub use_asset_api_fallback: Option<bool>,
    /// OAuth providers (NinjaOne): the app's client id.
    pub client_id: Option<String>,
    /// OAuth providers (NinjaOne): the app's client secret.
    pub client_secret: Option<SecretString>,
    /// Providers with regional instances (NinjaOne: `US`, `US2`, `EU`, `OC`, `CA`).
    pub region: Option<String>,
}

/// Saves `input` for the tenant's `provider` integration (created on first save) and returns the
/// view. A new integration, or a change of URL, auth mode or credentials, makes it inactive until
/// the next successful connection test.
pub async fn save(
    db: &Db,
    secrets: &SecretStore,
    tenant: Uuid,
    provider: Provider,
    input: &IntegrationInput,
) -> Result<IntegrationView, IntegrationError> {
    let parts = super::parts_of(provider)?;
    if !super::tenant_exists(db, tenant).await? {
        return Err(IntegrationError::TenantNotFound);
    }
    parts.refuse_foreign(input)?;
    let existing = store::load(db, tenant, provider).await?;
    let mut settings = existing.as_ref().map(|i| i.settings.clone()).unwrap_or_default();
    let mut reconnect = existing.is_none();
    reconnect |= parts.before_merge(input, &mut settings)?;
    merge_settings(&mut settings, input.settings.as_ref())?;
    parts.check_settings(&settings)?;
    let url = match &input.instance_url {
        Some(u) => {
            let Some(n) = parts.normalize_url(u) else {
                return Err(IntegrationError::Invalid("instance_url is not a valid http(s) URL".into()));
            };
            reconnect |= existing.as_ref().and_then(|i| i.instance_url.as_deref()) != Some(n.as_str());
            Some(n)
        }
        None => existing.as_ref().and_then(|i| i.instance_url.clone()),
    };
    reconnect |= parts.write(secrets, tenant, input, url.as_deref(), &mut settings).await?;
    let id = existing.as_ref().map(|i| i.integration_id).unwrap_or_else(Uuid::new_v4);
    store::upsert(db, tenant, provider, id, url.as_deref(), &settings, reconnect).await?;
    super::view(db, secrets, tenant, provider).await
}

/// `patch` merged key by key into `settings`: `null` removes a key; `auth_mode` is not taken
/// from here (it has its own field).
fn merge_settings(settings: &mut Map<String, Value>, patch: Option<&Value>) -> Result<(), IntegrationError> {
    match patch {
        None => Ok(()),
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
            Ok(())
        }
        Some(_) => Err(IntegrationError::Invalid("settings must be a JSON object".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn settings_merge_key_by_key_and_null_removes() {
        let mut s = json!({"a": 1, "b": 2, "auth_mode": "knox"}).as_object().cloned().unwrap();
        merge_settings(&mut s, Some(&json!({"a": null, "c": 3, "auth_mode": "api_key"}))).unwrap();
        assert_eq!(Value::Object(s.clone()), json!({"b": 2, "c": 3, "auth_mode": "knox"}));
        assert!(merge_settings(&mut s, Some(&json!([1]))).is_err());
        merge_settings(&mut s, None).unwrap();
        assert_eq!(s.len(), 3);
    }
}
