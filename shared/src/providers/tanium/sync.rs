//! Tanium syncs: computer groups → organisation mappings, endpoints → the shared ingestion
//! pipeline, criticality → `asset_facts` (docs/tanium-setup.md).
//!
//! Deliberate fixes over AlgaPSA, each covered by tests:
//! - **One owner per endpoint.** Computer groups overlap. Before ingesting, the sync reads which
//!   mapped groups hold each endpoint; an endpoint in several is ingested once per run, under the
//!   mapped group with the fewest members (the most specific one), ties broken by the lowest group
//!   id. The rule depends only on membership, not on the order groups are read, so the endpoint
//!   stays with one client from run to run.
//! - **Group isolation.** A group whose Gateway reads fail is reported (`Tanium group <id>: …`)
//!   and the other groups still run.
//! - **Tombstones.** After a complete full pass in which every mapped group was read without
//!   error, endpoints that were mapped under one of those groups and are in none of them any more
//!   are soft-deleted (asset `inactive`/`offline`, mapping `deleted`). Incremental runs never
//!   tombstone.
//! - **A real delta.** Incremental runs ask the Gateway for members seen since the cursor
//!   (`eidLastSeen GTE since`, combined with the group filter). If the Gateway refuses that filter
//!   the group is read whole and the window is applied here, as AlgaPSA does.
//! - **Asset API fallback** (when a mapped group comes back empty and the integration allows it)
//!   pages through Tanium's documented asset listing and only refreshes the status and last-seen
//!   time of assets already mapped under that group: it never creates assets (Asset API ids and
//!   group membership are not the Gateway's) and never overwrites hardware or software data.
//!   Its status refresh is one statement outside the pipeline's plan, so it is not recorded in the
//!   asset history.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::asset_api::{self, AssetRow};
use super::client::{TaniumClient, group_filter, group_seen_since_filter};
use super::error::TaniumError;
use super::mapping::{changed_since, endpoint_snapshot};
use super::record::{CRITICALITY_SENSOR, Criticality, EndpointRecord};
use crate::db::sql::{ColType, fmt_ts};
use crate::db::{Db, DbError, Dialect};
use crate::facts::{AssetFact, upsert_facts};
use crate::ingest::{DeviceSnapshot, IngestAction, IngestCounts, IngestRun, Item, Lifecycle, ingest_page};
use crate::providers::{MappedScope, mapped_scopes, upsert_org_mappings};

use super::PROVIDER;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Tanium(#[from] TaniumError),
    #[error("database error: {0}")]
    Db(#[from] DbError),
}

/// Computer groups → `rmm_organization_mappings`: new groups unassigned with
/// auto-sync on; existing ones keep `client_id`, `auto_sync_assets`, `auto_create_tickets` and
/// `default_contact_id`. A group listed twice is counted once.
pub async fn sync_scopes(
    db: &Db,
    tenant: Uuid,
    integration_id: Uuid,
    client: &TaniumClient,
) -> Result<crate::providers::OrgUpsert, SyncError> {
    let groups = client.list_computer_groups().await?;
    let scopes: BTreeMap<String, (String, Value)> =
        groups.into_iter().map(|g| (g.id, (g.name, json!({ "kind": "computer_group" })))).collect();
    Ok(upsert_org_mappings(db, tenant, integration_id, &scopes, true).await?)
}

/// Full pass or incremental window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    Full,
    /// Endpoints seen at or after `since` (inclusive).
    Incremental {
        since: DateTime<Utc>,
    },
}

impl SyncMode {
    fn since(self) -> Option<DateTime<Utc>> {
        match self {
            SyncMode::Full => None,
            SyncMode::Incremental { since } => Some(since),
        }
    }
}

/// Options of a device sync.
#[derive(Debug, Clone, Copy, Default)]
pub struct SyncOptions {
    /// `settings.provider_settings.tanium.use_asset_api_fallback`.
    pub use_asset_api_fallback: bool,
}

/// What a device sync did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DeviceSyncReport {
    pub counts: IngestCounts,
    /// Failed endpoints, then failed groups.
    pub errors: Vec<String>,
    pub groups: u64,
    pub groups_failed: u64,
    /// Endpoints skipped in a group because a more specific mapped group owns them.
    pub duplicates_skipped: u64,
    /// Endpoints outside the incremental window (read, not written).
    pub unchanged: u64,
    pub facts_written: u64,
    /// Assets refreshed from the Asset API fallback.
    pub fallback_refreshed: u64,
    /// Groups read with the Gateway's `eidLastSeen` filter / with the window applied here.
    pub delta_server: u64,
    pub delta_client: u64,
    /// Whether the run tombstoned (a full pass with every group read).
    pub tombstone_pass: bool,
}

/// Runs a device sync over every mapped group with auto-sync on. A dry run (`run`) writes no
/// criticality facts, and reads the Asset API fallback without writing its refresh (the assets it
/// would refresh are not planned as tombstones).
pub async fn sync_devices(
    db: &Db,
    tenant: Uuid,
    run: &IngestRun,
    integration_id: Uuid,
    client: &TaniumClient,
    mode: SyncMode,
    options: SyncOptions,
) -> Result<DeviceSyncReport, SyncError> {
    let scopes = mapped_scopes(db, tenant, integration_id).await?;
    let mut report = DeviceSyncReport { groups: scopes.len() as u64, ..Default::default() };
    let mut failed: HashSet<String> = HashSet::new();

    // 1. Membership: which mapped groups hold each endpoint.
    let mut members: Vec<Vec<String>> = Vec::with_capacity(scopes.len());
    let mut transient: Option<TaniumError> = None;
    let mut transient_failures = 0usize;
    for scope in &scopes {
        match client.endpoint_ids(&group_filter(Some(&scope.scope))).await {
            Ok(ids) => members.push(ids),
            Err(e) => {
                fail_group(&mut report, &mut failed, &scope.scope, &e);
                members.push(Vec::new());
                if e.is_transient() {
                    transient_failures += 1;
                    transient.get_or_insert(e);
                }
            }
        }
    }
    // Every group failed for a reason that may pass (Gateway down, 5xx, rate limit): the whole
    // run is retried later rather than reported as done.
    if !scopes.is_empty()
        && transient_failures == scopes.len()
        && let Some(e) = transient
    {
        return Err(SyncError::Tanium(e));
    }
    let owner = owners(&scopes, &members);
    let mut seen: HashSet<String> = members.into_iter().flatten().collect();

    // 2. Criticality: one probe of the sensor per run.
    let criticality_probe = match client.criticality_metadata().await {
        Ok(sensors) if sensors.iter().any(|s| s.name == CRITICALITY_SENSOR) => true,
        Ok(_) => {
            tracing::warn!(tenant = %tenant, "Tanium criticality sensor is not visible to this token; criticality is left as it is");
            false
        }
        Err(e) => {
            tracing::warn!(tenant = %tenant, error = %e.diagnostic(), "Tanium criticality enrichment failed; continuing inventory sync");
            false
        }
    };

    // 3. Inventory, group by group.
    let mut ingested: HashSet<String> = HashSet::new();
    for (i, scope) in scopes.iter().enumerate() {
        if failed.contains(&scope.scope) {
            continue;
        }
        let ctx = GroupCtx {
            db,
            tenant,
            run,
            integration_id,
            client,
            scope,
            index: i,
            owner: &owner,
            mode,
            criticality_probe,
        };
        match sync_group(&ctx, &mut report, &mut ingested, &mut seen, options).await {
            Ok(()) => {}
            Err(SyncError::Db(e)) => return Err(SyncError::Db(e)),
            Err(SyncError::Tanium(e)) => fail_group(&mut report, &mut failed, &scope.scope, &e),
        }
    }

    // 4. Tombstones after a complete full pass.
    if mode == SyncMode::Full && failed.is_empty() && !scopes.is_empty() {
        report.tombstone_pass = true;
        let walked: Vec<&str> = scopes.iter().map(|s| s.scope.as_str()).collect();
        tombstone_missing(db, tenant, run, integration_id, &walked, &seen, &mut report).await?;
    }
    Ok(report)
}

/// Refreshes one endpoint (`POST /api/v1/assets/{asset_id}/rmm/refresh`): read from the Gateway by
/// id (`path: id, op: EQ`) with its Last Reboot and criticality, and written under the mapped
/// computer group it was last synced under (the group the device sync chose for it). An endpoint
/// the Gateway does not return, or one whose group is no longer mapped with auto-sync on, is
/// reported as skipped: the next `tanium-full-sync` decides about it (it never tombstones here).
pub async fn refresh_endpoint(
    db: &Db,
    tenant: Uuid,
    run: &IngestRun,
    integration_id: Uuid,
    client: &TaniumClient,
    endpoint_id: &str,
) -> Result<crate::ingest::IngestOutcome, SyncError> {
    let skipped = |error: String| crate::ingest::IngestOutcome {
        external_device_id: endpoint_id.to_owned(),
        action: IngestAction::Skipped,
        asset_id: None,
        error: Some(error),
    };
    let d = db.dialect();
    let realms: Vec<(Option<String>,)> = db
        .fetch(
            &format!(
                "SELECT external_realm_id FROM tenant_external_entity_mappings WHERE tenant = {} \
                 AND integration_type = '{PROVIDER}' AND alga_entity_type = 'asset' AND external_entity_id = {} \
                 ORDER BY updated_at DESC",
                d.param(1, ColType::Uuid),
                d.param(2, ColType::Text),
            ),
            &[&tenant.to_string(), endpoint_id],
        )
        .await?;
    let scopes = mapped_scopes(db, tenant, integration_id).await?;
    let Some(scope) = realms.iter().filter_map(|r| r.0.as_deref()).find_map(|r| scopes.iter().find(|s| s.scope == r))
    else {
        return Ok(skipped(format!(
            "Tanium endpoint {endpoint_id} was not synced under a computer group mapped with auto-sync on; \
             run tanium-full-sync"
        )));
    };
    let filter = json!({ "path": "id", "op": "EQ", "value": endpoint_id });
    let mut pager = client.endpoint_pages(filter.clone(), Some(scope.scope.clone()));
    let Some(mut rec) = pager.next_page().await?.and_then(|page| page.into_iter().find(|r| r.id == endpoint_id)) else {
        return Ok(skipped(format!("Tanium endpoint {endpoint_id} was not found")));
    };
    rec.last_reboot_at = client.last_reboot(&filter).await.ok().and_then(|mut m| m.remove(endpoint_id));
    let now = Utc::now();
    let snapshot = endpoint_snapshot(&rec, integration_id, &scope.scope, now);
    let page =
        ingest_page(db, tenant, run, &[Item { snapshot: &snapshot, client_id: Some(scope.client_id) }], now).await?;
    let outcome = page.outcomes.into_iter().next().expect("one outcome per item");
    if let Some(asset) = outcome.asset_id.filter(|_| !run.is_dry())
        && let Ok(readings) = client.criticality_readings(&filter).await
    {
        let fact = criticality_fact(asset, integration_id, readings.get(endpoint_id), now);
        if let Err(e) = upsert_facts(db, tenant, &[fact], now).await {
            tracing::warn!(%tenant, endpoint = endpoint_id, error = %e, "Tanium criticality fact not written");
        }
    }
    Ok(outcome)
}

fn fail_group(report: &mut DeviceSyncReport, failed: &mut HashSet<String>, scope: &str, e: &TaniumError) {
    if failed.insert(scope.to_owned()) {
        report.groups_failed += 1;
        report.errors.push(format!("Tanium group {scope}: {e}"));
    }
}

/// The owning group (index into `scopes`) of every endpoint: fewest members, then lowest id
/// (numerically when both ids are numbers).
fn owners(scopes: &[MappedScope], members: &[Vec<String>]) -> HashMap<String, usize> {
    let rank = |i: usize| {
        let id = &scopes[i].scope;
        (members[i].len(), id.parse::<u64>().ok().map_or((1, 0), |n| (0, n)), id.clone())
    };
    let mut owner: HashMap<String, usize> = HashMap::new();
    for (i, ids) in members.iter().enumerate() {
        for id in ids {
            owner
                .entry(id.clone())
                .and_modify(|cur| {
                    if rank(i) < rank(*cur) {
                        *cur = i;
                    }
                })
                .or_insert(i);
        }
    }
    owner
}

struct GroupCtx<'a> {
    db: &'a Db,
    tenant: Uuid,
    run: &'a IngestRun,
    integration_id: Uuid,
    client: &'a TaniumClient,
    scope: &'a MappedScope,
    index: usize,
    owner: &'a HashMap<String, usize>,
    mode: SyncMode,
    criticality_probe: bool,
}

async fn sync_group(
    ctx: &GroupCtx<'_>,
    report: &mut DeviceSyncReport,
    ingested: &mut HashSet<String>,
    seen: &mut HashSet<String>,
    options: SyncOptions,
) -> Result<(), SyncError> {
    let scope = ctx.scope.scope.as_str();
    let mut filter = group_filter(Some(scope));
    let mut pager = ctx.client.endpoint_pages(filter.clone(), Some(scope.to_owned()));
    let mut first = None;
    if let SyncMode::Incremental { since } = ctx.mode {
        let delta = group_seen_since_filter(scope, since);
        let mut delta_pager = ctx.client.endpoint_pages(delta.clone(), Some(scope.to_owned()));
        match delta_pager.next_page().await {
            Ok(page) => {
                report.delta_server += 1;
                first = page;
                filter = delta;
                pager = delta_pager;
            }
            Err(TaniumError::GraphQl { messages, .. }) => {
                tracing::info!(group = scope, error = %messages.join("; "), "the Gateway refused the eidLastSeen filter; reading the whole group");
                report.delta_client += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let first = match first {
        Some(p) => Some(p),
        None => pager.next_page().await?,
    };
    // Best effort: a failing sensor read leaves uptime out, and criticality facts alone.
    let reboot = ctx.client.last_reboot(&filter).await.unwrap_or_else(|e| {
        tracing::warn!(group = scope, error = %e.diagnostic(), "Tanium Last Reboot sensor query failed; continuing without uptime enrichment");
        HashMap::new()
    });
    let criticality = if ctx.criticality_probe {
        match ctx.client.criticality_readings(&filter).await {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!(group = scope, error = %e.diagnostic(), "Tanium criticality enrichment failed; continuing inventory sync");
                None
            }
        }
    } else {
        None
    };
    let mut total = 0usize;
    let mut page = first;
    while let Some(records) = page {
        total += records.len();
        ingest_records(ctx, report, ingested, seen, records, &reboot, criticality.as_ref()).await?;
        page = pager.next_page().await?;
    }
    if total == 0 && ctx.mode == SyncMode::Full && options.use_asset_api_fallback && ctx.client.has_asset_api() {
        asset_fallback(ctx, report, seen).await?;
    }
    Ok(())
}

async fn ingest_records(
    ctx: &GroupCtx<'_>,
    report: &mut DeviceSyncReport,
    ingested: &mut HashSet<String>,
    seen: &mut HashSet<String>,
    records: Vec<EndpointRecord>,
    reboot: &HashMap<String, String>,
    criticality: Option<&HashMap<String, Criticality>>,
) -> Result<(), SyncError> {
    let now = Utc::now();
    let since = ctx.mode.since();
    let mut snapshots = Vec::with_capacity(records.len());
    for mut rec in records {
        seen.insert(rec.id.clone());
        if ctx.owner.get(&rec.id).is_some_and(|o| *o != ctx.index) || ingested.contains(&rec.id) {
            report.duplicates_skipped += 1;
            continue;
        }
        if !changed_since(&rec, since) {
            report.unchanged += 1;
            continue;
        }
        ingested.insert(rec.id.clone());
        rec.last_reboot_at = reboot.get(&rec.id).cloned();
        snapshots.push(endpoint_snapshot(&rec, ctx.integration_id, &ctx.scope.scope, now));
    }
    if snapshots.is_empty() {
        return Ok(());
    }
    let items: Vec<Item<'_>> =
        snapshots.iter().map(|s| Item { snapshot: s, client_id: Some(ctx.scope.client_id) }).collect();
    let page = ingest_page(ctx.db, ctx.tenant, ctx.run, &items, now).await?;
    report.counts.add(&page.counts);
    report
        .errors
        .extend(page.outcomes.iter().filter(|o| o.action == IngestAction::Failed).filter_map(|o| o.error.clone()));
    if let Some(readings) = criticality.filter(|_| !ctx.run.is_dry()) {
        let facts: Vec<AssetFact> = page
            .outcomes
            .iter()
            .filter_map(|o| Some((o.asset_id?, readings.get(&o.external_device_id))))
            .map(|(asset, reading)| criticality_fact(asset, ctx.integration_id, reading, now))
            .collect();
        match upsert_facts(ctx.db, ctx.tenant, &facts, now).await {
            Ok(n) => report.facts_written += n,
            // The devices themselves were written; the facts are retried on the next run.
            Err(e) => {
                report.errors.push(format!("Tanium group {}: criticality facts not written: {e}", ctx.scope.scope))
            }
        }
    }
    Ok(())
}

/// The criticality fact of one asset: the reading, or "unavailable" when the
/// query worked but had nothing for this endpoint.
pub fn criticality_fact(
    asset_id: Uuid,
    integration_id: Uuid,
    reading: Option<&Criticality>,
    now: DateTime<Utc>,
) -> AssetFact {
    let (available, text, number, value_json) = match reading {
        Some(c) => (
            c.is_available,
            c.label.clone(),
            c.multiplier,
            json!({
                "sensorName": CRITICALITY_SENSOR,
                "columns": c.columns.iter().map(|(n, _)| n).collect::<Vec<_>>(),
                "rawValues": c.columns.iter().map(|(n, v)| json!({"name": n, "values": v})).collect::<Vec<_>>(),
            }),
        ),
        None => (
            false,
            None,
            None,
            json!({ "sensorName": CRITICALITY_SENSOR, "reason": "endpoint_missing_or_unavailable" }),
        ),
    };
    AssetFact {
        asset_id,
        source_type: "integration".into(),
        provider: Some(PROVIDER.slug().into()),
        integration_id: Some(integration_id),
        namespace: "tanium".into(),
        fact_key: "criticality".into(),
        label: "Tanium Criticality".into(),
        value_text: text,
        value_number: number,
        value_bool: None,
        value_json,
        source: format!("tanium.gateway.sensor.{CRITICALITY_SENSOR}"),
        source_updated_at: None,
        last_synced_at: Some(now),
        is_available: available,
    }
}

/// The mapped endpoints of one group: `external_entity_id` → (asset id, mapping metadata).
async fn group_mappings(
    db: &Db,
    tenant: Uuid,
    scopes: &[&str],
) -> Result<Vec<(String, String, String, Option<String>)>, DbError> {
    let d = db.dialect();
    let not_deleted = match d {
        Dialect::Postgres => "COALESCE(metadata->>'deleted', 'false') <> 'true'",
        Dialect::Sqlite => "COALESCE(json_extract(metadata, '$.deleted'), 0) NOT IN (1, 'true')",
    };
    db.fetch(
        &format!(
            "SELECT external_entity_id, external_realm_id, alga_entity_id, {} FROM tenant_external_entity_mappings \
             WHERE tenant = {} AND integration_type = '{PROVIDER}' AND alga_entity_type = 'asset' \
             AND external_realm_id {} AND {not_deleted} ORDER BY external_entity_id",
            d.text("metadata"),
            d.param(1, ColType::Uuid),
            d.in_json(2, ColType::Text),
        ),
        &[&tenant.to_string(), &serde_json::to_string(scopes).expect("json")],
    )
    .await
}

async fn tombstone_missing(
    db: &Db,
    tenant: Uuid,
    run: &IngestRun,
    integration_id: Uuid,
    walked: &[&str],
    seen: &HashSet<String>,
    report: &mut DeviceSyncReport,
) -> Result<(), DbError> {
    let missing: Vec<DeviceSnapshot> = group_mappings(db, tenant, walked)
        .await?
        .into_iter()
        .filter(|(id, ..)| !seen.contains(id))
        .map(|(id, realm, _, metadata)| DeviceSnapshot {
            provider: PROVIDER,
            integration_id,
            display_name: id.clone(),
            external_device_id: id,
            external_scope_id: realm,
            lifecycle: Lifecycle::Tombstoned,
            asset_type: Default::default(),
            serial_number: None,
            status: None,
            location: None,
            asset_tag: None,
            agent_status: None,
            last_seen_at: None,
            extension: None,
            metadata: metadata.and_then(|m| serde_json::from_str(&m).ok()),
        })
        .collect();
    for chunk in missing.chunks(500) {
        let items: Vec<Item<'_>> = chunk.iter().map(|s| Item { snapshot: s, client_id: None }).collect();
        let page = ingest_page(db, tenant, run, &items, Utc::now()).await?;
        report.counts.add(&page.counts);
        report
            .errors
            .extend(page.outcomes.iter().filter(|o| o.action == IngestAction::Failed).filter_map(|o| o.error.clone()));
    }
    Ok(())
}

/// The Asset API fallback for an empty group: refreshes status and last-seen time of the assets
/// already mapped under it, from the asset listing; creates nothing, and leaves every other column.
async fn asset_fallback(
    ctx: &GroupCtx<'_>,
    report: &mut DeviceSyncReport,
    seen: &mut HashSet<String>,
) -> Result<(), SyncError> {
    let scope = ctx.scope.scope.as_str();
    let known: HashMap<String, String> =
        group_mappings(ctx.db, ctx.tenant, &[scope]).await?.into_iter().map(|(id, _, asset, _)| (id, asset)).collect();
    if known.is_empty() {
        return Ok(());
    }
    let rows: Vec<AssetRow> = match asset_api::list_assets(ctx.client).await {
        Ok(rows) => rows,
        Err(e) => {
            report.errors.push(format!("Tanium group {scope}: Asset API fallback failed: {e}"));
            return Ok(());
        }
    };
    let now = Utc::now();
    let updates: Vec<Value> = rows
        .iter()
        .filter_map(|r| {
            let asset = known.get(&r.id)?;
            let offline = r.online == Some(false);
            Some(json!({
                "asset_id": asset,
                "status": if offline { "inactive" } else { "active" },
                "agent_status": if offline { "offline" } else { "online" },
                "last_seen_at": r.last_seen.as_deref().and_then(super::record::parse_time).map(fmt_ts),
                "external_id": r.id,
            }))
        })
        .collect();
    if updates.is_empty() {
        return Ok(());
    }
    for u in &updates {
        if let Some(id) = u["external_id"].as_str() {
            seen.insert(id.to_owned());
        }
    }
    // A dry run reads, and does not write: the assets it would refresh are seen (so they are not
    // planned as tombstones) and counted.
    let n = if ctx.run.is_dry() { updates.len() as u64 } else { refresh_status(ctx, updates, now).await? };
    report.fallback_refreshed += n;
    report.counts.processed += n;
    report.counts.updated += n;
    Ok(())
}

/// Writes the fallback's status refreshes; the number of assets updated.
async fn refresh_status(ctx: &GroupCtx<'_>, updates: Vec<Value>, now: DateTime<Utc>) -> Result<u64, SyncError> {
    let d = ctx.db.dialect();
    let cols = [
        ("asset_id", ColType::Uuid),
        ("status", ColType::Text),
        ("agent_status", ColType::Text),
        ("last_seen_at", ColType::Timestamp),
    ];
    let sql = match d {
        Dialect::Postgres => format!(
            "UPDATE assets a SET status = r.status, agent_status = r.agent_status, \
             last_seen_at = COALESCE(r.last_seen_at, a.last_seen_at), last_rmm_sync_at = $2::timestamptz, updated_at = $2::timestamptz \
             FROM {} WHERE a.tenant = $1::uuid AND a.asset_id = r.asset_id",
            d.recordset(3, &cols)
        ),
        Dialect::Sqlite => format!(
            "UPDATE assets SET status = r.status, agent_status = r.agent_status, \
             last_seen_at = COALESCE(r.last_seen_at, assets.last_seen_at), last_rmm_sync_at = ?2, updated_at = ?2 \
             FROM {} WHERE assets.tenant = ?1 AND assets.asset_id = r.asset_id",
            d.recordset(3, &cols)
        ),
    };
    Ok(ctx.db.execute(&sql, &[&ctx.tenant.to_string(), &fmt_ts(now), &Value::Array(updates).to_string()]).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(id: &str) -> MappedScope {
        MappedScope { scope: id.into(), client_id: Uuid::nil() }
    }

    #[test]
    fn the_most_specific_group_owns_an_endpoint() {
        let scopes = [scope("1"), scope("10"), scope("9")];
        let members = vec![
            vec!["a".to_owned(), "b".into(), "c".into()],
            vec!["a".to_owned(), "b".into()],
            vec!["b".to_owned(), "d".into()],
        ];
        let o = owners(&scopes, &members);
        assert_eq!(o["a"], 1);
        // "b" is in groups of 3, 2 and 2 members: the tie goes to the lower id, 9.
        assert_eq!(o["b"], 2);
        assert_eq!(o["c"], 0);
        assert_eq!(o["d"], 2);
        // The order groups are listed in does not matter.
        let rev_scopes = [scope("9"), scope("10"), scope("1")];
        let rev_members = vec![members[2].clone(), members[1].clone(), members[0].clone()];
        let r = owners(&rev_scopes, &rev_members);
        assert_eq!(rev_scopes[r["b"]].scope, "9");
        assert_eq!(rev_scopes[r["a"]].scope, "10");
    }

    #[test]
    fn facts_follow_the_reading() {
        let now = Utc::now();
        let reading =
            super::super::record::parse_criticality(vec![("criticality_level".into(), vec!["Critical".into()])]);
        let f = criticality_fact(Uuid::nil(), Uuid::nil(), Some(&reading), now);
        assert_eq!((f.is_available, f.value_text.as_deref(), f.value_number), (true, Some("Critical"), Some(2.0)));
        assert_eq!(f.source, "tanium.gateway.sensor.Endpoint Criticality with Level");
        let f = criticality_fact(Uuid::nil(), Uuid::nil(), None, now);
        assert!(!f.is_available);
        assert_eq!(f.value_json["reason"], "endpoint_missing_or_unavailable");
    }
}
