//! The Tanium API Gateway client: typed GraphQL operations (see [`super::ops`]) posted through the
//! shared HTTP layer ([`crate::http::HttpClient`]: timeouts, bounded retries with backoff and
//! jitter on transport errors and 5xx, `Retry-After`, the per-instance rate limit shared by every
//! worker, redirects off).
//!
//! Differences from AlgaPSA's client, on purpose:
//! - a Gateway URL given as a bare host (`https://x.cloud.tanium.com`) gets the Gateway's path
//!   `/plugin/products/gateway` appended; AlgaPSA would POST to `/graphql` on the host root;
//! - reads are retried with backoff (AlgaPSA: none) and paged walks stop on a repeated cursor or
//!   after a page guard (AlgaPSA: neither);
//! - GraphQL errors keep their real text.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use graphql_client::GraphQLQuery;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use url::Url;

use super::error::TaniumError;
use super::ops::*;
use super::record::{self, Criticality, EndpointRecord, InstalledApplication};
use crate::http::{HttpClient, HttpConfig, UpstreamRequest};

/// Relay page size (AlgaPSA: 250).
pub const PAGE_SIZE: i64 = 250;
/// Timeout of one Gateway request (AlgaPSA: 45 s).
pub const GATEWAY_TIMEOUT: Duration = Duration::from_secs(45);
/// Where the Gateway lives on a Tanium host.
pub const GATEWAY_PATH: &str = "/plugin/products/gateway";

/// AlgaPSA's URL rule: trim; `https://` when there is no scheme; no trailing slashes. `None` when
/// empty.
pub fn normalize_url(raw: &str) -> Option<String> {
    let t = raw.trim();
    if t.is_empty() {
        return None;
    }
    let lower = t.to_ascii_lowercase();
    let with_scheme = if lower.starts_with("http://") || lower.starts_with("https://") {
        t.to_owned()
    } else {
        format!("https://{t}")
    };
    Some(with_scheme.trim_end_matches('/').to_owned())
}

/// The Gateway base URL: [`normalize_url`], checked, with [`GATEWAY_PATH`] added to a bare host.
pub fn gateway_base_url(raw: &str) -> Result<String, TaniumError> {
    let n = normalize_url(raw).ok_or(TaniumError::GatewayUrlRequired)?;
    let url = Url::parse(&n).map_err(|_| TaniumError::GatewayUrlInvalid)?;
    if url.host_str().is_none() || url.query().is_some() || !url.username().is_empty() {
        return Err(TaniumError::GatewayUrlInvalid);
    }
    if url.path().trim_end_matches('/').is_empty() { Ok(format!("{n}{GATEWAY_PATH}")) } else { Ok(n) }
}

/// The Asset API base URL: [`normalize_url`], checked.
pub fn asset_api_base_url(raw: &str) -> Result<String, TaniumError> {
    let n = normalize_url(raw).ok_or(TaniumError::AssetUrlInvalid)?;
    let url = Url::parse(&n).map_err(|_| TaniumError::AssetUrlInvalid)?;
    if url.host_str().is_none() || !url.username().is_empty() {
        return Err(TaniumError::AssetUrlInvalid);
    }
    Ok(n)
}

/// The token, trimmed; it must start with `token-` (case-insensitive).
pub fn check_token(raw: &str) -> Result<SecretString, TaniumError> {
    let t = raw.trim();
    if t.is_empty() {
        return Err(TaniumError::TokenRequired);
    }
    if !t.get(..6).is_some_and(|p| p.eq_ignore_ascii_case("token-")) {
        return Err(TaniumError::TokenPrefix);
    }
    Ok(SecretString::from(t.to_owned()))
}

/// The group filter AlgaPSA sends: `{memberOf: {id}, op: EQ, negated: false, any: false}`, or null.
pub fn group_filter(group_id: Option<&str>) -> Value {
    match group_id {
        Some(id) => json!({ "memberOf": { "id": id }, "op": "EQ", "negated": false, "any": false }),
        None => Value::Null,
    }
}

/// Members of a group seen at or after `since`: the group filter AND `eidLastSeen >= since`
/// (the documented `filters` combination with `any: false`), so the Gateway sends only the delta.
pub fn group_seen_since_filter(group_id: &str, since: chrono::DateTime<chrono::Utc>) -> Value {
    json!({
        "filters": [
            group_filter(Some(group_id)),
            { "path": "eidLastSeen", "op": "GTE", "value": since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true) }
        ],
        "any": false,
        "negated": false
    })
}

/// A computer group.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ComputerGroup {
    pub id: String,
    pub name: String,
}

/// A registered sensor (criticality metadata probe).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SensorInfo {
    pub name: String,
    pub value_type: Option<String>,
    pub harvested: Option<bool>,
    pub columns: Vec<String>,
}

/// Settings of one client.
#[derive(Debug, Clone)]
pub struct TaniumConfig {
    /// As entered; normalised by [`TaniumClient::new`].
    pub gateway_url: String,
    pub token: SecretString,
    /// The Asset API base (`https://host/plugin/products/asset`), for the fallback.
    pub asset_api_url: Option<String>,
    pub http: HttpConfig,
    pub page_size: i64,
    /// Page guard for one walk.
    pub max_pages: u32,
}

impl TaniumConfig {
    pub fn new(gateway_url: impl Into<String>, token: SecretString) -> Self {
        TaniumConfig {
            gateway_url: gateway_url.into(),
            token,
            asset_api_url: None,
            http: HttpConfig { provider: "tanium", request_timeout: GATEWAY_TIMEOUT, ..HttpConfig::default() },
            page_size: PAGE_SIZE,
            max_pages: 10_000,
        }
    }
}

/// The Gateway (and Asset API) client. Cheap to clone.
#[derive(Clone)]
pub struct TaniumClient {
    pub(crate) http: HttpClient,
    graphql: Url,
    pub(crate) token: SecretString,
    pub(crate) asset_api: Option<Url>,
    page_size: i64,
    pub(crate) max_pages: u32,
}

impl std::fmt::Debug for TaniumClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaniumClient").field("graphql", &self.graphql.as_str()).finish_non_exhaustive()
    }
}

/// A GraphQL answer, parsed straight into the operation's types.
#[derive(Deserialize)]
#[serde(bound(deserialize = "D: Deserialize<'de>"))]
struct GraphQlAnswer<D> {
    #[serde(default, deserialize_with = "present")]
    data: Option<Option<D>>,
    #[serde(default)]
    errors: Option<Vec<Value>>,
}

fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// One paged walk: the cursor to send next, with a repeated-cursor check and a page guard.
struct Walk {
    operation: &'static str,
    after: Option<String>,
    seen: HashSet<String>,
    pages: u32,
    max_pages: u32,
    done: bool,
}

impl Walk {
    fn new(operation: &'static str, max_pages: u32) -> Walk {
        Walk { operation, after: None, seen: HashSet::new(), pages: 0, max_pages, done: false }
    }

    /// Continue while `hasNextPage` and a non-empty `endCursor` (AlgaPSA's rule: `hasNextPage`
    /// with a null cursor ends the walk).
    fn advance(&mut self, has_next: bool, end_cursor: Option<String>) -> Result<(), TaniumError> {
        self.pages += 1;
        match end_cursor.filter(|c| !c.is_empty()) {
            Some(c) if has_next => {
                if !self.seen.insert(c.clone()) {
                    return Err(TaniumError::RepeatedCursor { operation: self.operation });
                }
                if self.pages >= self.max_pages {
                    return Err(TaniumError::TooManyPages { operation: self.operation, max_pages: self.max_pages });
                }
                self.after = Some(c);
            }
            _ => self.done = true,
        }
        Ok(())
    }
}

impl TaniumClient {
    pub fn new(config: TaniumConfig) -> Result<TaniumClient, TaniumError> {
        let base = gateway_base_url(&config.gateway_url)?;
        let graphql = Url::parse(&format!("{base}/graphql")).map_err(|_| TaniumError::GatewayUrlInvalid)?;
        let token = check_token(config.token.expose_secret())?;
        let asset_api = match config.asset_api_url.as_deref().and_then(normalize_url) {
            Some(u) => Some(Url::parse(&u).map_err(|_| TaniumError::AssetUrlInvalid)?),
            None => None,
        };
        let http = HttpClient::new(config.http).map_err(TaniumError::Transport)?;
        Ok(TaniumClient {
            http,
            graphql,
            token,
            asset_api,
            page_size: config.page_size.clamp(1, 1000),
            max_pages: config.max_pages.max(1),
        })
    }

    /// Counts this client's calls (per tenant, for the status page).
    pub fn with_call_counter(mut self, counter: crate::upstream_calls::CallCounter) -> Self {
        self.http = self.http.with_call_counter(counter);
        self
    }

    /// `…/plugin/products/gateway/graphql`.
    pub fn graphql_url(&self) -> &Url {
        &self.graphql
    }

    pub fn has_asset_api(&self) -> bool {
        self.asset_api.is_some()
    }

    /// Posts one operation and returns its `data`.
    async fn post<Q: GraphQLQuery>(
        &self,
        operation: &'static str,
        vars: Q::Variables,
    ) -> Result<Q::ResponseData, TaniumError> {
        let body = Q::build_query(vars);
        let mut body = serde_json::to_value(&body)
            .map_err(|e| TaniumError::InvalidPayload { operation, reason: format!("request: {e}") })?;
        if let Some(obj) = body.as_object_mut() {
            if obj.get("variables").is_some_and(Value::is_null) {
                obj.remove("variables");
            }
            // Input objects carry only the keys that are set (`{memberOf: {id}, op, negated, any}`),
            // as AlgaPSA sends them; top-level variables keep their explicit nulls.
            if let Some(filter) = obj.get_mut("variables").and_then(|v| v.get_mut("filter")) {
                strip_nulls(filter);
            }
        }
        let req = UpstreamRequest::post(self.graphql.clone())
            .json(&body)
            .and_then(|r| r.secret_header("session", &self.token))
            .map_err(TaniumError::Transport)?
            // Queries only read: safe to repeat after a timeout or a 5xx.
            .idempotent(true);
        let resp = self.http.send(req).await.map_err(TaniumError::from_http)?;
        let content_type = resp.content_type();
        match serde_json::from_slice::<GraphQlAnswer<Q::ResponseData>>(&resp.body) {
            Ok(answer) => {
                if let Some(errors) = answer.errors.filter(|e| !e.is_empty()) {
                    return Err(TaniumError::graphql(operation, &errors));
                }
                match answer.data {
                    None => Err(TaniumError::InvalidPayload { operation, reason: "no data key".into() }),
                    Some(None) => Err(TaniumError::EmptyPayload),
                    Some(Some(d)) => Ok(d),
                }
            }
            Err(e) => match serde_json::from_slice::<Value>(&resp.body) {
                Ok(Value::Object(obj)) => {
                    if let Some(errors) = obj.get("errors").and_then(Value::as_array).filter(|e| !e.is_empty()) {
                        return Err(TaniumError::graphql(operation, errors));
                    }
                    Err(TaniumError::InvalidPayload { operation, reason: e.to_string() })
                }
                _ => Err(TaniumError::NotGraphQl { content_type: content_type.unwrap_or_else(|| "unknown".into()) }),
            },
        }
    }

    /// The connection probe: one computer group. Returns how many came back (0 or 1).
    pub async fn test_connection(&self) -> Result<usize, TaniumError> {
        let vars = tanium_connection_probe::Variables { first: 1, after: None };
        match self.post::<TaniumConnectionProbe>("TaniumConnectionProbe", vars).await {
            Ok(data) => Ok(data.computer_groups.edges.len()),
            // An answer without `computerGroups` (or without its edges).
            Err(TaniumError::InvalidPayload { .. } | TaniumError::EmptyPayload) => Err(TaniumError::ProbeFailed),
            Err(e) => Err(e),
        }
    }

    /// Every computer group, in server order (nodes without an id skipped).
    pub async fn list_computer_groups(&self) -> Result<Vec<ComputerGroup>, TaniumError> {
        let mut walk = Walk::new("TaniumComputerGroups", self.max_pages);
        let mut out = Vec::new();
        while !walk.done {
            let vars = tanium_computer_groups::Variables { first: self.page_size, after: walk.after.clone() };
            let data = self.post::<TaniumComputerGroups>(walk.operation, vars).await?;
            let conn = data.computer_groups;
            for node in conn.edges.into_iter().filter_map(|e| e.node) {
                if node.id.is_empty() {
                    continue;
                }
                let name = node.name.filter(|n| !n.trim().is_empty()).unwrap_or_else(|| node.id.clone());
                out.push(ComputerGroup { id: node.id, name });
            }
            walk.advance(conn.page_info.has_next_page, conn.page_info.end_cursor)?;
        }
        Ok(out)
    }

    /// The ids of the endpoints matching `filter`.
    pub async fn endpoint_ids(&self, filter: &Value) -> Result<Vec<String>, TaniumError> {
        let filter = typed_filter::<tanium_endpoint_ids::EndpointFieldFilter>("TaniumEndpointIds", filter)?;
        let mut walk = Walk::new("TaniumEndpointIds", self.max_pages);
        let mut out = Vec::new();
        while !walk.done {
            let vars = tanium_endpoint_ids::Variables {
                first: self.page_size,
                after: walk.after.clone(),
                filter: filter.clone(),
            };
            let data = self.post::<TaniumEndpointIds>(walk.operation, vars).await?;
            let conn = data.endpoints;
            out.extend(conn.edges.into_iter().filter_map(|e| e.node).map(|n| n.id).filter(|id| !id.is_empty()));
            walk.advance(conn.page_info.has_next_page, conn.page_info.end_cursor)?;
        }
        Ok(out)
    }

    /// A page-by-page walk of the inventory of the endpoints matching `filter`.
    pub fn endpoint_pages(&self, filter: Value, group_id: Option<String>) -> EndpointPager<'_> {
        EndpointPager { client: self, filter, group_id, walk: Walk::new("TaniumEndpoints", self.max_pages) }
    }

    /// The "Last Reboot" sensor value of each endpoint matching `filter` (trimmed; empty skipped).
    pub async fn last_reboot(&self, filter: &Value) -> Result<HashMap<String, String>, TaniumError> {
        let filter =
            typed_filter::<tanium_endpoint_last_reboot::EndpointFieldFilter>("TaniumEndpointLastReboot", filter)?;
        let mut walk = Walk::new("TaniumEndpointLastReboot", self.max_pages);
        let mut out = HashMap::new();
        while !walk.done {
            let vars = tanium_endpoint_last_reboot::Variables {
                first: self.page_size,
                after: walk.after.clone(),
                filter: filter.clone(),
            };
            let data = self.post::<TaniumEndpointLastReboot>(walk.operation, vars).await?;
            let conn = data.endpoints;
            for node in conn.edges.into_iter().filter_map(|e| e.node) {
                let value = node
                    .last_reboot
                    .and_then(|r| r.values)
                    .and_then(|v| v.into_iter().next().flatten())
                    .map(|v| v.trim().to_owned())
                    .filter(|v| !v.is_empty());
                if let Some(v) = value {
                    out.insert(node.id, v);
                }
            }
            walk.advance(conn.page_info.has_next_page, conn.page_info.end_cursor)?;
        }
        Ok(out)
    }

    /// The criticality sensor's registration (a probe: it fails when the sensor is not visible).
    pub async fn criticality_metadata(&self) -> Result<Vec<SensorInfo>, TaniumError> {
        let data = self
            .post::<TaniumCriticalitySensorMetadata>(
                "TaniumCriticalitySensorMetadata",
                tanium_criticality_sensor_metadata::Variables,
            )
            .await?;
        Ok(data
            .sensors
            .edges
            .into_iter()
            .filter_map(|e| e.node)
            .filter_map(|n| {
                Some(SensorInfo {
                    name: n.name.filter(|s| !s.trim().is_empty())?,
                    value_type: n.value_type,
                    harvested: n.harvested,
                    columns: n.columns.unwrap_or_default().into_iter().flatten().filter_map(|c| c.name).collect(),
                })
            })
            .collect())
    }

    /// The criticality reading of each endpoint matching `filter`.
    pub async fn criticality_readings(&self, filter: &Value) -> Result<HashMap<String, Criticality>, TaniumError> {
        let filter =
            typed_filter::<tanium_endpoint_criticality::EndpointFieldFilter>("TaniumEndpointCriticality", filter)?;
        let mut walk = Walk::new("TaniumEndpointCriticality", self.max_pages);
        let mut out = HashMap::new();
        while !walk.done {
            let vars = tanium_endpoint_criticality::Variables {
                first: self.page_size,
                after: walk.after.clone(),
                filter: filter.clone(),
            };
            let data = self.post::<TaniumEndpointCriticality>(walk.operation, vars).await?;
            let conn = data.endpoints;
            for node in conn.edges.into_iter().filter_map(|e| e.node) {
                let columns: Vec<(String, Vec<String>)> = node
                    .criticality
                    .and_then(|c| c.columns)
                    .unwrap_or_default()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| Some((c.name?, c.values.unwrap_or_default().into_iter().flatten().collect())))
                    .collect();
                out.insert(node.id, record::parse_criticality(columns));
            }
            walk.advance(conn.page_info.has_next_page, conn.page_info.end_cursor)?;
        }
        Ok(out)
    }
}

/// Removes null-valued keys from every object inside `v`.
fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// The JSON filter as the operation's own input type (`null` → `None`).
fn typed_filter<F: serde::de::DeserializeOwned>(
    operation: &'static str,
    filter: &Value,
) -> Result<Option<F>, TaniumError> {
    if filter.is_null() {
        return Ok(None);
    }
    serde_json::from_value(filter.clone())
        .map(Some)
        .map_err(|e| TaniumError::InvalidPayload { operation, reason: format!("filter: {e}") })
}

/// Inventory pages of one filter; see [`TaniumClient::endpoint_pages`].
pub struct EndpointPager<'a> {
    client: &'a TaniumClient,
    filter: Value,
    group_id: Option<String>,
    walk: Walk,
}

impl EndpointPager<'_> {
    /// The next page of endpoints, `None` after the last.
    pub async fn next_page(&mut self) -> Result<Option<Vec<EndpointRecord>>, TaniumError> {
        if self.walk.done {
            return Ok(None);
        }
        let filter = typed_filter::<tanium_endpoints::EndpointFieldFilter>("TaniumEndpoints", &self.filter)?;
        let vars = tanium_endpoints::Variables { first: self.client.page_size, after: self.walk.after.clone(), filter };
        let data = self.client.post::<TaniumEndpoints>(self.walk.operation, vars).await?;
        let conn = data.endpoints;
        let records = conn
            .edges
            .into_iter()
            .filter_map(|e| e.node)
            .filter(|n| !n.id.is_empty())
            .map(|n| endpoint_record(n, self.group_id.clone()))
            .collect();
        self.walk.advance(conn.page_info.has_next_page, conn.page_info.end_cursor)?;
        Ok(Some(records))
    }
}

fn opt_json<T: serde::Serialize>(v: &Option<T>) -> Value {
    v.as_ref().map(|x| json!(x)).unwrap_or(Value::Null)
}

/// A Gateway node → [`EndpointRecord`] (research §4.1).
fn endpoint_record(n: tanium_endpoints::TaniumEndpointsEndpointsEdgesNode, group: Option<String>) -> EndpointRecord {
    let ip_addresses = record::clean_strings(n.ip_addresses.clone());
    let mac_addresses = record::clean_strings(n.mac_addresses.clone());
    let (dns, adapters, wireless) = match &n.networking {
        Some(net) => {
            let adapters: Vec<Value> = net
                .adapters
                .iter()
                .flatten()
                .flatten()
                .map(|a| {
                    json!({
                        "name": a.name, "manufacturer": a.manufacturer, "type": a.type_,
                        "macAddress": a.mac_address, "speed": a.speed, "connectionId": a.connection_id,
                    })
                })
                .collect();
            let wireless: Vec<Value> = net
                .wireless_adapters
                .iter()
                .flatten()
                .flatten()
                .map(|w| json!({ "ssid": w.ssid, "state": w.state }))
                .collect();
            (record::clean_strings(net.dns_servers.clone()), adapters, wireless)
        }
        None => (Vec::new(), Vec::new(), Vec::new()),
    };
    let mut metadata = Map::new();
    metadata.insert("manufacturer".into(), opt_json(&n.manufacturer));
    metadata.insert("model".into(), opt_json(&n.model));
    metadata.insert("chassisType".into(), opt_json(&n.chassis_type));
    metadata.insert("domainName".into(), opt_json(&n.domain_name));
    metadata.insert("reportingConsoleURL".into(), opt_json(&n.reporting_console_url));
    metadata.insert("isVirtual".into(), opt_json(&n.is_virtual));
    metadata.insert("isEncrypted".into(), opt_json(&n.is_encrypted));
    metadata.insert("ipAddresses".into(), json!(ip_addresses));
    metadata.insert("macAddresses".into(), json!(mac_addresses));
    metadata.insert("dnsServers".into(), json!(dns));
    metadata.insert("networkAdapters".into(), Value::Array(adapters));
    metadata.insert("wirelessAdapters".into(), Value::Array(wireless));
    let (os_name, os_version) = match &n.os {
        Some(os) => (os.name.clone(), os.generation.clone().or_else(|| os.platform.clone())),
        None => (None, None),
    };
    EndpointRecord {
        name: n.name.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| n.id.clone()),
        computer_group_id: group,
        serial_number: n.serial_number.clone(),
        last_seen: n.eid_last_seen.clone(),
        online: None,
        os_name,
        os_version,
        current_user: record::current_user(
            n.primary_user.as_ref().and_then(|u| u.name.as_deref()),
            n.last_logged_in_user.as_deref(),
        ),
        ip_address: n.ip_address.clone(),
        wan_ip_address: n.discover.as_ref().and_then(|d| d.nat_ip_address.clone()),
        manufacturer: n.manufacturer.clone(),
        model: n.model.clone(),
        cpu_model: n.processor.as_ref().and_then(|p| p.cpu.clone()),
        cpu_logical_processors: n.processor.as_ref().and_then(|p| p.logical_processors),
        memory_total_gb: n.memory.as_ref().and_then(|m| m.total.as_deref()).and_then(record::parse_size_gb),
        disk_usage: n
            .disks
            .iter()
            .flatten()
            .flatten()
            .filter_map(|d| {
                record::parse_disk(
                    d.name.as_deref(),
                    d.free.as_deref(),
                    d.total.as_deref(),
                    d.used_percentage.as_deref(),
                )
            })
            .collect(),
        installed_applications: n
            .installed_applications
            .iter()
            .flatten()
            .flatten()
            .filter_map(|a| {
                let name = a.name.as_deref().map(str::trim).filter(|s| !s.is_empty())?.to_owned();
                Some(InstalledApplication { name, version: a.version.clone(), uninstallable: a.uninstallable })
            })
            .collect(),
        last_reboot_at: None,
        metadata,
        id: n.id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_the_gateway_path() {
        assert_eq!(
            gateway_base_url("tanium.example.com/").unwrap(),
            "https://tanium.example.com/plugin/products/gateway"
        );
        assert_eq!(
            gateway_base_url(" https://t.example/plugin/products/gateway/ ").unwrap(),
            "https://t.example/plugin/products/gateway"
        );
        assert_eq!(gateway_base_url("http://127.0.0.1:8080/custom").unwrap(), "http://127.0.0.1:8080/custom");
        assert!(matches!(gateway_base_url("  "), Err(TaniumError::GatewayUrlRequired)));
        assert!(matches!(gateway_base_url("https://"), Err(TaniumError::GatewayUrlInvalid)));
        assert_eq!(normalize_url("HTTPS://A.example///").unwrap(), "HTTPS://A.example");
    }

    #[test]
    fn tokens_need_the_prefix() {
        assert!(check_token(" token-abc ").is_ok());
        assert!(check_token("TOKEN-abc").is_ok());
        assert!(matches!(check_token("not-a-token"), Err(TaniumError::TokenPrefix)));
        assert!(matches!(check_token(" "), Err(TaniumError::TokenRequired)));
        assert!(matches!(check_token("tok"), Err(TaniumError::TokenPrefix)));
    }

    #[test]
    fn filters_are_exactly_algapsas() {
        assert_eq!(
            group_filter(Some("30229")),
            json!({"memberOf": {"id": "30229"}, "op": "EQ", "negated": false, "any": false})
        );
        assert_eq!(group_filter(None), Value::Null);
        let f: tanium_endpoints::EndpointFieldFilter = serde_json::from_value(group_seen_since_filter(
            "7",
            chrono::DateTime::parse_from_rfc3339("2026-08-13T09:00:00Z").unwrap().into(),
        ))
        .unwrap();
        let back = serde_json::to_value(&f).unwrap();
        assert_eq!(back["filters"][1]["value"], "2026-08-13T09:00:00Z");
        assert_eq!(back["filters"][1]["op"], "GTE");
    }

    #[test]
    fn walks_stop_on_null_cursors_and_repeats() {
        let mut w = Walk::new("Q", 10);
        w.advance(true, Some("a".into())).unwrap();
        assert!(!w.done);
        w.advance(true, None).unwrap();
        assert!(w.done);
        let mut w = Walk::new("Q", 10);
        w.advance(true, Some("a".into())).unwrap();
        assert!(matches!(w.advance(true, Some("a".into())), Err(TaniumError::RepeatedCursor { .. })));
        let mut w = Walk::new("Q", 2);
        w.advance(true, Some("a".into())).unwrap();
        assert!(matches!(w.advance(true, Some("b".into())), Err(TaniumError::TooManyPages { .. })));
    }
}
