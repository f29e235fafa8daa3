//! A Level v2 REST API simulator on 127.0.0.1: nested groups, a fleet of any size (devices with
//! every `include_*` part Level sends), available updates, alerts and their resolution.
//!
//! Lists page like Level: `limit` (1–100, default 20) and `starting_after=<last id>`, answering
//! `{"data": [...], "has_more": bool}`. `ancestor_group_id` lists the devices of every group
//! *below* the given one (recursive); `group_id` the devices directly in it. The API key is the
//! whole `Authorization` header (no scheme); anything else is `401 {"error":"Access denied"}`.
//! Switches: latency, injected answers (any status, 429 with `Retry-After`, an HTML page, a
//! truncated body; a number of times or always), and fleet changes (remove, move, touch).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use poem::http::{Method, StatusCode, header};
use poem::{Endpoint, Request, Response};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

/// The API key the simulator accepts by default.
pub const DEFAULT_API_KEY: &str = "lvl_sim_7c1e4b2a9d3f5e6a";

/// Fleet shape.
#[derive(Debug, Clone)]
pub struct LevelFleetSpec {
    pub seed: u64,
    /// Top-level groups (customers).
    pub top_groups: usize,
    /// Groups under each top-level group (sites); the first one of each has a group of its own below it.
    pub sites_per_group: usize,
    pub devices: usize,
    /// Available updates per device (categories alternate OS and software).
    pub updates_per_device: usize,
    /// Active alerts, on the first devices.
    pub alerts: usize,
}

impl Default for LevelFleetSpec {
    fn default() -> Self {
        LevelFleetSpec { seed: 11, top_groups: 2, sites_per_group: 2, devices: 12, updates_per_device: 2, alerts: 3 }
    }
}

/// One group.
#[derive(Debug, Clone)]
pub struct SimGroup {
    pub id: String,
    pub parent_id: Option<String>,
    pub name: String,
}

/// One device (rendered to Level's JSON on demand).
#[derive(Debug, Clone)]
pub struct SimDevice {
    pub id: String,
    pub hostname: String,
    pub nickname: Option<String>,
    pub role: &'static str,
    pub group_id: String,
    pub online: bool,
    pub platform: &'static str,
    pub os: &'static str,
    pub serial: String,
    pub memory_bytes: u64,
    pub cores: u32,
    pub lan_ip: String,
    pub public_ip: Option<String>,
    pub last_seen_at: DateTime<Utc>,
    pub last_reboot_time: DateTime<Utc>,
    pub user: String,
    pub city: &'static str,
    pub country: &'static str,
    pub security_score: u32,
    pub maintenance_mode: bool,
}

#[derive(Debug, Clone)]
pub struct SimUpdate {
    pub id: String,
    pub device_id: String,
    pub name: String,
    pub category: &'static str,
}

#[derive(Debug, Clone)]
pub struct SimAlert {
    pub id: String,
    pub device_id: String,
    pub device_hostname: String,
    pub name: String,
    pub description: String,
    pub severity: &'static str,
    pub resolved_at: Option<DateTime<Utc>>,
    pub started_at: DateTime<Utc>,
}

/// The generated fleet. Devices, updates and alerts are kept ordered by id (the cursor).
#[derive(Debug, Clone, Default)]
pub struct LevelFleet {
    pub groups: Vec<SimGroup>,
    pub devices: Vec<SimDevice>,
    pub updates: Vec<SimUpdate>,
    pub alerts: Vec<SimAlert>,
}

/// The update categories the fleet uses, with what they are.
pub const UPDATE_CATEGORIES: [&str; 4] = ["Security Updates", "Third-party applications", "Feature Packs", "Misc"];

impl LevelFleet {
    pub fn generate(spec: &LevelFleetSpec, now: DateTime<Utc>) -> LevelFleet {
        let mut rng = StdRng::seed_from_u64(spec.seed);
        let mut groups = Vec::new();
        for t in 0..spec.top_groups {
            let top = format!("grp_{:03}", t * 100);
            groups.push(SimGroup { id: top.clone(), parent_id: None, name: format!("Customer {:02}", t + 1) });
            for s in 0..spec.sites_per_group {
                let site = format!("grp_{:03}", t * 100 + 10 * (s + 1));
                groups.push(SimGroup {
                    id: site.clone(),
                    parent_id: Some(top.clone()),
                    name: format!("Site {}", s + 1),
                });
                if s == 0 {
                    groups.push(SimGroup {
                        id: format!("grp_{:03}", t * 100 + 11),
                        parent_id: Some(site),
                        name: "Servers".into(),
                    });
                }
            }
        }
        let oses = [
            ("Windows", "Windows 11 Pro 23H2", "workstation"),
            ("Windows", "Windows Server 2022 Standard", "server"),
            ("Mac", "macOS Sonoma 14.5", "workstation"),
            ("Linux", "Ubuntu 24.04 LTS", "server"),
            ("Windows", "Windows Server 2019 Datacenter", "domain_controller"),
        ];
        let cities = [("Berlin", "DE"), ("Austin", "US"), ("Leeds", "GB")];
        let mut devices = Vec::with_capacity(spec.devices);
        let mut updates = Vec::new();
        for i in 0..spec.devices {
            let (platform, os, role) = oses[i % oses.len()];
            let group = if groups.is_empty() { String::new() } else { groups[i % groups.len()].id.clone() };
            let (city, country) = cities[i % cities.len()];
            let id = format!("dev_{i:07}");
            let seen = now - chrono::Duration::seconds(rng.random_range(0..7 * 86_400));
            devices.push(SimDevice {
                hostname: format!("{}-{i:05}", if role == "workstation" { "ws" } else { "srv" }),
                nickname: (i % 7 == 0).then(|| format!("Reception PC {i}")),
                role,
                group_id: group,
                online: i % 4 != 3,
                platform,
                os,
                serial: format!("SN{:08X}", rng.random::<u32>()),
                memory_bytes: [8u64, 16, 32, 64][i % 4] << 30,
                cores: [4, 8, 12, 16][i % 4],
                lan_ip: format!("10.{}.{}.{}", i / 65_536 % 256, i / 256 % 256, i % 256),
                public_ip: (role != "workstation").then(|| format!("81.2.{}.{}", i / 256 % 256, i % 250 + 1)),
                last_seen_at: seen,
                last_reboot_time: seen - chrono::Duration::seconds(rng.random_range(600..30 * 86_400)),
                user: format!("CORP\\user{i}"),
                city,
                country,
                security_score: rng.random_range(40..100),
                maintenance_mode: i % 11 == 0,
                id: id.clone(),
            });
            for u in 0..spec.updates_per_device {
                updates.push(SimUpdate {
                    id: format!("upd_{i:07}_{u:02}"),
                    device_id: id.clone(),
                    name: format!("Update {u} for {id}"),
                    category: UPDATE_CATEGORIES[u % UPDATE_CATEGORIES.len()],
                });
            }
        }
        let severities = ["information", "warning", "critical", "emergency"];
        let alerts = (0..spec.alerts.min(devices.len()))
            .map(|a| SimAlert {
                id: format!("alr_{a:06}"),
                device_id: devices[a].id.clone(),
                device_hostname: devices[a].hostname.clone(),
                name: ["CPU usage", "Disk space", "Service stopped"][a % 3].into(),
                description: format!("Monitor {a} crossed its threshold"),
                severity: severities[a % severities.len()],
                resolved_at: None,
                started_at: now - chrono::Duration::minutes(30 + a as i64),
            })
            .collect();
        LevelFleet { groups, devices, updates, alerts }
    }

    /// The group and its ancestors' ids.
    fn ancestry(&self, id: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut current = Some(id.to_owned());
        while let Some(g) = current {
            if out.contains(&g) {
                break;
            }
            current = self.groups.iter().find(|x| x.id == g).and_then(|x| x.parent_id.clone());
            out.push(g);
        }
        out
    }
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A device as Level's API sends it, with the parts asked for (`include_*`).
pub fn render_device(d: &SimDevice, includes: &dyn Fn(&str) -> bool) -> Value {
    let mut v = json!({
        "id": d.id, "hostname": d.hostname, "nickname": d.nickname, "role": d.role, "group_id": d.group_id,
        "tags": if d.role == "workstation" { json!(["managed"]) } else { json!(["managed", "server"]) },
        "flag": null, "maintenance_mode": d.maintenance_mode, "online": d.online,
        "manufacturer": if d.platform == "Mac" { "Apple Inc." } else { "Dell Inc." },
        "model": if d.platform == "Mac" { "Mac14,2" } else { "OptiPlex 7010" },
        "architecture": "x86_64", "serial_number": d.serial, "cpu_cores": d.cores,
        "last_logged_in_user": d.user, "last_reboot_time": ts(d.last_reboot_time), "last_seen_at": ts(d.last_seen_at),
        "city": d.city, "country": d.country, "security_score": d.security_score, "platform": d.platform,
    });
    let m = v.as_object_mut().expect("object");
    if includes("include_operating_system") {
        m.insert(
            "operating_system".into(),
            json!({"full_operating_system": d.os, "major_version": d.os.split(' ').nth(1), "minor_version": null,
                   "architecture": "x86_64", "install_date": "2024-02-01T00:00:00Z", "end_of_life": false}),
        );
    }
    if includes("include_cpus") {
        m.insert(
            "cpus".into(),
            json!([{"model": "Intel(R) Core(TM) i7-1365U", "clock_speed": 2400, "cores": d.cores}]),
        );
    }
    if includes("include_memory") {
        m.insert("total_memory".into(), json!(d.memory_bytes));
        m.insert("memory_slots".into(), json!(2));
    }
    if includes("include_disks") {
        m.insert(
            "disk_partitions".into(),
            json!([{"label": "OS", "mount_point": if d.platform == "Windows" { "C:" } else { "/" }, "encrypted": true,
                    "primary": true, "size": 512_000_000_000u64, "free_space": 200_000_000_000u64, "file_system": "NTFS"}]),
        );
    }
    if includes("include_network_interfaces") {
        let mut ips = vec![json!(d.lan_ip), json!("fe80::1c2b:3a4d:5e6f:7a8b")];
        if let Some(p) = &d.public_ip {
            ips.push(json!(p));
        }
        m.insert(
            "network_interfaces".into(),
            json!([{"description": "Intel(R) Ethernet Connection", "interface": "eth0", "mac_address": "02:00:00:00:00:01",
                    "ip_addresses": ips, "gateway": "10.0.0.1", "domain": "corp.local", "dhcp_server": null,
                    "dns_servers": "10.0.0.2", "label": "Ethernet"},
                   {"description": "Hyper-V Virtual Ethernet Adapter", "interface": "vEthernet", "mac_address": "02:00:00:00:00:02",
                    "ip_addresses": ["172.31.0.1"], "gateway": null, "label": "vEthernet"}]),
        );
    }
    if includes("include_security") {
        m.insert(
            "security".into(),
            json!({"score": d.security_score, "risk": if d.security_score < 60 { "high" } else { "low" },
                   "patch_compliance": d.security_score > 70, "patch_security_risk": "low", "os_end_of_life": false,
                   "primary_partition_encrypted": true, "firewall_provider": "Windows Firewall", "firewall_enabled": true,
                   "antivirus_provider": "Microsoft Defender", "antivirus_status": "up_to_date"}),
        );
    }
    v
}

/// An answer injected in place of the real one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LevelFault {
    /// This status with a JSON error body.
    Status(u16),
    /// 429 with this `Retry-After`.
    RateLimited(String),
    /// 200 with an HTML page.
    Html,
    /// The normal answer cut in half (still `200 application/json`).
    Truncated,
}

#[derive(Default)]
struct Knobs {
    latency: Duration,
    faults: Vec<(LevelFault, Option<u32>)>,
    /// Requests whose `METHOD path?query` contains the text get the fault, every time.
    matching: Vec<(String, LevelFault)>,
    /// `METHOD path?query` of every request.
    log: Vec<String>,
    resolved: Vec<String>,
}

struct SimData {
    key: String,
    fleet: Mutex<LevelFleet>,
    knobs: Mutex<Knobs>,
}

impl SimData {
    fn knobs(&self) -> MutexGuard<'_, Knobs> {
        self.knobs.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn fleet(&self) -> MutexGuard<'_, LevelFleet> {
        self.fleet.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Control handle of a running simulator. Cheap to clone.
#[derive(Clone)]
pub struct LevelHandle {
    data: Arc<SimData>,
    base_url: String,
}

/// A running simulator; stops when dropped.
pub struct LevelSim {
    handle: LevelHandle,
    _served: crate::Served,
}

impl std::ops::Deref for LevelSim {
    type Target = LevelHandle;
    fn deref(&self) -> &LevelHandle {
        &self.handle
    }
}

impl LevelSim {
    pub async fn start(spec: LevelFleetSpec) -> std::io::Result<LevelSim> {
        LevelSim::start_with(LevelFleet::generate(&spec, Utc::now()), DEFAULT_API_KEY).await
    }

    pub async fn start_with(fleet: LevelFleet, key: &str) -> std::io::Result<LevelSim> {
        let data = Arc::new(SimData { key: key.to_owned(), fleet: Mutex::new(fleet), knobs: Mutex::default() });
        let mut base = String::new();
        let served = crate::serve(|url| {
            base = url;
            LevelEndpoint { data: data.clone() }
        })
        .await?;
        Ok(LevelSim { handle: LevelHandle { data, base_url: base }, _served: served })
    }

    pub fn handle(&self) -> LevelHandle {
        self.handle.clone()
    }
}

impl LevelHandle {
    /// `http://127.0.0.1:<port>` (the client adds `/v2/…`).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn api_key(&self) -> &str {
        &self.data.key
    }

    pub fn fleet(&self) -> LevelFleet {
        self.data.fleet().clone()
    }

    /// Changes the fleet in place (keep devices, updates and alerts ordered by id).
    pub fn with_fleet<T>(&self, f: impl FnOnce(&mut LevelFleet) -> T) -> T {
        f(&mut self.data.fleet())
    }

    /// Removes a device from Level (it left the estate).
    pub fn remove_device(&self, id: &str) {
        self.data.fleet().devices.retain(|d| d.id != id);
    }

    pub fn update_device(&self, id: &str, f: impl FnOnce(&mut SimDevice)) {
        if let Some(d) = self.data.fleet().devices.iter_mut().find(|d| d.id == id) {
            f(d);
        }
    }

    pub fn set_latency(&self, d: Duration) {
        self.data.knobs().latency = d;
    }

    /// Answer the next `times` requests (`None`: every request) with `fault`.
    pub fn inject(&self, fault: LevelFault, times: Option<u32>) {
        self.data.knobs().faults.push((fault, times));
    }

    /// Answer every request whose `METHOD /path?query` contains `text` (e.g.
    /// `starting_after=dev_0000099`: the second device page) with `fault`.
    pub fn fail_matching(&self, text: &str, fault: LevelFault) {
        self.data.knobs().matching.push((text.to_owned(), fault));
    }

    pub fn clear_faults(&self) {
        let mut k = self.data.knobs();
        k.faults.clear();
        k.matching.clear();
    }

    /// `METHOD /path?query` of every request received.
    pub fn requests(&self) -> Vec<String> {
        self.data.knobs().log.clone()
    }

    /// Requests whose path starts with `prefix` (e.g. `GET /v2/devices`).
    pub fn count(&self, prefix: &str) -> usize {
        self.data.knobs().log.iter().filter(|r| r.starts_with(prefix)).count()
    }

    pub fn reset_log(&self) {
        self.data.knobs().log.clear();
    }

    /// Alert ids resolved through `POST /v2/alerts/{id}/resolve`.
    pub fn resolved(&self) -> Vec<String> {
        self.data.knobs().resolved.clone()
    }
}

struct LevelEndpoint {
    data: Arc<SimData>,
}

const HTML: &str = "<!doctype html><html><head><title>Level</title></head><body>Sign in to Level</body></html>";

fn json_response(status: StatusCode, body: &Value) -> Response {
    Response::builder().status(status).content_type("application/json").body(body.to_string())
}

/// A page of `items` (ordered by id) after `starting_after`, keeping those that pass `keep`.
fn page<T>(
    items: &[T],
    id: impl Fn(&T) -> &str,
    params: &HashMap<String, String>,
    keep: impl Fn(&T) -> bool,
    render: impl Fn(&T) -> Value,
) -> Value {
    let limit = params.get("limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(20).clamp(1, 100);
    let start = match params.get("starting_after") {
        Some(after) => items.partition_point(|x| id(x) <= after.as_str()),
        None => 0,
    };
    let mut data = Vec::with_capacity(limit);
    let mut has_more = false;
    for item in &items[start..] {
        if !keep(item) {
            continue;
        }
        if data.len() == limit {
            has_more = true;
            break;
        }
        data.push(render(item));
    }
    json!({"data": data, "has_more": has_more})
}

impl Endpoint for LevelEndpoint {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let path = req.uri().path().to_owned();
        let query = req.uri().query().unwrap_or("").to_owned();
        let auth = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let (latency, fault) = {
            let mut k = self.data.knobs();
            let line = if query.is_empty() {
                format!("{} {path}", req.method())
            } else {
                format!("{} {path}?{query}", req.method())
            };
            let matched = k.matching.iter().find(|(t, _)| line.contains(t.as_str())).map(|(_, f)| f.clone());
            k.log.push(line);
            let fault = match (matched, k.faults.first_mut()) {
                (Some(f), _) => Some(f),
                (None, Some((f, Some(n)))) => {
                    let f = f.clone();
                    *n -= 1;
                    if *n == 0 {
                        k.faults.remove(0);
                    }
                    Some(f)
                }
                (None, Some((f, None))) => Some(f.clone()),
                (None, None) => None,
            };
            (k.latency, fault)
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        match &fault {
            Some(LevelFault::Status(code)) => {
                let status = StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                return Ok(json_response(status, &json!({"error": "simulated failure"})));
            }
            Some(LevelFault::RateLimited(after)) => {
                return Ok(Response::builder()
                    .status(StatusCode::TOO_MANY_REQUESTS)
                    .header(header::RETRY_AFTER, after.clone())
                    .content_type("application/json")
                    .body("{\"error\":\"Rate limit exceeded\"}"));
            }
            Some(LevelFault::Html) => {
                return Ok(Response::builder()
                    .status(StatusCode::OK)
                    .content_type("text/html; charset=utf-8")
                    .body(HTML));
            }
            Some(LevelFault::Truncated) | None => {}
        }
        if auth.as_deref() != Some(self.data.key.as_str()) {
            return Ok(json_response(StatusCode::UNAUTHORIZED, &json!({"error": "Access denied"})));
        }
        let params: HashMap<String, String> =
            url::form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let answer = match (req.method(), segments.as_slice()) {
            (&Method::GET, ["v2", "groups"]) => {
                let fleet = self.data.fleet();
                let mut groups = fleet.groups.clone();
                groups.sort_by(|a, b| a.id.cmp(&b.id));
                Ok(page(
                    &groups,
                    |g| &g.id,
                    &params,
                    |_| true,
                    |g| {
                        let children: Vec<&str> = fleet
                            .groups
                            .iter()
                            .filter(|c| c.parent_id.as_deref() == Some(&g.id))
                            .map(|c| c.id.as_str())
                            .collect();
                        let direct = fleet.devices.iter().filter(|d| d.group_id == g.id).count();
                        json!({"id": g.id, "parent_id": g.parent_id, "child_ids": children, "name": g.name, "device_count": direct})
                    },
                ))
            }
            (&Method::GET, ["v2", "devices"]) => {
                let fleet = self.data.fleet();
                let direct = params.get("group_id").cloned();
                let below = params.get("ancestor_group_id").cloned();
                // Which groups sit below `below` (its strict descendants).
                let under: Option<std::collections::HashSet<String>> = below.as_ref().map(|b| {
                    fleet
                        .groups
                        .iter()
                        .filter(|g| g.id != *b && fleet.ancestry(&g.id).contains(b))
                        .map(|g| g.id.clone())
                        .collect()
                });
                let includes = |k: &str| params.get(k).is_some_and(|v| v == "true");
                Ok(page(
                    &fleet.devices,
                    |d| &d.id,
                    &params,
                    |d| {
                        direct.as_ref().is_none_or(|g| &d.group_id == g)
                            && under.as_ref().is_none_or(|u| u.contains(&d.group_id))
                    },
                    |d| render_device(d, &includes),
                ))
            }
            (&Method::GET, ["v2", "devices", id]) => {
                let fleet = self.data.fleet();
                let includes = |k: &str| params.get(k).is_some_and(|v| v == "true");
                match fleet.devices.iter().find(|d| d.id == *id) {
                    Some(d) => Ok(render_device(d, &includes)),
                    None => Err(StatusCode::NOT_FOUND),
                }
            }
            (&Method::GET, ["v2", "updates"]) => {
                let fleet = self.data.fleet();
                let device = params.get("device_id").cloned();
                let available = params.get("status").is_none_or(|s| s == "available");
                Ok(page(
                    &fleet.updates,
                    |u| &u.id,
                    &params,
                    |u| available && device.as_ref().is_none_or(|d| &u.device_id == d),
                    |u| {
                        json!({"id": u.id, "device_id": u.device_id, "device_hostname": null, "name": u.name,
                               "category": u.category, "is_available": true, "installed_on": null})
                    },
                ))
            }
            (&Method::GET, ["v2", "alerts"]) => {
                let fleet = self.data.fleet();
                let status = params.get("status").cloned();
                let device = params.get("device_id").cloned();
                Ok(page(
                    &fleet.alerts,
                    |a| &a.id,
                    &params,
                    |a| {
                        let resolved = a.resolved_at.is_some();
                        status.as_deref().is_none_or(|s| (s == "resolved") == resolved)
                            && device.as_ref().is_none_or(|d| &a.device_id == d)
                    },
                    |a| {
                        json!({"id": a.id, "device_id": a.device_id, "device_hostname": a.device_hostname, "name": a.name,
                               "description": a.description, "payload": null, "severity": a.severity,
                               "is_resolved": a.resolved_at.is_some(), "started_at": ts(a.started_at),
                               "resolved_at": a.resolved_at.map(ts)})
                    },
                ))
            }
            (&Method::POST, ["v2", "alerts", id, "resolve"]) => {
                let mut fleet = self.data.fleet();
                match fleet.alerts.iter_mut().find(|a| a.id == *id) {
                    Some(a) => {
                        a.resolved_at.get_or_insert_with(Utc::now);
                        self.data.knobs().resolved.push((*id).to_owned());
                        Ok(json!({"id": id, "is_resolved": true}))
                    }
                    None => Err(StatusCode::NOT_FOUND),
                }
            }
            _ => Err(StatusCode::NOT_FOUND),
        };
        let body = match answer {
            Ok(v) => v,
            Err(status) => return Ok(json_response(status, &json!({"error": "Not found"}))),
        };
        if fault == Some(LevelFault::Truncated) {
            let full = body.to_string();
            return Ok(Response::builder()
                .status(StatusCode::OK)
                .content_type("application/json")
                .body(full.as_bytes()[..full.len() / 2].to_vec()));
        }
        Ok(json_response(StatusCode::OK, &body))
    }
}
