//! A Tactical RMM 1.5.1 simulator: a real HTTP server on 127.0.0.1 serving the recorded shapes
//! (`tests/fixtures/tactical-rmm-1.5.1/`) for a fleet generated from a seed.
//!
//! Real-server behaviour reproduced:
//! - `GET /beta/v1/client/` is a bare array (ignores `page`/`page_size`);
//! - `GET /beta/v1/site/` and `/beta/v1/agent/` are DRF pages (default 100, capped at 1000), a page
//!   past the end is 404 `{"detail":"Invalid page."}`; `next`/`previous` are absolute URLs;
//! - agent list filters: `client_id`, `site`, `id`, `agent_id`, `hostname`, `plat`,
//!   `monitoring_type`, `last_seen_range_after`/`_before` (null `last_seen` excluded), `search`;
//! - `GET /beta/v1/agent/<pk>/` takes the integer pk only (a string agent id is 404);
//!   `GET /agents/<agent_id>/` takes the string id; `GET /agents/` table rows;
//! - `PATCH /alerts/`: `top` → `{alerts_count, alerts}`; any of `timeFilter`, `clientFilter`,
//!   `severityFilter`, `resolvedFilter`, `snoozedFilter` → a filtered array (resolved/snoozed
//!   filters apply only when falsy); anything else → every alert;
//! - `GET /software/` one row per agent keyed by the integer pk; `GET /software/<agent_id>/`;
//! - auth: `X-API-KEY` or `Authorization: Token`; 401 bodies as the real server's;
//! - `POST /v2/checkcreds/`: 400 `"Bad credentials"`, `{"totp": true}` for TOTP users, else a
//!   token with a 180-second TTL; `POST /v2/login/` without `twofactor` is a 500;
//! - the login throttle of Tactical 1.5.0+ when switched on ([`SimConfig::login_throttle`],
//!   [`SimHandle::set_login_throttle`]): Django REST framework's `AnonRateThrottle` with a
//!   per-minute and a per-day scope for each of the two endpoints, counted before credentials are
//!   checked, refused requests not counted; 429 `{"detail": "Request was throttled. Expected
//!   available in N seconds."}` with `Retry-After: N`.
//!
//! Test controls (on [`SimHandle`]): latency, injected faults (status, 429 + Retry-After, hang,
//! truncated JSON, HTML), dashboard mode, per-route request counters (and the most requests
//! answered at once) and a request log (with each request's `traceparent`), token expiry, and
//! fleet mutations. [`FleetSpec::wmi_detail_kb`] pads every agent's `wmi_detail` to real agents'
//! sizes; agent pages are then sent as they are rendered (chunked).

mod fleet;
mod render;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::{Endpoint, Request, Response};
use rand::Rng;
use serde_json::{Value, json};

pub use fleet::{Fleet, FleetSpec, Hardware, NewAlert, Plat, SimAgent, SimAlert, SimClient, SimSite};
pub use render::dt as render_datetime;

/// The API key accepted by default.
pub const DEFAULT_API_KEY: &str = "SIMKEY-7f3a9c2e4b1d8f6a0c5e7b9d2f4a6c8e";
/// A Knox user without TOTP.
pub const DEFAULT_USERNAME: &str = "admin";
pub const DEFAULT_PASSWORD: &str = "sim-Passw0rd!";
/// A Knox user with TOTP, and the code it accepts.
pub const TOTP_USERNAME: &str = "totp-admin";
pub const TOTP_PASSWORD: &str = "sim-Totp-Passw0rd!";
pub const TOTP_CODE: &str = "123456";

/// A Knox account.
#[derive(Debug, Clone)]
pub struct SimUser {
    pub username: String,
    pub password: String,
    /// The TOTP code the account accepts, when it has TOTP.
    pub totp_code: Option<String>,
}

/// Simulator settings.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub fleet: FleetSpec,
    pub api_keys: Vec<String>,
    pub users: Vec<SimUser>,
    /// TTL of the token `checkcreds` returns (Tactical: 180 s).
    pub checkcreds_token_ttl: Duration,
    /// TTL of a `login` token (Knox `TOKEN_TTL`, 5 h).
    pub login_token_ttl: Duration,
    /// Knox `AUTO_REFRESH`: when set, each use extends a token to now + this TTL. Off by default
    /// so token expiry stays predictable in tests.
    pub auto_refresh_ttl: Option<Duration>,
    /// A fixed clock; `None` uses the real time.
    pub now: Option<DateTime<Utc>>,
    /// How long a `Fault::hang` request waits before answering 504.
    pub hang: Duration,
    /// The largest page the list endpoints serve, whatever `page_size` asks (Tactical: 1000).
    pub max_page_size: usize,
    /// Tactical's login throttle; `None` (the default) is off.
    pub login_throttle: Option<LoginThrottle>,
}

/// Tactical's login throttle (since 1.5.0; `TRMM_CHECK_CREDS_MIN_THROTTLE`,
/// `TRMM_CHECK_CREDS_DAY_THROTTLE`, `TRMM_LOGIN_MIN_THROTTLE`, `TRMM_LOGIN_DAY_THROTTLE`):
/// `POST /v2/checkcreds/` and `POST /v2/login/` each have a per-minute and a per-day count of
/// anonymous requests per client address (all of the simulator's callers share one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginThrottle {
    pub per_minute: u32,
    pub per_day: u32,
}

impl LoginThrottle {
    /// Tactical's defaults: 10 a minute, 300 a day.
    pub const TACTICAL: LoginThrottle = LoginThrottle { per_minute: 10, per_day: 300 };
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            fleet: FleetSpec::default(),
            api_keys: vec![DEFAULT_API_KEY.to_owned()],
            users: vec![
                SimUser { username: DEFAULT_USERNAME.into(), password: DEFAULT_PASSWORD.into(), totp_code: None },
                SimUser {
                    username: TOTP_USERNAME.into(),
                    password: TOTP_PASSWORD.into(),
                    totp_code: Some(TOTP_CODE.into()),
                },
            ],
            checkcreds_token_ttl: Duration::from_secs(180),
            login_token_ttl: Duration::from_secs(5 * 3600),
            auto_refresh_ttl: None,
            now: None,
            hang: Duration::from_secs(120),
            max_page_size: 1000,
            login_throttle: None,
        }
    }
}

impl SimConfig {
    pub fn with_fleet(fleet: FleetSpec) -> Self {
        SimConfig { fleet, ..SimConfig::default() }
    }
}

/// What an injected fault does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// Answer with this status (5xx bodies are HTML error pages, like nginx/Django).
    Status(u16),
    /// 429 with this `Retry-After` value (`None`: no header).
    RateLimited(Option<String>),
    /// Wait for `SimConfig::hang`, then 504.
    Hang,
    /// Serve the normal answer cut in half (still `application/json`).
    Truncate,
    /// Answer 200 with the dashboard's HTML.
    Html,
}

/// A fault for matching requests, a number of times (or always).
#[derive(Debug, Clone)]
pub struct Fault {
    pub kind: FaultKind,
    /// Route key (`"GET /beta/v1/agent/"`); `None` matches every route.
    pub route: Option<String>,
    /// `None`: until cleared.
    pub remaining: Option<u32>,
}

impl Fault {
    pub fn new(kind: FaultKind) -> Self {
        Fault { kind, route: None, remaining: None }
    }

    pub fn status(code: u16) -> Self {
        Fault::new(FaultKind::Status(code))
    }

    pub fn rate_limited(retry_after: impl Into<String>) -> Self {
        Fault::new(FaultKind::RateLimited(Some(retry_after.into())))
    }

    pub fn rate_limited_without_header() -> Self {
        Fault::new(FaultKind::RateLimited(None))
    }

    pub fn hang() -> Self {
        Fault::new(FaultKind::Hang)
    }

    pub fn truncate() -> Self {
        Fault::new(FaultKind::Truncate)
    }

    pub fn html() -> Self {
        Fault::new(FaultKind::Html)
    }

    /// Apply to the next `n` matching requests only.
    pub fn times(mut self, n: u32) -> Self {
        self.remaining = Some(n);
        self
    }

    /// Apply to one route key only (see [`route_key`]).
    pub fn on(mut self, route: &str) -> Self {
        self.route = Some(route.to_owned());
        self
    }
}

/// How a request authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeenAuth {
    None,
    ApiKey(String),
    Token(String),
}

/// One request as the simulator saw it.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// The route key (`"GET /beta/v1/agent/{pk}/"`).
    pub route: String,
    pub auth: SeenAuth,
    pub body: Option<Value>,
    pub status: u16,
    /// The W3C `traceparent` header the request carried.
    pub traceparent: Option<String>,
}

#[derive(Debug, Clone)]
struct Token {
    expires: DateTime<Utc>,
}

struct Inner {
    fleet: Fleet,
    faults: Vec<Fault>,
    latency: Duration,
    html_mode: bool,
    fixed_now: Option<DateTime<Utc>>,
    hits: HashMap<String, u64>,
    /// Requests being answered now, and the most seen at once, per route key.
    in_flight: HashMap<String, u64>,
    max_in_flight: HashMap<String, u64>,
    log: Vec<RequestRecord>,
    tokens: HashMap<String, Token>,
    api_keys: HashMap<String, bool>,
    tokens_issued: u64,
    login_throttle: Option<LoginThrottle>,
    /// DRF's throttle history per scope (`check_creds_min`, …): request times, newest first.
    throttle_history: HashMap<&'static str, Vec<DateTime<Utc>>>,
}

struct SimState {
    config: SimConfig,
    base_url: String,
    inner: Mutex<Inner>,
}

impl SimState {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now(&self) -> DateTime<Utc> {
        self.lock().fixed_now.unwrap_or_else(Utc::now)
    }
}

/// Control handle of a running simulator. Cheap to clone.
#[derive(Clone)]
pub struct SimHandle {
    state: Arc<SimState>,
}

/// A running simulator; stops when dropped.
pub struct TacticalSim {
    handle: SimHandle,
    served: crate::Served,
}

impl std::ops::Deref for TacticalSim {
    type Target = SimHandle;
    fn deref(&self) -> &SimHandle {
        &self.handle
    }
}

impl TacticalSim {
    /// Binds 127.0.0.1:0 and serves in the background.
    pub async fn start(config: SimConfig) -> std::io::Result<TacticalSim> {
        let now = config.now.unwrap_or_else(Utc::now);
        let fleet = Fleet::generate(&config.fleet, now);
        let inner = Inner {
            fleet,
            faults: Vec::new(),
            latency: Duration::ZERO,
            html_mode: false,
            fixed_now: config.now,
            hits: HashMap::new(),
            in_flight: HashMap::new(),
            max_in_flight: HashMap::new(),
            log: Vec::new(),
            tokens: HashMap::new(),
            api_keys: config.api_keys.iter().map(|k| (k.clone(), true)).collect(),
            tokens_issued: 0,
            login_throttle: config.login_throttle,
            throttle_history: HashMap::new(),
        };
        let mut state = None;
        let served = crate::serve(|base_url| {
            let s = Arc::new(SimState { config, base_url, inner: Mutex::new(inner) });
            state = Some(s.clone());
            SimEndpoint { state: s }
        })
        .await?;
        let state = state.expect("the endpoint was built");
        Ok(TacticalSim { handle: SimHandle { state }, served })
    }

    /// A simulator with the default fleet (3 clients × 3 sites × 5 agents).
    pub async fn start_default() -> std::io::Result<TacticalSim> {
        TacticalSim::start(SimConfig::default()).await
    }

    pub fn handle(&self) -> SimHandle {
        self.handle.clone()
    }

    pub fn addr(&self) -> SocketAddr {
        self.served.addr
    }
}

impl SimHandle {
    /// `http://127.0.0.1:<port>` (the API host).
    pub fn base_url(&self) -> &str {
        &self.state.base_url
    }

    pub fn config(&self) -> &SimConfig {
        &self.state.config
    }

    /// The simulator's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.state.now()
    }

    /// Fix the clock (`None`: real time).
    pub fn set_now(&self, now: Option<DateTime<Utc>>) {
        self.state.lock().fixed_now = now;
    }

    // ---- faults ----

    pub fn inject(&self, fault: Fault) {
        self.state.lock().faults.push(fault);
    }

    pub fn clear_faults(&self) {
        self.state.lock().faults.clear();
    }

    /// Delay added before every answer.
    pub fn set_latency(&self, latency: Duration) {
        self.state.lock().latency = latency;
    }

    /// Behave like the dashboard (`rmm.`) host: every path is 200 `text/html`.
    pub fn set_html_mode(&self, on: bool) {
        self.state.lock().html_mode = on;
    }

    // ---- counters ----

    /// Requests seen for a route key (see [`route_key`]).
    pub fn hits(&self, route: &str) -> u64 {
        self.state.lock().hits.get(route).copied().unwrap_or(0)
    }

    /// The most requests of a route key answered at once so far (from their arrival until their
    /// answer is handed to the server).
    pub fn max_in_flight(&self, route: &str) -> u64 {
        self.state.lock().max_in_flight.get(route).copied().unwrap_or(0)
    }

    pub fn total_hits(&self) -> u64 {
        self.state.lock().hits.values().sum()
    }

    /// Every request seen so far.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.state.lock().log.clone()
    }

    pub fn reset_counters(&self) {
        let mut g = self.state.lock();
        g.hits.clear();
        g.max_in_flight.clear();
        g.log.clear();
    }

    // ---- auth ----

    /// Expire every Knox token issued so far.
    pub fn expire_tokens(&self) {
        let mut g = self.state.lock();
        let past = Utc::now() - chrono::Duration::days(1);
        for t in g.tokens.values_mut() {
            t.expires = past;
        }
    }

    /// Knox tokens issued so far (checkcreds and login).
    pub fn tokens_issued(&self) -> u64 {
        self.state.lock().tokens_issued
    }

    /// Switch Tactical's login throttle on (with these rates) or off. The counts so far are kept.
    pub fn set_login_throttle(&self, throttle: Option<LoginThrottle>) {
        self.state.lock().login_throttle = throttle;
    }

    /// Forget the throttle's counts (Tactical keeps them in its cache).
    pub fn reset_login_throttle(&self) {
        self.state.lock().throttle_history.clear();
    }

    /// Mark an API key expired (`401 {"detail":"The token has expired."}`).
    pub fn expire_api_key(&self, key: &str) {
        if let Some(v) = self.state.lock().api_keys.get_mut(key) {
            *v = false;
        }
    }

    pub fn add_api_key(&self, key: &str) {
        self.state.lock().api_keys.insert(key.to_owned(), true);
    }

    // ---- fleet ----

    pub fn clients(&self) -> Vec<SimClient> {
        self.state.lock().fleet.clients.clone()
    }

    pub fn sites(&self) -> Vec<SimSite> {
        self.state.lock().fleet.sites.clone()
    }

    /// Agents ordered by pk.
    pub fn agents(&self) -> Vec<SimAgent> {
        self.state.lock().fleet.agents.clone()
    }

    pub fn agent(&self, pk: i64) -> Option<SimAgent> {
        self.state.lock().fleet.agent(pk).cloned()
    }

    pub fn agent_count(&self) -> usize {
        self.state.lock().fleet.agents.len()
    }

    pub fn alerts(&self) -> Vec<SimAlert> {
        self.state.lock().fleet.alerts.clone()
    }

    /// The client pk an agent belongs to (through its site).
    pub fn client_of(&self, pk: i64) -> Option<i64> {
        let g = self.state.lock();
        g.fleet.agent(pk).and_then(|a| g.fleet.client_of(a))
    }

    /// A new online agent on `site`.
    pub fn add_agent(&self, site: i64) -> Option<SimAgent> {
        let now = self.now();
        let mut g = self.state.lock();
        g.fleet.site(site)?;
        Some(g.fleet.add_agent(site, now))
    }

    /// Removes an agent with its alerts and software.
    pub fn remove_agent(&self, pk: i64) -> bool {
        let mut g = self.state.lock();
        let before = g.fleet.agents.len();
        g.fleet.agents.retain(|a| a.id != pk);
        g.fleet.alerts.retain(|a| a.agent != pk);
        before != g.fleet.agents.len()
    }

    /// Moves an agent to another site (possibly of another client).
    pub fn move_agent(&self, pk: i64, site: i64) -> bool {
        let mut g = self.state.lock();
        if g.fleet.site(site).is_none() {
            return false;
        }
        match g.fleet.agent_mut(pk) {
            Some(a) => {
                a.site = site;
                true
            }
            None => false,
        }
    }

    pub fn set_last_seen(&self, pk: i64, last_seen: Option<DateTime<Utc>>) -> bool {
        let mut g = self.state.lock();
        match g.fleet.agent_mut(pk) {
            Some(a) => {
                a.last_seen = last_seen;
                true
            }
            None => false,
        }
    }

    pub fn set_logged_in_user(&self, pk: i64, user: &str) -> bool {
        let mut g = self.state.lock();
        match g.fleet.agent_mut(pk) {
            Some(a) => {
                a.logged_in_username = user.to_owned();
                true
            }
            None => false,
        }
    }

    /// The agent's BIOS serial number (in its `wmi_detail`, where Tactical derives `serial_number`).
    pub fn set_serial(&self, pk: i64, serial: &str) -> bool {
        let mut g = self.state.lock();
        match g.fleet.agent_mut(pk) {
            Some(a) => {
                a.hardware.serial = serial.to_owned();
                true
            }
            None => false,
        }
    }

    pub fn set_software(&self, pk: i64, software: Vec<Value>) -> bool {
        let mut g = self.state.lock();
        match g.fleet.agent_mut(pk) {
            Some(a) => {
                a.software = software;
                true
            }
            None => false,
        }
    }

    /// Adds an alert on an agent, dated now; returns its id.
    pub fn add_alert(&self, pk: i64, alert: NewAlert) -> Option<i64> {
        let now = self.now();
        let mut g = self.state.lock();
        g.fleet.agent(pk)?;
        Some(g.fleet.push_alert(pk, alert, now, now))
    }

    pub fn resolve_alert(&self, id: i64) -> bool {
        let now = self.now();
        let mut g = self.state.lock();
        match g.fleet.alerts.iter_mut().find(|a| a.id == id) {
            Some(a) => {
                a.resolved = true;
                a.resolved_on = Some(now);
                true
            }
            None => false,
        }
    }
}

// ---- routing ----------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Root,
    BetaIndex,
    BetaClients,
    BetaClient(String),
    BetaSites,
    BetaSite(String),
    BetaAgents,
    BetaAgent(String),
    Agents,
    Agent(String),
    Alerts,
    Software,
    AgentSoftware(String),
    CheckCreds,
    Login,
    NotFound,
}

/// The route key a request is counted under: `"<METHOD> <path template>"`, e.g.
/// `"GET /beta/v1/agent/"`, `"GET /beta/v1/agent/{pk}/"`, `"GET /agents/{agent_id}/"`,
/// `"PATCH /alerts/"`, `"GET /software/"`, `"POST /v2/checkcreds/"`, `"POST /v2/login/"`.
pub fn route_key(method: &str, path: &str) -> String {
    let (route, _) = classify(path);
    let template = match route {
        Route::Root => "/".to_owned(),
        Route::BetaIndex => "/beta/v1/".into(),
        Route::BetaClients => "/beta/v1/client/".into(),
        Route::BetaClient(_) => "/beta/v1/client/{pk}/".into(),
        Route::BetaSites => "/beta/v1/site/".into(),
        Route::BetaSite(_) => "/beta/v1/site/{pk}/".into(),
        Route::BetaAgents => "/beta/v1/agent/".into(),
        Route::BetaAgent(_) => "/beta/v1/agent/{pk}/".into(),
        Route::Agents => "/agents/".into(),
        Route::Agent(_) => "/agents/{agent_id}/".into(),
        Route::Alerts => "/alerts/".into(),
        Route::Software => "/software/".into(),
        Route::AgentSoftware(_) => "/software/{agent_id}/".into(),
        Route::CheckCreds => "/v2/checkcreds/".into(),
        Route::Login => "/v2/login/".into(),
        Route::NotFound => path.to_owned(),
    };
    format!("{method} {template}")
}

/// The route and whether the path lacked its trailing slash (Django redirects those).
fn classify(path: &str) -> (Route, bool) {
    let slash = path.ends_with('/');
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default()
    };
    let route = match segs.as_slice() {
        [] => Route::Root,
        ["beta", "v1"] => Route::BetaIndex,
        ["beta", "v1", "client"] => Route::BetaClients,
        ["beta", "v1", "client", id] => Route::BetaClient(decode(id)),
        ["beta", "v1", "site"] => Route::BetaSites,
        ["beta", "v1", "site", id] => Route::BetaSite(decode(id)),
        ["beta", "v1", "agent"] => Route::BetaAgents,
        ["beta", "v1", "agent", id] => Route::BetaAgent(decode(id)),
        ["agents"] => Route::Agents,
        ["agents", id] => Route::Agent(decode(id)),
        ["alerts"] => Route::Alerts,
        ["software"] => Route::Software,
        ["software", id] => Route::AgentSoftware(decode(id)),
        ["v2", "checkcreds"] => Route::CheckCreds,
        ["v2", "login"] => Route::Login,
        _ => Route::NotFound,
    };
    let missing_slash = !slash && route != Route::Root && route != Route::NotFound;
    (route, missing_slash)
}

struct SimEndpoint {
    state: Arc<SimState>,
}

struct Answer {
    status: StatusCode,
    content_type: &'static str,
    body: Vec<u8>,
    /// A body sent as it is produced, chunk by chunk (chunked transfer, no `Content-Length`),
    /// instead of `body`.
    stream: Option<Box<dyn Iterator<Item = Vec<u8>> + Send>>,
    headers: Vec<(header::HeaderName, String)>,
}

impl Answer {
    fn json(status: StatusCode, v: &Value) -> Answer {
        Answer {
            status,
            content_type: "application/json",
            body: serde_json::to_vec(v).unwrap_or_default(),
            stream: None,
            headers: Vec::new(),
        }
    }

    fn ok(v: &Value) -> Answer {
        Answer::json(StatusCode::OK, v)
    }

    /// A 200 answer rendered for `agent` (its `wmi_detail` padded as the fleet asks).
    fn agent(v: &Value, agent: &SimAgent) -> Answer {
        let body = serde_json::to_vec(&render::AgentJson { value: v, agent }).unwrap_or_default();
        Answer { body, ..Answer::json(StatusCode::OK, &Value::Null) }
    }

    /// The whole body, a streamed one collected.
    fn into_buffered(mut self) -> Answer {
        if let Some(parts) = self.stream.take() {
            self.body = parts.flatten().collect();
        }
        self
    }

    fn html(status: StatusCode, body: &str) -> Answer {
        Answer {
            status,
            content_type: "text/html; charset=utf-8",
            body: body.as_bytes().to_vec(),
            stream: None,
            headers: Vec::new(),
        }
    }

    fn detail(status: StatusCode, detail: &str) -> Answer {
        Answer::json(status, &json!({ "detail": detail }))
    }

    fn with_header(mut self, name: header::HeaderName, value: impl Into<String>) -> Answer {
        self.headers.push((name, value.into()));
        self
    }

    fn into_response(self) -> Response {
        let builder = Response::builder().status(self.status).content_type(self.content_type);
        let mut resp = match self.stream {
            Some(parts) => {
                builder.body(poem::Body::from_bytes_stream(futures::stream::iter(parts.map(Ok::<_, std::io::Error>))))
            }
            None => builder.body(self.body),
        };
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                resp.headers_mut().insert(name, v);
            }
        }
        resp
    }
}

const DASHBOARD_HTML: &str = "<!DOCTYPE html><html><head><title>Tactical RMM</title><meta charset=utf-8></head><body><div id=q-app></div><script src=/js/app.js></script></body></html>";

fn server_error_page(code: u16) -> String {
    match code {
        500 => "<!doctype html>\n<html lang=\"en\">\n<head>\n  <title>Server Error (500)</title>\n</head>\n<body>\n  <h1>Server Error (500)</h1><p></p>\n</body>\n</html>\n".to_owned(),
        _ => format!("<html>\r\n<head><title>{code}</title></head>\r\n<body>\r\n<center><h1>{code}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"),
    }
}

impl Endpoint for SimEndpoint {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let query = req.uri().query().map(str::to_owned);
        let auth = seen_auth(&req);
        let traceparent = req.headers().get("traceparent").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body_bytes = req.take_body().into_vec().await.unwrap_or_default();
        let body: Option<Value> = if body_bytes.is_empty() { None } else { serde_json::from_slice(&body_bytes).ok() };
        let route = route_key(method.as_str(), &path);

        let (latency, html_mode, fault) = {
            let mut g = self.state.lock();
            *g.hits.entry(route.clone()).or_insert(0) += 1;
            let now_in_flight = {
                let n = g.in_flight.entry(route.clone()).or_insert(0);
                *n += 1;
                *n
            };
            let max = g.max_in_flight.entry(route.clone()).or_insert(0);
            *max = (*max).max(now_in_flight);
            let fault = take_fault(&mut g.faults, &route);
            (g.latency, g.html_mode, fault)
        };
        let _in_flight = InFlight { state: &self.state, route: route.clone() };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }

        let mut truncate = false;
        let answer = if html_mode {
            Answer::html(StatusCode::OK, DASHBOARD_HTML)
        } else {
            match fault {
                Some(FaultKind::Status(code)) => {
                    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                    if code >= 500 {
                        Answer::html(status, &server_error_page(code))
                    } else {
                        Answer::detail(status, "Simulated failure.")
                    }
                }
                Some(FaultKind::RateLimited(retry_after)) => {
                    let secs = retry_after.as_deref().and_then(|s| s.parse::<u64>().ok()).unwrap_or(60);
                    let a = Answer::detail(
                        StatusCode::TOO_MANY_REQUESTS,
                        &format!("Request was throttled. Expected available in {secs} seconds."),
                    );
                    match retry_after {
                        Some(v) => a.with_header(header::RETRY_AFTER, v),
                        None => a,
                    }
                }
                Some(FaultKind::Hang) => {
                    tokio::time::sleep(self.state.config.hang).await;
                    Answer::html(StatusCode::GATEWAY_TIMEOUT, &server_error_page(504))
                }
                Some(FaultKind::Html) => Answer::html(StatusCode::OK, DASHBOARD_HTML),
                Some(FaultKind::Truncate) => {
                    truncate = true;
                    self.handle(&method, &path, query.as_deref(), &auth, body.as_ref())
                }
                None => self.handle(&method, &path, query.as_deref(), &auth, body.as_ref()),
            }
        };
        let mut answer = answer;
        if truncate {
            answer = answer.into_buffered();
        }
        if truncate && answer.body.len() > 1 {
            let half = answer.body.len() / 2;
            answer.body.truncate(half);
        }
        {
            let mut g = self.state.lock();
            g.log.push(RequestRecord {
                method: method.to_string(),
                path,
                query,
                route,
                auth,
                body,
                status: answer.status.as_u16(),
                traceparent,
            });
        }
        Ok(answer.into_response())
    }
}

/// Counts a request out of `in_flight` when its handling ends, answered or dropped.
struct InFlight<'a> {
    state: &'a SimState,
    route: String,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(n) = self.state.lock().in_flight.get_mut(&self.route) {
            *n = n.saturating_sub(1);
        }
    }
}

fn take_fault(faults: &mut Vec<Fault>, route: &str) -> Option<FaultKind> {
    let idx = faults.iter().position(|f| f.route.as_deref().is_none_or(|r| r == route) && f.remaining != Some(0))?;
    let f = &mut faults[idx];
    let kind = f.kind.clone();
    if let Some(n) = f.remaining.as_mut() {
        *n -= 1;
        if *n == 0 {
            faults.remove(idx);
        }
    }
    Some(kind)
}

fn seen_auth(req: &Request) -> SeenAuth {
    if let Some(token) =
        req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Token "))
    {
        return SeenAuth::Token(token.trim().to_owned());
    }
    if let Some(key) = req.headers().get("x-api-key").and_then(|v| v.to_str().ok()) {
        return SeenAuth::ApiKey(key.to_owned());
    }
    SeenAuth::None
}

type Query = Vec<(String, String)>;

fn parse_query(q: Option<&str>) -> Query {
    q.map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default()
}

fn qget<'a>(q: &'a Query, key: &str) -> Option<&'a str> {
    q.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn unauthorized(detail: &str) -> Answer {
    Answer::detail(StatusCode::UNAUTHORIZED, detail).with_header(header::WWW_AUTHENTICATE, "Token")
}

fn random_token() -> String {
    let mut rng = rand::rng();
    (0..64).map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0')).collect()
}

impl SimEndpoint {
    fn handle(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        auth: &SeenAuth,
        body: Option<&Value>,
    ) -> Answer {
        let (route, missing_slash) = classify(path);
        if route == Route::NotFound {
            return Answer::html(
                StatusCode::NOT_FOUND,
                "<!doctype html>\n<html lang=\"en\">\n<head>\n  <title>Not Found</title>\n</head>\n<body>\n  <h1>Not Found</h1><p>The requested resource was not found on this server.</p>\n</body>\n</html>\n",
            );
        }
        if missing_slash {
            let location =
                format!("{}{path}/{}", self.state.base_url, query.map(|q| format!("?{q}")).unwrap_or_default());
            return Answer::html(StatusCode::MOVED_PERMANENTLY, "").with_header(header::LOCATION, location);
        }
        let q = parse_query(query);
        match (&route, method) {
            (Route::Root, &Method::GET) => return Answer::ok(&json!({"status": "ok"})),
            (Route::CheckCreds | Route::Login, &Method::POST) => {
                // DRF authenticates first (a bad token is a 401); only anonymous requests are
                // throttled, before the credentials are looked at.
                if *auth != SeenAuth::None {
                    if let Err(a) = self.authenticate(auth) {
                        return a;
                    }
                } else if let Some(a) = self.throttle(&route) {
                    return a;
                }
                return if route == Route::CheckCreds { self.checkcreds(body) } else { self.login(body) };
            }
            _ => {}
        }
        if let Err(a) = self.authenticate(auth) {
            return a;
        }
        let now = self.state.now();
        let g = self.state.lock();
        let f = &g.fleet;
        match (route, method.clone()) {
            (Route::BetaIndex, Method::GET) => {
                let b = &self.state.base_url;
                Answer::ok(
                    &json!({"agent": format!("{b}/beta/v1/agent/"), "client": format!("{b}/beta/v1/client/"), "site": format!("{b}/beta/v1/site/")}),
                )
            }
            (Route::BetaClients, Method::GET) => {
                Answer::ok(&Value::Array(f.clients.iter().map(render::client).collect()))
            }
            (Route::BetaClient(id), Method::GET) => match id.parse::<i64>().ok().and_then(|id| f.client(id)) {
                Some(c) => Answer::ok(&render::client(c)),
                None => Answer::detail(StatusCode::NOT_FOUND, "No Client matches the given query."),
            },
            (Route::BetaSites, Method::GET) => {
                let search = qget(&q, "search").map(str::to_lowercase);
                let items: Vec<Value> = f
                    .sites
                    .iter()
                    .filter(|s| search.as_ref().is_none_or(|t| s.name.to_lowercase().contains(t)))
                    .map(render::site)
                    .collect();
                self.paginate(items, path, &q)
            }
            (Route::BetaSite(id), Method::GET) => match id.parse::<i64>().ok().and_then(|id| f.site(id)) {
                Some(s) => Answer::ok(&render::site(s)),
                None => Answer::detail(StatusCode::NOT_FOUND, "No Site matches the given query."),
            },
            (Route::BetaAgents, Method::GET) => match filter_agents(f, &q) {
                Ok(agents) => self.agent_page(&agents, path, &q),
                Err(a) => a,
            },
            (Route::BetaAgent(id), Method::GET) => match id.parse::<i64>().ok().and_then(|id| f.agent(id)) {
                Some(a) => Answer::agent(&render::beta_detail(a, now), a),
                None => Answer::detail(StatusCode::NOT_FOUND, "No Agent matches the given query."),
            },
            (Route::Agents, Method::GET) => {
                let detail = qget(&q, "detail") != Some("false");
                let client = qget(&q, "client").and_then(|v| v.parse::<i64>().ok());
                let site = qget(&q, "site").and_then(|v| v.parse::<i64>().ok());
                let mut rows: Vec<(&SimAgent, Option<&SimSite>, Option<&SimClient>)> = f
                    .agents
                    .iter()
                    .map(|a| {
                        let s = f.site(a.site);
                        (a, s, s.and_then(|s| f.client(s.client)))
                    })
                    .filter(|(a, s, _)| {
                        site.is_none_or(|id| a.site == id) && client.is_none_or(|c| s.is_some_and(|s| s.client == c))
                    })
                    .collect();
                // The table is ordered by hostname, not by pk.
                rows.sort_by_key(|x| x.0.hostname.to_lowercase());
                let items: Vec<Value> = rows
                    .into_iter()
                    .map(
                        |(a, s, c)| {
                            if detail { render::table_row(a, s, c, now) } else { render::nodetail_row(a, s, c) }
                        },
                    )
                    .collect();
                Answer::ok(&Value::Array(items))
            }
            (Route::Agent(agent_id), Method::GET) => match f.by_agent_id(&agent_id) {
                Some(a) => {
                    let s = f.site(a.site);
                    Answer::agent(&render::agent_detail(a, s, s.and_then(|s| f.client(s.client)), now), a)
                }
                None => Answer::detail(StatusCode::NOT_FOUND, "No Agent matches the given query."),
            },
            (Route::Alerts, Method::PATCH) => alerts(f, body, now),
            (Route::Software, Method::GET) => {
                let rows: Vec<Value> = f
                    .agents
                    .iter()
                    .filter(|a| !a.software.is_empty())
                    .enumerate()
                    .map(|(i, a)| render::software_row(i as i64 + 1, a))
                    .collect();
                Answer::ok(&Value::Array(rows))
            }
            (Route::AgentSoftware(agent_id), Method::GET) => match f.by_agent_id(&agent_id) {
                Some(a) if !a.software.is_empty() => {
                    let row_id =
                        f.agents.iter().filter(|x| !x.software.is_empty()).position(|x| x.id == a.id).unwrap_or(0);
                    Answer::ok(&render::software_row(row_id as i64 + 1, a))
                }
                Some(_) => Answer::ok(&json!([])),
                None => Answer::detail(StatusCode::NOT_FOUND, "No Agent matches the given query."),
            },
            (_, m) => Answer::detail(StatusCode::METHOD_NOT_ALLOWED, &format!("Method \"{m}\" not allowed.")),
        }
    }

    fn authenticate(&self, auth: &SeenAuth) -> Result<(), Answer> {
        let mut g = self.state.lock();
        let now = g.fixed_now.unwrap_or_else(Utc::now);
        match auth {
            SeenAuth::Token(t) => {
                let refresh = self.state.config.auto_refresh_ttl;
                match g.tokens.get_mut(t) {
                    Some(tok) if tok.expires > now => {
                        if let Some(ttl) = refresh {
                            let ttl = chrono::Duration::from_std(ttl).unwrap_or_default();
                            tok.expires = tok.expires.max(now + ttl);
                        }
                        Ok(())
                    }
                    Some(_) => {
                        // Knox deletes expired tokens when they are presented.
                        g.tokens.remove(t);
                        Err(unauthorized("Invalid token."))
                    }
                    None => Err(unauthorized("Invalid token.")),
                }
            }
            SeenAuth::ApiKey(k) => match g.api_keys.get(k) {
                Some(true) => Ok(()),
                Some(false) => Err(unauthorized("The token has expired.")),
                None => Err(unauthorized("Invalid token.")),
            },
            SeenAuth::None => Err(unauthorized("Authentication credentials were not provided.")),
        }
    }

    /// DRF's `check_throttles` with the two `AnonRateThrottle` scopes of the endpoint: each scope
    /// drops the requests older than its window, refuses when it holds its rate, else records this
    /// request (a scope that allows records it even when the other refuses). The answer to a
    /// refused request waits for the longest of the scopes' waits.
    fn throttle(&self, route: &Route) -> Option<Answer> {
        let mut g = self.state.lock();
        let rates = g.login_throttle?;
        let now = g.fixed_now.unwrap_or_else(Utc::now);
        let scopes: [(&'static str, u32, i64); 2] = match route {
            Route::CheckCreds => {
                [("check_creds_min", rates.per_minute, 60), ("check_creds_day", rates.per_day, 86_400)]
            }
            Route::Login => [("login_min", rates.per_minute, 60), ("login_day", rates.per_day, 86_400)],
            _ => return None,
        };
        let mut refused = false;
        let mut waits: Vec<f64> = Vec::new();
        for (scope, num, duration) in scopes {
            let history = g.throttle_history.entry(scope).or_default();
            let window_start = now - chrono::Duration::seconds(duration);
            while history.last().is_some_and(|t| *t <= window_start) {
                history.pop();
            }
            if history.len() >= num as usize {
                refused = true;
                // SimpleRateThrottle.wait()
                let remaining = match history.last() {
                    Some(oldest) => duration as f64 - (now - *oldest).as_seconds_f64(),
                    None => duration as f64,
                };
                let available = num as i64 - history.len() as i64 + 1;
                if available > 0 {
                    waits.push(remaining / available as f64);
                }
            } else {
                history.insert(0, now);
            }
        }
        if !refused {
            return None;
        }
        let wait = waits.into_iter().reduce(f64::max).map(|w| w.ceil().max(0.0) as u64);
        Some(match wait {
            Some(n) => {
                let unit = if n == 1 { "second" } else { "seconds" };
                Answer::detail(
                    StatusCode::TOO_MANY_REQUESTS,
                    &format!("Request was throttled. Expected available in {n} {unit}."),
                )
                .with_header(header::RETRY_AFTER, n.to_string())
            }
            None => Answer::detail(StatusCode::TOO_MANY_REQUESTS, "Request was throttled."),
        })
    }

    fn find_user(&self, body: Option<&Value>) -> Option<SimUser> {
        let body = body?;
        let username = body.get("username")?.as_str()?;
        let password = body.get("password")?.as_str()?;
        self.state.config.users.iter().find(|u| u.username == username && u.password == password).cloned()
    }

    fn issue_token(&self, ttl: Duration) -> (String, DateTime<Utc>) {
        let token = random_token();
        let mut g = self.state.lock();
        let now = g.fixed_now.unwrap_or_else(Utc::now);
        let expires = now + chrono::Duration::from_std(ttl).unwrap_or_default();
        g.tokens.insert(token.clone(), Token { expires });
        g.tokens_issued += 1;
        (token, expires)
    }

    fn checkcreds(&self, body: Option<&Value>) -> Answer {
        let Some(user) = self.find_user(body) else {
            return Answer::json(StatusCode::BAD_REQUEST, &json!("Bad credentials"));
        };
        if user.totp_code.is_some() {
            return Answer::ok(&json!({"totp": true}));
        }
        let (token, expiry) = self.issue_token(self.state.config.checkcreds_token_ttl);
        Answer::ok(&json!({"expiry": render::dt(expiry), "token": token, "totp": false}))
    }

    fn login(&self, body: Option<&Value>) -> Answer {
        let Some(user) = self.find_user(body) else {
            return Answer::json(
                StatusCode::BAD_REQUEST,
                &json!({"non_field_errors": ["Unable to log in with provided credentials."]}),
            );
        };
        // Tactical reads request.data["twofactor"] unconditionally: a KeyError is a 500.
        let Some(code) = body.and_then(|b| b.get("twofactor")) else {
            return Answer::html(StatusCode::INTERNAL_SERVER_ERROR, &server_error_page(500));
        };
        if let Some(expected) = &user.totp_code
            && code.as_str().map(str::trim) != Some(expected.as_str())
        {
            return Answer::json(StatusCode::BAD_REQUEST, &json!("Bad credentials"));
        }
        let (token, expiry) = self.issue_token(self.state.config.login_token_ttl);
        Answer::ok(&json!({"expiry": render::dt(expiry), "token": token, "username": user.username, "name": null}))
    }

    /// DRF `StandardResultsSetPagination`: default 100, `page_size` capped at 1000 (or at
    /// `SimConfig::max_page_size`), 404 `Invalid page.` out of range, absolute `next`/`previous`.
    fn paginate(&self, items: Vec<Value>, path: &str, q: &Query) -> Answer {
        let w = match self.page_window(items.len(), path, q) {
            Ok(w) => w,
            Err(a) => return a,
        };
        let results: Vec<Value> = items.into_iter().skip(w.start).take(w.end - w.start).collect();
        Answer::ok(&json!({"count": w.count, "next": w.next, "previous": w.previous, "results": results}))
    }

    /// The agents page as [`Self::paginate`] makes it, rendering only the page's agents. With a
    /// padded `wmi_detail` ([`FleetSpec::wmi_detail_kb`]) the page is sent as it is rendered, one
    /// agent at a time, so the simulator never holds a page of padded agents.
    fn agent_page(&self, agents: &[&SimAgent], path: &str, q: &Query) -> Answer {
        let w = match self.page_window(agents.len(), path, q) {
            Ok(w) => w,
            Err(a) => return a,
        };
        let page: Vec<SimAgent> = agents[w.start..w.end].iter().map(|a| (*a).clone()).collect();
        let padded = page.iter().any(|a| a.wmi_detail_kb > 0);
        let head = format!(r#"{{"count":{},"next":{},"previous":{},"results":["#, w.count, w.next, w.previous);
        let rows = page.into_iter().enumerate().map(|(i, a)| {
            let mut out = if i == 0 { Vec::new() } else { vec![b','] };
            let row = render::beta_list_row(&a);
            serde_json::to_writer(&mut out, &render::AgentJson { value: &row, agent: &a }).unwrap_or_default();
            out
        });
        let parts = std::iter::once(head.into_bytes()).chain(rows).chain(std::iter::once(b"]}".to_vec()));
        if padded {
            Answer { stream: Some(Box::new(parts)), ..Answer::json(StatusCode::OK, &Value::Null) }
        } else {
            Answer { body: parts.flatten().collect(), ..Answer::json(StatusCode::OK, &Value::Null) }
        }
    }

    /// Which items of `count` a `page`/`page_size` query asks for, with its links.
    fn page_window(&self, count: usize, path: &str, q: &Query) -> Result<PageWindow, Answer> {
        let size = qget(q, "page_size")
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|n| *n > 0)
            .map(|n| n.min(self.state.config.max_page_size.max(1)))
            .unwrap_or(100);
        let pages = count.div_ceil(size).max(1);
        let page = match qget(q, "page") {
            None => 1,
            Some("last") => pages,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n >= 1 && n <= pages => n,
                _ => return Err(Answer::detail(StatusCode::NOT_FOUND, "Invalid page.")),
            },
        };
        let link = |p: usize| -> String {
            let mut pairs: Vec<(String, String)> = q.iter().filter(|(k, _)| k != "page").cloned().collect();
            if p > 1 {
                pairs.push(("page".into(), p.to_string()));
            }
            let mut ser = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in &pairs {
                ser.append_pair(k, v);
            }
            let qs = ser.finish();
            if qs.is_empty() {
                format!("{}{path}", self.state.base_url)
            } else {
                format!("{}{path}?{qs}", self.state.base_url)
            }
        };
        let start = ((page - 1) * size).min(count);
        Ok(PageWindow {
            count,
            start,
            end: (start + size).min(count),
            next: if page < pages { Value::from(link(page + 1)) } else { Value::Null },
            previous: if page > 1 { Value::from(link(page - 1)) } else { Value::Null },
        })
    }
}

/// One page of a paginated list: `start..end` of `count` items, and the page's links.
struct PageWindow {
    count: usize,
    start: usize,
    end: usize,
    next: Value,
    previous: Value,
}

fn parse_filter_datetime(v: &str) -> Option<DateTime<Utc>> {
    if let Ok(d) = DateTime::parse_from_rfc3339(v.trim()) {
        return Some(d.with_timezone(&Utc));
    }
    let t = v.trim().replacen(' ', "T", 1);
    if let Ok(d) = DateTime::parse_from_rfc3339(&t) {
        return Some(d.with_timezone(&Utc));
    }
    chrono::NaiveDateTime::parse_from_str(&t, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(&t, "%Y-%m-%d").map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default())
        })
        .ok()
        .map(|n| n.and_utc())
}

/// Tactical's `AgentFilter` on the beta list.
fn filter_agents<'a>(f: &'a Fleet, q: &Query) -> Result<Vec<&'a SimAgent>, Answer> {
    let int = |key: &str| -> Result<Option<i64>, Answer> {
        match qget(q, key) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse::<i64>()
                .map(Some)
                .map_err(|_| Answer::json(StatusCode::BAD_REQUEST, &json!({ key: ["Enter a number."] }))),
        }
    };
    let date = |key: &str| -> Result<Option<DateTime<Utc>>, Answer> {
        match qget(q, key) {
            None | Some("") => Ok(None),
            Some(v) => parse_filter_datetime(v).map(Some).ok_or_else(|| {
                Answer::json(StatusCode::BAD_REQUEST, &json!({"last_seen_range": ["Enter a valid date/time."]}))
            }),
        }
    };
    let client_id = int("client_id")?;
    let site = int("site")?;
    let id = int("id")?;
    let after = date("last_seen_range_after")?;
    let before = date("last_seen_range_before")?;
    let text = |key: &str| qget(q, key).filter(|v| !v.is_empty()).map(str::to_owned);
    let (hostname, agent_id, plat, monitoring_type) =
        (text("hostname"), text("agent_id"), text("plat"), text("monitoring_type"));
    let search = text("search").map(|s| s.to_lowercase());
    Ok(f.agents
        .iter()
        .filter(|a| client_id.is_none_or(|c| f.client_of(a) == Some(c)))
        .filter(|a| site.is_none_or(|s| a.site == s))
        .filter(|a| id.is_none_or(|i| a.id == i))
        .filter(|a| hostname.as_ref().is_none_or(|h| &a.hostname == h))
        .filter(|a| agent_id.as_ref().is_none_or(|x| &a.agent_id == x))
        .filter(|a| plat.as_ref().is_none_or(|p| a.plat.as_str() == p))
        .filter(|a| monitoring_type.as_ref().is_none_or(|m| &a.monitoring_type == m))
        .filter(|a| after.is_none_or(|t| a.last_seen.is_some_and(|s| s >= t)))
        .filter(|a| before.is_none_or(|t| a.last_seen.is_some_and(|s| s <= t)))
        .filter(|a| search.as_ref().is_none_or(|s| a.hostname.to_lowercase().contains(s)))
        .collect())
}

/// `PATCH /alerts/` (`GetAddAlerts.patch`).
fn alerts(f: &Fleet, body: Option<&Value>, now: DateTime<Utc>) -> Answer {
    let render_one = |al: &SimAlert| {
        let agent = f.agent(al.agent);
        let site = agent.and_then(|a| f.site(a.site));
        render::alert(al, agent, site, site.and_then(|s| f.client(s.client)))
    };
    let empty = serde_json::Map::new();
    let body = body.and_then(Value::as_object).unwrap_or(&empty);
    let truthy = |v: &Value| match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    };
    if let Some(top) = body.get("top") {
        let n = top.as_u64().or_else(|| top.as_str().and_then(|s| s.parse().ok())).unwrap_or(10) as usize;
        let mut active: Vec<&SimAlert> = f.alerts.iter().filter(|a| !a.resolved && !a.snoozed && !a.hidden).collect();
        active.sort_by_key(|a| a.alert_time);
        return Answer::ok(&json!({
            "alerts_count": active.len(),
            "alerts": active.iter().take(n).map(|a| render_one(a)).collect::<Vec<_>>(),
        }));
    }
    let filter_keys = ["timeFilter", "clientFilter", "severityFilter", "resolvedFilter", "snoozedFilter"];
    if !filter_keys.iter().any(|k| body.contains_key(*k)) {
        return Answer::ok(&Value::Array(f.alerts.iter().map(render_one).collect()));
    }
    let clients: Option<HashSet<i64>> =
        body.get("clientFilter").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_i64).collect());
    let severities: Option<HashSet<String>> = body
        .get("severityFilter")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect());
    let resolved_only_unresolved = body.get("resolvedFilter").is_some_and(|v| !truthy(v));
    let snoozed_only_unsnoozed = body.get("snoozedFilter").is_some_and(|v| !truthy(v));
    let since = body.get("timeFilter").and_then(Value::as_i64).map(|d| now - chrono::Duration::days(d));
    let items: Vec<Value> = f
        .alerts
        .iter()
        .filter(|a| {
            clients
                .as_ref()
                .is_none_or(|c| f.agent(a.agent).and_then(|ag| f.client_of(ag)).is_some_and(|id| c.contains(&id)))
        })
        .filter(|a| severities.as_ref().is_none_or(|s| s.contains(&a.severity)))
        .filter(|a| !resolved_only_unresolved || !a.resolved)
        .filter(|a| !snoozed_only_unsnoozed || !a.snoozed)
        .filter(|a| since.is_none_or(|t| a.alert_time > t))
        .map(render_one)
        .collect();
    Answer::ok(&Value::Array(items))
}
