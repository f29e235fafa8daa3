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
use serde_json::{Value, json};
use url::Url;

use super::error::TaniumError;
use super::ops::*;
use super::parse;
use super::record::{Criticality, EndpointRecord};
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
            http: HttpConfig {
                provider: super::PROVIDER.slug(),
                request_timeout: GATEWAY_TIMEOUT,
                ..HttpConfig::default()
            },
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

    /// Posts one operation and returns the 2xx answer unread.
    async fn exchange<Q: GraphQLQuery>(
        &self,
        operation: &'static str,
        vars: Q::Variables,
    ) -> Result<crate::http::UpstreamResponse, TaniumError> {
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
        self.http.send(req).await.map_err(TaniumError::from_http)
    }

    /// The connection probe: one computer group. Returns how many came back (0 or 1).
    pub async fn test_connection(&self) -> Result<usize, TaniumError> {
        let vars = tanium_connection_probe::Variables { first: 1, after: None };
        let resp = self.exchange::<TaniumConnectionProbe>("TaniumConnectionProbe", vars).await?;
        parse::probe(&resp.body, resp.content_type())
    }

    /// Every computer group, in server order (nodes without an id skipped).
    pub async fn list_computer_groups(&self) -> Result<Vec<ComputerGroup>, TaniumError> {
        let mut walk = Walk::new("TaniumComputerGroups", self.max_pages);
        let mut out = Vec::new();
        while !walk.done {
            let vars = tanium_computer_groups::Variables { first: self.page_size, after: walk.after.clone() };
            let resp = self.exchange::<TaniumComputerGroups>(walk.operation, vars).await?;
            let page = parse::computer_groups(&resp.body, resp.content_type())?;
            out.extend(page.items);
            walk.advance(page.has_next_page, page.end_cursor)?;
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
            let resp = self.exchange::<TaniumEndpointIds>(walk.operation, vars).await?;
            let page = parse::endpoint_ids(&resp.body, resp.content_type())?;
            out.extend(page.items);
            walk.advance(page.has_next_page, page.end_cursor)?;
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
            let resp = self.exchange::<TaniumEndpointLastReboot>(walk.operation, vars).await?;
            let page = parse::last_reboot(&resp.body, resp.content_type())?;
            out.extend(page.items);
            walk.advance(page.has_next_page, page.end_cursor)?;
        }
        Ok(out)
    }

    /// The criticality sensor's registration (a probe: it fails when the sensor is not visible).
    pub async fn criticality_metadata(&self) -> Result<Vec<SensorInfo>, TaniumError> {
        let resp = self
            .exchange::<TaniumCriticalitySensorMetadata>(
                "TaniumCriticalitySensorMetadata",
                tanium_criticality_sensor_metadata::Variables,
            )
            .await?;
        parse::sensors(&resp.body, resp.content_type())
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
            let resp = self.exchange::<TaniumEndpointCriticality>(walk.operation, vars).await?;
            let page = parse::criticality(&resp.body, resp.content_type())?;
            out.extend(page.items);
            walk.advance(page.has_next_page, page.end_cursor)?;
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
        let resp = self.client.exchange::<TaniumEndpoints>(self.walk.operation, vars).await?;
        let page = parse::endpoints(&resp.body, resp.content_type(), self.group_id.as_deref())?;
        self.walk.advance(page.has_next_page, page.end_cursor)?;
        Ok(Some(page.items))
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
