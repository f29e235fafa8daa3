//! The normalized device snapshot contract: what every provider hands to the ingestion pipeline.
//!
//! It mirrors AlgaPSA's `NormalizedRmmExternalDeviceSnapshot` (docs/ingestion.md).
//! Fields that AlgaPSA writes only when the key is present are `Option<Option<T>>`:
//! `None` = absent (leave the column alone), `Some(None)` = present and null (write NULL).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use crate::providers::Provider;

/// The device's lifecycle as the provider reports it. `Deleted`/`Tombstoned` take the soft-delete path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    #[default]
    Active,
    Offline,
    Deleted,
    Tombstoned,
}

impl Lifecycle {
    pub fn is_deletion(self) -> bool {
        matches!(self, Lifecycle::Deleted | Lifecycle::Tombstoned)
    }
}

/// `assets.asset_type` values the RMM ingestion writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AssetType {
    Workstation,
    Server,
    NetworkDevice,
    MobileDevice,
    #[default]
    Unknown,
}

impl AssetType {
    pub fn slug(self) -> &'static str {
        match self {
            AssetType::Workstation => "workstation",
            AssetType::Server => "server",
            AssetType::NetworkDevice => "network_device",
            AssetType::MobileDevice => "mobile_device",
            AssetType::Unknown => "unknown",
        }
    }

    /// Anything AlgaPSA does not know becomes `unknown`, as its `normalizeAssetType` does.
    pub fn from_slug(slug: &str) -> AssetType {
        match slug {
            "workstation" => AssetType::Workstation,
            "server" => AssetType::Server,
            "network_device" => AssetType::NetworkDevice,
            "mobile_device" => AssetType::MobileDevice,
            _ => AssetType::Unknown,
        }
    }

    /// The extension table for this type, if the pipeline writes one.
    pub fn extension_table(self) -> Option<&'static str> {
        match self {
            AssetType::Workstation => Some("workstation_assets"),
            AssetType::Server => Some("server_assets"),
            _ => None,
        }
    }
}

/// `assets.agent_status` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    Online,
    Offline,
    Overdue,
    Unknown,
}

impl AgentStatus {
    pub fn slug(self) -> &'static str {
        match self {
            AgentStatus::Online => "online",
            AgentStatus::Offline => "offline",
            AgentStatus::Overdue => "overdue",
            AgentStatus::Unknown => "unknown",
        }
    }
}

/// One device as a provider sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceSnapshot {
    pub provider: Provider,
    pub integration_id: Uuid,
    pub external_device_id: String,
    pub external_scope_id: String,
    #[serde(default)]
    pub lifecycle: Lifecycle,
    #[serde(default)]
    pub asset_type: AssetType,
    pub display_name: String,
    #[serde(default)]
    pub serial_number: Option<String>,
    /// Overrides `assets.status` when non-empty.
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub location: Option<String>,
    /// Used only when the asset is created.
    #[serde(default)]
    pub asset_tag: Option<String>,
    #[serde(default)]
    pub agent_status: Option<AgentStatus>,
    #[serde(default)]
    pub last_seen_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub extension: Option<ExtensionSnapshot>,
    /// Becomes the mapping's `metadata` (replaced on every ingest).
    #[serde(default)]
    pub metadata: Option<serde_json::Value>,
}

/// One disk in `disk_usage`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiskUsage {
    pub name: String,
    pub total_gb: Option<f64>,
    pub free_gb: Option<f64>,
    pub utilization_percent: Option<f64>,
}

/// The extension row (`workstation_assets` / `server_assets`).
///
/// Plain `Option` fields are always written: absent overwrites with NULL. `Option<Option<_>>`
/// fields are written only when present (`Some`), and `Some(None)` writes NULL
/// (for `installed_software`, `[]`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ExtensionSnapshot {
    pub os_type: Option<String>,
    pub os_version: Option<String>,
    pub agent_version: Option<String>,
    pub current_user: Option<String>,
    pub uptime_seconds: Option<i64>,
    pub lan_ip: Option<String>,
    pub wan_ip: Option<String>,
    pub antivirus_status: Option<String>,
    pub antivirus_product: Option<String>,
    pub last_reboot_at: Option<DateTime<Utc>>,
    pub pending_patches: Option<i64>,
    pub pending_os_patches: Option<i64>,
    pub pending_software_patches: Option<i64>,
    pub failed_patches: Option<i64>,
    pub last_patch_scan_at: Option<DateTime<Utc>>,
    /// `system_info`: NULL when absent (AlgaPSA overrides the column default).
    pub system_info: Option<serde_json::Value>,
    /// The five patch columns (`pending_patches` … `last_patch_scan_at`) are left as they are: the
    /// provider counts patches in a job of their own (NinjaOne's `ninjaone-sync-patches`, as
    /// AlgaPSA's NinjaOne mapper leaves them unset). By default they are written like the other
    /// plain fields.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub patches_untouched: bool,

    #[serde(default, skip_serializing_if = "Option::is_none", with = "present")]
    pub cpu_model: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "present")]
    pub cpu_cores: Option<Option<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "present")]
    pub ram_gb: Option<Option<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "present")]
    pub disk_usage: Option<Option<Vec<DiskUsage>>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "present")]
    pub installed_software: Option<Option<serde_json::Value>>,
}

/// serde for "present, maybe null" fields: a missing key is `None`, `null` is `Some(None)`.
mod present {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(v: &Option<Option<T>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(inner) => inner.serialize(s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// What happened to one snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IngestAction {
    Created,
    Updated,
    MarkedDeleted,
    Skipped,
    Failed,
}

/// The outcome of one snapshot (AlgaPSA's `NormalizedRmmIngestionResult`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestOutcome {
    pub external_device_id: String,
    pub action: IngestAction,
    pub asset_id: Option<Uuid>,
    pub error: Option<String>,
}

/// Run counters with AlgaPSA's semantics: every attempted device is processed; skipped devices are
/// counted as processed only; failed = number of errors. `placeholder_serials` is ours: devices
/// created or updated whose reported serial number is a placeholder
/// ([`super::serial::is_reported_placeholder`]); they are among `created` and `updated` too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IngestCounts {
    pub processed: u64,
    pub created: u64,
    pub updated: u64,
    pub deleted: u64,
    pub skipped: u64,
    pub failed: u64,
    #[serde(default)]
    pub placeholder_serials: u64,
}

impl IngestCounts {
    pub fn record(&mut self, action: IngestAction) {
        self.processed += 1;
        match action {
            IngestAction::Created => self.created += 1,
            IngestAction::Updated => self.updated += 1,
            IngestAction::MarkedDeleted => self.deleted += 1,
            IngestAction::Skipped => self.skipped += 1,
            IngestAction::Failed => self.failed += 1,
        }
    }

    pub fn add(&mut self, other: &IngestCounts) {
        self.processed += other.processed;
        self.created += other.created;
        self.updated += other.updated;
        self.deleted += other.deleted;
        self.skipped += other.skipped;
        self.failed += other.failed;
        self.placeholder_serials += other.placeholder_serials;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn present_fields_distinguish_absent_from_null() {
        let e: ExtensionSnapshot = serde_json::from_str(r#"{"cpu_model": null, "ram_gb": 15.6}"#).unwrap();
        assert_eq!(e.cpu_model, Some(None));
        assert_eq!(e.ram_gb, Some(Some(15.6)));
        assert_eq!(e.cpu_cores, None);
        assert_eq!(e.disk_usage, None);
        let back = serde_json::to_value(&e).unwrap();
        assert!(back.get("cpu_cores").is_none());
        assert!(back.get("cpu_model").unwrap().is_null());
    }

    #[test]
    fn unknown_asset_types_become_unknown() {
        assert_eq!(AssetType::from_slug("printer"), AssetType::Unknown);
        assert_eq!(AssetType::from_slug("server"), AssetType::Server);
        assert_eq!(AssetType::Server.extension_table(), Some("server_assets"));
        assert_eq!(AssetType::MobileDevice.extension_table(), None);
    }
}
