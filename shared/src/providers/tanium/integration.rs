//! What a Tanium integration adds to the provider-neutral integration functions
//! (`crate::integrations`): its input fields, the Gateway and Asset API URLs, the token, the view
//! and the connection test.

use futures::future::BoxFuture;
use secrecy::SecretString;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::connect::{self, tanium_settings};
use super::secrets;
use crate::integrations::{
    Connection, IntegrationError, IntegrationInput, ProviderIntegration, TestOutcome, mask, secret_text,
};
use crate::secrets::SecretStore;

/// The Tanium parts.
pub struct Tanium;

impl ProviderIntegration for Tanium {
    fn refuse_foreign(&self, input: &IntegrationInput) -> Result<(), IntegrationError> {
        if input.auth_mode.is_some() || input.api_key.is_some() || input.username.is_some() || input.password.is_some()
        {
            return Err(IntegrationError::Invalid(
                "auth_mode, api_key, username and password are Tactical RMM settings; a Tanium integration takes \
                 instance_url (the Gateway URL), api_token, asset_api_url and use_asset_api_fallback"
                    .into(),
            ));
        }
        Ok(())
    }

    fn before_merge(&self, _: &IntegrationInput, _: &mut Map<String, Value>) -> Result<bool, IntegrationError> {
        Ok(false)
    }

    fn check_settings(&self, _: &Map<String, Value>) -> Result<(), IntegrationError> {
        Ok(())
    }

    fn normalize_url(&self, raw: &str) -> Option<String> {
        super::gateway_base_url(raw).ok()
    }

    /// The token and the Asset API URL checked first, then written with the Gateway URL; the
    /// settings get AlgaPSA's `provider_settings.tanium` shape, merged (AlgaPSA replaces the whole
    /// settings object here).
    fn write<'a>(
        &'a self,
        store: &'a SecretStore,
        tenant: Uuid,
        input: &'a IntegrationInput,
        url: Option<&'a str>,
        settings: &'a mut Map<String, Value>,
    ) -> BoxFuture<'a, Result<bool, IntegrationError>> {
        Box::pin(async move {
            use secrecy::ExposeSecret;
            let token = match &input.api_token {
                Some(t) => {
                    Some(super::check_token(t.expose_secret()).map_err(|e| IntegrationError::Invalid(e.to_string()))?)
                }
                None => None,
            };
            let asset = match input.asset_api_url.as_deref().map(str::trim) {
                None => None,
                Some("") => Some(None),
                Some(a) => match super::asset_api_base_url(a) {
                    Ok(n) => Some(Some(n)),
                    Err(_) => {
                        return Err(IntegrationError::Invalid("asset_api_url is not a valid http(s) URL".into()));
                    }
                },
            };
            let mut changed = false;
            if let Some(t) = &token {
                store.set_tenant_secret(tenant, secrets::API_TOKEN, Some(t)).await?;
                changed = true;
            }
            if let (Some(u), Some(_)) = (url, &input.instance_url) {
                let v = SecretString::from(u.to_owned());
                store.set_tenant_secret(tenant, secrets::GATEWAY_URL, Some(&v)).await?;
            }
            if let Some(a) = &asset {
                let v = a.clone().map(SecretString::from);
                store.set_tenant_secret(tenant, secrets::ASSET_API_URL, v.as_ref()).await?;
            }
            let mut ps = settings.get("provider_settings").and_then(Value::as_object).cloned().unwrap_or_default();
            let mut t = ps.get("tanium").and_then(Value::as_object).cloned().unwrap_or_default();
            t.insert("gateway_url".into(), json!(url));
            if let Some(a) = &asset {
                t.insert("asset_api_url".into(), json!(a));
            }
            t.entry("asset_api_url").or_insert(Value::Null);
            if let Some(f) = input.use_asset_api_fallback {
                t.insert("use_asset_api_fallback".into(), json!(f));
            }
            t.entry("use_asset_api_fallback").or_insert(json!(false));
            ps.insert("tanium".into(), Value::Object(t));
            settings.insert("provider_settings".into(), Value::Object(ps));
            Ok(changed)
        })
    }

    fn secrets(&self) -> &'static [&'static str] {
        &[secrets::GATEWAY_URL, secrets::API_TOKEN, secrets::ASSET_API_URL]
    }

    fn url_secret(&self) -> &'static str {
        secrets::GATEWAY_URL
    }

    fn auth_mode(&self, _: &Map<String, Value>) -> Value {
        json!("api_token")
    }

    fn credentials<'a>(
        &'a self,
        store: &'a SecretStore,
        tenant: Uuid,
        settings: &'a Map<String, Value>,
    ) -> BoxFuture<'a, Value> {
        Box::pin(async move {
            let token = secret_text(store, tenant, secrets::API_TOKEN).await;
            let t = tanium_settings(&Value::Object(settings.clone())).clone();
            let asset = match t.get("asset_api_url").and_then(Value::as_str) {
                Some(a) => Some(a.to_owned()),
                None => secret_text(store, tenant, secrets::ASSET_API_URL).await,
            };
            json!({
                "hasApiToken": token.is_some(),
                "apiTokenMasked": token.as_deref().map(mask).unwrap_or_default(),
                "assetApiUrl": asset,
                "useAssetApiFallback": t.get("use_asset_api_fallback") == Some(&Value::Bool(true)),
            })
        })
    }

    /// The Gateway probe query. A failure makes the integration inactive and keeps the error in
    /// `sync_error` (AlgaPSA's behaviour, with the real text).
    fn test<'a>(
        &'a self,
        conn: &'a Connection<'a>,
        tenant: Uuid,
        config: Option<(Option<String>, Value)>,
        _totp_code: Option<&'a str>,
    ) -> BoxFuture<'a, TestOutcome> {
        Box::pin(async move {
            let calls = conn.calls.counter(Some(tenant));
            let result = match connect::client(conn.secrets, tenant, config, conn.upstream, calls).await {
                Ok((client, _)) => client.test_connection().await.map_err(|e| e.to_string()),
                Err(e) => Err(e.message()),
            };
            match result {
                Ok(groups) => {
                    let mut detail = Map::new();
                    detail.insert("computerGroupsVisible".into(), json!(groups > 0));
                    TestOutcome::Connected(detail)
                }
                Err(e) => TestOutcome::Failed(e),
            }
        })
    }

    fn failed_test_deactivates(&self) -> bool {
        true
    }
}
