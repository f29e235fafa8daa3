//! Renders the fleet in the exact JSON shapes of Tactical RMM 1.5.1 (see the fixtures).

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

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
