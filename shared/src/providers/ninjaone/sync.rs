//! NinjaOne syncs: organisations → organisation mappings; the devices of one mapped organisation
//! → the shared ingestion pipeline (one unit of a fanned-out device sync), with tombstones after a
//! complete full pass; one device refreshed (the webhook path).
//!
//! NinjaOne's device filter (`df`) has no last-contact predicate: an incremental unit reads the
//! organisation's devices with the server-side filter `org = <id>` and keeps those whose
//! `lastContact` is at or after the cursor (and those with none, as AlgaPSA does) on the client
//! side. The unit's report says how many it read and how many it kept.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::PROVIDER;
use super::client::NinjaClient;
use super::error::NinjaError;
use super::mapping::device_snapshot;
use crate::db::sql::ColType;
use crate::db::{Db, DbError, Dialect};
use crate::ingest::{DeviceSnapshot, IngestAction, IngestOutcome, IngestRun, Item, Lifecycle, ingest_page};
use crate::providers::{OrgUpsert, UnitReport};

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Ninja(#[from] NinjaError),
    #[error("database error: {0}")]
    Db(#[from] DbError),
}

/// NinjaOne organisations → `rmm_organization_mappings` (name and a metadata summary refreshed;
/// the client assignment and flags never touched).
pub async fn sync_organizations(
    db: &Db,
    tenant: Uuid,
    integration_id: Uuid,
    client: &NinjaClient,
) -> Result<OrgUpsert, SyncError> {
    let orgs = client.list_organizations().await?;
    let by_id: BTreeMap<String, (String, Value)> = orgs
        .into_iter()
        .filter(|o| o.id > 0)
        .map(|o| {
            let meta = serde_json::json!({
                "id": o.id, "name": o.name, "description": o.description, "nodeApprovalMode": o.node_approval_mode,
            });
            (o.id.to_string(), (o.name, meta))
        })
        .collect();
    Ok(crate::providers::upsert_org_mappings(db, tenant, integration_id, &by_id, false).await?)
}

/// Full pass or incremental window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSyncMode {
    /// Every device of the organisation; devices no longer listed are tombstoned.
    Full,
    /// Devices whose `lastContact` is at or after `since` (filtered on the client side).
    Incremental { since: DateTime<Utc> },
}

/// What one organisation's device sync read besides the ingestion counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReadCounts {
    /// Devices NinjaOne listed.
    pub listed: u64,
    /// Devices left out by the client-side `lastContact` filter of an incremental run.
    pub filtered_out: u64,
}

/// Device pages one process holds at once, whatever the number of units running: a page is held
/// from the request for it until it is written.
pub const PAGES_IN_MEMORY: usize = 2;

static PAGE_TURNS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(PAGES_IN_MEMORY);

/// Syncs the devices of one mapped organisation (`scope`, NinjaOne's organisation id), page by
/// page through the pipeline. A full pass that read every page tombstones the organisation's
/// mapped devices it did not see.
pub async fn sync_device_unit(
    db: &Db,
    tenant: Uuid,
    run: &IngestRun,
    integration_id: Uuid,
    client: &NinjaClient,
    scope: &str,
    mode: DeviceSyncMode,
) -> Result<(UnitReport, ReadCounts), SyncError> {
    let mut report = UnitReport { units: 1, ..Default::default() };
    let mut read = ReadCounts::default();
    let Ok(org) = scope.trim().parse::<i64>() else {
        report.units_failed = 1;
        report.errors.push(format!("NinjaOne organisation id {scope} is not a number; remap the organisation"));
        return Ok((report, read));
    };
    let mut seen: HashSet<String> = HashSet::new();
    let mut pages = client.device_pages(org);
    loop {
        let _turn = PAGE_TURNS.acquire().await.expect("the semaphore is never closed");
        let Some(devices) = pages.next_page().await? else { break };
        let now = Utc::now();
        read.listed += devices.len() as u64;
        let mut snapshots = Vec::with_capacity(devices.len());
        for device in devices {
            if mode == DeviceSyncMode::Full {
                seen.insert(device.id.to_string());
            }
            if let DeviceSyncMode::Incremental { since } = mode
                && device.last_contact.is_some_and(|c| c < since)
            {
                read.filtered_out += 1;
                continue;
            }
            match device_snapshot(&device, Some(scope), integration_id, now) {
                Ok(s) => snapshots.push(s),
                Err(e) => {
                    report.counts.record(IngestAction::Failed);
                    report.errors.push(e.to_string());
                }
            }
        }
        let items: Vec<Item<'_>> = snapshots.iter().map(|s| Item { snapshot: s, client_id: None }).collect();
        let page = ingest_page(db, tenant, run, &items, now).await?;
        report.counts.add(&page.counts);
        report.errors.extend(page.outcomes.iter().filter(|o| o.action == IngestAction::Failed).filter_map(error_of));
    }
    if mode == DeviceSyncMode::Full {
        tombstone_missing(db, tenant, run, integration_id, scope, &seen, &mut report).await?;
    }
    Ok((report, read))
}

fn error_of(o: &IngestOutcome) -> Option<String> {
    o.error.clone()
}

/// The live (not tombstoned) device mappings of one organisation: (device id, metadata).
async fn org_mappings(db: &Db, tenant: Uuid, scope: &str) -> Result<Vec<(String, Option<String>)>, DbError> {
    let d = db.dialect();
    let not_deleted = match d {
        Dialect::Postgres => "COALESCE(metadata->>'deleted', 'false') <> 'true'",
        Dialect::Sqlite => "COALESCE(json_extract(metadata, '$.deleted'), 0) NOT IN (1, 'true')",
    };
    db.fetch(
        &format!(
            "SELECT external_entity_id, {} FROM tenant_external_entity_mappings \
             WHERE tenant = {} AND integration_type = '{PROVIDER}' AND alga_entity_type = 'asset' \
             AND external_realm_id = {} AND {not_deleted} ORDER BY external_entity_id",
            d.text("metadata"),
            d.param(1, ColType::Uuid),
            d.param(2, ColType::Text),
        ),
        &[&tenant.to_string(), scope],
    )
    .await
}

async fn tombstone_missing(
    db: &Db,
    tenant: Uuid,
    run: &IngestRun,
    integration_id: Uuid,
    scope: &str,
    seen: &HashSet<String>,
    report: &mut UnitReport,
) -> Result<(), DbError> {
    let missing: Vec<DeviceSnapshot> = org_mappings(db, tenant, scope)
        .await?
        .into_iter()
        .filter(|(id, _)| !seen.contains(id))
        .map(|(id, metadata)| DeviceSnapshot {
            provider: PROVIDER,
            integration_id,
            display_name: id.clone(),
            external_device_id: id,
            external_scope_id: scope.to_owned(),
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
        report.errors.extend(page.outcomes.iter().filter(|o| o.action == IngestAction::Failed).filter_map(error_of));
    }
    Ok(())
}

/// Refreshes one device (`GET /v2/device/{id}`), as the webhook path does. A device NinjaOne no
/// longer has (404) is tombstoned when it is mapped, else reported as skipped; only devices of a
/// mapped organisation are written (the pipeline skips the others).
pub async fn refresh_device(
    db: &Db,
    tenant: Uuid,
    run: &IngestRun,
    integration_id: Uuid,
    client: &NinjaClient,
    device_id: &str,
) -> Result<IngestOutcome, SyncError> {
    let outcome = |action, error: String| IngestOutcome {
        external_device_id: device_id.to_owned(),
        action,
        asset_id: None,
        error: Some(error),
    };
    let Ok(id) = device_id.trim().parse::<i64>() else {
        return Ok(outcome(IngestAction::Failed, format!("NinjaOne device id {device_id:?} is not a number")));
    };
    let Some(device) = client.get_device(id).await? else {
        return tombstone_device(db, tenant, run, integration_id, device_id).await;
    };
    let now = Utc::now();
    let snapshot = match device_snapshot(&device, None, integration_id, now) {
        Ok(s) => s,
        Err(e) => return Ok(outcome(IngestAction::Failed, e.to_string())),
    };
    let report = ingest_page(db, tenant, run, &[Item { snapshot: &snapshot, client_id: None }], now).await?;
    Ok(report.outcomes.into_iter().next().expect("one outcome per item"))
}

/// Tombstones one mapped device (NinjaOne answered 404 for it); skipped when it is not mapped.
async fn tombstone_device(
    db: &Db,
    tenant: Uuid,
    run: &IngestRun,
    integration_id: Uuid,
    device_id: &str,
) -> Result<IngestOutcome, SyncError> {
    let d = db.dialect();
    let rows: Vec<(String, Option<String>)> = db
        .fetch(
            &format!(
                "SELECT external_realm_id, {} FROM tenant_external_entity_mappings \
                 WHERE tenant = {} AND integration_type = '{PROVIDER}' AND alga_entity_type = 'asset' \
                 AND external_entity_id = {}",
                d.text("metadata"),
                d.param(1, ColType::Uuid),
                d.param(2, ColType::Text),
            ),
            &[&tenant.to_string(), device_id],
        )
        .await?;
    let Some((scope, metadata)) = rows.into_iter().next() else {
        return Ok(IngestOutcome {
            external_device_id: device_id.to_owned(),
            action: IngestAction::Skipped,
            asset_id: None,
            error: Some(format!("NinjaOne device {device_id} was not found")),
        });
    };
    let snapshot = DeviceSnapshot {
        provider: PROVIDER,
        integration_id,
        display_name: device_id.to_owned(),
        external_device_id: device_id.to_owned(),
        external_scope_id: scope,
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
    };
    let report = ingest_page(db, tenant, run, &[Item { snapshot: &snapshot, client_id: None }], Utc::now()).await?;
    Ok(report.outcomes.into_iter().next().expect("one outcome per item"))
}
