//! The connection test: the provider's client built from the integration row and secrets, one
//! cheap call. Success activates the integration.

use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{IntegrationError, store};
use crate::config::UpstreamSettings;
use crate::db::Db;
use crate::providers::Provider;
use crate::secrets::SecretStore;
use crate::upstream_calls::CallLog;

/// What a provider client is built with.
pub struct Connection<'a> {
    pub db: &'a Db,
    pub secrets: &'a SecretStore,
    pub upstream: &'a UpstreamSettings,
    /// The calls are counted for the tenant here.
    pub calls: &'a CallLog,
}

/// How a connection test ended.
#[derive(Debug, Clone, PartialEq)]
pub enum TestOutcome {
    /// Connected; what the provider adds (Tactical: `clients`, Tanium: `computerGroupsVisible`).
    Connected(Map<String, Value>),
    /// A Knox account with TOTP: test again with the current code.
    TotpRequired,
    /// Why it failed, for the operator.
    Failed(String),
}

impl TestOutcome {
    pub fn success(&self) -> bool {
        matches!(self, TestOutcome::Connected(_))
    }

    /// The answer of `POST …/test`: `{success: true, …}`, `{success: false, totpRequired: true,
    /// error}` or `{success: false, error}`.
    pub fn to_json(&self) -> Value {
        match self {
            TestOutcome::Connected(detail) => {
                let mut m = Map::new();
                m.insert("success".into(), json!(true));
                m.extend(detail.clone());
                Value::Object(m)
            }
            TestOutcome::TotpRequired => {
                json!({ "success": false, "totpRequired": true, "error": "TOTP code required" })
            }
            TestOutcome::Failed(e) => json!({ "success": false, "error": e }),
        }
    }
}

/// Tests the tenant's `provider` integration. Success makes it active (connected now, no sync
/// error); a failure of a provider that says so makes it inactive with the error kept.
pub async fn test(
    conn: &Connection<'_>,
    tenant: Uuid,
    provider: Provider,
    totp_code: Option<&str>,
) -> Result<TestOutcome, IntegrationError> {
    let parts = super::parts_of(provider)?;
    let integ = store::require(conn.db, tenant, provider).await?;
    let outcome = match store::config(conn.db, tenant, integ.integration_id).await {
        Ok(config) => parts.test(conn, tenant, config, totp_code).await,
        Err(e) => TestOutcome::Failed(e.to_string()),
    };
    match &outcome {
        TestOutcome::Connected(_) => store::mark_connected(conn.db, tenant, integ.integration_id).await?,
        TestOutcome::Failed(e) if parts.failed_test_deactivates() => {
            store::mark_failed(conn.db, tenant, integ.integration_id, e).await?
        }
        _ => {}
    }
    Ok(outcome)
}
