//! An integration as the admin API shows it: connection state, settings, credentials with their
//! secrets masked, and the summary counts.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{IntegrationError, store};
use crate::db::sql::ColType;
use crate::db::{Db, DbError};
use crate::providers::Provider;
use crate::secrets::SecretStore;

/// The view of an integration (the JSON of `GET /tenants/{tenant}/integrations/{provider}`).
#[derive(Debug, Clone, Serialize)]
pub struct IntegrationView {
    pub provider: Provider,
    pub integration_id: Uuid,
    pub config: ConfigView,
    pub settings: Map<String, Value>,
    /// The provider's credentials part: which secrets are set, masked.
    pub credentials: Value,
    pub summary: Summary,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigView {
    pub instance_url: Option<String>,
    pub auth_mode: Value,
    pub is_active: bool,
    pub connected_at: Option<String>,
    pub last_sync_at: Option<String>,
    pub sync_error: Option<String>,
}

/// What the integration has brought in.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub mapped_organizations: i64,
    pub synced_devices: i64,
    pub active_alerts: i64,
    /// Synced devices by agent status (`unknown` for none).
    pub by_agent_status: BTreeMap<String, i64>,
}

/// `••••abcd` (AlgaPSA's maskSecret).
pub fn mask(s: &str) -> String {
    let n = s.chars().count();
    if n == 0 {
        String::new()
    } else if n <= 4 {
        "•".repeat(n)
    } else {
        let tail: String = s.chars().skip(n - 4).collect();
        format!("{}{tail}", "•".repeat(n - 4))
    }
}

/// The tenant's `provider` integration with its secrets masked and its summary.
pub async fn view(
    db: &Db,
    secrets: &SecretStore,
    tenant: Uuid,
    provider: Provider,
) -> Result<IntegrationView, IntegrationError> {
    let parts = super::parts_of(provider)?;
    let integ = store::require(db, tenant, provider).await?;
    let instance_url = match &integ.instance_url {
        Some(u) => Some(u.clone()),
        None => super::secret_text(secrets, tenant, parts.url_secret())
            .await
            .or_else(|| parts.default_instance_url().map(str::to_owned)),
    };
    let credentials = parts.credentials(secrets, tenant, &integ.settings).await;
    let summary = summary(db, tenant, provider, integ.integration_id).await?;
    Ok(IntegrationView {
        provider,
        integration_id: integ.integration_id,
        config: ConfigView {
            instance_url,
            auth_mode: parts.auth_mode(&integ.settings),
            is_active: integ.is_active,
            connected_at: integ.connected_at,
            last_sync_at: integ.last_sync_at,
            sync_error: integ.sync_error,
        },
        settings: integ.settings,
        credentials,
        summary,
    })
}

/// Mapped organisations and open alerts of the integration; synced devices of the provider in the
/// tenant, in total and by agent status.
pub async fn summary(db: &Db, tenant: Uuid, provider: Provider, integration: Uuid) -> Result<Summary, DbError> {
    let d = db.dialect();
    let t = tenant.to_string();
    let i = integration.to_string();
    let (u1, u2) = (d.param(1, ColType::Uuid), d.param(2, ColType::Uuid));
    let scalar = |sql: String| {
        let (t, i) = (t.clone(), i.clone());
        async move { db.fetch::<(i64,)>(&sql, &[&t, &i]).await.map(|r| r.first().map(|x| x.0).unwrap_or(0)) }
    };
    let mapped = scalar(format!(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM rmm_organization_mappings WHERE tenant = {u1} AND integration_id = {u2}"
    ))
    .await?;
    let alerts = scalar(format!(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM rmm_alerts WHERE tenant = {u1} AND integration_id = {u2} AND status = 'active'"
    ))
    .await?;
    let p2 = d.param(2, ColType::Text);
    let devices: Vec<(i64,)> = db
        .fetch(
            &format!(
                "SELECT CAST(COUNT(*) AS BIGINT) FROM assets WHERE tenant = {u1} AND rmm_provider = {p2} AND rmm_device_id IS NOT NULL"
            ),
            &[&t, provider.slug()],
        )
        .await?;
    let by_status: Vec<(Option<String>, i64)> = db
        .fetch(
            &format!(
                "SELECT agent_status, CAST(COUNT(*) AS BIGINT) FROM assets WHERE tenant = {u1} AND rmm_provider = {p2} \
                 AND rmm_device_id IS NOT NULL GROUP BY agent_status"
            ),
            &[&t, provider.slug()],
        )
        .await?;
    let mut by_agent_status = BTreeMap::new();
    for (s, n) in by_status {
        by_agent_status.insert(s.unwrap_or_else(|| "unknown".into()), n);
    }
    Ok(Summary {
        mapped_organizations: mapped,
        synced_devices: devices.first().map(|x| x.0).unwrap_or(0),
        active_alerts: alerts,
        by_agent_status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_like_algapsa() {
        assert_eq!(mask(""), "");
        assert_eq!(mask("abc"), "•••");
        assert_eq!(mask("api_abcdefghijklmnop"), format!("{}mnop", "•".repeat(16)));
    }
}
