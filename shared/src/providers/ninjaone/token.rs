//! NinjaOne's OAuth tokens and their lifecycle.
//!
//! The tokens live in the tenant secret `ninjaone_credentials` (AlgaPSA's JSON: `access_token`,
//! `refresh_token`, `expires_at` in ms, `instance_url`), so AlgaPSA and rmm-sync read the same
//! ones. An access token is renewed five minutes before it expires, or at once when NinjaOne
//! answers 401 to it.
//!
//! Refresh tokens rotate: each refresh spends the old one. So that two workers never spend the
//! same refresh token, only the holder of the integration's refresh lease refreshes. The lease is
//! `settings.tokenLifecycle.refreshLease = {holder, expiresAt}` on the integration row, taken and
//! released by compare-and-swap of the settings (the same on PostgreSQL and SQLite, and no
//! transaction is held open across the call to NinjaOne). The others wait for the new tokens to
//! appear in the secret. The new tokens are written through the secret chain before the lease is
//! released (the write replaces the spent refresh token).
//!
//! A refused refresh (`invalid_grant`) sets `settings.tokenLifecycle.status` to
//! `reconnect_required` (where AlgaPSA keeps it) and the integration's `sync_error`; jobs are
//! skipped with that reason until the integration is authorized again.
//!
//! API-service apps use the client-credentials grant instead (`settings.auth_mode =
//! "client_credentials"`): no refresh token, a new access token whenever one is needed.

use std::fmt;
use std::time::Duration;

use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::error::NinjaError;
use super::secrets;
use crate::db::sql::{ColType, fmt_ts};
use crate::db::{Db, DbError};
use crate::http::{HttpClient, HttpError, UpstreamRequest};
use crate::secrets::SecretStore;

/// Renew an access token this long before it expires (AlgaPSA's buffer).
pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// How long a refresh lease is held at most (a holder that died frees it after this).
pub const LEASE_TTL: Duration = Duration::from_secs(30);
/// `settings.tokenLifecycle.status` of an integration whose refresh token was refused (the
/// provider-neutral lifecycle: [`crate::integrations::lifecycle`]).
pub use crate::integrations::lifecycle::{RECONNECT_REQUIRED, needs_reconnect};

/// The tokens as AlgaPSA stores them.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct Credentials {
    pub access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Epoch milliseconds.
    pub expires_at: i64,
    #[serde(default)]
    pub instance_url: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials").field("expires_at", &self.expires_at).finish_non_exhaustive()
    }
}

impl Credentials {
    /// Usable now: not within the margin of its expiry, and not the token NinjaOne just refused.
    fn usable(&self, refused: Option<&str>) -> bool {
        let margin = REFRESH_MARGIN.as_millis() as i64;
        !self.access_token.is_empty()
            && self.expires_at - margin > Utc::now().timestamp_millis()
            && refused != Some(self.access_token.as_str())
    }

    /// From a token endpoint's answer; a missing refresh token keeps `previous` (NinjaOne rotates,
    /// but an answer without one must not lose the one we have).
    pub fn from_answer(answer: &TokenAnswer, previous: Option<&str>, instance_url: &str) -> Credentials {
        Credentials {
            access_token: answer.access_token.clone(),
            refresh_token: answer.refresh_token.clone().or_else(|| previous.map(str::to_owned)),
            expires_at: Utc::now().timestamp_millis() + answer.expires_in.unwrap_or(3600).max(0) * 1000,
            instance_url: instance_url.to_owned(),
        }
    }
}

/// A token endpoint's answer.
#[derive(Clone, Deserialize)]
pub struct TokenAnswer {
    pub access_token: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<i64>,
}

/// Which grant the integration uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// Authorization code with rotating refresh tokens (AlgaPSA's, the default).
    AuthorizationCode,
    /// An API-service app's client id and secret.
    ClientCredentials,
}

impl Grant {
    pub fn from_settings(settings: &Value) -> Grant {
        match settings.get("auth_mode").and_then(Value::as_str) {
            Some("client_credentials") => Grant::ClientCredentials,
            _ => Grant::AuthorizationCode,
        }
    }
}

/// Where the integration's tokens and lease live.
#[derive(Clone)]
pub struct TokenStore {
    pub db: Db,
    pub secrets: SecretStore,
    pub tenant: Uuid,
    pub integration: Uuid,
}

/// The OAuth app.
#[derive(Clone)]
pub struct OAuthApp {
    pub client_id: String,
    pub client_secret: SecretString,
}

/// Calls the token endpoint: `fields` as a form plus the app's id and secret.
pub async fn token_request(
    http: &HttpClient,
    base: &url::Url,
    app: &OAuthApp,
    fields: &[(&str, &str)],
) -> Result<TokenAnswer, NinjaError> {
    let url = base.join("oauth/token").map_err(|e| NinjaError::NotConfigured(format!("token URL: {e}")))?;
    let mut form: Vec<(&str, &str)> = fields.to_vec();
    form.push(("client_id", &app.client_id));
    form.push(("client_secret", app.client_secret.expose_secret()));
    let req = UpstreamRequest::post(url).form(&form).header("accept", "application/json")?;
    match http.send(req).await {
        Ok(resp) => serde_json::from_slice::<TokenAnswer>(&resp.body)
            .map_err(|e| NinjaError::InvalidPayload { what: "the token endpoint".into(), reason: e.to_string() }),
        Err(e) => Err(token_error(e)),
    }
}

/// A refused token request: `invalid_grant` means the refresh token (or code) is spent or revoked.
fn token_error(e: HttpError) -> NinjaError {
    let Some(body) = e.body().filter(|_| e.status().is_some_and(|s| (400..500).contains(&s) && s != 429)) else {
        return NinjaError::Http(e);
    };
    let parsed: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let code = parsed.get("error").and_then(Value::as_str).unwrap_or("").to_owned();
    if code == "invalid_grant" {
        return NinjaError::ReconnectRequired;
    }
    let message = parsed
        .get("error_description")
        .and_then(Value::as_str)
        .map(|m| m.chars().take(200).collect())
        .unwrap_or_else(|| format!("HTTP {}", e.status().unwrap_or_default()));
    NinjaError::TokenRefused { code: if code.is_empty() { "error".into() } else { code }, message }
}

/// The access-token source of one client: a cache in front of the secret, the lease and the
/// token endpoint. One renewal at a time per client (and per integration, through the lease).
pub struct Tokens {
    store: TokenStore,
    app: OAuthApp,
    grant: Grant,
    /// The instance the tokens belong to (the token endpoint is `<base>/oauth/token`).
    base: url::Url,
    holder: String,
    cached: tokio::sync::Mutex<Option<Credentials>>,
}

impl Tokens {
    pub fn new(store: TokenStore, app: OAuthApp, grant: Grant, base: url::Url) -> Tokens {
        Tokens { store, app, grant, base, holder: Uuid::new_v4().to_string(), cached: tokio::sync::Mutex::new(None) }
    }

    /// A usable access token. `refused` is a token NinjaOne just answered 401 to: it is renewed
    /// even when it has not expired yet.
    pub async fn access_token(&self, http: &HttpClient, refused: Option<&str>) -> Result<SecretString, NinjaError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref().filter(|c| c.usable(refused)) {
            return Ok(SecretString::from(c.access_token.clone()));
        }
        let creds = self.renew(http, refused).await?;
        let token = SecretString::from(creds.access_token.clone());
        *cached = Some(creds);
        Ok(token)
    }

    async fn read_secret(&self) -> Result<Option<Credentials>, NinjaError> {
        read_credentials(&self.store.secrets, self.store.tenant).await
    }

    async fn renew(&self, http: &HttpClient, refused: Option<&str>) -> Result<Credentials, NinjaError> {
        if let Some(c) = self.read_secret().await?.filter(|c| c.usable(refused)) {
            return Ok(c);
        }
        if self.grant == Grant::ClientCredentials {
            let answer = token_request(
                http,
                &self.base,
                &self.app,
                &[("grant_type", "client_credentials"), ("scope", "monitoring management")],
            )
            .await?;
            let creds = Credentials::from_answer(&answer, None, self.base.as_str().trim_end_matches('/'));
            write_credentials(&self.store.secrets, self.store.tenant, &creds).await?;
            return Ok(creds);
        }
        let deadline = tokio::time::Instant::now() + LEASE_TTL + Duration::from_secs(5);
        loop {
            if lifecycle_status(&self.store).await?.as_deref() == Some(RECONNECT_REQUIRED) {
                return Err(NinjaError::ReconnectRequired);
            }
            if acquire_lease(&self.store, &self.holder).await? {
                let result = self.refresh_holding_lease(http, refused).await;
                let refreshed = result.is_ok();
                if let Err(e) = release_lease(&self.store, &self.holder, refreshed).await {
                    tracing::warn!(error = %e, "could not release the NinjaOne refresh lease; it expires by itself");
                }
                return result;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            if let Some(c) = self.read_secret().await?.filter(|c| c.usable(refused)) {
                return Ok(c);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(NinjaError::RefreshBusy);
            }
        }
    }

    async fn refresh_holding_lease(&self, http: &HttpClient, refused: Option<&str>) -> Result<Credentials, NinjaError> {
        // Another holder may have refreshed between our read and the lease.
        let current = self.read_secret().await?;
        if let Some(c) = current.as_ref().filter(|c| c.usable(refused)) {
            return Ok(c.clone());
        }
        let Some(refresh) = current.as_ref().and_then(|c| c.refresh_token.clone()).filter(|r| !r.is_empty()) else {
            return Err(NinjaError::NotConfigured("no refresh token is stored; authorize the integration".into()));
        };
        match token_request(
            http,
            &self.base,
            &self.app,
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        )
        .await
        {
            Ok(answer) => {
                let url = current.map(|c| c.instance_url).filter(|u| !u.is_empty());
                let url = url.unwrap_or_else(|| self.base.as_str().trim_end_matches('/').to_owned());
                let creds = Credentials::from_answer(&answer, Some(&refresh), &url);
                // The spent refresh token is useless now: the new one must be stored before
                // anything else happens. Retried, since losing it means a reconnect.
                let mut last = None;
                for attempt in 0..3u64 {
                    match write_credentials(&self.store.secrets, self.store.tenant, &creds).await {
                        Ok(()) => return Ok(creds),
                        Err(e) => last = Some(e),
                    }
                    tokio::time::sleep(Duration::from_millis(100 * (attempt + 1))).await;
                }
                Err(last.expect("three attempts"))
            }
            Err(NinjaError::ReconnectRequired) => {
                mark_reconnect_required(&self.store, "NinjaOne refused the refresh token (invalid_grant)").await?;
                tracing::warn!(tenant = %self.store.tenant, integration = %self.store.integration,
                    "NinjaOne refused the refresh token; the integration needs a new authorization");
                Err(NinjaError::ReconnectRequired)
            }
            Err(e) => Err(e),
        }
    }
}

/// The stored tokens, `None` when there are none (never authorized, or disconnected).
pub async fn read_credentials(store: &SecretStore, tenant: Uuid) -> Result<Option<Credentials>, NinjaError> {
    let raw = store
        .get_tenant_secret(tenant, secrets::CREDENTIALS)
        .await
        .map_err(|e| NinjaError::TokenStore(format!("secret {}: {e}", secrets::CREDENTIALS)))?;
    Ok(raw.and_then(|s| serde_json::from_str(s.expose_secret()).ok()))
}

/// Stores the tokens (replacing the previous ones).
pub async fn write_credentials(store: &SecretStore, tenant: Uuid, creds: &Credentials) -> Result<(), NinjaError> {
    let text = SecretString::from(serde_json::to_string(creds).expect("credentials are JSON"));
    store
        .set_tenant_secret(tenant, secrets::CREDENTIALS, Some(&text))
        .await
        .map_err(|e| NinjaError::TokenStore(format!("secret {}: {e}", secrets::CREDENTIALS)))
}

fn db_err(e: DbError) -> NinjaError {
    NinjaError::TokenStore(e.to_string())
}

/// The integration's settings as stored (the exact text, for the compare-and-swap).
async fn settings_text(db: &Db, tenant: Uuid, integration: Uuid) -> Result<Option<String>, DbError> {
    let d = db.dialect();
    let sql = format!(
        "SELECT {} FROM rmm_integrations WHERE tenant = {} AND integration_id = {}",
        d.text("settings"),
        d.param(1, ColType::Uuid),
        d.param(2, ColType::Uuid)
    );
    let rows: Vec<(Option<String>,)> = db.fetch(&sql, &[&tenant.to_string(), &integration.to_string()]).await?;
    Ok(rows.into_iter().next().map(|(s,)| s.unwrap_or_default()))
}

/// Changes the integration's settings with `change` (which returns false to leave them), by
/// compare-and-swap on the whole settings value; retried when another writer got there first.
/// Returns whether a change was written. `sync_error` is set too when given.
pub async fn update_settings(
    store: &TokenStore,
    sync_error: Option<&str>,
    change: impl Fn(&mut Map<String, Value>) -> bool,
) -> Result<bool, DbError> {
    let (db, tenant, integration) = (&store.db, store.tenant, store.integration);
    let d = db.dialect();
    for _ in 0..8 {
        let Some(old) = settings_text(db, tenant, integration).await? else { return Ok(false) };
        let mut settings: Map<String, Value> = serde_json::from_str(&old).unwrap_or_default();
        if !change(&mut settings) {
            return Ok(false);
        }
        let new = Value::Object(settings).to_string();
        let set_error =
            if sync_error.is_some() { format!(", sync_error = {}", d.param(5, ColType::Text)) } else { String::new() };
        let sql = format!(
            "UPDATE rmm_integrations SET settings = {}{set_error} WHERE tenant = {} AND integration_id = {} \
             AND COALESCE({}, '') = {}",
            d.param(3, ColType::Json),
            d.param(1, ColType::Uuid),
            d.param(2, ColType::Uuid),
            d.text("settings"),
            d.param(4, ColType::Text),
        );
        let (t, i) = (tenant.to_string(), integration.to_string());
        let mut binds: Vec<&str> = vec![&t, &i, &new, &old];
        if let Some(e) = sync_error {
            binds.push(e);
        }
        if db.execute(&sql, &binds).await? == 1 {
            return Ok(true);
        }
    }
    Ok(false)
}

fn lifecycle(settings: &mut Map<String, Value>) -> &mut Map<String, Value> {
    let entry = settings.entry("tokenLifecycle").or_insert_with(|| json!({}));
    if !entry.is_object() {
        *entry = json!({});
    }
    entry.as_object_mut().expect("an object")
}

/// `settings.tokenLifecycle.status` of the integration.
pub async fn lifecycle_status(store: &TokenStore) -> Result<Option<String>, NinjaError> {
    let text = settings_text(&store.db, store.tenant, store.integration).await.map_err(db_err)?;
    let settings: Value = text.and_then(|t| serde_json::from_str(&t).ok()).unwrap_or(Value::Null);
    Ok(settings.pointer("/tokenLifecycle/status").and_then(Value::as_str).map(str::to_owned))
}

async fn acquire_lease(store: &TokenStore, holder: &str) -> Result<bool, NinjaError> {
    let now = Utc::now().timestamp_millis();
    let until = now + LEASE_TTL.as_millis() as i64;
    update_settings(store, None, |s| {
        let l = lifecycle(s);
        let lease = l.get("refreshLease");
        let held_by_other = lease.is_some_and(|lease| {
            lease.get("holder").and_then(Value::as_str) != Some(holder)
                && lease.get("expiresAt").and_then(Value::as_i64).unwrap_or(0) > now
        });
        if held_by_other {
            return false;
        }
        l.insert("refreshLease".into(), json!({ "holder": holder, "expiresAt": until }));
        true
    })
    .await
    .map_err(db_err)
}

async fn release_lease(store: &TokenStore, holder: &str, refreshed: bool) -> Result<bool, DbError> {
    let now = fmt_ts(Utc::now());
    update_settings(store, None, |s| {
        let l = lifecycle(s);
        if l.get("refreshLease").and_then(|x| x.get("holder")).and_then(Value::as_str) != Some(holder) {
            return false;
        }
        l.remove("refreshLease");
        if refreshed {
            l.insert("lastRefreshedAt".into(), json!(now));
            if l.get("status").and_then(Value::as_str) != Some(RECONNECT_REQUIRED) {
                l.insert("status".into(), json!("active"));
            }
        }
        true
    })
    .await
}

/// Records a refused refresh: `tokenLifecycle.status = reconnect_required` and `sync_error`.
pub async fn mark_reconnect_required(store: &TokenStore, reason: &str) -> Result<(), NinjaError> {
    let now = fmt_ts(Utc::now());
    let message = format!("{reason}: the integration must be reconnected (authorize it again)");
    update_settings(store, Some(&message), |s| {
        let l = lifecycle(s);
        l.insert("status".into(), json!(RECONNECT_REQUIRED));
        l.insert("reason".into(), json!(reason));
        l.insert("since".into(), json!(now));
        true
    })
    .await
    .map_err(db_err)?;
    Ok(())
}

/// A new authorization (code exchanged, or client credentials saved): the lifecycle is active
/// again and the old failure forgotten.
pub async fn mark_authorized(store: &TokenStore) -> Result<(), NinjaError> {
    let now = fmt_ts(Utc::now());
    update_settings(store, None, |s| {
        let l = lifecycle(s);
        l.insert("status".into(), json!("active"));
        l.insert("authorizedAt".into(), json!(now));
        l.remove("reason");
        l.remove("since");
        l.remove("refreshLease");
        true
    })
    .await
    .map_err(db_err)?;
    Ok(())
}
