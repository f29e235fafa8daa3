//! The Level v2 REST client. Every call goes through [`crate::http::HttpClient`] (timeouts,
//! retries, `Retry-After` on 429, the shared per-host rate limit, the body cap, call counting).
//!
//! - Auth: the API key in `Authorization`, with no scheme.
//! - Lists: `limit` (at most 100) and `starting_after=<last id of the previous page>` until
//!   `has_more` is false. A walk has a page guard, and a cursor that does not move is an error
//!   rather than an endless loop.
//! - Devices are asked with every `include_*` part the mapping reads.

use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use url::Url;

use super::error::LevelError;
use super::model::{Alert, Device, Group, ListPage, Update};
use crate::http::{HttpClient, HttpConfig, UpstreamRequest, UpstreamResponse};

/// Level's largest page (`limit`).
pub const PAGE_LIMIT: u32 = 100;

/// The `include_*` parts of a device the mapping reads.
pub const DEVICE_INCLUDES: [&str; 6] = [
    "include_operating_system",
    "include_cpus",
    "include_memory",
    "include_disks",
    "include_network_interfaces",
    "include_security",
];

/// Largest answer read (a page of 100 devices with every part is a few hundred KB).
pub const MAX_BODY_BYTES: usize = 32 << 20;

/// Normalises an API URL: trim; `https://` when there is no scheme; no trailing slash, query,
/// fragment or userinfo; a trailing `/v2` is dropped (the client adds it). `None` when unusable.
pub fn normalize_base_url(raw: &str) -> Option<String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return None;
    }
    let lower = trimmed.to_ascii_lowercase();
    let with_scheme = if lower.starts_with("http://") || lower.starts_with("https://") {
        trimmed.to_owned()
    } else {
        format!("https://{trimmed}")
    };
    let url = Url::parse(&with_scheme).ok()?;
    let host = url.host_str()?;
    let mut path = url.path().trim_end_matches('/').to_owned();
    if path.ends_with("/v2") {
        path.truncate(path.len() - 3);
    }
    let mut out = format!("{}://{}", url.scheme(), host);
    if let Some(port) = url.port() {
        out.push_str(&format!(":{port}"));
    }
    out.push_str(path.trim_end_matches('/'));
    Some(out)
}

/// Settings of one client.
#[derive(Debug, Clone)]
pub struct LevelConfig {
    /// The API URL (`https://api.level.io` unless told otherwise).
    pub base_url: String,
    pub api_key: SecretString,
    pub http: HttpConfig,
    /// `limit` of list calls (1–100).
    pub page_limit: u32,
    /// Page guard of one walk.
    pub max_pages: u32,
}

impl LevelConfig {
    pub fn new(base_url: impl Into<String>, api_key: SecretString) -> Self {
        LevelConfig {
            base_url: base_url.into(),
            api_key,
            http: HttpConfig {
                provider: super::PROVIDER.slug(),
                max_body_bytes: MAX_BODY_BYTES,
                ..HttpConfig::default()
            },
            page_limit: PAGE_LIMIT,
            max_pages: 100_000,
        }
    }
}

/// What a device listing is filtered on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceFilter {
    /// Every device.
    All,
    /// Devices directly in this group (`group_id`).
    Group(String),
    /// Devices anywhere below this group (`ancestor_group_id`, recursive).
    Below(String),
}

/// A client for Level's API. Share it behind an `Arc` or by reference.
pub struct LevelClient {
    http: HttpClient,
    base: Url,
    base_display: String,
    key: SecretString,
    page_limit: u32,
    max_pages: u32,
}

impl std::fmt::Debug for LevelClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LevelClient").field("base_url", &self.base_display).finish()
    }
}

impl LevelClient {
    pub fn new(config: LevelConfig) -> Result<Self, LevelError> {
        let http = HttpClient::new(config.http.clone())?;
        Self::with_http(config, http)
    }

    /// With a given HTTP client (its own limiter or call counter).
    pub fn with_http(config: LevelConfig, http: HttpClient) -> Result<Self, LevelError> {
        let base_display = normalize_base_url(&config.base_url).ok_or(LevelError::InvalidBaseUrl)?;
        let base = Url::parse(&base_display).map_err(|_| LevelError::InvalidBaseUrl)?;
        let key = config.api_key.expose_secret().trim().to_owned();
        if key.is_empty() {
            return Err(LevelError::ApiKeyNotConfigured);
        }
        Ok(LevelClient {
            http,
            base,
            base_display,
            key: SecretString::from(key),
            page_limit: config.page_limit.clamp(1, PAGE_LIMIT),
            max_pages: config.max_pages.max(1),
        })
    }

    /// The normalised API URL.
    pub fn base_url(&self) -> &str {
        &self.base_display
    }

    fn endpoint(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            path.extend(segments);
        }
        if !query.is_empty() {
            let mut q = url.query_pairs_mut();
            for (k, v) in query {
                q.append_pair(k, v);
            }
        }
        url
    }

    async fn send(&self, req: UpstreamRequest, endpoint: &str) -> Result<UpstreamResponse, LevelError> {
        let req = req.secret_header("authorization", &self.key)?.header("accept", "application/json")?;
        let span = call_span(endpoint);
        use tracing::Instrument;
        let result = self.http.send(req).instrument(span.clone()).await.map_err(LevelError::from);
        if let Err(e) = &result {
            crate::telemetry::mark_error(&span, e.to_string());
        }
        result
    }

    fn parse<T: DeserializeOwned>(resp: &UpstreamResponse, endpoint: &str) -> Result<T, LevelError> {
        let html_type = resp.content_type().is_some_and(|t| t == "text/html" || t == "application/xhtml+xml");
        let html_body = resp.body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<');
        if html_type || html_body {
            return Err(LevelError::HtmlAnswer { endpoint: endpoint.to_owned() });
        }
        serde_json::from_slice(&resp.body).map_err(|e| invalid(endpoint, &e))
    }

    /// The connection test: `GET /v2/groups?limit=1`. Returns whether a group is visible.
    pub async fn test_connection(&self) -> Result<bool, LevelError> {
        let endpoint = "GET /v2/groups";
        let url = self.endpoint(&["v2", "groups"], &[("limit", "1".into())]);
        let resp = self.send(UpstreamRequest::get(url).timeout(std::time::Duration::from_secs(15)), endpoint).await?;
        let page: ListPage<Group> = Self::parse(&resp, endpoint)?;
        Ok(!page.data.is_empty())
    }

    /// A cursor walk over a list endpoint.
    pub fn pages<T: DeserializeOwned + HasId>(&self, segments: &[&str], params: Vec<(&str, String)>) -> Pager<'_, T> {
        Pager {
            client: self,
            segments: segments.iter().map(|s| (*s).to_owned()).collect(),
            params: params.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            endpoint: format!("GET /{}", segments.join("/")),
            after: None,
            done: false,
            pages: 0,
            _t: std::marker::PhantomData,
        }
    }

    async fn collect<T: DeserializeOwned + HasId>(&self, mut pager: Pager<'_, T>) -> Result<Vec<T>, LevelError> {
        let mut out = Vec::new();
        while let Some(page) = pager.next_page().await? {
            out.extend(page);
        }
        Ok(out)
    }

    /// `GET /v2/groups`, every page.
    pub async fn list_groups(&self) -> Result<Vec<Group>, LevelError> {
        self.collect(self.pages(&["v2", "groups"], Vec::new())).await
    }

    /// `GET /v2/devices` with every include, one page at a time.
    pub fn device_pages(&self, filter: &DeviceFilter) -> Pager<'_, Device> {
        let mut params: Vec<(&str, String)> = DEVICE_INCLUDES.iter().map(|k| (*k, "true".to_owned())).collect();
        match filter {
            DeviceFilter::All => {}
            DeviceFilter::Group(g) => params.push(("group_id", g.clone())),
            DeviceFilter::Below(g) => params.push(("ancestor_group_id", g.clone())),
        }
        self.pages(&["v2", "devices"], params)
    }

    /// `GET /v2/devices/{id}` with every include; `None` when Level answers 404.
    pub async fn get_device(&self, id: &str) -> Result<Option<Device>, LevelError> {
        let endpoint = "GET /v2/devices/{id}";
        let id = id.trim();
        if id.is_empty() {
            return Ok(None);
        }
        let query: Vec<(&str, String)> = DEVICE_INCLUDES.iter().map(|k| (*k, "true".to_owned())).collect();
        let url = self.endpoint(&["v2", "devices", id], &query);
        match self.send(UpstreamRequest::get(url), endpoint).await {
            Ok(resp) => Ok(Some(Self::parse(&resp, endpoint)?)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /v2/alerts`, every page, filtered on `status` (`active`, `resolved`) and device.
    pub async fn list_alerts(&self, status: Option<&str>, device_id: Option<&str>) -> Result<Vec<Alert>, LevelError> {
        let mut params = Vec::new();
        if let Some(s) = status {
            params.push(("status", s.to_owned()));
        }
        if let Some(d) = device_id {
            params.push(("device_id", d.to_owned()));
        }
        self.collect(self.pages(&["v2", "alerts"], params)).await
    }

    /// `POST /v2/alerts/{id}/resolve`.
    pub async fn resolve_alert(&self, id: &str) -> Result<(), LevelError> {
        let url = self.endpoint(&["v2", "alerts", id.trim(), "resolve"], &[]);
        // Resolving twice leaves the alert resolved: safe to repeat.
        self.send(UpstreamRequest::post(url).idempotent(true), "POST /v2/alerts/{id}/resolve").await?;
        Ok(())
    }

    /// `GET /v2/updates?status=available`, one page at a time (all devices, or one).
    pub fn available_update_pages(&self, device_id: Option<&str>) -> Pager<'_, Update> {
        let mut params = vec![("status", "available".to_owned())];
        if let Some(d) = device_id {
            params.push(("device_id", d.to_owned()));
        }
        self.pages(&["v2", "updates"], params)
    }

    /// [`LevelClient::available_update_pages`], every page.
    pub async fn available_updates(&self, device_id: Option<&str>) -> Result<Vec<Update>, LevelError> {
        self.collect(self.available_update_pages(device_id)).await
    }
}

/// Items with the id the cursor is made of.
pub trait HasId {
    fn item_id(&self) -> &str;
}

macro_rules! has_id {
    ($($t:ty),*) => {$(impl HasId for $t { fn item_id(&self) -> &str { &self.id } })*};
}
has_id!(Group, Device, Alert, Update);

/// A cursor walk: `limit` and `starting_after=<last id>` until `has_more` is false.
pub struct Pager<'c, T> {
    client: &'c LevelClient,
    segments: Vec<String>,
    params: Vec<(String, String)>,
    endpoint: String,
    after: Option<String>,
    done: bool,
    pages: u32,
    _t: std::marker::PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned + HasId> Pager<'_, T> {
    /// The next page, `None` after the last one.
    pub async fn next_page(&mut self) -> Result<Option<Vec<T>>, LevelError> {
        if self.done {
            return Ok(None);
        }
        if self.pages >= self.client.max_pages {
            return Err(LevelError::TooManyPages { endpoint: self.endpoint.clone(), max_pages: self.client.max_pages });
        }
        self.pages += 1;
        let mut query: Vec<(&str, String)> = self.params.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        query.push(("limit", self.client.page_limit.to_string()));
        if let Some(after) = &self.after {
            query.push(("starting_after", after.clone()));
        }
        let segments: Vec<&str> = self.segments.iter().map(String::as_str).collect();
        let url = self.client.endpoint(&segments, &query);
        let resp = self.client.send(UpstreamRequest::get(url), &self.endpoint).await?;
        let page: ListPage<T> = LevelClient::parse(&resp, &self.endpoint)?;
        match page.data.last().map(|l| l.item_id().to_owned()) {
            Some(last) if page.has_more => {
                if self.after.as_deref() == Some(last.as_str()) {
                    return Err(LevelError::InvalidResponse {
                        endpoint: self.endpoint.clone(),
                        reason: format!("has_more with a cursor that does not move ({last})"),
                    });
                }
                self.after = Some(last);
            }
            // The last page, or `has_more` with nothing to continue from.
            _ => self.done = true,
        }
        Ok(Some(page.data))
    }

    /// Pages asked so far.
    pub fn pages_fetched(&self) -> u32 {
        self.pages
    }
}

fn invalid(endpoint: &str, e: &serde_json::Error) -> LevelError {
    let reason = if e.is_eof() { format!("the answer ended early ({e})") } else { e.to_string() };
    LevelError::InvalidResponse { endpoint: endpoint.to_owned(), reason }
}

/// The span of one Level API call (the endpoint's template, never ids), when traces are exported.
fn call_span(endpoint: &str) -> tracing::Span {
    if !crate::telemetry::exporting() {
        return tracing::Span::none();
    }
    tracing::info_span!("levelio call", otel.name = %format!("levelio {endpoint}"), rmm.provider = super::PROVIDER.slug(),
        rmm.endpoint = %endpoint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_normalisation() {
        assert_eq!(normalize_base_url(" api.level.io/ ").as_deref(), Some("https://api.level.io"));
        assert_eq!(normalize_base_url("https://api.level.io/v2/").as_deref(), Some("https://api.level.io"));
        assert_eq!(normalize_base_url("http://127.0.0.1:8080?x=1").as_deref(), Some("http://127.0.0.1:8080"));
        assert_eq!(normalize_base_url("https://proxy.test/level").as_deref(), Some("https://proxy.test/level"));
        assert_eq!(normalize_base_url("  "), None);
        assert_eq!(normalize_base_url("https://"), None);
    }

    #[test]
    fn config_validation_and_endpoints() {
        let c = LevelConfig::new("https://api.level.io", SecretString::from(" ".to_owned()));
        assert!(matches!(LevelClient::new(c), Err(LevelError::ApiKeyNotConfigured)));
        let c = LevelConfig::new("https://proxy.test/level/", SecretString::from("k".to_owned()));
        let client = LevelClient::new(c).unwrap();
        let url = client.endpoint(&["v2", "devices", "a/b"], &[("limit", "100".into())]);
        assert_eq!(url.as_str(), "https://proxy.test/level/v2/devices/a%2Fb?limit=100");
    }
}
