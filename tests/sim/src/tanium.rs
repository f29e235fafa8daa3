//! A Tanium API Gateway simulator: a real GraphQL server (async-graphql) on 127.0.0.1 serving the
//! schema subset of `shared/graphql/tanium/gateway.graphql` at `/plugin/products/gateway/graphql`,
//! plus the Asset API listing at `/plugin/products/asset/v1/assets`.
//!
//! Deterministic from a seed: computer groups, endpoints with group membership (some in two
//! groups), Relay cursor paging with `totalRecords`, the "Last Reboot" (RFC 2822 text) and
//! "Endpoint Criticality with Level" sensors. Switches: latency, injected HTTP answers (401, 403,
//! 302 to a login page, HTML 200, any status, a truncated answer, a number of times or always), a
//! wrong token (403), GraphQL errors for one group or one operation, partial data (an endpoint
//! field that errors), a page with `hasNextPage: true` and a null cursor, a refused `eidLastSeen`
//! filter, and fleet changes (remove an endpoint).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_graphql::{
    Context, EmptyMutation, EmptySubscription, Enum, Error, InputObject, Object, Result as GqlResult, Schema,
    SimpleObject,
};
use chrono::{DateTime, Utc};
use poem::http::{StatusCode, header};
use poem::{Endpoint, Request, Response};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The token the simulator accepts by default.
pub const DEFAULT_TOKEN: &str = "token-sim-4f9e2a7c1b3d5e6f";
/// Where the Gateway answers.
pub const GATEWAY_PATH: &str = "/plugin/products/gateway/graphql";
/// Where the Asset API listing answers.
pub const ASSET_PATH: &str = "/plugin/products/asset/v1/assets";
/// The login page a 302 points at (Tanium Cloud's OpenID provider).
pub const LOGIN_URL: &str = "https://auth.titankube.com/realms/partners/protocol/openid-connect/auth";
pub const CRITICALITY_SENSOR: &str = "Endpoint Criticality with Level";
pub const REBOOT_SENSOR: &str = "Last Reboot";

/// Fleet shape.
#[derive(Debug, Clone)]
pub struct TaniumFleetSpec {
    pub seed: u64,
    pub groups: usize,
    pub endpoints: usize,
    /// Endpoints that are also members of a second group.
    pub in_two_groups: usize,
    /// Installed applications per endpoint.
    pub apps_per_endpoint: usize,
}

impl Default for TaniumFleetSpec {
    fn default() -> Self {
        TaniumFleetSpec { seed: 7, groups: 3, endpoints: 12, in_two_groups: 2, apps_per_endpoint: 3 }
    }
}

/// One simulated endpoint.
#[derive(Debug, Clone)]
pub struct SimEndpoint {
    pub id: String,
    pub name: String,
    pub serial: String,
    pub manufacturer: String,
    pub model: String,
    pub chassis: String,
    pub os_name: String,
    pub os_generation: Option<String>,
    pub os_platform: String,
    pub ip: String,
    pub nat_ip: String,
    pub mac: String,
    pub primary_user: String,
    pub last_logged_in_user: String,
    pub memory_total: String,
    pub cpu: String,
    pub logical_processors: i32,
    pub disks: Vec<(String, String, String, String)>,
    pub apps: Vec<(String, String, bool)>,
    pub last_seen: DateTime<Utc>,
    pub last_reboot: Option<String>,
    pub criticality: Option<String>,
    /// Group ids, the first is the endpoint's own group.
    pub groups: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct SimGroup {
    pub id: String,
    pub name: String,
}

/// The generated fleet.
#[derive(Debug, Clone)]
pub struct TaniumFleet {
    pub groups: Vec<SimGroup>,
    pub endpoints: Vec<SimEndpoint>,
}

impl TaniumFleet {
    pub fn generate(spec: &TaniumFleetSpec, now: DateTime<Utc>) -> TaniumFleet {
        let mut rng = StdRng::seed_from_u64(spec.seed);
        let groups: Vec<SimGroup> = (0..spec.groups)
            .map(|g| SimGroup { id: (30_000 + g * 7).to_string(), name: format!("Customer {:02}", g + 1) })
            .collect();
        let oses = [
            ("Windows 11 Enterprise", Some("Windows 11"), "Windows"),
            ("Windows Server 2022 Standard", Some("Windows Server 2022"), "Windows"),
            ("macOS (26.3.1 (a))", Some("macOS 26.3"), "Mac"),
            ("Ubuntu 24.04 LTS", None, "Linux"),
        ];
        let mut endpoints = Vec::with_capacity(spec.endpoints);
        for i in 0..spec.endpoints {
            let own = if groups.is_empty() { Vec::new() } else { vec![groups[i % groups.len()].id.clone()] };
            let (os_name, generation, platform) = oses[i % oses.len()];
            let boot = now - chrono::Duration::seconds(rng.random_range(600..30 * 86_400));
            let seen = now - chrono::Duration::seconds(rng.random_range(0..7 * 86_400));
            endpoints.push(SimEndpoint {
                id: (100_000 + i).to_string(),
                name: format!("{}-{:05}", if platform == "Mac" { "mac" } else { "host" }, i),
                serial: format!("SER{:08X}", rng.random::<u32>()),
                manufacturer: if platform == "Mac" { "Apple" } else { "Dell Inc." }.into(),
                model: if platform == "Mac" { "Mac16,5" } else { "OptiPlex 7010" }.into(),
                chassis: if i % 3 == 0 { "Laptop" } else { "Desktop" }.into(),
                os_name: os_name.into(),
                os_generation: generation.map(str::to_owned),
                os_platform: platform.into(),
                ip: format!("10.{}.{}.{}", i / 65_536 % 256, i / 256 % 256, i % 256),
                nat_ip: format!("203.0.113.{}", i % 250 + 1),
                mac: format!("02:00:{:02x}:{:02x}:{:02x}:{:02x}", i >> 24 & 255, i >> 16 & 255, i >> 8 & 255, i & 255),
                primary_user: if i % 5 == 0 {
                    "Error: No inventory has been collected".into()
                } else {
                    format!("user{i}")
                },
                last_logged_in_user: format!("CORP\\user{i}"),
                memory_total: format!("{} GB", [8, 16, 32, 48][i % 4]),
                cpu: "Intel(R) Core(TM) i7-1365U 2.4GHz".into(),
                logical_processors: [4, 8, 12, 16][i % 4],
                disks: vec![("C:".into(), format!("{}G", 20 + i % 200), "476G".into(), format!("{}%", 10 + i % 80))],
                apps: (0..spec.apps_per_endpoint)
                    .map(|a| (format!("App {a}"), format!("{}.{}.{}", a + 1, i % 10, a), a % 2 == 0))
                    .collect(),
                last_seen: seen,
                last_reboot: Some(boot.to_rfc2822()),
                criticality: Some(["Low", "Medium", "High", "Critical"][i % 4].to_owned()),
                groups: own,
            });
        }
        // Some endpoints are also in the next group (overlapping groups).
        if groups.len() > 1 {
            for (k, ep) in endpoints.iter_mut().take(spec.in_two_groups).enumerate() {
                let own = ep.groups[0].clone();
                let pos = groups.iter().position(|g| g.id == own).unwrap_or(0);
                let other = groups[(pos + 1 + k % (groups.len() - 1)) % groups.len()].id.clone();
                if other != own {
                    ep.groups.push(other);
                }
            }
        }
        TaniumFleet { groups, endpoints }
    }
}

/// An HTTP-level answer injected in place of the GraphQL one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaniumFault {
    /// 302 to the login page.
    RedirectToLogin,
    /// 200 with an HTML login page.
    HtmlLogin,
    /// This status with a JSON body.
    Status(u16),
    /// 429 with this `Retry-After`.
    RateLimited(String),
    /// The normal answer cut in half (still `200 application/json`).
    Truncated,
}

/// Simulator settings.
#[derive(Debug, Clone)]
pub struct TaniumSimConfig {
    pub fleet: TaniumFleetSpec,
    pub token: String,
    pub now: Option<DateTime<Utc>>,
}

impl Default for TaniumSimConfig {
    fn default() -> Self {
        TaniumSimConfig { fleet: TaniumFleetSpec::default(), token: DEFAULT_TOKEN.into(), now: None }
    }
}

/// One GraphQL request as seen.
#[derive(Debug, Clone)]
pub struct GraphQlRecord {
    pub operation: Option<String>,
    pub query: String,
    pub variables: Value,
    pub status: u16,
}

#[derive(Default)]
struct Knobs {
    latency: Duration,
    faults: Vec<(TaniumFault, Option<u32>)>,
    failing_groups: HashSet<String>,
    failing_operations: HashSet<String>,
    refuse_last_seen_filter: bool,
    partial_data_endpoint: Option<String>,
    null_cursor_after_pages: Option<usize>,
    criticality_visible: bool,
    asset_rows: Vec<Value>,
    log: Vec<GraphQlRecord>,
    asset_requests: Vec<String>,
    /// Every HTTP request, answered or failed on purpose.
    http_requests: u64,
}

struct SimData {
    config: TaniumSimConfig,
    fleet: Mutex<TaniumFleet>,
    knobs: Mutex<Knobs>,
}

impl SimData {
    fn knobs(&self) -> MutexGuard<'_, Knobs> {
        self.knobs.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn fleet(&self) -> MutexGuard<'_, TaniumFleet> {
        self.fleet.lock().unwrap_or_else(|e| e.into_inner())
    }
}

// ---------------------------------------------------------------------------------------------
// The GraphQL schema.

/// `Cursor` scalar.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cursor(pub String);
async_graphql::scalar!(Cursor, "Cursor", "Opaque Relay cursor.");

/// `Time` scalar.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Time(pub String);
async_graphql::scalar!(Time, "Time", "RFC 3339 date-time.");

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum FieldFilterOp {
    Contains,
    EndsWith,
    Eq,
    Gt,
    Gte,
    Lt,
    Lte,
    Matches,
    StartsWith,
}

#[derive(InputObject, Debug, Clone)]
pub struct ComputerGroupRef {
    pub id: Option<async_graphql::ID>,
    pub name: Option<String>,
}

#[derive(InputObject, Debug, Clone)]
pub struct SensorParam {
    pub name: String,
    pub value: String,
}

#[derive(InputObject, Debug, Clone)]
pub struct EndpointSensorRef {
    pub name: String,
    pub params: Option<Vec<SensorParam>>,
}

#[derive(InputObject, Debug, Clone)]
pub struct EndpointFieldFilter {
    pub path: Option<String>,
    pub value: Option<String>,
    pub op: Option<FieldFilterOp>,
    pub negated: Option<bool>,
    pub any: Option<bool>,
    pub member_of: Option<ComputerGroupRef>,
    pub sensor: Option<EndpointSensorRef>,
    pub filters: Option<Vec<EndpointFieldFilter>>,
}

#[derive(InputObject, Debug, Clone)]
pub struct FieldFilter {
    pub path: Option<String>,
    pub value: Option<String>,
    pub op: Option<FieldFilterOp>,
    pub negated: Option<bool>,
    pub any: Option<bool>,
    pub filters: Option<Vec<FieldFilter>>,
}

#[derive(SimpleObject)]
pub struct PageInfo {
    has_next_page: bool,
    has_previous_page: bool,
    start_cursor: Option<Cursor>,
    end_cursor: Option<Cursor>,
}

#[derive(SimpleObject)]
pub struct ComputerGroupConnection {
    edges: Vec<ComputerGroupEdge>,
    page_info: PageInfo,
    total_records: Option<i32>,
}

#[derive(SimpleObject)]
pub struct ComputerGroupEdge {
    cursor: Cursor,
    node: Option<ComputerGroup>,
}

#[derive(SimpleObject)]
pub struct ComputerGroup {
    id: async_graphql::ID,
    name: Option<String>,
}

#[derive(SimpleObject)]
pub struct EndpointConnection {
    edges: Vec<EndpointEdge>,
    page_info: PageInfo,
    total_records: Option<i32>,
}

#[derive(SimpleObject)]
pub struct EndpointEdge {
    cursor: Cursor,
    node: Option<EndpointNode>,
}

#[derive(SimpleObject)]
pub struct User {
    name: Option<String>,
    email: Option<String>,
}

#[derive(SimpleObject)]
pub struct OperatingSystem {
    name: Option<String>,
    generation: Option<String>,
    platform: Option<String>,
}

#[derive(SimpleObject)]
pub struct Memory {
    total: Option<String>,
}

#[derive(SimpleObject)]
pub struct Processor {
    cpu: Option<String>,
    logical_processors: Option<i32>,
}

#[derive(SimpleObject)]
pub struct Disk {
    name: Option<String>,
    free: Option<String>,
    total: Option<String>,
    used_percentage: Option<String>,
}

#[derive(SimpleObject)]
pub struct Discover {
    nat_ip_address: Option<String>,
}

#[derive(SimpleObject)]
pub struct Networking {
    dns_servers: Option<Vec<Option<String>>>,
    adapters: Option<Vec<Option<NetworkAdapter>>>,
    wireless_adapters: Option<Vec<Option<WirelessAdapter>>>,
}

#[derive(SimpleObject)]
pub struct NetworkAdapter {
    name: Option<String>,
    manufacturer: Option<String>,
    r#type: Option<String>,
    mac_address: Option<String>,
    speed: Option<String>,
    connection_id: Option<String>,
}

#[derive(SimpleObject)]
pub struct WirelessAdapter {
    ssid: Option<String>,
    state: Option<String>,
}

#[derive(SimpleObject)]
pub struct InstalledApplication {
    name: Option<String>,
    version: Option<String>,
    uninstallable: Option<bool>,
}

#[derive(SimpleObject)]
pub struct SensorReading {
    values: Option<Vec<Option<String>>>,
}

#[derive(SimpleObject)]
pub struct SensorReadings {
    columns: Option<Vec<Option<SensorReadingColumn>>>,
}

#[derive(SimpleObject)]
pub struct SensorReadingColumn {
    name: Option<String>,
    values: Option<Vec<Option<String>>>,
}

#[derive(SimpleObject)]
pub struct SensorConnection {
    edges: Vec<SensorEdge>,
    page_info: PageInfo,
}

#[derive(SimpleObject)]
pub struct SensorEdge {
    cursor: Cursor,
    node: Option<Sensor>,
}

#[derive(SimpleObject)]
pub struct Sensor {
    name: Option<String>,
    description: Option<String>,
    value_type: Option<String>,
    r#virtual: Option<bool>,
    harvested: Option<bool>,
    content_set_name: Option<String>,
    columns: Option<Vec<Option<SensorColumn>>>,
}

#[derive(SimpleObject)]
pub struct SensorColumn {
    name: Option<String>,
    value_type: Option<String>,
    hidden: Option<bool>,
}

/// An endpoint node: a copy of the simulated endpoint.
pub struct EndpointNode {
    ep: SimEndpoint,
    data: Arc<SimData>,
}

#[Object(name = "Endpoint")]
impl EndpointNode {
    async fn id(&self) -> async_graphql::ID {
        async_graphql::ID(self.ep.id.clone())
    }
    async fn name(&self) -> Option<String> {
        Some(self.ep.name.clone())
    }
    async fn serial_number(&self) -> Option<String> {
        Some(self.ep.serial.clone())
    }
    async fn manufacturer(&self) -> Option<String> {
        Some(self.ep.manufacturer.clone())
    }
    async fn model(&self) -> Option<String> {
        Some(self.ep.model.clone())
    }
    async fn chassis_type(&self) -> Option<String> {
        Some(self.ep.chassis.clone())
    }
    async fn domain_name(&self) -> Option<String> {
        Some("No Domain".into())
    }
    async fn eid_last_seen(&self) -> Option<Time> {
        Some(Time(self.ep.last_seen.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
    }
    async fn ip_address(&self) -> Option<String> {
        Some(self.ep.ip.clone())
    }
    async fn ip_addresses(&self) -> Option<Vec<Option<String>>> {
        Some(vec![Some(self.ep.ip.clone()), Some("fe80::1".into()), Some(" ".into())])
    }
    async fn mac_addresses(&self) -> Option<Vec<Option<String>>> {
        Some(vec![Some(self.ep.mac.clone()), None])
    }
    async fn last_logged_in_user(&self) -> Option<String> {
        Some(self.ep.last_logged_in_user.clone())
    }
    #[graphql(name = "reportingConsoleURL")]
    async fn reporting_console_url(&self) -> Option<String> {
        Some(format!("https://sim.cloud.tanium.com/#/thinserver/endpoints/{}", self.ep.id))
    }
    async fn is_virtual(&self) -> Option<bool> {
        Some(false)
    }
    async fn is_encrypted(&self) -> Option<bool> {
        Some(true)
    }
    async fn primary_user(&self) -> Option<User> {
        Some(User { name: Some(self.ep.primary_user.clone()), email: None })
    }
    async fn os(&self) -> Option<OperatingSystem> {
        Some(OperatingSystem {
            name: Some(self.ep.os_name.clone()),
            generation: self.ep.os_generation.clone(),
            platform: Some(self.ep.os_platform.clone()),
        })
    }
    async fn memory(&self) -> Option<Memory> {
        Some(Memory { total: Some(self.ep.memory_total.clone()) })
    }
    async fn processor(&self) -> Option<Processor> {
        Some(Processor { cpu: Some(self.ep.cpu.clone()), logical_processors: Some(self.ep.logical_processors) })
    }
    async fn disks(&self) -> Option<Vec<Option<Disk>>> {
        Some(
            self.ep
                .disks
                .iter()
                .map(|(n, f, t, u)| {
                    Some(Disk {
                        name: Some(n.clone()),
                        free: Some(f.clone()),
                        total: Some(t.clone()),
                        used_percentage: Some(u.clone()),
                    })
                })
                .chain(std::iter::once(None))
                .collect(),
        )
    }
    async fn discover(&self) -> Option<Discover> {
        Some(Discover { nat_ip_address: Some(self.ep.nat_ip.clone()) })
    }
    async fn networking(&self) -> Option<Networking> {
        Some(Networking {
            dns_servers: Some(vec![Some("127.0.2.2".into()), Some("".into())]),
            adapters: Some(vec![
                Some(NetworkAdapter {
                    name: Some("Ethernet".into()),
                    manufacturer: Some("Intel".into()),
                    r#type: Some("Ethernet 802.3".into()),
                    mac_address: Some(self.ep.mac.clone()),
                    speed: Some("1000 Mbps".into()),
                    connection_id: Some("Ethernet".into()),
                }),
                None,
            ]),
            wireless_adapters: Some(vec![Some(WirelessAdapter {
                ssid: Some("corp".into()),
                state: Some("connected".into()),
            })]),
        })
    }
    async fn installed_applications(&self) -> GqlResult<Option<Vec<Option<InstalledApplication>>>> {
        if self.data.knobs().partial_data_endpoint.as_deref() == Some(self.ep.id.as_str()) {
            return Err(Error::new("Installed Applications sensor timed out for this endpoint"));
        }
        Ok(Some(
            self.ep
                .apps
                .iter()
                .map(|(n, v, u)| {
                    Some(InstalledApplication {
                        name: Some(n.clone()),
                        version: Some(v.clone()),
                        uninstallable: Some(*u),
                    })
                })
                .collect(),
        ))
    }
    async fn sensor_reading(&self, sensor: EndpointSensorRef) -> GqlResult<Option<SensorReading>> {
        if sensor.name != REBOOT_SENSOR {
            return Err(Error::new(format!("Sensor not found: {}", sensor.name)));
        }
        Ok(Some(SensorReading { values: Some(vec![self.ep.last_reboot.clone()]) }))
    }
    async fn sensor_readings(&self, sensors: Vec<EndpointSensorRef>) -> GqlResult<Option<SensorReadings>> {
        let mut columns = Vec::new();
        for s in sensors {
            if s.name != CRITICALITY_SENSOR || !self.data.knobs().criticality_visible {
                return Err(Error::new(format!("Sensor not found: {}", s.name)));
            }
            if let Some(level) = &self.ep.criticality {
                let mult = match level.as_str() {
                    "Low" => "1",
                    "Medium" => "1.33",
                    "High" => "1.67",
                    _ => "2",
                };
                columns.push(Some(SensorReadingColumn {
                    name: Some("Criticality Level".into()),
                    values: Some(vec![Some(level.clone())]),
                }));
                columns.push(Some(SensorReadingColumn {
                    name: Some("Criticality Value".into()),
                    values: Some(vec![Some(mult.into())]),
                }));
            }
        }
        Ok(Some(SensorReadings { columns: Some(columns) }))
    }
}

fn page_bounds(first: Option<i32>, after: Option<&Cursor>, len: usize) -> GqlResult<(usize, usize)> {
    let start = match after {
        None => 0,
        Some(c) => c.0.strip_prefix("cur-").and_then(|n| n.parse::<usize>().ok()).ok_or_else(|| {
            Error::new("Invalid cursor: the cursor has expired or does not belong to this collection")
        })?,
    };
    let first = first.unwrap_or(100).clamp(0, 1000) as usize;
    let end = (start + first).min(len);
    Ok((start.min(len), end))
}

fn page_info(start: usize, end: usize, len: usize) -> PageInfo {
    PageInfo {
        has_next_page: end < len,
        has_previous_page: start > 0,
        start_cursor: (end > start).then(|| Cursor(format!("cur-{}", start + 1))),
        end_cursor: (end > start).then(|| Cursor(format!("cur-{end}"))),
    }
}

fn compare(field: &str, value: &str, op: FieldFilterOp) -> bool {
    match op {
        FieldFilterOp::Eq => field == value,
        FieldFilterOp::Contains => field.contains(value),
        FieldFilterOp::StartsWith => field.starts_with(value),
        FieldFilterOp::EndsWith => field.ends_with(value),
        FieldFilterOp::Gt => field > value,
        FieldFilterOp::Gte => field >= value,
        FieldFilterOp::Lt => field < value,
        FieldFilterOp::Lte => field <= value,
        FieldFilterOp::Matches => field.contains(value),
    }
}

fn matches(ep: &SimEndpoint, f: &EndpointFieldFilter, groups: &[SimGroup], knobs: &Knobs) -> GqlResult<bool> {
    let mut results = Vec::new();
    if let Some(m) = &f.member_of {
        let by_id = m.id.as_ref().map(|id| ep.groups.contains(&id.0));
        let by_name = m.name.as_ref().map(|n| groups.iter().any(|g| &g.name == n && ep.groups.contains(&g.id)));
        results.push(by_id.or(by_name).unwrap_or(false));
    }
    if let Some(path) = &f.path {
        let value = f.value.clone().unwrap_or_default();
        let op = f.op.unwrap_or(FieldFilterOp::Eq);
        let ok = match path.as_str() {
            "eidLastSeen" => {
                if knobs.refuse_last_seen_filter {
                    return Err(Error::new("Field eidLastSeen cannot be used in a filter"));
                }
                let since = DateTime::parse_from_rfc3339(&value)
                    .map_err(|_| Error::new(format!("invalid time value {value:?}")))?
                    .with_timezone(&Utc);
                match op {
                    FieldFilterOp::Gte => ep.last_seen >= since,
                    FieldFilterOp::Gt => ep.last_seen > since,
                    FieldFilterOp::Lt => ep.last_seen < since,
                    FieldFilterOp::Lte => ep.last_seen <= since,
                    FieldFilterOp::Eq => ep.last_seen == since,
                    _ => return Err(Error::new("operator not supported for Time fields")),
                }
            }
            "name" => compare(&ep.name, &value, op),
            "id" => compare(&ep.id, &value, op),
            "serialNumber" => compare(&ep.serial, &value, op),
            other => return Err(Error::new(format!("Unknown filter path {other}"))),
        };
        results.push(ok);
    }
    if let Some(subs) = &f.filters {
        let mut sub = Vec::new();
        for s in subs {
            sub.push(matches(ep, s, groups, knobs)?);
        }
        results.push(if f.any == Some(true) { sub.iter().any(|b| *b) } else { sub.iter().all(|b| *b) });
    }
    let all = results.iter().all(|b| *b);
    Ok(if f.negated == Some(true) { !all } else { all })
}

fn group_ids(f: &EndpointFieldFilter, out: &mut Vec<String>) {
    if let Some(id) = f.member_of.as_ref().and_then(|m| m.id.as_ref()) {
        out.push(id.0.clone());
    }
    for s in f.filters.iter().flatten() {
        group_ids(s, out);
    }
}

pub struct Query;

#[Object]
impl Query {
    async fn computer_groups(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<Cursor>,
        #[graphql(name = "last")] _last: Option<i32>,
        #[graphql(name = "before")] _before: Option<Cursor>,
    ) -> GqlResult<ComputerGroupConnection> {
        let data = ctx.data_unchecked::<Arc<SimData>>();
        let groups = data.fleet().groups.clone();
        let (start, end) = page_bounds(first, after.as_ref(), groups.len())?;
        Ok(ComputerGroupConnection {
            edges: groups[start..end]
                .iter()
                .enumerate()
                .map(|(k, g)| ComputerGroupEdge {
                    cursor: Cursor(format!("cur-{}", start + k + 1)),
                    node: Some(ComputerGroup { id: async_graphql::ID(g.id.clone()), name: Some(g.name.clone()) }),
                })
                .collect(),
            page_info: page_info(start, end, groups.len()),
            total_records: Some(groups.len() as i32),
        })
    }

    async fn endpoints(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<Cursor>,
        #[graphql(name = "last")] _last: Option<i32>,
        #[graphql(name = "before")] _before: Option<Cursor>,
        filter: Option<EndpointFieldFilter>,
    ) -> GqlResult<EndpointConnection> {
        let data = ctx.data_unchecked::<Arc<SimData>>().clone();
        let selected: Vec<SimEndpoint> = {
            let knobs = data.knobs();
            let fleet = data.fleet();
            if let Some(f) = &filter {
                let mut ids = Vec::new();
                group_ids(f, &mut ids);
                if let Some(g) = ids.iter().find(|g| knobs.failing_groups.contains(*g)) {
                    return Err(Error::new(format!(
                        "Permission denied: computer group {g} is not in your content sets"
                    )));
                }
            }
            let mut out = Vec::new();
            for ep in &fleet.endpoints {
                let keep = match &filter {
                    Some(f) => matches(ep, f, &fleet.groups, &knobs)?,
                    None => true,
                };
                if keep {
                    out.push(ep.clone());
                }
            }
            out
        };
        let (start, end) = page_bounds(first, after.as_ref(), selected.len())?;
        let mut info = page_info(start, end, selected.len());
        let page_no = start / first.unwrap_or(100).max(1) as usize + 1;
        if let Some(n) = data.knobs().null_cursor_after_pages
            && page_no >= n
            && info.has_next_page
        {
            info.end_cursor = None;
        }
        let total = selected.len();
        Ok(EndpointConnection {
            edges: selected
                .into_iter()
                .skip(start)
                .take(end - start)
                .enumerate()
                .map(|(k, ep)| EndpointEdge {
                    cursor: Cursor(format!("cur-{}", start + k + 1)),
                    node: Some(EndpointNode { ep, data: data.clone() }),
                })
                .collect(),
            page_info: info,
            total_records: Some(total as i32),
        })
    }

    async fn sensors(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<Cursor>,
        filter: Option<FieldFilter>,
    ) -> GqlResult<SensorConnection> {
        let data = ctx.data_unchecked::<Arc<SimData>>();
        let mut all = vec![REBOOT_SENSOR];
        if data.knobs().criticality_visible {
            all.push(CRITICALITY_SENSOR);
        }
        let wanted: Vec<&str> = all
            .into_iter()
            .filter(|n| match &filter {
                Some(f) if f.path.as_deref() == Some("name") => {
                    compare(n, f.value.as_deref().unwrap_or(""), f.op.unwrap_or(FieldFilterOp::Eq))
                }
                _ => true,
            })
            .collect();
        let (start, end) = page_bounds(first, after.as_ref(), wanted.len())?;
        Ok(SensorConnection {
            edges: wanted[start..end]
                .iter()
                .enumerate()
                .map(|(k, n)| SensorEdge {
                    cursor: Cursor(format!("cur-{}", start + k + 1)),
                    node: Some(Sensor {
                        name: Some((*n).to_owned()),
                        description: Some(format!("{n} (simulated)")),
                        value_type: Some("String".into()),
                        r#virtual: Some(false),
                        harvested: Some(true),
                        content_set_name: Some("Base".into()),
                        columns: Some(if *n == CRITICALITY_SENSOR {
                            vec![
                                Some(SensorColumn {
                                    name: Some("Criticality Level".into()),
                                    value_type: Some("String".into()),
                                    hidden: Some(false),
                                }),
                                Some(SensorColumn {
                                    name: Some("Criticality Value".into()),
                                    value_type: Some("Numeric".into()),
                                    hidden: Some(false),
                                }),
                            ]
                        } else {
                            vec![Some(SensorColumn {
                                name: Some((*n).to_owned()),
                                value_type: Some("String".into()),
                                hidden: Some(false),
                            })]
                        }),
                    }),
                })
                .collect(),
            page_info: page_info(start, end, wanted.len()),
        })
    }
}

type GatewaySchema = Schema<Query, EmptyMutation, EmptySubscription>;

/// The simulator's schema as SDL (to compare with `shared/graphql/tanium/gateway.graphql`).
pub fn schema_sdl() -> String {
    Schema::build(Query, EmptyMutation, EmptySubscription).finish().sdl()
}

// ---------------------------------------------------------------------------------------------
// The server.

/// Control handle of a running simulator. Cheap to clone.
#[derive(Clone)]
pub struct TaniumHandle {
    data: Arc<SimData>,
    base_url: String,
}

/// A running simulator; stops when dropped.
pub struct TaniumSim {
    handle: TaniumHandle,
    served: crate::Served,
}

impl std::ops::Deref for TaniumSim {
    type Target = TaniumHandle;
    fn deref(&self) -> &TaniumHandle {
        &self.handle
    }
}

impl TaniumSim {
    pub async fn start(config: TaniumSimConfig) -> std::io::Result<TaniumSim> {
        let fleet = TaniumFleet::generate(&config.fleet, config.now.unwrap_or_else(Utc::now));
        let knobs = Knobs { criticality_visible: true, ..Knobs::default() };
        let data = Arc::new(SimData { config, fleet: Mutex::new(fleet), knobs: Mutex::new(knobs) });
        let schema: GatewaySchema =
            Schema::build(Query, EmptyMutation, EmptySubscription).data(data.clone()).limit_depth(20).finish();
        let mut base = String::new();
        let served = crate::serve(|base_url| {
            base = base_url;
            GatewayEndpoint { data: data.clone(), schema }
        })
        .await?;
        Ok(TaniumSim { handle: TaniumHandle { data, base_url: base }, served })
    }

    pub async fn start_default() -> std::io::Result<TaniumSim> {
        TaniumSim::start(TaniumSimConfig::default()).await
    }

    pub fn handle(&self) -> TaniumHandle {
        self.handle.clone()
    }

    pub fn addr(&self) -> SocketAddr {
        self.served.addr
    }
}

impl TaniumHandle {
    /// `http://127.0.0.1:<port>` (the bare host).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `http://127.0.0.1:<port>/plugin/products/gateway`.
    pub fn gateway_url(&self) -> String {
        format!("{}/plugin/products/gateway", self.base_url)
    }

    /// `http://127.0.0.1:<port>/plugin/products/asset`.
    pub fn asset_api_url(&self) -> String {
        format!("{}/plugin/products/asset", self.base_url)
    }

    pub fn token(&self) -> &str {
        &self.data.config.token
    }

    pub fn fleet(&self) -> TaniumFleet {
        self.data.fleet().clone()
    }

    /// Removes an endpoint from Tanium (it left the estate).
    pub fn remove_endpoint(&self, id: &str) {
        self.data.fleet().endpoints.retain(|e| e.id != id);
    }

    /// Changes an endpoint in place.
    pub fn update_endpoint(&self, id: &str, f: impl FnOnce(&mut SimEndpoint)) {
        if let Some(ep) = self.data.fleet().endpoints.iter_mut().find(|e| e.id == id) {
            f(ep);
        }
    }

    pub fn set_latency(&self, d: Duration) {
        self.data.knobs().latency = d;
    }

    /// Answer the next `times` requests (`None`: every request) with `fault`.
    pub fn inject(&self, fault: TaniumFault, times: Option<u32>) {
        self.data.knobs().faults.push((fault, times));
    }

    pub fn clear_faults(&self) {
        let mut k = self.data.knobs();
        k.faults.clear();
        k.failing_groups.clear();
        k.failing_operations.clear();
        k.partial_data_endpoint = None;
        k.null_cursor_after_pages = None;
        k.refuse_last_seen_filter = false;
    }

    /// `endpoints` queries filtered on this group answer a GraphQL permission error.
    pub fn fail_group(&self, group_id: &str) {
        self.data.knobs().failing_groups.insert(group_id.to_owned());
    }

    /// Requests of this operation name answer a GraphQL error.
    pub fn fail_operation(&self, operation: &str) {
        self.data.knobs().failing_operations.insert(operation.to_owned());
    }

    /// The `installedApplications` of this endpoint errors: data comes back with `errors`.
    pub fn partial_data(&self, endpoint_id: Option<&str>) {
        self.data.knobs().partial_data_endpoint = endpoint_id.map(str::to_owned);
    }

    /// From page `n` of an endpoints walk on, `hasNextPage: true` comes with a null `endCursor`.
    pub fn null_cursor_after(&self, pages: Option<usize>) {
        self.data.knobs().null_cursor_after_pages = pages;
    }

    /// Filters on `eidLastSeen` answer a GraphQL error.
    pub fn refuse_last_seen_filter(&self, on: bool) {
        self.data.knobs().refuse_last_seen_filter = on;
    }

    /// Whether the criticality sensor exists for this token.
    pub fn set_criticality_visible(&self, on: bool) {
        self.data.knobs().criticality_visible = on;
    }

    /// The rows of the Asset API listing.
    pub fn set_asset_rows(&self, rows: Vec<Value>) {
        self.data.knobs().asset_rows = rows;
    }

    pub fn requests(&self) -> Vec<GraphQlRecord> {
        self.data.knobs().log.clone()
    }

    /// HTTP requests received, including those answered with an injected fault.
    pub fn http_requests(&self) -> u64 {
        self.data.knobs().http_requests
    }

    /// Requests of one operation name.
    pub fn operation_count(&self, operation: &str) -> usize {
        self.data.knobs().log.iter().filter(|r| r.operation.as_deref() == Some(operation)).count()
    }

    /// Query strings of the Asset API requests.
    pub fn asset_requests(&self) -> Vec<String> {
        self.data.knobs().asset_requests.clone()
    }

    pub fn reset_log(&self) {
        let mut k = self.data.knobs();
        k.log.clear();
        k.asset_requests.clear();
        k.http_requests = 0;
    }
}

struct GatewayEndpoint {
    data: Arc<SimData>,
    schema: GatewaySchema,
}

const LOGIN_HTML: &str = "<!doctype html><html><head><title>Tanium - Sign in</title></head><body><form action=\"/login\">login</form></body></html>";

fn json_response(status: StatusCode, body: &Value) -> Response {
    Response::builder().status(status).content_type("application/json").body(body.to_string())
}

impl Endpoint for GatewayEndpoint {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let path = req.uri().path().to_owned();
        let query_string = req.uri().query().unwrap_or("").to_owned();
        let session = req.headers().get("session").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = req.take_body().into_vec().await.unwrap_or_default();
        let (latency, fault) = {
            let mut k = self.data.knobs();
            k.http_requests += 1;
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
        match fault {
            Some(TaniumFault::RedirectToLogin) => {
                return Ok(Response::builder().status(StatusCode::FOUND).header(header::LOCATION, LOGIN_URL).finish());
            }
            Some(TaniumFault::HtmlLogin) => {
                return Ok(Response::builder()
                    .status(StatusCode::OK)
                    .content_type("text/html; charset=utf-8")
                    .body(LOGIN_HTML));
            }
            Some(TaniumFault::Status(code)) => {
                let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                return Ok(json_response(status, &json!({"text": "simulated failure"})));
            }
            Some(TaniumFault::RateLimited(after)) => {
                return Ok(Response::builder()
                    .status(StatusCode::TOO_MANY_REQUESTS)
                    .header(header::RETRY_AFTER, after)
                    .content_type("application/json")
                    .body("{\"text\":\"too many requests\"}"));
            }
            Some(TaniumFault::Truncated) | None => {}
        }
        let truncate = matches!(fault, Some(TaniumFault::Truncated));
        if session.as_deref() != Some(self.data.config.token.as_str()) {
            return Ok(json_response(StatusCode::FORBIDDEN, &json!({"text": "Forbidden"})));
        }
        if path == ASSET_PATH && req.method() == poem::http::Method::GET {
            return Ok(self.asset_listing(&query_string));
        }
        if path != GATEWAY_PATH || req.method() != poem::http::Method::POST {
            return Ok(Response::builder().status(StatusCode::NOT_FOUND).content_type("text/html").body(LOGIN_HTML));
        }
        let parsed: Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(_) => {
                return Ok(json_response(
                    StatusCode::BAD_REQUEST,
                    &json!({"errors": [{"message": "body is not JSON"}]}),
                ));
            }
        };
        let query = parsed.get("query").and_then(Value::as_str).unwrap_or("").to_owned();
        let operation = parsed.get("operationName").and_then(Value::as_str).map(str::to_owned);
        let variables = parsed.get("variables").cloned().unwrap_or(Value::Null);
        let failing = operation.as_ref().is_some_and(|o| self.data.knobs().failing_operations.contains(o));
        let answer = if failing {
            json!({"errors": [{"message": format!("Simulated failure of {}", operation.clone().unwrap_or_default())}], "data": null})
        } else {
            let mut gql = async_graphql::Request::new(query.clone());
            if let Some(op) = &operation {
                gql = gql.operation_name(op.clone());
            }
            if !variables.is_null() {
                gql = gql.variables(async_graphql::Variables::from_json(variables.clone()));
            }
            let resp = self.schema.execute(gql).await;
            serde_json::to_value(&resp).unwrap_or_else(|e| json!({"errors": [{"message": e.to_string()}]}))
        };
        self.data.knobs().log.push(GraphQlRecord { operation, query, variables, status: 200 });
        if truncate {
            let full = answer.to_string();
            return Ok(Response::builder()
                .status(StatusCode::OK)
                .content_type("application/json")
                .body(full.as_bytes()[..full.len() / 2].to_vec()));
        }
        Ok(json_response(StatusCode::OK, &answer))
    }
}

impl GatewayEndpoint {
    /// `GET /plugin/products/asset/v1/assets?limit=&minimumAssetId=`: rows by numeric id.
    fn asset_listing(&self, query: &str) -> Response {
        let params: HashMap<String, String> =
            url::form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        let limit = params.get("limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(500).clamp(1, 500);
        let min = params.get("minimumAssetId").and_then(|m| m.parse::<i64>().ok()).unwrap_or(0);
        let mut k = self.data.knobs();
        k.asset_requests.push(query.to_owned());
        let mut rows: Vec<&Value> =
            k.asset_rows.iter().filter(|r| r.get("id").and_then(Value::as_i64).is_some_and(|id| id >= min)).collect();
        rows.sort_by_key(|r| r.get("id").and_then(Value::as_i64));
        let page: Vec<Value> = rows.iter().take(limit).map(|r| (*r).clone()).collect();
        let next = rows.get(limit).and_then(|r| r.get("id")).cloned();
        let body = json!({"data": page, "meta": {"nextAssetId": next, "endOfReader": next.is_none()}});
        json_response(StatusCode::OK, &body)
    }
}
