//! Level syncs: the group tree → organisation mappings, devices → the shared ingestion pipeline.
//!
//! A device sync is split into units, one per **top-level group** holding a mapped group. A unit
//! lists the devices below its top-level group (`ancestor_group_id`, recursive; plus `group_id`
//! for the top-level group's own devices when it is mapped itself) and sends each device to its
//! deepest mapped group. Listing per mapped group instead would list a nested mapped group's
//! devices twice (once under each mapped ancestor).
//!
//! - **Incremental** runs walk the same pages: Level has no modified-since filter, so the window
//!   (`last_seen_at >= since`) is applied here, as AlgaPSA does. It saves writes, not reads.
//! - **Tombstones.** After a full unit whose every page was read, devices mapped under a group of
//!   that tree and no longer listed in it are soft-deleted. Incremental runs never tombstone.
//! - **Pending updates** come from one walk of `GET /v2/updates?status=available` (Level has no
//!   group filter on it), counted per device and split into OS and software by category.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::PROVIDER;
use super::client::{DeviceFilter, LevelClient};
use super::error::LevelError;
use super::mapping::{GroupTree, MappingContext, PendingUpdates, changed_since, device_snapshot};
use crate::db::sql::ColType;
use crate::db::{Db, DbError, Dialect};
use crate::ingest::{DeviceSnapshot, IngestAction, IngestOutcome, IngestRun, Item, Lifecycle, ingest_page};
use crate::providers::{OrgUpsert, UnitReport, mapped_scopes, upsert_org_mappings};

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Level(#[from] LevelError),
    #[error("database error: {0}")]
    Db(#[from] DbError),
}

/// Level groups → `rmm_organization_mappings`: one mapping per group, named by its path
/// (`Acme / Berlin`), with `{kind, parentId, path, name, rootId}` as metadata. Assignments
/// (`client_id`, auto-sync, contact) are never touched; groups deleted in Level are left alone.
pub async fn sync_groups(
    db: &Db,
    tenant: Uuid,
    integration_id: Uuid,
    client: &LevelClient,
) -> Result<OrgUpsert, SyncError> {
    let tree = GroupTree::new(&client.list_groups().await?);
    Ok(upsert_org_mappings(db, tenant, integration_id, &tree.scopes(), true).await?)
}

/// Full pass or incremental window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSyncMode {
    Full,
    /// Devices with `last_seen_at >= since` (or none), filtered here.
    Incremental {
        since: DateTime<Utc>,
    },
}

/// The mapped groups of an integration (auto-sync on, with a client).
pub async fn mapped_groups(db: &Db, tenant: Uuid, integration_id: Uuid) -> Result<HashSet<String>, DbError> {
    Ok(mapped_scopes(db, tenant, integration_id).await?.into_iter().map(|s| s.scope).collect())
}

/// The units of a device sync: the top-level groups holding a mapped group.
pub async fn plan_units(
    db: &Db,
    tenant: Uuid,
    integration_id: Uuid,
    client: &LevelClient,
) -> Result<Vec<String>, SyncError> {
    let mapped = mapped_groups(db, tenant, integration_id).await?;
    if mapped.is_empty() {
        return Ok(Vec::new());
    }
    let tree = GroupTree::new(&client.list_groups().await?);
    Ok(tree.roots_of(&mapped))
}

/// Available updates per device, from one walk of `GET /v2/updates?status=available`.
pub async fn pending_updates(client: &LevelClient) -> Result<HashMap<String, PendingUpdates>, LevelError> {
    let mut out: HashMap<String, PendingUpdates> = HashMap::new();
    let mut pages = client.available_update_pages(None);
    while let Some(page) = pages.next_page().await? {
        for u in page {
            if u.is_available == Some(false) {
                continue;
            }
            if let Some(d) = u.device_id.filter(|d| !d.is_empty()) {
                out.entry(d).or_default().add(u.category.as_deref());
            }
        }
    }
    Ok(out)
}

/// Snapshots written per pipeline call: a few Level pages at once, fewer statements per device.
pub const INGEST_BATCH: usize = 500;

/// What one unit reads besides Level: the tree, the mapped groups, the pending updates (`None`:
/// they could not be read, and the counts are left null).
pub struct UnitInput<'a> {
    pub tree: &'a GroupTree,
    pub mapped: &'a HashSet<String>,
    pub pending: Option<&'a HashMap<String, PendingUpdates>>,
}

/// Syncs the devices below one top-level group, page by page through the pipeline.
#[allow(clippy::too_many_arguments)] // the shared run context plus the unit's own inputs
pub async fn sync_root(
    db: &Db,
    tenant: Uuid,
    run: &IngestRun,
    integration_id: Uuid,
    client: &LevelClient,
    input: &UnitInput<'_>,
    root: &str,
    mode: DeviceSyncMode,
) -> Result<UnitReport, SyncError> {
    let mut report = UnitReport { units: 1, ..Default::default() };
    let since = match mode {
        DeviceSyncMode::Full => None,
        DeviceSyncMode::Incremental { since } => Some(since),
    };
    let mut filters = vec![DeviceFilter::Below(root.to_owned())];
    if input.mapped.contains(root) {
        filters.push(DeviceFilter::Group(root.to_owned()));
    }
    let mut seen: HashSet<String> = HashSet::new();
    let mut batch: Vec<DeviceSnapshot> = Vec::with_capacity(INGEST_BATCH);
    for filter in &filters {
        let mut pages = client.device_pages(filter);
        while let Some(devices) = pages.next_page().await? {
            let ctx = MappingContext { integration_id, now: Utc::now() };
            for device in devices {
                if !seen.insert(device.id.clone()) {
                    continue;
                }
                let Some(scope) = device.group_id.as_deref().and_then(|g| input.tree.deepest_mapped(g, input.mapped))
                else {
                    continue;
                };
                if !changed_since(&device, since) {
                    continue;
                }
                let pending = input.pending.map(|p| p.get(&device.id).copied().unwrap_or_default());
                let path = device.group_id.as_deref().map(|g| input.tree.path(g));
                batch.push(device_snapshot(&device, scope, path, &ctx, pending));
            }
            if batch.len() >= INGEST_BATCH {
                write(db, tenant, run, &mut batch, &mut report).await?;
            }
        }
    }
    write(db, tenant, run, &mut batch, &mut report).await?;
    if mode == DeviceSyncMode::Full {
        let groups = input.tree.subtree(root);
        tombstone_missing(db, tenant, run, integration_id, &groups, &seen, &mut report).await?;
    }
    Ok(report)
}

async fn write(
    db: &Db,
    tenant: Uuid,
    run: &IngestRun,
    batch: &mut Vec<DeviceSnapshot>,
    report: &mut UnitReport,
) -> Result<(), DbError> {
    if batch.is_empty() {
        return Ok(());
    }
    let items: Vec<Item<'_>> = batch.iter().map(|s| Item { snapshot: s, client_id: None }).collect();
    let page = ingest_page(db, tenant, run, &items, Utc::now()).await?;
    report.counts.add(&page.counts);
    report
        .errors
        .extend(page.outcomes.into_iter().filter(|o| o.action == IngestAction::Failed).filter_map(|o| o.error));
    batch.clear();
    Ok(())
}

/// Mapped devices (not already deleted) whose group is one of `groups`: (device, group, metadata).
async fn mapped_devices(
    db: &Db,
    tenant: Uuid,
    groups: &[String],
) -> Result<Vec<(String, String, Option<String>)>, DbError> {
    let d = db.dialect();
    let not_deleted = match d {
        Dialect::Postgres => "COALESCE(metadata->>'deleted', 'false') <> 'true'",
        Dialect::Sqlite => "COALESCE(json_extract(metadata, '$.deleted'), 0) NOT IN (1, 'true')",
    };
    db.fetch(
        &format!(
            "SELECT external_entity_id, external_realm_id, {} FROM tenant_external_entity_mappings \
             WHERE tenant = {} AND integration_type = '{PROVIDER}' AND alga_entity_type = 'asset' \
             AND external_realm_id {} AND {not_deleted} ORDER BY external_entity_id",
            d.text("metadata"),
            d.param(1, ColType::Uuid),
            d.in_json(2, ColType::Text),
        ),
        &[&tenant.to_string(), &serde_json::to_string(groups).expect("json")],
    )
    .await
}

async fn tombstone_missing(
    db: &Db,
    tenant: Uuid,
    run: &IngestRun,
    integration_id: Uuid,
    groups: &[String],
    seen: &HashSet<String>,
    report: &mut UnitReport,
) -> Result<(), DbError> {
    let missing: Vec<DeviceSnapshot> = mapped_devices(db, tenant, groups)
        .await?
        .into_iter()
        .filter(|(id, ..)| !seen.contains(id))
        .map(|(id, group, metadata)| DeviceSnapshot {
            provider: PROVIDER,
            integration_id,
            display_name: id.clone(),
            external_device_id: id,
            external_scope_id: group,
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
    for chunk in missing.chunks(INGEST_BATCH) {
        let mut batch = chunk.to_vec();
        write(db, tenant, run, &mut batch, report).await?;
    }
    Ok(())
}

/// Refreshes one device (`GET /v2/devices/{id}`), as the webhook path does: written under its
/// deepest mapped group with its pending updates; a device Level does not know, or in no mapped
/// group, is reported as skipped. `known` is the device when the caller already read it.
pub async fn refresh_device(
    db: &Db,
    tenant: Uuid,
    run: &IngestRun,
    integration_id: Uuid,
    client: &LevelClient,
    device_id: &str,
    known: Option<super::model::Device>,
) -> Result<IngestOutcome, SyncError> {
    let skipped = |error: String| IngestOutcome {
        external_device_id: device_id.to_owned(),
        action: IngestAction::Skipped,
        asset_id: None,
        error: Some(error),
    };
    let device = match known {
        Some(d) => d,
        None => match client.get_device(device_id).await? {
            Some(d) => d,
            None => return Ok(skipped(format!("Level device {device_id} was not found"))),
        },
    };
    let mapped = mapped_groups(db, tenant, integration_id).await?;
    let tree = GroupTree::new(&client.list_groups().await?);
    let Some(scope) = device.group_id.as_deref().and_then(|g| tree.deepest_mapped(g, &mapped)) else {
        return Ok(skipped("Device has no mapped Level group ancestor".into()));
    };
    let mut pending = PendingUpdates::default();
    for u in client.available_updates(Some(&device.id)).await? {
        if u.is_available != Some(false) {
            pending.add(u.category.as_deref());
        }
    }
    let now = Utc::now();
    let path = device.group_id.as_deref().map(|g| tree.path(g));
    let snapshot = device_snapshot(&device, scope, path, &MappingContext { integration_id, now }, Some(pending));
    let report = ingest_page(db, tenant, run, &[Item { snapshot: &snapshot, client_id: None }], now).await?;
    Ok(report.outcomes.into_iter().next().expect("one outcome per item"))
}

/// The group (`external_realm_id`) an already synced device was written under.
pub async fn known_group(db: &Db, tenant: Uuid, device_id: &str) -> Result<Option<String>, DbError> {
    let d = db.dialect();
    let rows: Vec<(Option<String>,)> = db
        .fetch(
            &format!(
                "SELECT external_realm_id FROM tenant_external_entity_mappings WHERE tenant = {} \
                 AND integration_type = '{PROVIDER}' AND alga_entity_type = 'asset' AND external_entity_id = {}",
                d.param(1, ColType::Uuid),
                d.param(2, ColType::Text)
            ),
            &[&tenant.to_string(), device_id],
        )
        .await?;
    Ok(rows.into_iter().find_map(|(r,)| r.filter(|r| !r.is_empty())))
}
