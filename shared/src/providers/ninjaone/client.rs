//! The NinjaOne API v2 client on the shared [`HttpClient`]: bearer tokens from [`Tokens`] (a 401
//! renews the token once and repeats the request), `pageSize` + `after` paging, and the routes
//! rmm-sync reads: organisations, the detailed device listing filtered per organisation
//! (`df=org = <id>`), one device, alerts, software and patch query reports, webhook registration.

use std::sync::Arc;

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

use super::error::{NinjaError, looks_like_html};
use super::model::{Alert, Device, Organization};
use super::token::Tokens;
use crate::http::{HttpClient, HttpConfig, HttpError, RateLimit, UpstreamRequest, UpstreamResponse};

/// Largest `pageSize` rmm-sync asks for.
pub const MAX_PAGE_SIZE: u32 = 1000;
/// Pages one listing may take before it is taken for a paging loop.
const MAX_PAGES: usize = 100_000;

/// The base URL of an instance: `http(s)://host[:port]` plus any path prefix, without `/v2`,
/// `/api` or `/ws`, ending with `/`. `None` when not an http(s) URL.
pub fn normalize_base_url(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let with_scheme = if raw.contains("://") { raw.to_owned() } else { format!("https://{raw}") };
    let url = Url::parse(&with_scheme).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return None;
    }
    let mut path = url.path().trim_end_matches('/').to_owned();
    for suffix in ["/v2", "/api", "/ws"] {
        if let Some(p) = path.strip_suffix(suffix) {
            path = p.to_owned();
        }
    }
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    Some(format!("{}://{}{port}{path}/", url.scheme(), url.host_str()?))
}

/// Settings of a client.
#[derive(Debug, Clone)]
pub struct NinjaConfig {
    /// The instance (a region's URL, or a simulator).
    pub base_url: String,
    pub http: HttpConfig,
    pub page_size: u32,
}

impl NinjaConfig {
    pub fn new(base_url: impl Into<String>) -> NinjaConfig {
        let http =
            HttpConfig { provider: "ninjaone", rate_limit: RateLimit::per_second(10, 20), ..HttpConfig::default() };
        NinjaConfig { base_url: base_url.into(), http, page_size: 500 }
    }
}

/// A NinjaOne client. Cheap to clone.
#[derive(Clone)]
pub struct NinjaClient {
    base: Url,
    http: HttpClient,
    tokens: Arc<Tokens>,
    page_size: u32,
}

impl NinjaClient {
    pub fn new(config: NinjaConfig, http: HttpClient, tokens: Arc<Tokens>) -> Result<NinjaClient, NinjaError> {
        let base = normalize_base_url(&config.base_url)
            .and_then(|u| Url::parse(&u).ok())
            .ok_or_else(|| NinjaError::NotConfigured(format!("{:?} is not a NinjaOne URL", config.base_url)))?;
        Ok(NinjaClient { base, http, tokens, page_size: config.page_size.clamp(1, MAX_PAGE_SIZE) })
    }

    pub fn base_url(&self) -> &Url {
        &self.base
    }

    pub fn page_size(&self) -> u32 {
        self.page_size
    }

    /// `<base>/v2/<path>` with the query pairs.
    pub fn url(&self, path: &str, query: &[(&str, String)]) -> Url {
        let mut url = self.base.join(&format!("v2/{}", path.trim_start_matches('/'))).expect("a relative path");
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        url
    }

    /// Sends with a bearer token; a 401 renews the token and repeats the request once.
    async fn send(&self, method: Method, url: Url, body: Option<&Value>) -> Result<UpstreamResponse, NinjaError> {
        let mut refused: Option<SecretString> = None;
        loop {
            let token = self.tokens.access_token(&self.http, refused.as_ref().map(|t| t.expose_secret())).await?;
            let mut req = UpstreamRequest::new(method.clone(), url.clone())
                .secret_header_with_prefix("authorization", "Bearer ", &token)?
                .header("accept", "application/json")?;
            if let Some(b) = body {
                req = req.json(b)?;
            }
            match self.http.send(req).await {
                Err(e @ HttpError::Status { status: 401, .. }) => {
                    if refused.is_some() {
                        return Err(e.into());
                    }
                    tracing::debug!("NinjaOne refused the access token; renewing it once");
                    refused = Some(token);
                }
                other => return Ok(other?),
            }
        }
    }

    /// GET and parse JSON; an HTML page or a body cut short is an [`NinjaError::InvalidPayload`].
    async fn get_json<T: DeserializeOwned>(&self, url: Url, what: &str) -> Result<(T, UpstreamResponse), NinjaError> {
        let resp = self.send(Method::GET, url, None).await?;
        let parsed = parse_body(&resp, what)?;
        Ok((parsed, resp))
    }

    /// `GET /v2/organizations?pageSize=1`: reachable and authorized; the organisations visible.
    pub async fn test_connection(&self) -> Result<usize, NinjaError> {
        let (orgs, _): (Vec<Organization>, _) =
            self.get_json(self.url("organizations", &[("pageSize", "1".into())]), "organizations").await?;
        Ok(orgs.len())
    }

    /// Every organisation, page by page.
    pub async fn list_organizations(&self) -> Result<Vec<Organization>, NinjaError> {
        let mut pager = Pager::new(self, "organizations", Vec::new(), "organizations");
        let mut out = Vec::new();
        while let Some(page) = pager.next_page::<Organization>(|o| o.id).await? {
            out.extend(page);
        }
        Ok(out)
    }

    /// The detailed devices of one organisation, page by page (`GET /v2/devices-detailed` with
    /// `df=org = <id>`: NinjaOne's device filter has no last-contact predicate, so this is the
    /// narrowest server-side filter for an incremental sync too).
    pub fn device_pages(&self, organization_id: i64) -> DevicePager<'_> {
        let filter = vec![("df", format!("org = {organization_id}"))];
        DevicePager(Pager::new(self, "devices-detailed", filter, "devices"))
    }

    /// `GET /v2/device/{id}`; `None` on 404.
    pub async fn get_device(&self, id: i64) -> Result<Option<Device>, NinjaError> {
        match self.get_json::<Device>(self.url(&format!("device/{id}"), &[]), "a device").await {
            Ok((d, _)) => Ok(Some(d)),
            Err(NinjaError::Http(e)) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Active alerts (triggered conditions) of the whole instance, each with its JSON as sent.
    pub async fn list_alerts_raw(&self) -> Result<Vec<(Alert, Value)>, NinjaError> {
        let (alerts, _): (Vec<Value>, _) = self.get_json(self.url("alerts", &[]), "alerts").await?;
        Ok(alerts.into_iter().map(|v| (serde_json::from_value(v.clone()).unwrap_or_default(), v)).collect())
    }

    /// `POST /v2/alert/{uid}/reset`.
    pub async fn reset_alert(&self, uid: &str) -> Result<(), NinjaError> {
        let url = self.url(&format!("alert/{uid}/reset"), &[]);
        self.send(Method::POST, url, None).await?;
        Ok(())
    }

    /// `PUT /v2/webhook`: NinjaOne posts its events to `url` with `headers`.
    pub async fn register_webhook(&self, config: &Value) -> Result<(), NinjaError> {
        self.send(Method::PUT, self.url("webhook", &[]), Some(config)).await?;
        Ok(())
    }

    /// `DELETE /v2/webhook`.
    pub async fn delete_webhook(&self) -> Result<(), NinjaError> {
        self.send(Method::DELETE, self.url("webhook", &[]), None).await?;
        Ok(())
    }

    /// The rows of one device's report (`GET /v2/device/{id}/<report>`: `os-patches`,
    /// `software-patches`, `software`), as a bare array or in `results`.
    pub async fn device_report(&self, id: i64, report: &str) -> Result<Vec<Value>, NinjaError> {
        let (body, _): (Value, _) = self.get_json(self.url(&format!("device/{id}/{report}"), &[]), report).await?;
        match body {
            Value::Array(rows) => Ok(rows),
            Value::Object(mut o) => match o.remove("results") {
                Some(Value::Array(rows)) => Ok(rows),
                _ => Err(NinjaError::InvalidPayload {
                    what: format!("{report} of device {id}"),
                    reason: "no results array".into(),
                }),
            },
            _ => Err(NinjaError::InvalidPayload {
                what: format!("{report} of device {id}"),
                reason: "not a list".into(),
            }),
        }
    }

    /// One page of a query report (`GET /v2/queries/<report>`, fleet-wide): its `results` and the
    /// cursor name for the next page (`None` when this was the last).
    pub async fn query_page(
        &self,
        report: &str,
        cursor: Option<&str>,
        extra: &[(&str, String)],
    ) -> Result<(Vec<Value>, Option<String>), NinjaError> {
        let mut query: Vec<(&str, String)> = vec![("pageSize", self.page_size.to_string())];
        query.extend(extra.iter().cloned());
        if let Some(c) = cursor {
            query.push(("cursor", c.to_owned()));
        }
        let (body, _): (Value, _) = self.get_json(self.url(&format!("queries/{report}"), &query), report).await?;
        let results = body.get("results").and_then(Value::as_array).cloned().unwrap_or_default();
        let next = body
            .pointer("/cursor/name")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty() && !results.is_empty())
            .map(str::to_owned);
        Ok((results, next))
    }
}

/// Reads a 2xx body as `T`: an HTML page or unreadable JSON is an [`NinjaError::InvalidPayload`].
fn parse_body<T: DeserializeOwned>(resp: &UpstreamResponse, what: &str) -> Result<T, NinjaError> {
    serde_json::from_slice(&resp.body).map_err(|e| {
        let text = String::from_utf8_lossy(&resp.body[..resp.body.len().min(256)]);
        let html = resp.content_type().is_some_and(|c| c.contains("html")) || looks_like_html(&text);
        let reason = if html {
            "HTML page instead of JSON".to_owned()
        } else if e.is_eof() {
            format!("truncated JSON after {} bytes", resp.body.len())
        } else {
            format!("malformed JSON: {e}")
        };
        NinjaError::InvalidPayload { what: what.to_owned(), reason }
    })
}

/// `pageSize` + `after` paging: the next page starts after the last id of this one (or at the
/// `after` of a `Link: <…>; rel="next"` header when NinjaOne sends one); a short page is the last.
struct Pager<'a> {
    client: &'a NinjaClient,
    path: &'static str,
    query: Vec<(&'static str, String)>,
    what: &'static str,
    after: Option<String>,
    done: bool,
    pages: usize,
}

impl<'a> Pager<'a> {
    fn new(
        client: &'a NinjaClient,
        path: &'static str,
        query: Vec<(&'static str, String)>,
        what: &'static str,
    ) -> Self {
        Pager { client, path, query, what, after: None, done: false, pages: 0 }
    }

    async fn next_page<T: DeserializeOwned>(&mut self, id: impl Fn(&T) -> i64) -> Result<Option<Vec<T>>, NinjaError> {
        if self.done {
            return Ok(None);
        }
        let size = self.client.page_size;
        let mut query = self.query.clone();
        query.push(("pageSize", size.to_string()));
        if let Some(a) = &self.after {
            query.push(("after", a.clone()));
        }
        let (page, resp): (Vec<T>, _) = self.client.get_json(self.client.url(self.path, &query), self.what).await?;
        self.pages += 1;
        let next = link_after(&resp)
            .or_else(|| (page.len() as u32 >= size).then(|| page.last().map(|t| id(t).to_string())).flatten());
        match next {
            Some(n) if Some(&n) == self.after.as_ref() => return Err(NinjaError::RepeatedCursor(self.what.into())),
            Some(_) if self.pages >= MAX_PAGES => return Err(NinjaError::RepeatedCursor(self.what.into())),
            Some(n) => self.after = Some(n),
            None => self.done = true,
        }
        if page.is_empty() {
            self.done = true;
            return Ok(None);
        }
        Ok(Some(page))
    }
}

/// The `after` of a `Link: <…?after=X…>; rel="next"` header.
fn link_after(resp: &UpstreamResponse) -> Option<String> {
    let link = resp.headers.get("link")?.to_str().ok()?;
    link.split(',').find(|part| part.contains("rel=\"next\"") || part.contains("rel=next")).and_then(|part| {
        let target = part.split(';').next()?.trim().trim_start_matches('<').trim_end_matches('>');
        let url = Url::parse(target).ok()?;
        url.query_pairs().find(|(k, _)| k == "after").map(|(_, v)| v.into_owned())
    })
}

/// The pages of one organisation's detailed devices.
pub struct DevicePager<'a>(Pager<'a>);

impl DevicePager<'_> {
    pub async fn next_page(&mut self) -> Result<Option<Vec<Device>>, NinjaError> {
        self.0.next_page::<Device>(|d| d.id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        assert_eq!(normalize_base_url("eu.ninjarmm.com").as_deref(), Some("https://eu.ninjarmm.com/"));
        assert_eq!(
            normalize_base_url("https://app.ninjarmm.com/api/v2/").as_deref(),
            Some("https://app.ninjarmm.com/")
        );
        assert_eq!(normalize_base_url("http://127.0.0.1:8080/ws").as_deref(), Some("http://127.0.0.1:8080/"));
        assert_eq!(normalize_base_url("ftp://x"), None);
    }
}
