//! Endpoint record → normalized device snapshot.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use super::record::{EndpointRecord, uptime_seconds};
use crate::ingest::{AgentStatus, AssetType, DeviceSnapshot, ExtensionSnapshot, Lifecycle};

/// The asset type from the name and operating system (AlgaPSA's `inferTaniumAssetType`, checked in
/// the same order). Single-word markers must match whole words, so that `BIOS-07` or
/// `scenarios-pc` are not mobile devices and `switchboard-pc` is not a network device (AlgaPSA
/// matches substrings).
pub fn infer_asset_type(name: &str, os_name: Option<&str>, os_version: Option<&str>) -> AssetType {
    let fingerprint =
        [Some(name), os_name, os_version].into_iter().flatten().collect::<Vec<_>>().join(" ").to_lowercase();
    let words: Vec<&str> = fingerprint.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect();
    let has_word = |w: &str| words.contains(&w);
    let has_phrase = |p: &str| fingerprint.contains(p);
    if ["switch", "router", "firewall"].iter().any(|w| has_word(w))
        || has_phrase("access point")
        || has_phrase("load balancer")
    {
        AssetType::NetworkDevice
    } else if ["android", "ios", "ipad", "iphone", "ipados", "mobile"].iter().any(|w| has_word(w)) {
        AssetType::MobileDevice
    } else if has_phrase("server") {
        AssetType::Server
    } else {
        AssetType::Workstation
    }
}

/// Record → snapshot for the scope it is ingested under. Every extension key is present (null
/// when there is no value), as AlgaPSA's mapper sends them.
pub fn endpoint_snapshot(
    record: &EndpointRecord,
    integration_id: Uuid,
    scope: &str,
    now: DateTime<Utc>,
) -> DeviceSnapshot {
    let offline = record.online == Some(false);
    let uptime = uptime_seconds(record.last_reboot_at.as_deref(), now);
    let mut metadata = record.metadata.clone();
    if let Some(u) = uptime {
        metadata.insert("uptimeSeconds".into(), json!(u));
    }
    let metadata = Value::Object(metadata);
    let extension = ExtensionSnapshot {
        os_type: record.os_name.clone(),
        os_version: record.os_version.clone(),
        current_user: record.current_user.clone(),
        uptime_seconds: uptime,
        lan_ip: record.ip_address.clone(),
        wan_ip: record.wan_ip_address.clone(),
        last_reboot_at: record.last_reboot_at.as_deref().and_then(super::record::parse_time),
        system_info: Some(metadata.clone()),
        cpu_model: Some(record.cpu_model.clone()),
        cpu_cores: Some(record.cpu_logical_processors.map(|n| n as f64)),
        ram_gb: Some(record.memory_total_gb),
        disk_usage: Some(Some(record.disk_usage.clone())),
        installed_software: Some(Some(Value::Array(
            record.installed_applications.iter().map(|a| json!({ "name": a.name, "version": a.version })).collect(),
        ))),
        ..ExtensionSnapshot::default()
    };
    DeviceSnapshot {
        provider: super::PROVIDER,
        integration_id,
        external_device_id: record.id.clone(),
        external_scope_id: scope.to_owned(),
        lifecycle: if offline { Lifecycle::Offline } else { Lifecycle::Active },
        asset_type: infer_asset_type(&record.name, record.os_name.as_deref(), record.os_version.as_deref()),
        display_name: if record.name.is_empty() { record.id.clone() } else { record.name.clone() },
        serial_number: record.serial_number.clone(),
        status: Some(if offline { "inactive" } else { "active" }.to_owned()),
        location: None,
        asset_tag: Some(format!("tanium:{}", record.id)),
        agent_status: Some(if offline { AgentStatus::Offline } else { AgentStatus::Online }),
        last_seen_at: record.last_seen.as_deref().and_then(super::record::parse_time),
        extension: Some(extension),
        metadata: Some(metadata),
    }
}

/// The incremental window: no cursor, no or unparseable `lastSeen` → include;
/// otherwise `lastSeen >= since` (inclusive).
pub fn changed_since(record: &EndpointRecord, since: Option<DateTime<Utc>>) -> bool {
    let Some(since) = since else { return true };
    match record.last_seen.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(super::record::parse_time) {
        None | Some(None) => true,
        Some(Some(seen)) => seen >= since,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn classification() {
        assert_eq!(infer_asset_type("DC01", Some("Windows Server 2022"), None), AssetType::Server);
        assert_eq!(
            infer_asset_type("06:21:32:B6:E3:C2", Some("macOS (26.3.1 (a))"), Some("macOS 26.3")),
            AssetType::Workstation
        );
        assert_eq!(infer_asset_type("core-switch-01", None, None), AssetType::NetworkDevice);
        assert_eq!(infer_asset_type("edge", Some("FortiOS firewall"), None), AssetType::NetworkDevice);
        assert_eq!(infer_asset_type("Bob's iPhone", Some("iOS 19"), None), AssetType::MobileDevice);
        assert_eq!(infer_asset_type("BIOS-07", Some("Windows 11"), None), AssetType::Workstation);
        assert_eq!(infer_asset_type("scenarios-pc", Some("Windows 11"), None), AssetType::Workstation);
        assert_eq!(infer_asset_type("ws", Some("Ubuntu"), Some("Linux")), AssetType::Workstation);
    }

    #[test]
    fn incremental_window() {
        let since = Utc.with_ymd_and_hms(2026, 8, 13, 9, 0, 0).unwrap();
        let rec = |seen: Option<&str>| EndpointRecord { last_seen: seen.map(str::to_owned), ..Default::default() };
        assert!(changed_since(&rec(Some("2026-08-13T10:00:00Z")), Some(since)));
        assert!(!changed_since(&rec(Some("2026-08-01T00:00:00Z")), Some(since)));
        assert!(changed_since(&rec(Some("2026-08-13T09:00:00.000Z")), Some(since)));
        assert!(changed_since(&rec(None), Some(since)));
        assert!(changed_since(&rec(Some("")), Some(since)));
        assert!(changed_since(&rec(Some("not a date")), Some(since)));
        assert!(changed_since(&rec(Some("2020-01-01T00:00:00Z")), None));
    }

    #[test]
    fn snapshot_fields() {
        let now = Utc.with_ymd_and_hms(2026, 4, 15, 18, 0, 0).unwrap();
        let rec = EndpointRecord {
            id: "endpoint-1".into(),
            name: "Win Server".into(),
            os_name: Some("Windows Server 2022".into()),
            last_seen: Some("2026-04-15T17:07:13Z".into()),
            last_reboot_at: Some("2026-04-15T10:00:00Z".into()),
            cpu_logical_processors: Some(16),
            memory_total_gb: Some(48.0),
            ..Default::default()
        };
        let s = endpoint_snapshot(&rec, Uuid::nil(), "30229", now);
        assert_eq!(s.asset_type, AssetType::Server);
        assert_eq!(s.asset_tag.as_deref(), Some("tanium:endpoint-1"));
        assert_eq!(s.agent_status, Some(AgentStatus::Online));
        assert_eq!(s.status.as_deref(), Some("active"));
        let e = s.extension.unwrap();
        assert_eq!(e.uptime_seconds, Some(8 * 3600));
        assert_eq!(e.cpu_cores, Some(Some(16.0)));
        assert_eq!(e.cpu_model, Some(None));
        assert_eq!(e.disk_usage, Some(Some(vec![])));
        assert_eq!(e.installed_software, Some(Some(json!([]))));
        assert_eq!(s.metadata.unwrap()["uptimeSeconds"], 28_800);
        let off = EndpointRecord { online: Some(false), ..rec };
        let s = endpoint_snapshot(&off, Uuid::nil(), "30229", now);
        assert_eq!((s.lifecycle, s.status.as_deref()), (Lifecycle::Offline, Some("inactive")));
    }
}
