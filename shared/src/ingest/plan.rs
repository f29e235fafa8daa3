//! Deciding what to write: a pure function of a page of snapshots and the rows they touch.
//!
//! The algorithm is AlgaPSA's `ingestNormalizedRmmDeviceSnapshot` (docs/ingestion.md),
//! applied to a page in order, each device seeing the writes planned for the devices before it.
//! Two deliberate differences, both about mappings whose asset no longer exists ("dangling"):
//! AlgaPSA keeps such a mapping pointing at the missing asset, or fails the device on the unique
//! index for ever; here the dangling mapping is re-pointed at the asset that is found or created,
//! or deleted when that asset already has a mapping of its own.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::snapshot::{
    AgentStatus, AssetType, DeviceSnapshot, ExtensionSnapshot, IngestAction, IngestOutcome, Lifecycle,
};

/// A `tenant_external_entity_mappings` row with `alga_entity_type = 'asset'`.
#[derive(Debug, Clone, PartialEq)]
pub struct MappingRow {
    pub id: Uuid,
    pub integration_type: String,
    pub alga_entity_id: String,
    pub external_entity_id: String,
    pub external_realm_id: Option<String>,
}

/// The columns of an `assets` row the pipeline needs to decide.
#[derive(Debug, Clone, PartialEq)]
pub struct AssetRow {
    pub asset_id: Uuid,
    pub asset_type: String,
    pub client_id: Option<Uuid>,
    pub rmm_provider: Option<String>,
    pub rmm_device_id: Option<String>,
}

/// The rows a page touches, as loaded inside its transaction. Order matters where AlgaPSA takes
/// "the first row": the loader orders mappings and assets by creation time.
#[derive(Debug, Clone, Default)]
pub struct CurrentState {
    pub mappings: Vec<MappingRow>,
    pub assets: Vec<AssetRow>,
    /// `(integration_id, external_organization_id)` → mapped `client_id` (mapped scopes only).
    pub org_clients: HashMap<(Uuid, String), Uuid>,
}

/// One device to ingest, with the client its caller already resolved (if any).
#[derive(Debug, Clone, Copy)]
pub struct Item<'a> {
    pub snapshot: &'a DeviceSnapshot,
    pub client_id: Option<Uuid>,
}

/// The `assets` columns written on both create and update.
#[derive(Debug, Clone, PartialEq)]
pub struct AssetValues {
    pub asset_type: &'static str,
    pub name: String,
    pub serial_number: String,
    pub status: String,
    pub location: String,
    pub rmm_provider: String,
    pub rmm_device_id: String,
    pub rmm_organization_id: String,
    pub agent_status: String,
    pub last_seen_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AssetWrite {
    /// A new asset (`last_rmm_sync_at`, `created_at`, `updated_at` = now).
    Insert { values: AssetValues, client_id: Uuid, asset_tag: String },
    /// The update path: every value, `last_rmm_sync_at` = now, and `client_id` only when resolved.
    Update { values: AssetValues, client_id: Option<Uuid> },
    /// The soft delete: `inactive` / `offline`, `last_rmm_sync_at` and `updated_at` = now.
    Tombstone,
}

#[derive(Debug, Clone, PartialEq)]
pub enum MappingWrite {
    Insert {
        integration_type: String,
        alga_entity_id: String,
        external_entity_id: String,
        external_realm_id: String,
        metadata: Value,
    },
    /// Update path: realm, `synced`, `last_synced_at`, metadata replaced; `alga_entity_id` when a
    /// dangling mapping is re-pointed.
    Synced { alga_entity_id: Option<String>, external_realm_id: String, metadata: Value },
    /// Delete path: `error`, metadata with `deleted`/`deletedAt`, `updated_at` bumped.
    Deleted { metadata: Value },
    /// A dangling mapping whose device found an asset that has its own mapping.
    Remove,
}

/// What a page writes. Writes to one row are merged, so each row is written once per statement.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PagePlan {
    pub outcomes: Vec<IngestOutcome>,
    pub assets: Vec<(Uuid, AssetWrite)>,
    /// `(asset_id, table)` → the extension patch.
    pub extensions: Vec<(Uuid, &'static str, ExtensionSnapshot)>,
    pub mappings: Vec<(Uuid, MappingWrite)>,
}

/// Column limits of AlgaPSA's varchar columns the snapshot feeds.
pub mod limits {
    pub const RMM_PROVIDER: usize = 50;
    pub const EXTERNAL_ID: usize = 255;
    pub const AGENT_STATUS: usize = 20;
    pub const VARCHAR: usize = 255;
    pub const ANTIVIRUS_STATUS: usize = 50;
    pub const IP: usize = 45;
}

/// Cuts `s` to at most `max` characters (Postgres counts characters, not bytes).
pub fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => s[..i].to_owned(),
        None => s.to_owned(),
    }
}

fn truncate_opt(s: &Option<String>, max: usize) -> Option<String> {
    s.as_deref().map(|s| truncate(s, max))
}

/// Plans a page. `now` is the time every timestamp of the page gets.
pub fn plan_page(items: &[Item<'_>], state: &CurrentState, now: DateTime<Utc>) -> PagePlan {
    let mut planner = Planner::new(state.clone());
    for item in items {
        let outcome = planner.plan_one(item, now);
        planner.plan.outcomes.push(outcome);
    }
    planner.plan
}

struct Planner {
    state: CurrentState,
    plan: PagePlan,
    asset_index: HashMap<Uuid, usize>,
    mapping_index: HashMap<Uuid, usize>,
    extension_index: HashMap<(Uuid, &'static str), usize>,
}

impl Planner {
    fn new(state: CurrentState) -> Self {
        Self {
            state,
            plan: PagePlan::default(),
            asset_index: HashMap::new(),
            mapping_index: HashMap::new(),
            extension_index: HashMap::new(),
        }
    }

    fn plan_one(&mut self, item: &Item<'_>, now: DateTime<Utc>) -> IngestOutcome {
        let snap = item.snapshot;
        let provider = snap.provider.slug();
        let device_id = truncate(&snap.external_device_id, limits::EXTERNAL_ID);
        let scope_id = truncate(&snap.external_scope_id, limits::EXTERNAL_ID);
        let outcome = |action, asset_id, error: Option<String>| IngestOutcome {
            external_device_id: device_id.clone(),
            action,
            asset_id,
            error,
        };

        // 1–2. Mapping: exact realm, then any realm.
        let mapping = self
            .state
            .mappings
            .iter()
            .find(|m| {
                m.integration_type == provider
                    && m.external_entity_id == device_id
                    && m.external_realm_id.as_deref() == Some(scope_id.as_str())
            })
            .or_else(|| {
                self.state.mappings.iter().find(|m| m.integration_type == provider && m.external_entity_id == device_id)
            })
            .cloned();

        // 3. Delete / tombstone.
        if snap.lifecycle.is_deletion() {
            let Some(mapping) = mapping else {
                return outcome(IngestAction::Skipped, None, Some("No existing mapping to mark as deleted".into()));
            };
            let asset_id = Uuid::parse_str(&mapping.alga_entity_id).ok();
            if let Some(id) = asset_id.filter(|id| self.state.assets.iter().any(|a| a.asset_id == *id)) {
                self.write_asset(id, AssetWrite::Tombstone);
            }
            let mut metadata = match &snap.metadata {
                Some(Value::Object(m)) => m.clone(),
                _ => Map::new(),
            };
            metadata.insert("deleted".into(), Value::Bool(true));
            metadata.insert("deletedAt".into(), json!(crate::db::sql::fmt_ts(now)));
            self.write_mapping(mapping.id, MappingWrite::Deleted { metadata: Value::Object(metadata) });
            return outcome(IngestAction::MarkedDeleted, asset_id, None);
        }

        // 4. Existing asset: by the mapping, then by (rmm_provider, rmm_device_id).
        let by_mapping = mapping
            .as_ref()
            .and_then(|m| Uuid::parse_str(&m.alga_entity_id).ok())
            .and_then(|id| self.state.assets.iter().find(|a| a.asset_id == id).cloned());
        let asset = by_mapping.or_else(|| {
            self.state
                .assets
                .iter()
                .find(|a| a.rmm_provider.as_deref() == Some(provider) && a.rmm_device_id.as_deref() == Some(&device_id))
                .cloned()
        });
        let asset_own_mapping = asset.as_ref().and_then(|a| {
            let id = a.asset_id.to_string();
            self.state.mappings.iter().find(|m| m.integration_type == provider && m.alga_entity_id == id).cloned()
        });
        // A mapping whose asset is gone.
        let dangling = mapping.as_ref().filter(|m| {
            Uuid::parse_str(&m.alga_entity_id)
                .map(|id| !self.state.assets.iter().any(|a| a.asset_id == id))
                .unwrap_or(true)
        });

        // 5. Derived values.
        let values = asset_values(snap, &device_id, &scope_id);
        let client_id =
            item.client_id.or_else(|| self.state.org_clients.get(&(snap.integration_id, scope_id.clone())).copied());
        let metadata = snap.metadata.clone().unwrap_or_else(|| Value::Object(Map::new()));
        let asset_type = AssetType::from_slug(values.asset_type);

        // 6. Update or create.
        let (asset_id, action) = match asset {
            Some(asset) => {
                self.write_asset(asset.asset_id, AssetWrite::Update { values, client_id });
                if let Some(a) = self.state.assets.iter_mut().find(|a| a.asset_id == asset.asset_id) {
                    a.asset_type = asset_type.slug().to_owned();
                    a.rmm_provider = Some(provider.to_owned());
                    a.rmm_device_id = Some(device_id.clone());
                    if client_id.is_some() {
                        a.client_id = client_id;
                    }
                }
                (asset.asset_id, IngestAction::Updated)
            }
            None => {
                let Some(client_id) = client_id else {
                    return outcome(
                        IngestAction::Skipped,
                        None,
                        Some(format!("No mapped client for external scope {scope_id}")),
                    );
                };
                let asset_id = Uuid::new_v4();
                let asset_tag = match snap.asset_tag.as_deref() {
                    Some(tag) if !tag.is_empty() => tag.to_owned(),
                    _ => format!("{provider}:{device_id}"),
                };
                self.state.assets.push(AssetRow {
                    asset_id,
                    asset_type: asset_type.slug().to_owned(),
                    client_id: Some(client_id),
                    rmm_provider: Some(provider.to_owned()),
                    rmm_device_id: Some(device_id.clone()),
                });
                self.write_asset(asset_id, AssetWrite::Insert { values, client_id, asset_tag });
                (asset_id, IngestAction::Created)
            }
        };

        // Extension row, for workstations and servers only.
        if let (Some(table), Some(ext)) = (asset_type.extension_table(), snap.extension.as_ref()) {
            self.write_extension(asset_id, table, normalize_extension(ext));
        } else if let Some(table) = asset_type.extension_table() {
            self.write_extension(asset_id, table, ExtensionSnapshot::default());
        }

        // Mapping.
        let alga_id = asset_id.to_string();
        let target = match (&asset_own_mapping, dangling, &mapping) {
            (Some(own), Some(d), _) if own.id != d.id => {
                self.write_mapping(d.id, MappingWrite::Remove);
                self.state.mappings.retain(|m| m.id != d.id);
                Some((own.id, false))
            }
            (_, Some(d), _) => Some((d.id, true)),
            (_, None, Some(m)) => Some((m.id, false)),
            (Some(own), None, None) => Some((own.id, false)),
            (None, None, None) => None,
        };
        match target {
            Some((id, repoint)) => {
                if let Some(m) = self.state.mappings.iter_mut().find(|m| m.id == id) {
                    m.external_realm_id = Some(scope_id.clone());
                    m.alga_entity_id = alga_id.clone();
                }
                self.write_mapping(
                    id,
                    MappingWrite::Synced {
                        alga_entity_id: repoint.then(|| alga_id.clone()),
                        external_realm_id: scope_id.clone(),
                        metadata,
                    },
                );
            }
            None => {
                let id = Uuid::new_v4();
                self.state.mappings.push(MappingRow {
                    id,
                    integration_type: provider.to_owned(),
                    alga_entity_id: alga_id.clone(),
                    external_entity_id: device_id.clone(),
                    external_realm_id: Some(scope_id.clone()),
                });
                self.write_mapping(
                    id,
                    MappingWrite::Insert {
                        integration_type: provider.to_owned(),
                        alga_entity_id: alga_id,
                        external_entity_id: device_id.clone(),
                        external_realm_id: scope_id.clone(),
                        metadata,
                    },
                );
            }
        }
        outcome(action, Some(asset_id), None)
    }

    /// Records a write to an asset, merged with an earlier write to it in this page.
    fn write_asset(&mut self, asset_id: Uuid, write: AssetWrite) {
        let Some(&i) = self.asset_index.get(&asset_id) else {
            self.asset_index.insert(asset_id, self.plan.assets.len());
            self.plan.assets.push((asset_id, write));
            return;
        };
        let slot = &mut self.plan.assets[i].1;
        let merged = match (std::mem::replace(slot, AssetWrite::Tombstone), write) {
            (AssetWrite::Insert { client_id, asset_tag, .. }, AssetWrite::Update { values, client_id: new }) => {
                AssetWrite::Insert { values, client_id: new.unwrap_or(client_id), asset_tag }
            }
            (AssetWrite::Insert { mut values, client_id, asset_tag }, AssetWrite::Tombstone) => {
                tombstone_values(&mut values);
                AssetWrite::Insert { values, client_id, asset_tag }
            }
            (AssetWrite::Update { client_id: old, .. }, AssetWrite::Update { values, client_id }) => {
                AssetWrite::Update { values, client_id: client_id.or(old) }
            }
            (AssetWrite::Update { mut values, client_id }, AssetWrite::Tombstone) => {
                tombstone_values(&mut values);
                AssetWrite::Update { values, client_id }
            }
            (_, later) => later,
        };
        *slot = merged;
    }

    fn write_mapping(&mut self, id: Uuid, write: MappingWrite) {
        let Some(&i) = self.mapping_index.get(&id) else {
            self.mapping_index.insert(id, self.plan.mappings.len());
            self.plan.mappings.push((id, write));
            return;
        };
        let slot = &mut self.plan.mappings[i].1;
        let merged = match (std::mem::replace(slot, MappingWrite::Remove), write) {
            (
                MappingWrite::Insert { integration_type, external_entity_id, .. },
                MappingWrite::Synced { alga_entity_id: _, external_realm_id, metadata },
            ) => {
                // A mapping inserted earlier in the page keeps its insert; its asset does not change.
                let alga_entity_id = self
                    .state
                    .mappings
                    .iter()
                    .find(|m| m.id == id)
                    .map(|m| m.alga_entity_id.clone())
                    .unwrap_or_default();
                MappingWrite::Insert {
                    integration_type,
                    alga_entity_id,
                    external_entity_id,
                    external_realm_id,
                    metadata,
                }
            }
            (
                MappingWrite::Synced { alga_entity_id: Some(a), .. },
                MappingWrite::Synced { alga_entity_id: None, external_realm_id, metadata },
            ) => MappingWrite::Synced { alga_entity_id: Some(a), external_realm_id, metadata },
            (_, later) => later,
        };
        *slot = merged;
    }

    fn write_extension(&mut self, asset_id: Uuid, table: &'static str, patch: ExtensionSnapshot) {
        match self.extension_index.get(&(asset_id, table)) {
            Some(&i) => {
                let slot = &mut self.plan.extensions[i].2;
                *slot = merge_extension(slot, patch);
            }
            None => {
                self.extension_index.insert((asset_id, table), self.plan.extensions.len());
                self.plan.extensions.push((asset_id, table, patch));
            }
        }
    }
}

fn tombstone_values(values: &mut AssetValues) {
    values.status = "inactive".into();
    values.agent_status = AgentStatus::Offline.slug().into();
}

/// The asset columns a snapshot decides.
fn asset_values(snap: &DeviceSnapshot, device_id: &str, scope_id: &str) -> AssetValues {
    let offline = snap.lifecycle == Lifecycle::Offline;
    let status = match snap.status.as_deref() {
        Some(s) if !s.is_empty() => s.to_owned(),
        _ if offline => "inactive".to_owned(),
        _ => "active".to_owned(),
    };
    let agent_status = match snap.agent_status {
        Some(s) => s.slug(),
        None if offline => AgentStatus::Offline.slug(),
        None => AgentStatus::Online.slug(),
    };
    AssetValues {
        asset_type: snap.asset_type.slug(),
        name: snap.display_name.clone(),
        serial_number: snap.serial_number.clone().unwrap_or_default(),
        status,
        location: snap.location.clone().unwrap_or_default(),
        rmm_provider: truncate(snap.provider.slug(), limits::RMM_PROVIDER),
        rmm_device_id: device_id.to_owned(),
        rmm_organization_id: scope_id.to_owned(),
        agent_status: truncate(agent_status, limits::AGENT_STATUS),
        last_seen_at: snap.last_seen_at,
    }
}

/// Applies the varchar limits and integer rounding to an extension patch.
fn normalize_extension(e: &ExtensionSnapshot) -> ExtensionSnapshot {
    let v = limits::VARCHAR;
    ExtensionSnapshot {
        os_type: truncate_opt(&e.os_type, v),
        os_version: truncate_opt(&e.os_version, v),
        agent_version: truncate_opt(&e.agent_version, v),
        current_user: truncate_opt(&e.current_user, v),
        uptime_seconds: e.uptime_seconds,
        lan_ip: truncate_opt(&e.lan_ip, limits::IP),
        wan_ip: truncate_opt(&e.wan_ip, limits::IP),
        antivirus_status: truncate_opt(&e.antivirus_status, limits::ANTIVIRUS_STATUS),
        antivirus_product: truncate_opt(&e.antivirus_product, v),
        last_reboot_at: e.last_reboot_at,
        pending_patches: e.pending_patches,
        pending_os_patches: e.pending_os_patches,
        pending_software_patches: e.pending_software_patches,
        failed_patches: e.failed_patches,
        last_patch_scan_at: e.last_patch_scan_at,
        system_info: e.system_info.clone().filter(|v| !is_falsy(v)),
        patches_untouched: e.patches_untouched,
        cpu_model: e.cpu_model.as_ref().map(|m| truncate_opt(m, v)),
        cpu_cores: e.cpu_cores.map(|c| c.map(|c| c.round())),
        ram_gb: e.ram_gb.map(|r| r.map(|r| r.round())),
        disk_usage: e.disk_usage.clone(),
        installed_software: e.installed_software.clone(),
    }
}

/// JavaScript falsiness for the JSON values `system_info` can hold.
fn is_falsy(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

/// A later patch of the same row in the same page: always-written fields come from the later one,
/// present-only fields (and the patch columns) from the later one when it has them.
fn merge_extension(earlier: &ExtensionSnapshot, later: ExtensionSnapshot) -> ExtensionSnapshot {
    let patches = if later.patches_untouched { earlier } else { &later };
    ExtensionSnapshot {
        pending_patches: patches.pending_patches,
        pending_os_patches: patches.pending_os_patches,
        pending_software_patches: patches.pending_software_patches,
        failed_patches: patches.failed_patches,
        last_patch_scan_at: patches.last_patch_scan_at,
        patches_untouched: patches.patches_untouched,
        cpu_model: later.cpu_model.or_else(|| earlier.cpu_model.clone()),
        cpu_cores: later.cpu_cores.or(earlier.cpu_cores),
        ram_gb: later.ram_gb.or(earlier.ram_gb),
        disk_usage: later.disk_usage.or_else(|| earlier.disk_usage.clone()),
        installed_software: later.installed_software.or_else(|| earlier.installed_software.clone()),
        ..later
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::snapshot::Provider;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-01T10:00:00Z").unwrap().with_timezone(&Utc)
    }

    fn integration() -> Uuid {
        Uuid::from_u128(1)
    }

    fn snap(device: &str, scope: &str) -> DeviceSnapshot {
        DeviceSnapshot {
            provider: Provider::TacticalRmm,
            integration_id: integration(),
            external_device_id: device.into(),
            external_scope_id: scope.into(),
            lifecycle: Lifecycle::Active,
            asset_type: AssetType::Workstation,
            display_name: format!("host-{device}"),
            serial_number: None,
            status: None,
            location: None,
            asset_tag: None,
            agent_status: None,
            last_seen_at: None,
            extension: None,
            metadata: Some(json!({"raw": device})),
        }
    }

    fn state_with_client(scope: &str, client: Uuid) -> CurrentState {
        let mut s = CurrentState::default();
        s.org_clients.insert((integration(), scope.into()), client);
        s
    }

    fn plan(snaps: &[DeviceSnapshot], state: &CurrentState) -> PagePlan {
        let items: Vec<Item<'_>> = snaps.iter().map(|s| Item { snapshot: s, client_id: None }).collect();
        plan_page(&items, state, t0())
    }

    fn existing(asset: Uuid, client: Uuid, mapping: Uuid, device: &str, realm: &str) -> CurrentState {
        let mut s = state_with_client(realm, client);
        s.assets.push(AssetRow {
            asset_id: asset,
            asset_type: "mobile_device".into(),
            client_id: Some(client),
            rmm_provider: Some("tacticalrmm".into()),
            rmm_device_id: Some(device.into()),
        });
        s.mappings.push(MappingRow {
            id: mapping,
            integration_type: "tacticalrmm".into(),
            alga_entity_id: asset.to_string(),
            external_entity_id: device.into(),
            external_realm_id: Some(realm.into()),
        });
        s
    }

    #[test]
    fn creates_with_a_mapped_client_and_default_tag() {
        let client = Uuid::from_u128(7);
        let p = plan(&[snap("a1", "c1")], &state_with_client("c1", client));
        assert_eq!(p.outcomes[0].action, IngestAction::Created);
        let (id, AssetWrite::Insert { values, client_id, asset_tag }) = &p.assets[0] else { panic!("{p:?}") };
        assert_eq!(Some(*id), p.outcomes[0].asset_id);
        assert_eq!(*client_id, client);
        assert_eq!(asset_tag, "tacticalrmm:a1");
        assert_eq!(values.status, "active");
        assert_eq!(values.agent_status, "online");
        assert_eq!(values.serial_number, "");
        assert_eq!(values.location, "");
        assert_eq!(values.rmm_organization_id, "c1");
        let (_, MappingWrite::Insert { alga_entity_id, external_realm_id, metadata, .. }) = &p.mappings[0] else {
            panic!()
        };
        assert_eq!(alga_entity_id, &id.to_string());
        assert_eq!(external_realm_id, "c1");
        assert_eq!(metadata, &json!({"raw": "a1"}));
        // A workstation always gets its extension row, with nothing present-only written.
        assert_eq!(p.extensions.len(), 1);
        assert_eq!(p.extensions[0].1, "workstation_assets");
        assert_eq!(p.extensions[0].2.cpu_model, None);
    }

    #[test]
    fn an_explicit_asset_tag_is_used_on_create() {
        let mut s = snap("a1", "c1");
        s.asset_tag = Some("TAG-9".into());
        let p = plan(&[s], &state_with_client("c1", Uuid::from_u128(7)));
        assert!(matches!(&p.assets[0].1, AssetWrite::Insert { asset_tag, .. } if asset_tag == "TAG-9"));
    }

    #[test]
    fn skips_an_unmapped_scope_on_create() {
        let p = plan(&[snap("a1", "c9")], &CurrentState::default());
        assert_eq!(p.outcomes[0].action, IngestAction::Skipped);
        assert_eq!(p.outcomes[0].error.as_deref(), Some("No mapped client for external scope c9"));
        assert!(p.assets.is_empty() && p.mappings.is_empty() && p.extensions.is_empty());
    }

    #[test]
    fn a_caller_resolved_client_wins() {
        let s = snap("a1", "c9");
        let p =
            plan_page(&[Item { snapshot: &s, client_id: Some(Uuid::from_u128(5)) }], &CurrentState::default(), t0());
        assert!(matches!(&p.assets[0].1, AssetWrite::Insert { client_id, .. } if *client_id == Uuid::from_u128(5)));
    }

    #[test]
    fn update_reclassifies_and_moves_client_only_when_resolved() {
        let (asset, client, mapping) = (Uuid::from_u128(10), Uuid::from_u128(7), Uuid::from_u128(20));
        let state = existing(asset, client, mapping, "a1", "c1");
        let p = plan(&[snap("a1", "c1")], &state);
        assert_eq!(p.outcomes[0].action, IngestAction::Updated);
        let AssetWrite::Update { values, client_id } = &p.assets[0].1 else { panic!() };
        assert_eq!(values.asset_type, "workstation");
        assert_eq!(*client_id, Some(client));

        // The device moved to an unmapped scope: it is still updated, its client stays.
        let p = plan(&[snap("a1", "c2")], &state);
        assert_eq!(p.outcomes[0].action, IngestAction::Updated);
        let AssetWrite::Update { values, client_id } = &p.assets[0].1 else { panic!() };
        assert_eq!(*client_id, None);
        assert_eq!(values.rmm_organization_id, "c2");
        // Its one mapping follows it to the new scope (any-realm fallback).
        assert_eq!(p.mappings.len(), 1);
        let (id, MappingWrite::Synced { external_realm_id, alga_entity_id, .. }) = &p.mappings[0] else { panic!() };
        assert_eq!((*id, external_realm_id.as_str(), alga_entity_id), (mapping, "c2", &None));
    }

    #[test]
    fn exact_realm_mapping_is_preferred() {
        let (asset, client) = (Uuid::from_u128(10), Uuid::from_u128(7));
        let mut state = existing(asset, client, Uuid::from_u128(20), "a1", "c1");
        let other = Uuid::from_u128(11);
        state.assets.push(AssetRow {
            asset_id: other,
            asset_type: "workstation".into(),
            client_id: Some(client),
            rmm_provider: Some("tacticalrmm".into()),
            rmm_device_id: Some("a1".into()),
        });
        state.mappings.push(MappingRow {
            id: Uuid::from_u128(21),
            integration_type: "tacticalrmm".into(),
            alga_entity_id: other.to_string(),
            external_entity_id: "a1".into(),
            external_realm_id: Some("c2".into()),
        });
        state.org_clients.insert((integration(), "c2".into()), client);
        let p = plan(&[snap("a1", "c2")], &state);
        assert_eq!(p.outcomes[0].asset_id, Some(other));
        assert_eq!(p.mappings[0].0, Uuid::from_u128(21));
    }

    #[test]
    fn offline_lifecycle_defaults_and_explicit_status() {
        let mut s = snap("a1", "c1");
        s.lifecycle = Lifecycle::Offline;
        let p = plan(&[s.clone()], &state_with_client("c1", Uuid::from_u128(7)));
        let AssetWrite::Insert { values, .. } = &p.assets[0].1 else { panic!() };
        assert_eq!((values.status.as_str(), values.agent_status.as_str()), ("inactive", "offline"));
        s.status = Some("active".into());
        s.agent_status = Some(AgentStatus::Overdue);
        let p = plan(&[s], &state_with_client("c1", Uuid::from_u128(7)));
        let AssetWrite::Insert { values, .. } = &p.assets[0].1 else { panic!() };
        assert_eq!((values.status.as_str(), values.agent_status.as_str()), ("active", "overdue"));
    }

    #[test]
    fn deletion_needs_a_mapping() {
        let mut s = snap("a1", "c1");
        s.lifecycle = Lifecycle::Deleted;
        let p = plan(&[s], &CurrentState::default());
        assert_eq!(p.outcomes[0].action, IngestAction::Skipped);
        assert_eq!(p.outcomes[0].error.as_deref(), Some("No existing mapping to mark as deleted"));
        assert!(p.assets.is_empty() && p.mappings.is_empty());
    }

    #[test]
    fn deletion_tombstones_asset_and_mapping() {
        let (asset, mapping) = (Uuid::from_u128(10), Uuid::from_u128(20));
        let state = existing(asset, Uuid::from_u128(7), mapping, "a1", "c1");
        let mut s = snap("a1", "c1");
        s.lifecycle = Lifecycle::Tombstoned;
        let p = plan(&[s], &state);
        assert_eq!(p.outcomes[0].action, IngestAction::MarkedDeleted);
        assert_eq!(p.assets, vec![(asset, AssetWrite::Tombstone)]);
        let (id, MappingWrite::Deleted { metadata }) = &p.mappings[0] else { panic!() };
        assert_eq!(*id, mapping);
        assert_eq!(metadata["deleted"], json!(true));
        assert_eq!(metadata["deletedAt"], json!("2026-11-01T10:00:00.000Z"));
        assert_eq!(metadata["raw"], json!("a1"));
        assert!(p.extensions.is_empty());
    }

    #[test]
    fn falls_back_to_the_asset_by_device_id_and_maps_it() {
        let (asset, client) = (Uuid::from_u128(10), Uuid::from_u128(7));
        let mut state = state_with_client("c1", client);
        state.assets.push(AssetRow {
            asset_id: asset,
            asset_type: "server".into(),
            client_id: Some(client),
            rmm_provider: Some("tacticalrmm".into()),
            rmm_device_id: Some("a1".into()),
        });
        let p = plan(&[snap("a1", "c1")], &state);
        assert_eq!(p.outcomes[0].action, IngestAction::Updated);
        assert_eq!(p.outcomes[0].asset_id, Some(asset));
        assert!(
            matches!(&p.mappings[0].1, MappingWrite::Insert { alga_entity_id, .. } if *alga_entity_id == asset.to_string())
        );
    }

    #[test]
    fn a_dangling_mapping_is_repointed_not_duplicated() {
        let client = Uuid::from_u128(7);
        let mut state = state_with_client("c1", client);
        state.mappings.push(MappingRow {
            id: Uuid::from_u128(20),
            integration_type: "tacticalrmm".into(),
            alga_entity_id: Uuid::from_u128(99).to_string(),
            external_entity_id: "a1".into(),
            external_realm_id: Some("c1".into()),
        });
        let p = plan(&[snap("a1", "c1")], &state);
        assert_eq!(p.outcomes[0].action, IngestAction::Created);
        let new_id = p.outcomes[0].asset_id.unwrap();
        assert_eq!(p.mappings.len(), 1);
        let (id, MappingWrite::Synced { alga_entity_id, .. }) = &p.mappings[0] else { panic!() };
        assert_eq!(*id, Uuid::from_u128(20));
        assert_eq!(alga_entity_id.as_deref(), Some(new_id.to_string().as_str()));
    }

    #[test]
    fn the_same_device_twice_in_a_page_is_written_once() {
        let client = Uuid::from_u128(7);
        let mut second = snap("a1", "c1");
        second.display_name = "renamed".into();
        second.asset_type = AssetType::Server;
        let p = plan(&[snap("a1", "c1"), second], &state_with_client("c1", client));
        assert_eq!(p.outcomes[0].action, IngestAction::Created);
        assert_eq!(p.outcomes[1].action, IngestAction::Updated);
        assert_eq!(p.outcomes[0].asset_id, p.outcomes[1].asset_id);
        assert_eq!(p.assets.len(), 1);
        let AssetWrite::Insert { values, asset_tag, .. } = &p.assets[0].1 else { panic!() };
        assert_eq!(
            (values.name.as_str(), values.asset_type, asset_tag.as_str()),
            ("renamed", "server", "tacticalrmm:a1")
        );
        assert_eq!(p.mappings.len(), 1);
        assert!(matches!(p.mappings[0].1, MappingWrite::Insert { .. }));
        // Type changed within the page: each table gets its row (the old one is left, as AlgaPSA does).
        assert_eq!(p.extensions.len(), 2);
    }

    #[test]
    fn extensions_follow_type_rounding_and_limits() {
        let client = Uuid::from_u128(7);
        let mut s = snap("a1", "c1");
        s.asset_type = AssetType::NetworkDevice;
        s.extension = Some(ExtensionSnapshot { os_type: Some("x".into()), ..Default::default() });
        assert!(plan(&[s.clone()], &state_with_client("c1", client)).extensions.is_empty());

        s.asset_type = AssetType::Server;
        s.extension = Some(ExtensionSnapshot {
            os_type: Some("o".repeat(300)),
            lan_ip: Some("1".repeat(60)),
            antivirus_status: Some("é".repeat(80)),
            ram_gb: Some(Some(15.6)),
            cpu_cores: Some(Some(3.4)),
            cpu_model: Some(None),
            system_info: Some(json!({})),
            ..Default::default()
        });
        let p = plan(&[s], &state_with_client("c1", client));
        let e = &p.extensions[0].2;
        assert_eq!(p.extensions[0].1, "server_assets");
        assert_eq!(e.os_type.as_ref().unwrap().chars().count(), 255);
        assert_eq!(e.lan_ip.as_ref().unwrap().len(), 45);
        assert_eq!(e.antivirus_status.as_ref().unwrap().chars().count(), 50);
        assert_eq!(e.ram_gb, Some(Some(16.0)));
        assert_eq!(e.cpu_cores, Some(Some(3.0)));
        assert_eq!(e.cpu_model, Some(None));
        assert_eq!(e.system_info, Some(json!({})));
    }

    #[test]
    fn serials_never_correlate_devices() {
        // Two white-box PCs with the same placeholder serial, and two clones with the same real
        // serial: four devices, four assets, each serial stored as reported.
        let client = Uuid::from_u128(7);
        let with_serial = |device: &str, serial: &str| {
            let mut s = snap(device, "c1");
            s.serial_number = Some(serial.into());
            s
        };
        let snaps = [
            with_serial("a1", "To Be Filled By O.E.M."),
            with_serial("a2", "To Be Filled By O.E.M."),
            with_serial("a3", "5CG1234XYZ"),
            with_serial("a4", "5CG1234XYZ"),
        ];
        let p = plan(&snaps, &state_with_client("c1", client));
        assert!(p.outcomes.iter().all(|o| o.action == IngestAction::Created), "{:?}", p.outcomes);
        let ids: std::collections::HashSet<_> = p.outcomes.iter().map(|o| o.asset_id).collect();
        assert_eq!(ids.len(), 4);
        assert_eq!(p.mappings.len(), 4);
        let serials: Vec<&str> = p
            .assets
            .iter()
            .map(|(_, w)| match w {
                AssetWrite::Insert { values, .. } => values.serial_number.as_str(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(serials, ["To Be Filled By O.E.M.", "To Be Filled By O.E.M.", "5CG1234XYZ", "5CG1234XYZ"]);
    }

    #[test]
    fn long_ids_are_cut_consistently() {
        let long = "d".repeat(300);
        let p = plan(&[snap(&long, "c1")], &state_with_client("c1", Uuid::from_u128(7)));
        assert_eq!(p.outcomes[0].action, IngestAction::Created);
        let AssetWrite::Insert { values, asset_tag, .. } = &p.assets[0].1 else { panic!() };
        assert_eq!(values.rmm_device_id.len(), 255);
        assert!(asset_tag.ends_with(&"d".repeat(255)));
    }
}
