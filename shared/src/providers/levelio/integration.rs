//! What a Level integration adds to the provider-neutral integration functions
//! (`crate::integrations`): the API key, the optional API URL, the view, the connection test, and
//! the HTTP POST step to paste into a Level automation.

use futures::future::BoxFuture;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{DEFAULT_BASE_URL, connect, secrets};
use crate::config::HttpSettings;
use crate::integrations::{
    Connection, IntegrationError, IntegrationInput, ProviderIntegration, TestOutcome, mask, secret_text,
};
use crate::secrets::SecretStore;

/// The Level parts.
pub struct Level;

impl ProviderIntegration for Level {
    fn refuse_foreign(&self, input: &IntegrationInput) -> Result<(), IntegrationError> {
        if input.auth_mode.is_some()
            || input.username.is_some()
            || input.password.is_some()
            || input.api_token.is_some()
            || input.asset_api_url.is_some()
            || input.use_asset_api_fallback.is_some()
        {
            return Err(IntegrationError::Invalid(
                "a Level integration takes api_key and, optionally, instance_url (the API URL, https://api.level.io \
                 by default); auth_mode, username, password, api_token, asset_api_url and use_asset_api_fallback \
                 belong to other providers"
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
        super::client::normalize_base_url(raw)
    }

    fn write<'a>(
        &'a self,
        store: &'a SecretStore,
        tenant: Uuid,
        input: &'a IntegrationInput,
        _url: Option<&'a str>,
        _settings: &'a mut Map<String, Value>,
    ) -> BoxFuture<'a, Result<bool, IntegrationError>> {
        Box::pin(async move {
            let key = input.api_key.as_ref().map(|k| k.expose_secret().trim().to_owned()).filter(|k| !k.is_empty());
            match key {
                Some(k) => {
                    store.set_tenant_secret(tenant, secrets::API_KEY, Some(&SecretString::from(k))).await?;
                    Ok(true)
                }
                None => Ok(false),
            }
        })
    }

    fn secrets(&self) -> &'static [&'static str] {
        &[secrets::API_KEY, secrets::INSTANCE_URL]
    }

    fn url_secret(&self) -> &'static str {
        secrets::INSTANCE_URL
    }

    fn default_instance_url(&self) -> Option<&'static str> {
        Some(DEFAULT_BASE_URL)
    }

    fn auth_mode(&self, _: &Map<String, Value>) -> Value {
        json!("api_key")
    }

    fn credentials<'a>(
        &'a self,
        store: &'a SecretStore,
        tenant: Uuid,
        _settings: &'a Map<String, Value>,
    ) -> BoxFuture<'a, Value> {
        Box::pin(async move {
            let key = secret_text(store, tenant, secrets::API_KEY).await;
            let webhook = secret_text(store, tenant, secrets::WEBHOOK).await;
            json!({
                "hasApiKey": key.is_some(),
                "apiKeyMasked": key.as_deref().map(mask).unwrap_or_default(),
                "hasWebhookSecret": webhook.is_some(),
            })
        })
    }

    /// `GET /v2/groups?limit=1`.
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
                Ok(client) => client.test_connection().await.map_err(|e| e.user_message()),
                Err(e) => Err(e.message()),
            };
            match result {
                Ok(visible) => {
                    let mut detail = Map::new();
                    detail.insert("groupsVisible".into(), json!(visible));
                    TestOutcome::Connected(detail)
                }
                Err(e) => TestOutcome::Failed(e),
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

/// The HTTP POST step of a Level automation (`GET …/integrations/levelio/webhook`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct WebhookSetup {
    url: String,
    method: &'static str,
    header_name: &'static str,
    secret: String,
    headers_json: String,
    /// The body of the step in an alert-triggered automation.
    payload_template: String,
    /// The body of the step in an alert-resolved automation.
    resolved_payload_template: String,
    /// What each field carries; `{{…}}` placeholders left unfilled count as absent.
    fields: Value,
}

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
    let url = format!("{}/api/webhooks/levelio?tenant={}", base.trim_end_matches('/'), tenant);
    let template = json!({
        "event": "alert.triggered",
        "device_id": "{{device_id}}",
        "alert_id": "{{alert_id}}",
        "severity": "{{severity}}",
        "name": "{{alert_name}}",
        "description": "{{description}}",
        "hostname": "{{hostname}}",
        "group_id": "{{group_id}}",
        "alert_time": "{{alert_time}}",
        "policy_id": "{{policy_id}}"
    });
    let mut resolved = template.clone();
    resolved["event"] = json!("alert.resolved");
    let headers = json!({ "Content-Type": "application/json", "X-Alga-Webhook-Secret": secret });
    let fields = json!({
        "device_id": "required: the Level device id (the device is refreshed from Level)",
        "event": "alert.triggered or alert.resolved (any value containing \"resolve\" resolves)",
        "alert_id": "Level's alert id (without it one is made from device, event and time)",
        "severity": "information, warning, critical or emergency",
        "name": "the alert or monitor name",
        "description": "the alert text",
        "hostname": "the device's hostname",
        "group_id": "the device's group id (else the group it was synced under, else Level is asked)",
        "alert_time": "RFC 3339 or epoch seconds",
        "policy_id": "the monitor policy (groups repeated alerts of one condition)"
    });
    Ok(WebhookSetup {
        url,
        method: "POST",
        header_name: "X-Alga-Webhook-Secret",
        secret,
        headers_json: serde_json::to_string_pretty(&headers).unwrap_or_default(),
        payload_template: serde_json::to_string_pretty(&template).unwrap_or_default(),
        resolved_payload_template: serde_json::to_string_pretty(&resolved).unwrap_or_default(),
        fields,
    })
}
