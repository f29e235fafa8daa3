//! Level groups and devices → organisation scopes and [`DeviceSnapshot`]s.
//!
//! - **Groups nest** (`parent_id`). Every group is a scope; its name in the mappings is its path
//!   (`Acme / Berlin / Servers`). A device belongs to its **deepest mapped group**: its own group if
//!   mapped, else the nearest mapped ancestor (AlgaPSA's rule), so mapping a parent and a child
//!   to two clients is deterministic.
//! - Fields as AlgaPSA maps them (name from nickname or hostname, server vs workstation from the
//!   role, `City, Country`, `levelio:<id>` tag, OS, user, uptime, LAN IP, antivirus, CPU, RAM,
//!   disks, security score and maintenance flags in `system_info`), plus what AlgaPSA leaves out:
//!   the WAN IP when an interface carries a public address, and pending updates split into OS and
//!   software where the update's category says which.
//! - Level's API has no agent version, failed patches or last patch scan: those stay null.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::model::{Device, Group, NetworkInterface};
use crate::ingest::snapshot::{AgentStatus, AssetType, DeviceSnapshot, DiskUsage, ExtensionSnapshot, Lifecycle};

const BYTES_PER_GB: f64 = 1024.0 * 1024.0 * 1024.0;

/// The group hierarchy.
#[derive(Debug, Clone, Default)]
pub struct GroupTree {
    parent: HashMap<String, Option<String>>,
    name: HashMap<String, String>,
    /// Groups in the order Level listed them.
    order: Vec<String>,
}

impl GroupTree {
    pub fn new(groups: &[Group]) -> Self {
        let mut tree = GroupTree::default();
        for g in groups {
            if tree.parent.insert(g.id.clone(), g.parent_id.clone().filter(|p| !p.is_empty())).is_none() {
                tree.order.push(g.id.clone());
            }
            tree.name.insert(g.id.clone(), g.name.clone());
        }
        tree
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    pub fn contains(&self, id: &str) -> bool {
        self.parent.contains_key(id)
    }

    /// The group and its ancestors, nearest first (a cycle or an unknown parent ends it).
    pub fn ancestry<'a>(&'a self, id: &'a str) -> Vec<&'a str> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut current = Some(id);
        while let Some(g) = current {
            if !seen.insert(g) {
                break;
            }
            out.push(g);
            current = self.parent.get(g).and_then(|p| p.as_deref()).filter(|p| self.parent.contains_key(*p));
        }
        out
    }

    /// The top-level group above `id` (itself for a top-level group).
    pub fn root<'a>(&'a self, id: &'a str) -> &'a str {
        self.ancestry(id).last().copied().unwrap_or(id)
    }

    /// `Top / Middle / Group` (names; an unnamed group shows its id).
    pub fn path(&self, id: &str) -> String {
        let mut names: Vec<&str> = self
            .ancestry(id)
            .into_iter()
            .map(|g| self.name.get(g).map(String::as_str).filter(|n| !n.trim().is_empty()).unwrap_or(g))
            .collect();
        names.reverse();
        names.join(" / ")
    }

    /// The deepest mapped group of a device in `group` (itself or its nearest mapped ancestor).
    pub fn deepest_mapped<'a>(&'a self, group: &'a str, mapped: &HashSet<String>) -> Option<&'a str> {
        self.ancestry(group).into_iter().find(|g| mapped.contains(*g))
    }

    /// The top-level groups holding a mapped group, in the order Level lists groups.
    pub fn roots_of(&self, mapped: &HashSet<String>) -> Vec<String> {
        let mut roots: Vec<String> = Vec::new();
        for g in &self.order {
            if mapped.contains(g) {
                let r = self.root(g).to_owned();
                if !roots.contains(&r) {
                    roots.push(r);
                }
            }
        }
        roots
    }

    /// `root` and every group below it.
    pub fn subtree(&self, root: &str) -> Vec<String> {
        self.order.iter().filter(|g| self.root(g) == root).cloned().collect()
    }

    /// `id → (path, metadata)` of every group, for the organisation mappings.
    pub fn scopes(&self) -> std::collections::BTreeMap<String, (String, Value)> {
        self.order
            .iter()
            .map(|g| {
                let parent = self.parent.get(g).cloned().flatten();
                let path = self.path(g);
                let meta = json!({
                    "kind": "group",
                    "parentId": parent,
                    "path": path,
                    "name": self.name.get(g),
                    "rootId": self.root(g),
                });
                (g.clone(), (path, meta))
            })
            .collect()
    }
}

/// Available updates of one device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PendingUpdates {
    pub total: i64,
    pub os: i64,
    pub software: i64,
}

/// What an update's free-text `category` says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateKind {
    Os,
    Software,
    Unknown,
}

/// Windows Update classifications and macOS/Linux system updates are OS updates; application,
/// third-party and package updates are software; anything else is counted in the total only.
pub fn update_kind(category: Option<&str>) -> UpdateKind {
    let c = category.unwrap_or("").trim().to_lowercase();
    if c.is_empty() {
        return UpdateKind::Unknown;
    }
    const SOFTWARE: [&str; 6] = ["application", "software", "third", "app ", "package", "winget"];
    const OS: [&str; 14] = [
        "security update",
        "critical update",
        "update rollup",
        "feature pack",
        "service pack",
        "definition update",
        "driver",
        "upgrade",
        "os update",
        "operating system",
        "macos",
        "windows",
        "kernel",
        "firmware",
    ];
    if SOFTWARE.iter().any(|s| c.contains(s)) || c == "apps" {
        UpdateKind::Software
    } else if OS.iter().any(|s| c.contains(s)) || c == "updates" || c == "tools" {
        UpdateKind::Os
    } else {
        UpdateKind::Unknown
    }
}

impl PendingUpdates {
    pub fn add(&mut self, category: Option<&str>) {
        self.total += 1;
        match update_kind(category) {
            UpdateKind::Os => self.os += 1,
            UpdateKind::Software => self.software += 1,
            UpdateKind::Unknown => {}
        }
    }
}

/// What the mapping needs besides the device.
#[derive(Debug, Clone, Copy)]
pub struct MappingContext {
    pub integration_id: Uuid,
    /// The instant uptimes are computed for.
    pub now: DateTime<Utc>,
}

fn text(s: &Option<String>) -> Option<String> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)
}

pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim()).ok().map(|t| t.with_timezone(&Utc))
}

fn ipv4s(iface: &NetworkInterface) -> impl Iterator<Item = Ipv4Addr> + '_ {
    iface.ip_addresses.iter().filter_map(|ip| ip.split('/').next()?.trim().parse::<Ipv4Addr>().ok())
}

fn is_virtual(iface: &NetworkInterface) -> bool {
    let d = format!("{} {}", iface.description.as_deref().unwrap_or(""), iface.interface.as_deref().unwrap_or(""))
        .to_lowercase();
    ["virtual", "vethernet", "hyper-v", "docker", "vmware", "loopback", "tailscale", "wireguard"]
        .iter()
        .any(|v| d.contains(v))
}

/// The first private IPv4 of a physical interface (AlgaPSA's rule: 10/8, 172.16/12, 192.168/16).
pub fn lan_ip(interfaces: &[NetworkInterface]) -> Option<String> {
    interfaces.iter().filter(|i| !is_virtual(i)).flat_map(ipv4s).find(|ip| ip.is_private()).map(|ip| ip.to_string())
}

/// A public IPv4 held by an interface (a server with a routable address), when there is one.
/// Level reports interfaces only, not the address a device is seen from behind NAT.
pub fn wan_ip(interfaces: &[NetworkInterface]) -> Option<String> {
    interfaces
        .iter()
        .flat_map(ipv4s)
        .find(|ip| {
            !(ip.is_private()
                || ip.is_loopback()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_broadcast()
                || ip.is_documentation()
                || ip.is_multicast()
                || ip.octets()[0] == 100 && (64..128).contains(&ip.octets()[1]))
        })
        .map(|ip| ip.to_string())
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn disk_usage(device: &Device) -> Vec<DiskUsage> {
    device
        .disk_partitions
        .iter()
        .filter(|p| p.size.is_some_and(|s| s > 0.0))
        .map(|p| {
            let total = round2(p.size.unwrap_or(0.0) / BYTES_PER_GB);
            let free = p.free_space.map(|f| round2(f / BYTES_PER_GB));
            let used = free.map(|f| if total > 0.0 { round2((total - f) / total * 100.0) } else { 0.0 });
            DiskUsage {
                name: text(&p.mount_point).or_else(|| text(&p.label)).unwrap_or_else(|| "disk".into()),
                total_gb: Some(total),
                free_gb: free,
                utilization_percent: used,
            }
        })
        .collect()
}

fn system_info(device: &Device) -> Value {
    let os = device.operating_system.clone().unwrap_or_default();
    let sec = device.security.clone().unwrap_or_default();
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        if !v.is_null() {
            m.insert(k.to_owned(), v);
        }
    };
    put("manufacturer", json!(text(&device.manufacturer)));
    put("model", json!(text(&device.model)));
    put("architecture", json!(text(&device.architecture).or_else(|| text(&os.architecture))));
    put("fullOperatingSystem", json!(text(&os.full_operating_system)));
    put("osEndOfLife", json!(os.end_of_life.or(sec.os_end_of_life).unwrap_or(false)));
    put("securityScore", json!(sec.score.or(device.security_score)));
    put("securityRisk", json!(text(&sec.risk)));
    put("patchSecurityRisk", json!(text(&sec.patch_security_risk)));
    put("patchCompliance", json!(sec.patch_compliance));
    put("primaryPartitionEncrypted", json!(sec.primary_partition_encrypted));
    put("firewallProvider", json!(text(&sec.firewall_provider)));
    put("firewallEnabled", json!(sec.firewall_enabled));
    put("maintenanceMode", json!(device.maintenance_mode.unwrap_or(false)));
    put("flag", json!(text(&device.flag)));
    put("tags", json!(device.tags));
    put("groupId", json!(text(&device.group_id)));
    Value::Object(m)
}

/// The snapshot of one device under `scope` (its deepest mapped group). `pending` is its count
/// of available updates when the sync read them; `None` leaves the counts null.
pub fn device_snapshot(
    device: &Device,
    scope: &str,
    group_path: Option<String>,
    ctx: &MappingContext,
    pending: Option<PendingUpdates>,
) -> DeviceSnapshot {
    let online = device.online == Some(true);
    let status = if online { AgentStatus::Online } else { AgentStatus::Offline };
    let last_reboot_at = device.last_reboot_time.as_deref().and_then(parse_time);
    let uptime_seconds = if online { last_reboot_at.map(|b| (ctx.now - b).num_seconds().max(0)) } else { None };
    let os = device.operating_system.clone().unwrap_or_default();
    let sec = device.security.clone().unwrap_or_default();
    let cpu_model = device.cpus.iter().find_map(|c| text(&c.model));
    let cpu_cores = device.cpu_cores.or_else(|| {
        let n: f64 = device.cpus.iter().filter_map(|c| c.cores).sum();
        (n > 0.0).then_some(n)
    });
    let location = [text(&device.city), text(&device.country)].into_iter().flatten().collect::<Vec<_>>().join(", ");
    let display_name = text(&device.nickname).or_else(|| text(&device.hostname)).unwrap_or_else(|| device.id.clone());
    let disks = disk_usage(device);
    let extension = ExtensionSnapshot {
        os_type: text(&device.platform),
        os_version: text(&os.full_operating_system)
            .or_else(|| text(&os.minor_version))
            .or_else(|| text(&os.major_version)),
        agent_version: None,
        current_user: text(&device.last_logged_in_user),
        uptime_seconds,
        lan_ip: lan_ip(&device.network_interfaces),
        wan_ip: wan_ip(&device.network_interfaces),
        antivirus_status: text(&sec.antivirus_status),
        antivirus_product: text(&sec.antivirus_provider),
        last_reboot_at,
        pending_patches: pending.map(|p| p.total),
        pending_os_patches: pending.map(|p| p.os),
        pending_software_patches: pending.map(|p| p.software),
        failed_patches: None,
        last_patch_scan_at: None,
        system_info: Some(system_info(device)),
        patches_untouched: false,
        cpu_model: Some(cpu_model),
        cpu_cores: Some(cpu_cores),
        ram_gb: Some(device.total_memory.filter(|m| *m > 0.0).map(|m| (m / BYTES_PER_GB).round())),
        disk_usage: Some((!disks.is_empty()).then_some(disks)),
        installed_software: None,
    };
    let mut metadata = Map::new();
    metadata.insert("hostname".into(), json!(text(&device.hostname)));
    metadata.insert("groupId".into(), json!(text(&device.group_id)));
    if let Some(p) = group_path {
        metadata.insert("groupPath".into(), json!(p));
    }
    metadata.insert("tags".into(), json!(device.tags));
    DeviceSnapshot {
        provider: super::PROVIDER,
        integration_id: ctx.integration_id,
        external_device_id: device.id.clone(),
        external_scope_id: scope.to_owned(),
        lifecycle: if online { Lifecycle::Active } else { Lifecycle::Offline },
        asset_type: match device.role.as_deref().map(str::to_lowercase).as_deref() {
            Some("server") | Some("domain_controller") => AssetType::Server,
            _ => AssetType::Workstation,
        },
        display_name,
        serial_number: text(&device.serial_number),
        status: Some(if online { "active" } else { "inactive" }.into()),
        location: (!location.is_empty()).then_some(location),
        asset_tag: Some(format!("levelio:{}", device.id)),
        agent_status: Some(status),
        last_seen_at: device.last_seen_at.as_deref().and_then(parse_time),
        extension: Some(extension),
        metadata: Some(Value::Object(metadata)),
    }
}

/// AlgaPSA's incremental filter: no `since`, no `last_seen_at` or an unreadable one → include;
/// else `last_seen_at >= since`.
pub fn changed_since(device: &Device, since: Option<DateTime<Utc>>) -> bool {
    let Some(since) = since else { return true };
    match device.last_seen_at.as_deref().and_then(parse_time) {
        Some(seen) => seen >= since,
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(id: &str, parent: Option<&str>, name: &str) -> Group {
        Group {
            id: id.into(),
            parent_id: parent.map(str::to_owned),
            name: name.into(),
            device_count: None,
            descendent_device_count: None,
        }
    }

    fn tree() -> GroupTree {
        GroupTree::new(&[
            group("a", None, "Acme"),
            group("b", Some("a"), "Berlin"),
            group("c", Some("b"), "Servers"),
            group("z", None, "Zeta"),
            // A cycle must not hang.
            group("x", Some("y"), "X"),
            group("y", Some("x"), "Y"),
        ])
    }

    #[test]
    fn deepest_mapped_group_paths_and_roots() {
        let t = tree();
        assert_eq!(t.path("c"), "Acme / Berlin / Servers");
        assert_eq!(t.root("c"), "a");
        let mapped: HashSet<String> = ["a".to_owned(), "b".to_owned()].into();
        assert_eq!(t.deepest_mapped("c", &mapped), Some("b"));
        assert_eq!(t.deepest_mapped("a", &mapped), Some("a"));
        assert_eq!(t.deepest_mapped("z", &mapped), None);
        assert_eq!(t.deepest_mapped("unknown", &mapped), None);
        assert_eq!(t.roots_of(&mapped), vec!["a".to_owned()]);
        assert_eq!(t.subtree("a"), vec!["a", "b", "c"]);
        assert_eq!(t.ancestry("x").len(), 2);
        let scopes = t.scopes();
        assert_eq!(scopes["c"].0, "Acme / Berlin / Servers");
        assert_eq!(scopes["c"].1["parentId"], "b");
    }

    #[test]
    fn update_categories() {
        assert_eq!(update_kind(Some("Security Updates")), UpdateKind::Os);
        assert_eq!(update_kind(Some("Drivers")), UpdateKind::Os);
        assert_eq!(update_kind(Some("Third-party applications")), UpdateKind::Software);
        assert_eq!(update_kind(Some("Something new")), UpdateKind::Unknown);
        let mut p = PendingUpdates::default();
        for c in [Some("Security Updates"), Some("Application"), None] {
            p.add(c);
        }
        assert_eq!(p, PendingUpdates { total: 3, os: 1, software: 1 });
    }

    #[test]
    fn a_device_as_algapsa_maps_it_plus_what_it_misses() {
        let now = parse_time("2026-12-01T12:00:00Z").unwrap();
        let d: Device = serde_json::from_value(json!({
            "id": "dev1", "hostname": "srv-01", "nickname": "", "role": "domain_controller", "group_id": "c",
            "online": true, "serial_number": "SN1", "city": "Berlin", "country": "DE",
            "last_reboot_time": "2026-12-01T11:00:00Z", "last_seen_at": "2026-12-01T11:59:00Z",
            "total_memory": 17179869184u64, "cpu_cores": 8, "platform": "Windows",
            "operating_system": {"full_operating_system": "Windows Server 2022 Standard"},
            "cpus": [{"model": "Xeon", "cores": 8}],
            "disk_partitions": [{"mount_point": "C:", "size": 107374182400u64, "free_space": 53687091200u64}, {"size": 0}],
            "network_interfaces": [
                {"description": "Hyper-V Virtual Ethernet", "ip_addresses": ["172.20.0.1"]},
                {"description": "Intel Ethernet", "ip_addresses": ["fe80::1", "192.168.1.20", "198.51.100.7"]},
                {"description": "Uplink", "ip_addresses": ["81.2.69.160/24"]}
            ],
            "security": {"antivirus_provider": "Defender", "antivirus_status": "up_to_date", "score": 80}
        }))
        .unwrap();
        let ctx = MappingContext { integration_id: Uuid::nil(), now };
        let s = device_snapshot(
            &d,
            "b",
            Some("Acme / Berlin".into()),
            &ctx,
            Some(PendingUpdates { total: 3, os: 2, software: 1 }),
        );
        assert_eq!(s.display_name, "srv-01");
        assert_eq!(s.asset_type, AssetType::Server);
        assert_eq!(s.location.as_deref(), Some("Berlin, DE"));
        assert_eq!(s.asset_tag.as_deref(), Some("levelio:dev1"));
        assert_eq!(s.external_scope_id, "b");
        let e = s.extension.unwrap();
        assert_eq!(e.uptime_seconds, Some(3600));
        assert_eq!(e.lan_ip.as_deref(), Some("192.168.1.20"));
        assert_eq!(e.wan_ip.as_deref(), Some("81.2.69.160"), "documentation ranges are not WAN addresses");
        assert_eq!(e.ram_gb, Some(Some(16.0)));
        assert_eq!(e.disk_usage.unwrap().unwrap().len(), 1);
        assert_eq!((e.pending_patches, e.pending_os_patches, e.pending_software_patches), (Some(3), Some(2), Some(1)));
        assert_eq!(e.agent_version, None);
        assert_eq!(e.system_info.unwrap()["securityScore"], 80.0);
        assert!(changed_since(&d, parse_time("2026-12-01T11:00:00Z")));
        assert!(!changed_since(&d, parse_time("2026-12-01T12:00:00Z")));
        let offline = Device { online: Some(false), last_seen_at: None, ..d };
        let s = device_snapshot(&offline, "b", None, &ctx, None);
        assert_eq!(
            (s.lifecycle, s.agent_status, s.status.as_deref()),
            (Lifecycle::Offline, Some(AgentStatus::Offline), Some("inactive"))
        );
        assert_eq!(s.extension.unwrap().uptime_seconds, None);
        assert!(changed_since(&offline, Some(now)), "no last_seen_at: always included");
    }
}
