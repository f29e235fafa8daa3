//! Tenants and their clients in standalone mode (in algapsa mode they are AlgaPSA's).

use uuid::Uuid;

use super::IntegrationError;
use crate::db::sql::ColType;
use crate::db::{Db, DbError};

/// Does the tenant exist?
pub async fn tenant_exists(db: &Db, tenant: Uuid) -> Result<bool, DbError> {
    let d = db.dialect();
    let rows: Vec<(i64,)> = db
        .fetch(
            &format!("SELECT CAST(1 AS BIGINT) FROM tenants WHERE tenant = {}", d.param(1, ColType::Uuid)),
            &[&tenant.to_string()],
        )
        .await?;
    Ok(!rows.is_empty())
}

fn required_name(name: &str) -> Result<&str, IntegrationError> {
    let name = name.trim();
    if name.is_empty() { Err(IntegrationError::Invalid("name is required".into())) } else { Ok(name) }
}

/// Creates or renames a tenant (contact e-mail default `admin@<tenant>.invalid`, kept on rename).
/// Returns the name as saved (trimmed).
pub async fn put_tenant(db: &Db, tenant: Uuid, name: &str, email: Option<&str>) -> Result<String, IntegrationError> {
    let name = required_name(name)?;
    let d = db.dialect();
    let email = email.map(str::to_owned).unwrap_or_else(|| format!("admin@{tenant}.invalid"));
    let sql = format!(
        "INSERT INTO tenants (tenant, client_name, email) VALUES ({}, {}, {}) \
         ON CONFLICT (tenant) DO UPDATE SET client_name = excluded.client_name",
        d.param(1, ColType::Uuid),
        d.param(2, ColType::Text),
        d.param(3, ColType::Text)
    );
    db.execute(&sql, &[&tenant.to_string(), name, &email]).await?;
    Ok(name.to_owned())
}

/// Creates or renames a client of an existing tenant; two clients of a tenant cannot share a
/// name. Returns the name as saved (trimmed).
pub async fn put_client(db: &Db, tenant: Uuid, client_id: Uuid, name: &str) -> Result<String, IntegrationError> {
    let name = required_name(name)?;
    if !tenant_exists(db, tenant).await? {
        return Err(IntegrationError::TenantNotFound);
    }
    let d = db.dialect();
    let sql = format!(
        "INSERT INTO clients (tenant, client_id, client_name) VALUES ({}, {}, {}) \
         ON CONFLICT (tenant, client_id) DO UPDATE SET client_name = excluded.client_name",
        d.param(1, ColType::Uuid),
        d.param(2, ColType::Uuid),
        d.param(3, ColType::Text)
    );
    match db.execute(&sql, &[&tenant.to_string(), &client_id.to_string(), name]).await {
        Ok(_) => Ok(name.to_owned()),
        Err(e) if e.to_string().contains("UNIQUE") || e.to_string().contains("unique") => {
            Err(IntegrationError::Conflict(format!("another client of this tenant is already named {name:?}")))
        }
        Err(e) => Err(e.into()),
    }
}
