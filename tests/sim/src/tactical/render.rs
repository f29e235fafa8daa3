//! Renders the fleet in the exact JSON shapes of Tactical RMM 1.5.1 (see the fixtures).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use chrono::{DateTime, Utc};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::{Map, Value, json};

use super::fleet::{Fleet, Plat, SimAgent, SimAlert, SimClient, SimSite};

/// Django REST framework's datetime format.
pub fn dt(d: DateTime<Utc>) -> String {
    d.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn opt_dt(d: Option<DateTime<Utc>>) -> Value {
    d.map(|d| Value::from(dt(d))).unwrap_or(Value::Null)
}

fn no_failing_checks() -> Value {
    json!({"error": false, "warning": false})
}

/// `GET /beta/v1/client/` element.
pub fn client(c: &SimClient) -> Value {
    json!({
        "id": c.id, "created_by": "seed", "created_time": dt(c.created_time), "modified_by": "seed",
        "modified_time": dt(c.created_time), "name": c.name, "block_policy_inheritance": false,
        "failing_checks": no_failing_checks(), "workstation_policy": null, "server_policy": null, "alert_template": null,
    })
}

/// `GET /beta/v1/site/` element.
pub fn site(s: &SimSite) -> Value {
    json!({
        "id": s.id, "created_by": "seed", "created_time": dt(s.created_time), "modified_by": "seed",
        "modified_time": dt(s.created_time), "name": s.name, "block_policy_inheritance": false,
        "failing_checks": no_failing_checks(), "client": s.client, "workstation_policy": null, "server_policy": null,
        "alert_template": null,
    })
}

fn disks(a: &SimAgent) -> Value {
    let (total, used, free) = Fleet::disk_strings(a);
    let percent = ((a.disk_used_gb / a.disk_total_gb) * 100.0).round() as i64;
    let (device, fstype) = match a.plat {
        Plat::Windows => ("C:", "NTFS"),
        Plat::Linux => ("/dev/sda1", "ext4"),
    };
    json!([{"free": free, "used": used, "total": total, "device": device, "fstype": fstype, "percent": percent}])
}

/// `wmi_detail`: WMI sections (lists of lists of objects) on Windows, a flat object on Linux.
pub fn wmi_detail(a: &SimAgent) -> Value {
    let h = &a.hardware;
    match a.plat {
        Plat::Windows => json!({
            "cpu": [[{"Name": h.cpu, "NumberOfCores": h.cores, "NumberOfLogicalProcessors": h.threads}]],
            "bios": [[{"SerialNumber": h.serial}]],
            "disk": [[{"Size": h.disk_bytes.to_string(), "Caption": h.disk_caption, "InterfaceType": "SCSI"}]],
            "comp_sys": [[{"Model": h.model, "Manufacturer": h.vendor, "SystemFamily": h.model}]],
            "graphics": [[{"Caption": h.gpu.clone().unwrap_or_else(|| "Microsoft Basic Display Adapter".into())}]],
            "base_board": [[{"Product": h.model, "Manufacturer": h.vendor}]],
            "comp_sys_prod": [[{"Vendor": h.vendor, "Version": h.model}]],
            "network_config": [[{"IPAddress": [a.ipv4, format!("fe80::{}", a.ipv4.replace('.', ":"))], "Description": "Intel(R) Ethernet Connection"}]],
        }),
        Plat::Linux => json!({
            "cpus": [h.cpu],
            "gpus": h.gpu.iter().collect::<Vec<_>>(),
            "disks": [h.disk_caption],
            "local_ips": [format!("{}/24", a.ipv4), format!("{}/64", a.ipv6)],
            "make_model": a.make_model(),
            "serialnumber": h.serial,
        }),
    }
}

/// What pads an agent's `wmi_detail` to about [`SimAgent::wmi_detail_kb`] KB: more of what real
/// agents report, none of it read by the sync. Windows agents get the WMI sections the Tactical
/// agent collects besides the ones [`wmi_detail`] renders (`os`, `mem`, `desktop_monitor`, and as
/// many `usb` controllers and `network_adapter`s as the size takes); Linux agents get more `disks`
/// (iSCSI LUNs), which Tactical's computed `physical_disks` lists too.
#[derive(Debug)]
pub struct WmiPadding {
    /// Windows: sections added to `wmi_detail`.
    sections: Map<String, Value>,
    /// Linux: entries added to `wmi_detail.disks` and `physical_disks`.
    disks: Vec<Value>,
}

/// What [`wmi_detail`] renders without padding, about (the padding makes up the rest).
const UNPADDED_WMI_BYTES: usize = 700;

impl WmiPadding {
    /// The padding for `kb` KB, built once per size and shared.
    pub fn for_kb(kb: usize) -> Option<Arc<WmiPadding>> {
        static CACHE: OnceLock<Mutex<HashMap<usize, Arc<WmiPadding>>>> = OnceLock::new();
        if kb == 0 {
            return None;
        }
        let mut cache = CACHE.get_or_init(Mutex::default).lock().unwrap_or_else(|e| e.into_inner());
        Some(cache.entry(kb).or_insert_with(|| Arc::new(WmiPadding::new(kb))).clone())
    }

    fn new(kb: usize) -> WmiPadding {
        let target = (kb * 1024).saturating_sub(UNPADDED_WMI_BYTES);
        let size = |v: &Value| serde_json::to_vec(v).map(|b| b.len() + 1).unwrap_or(0);
        let mut sections = Map::new();
        sections.insert(
            "os".into(),
            json!([[{
                "Caption": "Microsoft Windows 11 Pro", "Version": "10.0.22631", "BuildNumber": "22631",
                "OSArchitecture": "64-bit", "InstallDate": "20240611093012.000000+120",
                "LastBootUpTime": "20261128071502.500000+060", "SystemDirectory": "C:\\WINDOWS\\system32",
                "SerialNumber": "00330-80000-00000-AA000", "RegisteredUser": "user@example.com",
                "TotalVisibleMemorySize": "16506392", "FreePhysicalMemory": "7312044", "NumberOfUsers": 2,
                "Locale": "0409", "CodeSet": "1252", "ServicePackMajorVersion": 0, "Status": "OK"
            }]]),
        );
        sections.insert("mem".into(), json!([
            [{"BankLabel": "BANK 0", "Capacity": "8589934592", "DeviceLocator": "ChannelA-DIMM0",
              "Manufacturer": "Samsung", "PartNumber": "M471A1K43DB1-CWE", "SerialNumber": "4A5B6C7D", "Speed": 3200}],
            [{"BankLabel": "BANK 2", "Capacity": "8589934592", "DeviceLocator": "ChannelB-DIMM0",
              "Manufacturer": "Samsung", "PartNumber": "M471A1K43DB1-CWE", "SerialNumber": "4A5B6C7E", "Speed": 3200}]
        ]));
        sections.insert("desktop_monitor".into(), json!([[{
            "Caption": "Generic PnP Monitor", "DeviceID": "DesktopMonitor1", "MonitorManufacturer": "(Standard monitor types)",
            "PNPDeviceID": "DISPLAY\\DELA0F4\\5&2B0F1F6B&0&UID4352", "ScreenHeight": 1080, "ScreenWidth": 1920, "Status": "OK"
        }]]));
        let mut used: usize = sections.values().map(size).sum();
        let (mut usb, mut adapters) = (Vec::new(), Vec::new());
        for i in 0.. {
            if used >= target {
                break;
            }
            let (list, entry) =
                if i % 4 == 0 { (&mut usb, usb_controller(i)) } else { (&mut adapters, network_adapter(i)) };
            used += size(&entry);
            list.push(entry);
        }
        sections.insert("usb".into(), Value::Array(usb));
        sections.insert("network_adapter".into(), Value::Array(adapters));
        let mut disks = Vec::new();
        let mut used = 0;
        while used < target {
            let n = disks.len();
            let d = Value::from(format!("LIO-ORG lun{n:04} iSCSI HDD sd{} 100.0 GB", disk_letters(n + 1)));
            used += size(&d);
            disks.push(d);
        }
        WmiPadding { sections, disks }
    }
}

/// One `usb` WMI instance (`Win32_USBController`).
fn usb_controller(i: usize) -> Value {
    json!([{
        "Caption": format!("Intel(R) USB 3.10 eXtensible Host Controller - 1.20 (Microsoft) #{i}"),
        "DeviceID": format!("PCI\\VEN_8086&DEV_A0ED&SUBSYS_22DA17AA&REV_20\\3&11583659&0&{:02X}", i % 256),
        "Manufacturer": "Generic USB xHCI Host Controller", "Name": "USB xHCI Compliant Host Controller",
        "PNPDeviceID": format!("PCI\\VEN_8086&DEV_A0ED\\3&11583659&0&{:02X}", i % 256),
        "ProtocolSupported": 16, "Status": "OK", "SystemName": "DESKTOP"
    }])
}

/// One `network_adapter` WMI instance (`Win32_NetworkAdapter`): miniports and virtual adapters,
/// as many as real machines list.
fn network_adapter(i: usize) -> Value {
    const KINDS: [&str; 5] = [
        "WAN Miniport (SSTP)",
        "WAN Miniport (IKEv2)",
        "Hyper-V Virtual Ethernet Adapter",
        "Bluetooth Device (Personal Area Network)",
        "Microsoft Kernel Debug Network Adapter",
    ];
    let kind = KINDS[i % KINDS.len()];
    json!([{
        "Caption": format!("[{i:08}] {kind}"), "AdapterType": "Ethernet 802.3", "Availability": 3,
        "Description": kind, "DeviceID": i.to_string(), "GUID": format!("{{{i:08X}-6B4F-4E3D-9A10-1C2D3E4F5A6B}}"),
        "Index": i, "Installed": true, "InterfaceIndex": 10 + i,
        "MACAddress": format!("00:15:5D:{:02X}:{:02X}:{:02X}", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff),
        "Manufacturer": "Microsoft", "MaxNumberControlled": 0, "Name": kind, "NetEnabled": false,
        "PNPDeviceID": format!("SWD\\MSRRAS\\MS_{i:04}MINIPORT"), "PhysicalAdapter": false,
        "PowerManagementSupported": false, "ProductName": kind, "ServiceName": "RasSstp",
        "Speed": "9223372036854775807", "SystemName": "DESKTOP", "TimeOfLastReset": "20261128071502.500000+060"
    }])
}

/// `a`, `b`, …, `z`, `aa`, … (Linux disk names after `sda`).
fn disk_letters(mut n: usize) -> String {
    let mut out = Vec::new();
    loop {
        out.push(b'a' + (n % 26) as u8);
        n /= 26;
        if n == 0 {
            break;
        }
        n -= 1;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// An agent answer (a rendered row or detail of `agent`) as JSON, its `wmi_detail` padded as
/// [`SimAgent::wmi_detail_kb`] asks, without copying the padding into the value.
pub struct AgentJson<'a> {
    pub value: &'a Value,
    pub agent: &'a SimAgent,
}

impl Serialize for AgentJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (Some(pad), Value::Object(m)) = (WmiPadding::for_kb(self.agent.wmi_detail_kb), self.value) else {
            return self.value.serialize(s);
        };
        let linux = self.agent.plat == Plat::Linux;
        let mut map = s.serialize_map(Some(m.len()))?;
        for (k, v) in m {
            match (k.as_str(), v) {
                ("wmi_detail", Value::Object(wmi)) => map.serialize_entry(k, &PaddedWmi { wmi, pad: &pad, linux })?,
                ("physical_disks", Value::Array(d)) if linux => map.serialize_entry(k, &Chain(d, &pad.disks))?,
                _ => map.serialize_entry(k, v)?,
            }
        }
        map.end()
    }
}

struct PaddedWmi<'a> {
    wmi: &'a Map<String, Value>,
    pad: &'a WmiPadding,
    linux: bool,
}

impl Serialize for PaddedWmi<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        for (k, v) in self.wmi {
            match (k.as_str(), v) {
                ("disks", Value::Array(d)) if self.linux => map.serialize_entry(k, &Chain(d, &self.pad.disks))?,
                _ => map.serialize_entry(k, v)?,
            }
        }
        if !self.linux {
            for (k, v) in &self.pad.sections {
                map.serialize_entry(k, v)?;
            }
        }
        map.end()
    }
}

/// Two arrays as one.
struct Chain<'a>(&'a [Value], &'a [Value]);

impl Serialize for Chain<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len() + self.1.len()))?;
        for v in self.0.iter().chain(self.1) {
            seq.serialize_element(v)?;
        }
        seq.end()
    }
}

fn physical_disks(a: &SimAgent) -> Value {
    match a.plat {
        Plat::Windows => {
            let gb = a.hardware.disk_bytes >> 30;
            let grouped = if gb >= 1000 { format!("{},{:03}GB", gb / 1000, gb % 1000) } else { format!("{gb}GB") };
            json!([format!("{} {} SCSI", a.hardware.disk_caption, grouped)])
        }
        Plat::Linux => json!([a.hardware.disk_caption]),
    }
}

fn graphics(a: &SimAgent) -> String {
    a.hardware.gpu.clone().unwrap_or_else(|| "No graphics cards".into())
}

/// Tactical's computed `cpu_model` entry.
fn cpu_model(a: &SimAgent) -> String {
    match a.plat {
        Plat::Windows => format!("{}, {}C/{}T", a.hardware.cpu, a.hardware.cores, a.hardware.threads),
        Plat::Linux => a.hardware.cpu.clone(),
    }
}

fn checks() -> Value {
    json!({"total": 0, "passing": 0, "failing": 0, "warning": 0, "info": 0, "has_failing_checks": false})
}

/// The model fields every agent serializer starts from (`fields="__all__"` minus `id` etc.).
fn model_fields(a: &SimAgent) -> serde_json::Map<String, Value> {
    let v = json!({
        "created_by": "seed", "created_time": dt(a.created_time), "modified_by": "seed", "modified_time": dt(a.created_time),
        "version": a.version, "operating_system": a.operating_system, "plat": a.plat.as_str(), "goarch": a.goarch,
        "hostname": a.hostname, "agent_id": a.agent_id, "last_seen": opt_dt(a.last_seen), "services": null,
        "public_ip": a.public_ip, "total_ram": a.total_ram, "disks": disks(a), "boot_time": a.boot_time,
        "logged_in_username": a.logged_in_username, "last_logged_in_user": a.last_logged_in_user,
        "monitoring_type": a.monitoring_type, "description": a.description, "mesh_node_id": a.mesh_node_id,
        "overdue_email_alert": a.overdue_email_alert, "overdue_text_alert": false,
        "overdue_dashboard_alert": a.overdue_dashboard_alert, "offline_time": a.offline_time,
        "overdue_time": a.overdue_time, "check_interval": 120, "needs_reboot": a.needs_reboot, "choco_installed": false,
        "wmi_detail": wmi_detail(a), "patches_last_installed": opt_dt(a.patches_last_installed), "time_zone": a.time_zone,
        "maintenance_mode": a.maintenance_mode, "block_policy_inheritance": false, "alert_template": null,
        "site": a.site, "policy": null,
    });
    match v {
        Value::Object(m) => m,
        _ => unreachable!("json! object"),
    }
}

/// `GET /beta/v1/agent/` row (`ListAgentSerializer`): model fields only.
pub fn beta_list_row(a: &SimAgent) -> Value {
    let mut m = model_fields(a);
    m.insert("id".into(), json!(a.id));
    m.insert("default_shell".into(), json!("use_global"));
    m.insert("default_shell_custom".into(), json!(""));
    Value::Object(m)
}

/// `GET /beta/v1/agent/<pk>/` (`DetailAgentSerializer`): no `id`, plus the computed fields.
pub fn beta_detail(a: &SimAgent, now: DateTime<Utc>) -> Value {
    let mut m = model_fields(a);
    for k in ["created_by", "created_time", "modified_by", "modified_time"] {
        m.remove(k);
    }
    let hex_mesh: String = a.mesh_node_id.chars().take(64).collect();
    let extra = json!({
        "hex_mesh_node_id": hex_mesh, "status": a.tactical_status(now), "checks": checks(), "pending_actions_count": 0,
        "cpu_model": [cpu_model(a)], "graphics": graphics(a), "local_ips": a.local_ips(), "make_model": a.make_model(),
        "physical_disks": physical_disks(a), "serial_number": a.hardware.serial,
    });
    if let Value::Object(e) = extra {
        m.extend(e);
    }
    Value::Object(m)
}

/// `GET /agents/<agent_id>/` (`AgentSerializer`): accepts the string id; has `status`, `client`
/// (a name), `site_name`, no `id`, no `serial_number`.
pub fn agent_detail(a: &SimAgent, site: Option<&SimSite>, client: Option<&SimClient>, now: DateTime<Utc>) -> Value {
    let mut m = model_fields(a);
    m.insert("default_shell".into(), json!("use_global"));
    m.insert("default_shell_custom".into(), json!(""));
    let shell = if a.plat == Plat::Windows { "powershell" } else { "bash" };
    let extra = json!({
        "winupdatepolicy": [], "status": a.tactical_status(now), "cpu_model": [cpu_model(a)],
        "local_ips": a.local_ips(), "make_model": a.make_model(), "physical_disks": physical_disks(a),
        "graphics": graphics(a), "checks": checks(), "timezone": a.time_zone.clone().unwrap_or_else(|| "UTC".into()),
        "all_timezones": ["Africa/Abidjan", "America/New_York", "Europe/Berlin", "UTC"],
        "client": client.map(|c| c.name.clone()), "site_name": site.map(|s| s.name.clone()), "custom_fields": [],
        "applied_policies": {"agent_policy": null, "site_policy": null, "client_policy": null, "default_policy": null},
        "effective_patch_policy": {
            "id": a.id, "created_by": "admin", "created_time": dt(a.created_time), "modified_by": "admin",
            "modified_time": dt(a.created_time), "critical": "inherit", "important": "inherit", "moderate": "inherit",
            "low": "inherit", "other": "inherit", "run_time_hour": 3, "run_time_frequency": "inherit",
            "run_time_days": [], "run_time_day": 1, "reboot_after_install": "inherit", "reprocess_failed_inherit": true,
            "reprocess_failed": false, "reprocess_failed_times": 5, "email_if_fail": false, "agent": a.id, "policy": null,
        },
        "effective_default_shell": shell,
    });
    if let Value::Object(e) = extra {
        m.extend(e);
    }
    Value::Object(m)
}

/// `GET /agents/` row (`AgentTableSerializer`).
pub fn table_row(a: &SimAgent, site: Option<&SimSite>, client: Option<&SimClient>, now: DateTime<Utc>) -> Value {
    let (logged_username, italic) = a.table_username(now);
    json!({
        "agent_id": a.agent_id, "alert_template": null, "hostname": a.hostname,
        "site_name": site.map(|s| s.name.clone()), "client_name": client.map(|c| c.name.clone()),
        "monitoring_type": a.monitoring_type, "description": a.description, "needs_reboot": a.needs_reboot,
        "pending_actions_count": 0, "status": a.tactical_status(now), "overdue_text_alert": false,
        "overdue_email_alert": a.overdue_email_alert, "overdue_dashboard_alert": a.overdue_dashboard_alert,
        "last_seen": opt_dt(a.last_seen), "boot_time": a.boot_time, "checks": checks(),
        "maintenance_mode": a.maintenance_mode, "logged_username": logged_username, "italic": italic,
        "block_policy_inheritance": false, "plat": a.plat.as_str(), "goarch": a.goarch, "has_patches_pending": false,
        "version": a.version, "operating_system": a.operating_system, "public_ip": a.public_ip,
        "cpu_model": [cpu_model(a)], "graphics": graphics(a), "local_ips": a.local_ips(),
        "make_model": a.make_model(), "physical_disks": physical_disks(a), "custom_fields": [],
        "serial_number": a.hardware.serial,
    })
}

/// `GET /agents/?detail=false` row.
pub fn nodetail_row(a: &SimAgent, site: Option<&SimSite>, client: Option<&SimClient>) -> Value {
    json!({
        "id": a.id, "hostname": a.hostname, "agent_id": a.agent_id,
        "client": client.map(|c| c.name.clone()), "site": site.map(|s| s.name.clone()),
    })
}

/// `PATCH /alerts/` element (`AlertSerializer`).
pub fn alert(al: &SimAlert, agent: Option<&SimAgent>, site: Option<&SimSite>, client: Option<&SimClient>) -> Value {
    json!({
        "id": al.id, "hostname": agent.map(|a| a.hostname.clone()), "agent_id": agent.map(|a| a.agent_id.clone()),
        "client": client.map(|c| c.name.clone()), "site": site.map(|s| s.name.clone()), "alert_time": dt(al.alert_time),
        "alert_type": al.alert_type, "message": al.message, "snoozed": al.snoozed, "snooze_until": opt_dt(al.snooze_until),
        "resolved": al.resolved, "resolved_on": opt_dt(al.resolved_on), "severity": al.severity, "email_sent": null,
        "resolved_email_sent": null, "sms_sent": null, "resolved_sms_sent": null, "hidden": al.hidden,
        "action_run": null, "action_stdout": null, "action_stderr": null, "action_retcode": null,
        "action_execution_time": null, "resolved_action_run": null, "resolved_action_stdout": null,
        "resolved_action_stderr": null, "resolved_action_retcode": null, "resolved_action_execution_time": null,
        "agent": al.agent, "assigned_check": null, "assigned_task": null,
    })
}

/// `GET /software/` row: `{id, software, agent}` with the INTEGER agent pk.
pub fn software_row(row_id: i64, a: &SimAgent) -> Value {
    json!({"id": row_id, "software": a.software, "agent": a.id})
}
