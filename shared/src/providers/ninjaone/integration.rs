//! What a NinjaOne integration adds to the provider-neutral integration functions
//! (`crate::integrations`): its input fields (client id and secret, region, grant), the view
//! (masked; the token state) and the connection test.

use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::connect;
use super::token::{self, RECONNECT_REQUIRED};
use super::{PROVIDER, region_url, secrets};
use crate::config::HttpSettings;
use crate::integrations::{
    Connection, IntegrationError, IntegrationInput, ProviderIntegration, TestOutcome, mask, secret_text,
};
use crate::secrets::SecretStore;

/// The NinjaOne parts.
pub struct NinjaOne;

const GRANTS: [&str; 2] = ["authorization_code", "client_credentials"];

impl ProviderIntegration for NinjaOne {
    fn refuse_foreign(&self, input: &IntegrationInput) -> Result<(), IntegrationError> {
        if input.api_key.is_some()
            || input.username.is_some()
            || input.password.is_some()
            || input.api_token.is_some()
            || input.asset_api_url.is_some()
            || input.use_asset_api_fallback.is_some()
        {
            return Err(IntegrationError::Invalid(
                "a NinjaOne integration takes client_id, client_secret, region, auth_mode (authorization_code or \
                 client_credentials) and instance_url; api_key, username, password, api_token, asset_api_url and \
                 use_asset_api_fallback belong to other providers"
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
        let mut changed = false;
        if let Some(mode) = &input.auth_mode {
            if !GRANTS.contains(&mode.as_str()) {
                return Err(IntegrationError::Invalid(
                    "auth_mode must be authorization_code or client_credentials".into(),
                ));
            }
            changed |= settings.get("auth_mode").and_then(Value::as_str) != Some(mode.as_str());
            settings.insert("auth_mode".into(), json!(mode));
        }
        if let Some(region) = &input.region {
            let region = region.trim().to_ascii_uppercase();
            if region_url(&region).is_none() {
                return Err(IntegrationError::Invalid("region must be one of US, US2, EU, OC, CA".into()));
            }
            changed |= settings.get("region").and_then(Value::as_str) != Some(region.as_str());
            settings.insert("region".into(), json!(region));
        }
        Ok(changed)
    }

    fn check_settings(&self, settings: &Map<String, Value>) -> Result<(), IntegrationError> {
        match settings.get("region").and_then(Value::as_str) {
            Some(r) if region_url(r).is_none() => {
                Err(IntegrationError::Invalid("region must be one of US, US2, EU, OC, CA".into()))
            }
            _ => Ok(()),
        }
    }

    fn normalize_url(&self, raw: &str) -> Option<String> {
        super::normalize_base_url(raw).map(|u| u.trim_end_matches('/').to_owned())
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
            let mut changed = false;
            let id = input.client_id.as_deref().map(str::trim).filter(|v| !v.is_empty());
            let secret = input.client_secret.as_ref().map(|s| s.expose_secret().trim()).filter(|v| !v.is_empty());
            if let Some(id) = id {
                store.set_tenant_secret(tenant, secrets::CLIENT_ID, Some(&SecretString::from(id.to_owned()))).await?;
                changed = true;
            }
            if let Some(secret) = secret {
                let v = SecretString::from(secret.to_owned());
                store.set_tenant_secret(tenant, secrets::CLIENT_SECRET, Some(&v)).await?;
                changed = true;
            }
            settings.entry("auth_mode").or_insert(json!("authorization_code"));
            settings.entry("region").or_insert(json!("US"));
            Ok(changed)
        })
    }

    fn secrets(&self) -> &'static [&'static str] {
        &[secrets::CREDENTIALS, secrets::CLIENT_ID, secrets::CLIENT_SECRET]
    }

    fn url_secret(&self) -> &'static str {
        // NinjaOne keeps its instance in the integration row (or the region); no secret holds it.
        "ninjaone_instance_url"
    }

    fn auth_mode(&self, settings: &Map<String, Value>) -> Value {
        settings.get("auth_mode").cloned().unwrap_or(json!("authorization_code"))
    }

    fn credentials<'a>(
        &'a self,
        store: &'a SecretStore,
        tenant: Uuid,
        settings: &'a Map<String, Value>,
    ) -> BoxFuture<'a, Value> {
        Box::pin(async move {
            let id = secret_text(store, tenant, secrets::CLIENT_ID).await;
            let secret = secret_text(store, tenant, secrets::CLIENT_SECRET).await;
            let tokens = token::read_credentials(store, tenant).await.ok().flatten();
            let lifecycle = settings.get("tokenLifecycle").cloned().unwrap_or(Value::Null);
            json!({
                "clientId": id,
                "hasClientSecret": secret.is_some(),
                "clientSecretMasked": secret.as_deref().map(mask).unwrap_or_default(),
                "region": settings.get("region").cloned().unwrap_or(json!("US")),
                "authorized": tokens.is_some(),
                "hasRefreshToken": tokens.as_ref().is_some_and(|t| t.refresh_token.is_some()),
                "accessTokenExpiresAt": tokens.map(|t| t.expires_at),
                "tokenStatus": lifecycle.get("status").cloned().unwrap_or(Value::Null),
                "reconnectRequired": lifecycle.get("status").and_then(Value::as_str) == Some(RECONNECT_REQUIRED),
            })
        })
    }

    /// `GET /v2/organizations?pageSize=1` with the stored (or client-credentials) token.
    fn test<'a>(
        &'a self,
        conn: &'a Connection<'a>,
        tenant: Uuid,
        config: Option<(Option<String>, Value)>,
        _totp_code: Option<&'a str>,
    ) -> BoxFuture<'a, TestOutcome> {
        Box::pin(async move {
            let integration = match crate::integrations::load(conn.db, tenant, PROVIDER).await {
                Ok(Some(i)) => i.integration_id,
                Ok(None) => return TestOutcome::Failed("the NinjaOne integration does not exist".into()),
                Err(e) => return TestOutcome::Failed(e.to_string()),
            };
            let calls = conn.calls.counter(Some(tenant));
            let client =
                match connect::client(conn.db, conn.secrets, tenant, integration, config, conn.upstream, calls).await {
                    Ok(c) => c,
                    Err(e) => return TestOutcome::Failed(e.message()),
                };
            match client.test_connection().await {
                Ok(n) => {
                    let mut detail = Map::new();
                    detail.insert("organizationsVisible".into(), json!(n > 0));
                    TestOutcome::Connected(detail)
                }
                Err(e) => TestOutcome::Failed(e.to_string()),
            }
        })
    }

    fn failed_test_deactivates(&self) -> bool {
        false
    }

    fn oauth_authorize<'a>(
        &'a self,
        conn: &'a Connection<'a>,
        tenant: Uuid,
        redirect_uri: &'a str,
    ) -> Option<BoxFuture<'a, Result<String, IntegrationError>>> {
        Some(Box::pin(authorize_url(conn, tenant, redirect_uri)))
    }

    fn oauth_callback<'a>(
        &'a self,
        conn: &'a Connection<'a>,
        state: &'a str,
        code: &'a str,
        redirect_uri: &'a str,
    ) -> Option<BoxFuture<'a, Result<Uuid, IntegrationError>>> {
        Some(Box::pin(exchange_code(conn, state, code, redirect_uri)))
    }

    fn webhook_setup<'a>(
        &'a self,
        secrets: &'a SecretStore,
        tenant: Uuid,
        http: &'a HttpSettings,
    ) -> Option<BoxFuture<'a, Result<Value, IntegrationError>>> {
        Some(Box::pin(async move {
            let registration = webhook_registration(secrets, tenant, http).await?;
            Ok(json!({
                "url": registration["url"],
                "method": "POST",
                "headerName": "X-Alga-Webhook-Secret",
                "signatureHeader": "X-Ninja-Signature",
                "secret": registration["headers"][0]["value"],
                "registration": registration,
                "register": "enqueue the ninjaone-register-webhook job to register it with PUT /v2/webhook",
            }))
        }))
    }
}

/// The body of `PUT /v2/webhook`: this service's webhook URL for the tenant (under the public
/// URL, else the bind address), NinjaOne's device and organisation references expanded, and the
/// tenant's webhook secret (made on first use) in `X-Alga-Webhook-Secret` (AlgaPSA's set-up).
pub async fn webhook_registration(
    store: &SecretStore,
    tenant: Uuid,
    http: &HttpSettings,
) -> Result<Value, IntegrationError> {
    let secret = match store.get_tenant_secret(tenant, secrets::WEBHOOK).await? {
        Some(s) => s.expose_secret().to_owned(),
        None => {
            let mut bytes = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
            let s = hex::encode(bytes);
            store.set_tenant_secret(tenant, secrets::WEBHOOK, Some(&SecretString::from(s.clone()))).await?;
            s
        }
    };
    let base = http.public_url.clone().unwrap_or_else(|| format!("http://{}", http.bind));
    let url = format!("{}/api/webhooks/{}?tenant={tenant}", base.trim_end_matches('/'), PROVIDER.slug());
    Ok(json!({
        "url": url,
        "expand": ["device", "organization"],
        "headers": [{ "name": "X-Alga-Webhook-Secret", "value": secret }],
    }))
}

/// How long an authorize URL's `state` is accepted.
const STATE_TTL_SECS: i64 = 900;

async fn integration_row(
    conn: &Connection<'_>,
    tenant: Uuid,
) -> Result<crate::integrations::Integration, IntegrationError> {
    crate::integrations::require(conn.db, tenant, PROVIDER).await
}

fn base_of(row: &crate::integrations::Integration) -> Result<url::Url, IntegrationError> {
    let url = connect::instance_url(row.instance_url.clone(), &Value::Object(row.settings.clone()));
    super::normalize_base_url(&url)
        .and_then(|u| url::Url::parse(&u).ok())
        .ok_or_else(|| IntegrationError::Invalid(format!("{url:?} is not a NinjaOne URL")))
}

/// NinjaOne's authorize URL: the app's client id, the redirect URI, the scopes, and a `state`
/// `<tenant>.<expiry>.<HMAC-SHA256 of both under the client secret>`.
async fn authorize_url(conn: &Connection<'_>, tenant: Uuid, redirect_uri: &str) -> Result<String, IntegrationError> {
    let row = integration_row(conn, tenant).await?;
    let app = connect::oauth_app(conn.secrets, tenant).await.map_err(|e| IntegrationError::Invalid(e.message()))?;
    let payload = format!("{tenant}.{}", chrono::Utc::now().timestamp() + STATE_TTL_SECS);
    let sig = crate::secrets::hmac_sha256_hex(app.client_secret.expose_secret().as_bytes(), payload.as_bytes());
    let mut url = base_of(&row)?.join("oauth/authorize").map_err(|e| IntegrationError::Invalid(e.to_string()))?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &app.client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", super::SCOPES)
        .append_pair("state", &format!("{payload}.{sig}"));
    Ok(url.to_string())
}

/// The callback: the `state` checked (signature, expiry), the code exchanged at
/// `<instance>/oauth/token`, the tokens stored and the token state made active again.
async fn exchange_code(
    conn: &Connection<'_>,
    state: &str,
    code: &str,
    redirect_uri: &str,
) -> Result<Uuid, IntegrationError> {
    let bad = || IntegrationError::Invalid("the authorization state is invalid or expired; start again".into());
    let mut parts = state.trim().splitn(3, '.');
    let (Some(t), Some(exp), Some(sig)) = (parts.next(), parts.next(), parts.next()) else { return Err(bad()) };
    let tenant = Uuid::parse_str(t).map_err(|_| bad())?;
    let exp: i64 = exp.parse().map_err(|_| bad())?;
    let app = connect::oauth_app(conn.secrets, tenant).await.map_err(|_| bad())?;
    let secret = app.client_secret.clone();
    if !crate::secrets::hmac_matches(sig, Some(&secret), format!("{t}.{exp}").as_bytes())
        || exp < chrono::Utc::now().timestamp()
    {
        return Err(bad());
    }
    if code.trim().is_empty() {
        return Err(IntegrationError::Invalid("NinjaOne sent no authorization code".into()));
    }
    let row = integration_row(conn, tenant).await?;
    let base = base_of(&row)?;
    let config = crate::http::HttpConfig { provider: "ninjaone", ..crate::http::HttpConfig::default() };
    let http = crate::http::HttpClient::new(config)
        .map_err(|e| IntegrationError::Invalid(e.to_string()))?
        .with_call_counter(conn.calls.counter(Some(tenant)));
    let answer = token::token_request(
        &http,
        &base,
        &app,
        &[("grant_type", "authorization_code"), ("code", code.trim()), ("redirect_uri", redirect_uri)],
    )
    .await
    .map_err(|e| IntegrationError::Invalid(format!("NinjaOne refused the authorization code: {e}")))?;
    let creds = token::Credentials::from_answer(&answer, None, base.as_str().trim_end_matches('/'));
    token::write_credentials(conn.secrets, tenant, &creds)
        .await
        .map_err(|e| IntegrationError::Invalid(e.to_string()))?;
    let store = token::TokenStore {
        db: conn.db.clone(),
        secrets: conn.secrets.clone(),
        tenant,
        integration: row.integration_id,
    };
    token::mark_authorized(&store).await.map_err(|e| IntegrationError::Invalid(e.to_string()))?;
    Ok(tenant)
}
