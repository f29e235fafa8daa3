//! What a Tactical RMM integration adds to the provider-neutral integration functions
//! (`crate::integrations`): its input fields, credentials, view, connection test, and the alert
//! webhook set-up to paste into Tactical.

use futures::future::BoxFuture;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::connect;
use super::error::TacticalError;
use super::secrets;
use super::settings::AlertMode;
use crate::config::HttpSettings;
use crate::integrations::{
    Connection, IntegrationError, IntegrationInput, ProviderIntegration, TestOutcome, mask, secret_text,
};
use crate::secrets::SecretStore;

/// The Tactical RMM parts.
pub struct Tactical;

impl ProviderIntegration for Tactical {
    fn refuse_foreign(&self, input: &IntegrationInput) -> Result<(), IntegrationError> {
        if input.api_token.is_some() || input.asset_api_url.is_some() || input.use_asset_api_fallback.is_some() {
            return Err(IntegrationError::Invalid(
                "api_token, asset_api_url and use_asset_api_fallback are Tanium settings; a Tactical RMM integration \
                 takes instance_url, auth_mode, api_key, username and password"
                    .into(),
            ));
        }
        Ok(())
    }

    fn before_merge(
        &self,
        input: &IntegrationInput,
        settings: &mut Map<String, Value>,
    ) -> Result<bool, IntegrationError> {
        let Some(mode) = &input.auth_mode else { return Ok(false) };
        if mode != "api_key" && mode != "knox" {
            return Err(IntegrationError::Invalid("auth_mode must be api_key or knox".into()));
        }
        let changed = settings.get("auth_mode").and_then(Value::as_str) != Some(mode.as_str());
        settings.insert("auth_mode".into(), json!(mode));
        Ok(changed)
    }

    fn check_settings(&self, settings: &Map<String, Value>) -> Result<(), IntegrationError> {
        AlertMode::from_settings(&Value::Object(settings.clone())).map(|_| ()).map_err(IntegrationError::Invalid)
    }

    fn normalize_url(&self, raw: &str) -> Option<String> {
        super::client::normalize_base_url(raw)
    }

    fn write<'a>(
        &'a self,
        store: &'a SecretStore,
        tenant: Uuid,
        input: &'a IntegrationInput,
        _url: Option<&'a str>,
        settings: &'a mut Map<String, Value>,
    ) -> BoxFuture<'a, Result<bool, IntegrationError>> {
        Box::pin(async move {
            let put = |name: &'static str, v: Option<&str>| {
                let v = v.map(str::trim).filter(|v| !v.is_empty()).map(|v| SecretString::from(v.to_owned()));
                async move {
                    match v {
                        Some(v) => store.set_tenant_secret(tenant, name, Some(&v)).await.map(|_| true),
                        None => Ok(false),
                    }
                }
            };
            let mut changed = put(secrets::API_KEY, input.api_key.as_ref().map(|s| s.expose_secret())).await?;
            changed |= put(secrets::USERNAME, input.username.as_deref()).await?;
            changed |= put(secrets::PASSWORD, input.password.as_ref().map(|s| s.expose_secret())).await?;
            if !settings.contains_key("auth_mode") {
                settings.insert("auth_mode".into(), json!("api_key"));
            }
            Ok(changed)
        })
    }

    fn secrets(&self) -> &'static [&'static str] {
        &[secrets::INSTANCE_URL, secrets::API_KEY, secrets::USERNAME, secrets::PASSWORD, secrets::KNOX_TOKEN]
    }

    fn url_secret(&self) -> &'static str {
        secrets::INSTANCE_URL
    }

    fn auth_mode(&self, settings: &Map<String, Value>) -> Value {
        settings.get("auth_mode").cloned().unwrap_or(json!("api_key"))
    }

    fn credentials<'a>(
        &'a self,
        store: &'a SecretStore,
        tenant: Uuid,
        _settings: &'a Map<String, Value>,
    ) -> BoxFuture<'a, Value> {
        Box::pin(async move {
            let api_key = secret_text(store, tenant, secrets::API_KEY).await;
            let username = secret_text(store, tenant, secrets::USERNAME).await;
            let knox = secret_text(store, tenant, secrets::KNOX_TOKEN).await;
            json!({
                "hasApiKey": api_key.is_some(),
                "apiKeyMasked": api_key.as_deref().map(mask).unwrap_or_default(),
                "hasKnoxCredentials": username.is_some(),
                "username": username,
                "hasKnoxToken": knox.is_some(),
                "knoxTokenMasked": knox.as_deref().map(mask).unwrap_or_default(),
            })
        })
    }

    /// The client list (`GET /beta/v1/client/`), after a TOTP login when a code is given.
    fn test<'a>(
        &'a self,
        conn: &'a Connection<'a>,
        tenant: Uuid,
        config: Option<(Option<String>, Value)>,
        totp_code: Option<&'a str>,
    ) -> BoxFuture<'a, TestOutcome> {
        Box::pin(async move {
            let client = match connect::client(conn.secrets, tenant, config, conn.calls.counter(Some(tenant))).await {
                Ok(c) => c,
                Err(e) => return TestOutcome::Failed(e.message()),
            };
            if let Some(code) = totp_code.map(str::trim).filter(|c| !c.is_empty())
                && let Err(e) = client.login_with_totp(code).await
            {
                return TestOutcome::Failed(e.user_message());
            }
            match client.test_connection().await {
                Ok(clients) => {
                    let mut detail = Map::new();
                    detail.insert("clients".into(), json!(clients));
                    TestOutcome::Connected(detail)
                }
                Err(TacticalError::TotpRequired) => TestOutcome::TotpRequired,
                Err(e) => TestOutcome::Failed(e.user_message()),
            }
        })
    }

    fn failed_test_deactivates(&self) -> bool {
        false
    }

    fn webhook_setup<'a>(
        &'a self,
        secrets: &'a SecretStore,
        tenant: Uuid,
        http: &'a HttpSettings,
    ) -> Option<BoxFuture<'a, Result<Value, IntegrationError>>> {
        Some(Box::pin(async move {
            let setup = webhook_setup(secrets, tenant, http).await?;
            serde_json::to_value(setup).map_err(|e| IntegrationError::Invalid(e.to_string()))
        }))
    }
}

/// What to paste into Tactical's alert action (`GET …/integrations/tacticalrmm/webhook`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct WebhookSetup {
    pub url: String,
    pub method: &'static str,
    pub header_name: &'static str,
    pub secret: String,
    pub payload_template: String,
    pub resolved_payload_template: String,
    pub headers_json: String,
}

/// The tenant's webhook set-up: the URL under the service's public URL (else its bind address),
/// the header with the tenant's webhook secret (made on first use), the trigger and resolve bodies.
async fn webhook_setup(
    store: &SecretStore,
    tenant: Uuid,
    http: &HttpSettings,
) -> Result<WebhookSetup, IntegrationError> {
    let secret = match store.get_tenant_secret(tenant, secrets::WEBHOOK).await? {
        Some(s) => s.expose_secret().to_owned(),
        None => {
            let mut bytes = [0u8; 24];
            rand::rng().fill_bytes(&mut bytes);
            let s = hex::encode(bytes);
            store.set_tenant_secret(tenant, secrets::WEBHOOK, Some(&SecretString::from(s.clone()))).await?;
            s
        }
    };
    let base = http.public_url.clone().unwrap_or_else(|| format!("http://{}", http.bind));
    let url = format!("{}/api/webhooks/tacticalrmm?tenant={}", base.trim_end_matches('/'), tenant);
    let template = json!({
        "agent_id": "{{agent.agent_id}}", "alert_id": "{{alert.id}}", "event": "trigger",
        "severity": "{{alert.severity}}", "message": "{{alert.message}}", "alert_time": "{{alert.alert_time}}",
        "client_id": "{{client.id}}", "site_id": "{{site.id}}", "alert_type": "{{alert.alert_type}}",
        "hostname": "{{agent.hostname}}"
    });
    let mut resolve = template.clone();
    resolve["event"] = json!("resolve");
    let headers = json!({ "Content-Type": "application/json", "X-Alga-Webhook-Secret": secret });
    Ok(WebhookSetup {
        url,
        method: "POST",
        header_name: "X-Alga-Webhook-Secret",
        secret,
        payload_template: serde_json::to_string_pretty(&template).unwrap_or_default(),
        resolved_payload_template: serde_json::to_string_pretty(&resolve).unwrap_or_default(),
        headers_json: serde_json::to_string_pretty(&headers).unwrap_or_default(),
    })
}
