//! RMM provider clients and their mapping to device snapshots, and what the providers share:
//! organisation-mapping upserts and the list of mapped scopes.

pub mod levelio;
pub mod ninjaone;
pub mod tactical;
pub mod tanium;

use std::collections::BTreeMap;
use std::fmt;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::db::sql::ColType;
use crate::db::{Db, DbError};
use crate::ingest::IngestCounts;

/// An RMM provider slug, as stored in `assets.rmm_provider` and `integration_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    #[serde(rename = "tacticalrmm")]
    TacticalRmm,
    Tanium,
    #[serde(rename = "ninjaone")]
    NinjaOne,
    #[serde(rename = "levelio")]
    LevelIo,
}

impl Provider {
    pub const ALL: [Provider; 4] = [Provider::TacticalRmm, Provider::Tanium, Provider::NinjaOne, Provider::LevelIo];

    pub const fn slug(self) -> &'static str {
        match self {
            Provider::TacticalRmm => "tacticalrmm",
            Provider::Tanium => "tanium",
            Provider::NinjaOne => "ninjaone",
            Provider::LevelIo => "levelio",
        }
    }

    pub fn from_slug(slug: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.slug() == slug)
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.slug())
    }
}

/// A webhook delivery as its provider's parser read it.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedWebhook {
    /// The device it is about (Tactical's `agent_id`). Empty for an event about no device: it is
    /// acknowledged and not recorded.
    pub device_id: String,
    /// The body as received (stored with the delivery).
    pub fields: serde_json::Map<String, Value>,
    /// The event, lower case (`trigger`, `resolve`, …), for AlgaPSA's `RMM_WEBHOOK_RECEIVED`.
    pub event: String,
}

/// How the ingress takes a provider's webhooks at `POST /api/webhooks/{provider}?tenant=<uuid>`:
/// the tenant secret compared with the `X-Alga-Webhook-Secret` header (or, for a provider that
/// signs its deliveries, an HMAC-SHA256 of the body under that secret in `signature_header`), and
/// the body's parser (its error is the 400 answer's message).
#[derive(Debug, Clone, Copy)]
pub struct WebhookSpec {
    pub secret: &'static str,
    /// The header carrying the body's HMAC-SHA256 (hex) under the secret, when the provider signs.
    pub signature_header: Option<&'static str>,
    pub parse: fn(&[u8]) -> Result<ParsedWebhook, String>,
}

/// The webhook of `provider`, for the providers whose webhooks rmm-sync takes.
pub fn webhook(provider: Provider) -> Option<WebhookSpec> {
    match provider {
        Provider::TacticalRmm => Some(tactical::WEBHOOK),
        Provider::NinjaOne => Some(ninjaone::WEBHOOK),
        Provider::LevelIo => Some(levelio::WEBHOOK),
        Provider::Tanium => None,
    }
}

/// The `tenant` of a webhook's query string (`tenant=<uuid>`, percent-decoded, trimmed); `None`
/// when absent or empty.
pub fn webhook_tenant(query: Option<&str>) -> Option<String> {
    query.and_then(|q| query_param(q, "tenant")).map(|t| t.trim().to_owned()).filter(|t| !t.is_empty())
}

/// A query parameter, percent-decoded as a form (`application/x-www-form-urlencoded`: `+` is a
/// space; a malformed escape is kept as it is; invalid UTF-8 becomes U+FFFD). The first one wins.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// The integration parts of `provider`; `None` for a provider rmm-sync does not implement yet.
/// Adding a provider: its folder with an `integration.rs`, and one arm here.
pub fn integration(provider: Provider) -> Option<&'static dyn crate::integrations::ProviderIntegration> {
    match provider {
        Provider::TacticalRmm => Some(&tactical::integration::Tactical),
        Provider::Tanium => Some(&tanium::integration::Tanium),
        Provider::NinjaOne => Some(&ninjaone::integration::NinjaOne),
        Provider::LevelIo => Some(&levelio::integration::Level),
    }
}

/// What an organisation (scope) sync did: Tactical clients or Tanium computer groups upserted as
/// `rmm_organization_mappings`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct OrgUpsert {
    /// Distinct remote scopes.
    pub processed: u64,
    pub created: u64,
    pub updated: u64,
}

/// Remote scopes (`id → (name, metadata)`) → `rmm_organization_mappings`. New scopes are inserted
/// unassigned with auto-sync on (the column default); existing ones get only their name, metadata
/// and `updated_at` refreshed: `client_id`, `auto_sync_assets`, `auto_create_tickets` and
/// `default_contact_id` are never touched. Scopes that disappeared remotely are left alone.
/// `stamp_synced` also sets `last_synced_at` (Tanium's scope sync does, Tactical's org sync not).
pub async fn upsert_org_mappings(
    db: &Db,
    tenant: Uuid,
    integration_id: Uuid,
    scopes: &BTreeMap<String, (String, Value)>,
    stamp_synced: bool,
) -> Result<OrgUpsert, DbError> {
    let d = db.dialect();
    let (u, t) = (ColType::Uuid, ColType::Text);
    let tenant_s = tenant.to_string();
    let integration_s = integration_id.to_string();
    let ids_j = serde_json::to_string(&scopes.keys().collect::<Vec<_>>()).expect("json");
    let existing: Vec<(String,)> = db
        .fetch(
            &format!(
                "SELECT external_organization_id FROM rmm_organization_mappings \
                 WHERE tenant = {} AND integration_id = {} AND external_organization_id {}",
                d.param(1, u),
                d.param(2, u),
                d.in_json(3, t)
            ),
            &[&tenant_s, &integration_s, &ids_j],
        )
        .await?;
    let rows: Vec<Value> = scopes
        .iter()
        .map(|(id, (name, metadata))| {
            json!({"mapping_id": Uuid::new_v4(), "external_organization_id": id, "name": name, "metadata": metadata})
        })
        .collect();
    let processed = rows.len() as u64;
    let updated = existing.len() as u64;
    let report = OrgUpsert { processed, created: processed - updated, updated };
    if rows.is_empty() {
        return Ok(report);
    }
    let now = crate::db::sql::fmt_ts(Utc::now());
    let synced = if stamp_synced { "last_synced_at = excluded.last_synced_at, " } else { "" };
    let sql = format!(
        "INSERT INTO rmm_organization_mappings (tenant, mapping_id, integration_id, external_organization_id, \
         external_organization_name, metadata, last_synced_at, created_at, updated_at) \
         SELECT {t}, r.mapping_id, {i}, r.external_organization_id, r.name, r.metadata, {s}, {n}, {n} FROM {rs} WHERE true \
         ON CONFLICT (tenant, integration_id, external_organization_id) DO UPDATE SET \
         external_organization_name = excluded.external_organization_name, metadata = excluded.metadata, \
         {synced}updated_at = excluded.updated_at",
        s = if stamp_synced { d.param(3, ColType::Timestamp) } else { "NULL".to_owned() },
        t = d.param(1, u),
        i = d.param(2, u),
        n = d.param(3, ColType::Timestamp),
        rs = d.recordset(
            4,
            &[("mapping_id", u), ("external_organization_id", t), ("name", t), ("metadata", ColType::Json)]
        ),
    );
    db.execute(&sql, &[&tenant_s, &integration_s, &now, &Value::Array(rows).to_string()]).await?;
    Ok(report)
}

/// What a device sync (or one unit of it) did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct UnitReport {
    pub counts: IngestCounts,
    /// Errors in order: failed devices, then unit failures.
    pub errors: Vec<String>,
    pub units: u64,
    pub units_failed: u64,
    /// What a dry run would do (nothing was written); absent when the unit wrote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<crate::ingest::dry_run::DryRun>,
}

impl UnitReport {
    /// Adds the counts, errors, units and dry-run plan of another (unit) report.
    pub fn absorb(&mut self, other: UnitReport) {
        self.counts.add(&other.counts);
        self.errors.extend(other.errors);
        self.units += other.units;
        self.units_failed += other.units_failed;
        if let Some(dry) = other.dry_run {
            self.dry_run.get_or_insert_with(Default::default).absorb(dry);
        }
    }
}

/// A scope that takes part in device syncs: mapped to a client, auto-sync on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedScope {
    /// `external_organization_id`.
    pub scope: String,
    pub client_id: Uuid,
}

/// The integration's mapped scopes with auto-sync on, ordered by scope id.
pub async fn mapped_scopes(db: &Db, tenant: Uuid, integration_id: Uuid) -> Result<Vec<MappedScope>, DbError> {
    let d = db.dialect();
    let rows: Vec<(String, String)> = db
        .fetch(
            &format!(
                "SELECT external_organization_id, {} FROM rmm_organization_mappings \
                 WHERE tenant = {} AND integration_id = {} AND client_id IS NOT NULL AND auto_sync_assets \
                 ORDER BY external_organization_id",
                d.text("client_id"),
                d.param(1, ColType::Uuid),
                d.param(2, ColType::Uuid)
            ),
            &[&tenant.to_string(), &integration_id.to_string()],
        )
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(scope, client)| Some(MappedScope { scope, client_id: Uuid::parse_str(&client).ok()? }))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params() {
        assert_eq!(query_param("tenant=abc&x=1", "tenant").as_deref(), Some("abc"));
        assert_eq!(query_param("x=1&tenant=a%2Db", "tenant").as_deref(), Some("a-b"));
        assert_eq!(query_param("x=1", "tenant"), None);
        assert_eq!(query_param("tenant=%zz", "tenant").as_deref(), Some("%zz"));
        assert_eq!(query_param("tenant=%4", "tenant").as_deref(), Some("%4"));
        assert_eq!(query_param("tenant=%é1", "tenant").as_deref(), Some("%é1"));
        assert_eq!(query_param("tenant=a+b%20c&tenant=d", "tenant").as_deref(), Some("a b c"));
        assert_eq!(query_param("&&tenant", "tenant").as_deref(), Some(""));
        assert_eq!(webhook_tenant(Some("tenant=+%20+")), None);
        assert_eq!(webhook_tenant(None), None);
    }
}
