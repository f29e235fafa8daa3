//! What a page plan changes in each asset: created, which tracked fields go from what to what,
//! moved to another client, tombstoned. A pure function of the plan and the tracked values the
//! page's rows held before it; the dry run reports these changes, a real run records them in
//! `rmm_sync.asset_history`.
//!
//! Only fields that say what a device is or where it belongs are tracked. Values that move at every
//! check-in (last seen, agent status, uptime, current user, last reboot, patch counts, disk usage,
//! installed software, system info) are written as always but are not changes worth a history
//! row: with them every resync would record every device.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::plan::{AssetWrite, PagePlan};
use super::snapshot::ExtensionSnapshot;

/// The tracked `assets` columns (besides `client_id`, whose change is a move).
pub const ASSET_FIELDS: [&str; 6] =
    ["name", "serial_number", "status", "location", "asset_type", "rmm_organization_id"];

/// The tracked extension columns (`workstation_assets` / `server_assets`).
pub const EXTENSION_FIELDS: [&str; 10] = [
    "os_type",
    "os_version",
    "agent_version",
    "lan_ip",
    "wan_ip",
    "antivirus_status",
    "antivirus_product",
    "cpu_model",
    "cpu_cores",
    "ram_gb",
];

/// What happened to an asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeAction {
    Created,
    Updated,
    /// Its client changed (other fields may have changed too).
    Moved,
    Tombstoned,
}

impl ChangeAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeAction::Created => "created",
            ChangeAction::Updated => "updated",
            ChangeAction::Moved => "moved",
            ChangeAction::Tombstoned => "tombstoned",
        }
    }
}

/// One field's change; `None` is an empty value (NULL or the empty string).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    pub field: String,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// One asset's planned change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetChange {
    pub asset_id: Uuid,
    pub external_device_id: String,
    /// The RMM organisation (scope) the device is synced under.
    pub external_organization_id: String,
    /// The asset's name after the change.
    pub name: Option<String>,
    pub action: ChangeAction,
    pub changes: Vec<FieldChange>,
}

/// The tracked values an existing asset holds, as text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackedValues {
    pub client_id: Option<Uuid>,
    pub rmm_device_id: Option<String>,
    /// In [`ASSET_FIELDS`] order.
    pub asset: Vec<Option<String>>,
    /// In [`EXTENSION_FIELDS`] order; empty when the asset has no extension row.
    pub extension: Vec<Option<String>>,
}

impl TrackedValues {
    /// Reads the JSON array the loader builds: the [`ASSET_FIELDS`] then the [`EXTENSION_FIELDS`]
    /// (all null when there is no extension row, `has_extension` false).
    pub fn from_json(
        client_id: Option<Uuid>,
        rmm_device_id: Option<String>,
        values: &Value,
        has_extension: bool,
    ) -> Self {
        let list = values.as_array().map(Vec::as_slice).unwrap_or_default();
        let at = |i: usize| list.get(i).and_then(text_of);
        TrackedValues {
            client_id,
            rmm_device_id,
            asset: (0..ASSET_FIELDS.len()).map(at).collect(),
            extension: if has_extension {
                (0..EXTENSION_FIELDS.len()).map(|i| at(ASSET_FIELDS.len() + i)).collect()
            } else {
                Vec::new()
            },
        }
    }
}

/// A JSON value as the text a change shows; empty strings and nulls are `None`.
fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
            _ => n.to_string(),
        }),
        other => Some(other.to_string()),
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// The extension values a patch writes, in [`EXTENSION_FIELDS`] order; `None` for a present-only
/// field the patch leaves alone.
fn extension_values(e: &ExtensionSnapshot) -> [Option<Option<String>>; 10] {
    let text = |v: &Option<String>| Some(v.as_deref().and_then(non_empty));
    let int = |v: Option<Option<f64>>| v.map(|v| v.map(|f| format!("{}", f as i64)));
    [
        text(&e.os_type),
        text(&e.os_version),
        text(&e.agent_version),
        text(&e.lan_ip),
        text(&e.wan_ip),
        text(&e.antivirus_status),
        text(&e.antivirus_product),
        e.cpu_model.as_ref().map(|m| m.as_deref().and_then(non_empty)),
        int(e.cpu_cores),
        int(e.ram_gb),
    ]
}

/// The changes `plan` makes to the assets whose tracked values before the page are `before`
/// (keyed by asset id). An asset whose tracked values stay the same has no change.
pub fn asset_changes(plan: &PagePlan, before: &HashMap<Uuid, TrackedValues>) -> Vec<AssetChange> {
    let extensions: HashMap<Uuid, &ExtensionSnapshot> = plan.extensions.iter().map(|(id, _, e)| (*id, e)).collect();
    let mut out = Vec::new();
    for (asset_id, write) in &plan.assets {
        let old = before.get(asset_id);
        let change = match write {
            AssetWrite::Insert { values, client_id, .. } => AssetChange {
                asset_id: *asset_id,
                external_device_id: values.rmm_device_id.clone(),
                external_organization_id: values.rmm_organization_id.clone(),
                name: non_empty(&values.name),
                action: ChangeAction::Created,
                changes: vec![FieldChange { field: "client_id".into(), from: None, to: Some(client_id.to_string()) }],
            },
            AssetWrite::Update { values, client_id } => {
                let Some(old) = old else { continue };
                let new_asset = [
                    non_empty(&values.name),
                    non_empty(&values.serial_number),
                    non_empty(&values.status),
                    non_empty(&values.location),
                    non_empty(values.asset_type),
                    non_empty(&values.rmm_organization_id),
                ];
                let mut changes: Vec<FieldChange> = ASSET_FIELDS
                    .iter()
                    .zip(new_asset)
                    .zip(&old.asset)
                    .filter(|((_, new), old)| new != *old)
                    .map(|((field, new), old)| FieldChange { field: (*field).into(), from: old.clone(), to: new })
                    .collect();
                if let Some(ext) = extensions.get(asset_id) {
                    for (i, new) in extension_values(ext).into_iter().enumerate() {
                        let Some(new) = new else { continue };
                        let old = old.extension.get(i).cloned().flatten();
                        if new != old {
                            changes.push(FieldChange { field: EXTENSION_FIELDS[i].into(), from: old, to: new });
                        }
                    }
                }
                let moved = matches!(client_id, Some(c) if old.client_id != Some(*c));
                if moved {
                    changes.push(FieldChange {
                        field: "client_id".into(),
                        from: old.client_id.map(|c| c.to_string()),
                        to: client_id.map(|c| c.to_string()),
                    });
                }
                if changes.is_empty() {
                    continue;
                }
                AssetChange {
                    asset_id: *asset_id,
                    external_device_id: values.rmm_device_id.clone(),
                    external_organization_id: values.rmm_organization_id.clone(),
                    name: non_empty(&values.name),
                    action: if moved { ChangeAction::Moved } else { ChangeAction::Updated },
                    changes,
                }
            }
            AssetWrite::Tombstone => {
                let Some(old) = old else { continue };
                let status = old.asset.get(2).cloned().flatten();
                if status.as_deref() == Some("inactive") {
                    continue;
                }
                AssetChange {
                    asset_id: *asset_id,
                    external_device_id: old.rmm_device_id.clone().unwrap_or_default(),
                    external_organization_id: old.asset.get(5).cloned().flatten().unwrap_or_default(),
                    name: old.asset.first().cloned().flatten(),
                    action: ChangeAction::Tombstoned,
                    changes: vec![FieldChange { field: "status".into(), from: status, to: Some("inactive".into()) }],
                }
            }
        };
        out.push(change);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::plan::AssetValues;
    use serde_json::json;

    fn values(name: &str, os: &str) -> (AssetValues, ExtensionSnapshot) {
        (
            AssetValues {
                asset_type: "workstation",
                name: name.into(),
                serial_number: "SN1".into(),
                status: "active".into(),
                location: String::new(),
                rmm_provider: "tacticalrmm".into(),
                rmm_device_id: "agent-1".into(),
                rmm_organization_id: "7".into(),
                agent_status: "online".into(),
                last_seen_at: None,
            },
            ExtensionSnapshot { os_version: Some(os.into()), cpu_cores: Some(Some(8.0)), ..Default::default() },
        )
    }

    fn before(client: Uuid) -> TrackedValues {
        TrackedValues::from_json(
            Some(client),
            Some("agent-1".into()),
            &json!([
                "PC-1",
                "SN1",
                "active",
                null,
                "workstation",
                "7",
                null,
                "Windows 10",
                null,
                null,
                null,
                null,
                null,
                null,
                8,
                null
            ]),
            true,
        )
    }

    fn plan_of(write: AssetWrite, ext: ExtensionSnapshot, id: Uuid) -> PagePlan {
        PagePlan { assets: vec![(id, write)], extensions: vec![(id, "workstation_assets", ext)], ..Default::default() }
    }

    #[test]
    fn an_unchanged_asset_has_no_change_and_volatile_fields_are_not_tracked() {
        let (id, client) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let (mut v, mut e) = values("PC-1", "Windows 10");
        v.agent_status = "offline".into();
        e.uptime_seconds = Some(99);
        e.current_user = Some("bob".into());
        let plan = plan_of(AssetWrite::Update { values: v, client_id: Some(client) }, e, id);
        assert!(asset_changes(&plan, &HashMap::from([(id, before(client))])).is_empty());
    }

    #[test]
    fn changed_fields_go_from_old_to_new_and_a_client_change_is_a_move() {
        let (id, client, other) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let (v, e) = values("PC-1b", "Windows 11");
        let plan = plan_of(AssetWrite::Update { values: v.clone(), client_id: Some(client) }, e.clone(), id);
        let changes = asset_changes(&plan, &HashMap::from([(id, before(client))]));
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].action, ChangeAction::Updated);
        assert_eq!(
            changes[0].changes,
            vec![
                FieldChange { field: "name".into(), from: Some("PC-1".into()), to: Some("PC-1b".into()) },
                FieldChange {
                    field: "os_version".into(),
                    from: Some("Windows 10".into()),
                    to: Some("Windows 11".into())
                },
            ]
        );
        let plan = plan_of(AssetWrite::Update { values: v, client_id: Some(other) }, e, id);
        let moved = &asset_changes(&plan, &HashMap::from([(id, before(client))]))[0];
        assert_eq!(moved.action, ChangeAction::Moved);
        assert_eq!(moved.changes.last().unwrap().to, Some(other.to_string()));
    }

    #[test]
    fn creations_and_tombstones_are_changes_but_a_second_tombstone_is_not() {
        let (id, client) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let (v, e) = values("PC-1", "Windows 10");
        let plan = plan_of(AssetWrite::Insert { values: v, client_id: client, asset_tag: "t".into() }, e.clone(), id);
        assert_eq!(asset_changes(&plan, &HashMap::new())[0].action, ChangeAction::Created);
        let plan = plan_of(AssetWrite::Tombstone, e.clone(), id);
        let gone = asset_changes(&plan, &HashMap::from([(id, before(client))]));
        assert_eq!(gone[0].action, ChangeAction::Tombstoned);
        assert_eq!(gone[0].external_device_id, "agent-1");
        let mut inactive = before(client);
        inactive.asset[2] = Some("inactive".into());
        assert!(asset_changes(&plan, &HashMap::from([(id, inactive)])).is_empty());
    }
}
