//! A NinjaOne public API v2 simulator: a real HTTP server on 127.0.0.1 with the OAuth server and
//! the routes rmm-sync reads, for a fleet of any size generated from a seed.
//!
//! Behaviour reproduced:
//! - `GET /oauth/authorize` consents at once: 302 to `redirect_uri?code=…&state=…`;
//! - `POST /oauth/token` (form): `authorization_code`, `refresh_token` (rotating: every refresh
//!   issues a new refresh token and spends the old one; a spent or unknown one is 400
//!   `{"error":"invalid_grant"}`), `client_credentials` (no refresh token); a wrong client is 401
//!   `{"error":"invalid_client"}`;
//! - bearer tokens expire (`expires_in`, 3600 s by default); an unknown or expired one is 401;
//! - `GET /v2/organizations`, `GET /v2/devices-detailed?df=org = <id>`: bare arrays paged with
//!   `pageSize` and `after` (the last id of the previous page);
//! - `GET /v2/device/{id}` (404 for an unknown device), `GET /v2/alerts`,
//!   `POST /v2/alert/{uid}/reset`, `PUT`/`DELETE /v2/webhook`;
//! - `GET /v2/queries/software`, `/v2/queries/os-patches` and `/v2/queries/software-patches`:
//!   `{cursor: {name, offset, count, expires}, results}` paged with `pageSize` and `cursor` (the
//!   name of the previous page's cursor); `GET /v2/device/{id}/<report>` the same rows per device
//!   as a bare array. See [`expected_patch_counts`] for the statuses.
//!
//! Test controls: latency, injected faults on the `/v2` routes (any status, 429 + `Retry-After`,
//! an HTML page, a truncated body, every access token expired at once), the request log, the token
//! requests, fleet mutations (remove, touch, move).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use poem::http::{Method, StatusCode, header};
use poem::{Endpoint, Request, Response};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

pub const DEFAULT_CLIENT_ID: &str = "sim-ninja-client-7c1e";
pub const DEFAULT_CLIENT_SECRET: &str = "sim-ninja-secret-3f9a1d5b7e2c";

/// Fleet shape.
#[derive(Debug, Clone)]
pub struct NinjaFleetSpec {
    pub seed: u64,
    pub organizations: usize,
    pub devices: usize,
    /// Software rows per device in the query report.
    pub software_per_device: usize,
    /// Pending OS patches per device (every third device has none).
    pub patches_per_device: usize,
}

impl Default for NinjaFleetSpec {
    fn default() -> Self {
        NinjaFleetSpec { seed: 11, organizations: 3, devices: 12, software_per_device: 3, patches_per_device: 2 }
    }
}

/// One simulated device (compact: its JSON is rendered per request).
#[derive(Debug, Clone)]
pub struct SimDevice {
    pub id: i64,
    pub organization_id: i64,
    pub node_class: &'static str,
    pub name: String,
    pub serial: String,
    pub offline: bool,
    pub approved: bool,
    /// Epoch seconds.
    pub last_contact: f64,
    pub last_boot: f64,
    pub ram_gib: u32,
    pub cores: u32,
    pub disk_gib: u32,
    pub free_gib: u32,
    pub user: String,
}

#[derive(Debug, Clone)]
pub struct SimOrganization {
    pub id: i64,
    pub name: String,
}

/// An HTTP answer injected in place of a `/v2` one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NinjaFault {
    Status(u16),
    /// 429 with this `Retry-After`.
    RateLimited(String),
    /// 200 with an HTML page.
    Html,
    /// The normal answer cut in half (still `200 application/json`).
    Truncated,
    /// Every access token issued so far expires now (the request is then answered normally,
    /// which is a 401 for its token).
    ExpireTokens,
    /// Answered normally (queue it before another fault to hit a later request).
    Pass,
}

/// Simulator settings.
#[derive(Debug, Clone)]
pub struct NinjaSimConfig {
    pub fleet: NinjaFleetSpec,
    pub client_id: String,
    pub client_secret: String,
    /// `expires_in` of access tokens.
    pub token_ttl: Duration,
    pub now: Option<DateTime<Utc>>,
}

impl Default for NinjaSimConfig {
    fn default() -> Self {
        NinjaSimConfig {
            fleet: NinjaFleetSpec::default(),
            client_id: DEFAULT_CLIENT_ID.into(),
            client_secret: DEFAULT_CLIENT_SECRET.into(),
            token_ttl: Duration::from_secs(3600),
            now: None,
        }
    }
}

#[derive(Default)]
struct Tokens {
    /// Access token → expiry.
    access: HashMap<String, DateTime<Utc>>,
    /// Refresh tokens that may be used (once).
    refresh: HashSet<String>,
    spent: HashSet<String>,
    codes: HashSet<String>,
    issued: u64,
    /// `grant_type` of every token request, in order.
    requests: Vec<String>,
}

#[derive(Default)]
struct Knobs {
    latency: Duration,
    faults: Vec<(NinjaFault, Option<u32>)>,
    log: Vec<String>,
    webhook: Option<Value>,
    resets: Vec<String>,
}

struct SimData {
    config: NinjaSimConfig,
    orgs: Mutex<Vec<SimOrganization>>,
    devices: Mutex<Vec<SimDevice>>,
    alerts: Mutex<Vec<Value>>,
    tokens: Mutex<Tokens>,
    knobs: Mutex<Knobs>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

const CLASSES: [&str; 8] = [
    "WINDOWS_WORKSTATION",
    "WINDOWS_WORKSTATION",
    "MAC",
    "WINDOWS_SERVER",
    "LINUX_WORKSTATION",
    "LINUX_SERVER",
    "HYPERV_VMM_GUEST",
    "VMWARE_VM_GUEST",
];

fn generate(spec: &NinjaFleetSpec, now: DateTime<Utc>) -> (Vec<SimOrganization>, Vec<SimDevice>) {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let orgs: Vec<SimOrganization> = (0..spec.organizations)
        .map(|o| SimOrganization { id: 2 + o as i64, name: format!("Customer {:03}", o + 1) })
        .collect();
    let now_s = now.timestamp() as f64;
    let devices = (0..spec.devices)
        .map(|i| {
            let class = CLASSES[i % CLASSES.len()];
            let org = if orgs.is_empty() { 0 } else { orgs[i % orgs.len()].id };
            let disk = [128, 256, 512, 1024][i % 4];
            SimDevice {
                id: 1000 + i as i64,
                organization_id: org,
                node_class: class,
                name: format!("{}-{:05}", if class.contains("SERVER") { "SRV" } else { "WS" }, i),
                serial: format!("NJ{:08X}", rng.random::<u32>()),
                offline: i % 7 == 3,
                approved: i % 23 != 5,
                last_contact: now_s - rng.random_range(0.0..3.0 * 86_400.0),
                last_boot: now_s - rng.random_range(600.0..20.0 * 86_400.0),
                ram_gib: [8, 16, 32, 64][i % 4],
                cores: [4, 8, 12, 16][i % 4],
                disk_gib: disk,
                free_gib: disk / (2 + (i % 5) as u32),
                user: format!("CORP\\user{i}"),
            }
        })
        .collect();
    (orgs, devices)
}

const GIB: u64 = 1 << 30;

/// A device as the detailed listing and the detail route send it.
pub fn render_device(d: &SimDevice, orgs: &[SimOrganization]) -> Value {
    let windows = d.node_class.starts_with("WINDOWS") || d.node_class.starts_with("HYPERV");
    let (os_name, manufacturer) = match d.node_class {
        "MAC" => ("macOS Sequoia", "Apple Inc."),
        c if c.starts_with("LINUX") => ("Ubuntu 24.04.1 LTS", "Canonical"),
        c if c.contains("SERVER") || c.contains("GUEST") => ("Windows Server 2022 Standard", "Microsoft Corporation"),
        _ => ("Windows 11 Professional Edition", "Microsoft Corporation"),
    };
    let org_name = orgs.iter().find(|o| o.id == d.organization_id).map(|o| o.name.clone());
    let ip = format!("10.{}.{}.{}", d.id / 65_536 % 256, d.id / 256 % 256, d.id % 256);
    json!({
        "id": d.id,
        "parentDeviceId": null,
        "organizationId": d.organization_id,
        "locationId": d.organization_id * 10 + 1,
        "nodeClass": d.node_class,
        "nodeRoleId": 1,
        "rolePolicyId": 1,
        "policyId": 3,
        "approvalStatus": if d.approved { "APPROVED" } else { "PENDING" },
        "offline": d.offline,
        "displayName": d.name,
        "systemName": d.name,
        "dnsName": format!("{}.corp.example", d.name.to_lowercase()),
        "netbiosName": d.name,
        "created": 1_700_000_000.25,
        "lastContact": d.last_contact,
        "lastUpdate": d.last_contact,
        "publicIP": format!("203.0.113.{}", d.id % 250 + 1),
        "ipAddresses": ["fe80::1", ip],
        "macAddresses": [format!("02:00:00:{:02x}:{:02x}:{:02x}", d.id >> 16 & 255, d.id >> 8 & 255, d.id & 255)],
        "references": {
            "organization": {"id": d.organization_id, "name": org_name},
            "location": {"id": d.organization_id * 10 + 1, "name": "Main office"},
        },
        "os": {
            "manufacturer": manufacturer,
            "name": os_name,
            "architecture": "64-bit",
            "lastBootTime": d.last_boot,
            "buildNumber": if windows { json!("20348") } else { json!(null) },
            "releaseId": if windows { json!("2009") } else { json!(null) },
            "locale": "en-US",
            "language": "English",
            "needsReboot": false,
        },
        "system": {
            "name": d.name,
            "manufacturer": if d.node_class == "MAC" { "Apple Inc." } else { "Dell Inc." },
            "model": if d.node_class.contains("GUEST") { "Virtual Machine" } else { "OptiPlex 7010" },
            "biosSerialNumber": d.serial,
            "serialNumber": d.serial,
            "domain": "corp.example",
            "domainRole": if d.node_class.contains("SERVER") { "MEMBER_SERVER" } else { "MEMBER_WORKSTATION" },
            "numberOfProcessors": 1,
            "totalPhysicalMemory": u64::from(d.ram_gib) * GIB,
            "virtualMachine": d.node_class.contains("GUEST"),
            "chassisType": "DESKTOP",
        },
        "memory": {"capacity": u64::from(d.ram_gib) * GIB},
        "processors": [{
            "architecture": "x64", "maxClockSpeed": 3_400_000_000u64, "clockSpeed": 2_400_000_000u64,
            "name": "Intel(R) Core(TM) i7-1365U", "numCores": d.cores, "numLogicalCores": d.cores * 2,
        }],
        "volumes": [
            {"name": "C:", "label": "OS", "deviceType": "Local Disk", "fileSystem": "NTFS", "autoMount": true,
             "compressed": false, "capacity": u64::from(d.disk_gib) * GIB, "freeSpace": u64::from(d.free_gib) * GIB},
            {"name": "E:", "label": "DVD", "deviceType": "CD-ROM", "capacity": 0, "freeSpace": 0},
        ],
        "lastLoggedInUser": d.user,
    })
}

/// The handle tests drive the simulator with.
#[derive(Clone)]
pub struct NinjaHandle {
    data: Arc<SimData>,
    base_url: String,
}

/// A running simulator; stops when dropped.
pub struct NinjaSim {
    handle: NinjaHandle,
    _served: crate::Served,
}

impl std::ops::Deref for NinjaSim {
    type Target = NinjaHandle;
    fn deref(&self) -> &NinjaHandle {
        &self.handle
    }
}

impl NinjaSim {
    pub async fn start(config: NinjaSimConfig) -> std::io::Result<NinjaSim> {
        let now = config.now.unwrap_or_else(Utc::now);
        let (orgs, devices) = generate(&config.fleet, now);
        let alerts = devices
            .iter()
            .filter(|d| d.offline)
            .map(|d| {
                json!({
                    "uid": format!("c0ffee00-0000-4000-8000-{:012x}", d.id), "deviceId": d.id,
                    "message": format!("{} is offline", d.name), "severity": "MAJOR", "priority": "HIGH",
                    "sourceType": "CONDITION_AGENT_OFFLINE", "sourceName": "Agent offline", "statusCode": "TRIGGERED",
                    "createTime": d.last_contact + 300.0, "updateTime": d.last_contact + 300.0,
                })
            })
            .collect();
        let data = Arc::new(SimData {
            config,
            orgs: Mutex::new(orgs),
            devices: Mutex::new(devices),
            alerts: Mutex::new(alerts),
            tokens: Mutex::new(Tokens::default()),
            knobs: Mutex::new(Knobs::default()),
        });
        let mut base = String::new();
        let served = crate::serve(|b| {
            base = b;
            NinjaEndpoint { data: data.clone() }
        })
        .await?;
        Ok(NinjaSim { handle: NinjaHandle { data, base_url: base }, _served: served })
    }

    pub fn handle(&self) -> NinjaHandle {
        self.handle.clone()
    }
}

impl NinjaHandle {
    /// `http://127.0.0.1:<port>` (the instance URL).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn client_id(&self) -> &str {
        &self.data.config.client_id
    }

    pub fn client_secret(&self) -> &str {
        &self.data.config.client_secret
    }

    pub fn organizations(&self) -> Vec<SimOrganization> {
        lock(&self.data.orgs).clone()
    }

    pub fn devices(&self) -> Vec<SimDevice> {
        lock(&self.data.devices).clone()
    }

    pub fn device_count(&self) -> usize {
        lock(&self.data.devices).len()
    }

    /// Removes a device from NinjaOne.
    pub fn remove_device(&self, id: i64) {
        lock(&self.data.devices).retain(|d| d.id != id);
    }

    /// Changes a device in place.
    pub fn update_device(&self, id: i64, f: impl FnOnce(&mut SimDevice)) {
        if let Some(d) = lock(&self.data.devices).iter_mut().find(|d| d.id == id) {
            f(d);
        }
    }

    /// Every device's `lastContact` set to `at`.
    pub fn set_all_last_contact(&self, at: DateTime<Utc>) {
        for d in lock(&self.data.devices).iter_mut() {
            d.last_contact = at.timestamp() as f64;
        }
    }

    pub fn set_latency(&self, d: Duration) {
        lock(&self.data.knobs).latency = d;
    }

    /// Answer the next `times` `/v2` requests (`None`: every one) with `fault`.
    pub fn inject(&self, fault: NinjaFault, times: Option<u32>) {
        lock(&self.data.knobs).faults.push((fault, times));
    }

    pub fn clear_faults(&self) {
        lock(&self.data.knobs).faults.clear();
    }

    /// `METHOD /path?query` of every `/v2` request, in order.
    pub fn requests(&self) -> Vec<String> {
        lock(&self.data.knobs).log.clone()
    }

    /// Requests whose line starts with `prefix` (`"GET /v2/devices-detailed"`).
    pub fn request_count(&self, prefix: &str) -> usize {
        lock(&self.data.knobs).log.iter().filter(|r| r.starts_with(prefix)).count()
    }

    pub fn reset_log(&self) {
        lock(&self.data.knobs).log.clear();
        lock(&self.data.tokens).requests.clear();
    }

    /// The `grant_type` of every token request, in order.
    pub fn token_requests(&self) -> Vec<String> {
        lock(&self.data.tokens).requests.clone()
    }

    /// The configuration of the registered webhook, if any.
    pub fn webhook(&self) -> Option<Value> {
        lock(&self.data.knobs).webhook.clone()
    }

    /// Uids of the alerts reset through the API.
    pub fn resets(&self) -> Vec<String> {
        lock(&self.data.knobs).resets.clone()
    }

    pub fn alerts(&self) -> Vec<Value> {
        lock(&self.data.alerts).clone()
    }

    /// Issues a token pair as if the app had been authorized: AlgaPSA's credentials JSON
    /// (`access_token`, `refresh_token`, `expires_at` in ms, `instance_url`). `ttl` overrides the
    /// access token's lifetime (a token about to expire, or expired).
    pub fn authorize(&self, ttl: Option<chrono::Duration>) -> Value {
        let ttl = ttl.unwrap_or_else(|| chrono::Duration::from_std(self.data.config.token_ttl).unwrap_or_default());
        let (access, refresh) = issue(&mut lock(&self.data.tokens), ttl, true);
        json!({
            "access_token": access,
            "refresh_token": refresh,
            "expires_at": (Utc::now() + ttl).timestamp_millis(),
            "instance_url": self.base_url,
        })
    }

    /// Every access token expires now.
    pub fn expire_access_tokens(&self) {
        lock(&self.data.tokens).access.clear();
    }
}

fn issue(t: &mut Tokens, ttl: chrono::Duration, with_refresh: bool) -> (String, Option<String>) {
    t.issued += 1;
    let access = format!("at-{:06}-{:08x}", t.issued, rand::rng().random::<u32>());
    t.access.insert(access.clone(), Utc::now() + ttl);
    let refresh = with_refresh.then(|| {
        let r = format!("rt-{:06}-{:08x}", t.issued, rand::rng().random::<u32>());
        t.refresh.insert(r.clone());
        r
    });
    (access, refresh)
}

struct NinjaEndpoint {
    data: Arc<SimData>,
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    Response::builder().status(status).content_type("application/json").body(body.to_string())
}

const HTML: &str = "<!DOCTYPE html><html><head><title>NinjaOne</title></head><body>Sign in</body></html>";

fn params(query: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

impl Endpoint for NinjaEndpoint {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let path = req.uri().path().to_owned();
        let query = req.uri().query().unwrap_or("").to_owned();
        let method = req.method().clone();
        let body = req.take_body().into_vec().await.unwrap_or_default();
        if path == "/oauth/authorize" {
            return Ok(self.authorize(&params(&query)));
        }
        if path == "/oauth/token" && method == Method::POST {
            return Ok(self.token(&params(&String::from_utf8_lossy(&body))));
        }
        let auth = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let (latency, fault) = {
            let mut k = lock(&self.data.knobs);
            k.log.push(if query.is_empty() { format!("{method} {path}") } else { format!("{method} {path}?{query}") });
            let fault = match k.faults.first_mut() {
                Some((f, Some(n))) => {
                    let f = f.clone();
                    *n -= 1;
                    if *n == 0 {
                        k.faults.remove(0);
                    }
                    Some(f)
                }
                Some((f, None)) => Some(f.clone()),
                None => None,
            };
            (k.latency, fault)
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        match &fault {
            Some(NinjaFault::Status(code)) => {
                let status = StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                return Ok(json_response(status, &json!({"resultCode": "FAILURE", "errorMessage": "simulated"})));
            }
            Some(NinjaFault::RateLimited(after)) => {
                return Ok(Response::builder()
                    .status(StatusCode::TOO_MANY_REQUESTS)
                    .header(header::RETRY_AFTER, after.as_str())
                    .content_type("application/json")
                    .body("{\"error\":\"rate limit exceeded\"}"));
            }
            Some(NinjaFault::Html) => {
                return Ok(Response::builder().status(StatusCode::OK).content_type("text/html").body(HTML));
            }
            Some(NinjaFault::ExpireTokens) => lock(&self.data.tokens).access.clear(),
            Some(NinjaFault::Truncated) | Some(NinjaFault::Pass) | None => {}
        }
        let token = auth.as_deref().and_then(|a| a.strip_prefix("Bearer ")).unwrap_or("");
        let valid = lock(&self.data.tokens).access.get(token).is_some_and(|exp| *exp > Utc::now());
        if !valid {
            return Ok(json_response(StatusCode::UNAUTHORIZED, &json!({"error": "invalid_token"})));
        }
        let answer = self.route(&method, &path, &params(&query), &body);
        if fault == Some(NinjaFault::Truncated) && answer.0 == StatusCode::OK {
            let full = answer.1.to_string();
            return Ok(Response::builder()
                .status(StatusCode::OK)
                .content_type("application/json")
                .body(full.as_bytes()[..full.len() / 2].to_vec()));
        }
        Ok(json_response(answer.0, &answer.1))
    }
}

impl NinjaEndpoint {
    fn authorize(&self, p: &HashMap<String, String>) -> Response {
        if p.get("client_id").map(String::as_str) != Some(self.data.config.client_id.as_str())
            || p.get("response_type").map(String::as_str) != Some("code")
        {
            return json_response(StatusCode::BAD_REQUEST, &json!({"error": "invalid_request"}));
        }
        let code = format!("code-{:08x}", rand::rng().random::<u32>());
        lock(&self.data.tokens).codes.insert(code.clone());
        let mut target = match url::Url::parse(p.get("redirect_uri").map(String::as_str).unwrap_or("")) {
            Ok(u) => u,
            Err(_) => return json_response(StatusCode::BAD_REQUEST, &json!({"error": "invalid_request"})),
        };
        target.query_pairs_mut().append_pair("code", &code);
        if let Some(state) = p.get("state") {
            target.query_pairs_mut().append_pair("state", state);
        }
        Response::builder().status(StatusCode::FOUND).header(header::LOCATION, target.as_str()).finish()
    }

    fn token(&self, p: &HashMap<String, String>) -> Response {
        let grant = p.get("grant_type").cloned().unwrap_or_default();
        let mut t = lock(&self.data.tokens);
        t.requests.push(grant.clone());
        if p.get("client_id") != Some(&self.data.config.client_id)
            || p.get("client_secret") != Some(&self.data.config.client_secret)
        {
            return json_response(StatusCode::UNAUTHORIZED, &json!({"error": "invalid_client"}));
        }
        let ttl = chrono::Duration::from_std(self.data.config.token_ttl).unwrap_or_default();
        let invalid = || json_response(StatusCode::BAD_REQUEST, &json!({"error": "invalid_grant"}));
        let (access, refresh) = match grant.as_str() {
            "authorization_code" => {
                let code = p.get("code").cloned().unwrap_or_default();
                if !t.codes.remove(&code) {
                    return invalid();
                }
                issue(&mut t, ttl, true)
            }
            "refresh_token" => {
                let old = p.get("refresh_token").cloned().unwrap_or_default();
                if !t.refresh.remove(&old) {
                    return invalid();
                }
                t.spent.insert(old);
                issue(&mut t, ttl, true)
            }
            "client_credentials" => issue(&mut t, ttl, false),
            _ => return json_response(StatusCode::BAD_REQUEST, &json!({"error": "unsupported_grant_type"})),
        };
        let mut body = json!({
            "access_token": access, "token_type": "Bearer", "expires_in": ttl.num_seconds(),
            "scope": p.get("scope").cloned().unwrap_or_else(|| "monitoring management offline_access".into()),
        });
        if let Some(r) = refresh {
            body["refresh_token"] = json!(r);
        }
        json_response(StatusCode::OK, &body)
    }

    fn route(&self, method: &Method, path: &str, p: &HashMap<String, String>, body: &[u8]) -> (StatusCode, Value) {
        let page_size = p.get("pageSize").and_then(|s| s.parse::<usize>().ok()).unwrap_or(1000).clamp(1, 1000);
        let after = p.get("after").and_then(|s| s.parse::<i64>().ok()).unwrap_or(i64::MIN);
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        match (method.as_str(), segments.as_slice()) {
            ("GET", ["v2", "organizations"]) => {
                let orgs = lock(&self.data.orgs);
                let page: Vec<Value> = orgs
                    .iter()
                    .filter(|o| o.id > after)
                    .take(page_size)
                    .map(|o| json!({"id": o.id, "name": o.name, "description": null, "nodeApprovalMode": "AUTOMATIC"}))
                    .collect();
                (StatusCode::OK, Value::Array(page))
            }
            ("GET", ["v2", "devices-detailed"]) => {
                let org = p
                    .get("df")
                    .and_then(|df| df.strip_prefix("org"))
                    .map(|r| r.trim().trim_start_matches('=').trim())
                    .and_then(|id| id.parse::<i64>().ok());
                let orgs = lock(&self.data.orgs).clone();
                let devices = lock(&self.data.devices);
                let page: Vec<Value> = devices
                    .iter()
                    .filter(|d| org.is_none_or(|o| d.organization_id == o) && d.id > after)
                    .take(page_size)
                    .map(|d| render_device(d, &orgs))
                    .collect();
                (StatusCode::OK, Value::Array(page))
            }
            ("GET", ["v2", "device", id]) => {
                let orgs = lock(&self.data.orgs).clone();
                let devices = lock(&self.data.devices);
                match find_device(&devices, id) {
                    Some(d) => (StatusCode::OK, render_device(d, &orgs)),
                    None => {
                        (StatusCode::NOT_FOUND, json!({"resultCode": "FAILURE", "errorMessage": "Device not found"}))
                    }
                }
            }
            ("GET", ["v2", "device", id, report @ ("software" | "os-patches" | "software-patches")]) => {
                let devices = lock(&self.data.devices);
                match find_device(&devices, id) {
                    Some(d) => (StatusCode::OK, Value::Array(self.device_rows(report, d))),
                    None => {
                        (StatusCode::NOT_FOUND, json!({"resultCode": "FAILURE", "errorMessage": "Device not found"}))
                    }
                }
            }
            ("GET", ["v2", "alerts"]) => (StatusCode::OK, Value::Array(lock(&self.data.alerts).clone())),
            ("POST", ["v2", "alert", uid, "reset"]) => {
                let mut alerts = lock(&self.data.alerts);
                let before = alerts.len();
                alerts.retain(|a| a["uid"] != json!(uid));
                if alerts.len() == before {
                    return (StatusCode::NOT_FOUND, json!({"resultCode": "FAILURE"}));
                }
                lock(&self.data.knobs).resets.push((*uid).to_owned());
                (StatusCode::NO_CONTENT, Value::Null)
            }
            ("PUT", ["v2", "webhook"]) => match serde_json::from_slice::<Value>(body) {
                Ok(v) if v.get("url").and_then(Value::as_str).is_some() => {
                    lock(&self.data.knobs).webhook = Some(v);
                    (StatusCode::NO_CONTENT, Value::Null)
                }
                _ => (StatusCode::BAD_REQUEST, json!({"resultCode": "FAILURE", "errorMessage": "url is required"})),
            },
            ("DELETE", ["v2", "webhook"]) => {
                lock(&self.data.knobs).webhook = None;
                (StatusCode::NO_CONTENT, Value::Null)
            }
            ("GET", ["v2", "queries", report @ ("software" | "os-patches" | "software-patches")]) => {
                let offset = p
                    .get("cursor")
                    .and_then(|c| c.strip_prefix("cur-"))
                    .and_then(|c| c.parse::<usize>().ok())
                    .unwrap_or(0);
                let page = self.report_page(report, offset, page_size);
                let next = offset + page.len();
                (
                    StatusCode::OK,
                    json!({
                        "cursor": {"name": format!("cur-{next}"), "offset": offset, "count": page.len(), "expires": Utc::now().timestamp() + 600},
                        "results": page,
                    }),
                )
            }
            _ => (StatusCode::NOT_FOUND, json!({"resultCode": "FAILURE", "errorMessage": "Not found"})),
        }
    }

    /// Rows `offset..offset + limit` of a query report over every device (only the page's rows are
    /// rendered, so paging a large fleet stays linear).
    fn report_page(&self, report: &str, offset: usize, limit: usize) -> Vec<Value> {
        let devices = lock(&self.data.devices);
        let (mut seen, mut page) = (0usize, Vec::new());
        for d in devices.iter() {
            let n = self.device_row_count(report, d);
            if seen + n > offset {
                let rows = self.device_rows(report, d);
                page.extend(rows.into_iter().skip(offset.saturating_sub(seen)).take(limit - page.len()));
                if page.len() >= limit {
                    break;
                }
            }
            seen += n;
        }
        page
    }

    fn device_row_count(&self, report: &str, d: &SimDevice) -> usize {
        let spec = &self.data.config.fleet;
        match report {
            "software" => spec.software_per_device,
            "os-patches" if d.id % 3 != 0 => spec.patches_per_device,
            "software-patches" if d.id % 2 == 0 => 1,
            _ => 0,
        }
    }

    /// One device's rows of a report.
    fn device_rows(&self, report: &str, d: &SimDevice) -> Vec<Value> {
        let spec = &self.data.config.fleet;
        let mut rows = Vec::new();
        if report == "software" {
            for s in 0..spec.software_per_device {
                rows.push(json!({
                    "deviceId": d.id, "name": format!("App {s}"), "publisher": "Example Corp",
                    "version": format!("{}.{}.{}", s + 1, d.id % 10, s), "installDate": "2025-03-04",
                    "location": format!("C:\\Program Files\\App {s}"), "size": 1_048_576 * (s + 1),
                    "productCode": format!("{{{:08X}-0000-0000-0000-{:012X}}}", s, d.id), "timestamp": d.last_contact,
                }));
            }
        } else if report == "os-patches" && d.id % 3 != 0 {
            for k in 0..spec.patches_per_device {
                rows.push(json!({
                    "deviceId": d.id, "id": format!("patch-{}-{k}", d.id), "name": format!("KB50{:05} cumulative update", k),
                    "severity": if k == 0 { "CRITICAL" } else { "IMPORTANT" },
                    "status": os_patch_status(d.id, k),
                    "type": "SECURITY_UPDATES", "kbNumber": format!("KB50{:05}", k), "timestamp": d.last_contact,
                }));
            }
        } else if report == "software-patches" && d.id % 2 == 0 {
            rows.push(json!({
                "deviceId": d.id, "id": format!("swpatch-{}", d.id), "productIdentifier": "example-browser",
                "title": "Example Browser", "impact": "CRITICAL", "status": if d.id % 4 == 0 { "FAILED" } else { "PENDING" },
                "type": "PATCH", "version": "128.0.1", "timestamp": d.last_contact,
            }));
        }
        rows
    }
}

/// A device by its id in the path (the fleet is kept in id order).
fn find_device<'a>(devices: &'a [SimDevice], id: &str) -> Option<&'a SimDevice> {
    let id = id.parse::<i64>().ok()?;
    devices.binary_search_by_key(&id, |d| d.id).ok().map(|i| &devices[i])
}

/// The status of a device's `k`-th OS patch: the last one of every fifth device `FAILED`, the last
/// one of every seventh `REJECTED`, the others `PENDING` or `MANUAL`.
fn os_patch_status(device: i64, k: usize) -> &'static str {
    if k > 0 && device % 5 == 0 {
        "FAILED"
    } else if k > 0 && device % 7 == 0 {
        "REJECTED"
    } else if k.is_multiple_of(2) {
        "PENDING"
    } else {
        "MANUAL"
    }
}

/// What the patch reports hold for one device: `(pending OS, pending software, failed)`, counting
/// as rmm-sync should (`FAILED` apart, `REJECTED` not at all).
pub fn expected_patch_counts(spec: &NinjaFleetSpec, device: i64) -> (i64, i64, i64) {
    let (mut os, mut failed) = (0, 0);
    if device % 3 != 0 {
        for k in 0..spec.patches_per_device {
            match os_patch_status(device, k) {
                "FAILED" => failed += 1,
                "REJECTED" => {}
                _ => os += 1,
            }
        }
    }
    let sw = i64::from(device % 2 == 0 && device % 4 != 0);
    failed += i64::from(device % 4 == 0);
    (os, sw, failed)
}
