//! Tactical syncs: clients → organisation mappings, agents → the shared ingestion pipeline.
//!
//! A device sync is split into units, one per mapped Tactical client, so a large tenant's sync can
//! be spread over workers and a crashed sync can resume from its last finished unit.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::client::{AgentQuery, TacticalClient};
use super::error::TacticalError;
use super::mapping::{MappingContext, SiteIndex, agent_snapshot};
use crate::db::sql::ColType;
use crate::db::{Db, DbError};
use crate::ingest::{IngestAction, IngestOutcome, IngestRun, Item, ingest_page};

use super::PROVIDER;
use crate::providers::UnitReport;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Tactical(#[from] TacticalError),
    #[error("database error: {0}")]
    Db(#[from] DbError),
}

/// Tactical clients → `rmm_organization_mappings`. New scopes are inserted unassigned with
/// auto-sync on (the column default); existing ones get only their name and metadata refreshed:
/// `client_id`, `auto_sync_assets` and `default_contact_id` are never touched. A client listed
/// twice is counted once (the last record wins).
pub async fn sync_organizations(
    db: &Db,
    tenant: Uuid,
    integration_id: Uuid,
    client: &TacticalClient,
) -> Result<crate::providers::OrgUpsert, SyncError> {
    let remote = client.list_clients().await?;
    let by_id: BTreeMap<String, (String, Value)> =
        remote.into_iter().map(|c| (c.id.to_string(), (c.name.clone(), c.raw.clone()))).collect();
    Ok(crate::providers::upsert_org_mappings(db, tenant, integration_id, &by_id, false).await?)
}

/// Full pass or incremental window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSyncMode {
    /// Every agent of every mapped client; every mapped agent's status is recomputed.
    Full,
    /// Agents seen at or after `since` (Tactical's server-side `last_seen_range_after` filter).
    Incremental { since: DateTime<Utc> },
}

/// One unit of a device sync: the agents of one mapped Tactical client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceUnit {
    /// The Tactical client pk (`external_organization_id`).
    pub scope: String,
    /// The AlgaPSA client it is mapped to.
    pub client_id: Uuid,
}

/// The units of a device sync: mapped scopes with a client and auto-sync on.
pub async fn plan_device_units(db: &Db, tenant: Uuid, integration_id: Uuid) -> Result<Vec<DeviceUnit>, DbError> {
    Ok(crate::providers::mapped_scopes(db, tenant, integration_id)
        .await?
        .into_iter()
        .map(|s| DeviceUnit { scope: s.scope, client_id: s.client_id })
        .collect())
}

/// Agent pages one process reads and holds at once, whatever `queue.concurrency` (units per
/// worker, 4 by default): a page is held from the moment its answer starts to arrive until it is
/// written. Waiting on Tactical holds nothing, so every unit's request can wait on the server at
/// once (a real server takes seconds to render a page of 1,000 agents). A page's agents are
/// compact (see [`super::model::Agent`]), so a page costs about the same whatever the size of the
/// agents' `wmi_detail`: some 10 MB as agents or snapshots and as much again while the pipeline
/// writes it. Units past this bound wait for a turn before reading their next page.
pub const PAGES_IN_MEMORY: usize = 2;

static PAGE_TURNS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(PAGES_IN_MEMORY);

/// Syncs the agents of one unit, page by page through the shared pipeline. Agents whose site now
/// belongs to another Tactical client are ingested with that client as their scope, so a moved
/// agent keeps its asset and follows its new mapping.
#[allow(clippy::too_many_arguments)] // the shared run context plus the unit's own inputs
pub async fn sync_device_unit(
    db: &Db,
    tenant: Uuid,
    run: &IngestRun,
    integration_id: Uuid,
    client: &TacticalClient,
    sites: &SiteIndex,
    unit: &DeviceUnit,
    mode: DeviceSyncMode,
) -> Result<UnitReport, SyncError> {
    let mut report = UnitReport { units: 1, ..Default::default() };
    let Ok(pk) = unit.scope.parse::<i64>() else {
        report.units_failed = 1;
        report.errors.push(format!("Tactical client id {} is not a number; remap the organisation", unit.scope));
        return Ok(report);
    };
    let mut query = AgentQuery::for_client(pk);
    if let DeviceSyncMode::Incremental { since } = mode {
        query.last_seen_after = Some(since);
    }
    let mut pages = client.agent_pages(&query);
    // Each page is written while the next one is asked for: the server's time for page k+1 passes
    // during the write of page k. The turn of a page is held until it is written.
    let mut next = pages.next_page_within(&PAGE_TURNS).await?;
    while let Some((agents, turn)) = next {
        let now = Utc::now();
        let ctx = MappingContext { integration_id, now };
        let mut snapshots = Vec::with_capacity(agents.len());
        // Each agent is dropped once mapped: the page is held once, as agents or as snapshots.
        for agent in agents {
            let mapped = sites
                .scope_for(&agent, Some(&unit.scope))
                .ok_or_else(|| super::mapping::MappingError::MissingScope(agent_label(&agent)))
                .and_then(|scope| agent_snapshot(&agent, &scope, &ctx));
            match mapped {
                Ok(s) => snapshots.push(s),
                Err(e) => {
                    report.counts.record(IngestAction::Failed);
                    report.errors.push(e.to_string());
                }
            }
        }
        let write = async move {
            // The page (its turn and snapshots) goes when its write ends, not when the next page
            // arrives: a unit waiting for its next page holds no other.
            let _turn = turn;
            let items: Vec<Item<'_>> = snapshots.iter().map(|s| Item { snapshot: s, client_id: None }).collect();
            ingest_page(db, tenant, run, &items, now).await
        };
        let (page, following) = tokio::join!(write, pages.next_page_within(&PAGE_TURNS));
        let page = page?;
        report.counts.add(&page.counts);
        report.errors.extend(page.outcomes.iter().filter(|o| o.action == IngestAction::Failed).filter_map(error_of));
        next = following?;
    }
    Ok(report)
}

fn error_of(o: &IngestOutcome) -> Option<String> {
    o.error.clone()
}

fn agent_label(agent: &super::model::Agent) -> String {
    agent.agent_id.clone().or_else(|| agent.id.map(|i| i.to_string())).unwrap_or_else(|| "?".into())
}

/// Every unit of a device sync, one after the other. A unit whose Tactical calls fail is reported
/// and the others still run.
pub async fn sync_devices(
    db: &Db,
    tenant: Uuid,
    run: &IngestRun,
    integration_id: Uuid,
    client: &TacticalClient,
    mode: DeviceSyncMode,
) -> Result<UnitReport, SyncError> {
    let units = plan_device_units(db, tenant, integration_id).await?;
    let sites = SiteIndex::new(client.list_sites().await?);
    let mut report = UnitReport::default();
    for unit in &units {
        match sync_device_unit(db, tenant, run, integration_id, client, &sites, unit, mode).await {
            Ok(r) => report.absorb(r),
            Err(SyncError::Db(e)) => return Err(SyncError::Db(e)),
            Err(e) => {
                report.units += 1;
                report.units_failed += 1;
                report.errors.push(format!("Tactical client {}: {e}", unit.scope));
            }
        }
    }
    Ok(report)
}

/// Refreshes one agent (`GET /agents/<agent_id>/`), as the webhook path does. Only agents of a
/// mapped scope are written; an unknown agent is reported as skipped.
pub async fn refresh_agent(
    db: &Db,
    tenant: Uuid,
    run: &IngestRun,
    integration_id: Uuid,
    client: &TacticalClient,
    agent_id: &str,
) -> Result<IngestOutcome, SyncError> {
    let Some(agent) = client.get_agent(agent_id).await? else {
        return Ok(IngestOutcome {
            external_device_id: agent_id.to_owned(),
            action: IngestAction::Skipped,
            asset_id: None,
            error: Some(format!("Tactical agent {agent_id} was not found")),
        });
    };
    let sites = SiteIndex::new(client.list_sites().await?);
    let now = Utc::now();
    let scope =
        sites.scope_for(&agent, None).ok_or_else(|| super::mapping::MappingError::MissingScope(agent_id.to_owned()));
    let mut snapshot = match scope.and_then(|s| agent_snapshot(&agent, &s, &MappingContext { integration_id, now })) {
        Ok(s) => s,
        Err(e) => {
            return Ok(IngestOutcome {
                external_device_id: agent_id.to_owned(),
                action: IngestAction::Failed,
                asset_id: None,
                error: Some(e.to_string()),
            });
        }
    };
    // The detail route carries no integer pk; keep the one the mapping already has (software
    // rows are keyed by it).
    if let Some(Value::Object(raw)) = snapshot.metadata.as_mut().and_then(|m| m.get_mut("raw"))
        && raw.get("id").is_none_or(Value::is_null)
        && let Some(pk) = known_pk(db, tenant, agent_id).await?
    {
        raw.insert("id".into(), json!(pk));
    }
    let report = ingest_page(db, tenant, run, &[Item { snapshot: &snapshot, client_id: None }], now).await?;
    Ok(report.outcomes.into_iter().next().expect("one outcome per item"))
}

/// What a software ingest did (AlgaPSA's counts: processed includes the items of unmapped agents).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SoftwareSyncReport {
    pub items_processed: u64,
    /// Rows installed or reinstalled.
    pub items_created: u64,
    /// Assets whose software was synced.
    pub items_updated: u64,
    pub items_failed: u64,
    pub agents_unmapped: u64,
    pub errors: Vec<String>,
}

/// Assets per batch handed to the software writer.
const SOFTWARE_BATCH: usize = 200;

/// `GET /software/` (one row per agent, keyed by the integer agent pk) → `software_catalog` and
/// `asset_software`. The response is read as a stream, one agent row at a time, so a large fleet's
/// body is never held twice. Agents are found through the integer pk kept in their mapping's
/// metadata (`raw.id`); rows of agents without a mapping are counted and skipped.
pub async fn ingest_software(db: &Db, tenant: Uuid, client: &TacticalClient) -> Result<SoftwareSyncReport, SyncError> {
    let assets = assets_by_agent_pk(db, tenant).await?;
    let mut report = SoftwareSyncReport::default();
    let mut stream = client.software().await?;
    let mut batch: Vec<(Uuid, Vec<crate::software::SoftwareItem>)> = Vec::new();
    let now = Utc::now();
    while let Some(row) = stream.next().await {
        let row = row?;
        report.items_processed += row.software.len() as u64;
        let Some(asset) = assets.get(&row.agent) else {
            report.agents_unmapped += 1;
            continue;
        };
        batch.push((*asset, software_items(row.software)));
        if batch.len() >= SOFTWARE_BATCH {
            write_software_batch(db, tenant, &mut batch, now, &mut report).await;
        }
    }
    write_software_batch(db, tenant, &mut batch, now, &mut report).await;
    Ok(report)
}

/// A row's programs as the software writer takes them; programs without a name are dropped.
pub fn software_items(software: Vec<super::model::SoftwareItem>) -> Vec<crate::software::SoftwareItem> {
    software
        .into_iter()
        .filter_map(|s| {
            let name = s.name.as_deref().map(str::trim).filter(|n| !n.is_empty())?.to_owned();
            Some(crate::software::SoftwareItem {
                name,
                version: s.version,
                publisher: s.publisher,
                install_path: s.location,
                install_date: s.install_date.as_deref().and_then(parse_install_date),
                size_bytes: None,
            })
        })
        .collect()
}

async fn write_software_batch(
    db: &Db,
    tenant: Uuid,
    batch: &mut Vec<(Uuid, Vec<crate::software::SoftwareItem>)>,
    now: DateTime<Utc>,
    report: &mut SoftwareSyncReport,
) {
    if batch.is_empty() {
        return;
    }
    match crate::software::sync_asset_software(db, tenant, batch, now).await {
        Ok(r) => {
            report.items_created += r.installed;
            report.items_updated += r.assets_touched;
        }
        Err(e) => {
            report.items_failed += batch.len() as u64;
            for (asset, _) in batch.iter() {
                report.errors.push(format!("Failed to ingest software for asset {asset}: {e}"));
            }
        }
    }
    batch.clear();
}

/// Tactical's `install_date` is `YYYY-MM-DD` (sometimes `YYYYMMDD`, or a date-time).
fn parse_install_date(s: &str) -> Option<chrono::NaiveDate> {
    let s = s.trim();
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .or_else(|_| chrono::NaiveDate::parse_from_str(s, "%Y%m%d"))
        .ok()
        .or_else(|| s.get(..10).and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()))
}

/// Integer agent pk → asset id, from the mappings' metadata (`raw.id`).
async fn assets_by_agent_pk(db: &Db, tenant: Uuid) -> Result<std::collections::HashMap<i64, Uuid>, DbError> {
    let d = db.dialect();
    let pk = raw_pk_expr(d);
    let rows: Vec<(Option<String>, String)> = db
        .fetch(
            &format!(
                "SELECT {pk}, alga_entity_id FROM tenant_external_entity_mappings \
                 WHERE tenant = {} AND integration_type = '{PROVIDER}' AND alga_entity_type = 'asset' \
                 ORDER BY updated_at, id",
                d.param(1, ColType::Uuid)
            ),
            &[&tenant.to_string()],
        )
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(pk, asset)| Some((pk?.parse::<i64>().ok()?, Uuid::parse_str(&asset).ok()?)))
        .collect())
}

/// The integer pk kept in the mapping of the agent with this string id, if any.
async fn known_pk(db: &Db, tenant: Uuid, agent_id: &str) -> Result<Option<i64>, DbError> {
    let d = db.dialect();
    let pk = raw_pk_expr(d);
    let rows: Vec<(Option<String>,)> = db
        .fetch(
            &format!(
                "SELECT {pk} FROM tenant_external_entity_mappings WHERE tenant = {} AND integration_type = '{PROVIDER}' \
                 AND alga_entity_type = 'asset' AND external_entity_id = {}",
                d.param(1, ColType::Uuid),
                d.param(2, ColType::Text)
            ),
            &[&tenant.to_string(), agent_id],
        )
        .await?;
    Ok(rows.into_iter().find_map(|(pk,)| pk?.parse().ok()))
}

/// The agent's integer pk in a mapping's metadata (`raw.id`), as text.
fn raw_pk_expr(d: crate::db::Dialect) -> &'static str {
    match d {
        crate::db::Dialect::Postgres => "metadata->'raw'->>'id'",
        crate::db::Dialect::Sqlite => "CAST(json_extract(metadata, '$.raw.id') AS TEXT)",
    }
}
