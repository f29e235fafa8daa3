//! Admin API keys: made by `rmm-sync api-key create`, stored as a SHA-256 hash in
//! `rmm_sync.api_keys`, scoped to one tenant or global, read-only or read-write. A global
//! read-write bootstrap key can also come from `RMM_SYNC_ADMIN_TOKEN`.

use rand::RngCore;
use rmm_shared::db::sql::{ColType, fmt_ts};
use rmm_shared::db::{Db, DbError};
use rmm_shared::secrets::ct_eq;
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// `bootstrap` for `RMM_SYNC_ADMIN_TOKEN`, else the key id.
    pub key_id: String,
    /// `None`: a global key (every tenant).
    pub tenant: Option<Uuid>,
    pub write: bool,
}

impl Principal {
    /// May this caller see `tenant`?
    pub fn can_read(&self, tenant: Uuid) -> bool {
        self.tenant.is_none_or(|t| t == tenant)
    }
    /// May this caller change `tenant`?
    pub fn can_write(&self, tenant: Uuid) -> bool {
        self.write && self.can_read(tenant)
    }
    pub fn is_global(&self) -> bool {
        self.tenant.is_none()
    }
}

/// Read-only or read-write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyScope {
    Read,
    Write,
}

impl KeyScope {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyScope::Read => "read",
            KeyScope::Write => "write",
        }
    }
}

/// A key made by [`create_key`]; `key` is shown once and never stored.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub key_id: String,
    pub key: String,
}

fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Makes a key. `tenant = None`: a global key.
pub async fn create_key(db: &Db, tenant: Option<Uuid>, scope: KeyScope, name: &str) -> Result<NewKey, DbError> {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    let key = format!("rmk_{}", hex::encode(bytes));
    let key_id = ulid::Ulid::generate().to_string();
    let d = db.dialect();
    let t = ColType::Text;
    let tenant_expr = rmm_shared::db::sql::P(d).nullable(4, "uuid");
    let sql = format!(
        "INSERT INTO {} (key_id, key_hash, key_prefix, tenant, scope, name, created_at) VALUES ({}, {}, {}, {tenant_expr}, {}, {}, {})",
        db.ours("api_keys"),
        d.param(1, t),
        d.param(2, t),
        d.param(3, t),
        d.param(5, t),
        d.param(6, t),
        d.param(7, ColType::Timestamp),
    );
    let tenant_s = tenant.map(|t| t.to_string()).unwrap_or_default();
    let now = fmt_ts(chrono::Utc::now());
    let prefix: String = key.chars().take(12).collect();
    db.execute(&sql, &[&key_id, &hash(&key), &prefix, &tenant_s, scope.as_str(), name, &now]).await?;
    Ok(NewKey { key_id, key })
}

/// Revokes a key. Returns whether one was revoked.
pub async fn revoke_key(db: &Db, key_id: &str) -> Result<bool, DbError> {
    let d = db.dialect();
    let sql = format!(
        "UPDATE {} SET revoked_at = {} WHERE key_id = {} AND revoked_at IS NULL",
        db.ours("api_keys"),
        d.param(1, ColType::Timestamp),
        d.param(2, ColType::Text)
    );
    Ok(db.execute(&sql, &[&fmt_ts(chrono::Utc::now()), key_id]).await? > 0)
}

/// A key as listed by the CLI (never the key itself).
#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub key_id: String,
    pub prefix: String,
    pub tenant: Option<String>,
    pub scope: String,
    pub name: Option<String>,
    pub revoked: bool,
}

type KeyRow = (String, String, Option<String>, String, Option<String>, i64);

/// Keys, oldest first.
pub async fn list_keys(db: &Db) -> Result<Vec<KeyInfo>, DbError> {
    let d = db.dialect();
    let sql = format!(
        "SELECT key_id, key_prefix, {}, scope, name, CAST(CASE WHEN revoked_at IS NULL THEN 0 ELSE 1 END AS BIGINT) \
         FROM {} ORDER BY created_at",
        d.text("tenant"),
        db.ours("api_keys")
    );
    let rows: Vec<KeyRow> = db.fetch(&sql, &[]).await?;
    Ok(rows
        .into_iter()
        .map(|(key_id, prefix, tenant, scope, name, r)| KeyInfo {
            key_id,
            prefix,
            tenant,
            scope,
            name,
            revoked: r != 0,
        })
        .collect())
}

/// The caller a presented key belongs to, if any.
pub async fn authenticate(
    db: &Db,
    bootstrap: Option<&SecretString>,
    presented: &str,
) -> Result<Option<Principal>, DbError> {
    let presented = presented.trim();
    if presented.is_empty() {
        return Ok(None);
    }
    if let Some(b) = bootstrap
        && ct_eq(presented, b)
    {
        return Ok(Some(Principal { key_id: "bootstrap".into(), tenant: None, write: true }));
    }
    if !presented.starts_with("rmk_") {
        return Ok(None);
    }
    let d = db.dialect();
    let sql = format!(
        "SELECT key_id, {}, scope FROM {} WHERE key_hash = {} AND revoked_at IS NULL",
        d.text("tenant"),
        db.ours("api_keys"),
        d.param(1, ColType::Text)
    );
    // The lookup is by hash: equal hashes mean equal keys, and the hash leaks nothing by timing.
    let rows: Vec<(String, Option<String>, String)> = db.fetch(&sql, &[&hash(presented)]).await?;
    Ok(rows.into_iter().next().map(|(key_id, tenant, scope)| Principal {
        key_id,
        tenant: tenant.and_then(|t| t.parse().ok()),
        write: scope == "write",
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes() {
        let t = Uuid::new_v4();
        let other = Uuid::new_v4();
        let tenant_read = Principal { key_id: "k".into(), tenant: Some(t), write: false };
        assert!(tenant_read.can_read(t) && !tenant_read.can_read(other) && !tenant_read.can_write(t));
        let global = Principal { key_id: "g".into(), tenant: None, write: true };
        assert!(global.can_write(t) && global.can_write(other));
    }
}
