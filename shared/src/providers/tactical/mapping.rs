//! Tactical agent → [`DeviceSnapshot`].
//!
//! Follows AlgaPSA's Tactical engine where it is right, and
//! fixes what it gets wrong against the real server:
//! - the asset type comes from Tactical's `monitoring_type` (AlgaPSA looks for "server" in the OS
//!   string, once, at creation); the OS-string rule is only the fallback when it is missing;
//! - `lan_ip` comes from `local_ips` (detail/table) or from `wmi_detail` (list rows), the serial
//!   from `serial_number` or `wmi_detail`; AlgaPSA reads names Tactical never sends;
//! - uptime and `last_reboot_at` come from `boot_time` (AlgaPSA leaves them null);
//! - `os_type` is the platform (`Windows`/`Linux`/`macOS`), not the first word of the OS string
//!   ("Microsoft"); `os_version` is the whole OS string;
//! - `logged_in_username == "None"` is no user;
//! - `metadata.raw` is the agent without its inventory blobs `wmi_detail` and `services`
//!   ([`super::model::NOT_KEPT`]): AlgaPSA stores them whole, tens of kilobytes per agent on real
//!   servers, in every mapping row; what the mapping reads from `wmi_detail` is in the asset's
//!   columns and extension row.
//!
//! The agent status is AlgaPSA's rule applied at a given `now`, from each agent's own
//! `offline_time`/`overdue_time`. Records without thresholds (the `/agents/` table rows) use
//! Tactical's own `status` field.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::model::{Agent, Site};
use crate::ingest::snapshot::{AgentStatus, AssetType, DeviceSnapshot, DiskUsage, ExtensionSnapshot, Lifecycle};

/// Tactical's default thresholds, in minutes.
pub const DEFAULT_OFFLINE_MINUTES: i64 = 4;
pub const DEFAULT_OVERDUE_MINUTES: i64 = 30;

/// What the mapping needs besides the agent.
#[derive(Debug, Clone, Copy)]
pub struct MappingContext {
    pub integration_id: Uuid,
    /// The instant statuses and uptimes are computed for.
    pub now: DateTime<Utc>,
}

/// Where an agent belongs: the Tactical client (the snapshot's scope) and its site.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentScope {
    /// Tactical client pk, as a string (`external_realm_id`, `rmm_organization_id`).
    pub client_id: String,
    pub site_id: Option<String>,
    pub site_name: Option<String>,
}

/// Sites by pk, to resolve an agent's site name and client.
#[derive(Debug, Clone, Default)]
pub struct SiteIndex {
    sites: HashMap<i64, Site>,
}

impl SiteIndex {
    pub fn new(sites: impl IntoIterator<Item = Site>) -> Self {
        SiteIndex { sites: sites.into_iter().map(|s| (s.id, s)).collect() }
    }

    pub fn get(&self, id: i64) -> Option<&Site> {
        self.sites.get(&id)
    }

    pub fn len(&self) -> usize {
        self.sites.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sites.is_empty()
    }

    /// The agent's scope: its site's client when the site is known (so a moved agent gets its
    /// new client), else `fallback_client_id` (the client the list was filtered by).
    pub fn scope_for(&self, agent: &Agent, fallback_client_id: Option<&str>) -> Option<AgentScope> {
        let site = agent.site_id().and_then(|id| self.sites.get(&id));
        let client_id = match site {
            Some(s) => s.client.to_string(),
            None => fallback_client_id.filter(|c| !c.is_empty())?.to_owned(),
        };
        Some(AgentScope {
            client_id,
            site_id: agent.site_id().map(|id| id.to_string()),
            site_name: site.map(|s| s.name.clone()).or_else(|| agent.site_name().map(str::to_owned)),
        })
    }
}

/// Why an agent could not be mapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// AlgaPSA's text: `Agent record missing id (org=<orgId>)`.
    #[error("Agent record missing id (org={0})")]
    MissingId(String),
    #[error("Agent {0} has no Tactical client to map it to")]
    MissingScope(String),
}

/// AlgaPSA's `computeTacticalAgentStatus`: `elapsed ≤ offline` → online (only when the
/// offline threshold is positive), else `elapsed ≥ overdue` → overdue (only when positive), else
/// offline. No `last_seen` → offline; a future `last_seen` → online.
pub fn compute_agent_status(
    last_seen: Option<DateTime<Utc>>,
    offline_minutes: Option<i64>,
    overdue_minutes: Option<i64>,
    now: DateTime<Utc>,
) -> AgentStatus {
    let Some(last_seen) = last_seen else { return AgentStatus::Offline };
    let elapsed_ms = (now - last_seen).num_milliseconds();
    let offline_ms = offline_minutes.unwrap_or(0).max(0).saturating_mul(60_000);
    let overdue_ms = overdue_minutes.unwrap_or(0).max(0).saturating_mul(60_000);
    if offline_ms > 0 && elapsed_ms <= offline_ms {
        AgentStatus::Online
    } else if overdue_ms > 0 && elapsed_ms >= overdue_ms {
        AgentStatus::Overdue
    } else {
        AgentStatus::Offline
    }
}

/// The agent's status at `now`: computed from its thresholds when the record has them; Tactical's
/// own `status` for records without thresholds; Tactical's defaults (4/30 min) otherwise.
pub fn agent_status(agent: &Agent, now: DateTime<Utc>) -> AgentStatus {
    if agent.offline_time.is_some() || agent.overdue_time.is_some() {
        return compute_agent_status(agent.last_seen_at(), agent.offline_time, agent.overdue_time, now);
    }
    match agent.status.as_deref().map(str::trim) {
        Some("online") => AgentStatus::Online,
        Some("offline") => AgentStatus::Offline,
        Some("overdue") => AgentStatus::Overdue,
        _ => compute_agent_status(
            agent.last_seen_at(),
            Some(DEFAULT_OFFLINE_MINUTES),
            Some(DEFAULT_OVERDUE_MINUTES),
            now,
        ),
    }
}

/// `monitoring_type` decides; without it, AlgaPSA's rule (the OS string contains "server").
pub fn asset_type(agent: &Agent) -> AssetType {
    match agent.monitoring_type.as_deref().map(|s| s.trim().to_ascii_lowercase()).as_deref() {
        Some("server") => AssetType::Server,
        Some("workstation") => AssetType::Workstation,
        _ => {
            let os = agent.operating_system.as_deref().unwrap_or("").to_lowercase();
            if os.contains("server") { AssetType::Server } else { AssetType::Workstation }
        }
    }
}

/// The user logged in now, if any. `"None"` (Tactical's placeholder) and empty mean nobody. On
/// `/agents/` table rows, `logged_username` is `"-"` for nobody and, when `italic`, the last user.
pub fn current_user(agent: &Agent) -> Option<String> {
    fn real(s: &str) -> Option<String> {
        let t = s.trim();
        (!t.is_empty() && t != "None").then(|| t.to_owned())
    }
    if let Some(u) = agent.logged_in_username.as_deref() {
        return real(u);
    }
    if agent.italic == Some(true) {
        return None;
    }
    agent.logged_username.as_deref().filter(|u| u.trim() != "-").and_then(real)
}

/// The address for `lan_ip` (varchar 45): the first IPv4 of `local_ips` without its prefix
/// length, else the first address.
pub fn lan_ip(agent: &Agent) -> Option<String> {
    let ips: Vec<String> = agent
        .local_ips()
        .into_iter()
        .map(|ip| ip.split('/').next().unwrap_or("").trim().to_owned())
        .filter(|ip| !ip.is_empty())
        .collect();
    ips.iter().find(|ip| ip.parse::<std::net::Ipv4Addr>().is_ok()).or_else(|| ips.first()).cloned()
}

/// `public_ip`, unless empty or a placeholder.
pub fn wan_ip(agent: &Agent) -> Option<String> {
    agent
        .public_ip
        .as_deref()
        .map(str::trim)
        .filter(|ip| !ip.is_empty() && *ip != "None" && !ip.to_ascii_lowercase().starts_with("error"))
        .map(str::to_owned)
}

/// Seconds since `boot_time`, measured at `now` for an online agent and at its last check-in
/// otherwise (an offline machine's uptime is only known up to then). `None` when negative.
pub fn uptime_seconds(agent: &Agent, status: AgentStatus, now: DateTime<Utc>) -> Option<i64> {
    let boot = agent.boot_time_at()?;
    let at = match (status, agent.last_seen_at()) {
        (AgentStatus::Online, _) | (_, None) => now,
        (_, Some(seen)) => seen.min(now),
    };
    let secs = (at - boot).num_seconds();
    (secs >= 0).then_some(secs)
}

/// `(os_type, os_version)`: the platform name and the full OS string.
pub fn os_fields(agent: &Agent) -> (Option<String>, Option<String>) {
    let os = agent.operating_system.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
    let os_type = match agent.plat.as_deref() {
        Some("windows") => Some("Windows".to_owned()),
        Some("linux") => Some("Linux".to_owned()),
        Some("darwin") => Some("macOS".to_owned()),
        _ => os.as_deref().and_then(|s| s.split_whitespace().next()).map(str::to_owned),
    };
    (os_type, os)
}

/// A Tactical size (`"60.5 GB"`, `"237.9G"`, `"0 B"`) in GB (binary units, as Tactical's).
pub fn parse_size_gb(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let value: f64 = s[..split].trim().parse().ok()?;
    let unit = s[split..].trim().to_ascii_uppercase();
    let factor = match unit.trim_end_matches("IB").trim_end_matches('B') {
        "" => 1.0 / (1024.0 * 1024.0 * 1024.0),
        "K" => 1.0 / (1024.0 * 1024.0),
        "M" => 1.0 / 1024.0,
        "G" => 1.0,
        "T" => 1024.0,
        "P" => 1024.0 * 1024.0,
        _ => return None,
    };
    Some(((value * factor) * 100.0).round() / 100.0)
}

fn disk_usage(agent: &Agent) -> Option<Vec<DiskUsage>> {
    agent.raw.get("disks")?.as_array()?;
    Some(
        agent
            .disks()
            .into_iter()
            .map(|d| DiskUsage {
                name: d.device.unwrap_or_default(),
                total_gb: d.total.as_deref().and_then(parse_size_gb),
                free_gb: d.free.as_deref().and_then(parse_size_gb),
                utilization_percent: d.percent,
            })
            .collect(),
    )
}

fn system_info(agent: &Agent) -> Option<Value> {
    let mut m = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            m.insert(k.to_owned(), v);
        }
    };
    put("make_model", agent.make_model().map(Value::from));
    let ips = agent.local_ips();
    put("local_ips", (!ips.is_empty()).then(|| Value::from(ips)));
    put("platform", agent.plat.clone().map(Value::from));
    put("architecture", agent.goarch.clone().map(Value::from));
    put(
        "time_zone",
        agent
            .time_zone
            .clone()
            .or_else(|| agent.raw.get("timezone").and_then(Value::as_str).map(str::to_owned))
            .map(Value::from),
    );
    put("description", agent.description.clone().filter(|d| !d.is_empty()).map(Value::from));
    put("monitoring_type", agent.monitoring_type.clone().map(Value::from));
    put("needs_reboot", agent.needs_reboot.map(Value::from));
    put("maintenance_mode", agent.maintenance_mode.map(Value::from));
    put("tactical_agent_pk", agent.id.map(Value::from));
    (!m.is_empty()).then_some(Value::Object(m))
}

/// The extension row of an agent.
pub fn extension(agent: &Agent, status: AgentStatus, now: DateTime<Utc>) -> ExtensionSnapshot {
    let (os_type, os_version) = os_fields(agent);
    let cpus = agent.cpu_models();
    let cpu_model = if cpus.is_empty() {
        None
    } else {
        let mut unique: Vec<&String> = Vec::new();
        for c in &cpus {
            if !unique.contains(&c) {
                unique.push(c);
            }
        }
        Some(Some(unique.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")))
    };
    ExtensionSnapshot {
        os_type,
        os_version,
        agent_version: agent.version.clone().filter(|v| !v.is_empty()),
        current_user: current_user(agent),
        uptime_seconds: uptime_seconds(agent, status, now),
        lan_ip: lan_ip(agent),
        wan_ip: wan_ip(agent),
        last_reboot_at: agent.boot_time_at(),
        system_info: system_info(agent),
        cpu_model,
        cpu_cores: agent.cpu_cores().map(|n| Some(f64::from(n))),
        ram_gb: agent.total_ram.map(Some),
        disk_usage: disk_usage(agent).map(Some),
        ..ExtensionSnapshot::default()
    }
}

/// The snapshot of one agent. `metadata` is `{site_id?, site_name?, raw}` like AlgaPSA's engine
/// (`raw` without [`super::model::NOT_KEPT`]); `asset_tag` is AlgaPSA's `tactical:<agent_id>`.
pub fn agent_snapshot(agent: &Agent, scope: &AgentScope, ctx: &MappingContext) -> Result<DeviceSnapshot, MappingError> {
    let external_device_id = agent
        .agent_id
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .or_else(|| agent.id.map(|id| id.to_string()))
        .ok_or_else(|| MappingError::MissingId(scope.client_id.clone()))?;
    if scope.client_id.trim().is_empty() {
        return Err(MappingError::MissingScope(external_device_id));
    }
    let status = agent_status(agent, ctx.now);
    let display_name = agent
        .hostname
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| external_device_id.clone());
    let site_name = scope.site_name.clone().or_else(|| agent.site_name().map(str::to_owned));
    let mut metadata = Map::new();
    if let Some(id) = scope.site_id.clone().or_else(|| agent.site_id().map(|i| i.to_string())) {
        metadata.insert("site_id".into(), Value::from(id));
    }
    if let Some(name) = site_name.clone().filter(|n| !n.is_empty()) {
        metadata.insert("site_name".into(), Value::from(name));
    }
    metadata.insert("raw".into(), agent.raw.clone());
    Ok(DeviceSnapshot {
        provider: super::PROVIDER,
        integration_id: ctx.integration_id,
        asset_tag: Some(format!("tactical:{external_device_id}")),
        external_scope_id: scope.client_id.trim().to_owned(),
        lifecycle: Lifecycle::Active,
        asset_type: asset_type(agent),
        display_name,
        serial_number: agent.serial_number(),
        status: None,
        location: site_name.filter(|n| !n.is_empty()),
        agent_status: Some(status),
        last_seen_at: agent.last_seen_at(),
        extension: Some(extension(agent, status, ctx.now)),
        metadata: Some(Value::Object(metadata)),
        external_device_id,
    })
}

/// AlgaPSA's incremental filter (`tacticalAgentChangedSince`): no `since`, no `last_seen`
/// or an unparseable one → include; else `last_seen >= since`.
pub fn changed_since(agent: &Agent, since: Option<DateTime<Utc>>) -> bool {
    let Some(since) = since else { return true };
    match agent.last_seen_at() {
        Some(seen) => seen >= since,
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 2, 13, 12, 0, 0).unwrap()
    }

    #[test]
    fn algapsa_status_rule() {
        let n = now();
        let s = |mins: i64| compute_agent_status(Some(n - Duration::minutes(mins)), Some(5), Some(30), n);
        assert_eq!(s(4), AgentStatus::Online);
        assert_eq!(s(5), AgentStatus::Online);
        assert_eq!(s(10), AgentStatus::Offline);
        assert_eq!(s(30), AgentStatus::Overdue);
        assert_eq!(s(40), AgentStatus::Overdue);
        assert_eq!(s(-10), AgentStatus::Online);
        assert_eq!(compute_agent_status(None, Some(5), Some(30), n), AgentStatus::Offline);
        assert_eq!(compute_agent_status(Some(n), Some(0), Some(30), n), AgentStatus::Offline);
        assert_eq!(compute_agent_status(Some(n), None, None, n), AgentStatus::Offline);
        assert_eq!(compute_agent_status(Some(n - Duration::days(9)), None, Some(0), n), AgentStatus::Offline);
    }

    #[test]
    fn status_field_used_without_thresholds() {
        let a =
            Agent::from_value_for_test(json!({"agent_id": "a", "status": "overdue", "last_seen": now().to_rfc3339()}));
        assert_eq!(agent_status(&a, now()), AgentStatus::Overdue);
        let b = Agent::from_value_for_test(json!({"agent_id": "a", "last_seen": now().to_rfc3339()}));
        assert_eq!(agent_status(&b, now()), AgentStatus::Online);
        let c = Agent::from_value_for_test(
            json!({"agent_id": "a", "status": "online", "offline_time": 4, "overdue_time": 30, "last_seen": (now() - Duration::hours(1)).to_rfc3339()}),
        );
        assert_eq!(agent_status(&c, now()), AgentStatus::Overdue, "thresholds win over a stale status");
    }

    #[test]
    fn users() {
        let u = |v: Value| current_user(&Agent::from_value_for_test(v));
        assert_eq!(u(json!({"logged_in_username": "None"})), None);
        assert_eq!(u(json!({"logged_in_username": "alice"})), Some("alice".into()));
        assert_eq!(u(json!({"logged_in_username": ""})), None);
        assert_eq!(u(json!({"logged_username": "-"})), None);
        assert_eq!(u(json!({"logged_username": "bob", "italic": true})), None);
        assert_eq!(u(json!({"logged_username": "bob", "italic": false})), Some("bob".into()));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size_gb("60.5 GB"), Some(60.5));
        assert_eq!(parse_size_gb("237.9G"), Some(237.9));
        assert_eq!(parse_size_gb("0 B"), Some(0.0));
        assert_eq!(parse_size_gb("512 MB"), Some(0.5));
        assert_eq!(parse_size_gb("1 TB"), Some(1024.0));
        assert_eq!(parse_size_gb("lots"), None);
    }

    #[test]
    fn uptime_measured_at_last_seen_when_not_online() {
        let n = now();
        let boot = (n - Duration::hours(10)).timestamp() as f64;
        let seen = (n - Duration::hours(2)).to_rfc3339();
        let a = Agent::from_value_for_test(
            json!({"boot_time": boot, "last_seen": seen, "offline_time": 4, "overdue_time": 30}),
        );
        assert_eq!(uptime_seconds(&a, AgentStatus::Overdue, n), Some(8 * 3600));
        assert_eq!(uptime_seconds(&a, AgentStatus::Online, n), Some(10 * 3600));
        let future = Agent::from_value_for_test(json!({"boot_time": (n + Duration::hours(1)).timestamp() as f64}));
        assert_eq!(uptime_seconds(&future, AgentStatus::Online, n), None);
    }

    #[test]
    fn missing_id_and_scope() {
        let ctx = MappingContext { integration_id: Uuid::nil(), now: now() };
        let scope = AgentScope { client_id: "7".into(), ..AgentScope::default() };
        let err = agent_snapshot(&Agent::from_value_for_test(json!({"hostname": "x"})), &scope, &ctx).unwrap_err();
        assert_eq!(err.to_string(), "Agent record missing id (org=7)");
        let no_scope = AgentScope::default();
        assert!(matches!(
            agent_snapshot(&Agent::from_value_for_test(json!({"agent_id": "a"})), &no_scope, &ctx),
            Err(MappingError::MissingScope(_))
        ));
    }

    #[test]
    fn changed_since_matches_algapsa() {
        let since = Utc.with_ymd_and_hms(2026, 8, 13, 9, 0, 0).unwrap();
        let a = |v: Value| changed_since(&Agent::from_value_for_test(v), Some(since));
        assert!(a(json!({"last_seen": "2026-08-13T10:00:00Z"})));
        assert!(!a(json!({"last_seen": "2026-08-01T10:00:00Z"})));
        assert!(a(json!({"last_seen": "2026-08-13T09:00:00Z"})));
        assert!(a(json!({"last_seen": null})));
        assert!(a(json!({})));
        assert!(a(json!({"last_seen": "not a date"})));
        assert!(changed_since(&Agent::from_value_for_test(json!({"last_seen": "2020-01-01T00:00:00Z"})), None));
    }

    impl Agent {
        fn from_value_for_test(v: Value) -> Agent {
            use super::super::model::RawRecord;
            Agent::from_value(v).unwrap()
        }
    }
}
