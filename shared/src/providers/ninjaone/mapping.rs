//! NinjaOne device → [`DeviceSnapshot`], field by field as AlgaPSA's device mapper does (name,
//! serial, approval status, location, online/offline, last contact, OS, CPU, RAM, volumes and disk
//! use, antivirus, last reboot, current user, uptime, LAN and WAN IP, make/model/domain; server vs
//! workstation and virtual/hypervisor from the node class), with these differences:
//! - the detailed listing's own field names are read (`ipAddress`, `numCores`, top-level
//!   `memory`, `lastBootTime` in epoch seconds) besides the ones AlgaPSA reads, which the listing
//!   does not send;
//! - uptime is computed from the boot time in epoch seconds (AlgaPSA parses it as a date string
//!   and gets no uptime);
//! - `MAC_SERVER` is a server (AlgaPSA does not know it: `unknown`);
//! - the mapping's metadata is a compact summary, not the whole device.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use super::PROVIDER;
use super::model::{Antivirus, Device, Volume};
use crate::ingest::serial;
use crate::ingest::snapshot::{AgentStatus, AssetType, DeviceSnapshot, DiskUsage, ExtensionSnapshot, Lifecycle};

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// Why a device could not be mapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("NinjaOne device record missing id (org={0})")]
    MissingId(String),
    #[error("NinjaOne device {0} has no organisation to map it to")]
    MissingScope(i64),
}

/// The asset type of a node class (AlgaPSA's table, plus `MAC_SERVER`).
pub fn asset_type(node_class: Option<&str>) -> AssetType {
    match node_class.unwrap_or("") {
        "WINDOWS_WORKSTATION" | "MAC" | "LINUX_WORKSTATION" => AssetType::Workstation,
        "WINDOWS_SERVER" | "LINUX_SERVER" | "MAC_SERVER" | "VMWARE_VM_HOST" | "VMWARE_VM_GUEST" | "HYPERV_VMM_HOST"
        | "HYPERV_VMM_GUEST" => AssetType::Server,
        "NMS" | "CLOUD_MONITOR_TARGET" => AssetType::NetworkDevice,
        c if c.starts_with("NMS_") => AssetType::NetworkDevice,
        _ => AssetType::Unknown,
    }
}

/// `(is_virtual, hypervisor)` from the node class: guests are virtual, on VMware or Hyper-V.
pub fn virtualisation(node_class: Option<&str>) -> (bool, Option<&'static str>) {
    let c = node_class.unwrap_or("");
    if c.contains("VM_GUEST") || c.contains("VMM_GUEST") {
        (true, Some(if c.contains("VMWARE") { "VMware" } else { "Hyper-V" }))
    } else {
        (false, None)
    }
}

/// AlgaPSA's simplified OS type.
pub fn os_type(name: Option<&str>) -> Option<String> {
    let name = name.map(str::trim).filter(|n| !n.is_empty())?;
    let l = name.to_lowercase();
    Some(
        if l.contains("windows") {
            "Windows"
        } else if l.contains("mac") || l.contains("darwin") {
            "macOS"
        } else if ["linux", "ubuntu", "centos", "debian", "red hat", "rhel", "fedora", "suse"]
            .iter()
            .any(|k| l.contains(k))
        {
            "Linux"
        } else {
            name
        }
        .to_owned(),
    )
}

/// AlgaPSA's antivirus summary of the first product: `protected` (on and up to date), `at_risk`
/// (off or out of date), else `unknown`; `None` when no product is reported.
pub fn antivirus(products: &[Antivirus]) -> Option<(String, Option<String>)> {
    let p = products.first()?;
    let state = p.state.as_deref().unwrap_or("").to_ascii_uppercase();
    let defs = p.definition_status.as_deref().unwrap_or("").to_ascii_uppercase();
    let status = if state == "ON" && defs == "UP_TO_DATE" {
        "protected"
    } else if state == "OFF" || defs == "OUT_OF_DATE" {
        "at_risk"
    } else {
        "unknown"
    };
    Some((status.to_owned(), p.name.clone().filter(|n| !n.is_empty())))
}

/// The first IPv4 address that is neither loopback nor link-local, from the interfaces, else
/// from the device's address list.
pub fn primary_lan_ip(device: &Device) -> Option<String> {
    let from_nics = device.network_interfaces.iter().flat_map(|n| n.ip_address.iter());
    from_nics
        .chain(device.ip_addresses.iter())
        .map(|ip| ip.trim())
        .find(|ip| !ip.is_empty() && !ip.contains(':') && !ip.starts_with("127.") && !ip.starts_with("169.254."))
        .map(str::to_owned)
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Volumes with a capacity, in GB with two decimals (AlgaPSA's cached storage shape).
pub fn disk_usage(volumes: &[Volume]) -> Vec<DiskUsage> {
    volumes
        .iter()
        .filter(|v| v.capacity.is_some_and(|c| c > 0.0))
        .map(|v| {
            let total = v.capacity.unwrap_or(0.0) / GIB;
            let free = v.free_space.unwrap_or(0.0) / GIB;
            let used = if total > 0.0 { (total - free) / total * 100.0 } else { 0.0 };
            DiskUsage {
                name: v.name.clone().or_else(|| v.label.clone()).unwrap_or_else(|| "Unknown".into()),
                total_gb: Some(round2(total)),
                free_gb: Some(round2(free)),
                utilization_percent: Some(round2(used)),
            }
        })
        .collect()
}

/// Seconds since boot, when the boot time is in the past and less than five years ago.
pub fn uptime_seconds(boot: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Option<i64> {
    let secs = (now - boot?).num_seconds();
    (0..=5 * 365 * 86_400).contains(&secs).then_some(secs)
}

fn clean(s: Option<&str>) -> Option<String> {
    s.map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// The device as a snapshot. `scope` is the organisation the device was listed under, used when
/// the device carries no `organizationId`.
pub fn device_snapshot(
    device: &Device,
    scope: Option<&str>,
    integration_id: Uuid,
    now: DateTime<Utc>,
) -> Result<DeviceSnapshot, MappingError> {
    let org = device.organization_id.map(|o| o.to_string()).or_else(|| scope.map(str::to_owned));
    if device.id <= 0 {
        return Err(MappingError::MissingId(org.unwrap_or_else(|| "?".into())));
    }
    let scope = org.ok_or(MappingError::MissingScope(device.id))?;
    let class = device.node_class.as_deref();
    let asset_type = asset_type(class);
    let system = device.system.clone().unwrap_or_default();
    let os = device.os.clone().unwrap_or_default();
    let serial = clean(system.serial_number.as_deref()).or_else(|| clean(system.bios_serial_number.as_deref()));
    let name = clean(device.display_name.as_deref())
        .or_else(|| clean(device.system_name.as_deref()))
        .unwrap_or_else(|| format!("Device-{}", device.id));
    let (is_virtual, hypervisor) = virtualisation(class);
    let extension = asset_type.extension_table().map(|_| {
        let cpu = device.processors.first();
        let cores = cpu.and_then(|p| p.num_cores.or(p.num_logical_cores));
        let ram = device
            .memory
            .as_ref()
            .and_then(|m| m.capacity)
            .or_else(|| system.memory.as_ref().and_then(|m| m.capacity))
            .or(system.total_physical_memory)
            .map(|b| (b / GIB).round());
        let av = antivirus(&device.antivirus);
        let mut info = json!({
            "manufacturer": system.manufacturer,
            "model": system.model,
            "chassis_type": system.chassis_type,
            "domain": system.domain,
            "dns_name": device.dns_name,
            "netbios_name": device.netbios_name,
            "public_ip": device.public_ip,
            "timezone": os.timezone.as_ref().and_then(|t| t.get("name").cloned().or_else(|| t.as_str().map(|s| json!(s)))),
            "locale": os.locale,
        });
        if asset_type == AssetType::Server {
            info["is_virtual"] = json!(is_virtual);
            info["hypervisor"] = json!(hypervisor);
        }
        ExtensionSnapshot {
            os_type: os_type(os.name.as_deref()),
            os_version: clean(os.version.as_deref()).or_else(|| {
                clean(os.name.as_deref()).map(|n| match clean(os.build_number.as_deref()) {
                    Some(b) => format!("{n} ({b})"),
                    None => n,
                })
            }),
            agent_version: None,
            current_user: clean(device.last_logged_in_user.as_deref()),
            uptime_seconds: uptime_seconds(os.last_boot_time, now),
            lan_ip: primary_lan_ip(device),
            wan_ip: clean(device.public_ip.as_deref()),
            antivirus_status: av.as_ref().map(|(s, _)| s.clone()),
            antivirus_product: av.and_then(|(_, p)| p),
            last_reboot_at: os.last_boot_time,
            system_info: Some(info),
            cpu_model: Some(cpu.and_then(|p| clean(p.name.as_deref()))),
            cpu_cores: Some(cores),
            ram_gb: Some(ram),
            disk_usage: Some(Some(disk_usage(&device.volumes))),
            // Counted by `ninjaone-sync-patches` (see `patches`).
            patches_untouched: true,
            ..Default::default()
        }
    });
    let approved = device.approval_status.as_deref().is_none_or(|s| s.eq_ignore_ascii_case("APPROVED"));
    Ok(DeviceSnapshot {
        provider: PROVIDER,
        integration_id,
        external_device_id: device.id.to_string(),
        external_scope_id: scope,
        lifecycle: if device.offline == Some(true) { Lifecycle::Offline } else { Lifecycle::Active },
        asset_type,
        display_name: name,
        // AlgaPSA's `NINJA-<serial>`, else `NINJA-<device id>`; a placeholder serial (shared by many
        // machines) never names an asset.
        asset_tag: Some(format!(
            "NINJA-{}",
            serial::identifying(system.serial_number.as_deref())
                .or_else(|| serial::identifying(system.bios_serial_number.as_deref()))
                .map(str::to_owned)
                .unwrap_or_else(|| device.id.to_string())
        )),
        serial_number: serial,
        status: Some(if approved { "active" } else { "pending" }.to_owned()),
        location: device.references.as_ref().and_then(|r| r.location.as_ref()).and_then(|l| clean(l.name.as_deref())),
        agent_status: Some(if device.offline == Some(true) { AgentStatus::Offline } else { AgentStatus::Online }),
        last_seen_at: device.last_contact,
        extension,
        metadata: Some(json!({
            "nodeClass": device.node_class,
            "organizationId": device.organization_id,
            "locationId": device.location_id,
            "policyId": device.policy_id,
            "approvalStatus": device.approval_status,
            "systemName": device.system_name,
            "dnsName": device.dns_name,
            "lastContact": device.last_contact.map(|t| t.to_rfc3339()),
            "created": device.created.map(|t| t.to_rfc3339()),
        })),
    })
}

/// A device's metadata `deleted` flag (a tombstoned mapping), for queries that skip them.
pub fn is_deleted(metadata: &Value) -> bool {
    metadata.get("deleted").is_some_and(|d| d == &json!(true) || d == &json!("true"))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn device(v: Value) -> Device {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_placeholder_serial_is_stored_but_never_names_the_asset() {
        let now = Utc.with_ymd_and_hms(2026, 12, 5, 12, 0, 0).unwrap();
        let white_box = |id: i64, serial: &str, bios: Option<&str>| {
            let d = device(json!({"id": id, "organizationId": 3, "nodeClass": "WINDOWS_WORKSTATION",
                "system": {"serialNumber": serial, "biosSerialNumber": bios}}));
            device_snapshot(&d, None, Uuid::nil(), now).unwrap()
        };
        let s = white_box(7, "To Be Filled By O.E.M.", None);
        assert_eq!(s.serial_number.as_deref(), Some("To Be Filled By O.E.M."), "stored as AlgaPSA stores it");
        assert_eq!(s.asset_tag.as_deref(), Some("NINJA-7"));
        let s = white_box(8, "Default string", Some("0000000"));
        assert_eq!(s.asset_tag.as_deref(), Some("NINJA-8"));
        // A real BIOS serial behind a placeholder system serial still names it.
        let s = white_box(9, "System Serial Number", Some("PF2ABCDE"));
        assert_eq!(s.serial_number.as_deref(), Some("System Serial Number"));
        assert_eq!(s.asset_tag.as_deref(), Some("NINJA-PF2ABCDE"));
        // A real serial is used as before.
        let s = white_box(10, " 5CG1234XYZ ", None);
        assert_eq!(
            (s.serial_number.as_deref(), s.asset_tag.as_deref()),
            (Some("5CG1234XYZ"), Some("NINJA-5CG1234XYZ"))
        );
    }

    #[test]
    fn a_detailed_server_maps_like_algapsa() {
        let now = Utc.with_ymd_and_hms(2026, 12, 5, 12, 0, 0).unwrap();
        let boot = now.timestamp() - 3_600;
        let d = device(json!({
            "id": 1042, "organizationId": 3, "nodeClass": "HYPERV_VMM_GUEST", "approvalStatus": "APPROVED",
            "offline": false, "displayName": "", "systemName": "SRV-01", "publicIP": "203.0.113.9",
            "lastContact": now.timestamp() - 60, "lastLoggedInUser": "CORP\\admin",
            "references": {"location": {"id": 4, "name": "Main office"}},
            "os": {"name": "Windows Server 2022 Standard", "buildNumber": "20348", "lastBootTime": boot},
            "system": {"manufacturer": "Microsoft Corporation", "model": "Virtual Machine", "serialNumber": " ",
                       "biosSerialNumber": "VM-123", "domain": "corp.example"},
            "memory": {"capacity": 34359738368u64},
            "processors": [{"name": "Intel Xeon Gold", "numCores": 4, "numLogicalCores": 8}],
            "volumes": [{"name": "C:", "capacity": 107374182400u64, "freeSpace": 53687091200u64}, {"name": "D:", "capacity": 0}],
            "networkInterfaces": [{"interfaceName": "lo", "ipAddress": ["127.0.0.1", "fe80::1"]},
                                  {"interfaceName": "eth0", "ipAddress": ["169.254.1.1", "10.1.2.3"]}],
            "antivirus": [{"name": "Defender", "state": "ON", "definitionStatus": "UP_TO_DATE"}]
        }));
        let s = device_snapshot(&d, Some("99"), Uuid::nil(), now).unwrap();
        assert_eq!(s.external_device_id, "1042");
        assert_eq!(s.external_scope_id, "3", "the device's own organisation wins");
        assert_eq!(s.asset_type, AssetType::Server);
        assert_eq!(s.display_name, "SRV-01");
        assert_eq!(s.serial_number.as_deref(), Some("VM-123"));
        assert_eq!(s.asset_tag.as_deref(), Some("NINJA-VM-123"));
        assert_eq!(s.status.as_deref(), Some("active"));
        assert_eq!(s.location.as_deref(), Some("Main office"));
        assert_eq!(s.agent_status, Some(AgentStatus::Online));
        let e = s.extension.unwrap();
        assert_eq!(e.os_type.as_deref(), Some("Windows"));
        assert_eq!(e.os_version.as_deref(), Some("Windows Server 2022 Standard (20348)"));
        assert_eq!(e.cpu_model, Some(Some("Intel Xeon Gold".into())));
        assert_eq!(e.cpu_cores, Some(Some(4.0)));
        assert_eq!(e.ram_gb, Some(Some(32.0)));
        assert_eq!(e.uptime_seconds, Some(3_600));
        assert_eq!(e.lan_ip.as_deref(), Some("10.1.2.3"));
        assert_eq!(e.wan_ip.as_deref(), Some("203.0.113.9"));
        assert_eq!(e.antivirus_status.as_deref(), Some("protected"));
        assert_eq!(e.current_user.as_deref(), Some("CORP\\admin"));
        let disks = e.disk_usage.unwrap().unwrap();
        assert_eq!(disks.len(), 1);
        assert_eq!(
            (disks[0].total_gb, disks[0].free_gb, disks[0].utilization_percent),
            (Some(100.0), Some(50.0), Some(50.0))
        );
        let info = e.system_info.unwrap();
        assert_eq!(info["is_virtual"], json!(true));
        assert_eq!(info["hypervisor"], json!("Hyper-V"));
        assert_eq!(info["domain"], json!("corp.example"));
    }

    #[test]
    fn classes_statuses_and_missing_fields() {
        let now = Utc::now();
        assert_eq!(asset_type(Some("MAC")), AssetType::Workstation);
        assert_eq!(asset_type(Some("NMS_SWITCH")), AssetType::NetworkDevice);
        assert_eq!(asset_type(Some("VMWARE_VM_HOST")), AssetType::Server);
        assert_eq!(asset_type(None), AssetType::Unknown);
        assert_eq!(virtualisation(Some("VMWARE_VM_GUEST")), (true, Some("VMware")));
        assert_eq!(virtualisation(Some("VMWARE_VM_HOST")), (false, None));
        let d = device(json!({"id": 5, "offline": true, "approvalStatus": "PENDING", "nodeClass": "NMS"}));
        let s = device_snapshot(&d, Some("8"), Uuid::nil(), now).unwrap();
        assert_eq!((s.display_name.as_str(), s.external_scope_id.as_str()), ("Device-5", "8"));
        assert_eq!(s.status.as_deref(), Some("pending"));
        assert_eq!(s.agent_status, Some(AgentStatus::Offline));
        assert!(s.extension.is_none());
        assert_eq!(
            device_snapshot(&device(json!({"organizationId": 2})), None, Uuid::nil(), now).unwrap_err(),
            MappingError::MissingId("2".into())
        );
        assert_eq!(
            device_snapshot(&device(json!({"id": 3})), None, Uuid::nil(), now).unwrap_err(),
            MappingError::MissingScope(3)
        );
        assert_eq!(antivirus(&[]), None);
        let off = Antivirus { state: Some("OFF".into()), ..Default::default() };
        assert_eq!(antivirus(&[off]).unwrap().0, "at_risk");
        assert_eq!(uptime_seconds(Some(now + chrono::Duration::seconds(5)), now), None);
        assert_eq!(os_type(Some("Ubuntu 24.04")).as_deref(), Some("Linux"));
        assert_eq!(os_type(Some("FreeBSD")).as_deref(), Some("FreeBSD"));
    }
}
