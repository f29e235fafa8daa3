//! HashiCorp Vault KV v2 over HTTP, as AlgaPSA's `vault` secret provider uses it: one document per
//! tenant (every secret a key of it), read with `GET /v1/<path>` (`data.data.<name>`), written by
//! reading the document, changing one key and writing the whole map back (`{"data": map}`).
//! Unlike AlgaPSA, writes carry Vault's check-and-set version, so two workers refreshing two
//! secrets of one tenant at once cannot drop each other's key; a lost race is read and retried.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::SecretError;

pub const DEFAULT_APP_PATH: &str = "kv/data/app/secrets";
pub const DEFAULT_TENANT_TEMPLATE: &str = "kv/data/tenants/{tenantId}/secrets";

/// Read-modify-write attempts when another writer changed the document meanwhile.
const CAS_ATTEMPTS: u32 = 10;

#[derive(Clone)]
pub struct Vault {
    addr: url::Url,
    token: SecretString,
    app_path: String,
    tenant_template: String,
    http: reqwest::Client,
}

/// A document and its version (0: it does not exist).
struct Doc {
    map: Map<String, Value>,
    version: u64,
}

impl Vault {
    pub fn new(
        addr: &str,
        token: SecretString,
        app_path: String,
        tenant_template: String,
    ) -> Result<Vault, SecretError> {
        let mut addr = url::Url::parse(addr.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or(SecretError::VaultConfig("VAULT_ADDR as an http(s) URL"))?;
        if !addr.path().ends_with('/') {
            let p = format!("{}/", addr.path());
            addr.set_path(&p);
        }
        if !tenant_template.contains("{tenantId}") {
            return Err(SecretError::VaultConfig("VAULT_TENANT_SECRET_PATH_TEMPLATE containing {tenantId}"));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| SecretError::Vault(e.to_string()))?;
        Ok(Vault { addr, token, app_path, tenant_template, http })
    }

    pub fn app_path(&self) -> &str {
        &self.app_path
    }

    pub fn tenant_path(&self, tenant: Uuid) -> String {
        self.tenant_template.replace("{tenantId}", &tenant.to_string())
    }

    fn url(&self, path: &str) -> Result<url::Url, SecretError> {
        let path = path.trim_matches('/');
        if path.split('/').any(|seg| seg.is_empty() || seg == "." || seg == "..") {
            return Err(SecretError::Vault(format!("invalid secret path {path:?}")));
        }
        self.addr.join(&format!("v1/{path}")).map_err(|e| SecretError::Vault(e.to_string()))
    }

    /// The string value of `name` in the document at `path`.
    pub async fn get(&self, path: &str, name: &str) -> Result<Option<SecretString>, SecretError> {
        let doc = self.read(path).await?;
        Ok(match doc.map.get(name) {
            Some(Value::String(s)) if !s.is_empty() => Some(SecretString::from(s.clone())),
            _ => None,
        })
    }

    /// Sets (or with `None` removes) `name` in the document at `path`, keeping its other keys.
    pub async fn set(&self, path: &str, name: &str, value: Option<&SecretString>) -> Result<(), SecretError> {
        for attempt in 0..CAS_ATTEMPTS {
            if attempt > 0 {
                // Another writer won the race: wait a little (jittered, growing) before reading again.
                let ms = rand::random_range(5..=25) * u64::from(attempt);
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            let mut doc = self.read(path).await?;
            match value {
                Some(v) => {
                    doc.map.insert(name.to_owned(), Value::String(v.expose_secret().to_owned()));
                }
                None => {
                    if doc.map.remove(name).is_none() {
                        return Ok(());
                    }
                }
            }
            let body = json!({ "data": doc.map, "options": { "cas": doc.version } });
            let resp = self
                .http
                .post(self.url(path)?)
                .header("X-Vault-Token", self.token.expose_secret())
                .json(&body)
                .send()
                .await
                .map_err(transport)?;
            let status = resp.status();
            if status.is_success() {
                return Ok(());
            }
            let text = resp.text().await.unwrap_or_default();
            if status.as_u16() == 400 && text.contains("check-and-set") {
                continue;
            }
            return Err(SecretError::Vault(format!(
                "writing {path} answered {}: {}",
                status.as_u16(),
                errors_of(&text)
            )));
        }
        Err(SecretError::Vault(format!("writing {path}: the document kept changing; try again")))
    }

    async fn read(&self, path: &str) -> Result<Doc, SecretError> {
        let resp = self
            .http
            .get(self.url(path)?)
            .header("X-Vault-Token", self.token.expose_secret())
            .send()
            .await
            .map_err(transport)?;
        let status = resp.status();
        let text = resp.text().await.map_err(transport)?;
        if status.as_u16() == 404 {
            // No document, or its current version was deleted (then the answer still carries the
            // version a check-and-set write must name).
            let version = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["data"]["metadata"]["version"].as_u64())
                .unwrap_or(0);
            return Ok(Doc { map: Map::new(), version });
        }
        if !status.is_success() {
            return Err(SecretError::Vault(format!(
                "reading {path} answered {}: {}",
                status.as_u16(),
                errors_of(&text)
            )));
        }
        let v: Value = serde_json::from_str(&text)
            .map_err(|_| SecretError::Vault(format!("reading {path}: the answer is not KV v2 JSON")))?;
        let data = &v["data"];
        // A deleted (soft-deleted) version answers data: null.
        let map = data["data"].as_object().cloned().unwrap_or_default();
        let version = data["metadata"]["version"].as_u64().unwrap_or(0);
        Ok(Doc { map, version })
    }
}

fn transport(e: reqwest::Error) -> SecretError {
    SecretError::Vault(format!("cannot reach Vault: {}", e.without_url()))
}

/// Vault's `{"errors": [...]}`, joined; never the request (which carries no secret anyway).
fn errors_of(text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v["errors"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("; ")))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "no error text".into())
}
