//! Organisation mappings of an integration: remote clients or groups → AlgaPSA clients.

use serde::Serialize;
use uuid::Uuid;

use super::{IntegrationError, store};
use crate::db::Db;
use crate::db::sql::{ColType, P};
use crate::providers::Provider;

/// One organisation mapping.
#[derive(Debug, Clone, Serialize)]
pub struct Mapping {
    pub mapping_id: String,
    pub external_organization_id: String,
    pub external_organization_name: Option<String>,
    pub client_id: Option<String>,
    pub auto_sync_assets: bool,
    pub default_contact_id: Option<String>,
}

/// A change of one mapping; `None` leaves a field as it is, `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct MappingPatch {
    pub client_id: Option<Option<Uuid>>,
    pub auto_sync_assets: Option<bool>,
    pub default_contact_id: Option<Option<Uuid>>,
}

/// The mappings of the tenant's `provider` integration, by remote name.
pub async fn mappings(db: &Db, tenant: Uuid, provider: Provider) -> Result<Vec<Mapping>, IntegrationError> {
    let integ = store::require(db, tenant, provider).await?;
    let d = db.dialect();
    let sql = format!(
        "SELECT {}, external_organization_id, external_organization_name, {}, \
         CAST(CASE WHEN auto_sync_assets THEN 1 ELSE 0 END AS BIGINT), {} \
         FROM rmm_organization_mappings WHERE tenant = {} AND integration_id = {} ORDER BY external_organization_name",
        d.text("mapping_id"),
        d.text("client_id"),
        d.text("default_contact_id"),
        d.param(1, ColType::Uuid),
        d.param(2, ColType::Uuid)
    );
    #[allow(clippy::type_complexity)]
    let rows: Vec<(String, String, Option<String>, Option<String>, i64, Option<String>)> =
        db.fetch(&sql, &[&tenant.to_string(), &integ.integration_id.to_string()]).await?;
    Ok(rows
        .into_iter()
        .map(|(mapping_id, ext, name, client_id, auto, contact)| Mapping {
            mapping_id,
            external_organization_id: ext,
            external_organization_name: name,
            client_id,
            auto_sync_assets: auto != 0,
            default_contact_id: contact,
        })
        .collect())
}

/// Changes one mapping of the tenant's `provider` integration. The client must exist in the tenant.
pub async fn patch_mapping(
    db: &Db,
    tenant: Uuid,
    provider: Provider,
    mapping_id: Uuid,
    patch: &MappingPatch,
) -> Result<(), IntegrationError> {
    let integ = store::require(db, tenant, provider).await?;
    let d = db.dialect();
    let mut sets = Vec::new();
    let mut binds: Vec<String> = vec![tenant.to_string(), integ.integration_id.to_string(), mapping_id.to_string()];
    if let Some(c) = patch.client_id {
        if let Some(c) = c {
            let exists: Vec<(i64,)> = db
                .fetch(
                    &format!(
                        "SELECT CAST(1 AS BIGINT) FROM clients WHERE tenant = {} AND client_id = {}",
                        d.param(1, ColType::Uuid),
                        d.param(2, ColType::Uuid)
                    ),
                    &[&tenant.to_string(), &c.to_string()],
                )
                .await?;
            if exists.is_empty() {
                return Err(IntegrationError::Invalid(format!("client {c} does not exist in this tenant")));
            }
        }
        binds.push(c.map(|c| c.to_string()).unwrap_or_default());
        sets.push(format!("client_id = {}", P(d).nullable(binds.len(), "uuid")));
    }
    if let Some(a) = patch.auto_sync_assets {
        sets.push(format!("auto_sync_assets = {}", P(d).bool(a)));
    }
    if let Some(c) = patch.default_contact_id {
        binds.push(c.map(|c| c.to_string()).unwrap_or_default());
        sets.push(format!("default_contact_id = {}", P(d).nullable(binds.len(), "uuid")));
    }
    if sets.is_empty() {
        return Err(IntegrationError::Invalid(
            "nothing to change: give client_id, auto_sync_assets or default_contact_id".into(),
        ));
    }
    let sql = format!(
        "UPDATE rmm_organization_mappings SET {} WHERE tenant = {} AND integration_id = {} AND mapping_id = {}",
        sets.join(", "),
        d.param(1, ColType::Uuid),
        d.param(2, ColType::Uuid),
        d.param(3, ColType::Uuid)
    );
    let b: Vec<&str> = binds.iter().map(String::as_str).collect();
    if db.execute(&sql, &b).await? == 0 {
        return Err(IntegrationError::MappingNotFound);
    }
    Ok(())
}
