//! The Tactical RMM REST client. Every call goes through [`crate::http::HttpClient`].
//!
//! Differences from AlgaPSA's client, all on purpose (see docs/tactical-setup.md):
//! - Knox: `POST /v2/checkcreds/` already returns a usable token for accounts without TOTP, so
//!   that token is used; `/v2/login/` is only called with a TOTP code (`twofactor`), because the
//!   real server answers 500 without it.
//! - Knox logins are throttled by Tactical (since 1.5.0: 10 a minute, 300 a day per address), so a
//!   client logs in only when it has no token or its token is refused, and only after reading
//!   the stored token again ([`TokenSink::stored_token`]: another job or process may have saved a
//!   newer one). Clients of one account share a [`LoginGate`]: one login at a time, the others
//!   reuse its token. A 429 on a login is [`TacticalError::LoginThrottled`], never retried, and
//!   remembered by the gate until Tactical's `Retry-After` has passed.
//! - Single agents are read with `GET /agents/<agent_id>/` (the beta detail takes the integer pk).
//! - Active alerts are asked with `{"resolvedFilter": false, "snoozedFilter": false}`.
//! - `GET /software/` is one row per agent keyed by the integer pk; it is parsed as a stream.
//! - Agent pages are parsed as a stream too, each agent into its compact form (no `wmi_detail`
//!   tree), so a page's memory does not grow with the agents' inventory data.
//! - Page walks have a page guard, and a 404 `Invalid page.` past the end ends the walk.
//! - The base path is kept for every endpoint (AlgaPSA drops it for checkcreds/login).

use std::fmt;
use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use chrono::{DateTime, SecondsFormat, Utc};
use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::{Semaphore, SemaphorePermit, mpsc};
use tracing::Instrument;
use url::Url;

use super::error::TacticalError;
use super::model::{
    ActiveAlertsFilter, Agent, Alert, CheckCredsResponse, Client, LoginResponse, RawRecord, Site, SoftwareRow,
};
use super::parse::{self, ListPage};
use crate::http::{HttpClient, HttpConfig, HttpError, StreamingResponse, UpstreamRequest, UpstreamResponse};

/// Tactical caps `page_size` at 1000 (`StandardResultsSetPagination.max_page_size`).
pub const MAX_PAGE_SIZE: u32 = 1000;

/// The connection test uses a shorter timeout, like AlgaPSA (15 s).
pub const CONNECTION_TEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Normalises an instance URL: trim; add `https://` when there is no scheme;
/// drop trailing slashes; drop a path that is exactly `/api`; drop query, fragment and any
/// userinfo. `None` for an empty or unparseable value.
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
    if path == "/api" {
        path.clear();
    }
    let mut out = format!("{}://{}", url.scheme(), host);
    if let Some(port) = url.port() {
        out.push_str(&format!(":{port}"));
    }
    out.push_str(&path);
    Some(out)
}

/// How the client authenticates.
#[derive(Clone)]
pub enum TacticalAuth {
    /// `X-API-KEY: <key>`.
    ApiKey(SecretString),
    /// `Authorization: Token <knox token>`, obtained from username/password.
    Knox {
        username: String,
        password: SecretString,
        /// A token saved earlier, if any.
        token: Option<SecretString>,
    },
}

impl fmt::Debug for TacticalAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TacticalAuth::ApiKey(_) => f.write_str("ApiKey(<redacted>)"),
            TacticalAuth::Knox { username, token, .. } => f
                .debug_struct("Knox")
                .field("username", username)
                .field("password", &"<redacted>")
                .field("token", &token.as_ref().map(|_| "<redacted>"))
                .finish(),
        }
    }
}

/// Settings of one client.
#[derive(Debug, Clone)]
pub struct TacticalConfig {
    /// As entered by the user; normalised by [`TacticalClient::new`].
    pub instance_url: String,
    pub auth: TacticalAuth,
    pub http: HttpConfig,
    /// Requested page size (capped at [`MAX_PAGE_SIZE`]).
    pub page_size: u32,
    /// Page guard for one walk.
    pub max_pages: u32,
    /// Timeout for `GET /software/`, whose answer covers every agent.
    pub software_timeout: Duration,
    /// Largest agent page body ([`DEFAULT_MAX_PAGE_BYTES`]). Pages are parsed while they arrive
    /// and never held whole, so this bounds the transfer, not the memory.
    pub max_page_bytes: usize,
}

/// [`TacticalConfig::max_page_bytes`] by default: 1 GiB, a page of 1,000 agents of up to 1 MiB each
/// (real agents send 20–100 KB of `wmi_detail` and as much of `services`).
pub const DEFAULT_MAX_PAGE_BYTES: usize = 1 << 30;

impl TacticalConfig {
    pub fn new(instance_url: impl Into<String>, auth: TacticalAuth) -> Self {
        TacticalConfig {
            instance_url: instance_url.into(),
            auth,
            http: HttpConfig { provider: super::PROVIDER.slug(), ..HttpConfig::default() },
            page_size: MAX_PAGE_SIZE,
            max_pages: 10_000,
            software_timeout: Duration::from_secs(300),
            max_page_bytes: DEFAULT_MAX_PAGE_BYTES,
        }
    }
}

/// Called after a new Knox token was obtained, so the caller can store it
/// (AlgaPSA's tenant secret `tacticalrmm_knox_token`).
pub trait TokenSink: Send + Sync {
    fn on_token_refreshed<'a>(&'a self, token: &'a SecretString) -> BoxFuture<'a, ()>;

    /// The token stored now. Asked before every login: another client (another job, another
    /// worker process) may have stored one since this client read it, and then no login is
    /// needed. The default stores nothing that can be read back.
    fn stored_token(&self) -> BoxFuture<'_, Option<SecretString>> {
        Box::pin(async { None })
    }
}

/// A [`TokenSink`] from a plain closure.
pub struct FnTokenSink<F>(pub F);

impl<F> TokenSink for FnTokenSink<F>
where
    F: Fn(&SecretString) + Send + Sync,
{
    fn on_token_refreshed<'a>(&'a self, token: &'a SecretString) -> BoxFuture<'a, ()> {
        (self.0)(token);
        Box::pin(async {})
    }
}

/// How long a throttled login without `Retry-After` keeps further logins from being tried
/// (Tactical's shortest throttle window is a minute).
pub const LOGIN_THROTTLE_DEFAULT_WAIT: Duration = Duration::from_secs(60);

/// What every client of one Knox account shares (make one per account and hand it to each client
/// with [`TacticalClient::with_login_gate`]; a client without one has its own). Logins through it
/// happen one at a time, so clients that find their token missing or refused together log in once
/// and the others reuse that token; and after Tactical throttled a login (429), no client of the
/// gate tries another until Tactical's `Retry-After` has passed: each gets
/// [`TacticalError::LoginThrottled`] at once.
#[derive(Debug, Default)]
pub struct LoginGate {
    state: tokio::sync::Mutex<GateState>,
}

#[derive(Debug, Default)]
struct GateState {
    /// The endpoint that answered 429, and until when logins are not tried.
    throttled: Option<(String, Instant)>,
}

impl LoginGate {
    pub fn new() -> Arc<LoginGate> {
        Arc::new(LoginGate::default())
    }
}

impl GateState {
    /// The error for a login not tried because an earlier one was throttled, while that lasts.
    fn still_throttled(&mut self) -> Option<TacticalError> {
        let (endpoint, until) = self.throttled.as_ref()?;
        let now = Instant::now();
        if *until <= now {
            self.throttled = None;
            return None;
        }
        Some(TacticalError::LoginThrottled { endpoint: endpoint.clone(), retry_after: Some(*until - now) })
    }

    /// Remembers a throttled login.
    fn note(&mut self, result: &Result<impl Sized, TacticalError>) {
        if let Err(TacticalError::LoginThrottled { endpoint, retry_after }) = result {
            let wait = retry_after.unwrap_or(LOGIN_THROTTLE_DEFAULT_WAIT);
            self.throttled = Some((endpoint.clone(), Instant::now() + wait));
        }
    }
}

/// Where the token a refresh hands back comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fresh {
    /// This client logged in.
    LoggedIn,
    /// Another task of this client, or another client through the store, had replaced the token.
    Reused,
}

/// What `POST /v2/checkcreds/` said.
#[derive(Debug)]
pub enum CheckCreds {
    /// A usable token (accounts without TOTP; Tactical gives it a 180-second TTL that Knox
    /// extends on use).
    Token { token: SecretString, expiry: Option<String> },
    /// The account has TOTP: call [`TacticalClient::login_with_totp`] with a code.
    TotpRequired,
}

/// Filters of `GET /beta/v1/agent/` (Tactical's `AgentFilter`).
#[derive(Debug, Clone, Default)]
pub struct AgentQuery {
    /// Client pk (`site__client__id`).
    pub client_id: Option<i64>,
    /// Site pk.
    pub site: Option<i64>,
    pub agent_id: Option<String>,
    /// Exact match.
    pub hostname: Option<String>,
    pub monitoring_type: Option<String>,
    /// `last_seen >= value`. Server-side: agents with a null `last_seen` are excluded.
    pub last_seen_after: Option<DateTime<Utc>>,
    /// `last_seen <= value`.
    pub last_seen_before: Option<DateTime<Utc>>,
}

impl AgentQuery {
    pub fn for_client(client_id: i64) -> Self {
        AgentQuery { client_id: Some(client_id), ..AgentQuery::default() }
    }

    fn params(&self) -> Vec<(&'static str, String)> {
        let mut p = Vec::new();
        if let Some(v) = self.client_id {
            p.push(("client_id", v.to_string()));
        }
        if let Some(v) = self.site {
            p.push(("site", v.to_string()));
        }
        if let Some(v) = &self.agent_id {
            p.push(("agent_id", v.clone()));
        }
        if let Some(v) = &self.hostname {
            p.push(("hostname", v.clone()));
        }
        if let Some(v) = &self.monitoring_type {
            p.push(("monitoring_type", v.clone()));
        }
        if let Some(v) = self.last_seen_after {
            p.push(("last_seen_range_after", v.to_rfc3339_opts(SecondsFormat::Micros, false)));
        }
        if let Some(v) = self.last_seen_before {
            p.push(("last_seen_range_before", v.to_rfc3339_opts(SecondsFormat::Micros, false)));
        }
        p
    }
}

enum AuthState {
    ApiKey(SecretString),
    Knox {
        username: String,
        password: SecretString,
        /// The current token and its generation (bumped on every refresh).
        token: Mutex<(u64, Option<SecretString>)>,
        /// Serialises logins (concurrent 401s share one checkcreds call) and remembers a throttle.
        gate: Arc<LoginGate>,
    },
}

/// A client for one Tactical instance. Share it behind an `Arc`.
pub struct TacticalClient {
    http: HttpClient,
    base: Url,
    base_display: String,
    auth: AuthState,
    sink: Option<Arc<dyn TokenSink>>,
    page_size: u32,
    max_pages: u32,
    software_timeout: Duration,
    max_page_bytes: usize,
    refreshes: AtomicU64,
}

impl fmt::Debug for TacticalClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TacticalClient")
            .field("base_url", &self.base_display)
            .field(
                "auth",
                &match self.auth {
                    AuthState::ApiKey(_) => "api_key",
                    AuthState::Knox { .. } => "knox",
                },
            )
            .finish()
    }
}

impl TacticalClient {
    /// Validates the configuration and builds the client on the process-wide HTTP layer.
    pub fn new(config: TacticalConfig) -> Result<Self, TacticalError> {
        let http = HttpClient::new(config.http.clone())?;
        Self::with_http(config, http)
    }

    /// Same as [`TacticalClient::new`] with a given HTTP client (its own limiter, for instance).
    pub fn with_http(config: TacticalConfig, http: HttpClient) -> Result<Self, TacticalError> {
        let base_display = normalize_base_url(&config.instance_url).ok_or(TacticalError::InstanceUrlNotConfigured)?;
        let base = Url::parse(&base_display).map_err(|_| TacticalError::InstanceUrlNotConfigured)?;
        let auth = match config.auth {
            TacticalAuth::ApiKey(key) => {
                if key.expose_secret().trim().is_empty() {
                    return Err(TacticalError::ApiKeyNotConfigured);
                }
                AuthState::ApiKey(SecretString::from(key.expose_secret().trim().to_owned()))
            }
            TacticalAuth::Knox { username, password, token } => {
                if username.trim().is_empty() || password.expose_secret().is_empty() {
                    return Err(TacticalError::KnoxCredentialsNotConfigured);
                }
                let token = token.filter(|t| !t.expose_secret().trim().is_empty());
                AuthState::Knox {
                    username: username.trim().to_owned(),
                    password,
                    token: Mutex::new((0, token)),
                    gate: LoginGate::new(),
                }
            }
        };
        Ok(TacticalClient {
            http,
            base,
            base_display,
            auth,
            sink: None,
            page_size: config.page_size.clamp(1, MAX_PAGE_SIZE),
            max_pages: config.max_pages.max(1),
            software_timeout: config.software_timeout,
            max_page_bytes: config.max_page_bytes,
            refreshes: AtomicU64::new(0),
        })
    }

    /// Register the hook that stores refreshed Knox tokens.
    pub fn with_token_sink(mut self, sink: Arc<dyn TokenSink>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// Share a [`LoginGate`] with the other clients of the same Knox account. No-op in API-key mode.
    pub fn with_login_gate(mut self, shared: Arc<LoginGate>) -> Self {
        if let AuthState::Knox { gate, .. } = &mut self.auth {
            *gate = shared;
        }
        self
    }

    /// The normalised base URL.
    pub fn base_url(&self) -> &str {
        &self.base_display
    }

    /// How many Knox tokens this client obtained (checkcreds or TOTP login).
    pub fn token_refresh_count(&self) -> u64 {
        self.refreshes.load(Ordering::Relaxed)
    }

    /// `<base>/<segments…>/` with a query.
    fn endpoint(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            path.extend(segments);
            path.push("");
        }
        if !query.is_empty() {
            let mut q = url.query_pairs_mut();
            for (k, v) in query {
                q.append_pair(k, v);
            }
        }
        url
    }

    // ---- auth -------------------------------------------------------------------------------

    fn current_token(&self) -> (u64, Option<SecretString>) {
        match &self.auth {
            AuthState::Knox { token, .. } => token.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            AuthState::ApiKey(_) => (0, None),
        }
    }

    /// Makes `new` the current token (a new generation).
    fn use_token(&self, new: &SecretString) {
        if let AuthState::Knox { token, .. } = &self.auth {
            let mut guard = token.lock().unwrap_or_else(|e| e.into_inner());
            guard.0 += 1;
            guard.1 = Some(new.clone());
        }
    }

    /// A token this client obtained: current, counted, handed to the sink.
    async fn store_token(&self, new: SecretString) {
        self.use_token(&new);
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        if let Some(sink) = &self.sink {
            sink.on_token_refreshed(&new).await;
        }
    }

    /// `POST /v2/checkcreds/`. For accounts without TOTP the answer carries a usable token.
    pub async fn check_creds(&self) -> Result<CheckCreds, TacticalError> {
        let AuthState::Knox { username, password, .. } = &self.auth else {
            return Err(TacticalError::KnoxCredentialsNotConfigured);
        };
        #[derive(Serialize)]
        struct Body<'a> {
            username: &'a str,
            password: &'a str,
        }
        let endpoint = "POST /v2/checkcreds/";
        let url = self.endpoint(&["v2", "checkcreds"], &[]);
        let req = UpstreamRequest::post(url).json(&Body { username, password: password.expose_secret() })?;
        let resp = self.send_login(req, endpoint).await?;
        let parsed: CheckCredsResponse = self.parse_json(&resp, endpoint)?;
        if parsed.totp {
            return Ok(CheckCreds::TotpRequired);
        }
        match parsed.token {
            Some(token) if !token.expose_secret().is_empty() => Ok(CheckCreds::Token { token, expiry: parsed.expiry }),
            _ => Err(TacticalError::NoToken),
        }
    }

    /// A login request (no auth header): a 429 is Tactical's login throttle, returned at once as
    /// [`TacticalError::LoginThrottled`] and never repeated in place.
    async fn send_login(&self, req: UpstreamRequest, endpoint: &str) -> Result<UpstreamResponse, TacticalError> {
        match self.http.send(req.final_on_429()).instrument(call_span(endpoint)).await {
            Err(e @ HttpError::RateLimited { .. }) => {
                let retry_after = e.retry_after();
                tracing::warn!(
                    endpoint,
                    retry_after_secs = retry_after.map(|d| d.as_secs()),
                    "Tactical throttled a Knox login; not retrying"
                );
                Err(TacticalError::LoginThrottled { endpoint: endpoint.to_owned(), retry_after })
            }
            other => Ok(other?),
        }
    }

    /// Knox mode: obtain a token without a person (checkcreds), store it and hand it to the sink.
    /// Fails with [`TacticalError::TotpRequired`] for TOTP accounts, and without a call while a
    /// throttled login of the gate lasts. No-op in API-key mode.
    pub async fn authenticate(&self) -> Result<(), TacticalError> {
        let AuthState::Knox { gate, .. } = &self.auth else { return Ok(()) };
        let mut state = gate.state.lock().await;
        self.gated_login(&mut state).await.map(drop)
    }

    /// A checkcreds login under the gate (held by the caller): refused without a call while a
    /// throttled login lasts; the answer is noted; a token is stored and handed to the sink.
    async fn gated_login(&self, state: &mut GateState) -> Result<SecretString, TacticalError> {
        if let Some(e) = state.still_throttled() {
            return Err(e);
        }
        let result = self.check_creds().await;
        state.note(&result);
        match result? {
            CheckCreds::Token { token, .. } => {
                self.store_token(token.clone()).await;
                Ok(token)
            }
            CheckCreds::TotpRequired => Err(TacticalError::TotpRequired),
        }
    }

    /// `POST /v2/login/` with a TOTP code; stores the token and hands it to the sink. Refused
    /// without a call while a throttled login of the gate lasts.
    pub async fn login_with_totp(&self, code: &str) -> Result<(), TacticalError> {
        let AuthState::Knox { gate, .. } = &self.auth else {
            return Err(TacticalError::KnoxCredentialsNotConfigured);
        };
        let mut state = gate.state.lock().await;
        if let Some(e) = state.still_throttled() {
            return Err(e);
        }
        let result = self.totp_login(code).await;
        state.note(&result);
        result
    }

    async fn totp_login(&self, code: &str) -> Result<(), TacticalError> {
        let AuthState::Knox { username, password, .. } = &self.auth else {
            return Err(TacticalError::KnoxCredentialsNotConfigured);
        };
        #[derive(Serialize)]
        struct Body<'a> {
            username: &'a str,
            password: &'a str,
            twofactor: &'a str,
        }
        let endpoint = "POST /v2/login/";
        let url = self.endpoint(&["v2", "login"], &[]);
        let body = Body { username, password: password.expose_secret(), twofactor: code.trim() };
        let req = UpstreamRequest::post(url).json(&body)?;
        let resp = self.send_login(req, endpoint).await?;
        let parsed: LoginResponse = self.parse_json(&resp, endpoint)?;
        match parsed.token {
            Some(token) if !token.expose_secret().is_empty() => {
                self.store_token(token).await;
                Ok(())
            }
            _ => Err(TacticalError::NoToken),
        }
    }

    /// A token to replace `refused` (`None`: there was none), in this order: the one another task
    /// of this client got since generation `seen`; the stored one, when it is not the refused one
    /// (another job or process logged in); a login, unless the gate still remembers a throttled
    /// one. Logins of clients sharing the gate happen one at a time.
    async fn refresh_token(
        &self,
        seen: u64,
        refused: Option<&SecretString>,
    ) -> Result<(SecretString, Fresh), TacticalError> {
        let AuthState::Knox { gate, .. } = &self.auth else {
            return Err(TacticalError::KnoxCredentialsNotConfigured);
        };
        let mut state = gate.state.lock().await;
        if let (generation, Some(token)) = self.current_token()
            && generation != seen
        {
            return Ok((token, Fresh::Reused));
        }
        if let Some(sink) = &self.sink
            && let Some(stored) = sink.stored_token().await
            && !stored.expose_secret().trim().is_empty()
            && refused.is_none_or(|r| r.expose_secret() != stored.expose_secret())
        {
            self.use_token(&stored);
            return Ok((stored, Fresh::Reused));
        }
        Ok((self.gated_login(&mut state).await?, Fresh::LoggedIn))
    }

    /// Sends with auth; in Knox mode a missing token is obtained first, and a 401 replaces the
    /// token ([`Self::refresh_token`]) and repeats the request: at most one login per request (a
    /// 401 right after it is returned), and a token reused from the store that is refused too
    /// leads to that login. All of it is one span (when traces are exported), named after
    /// `endpoint`, holding the span of each HTTP attempt.
    async fn authed<T, F>(&self, req: UpstreamRequest, endpoint: &str, send: F) -> Result<T, TacticalError>
    where
        F: for<'a> Fn(&'a HttpClient, UpstreamRequest) -> BoxFuture<'a, Result<T, HttpError>>,
    {
        let span = call_span(endpoint);
        let result = self.authed_inner(req, send).instrument(span.clone()).await;
        if let Err(e) = &result {
            crate::telemetry::mark_error(&span, e.to_string());
        }
        result
    }

    async fn authed_inner<T, F>(&self, req: UpstreamRequest, send: F) -> Result<T, TacticalError>
    where
        F: for<'a> Fn(&'a HttpClient, UpstreamRequest) -> BoxFuture<'a, Result<T, HttpError>>,
    {
        match &self.auth {
            AuthState::ApiKey(key) => Ok(send(&self.http, req.secret_header("x-api-key", key)?).await?),
            AuthState::Knox { .. } => {
                let (generation, token) = self.current_token();
                let (mut token, mut logged_in) = match token {
                    Some(t) => (t, false),
                    None => {
                        let (t, fresh) = self.refresh_token(generation, None).await?;
                        (t, fresh == Fresh::LoggedIn)
                    }
                };
                // Tokens reused (from another task or the store) before giving up without a login.
                let mut reuses = 0;
                loop {
                    let (generation, _) = self.current_token();
                    let attempt = req.clone().secret_header_with_prefix("authorization", "Token ", &token)?;
                    match send(&self.http, attempt).await {
                        Err(e) if e.status() == Some(401) && !logged_in && reuses < 2 => {
                            let (t, fresh) = self.refresh_token(generation, Some(&token)).await?;
                            token = t;
                            match fresh {
                                Fresh::LoggedIn => logged_in = true,
                                Fresh::Reused => reuses += 1,
                            }
                        }
                        other => return Ok(other?),
                    }
                }
            }
        }
    }

    async fn send_authed(&self, req: UpstreamRequest, endpoint: &str) -> Result<UpstreamResponse, TacticalError> {
        self.authed(req, endpoint, |http, r| Box::pin(http.send(r))).await
    }

    // ---- parsing ----------------------------------------------------------------------------

    fn check_not_html(resp: &UpstreamResponse, endpoint: &str) -> Result<(), TacticalError> {
        let html_type = resp.content_type().is_some_and(|t| t == "text/html" || t == "application/xhtml+xml");
        let html_body = resp.body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<');
        if html_type || html_body {
            return Err(TacticalError::DashboardHost { endpoint: endpoint.to_owned() });
        }
        Ok(())
    }

    fn parse_json<T: DeserializeOwned>(&self, resp: &UpstreamResponse, endpoint: &str) -> Result<T, TacticalError> {
        Self::check_not_html(resp, endpoint)?;
        serde_json::from_slice(&resp.body).map_err(|e| invalid(endpoint, &e))
    }

    async fn get_value(&self, url: Url, endpoint: &str) -> Result<Value, TacticalError> {
        let resp = self.send_authed(UpstreamRequest::get(url), endpoint).await?;
        self.parse_json(&resp, endpoint)
    }

    // ---- endpoints --------------------------------------------------------------------------

    /// The connection test: `GET /beta/v1/client/` with a 15-second timeout.
    pub async fn test_connection(&self) -> Result<usize, TacticalError> {
        let url = self.endpoint(&["beta", "v1", "client"], &[]);
        let resp = self
            .send_authed(UpstreamRequest::get(url).timeout(CONNECTION_TEST_TIMEOUT), "GET /beta/v1/client/")
            .await?;
        let v: Value = self.parse_json(&resp, "GET /beta/v1/client/")?;
        match v {
            Value::Array(a) => Ok(a.len()),
            Value::Object(o) if o.contains_key("results") => {
                Ok(o.get("count").and_then(Value::as_u64).unwrap_or(0) as usize)
            }
            _ => Err(TacticalError::InvalidResponse {
                endpoint: "GET /beta/v1/client/".into(),
                reason: "expected a JSON array of clients".into(),
            }),
        }
    }

    /// A page walker over a beta list endpoint.
    pub fn pages<'c>(&'c self, segments: &[&str], params: Vec<(&'static str, String)>) -> BetaPager<'c> {
        let endpoint = format!("GET /{}/", segments.join("/"));
        BetaPager {
            client: self,
            segments: segments.iter().map(|s| (*s).to_owned()).collect(),
            params,
            endpoint,
            page: 0,
            done: false,
        }
    }

    async fn collect_all<T: RawRecord>(&self, mut pager: BetaPager<'_>) -> Result<Vec<T>, TacticalError> {
        let mut out = Vec::new();
        while let Some(page) = pager.next_values().await? {
            for v in page {
                out.push(T::from_value(v).map_err(|e| invalid(&pager.endpoint, &e))?);
            }
        }
        Ok(out)
    }

    /// `GET /beta/v1/client/` (a bare array on the real server).
    pub async fn list_clients(&self) -> Result<Vec<Client>, TacticalError> {
        self.collect_all(self.pages(&["beta", "v1", "client"], Vec::new())).await
    }

    /// `GET /beta/v1/site/`, every page.
    pub async fn list_sites(&self) -> Result<Vec<Site>, TacticalError> {
        self.collect_all(self.pages(&["beta", "v1", "site"], Vec::new())).await
    }

    /// `GET /beta/v1/agent/` with filters, every page.
    pub async fn list_agents(&self, query: &AgentQuery) -> Result<Vec<Agent>, TacticalError> {
        let mut pages = self.agent_pages(query);
        let mut out = Vec::new();
        while let Some(page) = pages.next_page().await? {
            out.extend(page);
        }
        Ok(out)
    }

    /// `GET /beta/v1/agent/` one page at a time, for page-wise ingestion.
    pub fn agent_pages(&self, query: &AgentQuery) -> AgentPager<'_> {
        AgentPager { inner: self.pages(&["beta", "v1", "agent"], query.params()) }
    }

    /// `GET /agents/<agent_id>/` (accepts the string agent id; carries `status`, `local_ips`,
    /// `client` and `site_name`). `None` when Tactical answers 404.
    pub async fn get_agent(&self, agent_id: &str) -> Result<Option<Agent>, TacticalError> {
        let agent_id = agent_id.trim();
        if agent_id.is_empty() {
            return Ok(None);
        }
        let url = self.endpoint(&["agents", agent_id], &[]);
        self.get_one(url, "GET /agents/<agent_id>/").await
    }

    /// `GET /beta/v1/agent/<pk>/`: the beta detail takes the INTEGER pk only.
    pub async fn get_beta_agent(&self, pk: i64) -> Result<Option<Agent>, TacticalError> {
        let url = self.endpoint(&["beta", "v1", "agent", &pk.to_string()], &[]);
        self.get_one(url, "GET /beta/v1/agent/<pk>/").await
    }

    async fn get_one(&self, url: Url, endpoint: &str) -> Result<Option<Agent>, TacticalError> {
        let resp = match self.send_authed(UpstreamRequest::get(url), endpoint).await {
            Ok(resp) => resp,
            Err(e) if e.status() == Some(404) => return Ok(None),
            Err(e) => return Err(e),
        };
        Self::check_not_html(&resp, endpoint)?;
        parse::agent_detail_from_slice(&resp.body).map(Some).map_err(|e| invalid(endpoint, &e))
    }

    /// One agent page, parsed on a blocking thread while it arrives ([`parse::read_agent_page`]):
    /// memory holds a few chunks of the body and the page's compact agents, whatever the size of
    /// each agent's `wmi_detail`. A body over `max_page_bytes` is refused. A transport failure
    /// while the body arrives asks for the page again, as [`HttpClient::send`] does for a body it
    /// reads whole.
    ///
    /// With `turns`, a turn is taken once the answer's head has arrived and before its body is
    /// read, and handed back with the page: waiting on the server holds no turn, reading and
    /// holding the page does.
    async fn agent_page(
        &self,
        url: &Url,
        endpoint: &str,
        turns: Option<&'static Semaphore>,
        turn: &mut Option<SemaphorePermit<'static>>,
    ) -> Result<ListPage<Agent>, TacticalError> {
        let policy = self.http.config().retry;
        let mut attempt = 1;
        loop {
            let req = UpstreamRequest::get(url.clone());
            let resp = self.authed(req, endpoint, |http, r| Box::pin(http.send_streaming(r))).await?;
            if let (Some(turns), None) = (turns, turn.as_ref()) {
                *turn = Some(turns.acquire().await.expect("the semaphore is never closed"));
            }
            let body = StreamedBody::start(resp.limit(self.max_page_bytes)?, endpoint).await?;
            match body.parse(parse::read_agent_page).await {
                Err(TacticalError::Http(e)) if e.is_no_response() && attempt < policy.max_attempts.max(1) => {
                    let delay = policy.backoff_delay(attempt, &mut rand::rng());
                    tracing::debug!(endpoint, attempt, delay_ms = delay.as_millis() as u64, error = %e, "the page broke off; asking for it again");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Unresolved, unsnoozed alerts: `PATCH /alerts/` with
    /// `{"resolvedFilter": false, "snoozedFilter": false}` (a filtered array). Hidden alerts are
    /// included, as Tactical does.
    pub async fn list_active_alerts(&self) -> Result<Vec<Alert>, TacticalError> {
        let endpoint = "PATCH /alerts/";
        let url = self.endpoint(&["alerts"], &[]);
        // A read: safe to repeat.
        let req = UpstreamRequest::patch(url).json(&ActiveAlertsFilter::default())?.idempotent(true);
        let resp = self.send_authed(req, endpoint).await?;
        let v: Value = self.parse_json(&resp, endpoint)?;
        parse::active_alerts(v).map_err(|e| invalid(endpoint, &e))
    }

    /// `GET /software/` as a stream of rows (one per agent), parsed while it arrives.
    pub async fn software(&self) -> Result<SoftwareStream, TacticalError> {
        let endpoint = "GET /software/";
        let url = self.endpoint(&["software"], &[]);
        let req = UpstreamRequest::get(url).timeout(self.software_timeout);
        let resp = self.authed(req, endpoint, |http, r| Box::pin(http.send_streaming(r))).await?;
        Ok(SoftwareStream::start(StreamedBody::start(resp, endpoint).await?))
    }

    /// `GET /software/`, every row collected.
    pub async fn software_all(&self) -> Result<Vec<SoftwareRow>, TacticalError> {
        let mut stream = self.software().await?;
        let mut out = Vec::new();
        while let Some(row) = stream.next().await {
            out.push(row?);
        }
        Ok(out)
    }

    /// `GET /software/<agent_id>/`: one agent's row, `None` when Tactical has none (`[]`).
    pub async fn agent_software(&self, agent_id: &str) -> Result<Option<SoftwareRow>, TacticalError> {
        let endpoint = "GET /software/<agent_id>/";
        let url = self.endpoint(&["software", agent_id.trim()], &[]);
        match self.get_value(url, endpoint).await {
            Ok(v) => parse::agent_software(v).map_err(|e| invalid(endpoint, &e)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

fn invalid(endpoint: &str, e: &serde_json::Error) -> TacticalError {
    let reason = if e.is_eof() { format!("the answer ended early ({e})") } else { e.to_string() };
    TacticalError::InvalidResponse { endpoint: endpoint.to_owned(), reason }
}

/// The span of one Tactical API call (`tactical GET /agents/<agent_id>/`: the endpoint's
/// template, never ids or query values), when traces are exported.
fn call_span(endpoint: &str) -> tracing::Span {
    if !crate::telemetry::exporting() {
        return tracing::Span::none();
    }
    tracing::info_span!("tactical call", otel.name = %format!("tactical {endpoint}"), rmm.provider = super::PROVIDER.slug(),
        rmm.endpoint = %endpoint)
}

/// Walks a beta list endpoint: `page=1,2,…` with `page_size`, until `next` is empty.
/// A bare JSON array is the whole list (the client list). A 404 `Invalid page.` past the first
/// page ends the walk. More than `max_pages` pages is an error.
pub struct BetaPager<'c> {
    client: &'c TacticalClient,
    segments: Vec<String>,
    params: Vec<(&'static str, String)>,
    endpoint: String,
    page: u32,
    done: bool,
}

impl BetaPager<'_> {
    /// The next page's URL (counted against the page guard), `None` after the last page.
    fn next_url(&mut self) -> Result<Option<Url>, TacticalError> {
        if self.done {
            return Ok(None);
        }
        if self.page >= self.client.max_pages {
            self.done = true;
            return Err(TacticalError::TooManyPages {
                endpoint: self.endpoint.clone(),
                max_pages: self.client.max_pages,
            });
        }
        self.page += 1;
        let mut query = vec![("page", self.page.to_string()), ("page_size", self.client.page_size.to_string())];
        query.extend(self.params.iter().cloned());
        let segs: Vec<&str> = self.segments.iter().map(String::as_str).collect();
        Ok(Some(self.client.endpoint(&segs, &query)))
    }

    /// The walk after the answer for the current page: a 404 `Invalid page.` past the first page
    /// ends it; an error ends it with that error; a page without `next` is the last one.
    fn settle<T>(&mut self, answer: Result<ListPage<T>, TacticalError>) -> Result<Option<Vec<T>>, TacticalError> {
        match answer {
            Ok(page) => {
                self.done = !page.has_next;
                Ok(Some(page.items))
            }
            Err(TacticalError::Http(e)) if self.page > 1 && e.status() == Some(404) && is_invalid_page(&e) => {
                self.done = true;
                Ok(None)
            }
            Err(e) => {
                self.done = true;
                Err(e)
            }
        }
    }

    /// The next page's raw records, `None` after the last one.
    pub async fn next_values(&mut self) -> Result<Option<Vec<Value>>, TacticalError> {
        let Some(url) = self.next_url()? else { return Ok(None) };
        let answer = match self.client.get_value(url, &self.endpoint).await {
            Ok(v) => parse::list_page(v).map_err(|e| invalid(&self.endpoint, &e)),
            Err(e) => Err(e),
        };
        self.settle(answer)
    }

    /// The next page of agents, streamed ([`TacticalClient::agent_page`]), `None` after the last.
    async fn next_agents(
        &mut self,
        turns: Option<&'static Semaphore>,
    ) -> Result<Option<(Vec<Agent>, Option<SemaphorePermit<'static>>)>, TacticalError> {
        let Some(url) = self.next_url()? else { return Ok(None) };
        let mut turn = None;
        let answer = self.client.agent_page(&url, &self.endpoint, turns, &mut turn).await;
        Ok(self.settle(answer)?.map(|agents| (agents, turn)))
    }

    /// Pages fetched so far.
    pub fn pages_fetched(&self) -> u32 {
        self.page
    }
}

fn is_invalid_page(e: &HttpError) -> bool {
    e.body().is_some_and(|b| b.contains("Invalid page"))
}

/// Agents one page at a time, each page parsed while it arrives into compact agents (no
/// `wmi_detail` or `services` tree; see [`Agent`]). One page is in memory per pager.
pub struct AgentPager<'c> {
    inner: BetaPager<'c>,
}

impl AgentPager<'_> {
    pub async fn next_page(&mut self) -> Result<Option<Vec<Agent>>, TacticalError> {
        Ok(self.inner.next_agents(None).await?.map(|(agents, _)| agents))
    }

    /// The next page, read only once a turn of `turns` is free. The turn is taken when the
    /// answer's head arrives (after the server's own time, which holds nothing) and is returned
    /// with the page, to be held until the page is written: the number of pages a process reads
    /// and holds at once is bounded by `turns`, not the number of requests waiting on the server.
    pub async fn next_page_within(
        &mut self,
        turns: &'static Semaphore,
    ) -> Result<Option<(Vec<Agent>, SemaphorePermit<'static>)>, TacticalError> {
        match self.inner.next_agents(Some(turns)).await? {
            Some((agents, Some(turn))) => Ok(Some((agents, turn))),
            // Not reached (a page is returned only once its body was read under a turn); a turn
            // is taken anyway so the bound holds whatever the pager does.
            Some((agents, None)) => Ok(Some((agents, turns.acquire().await.expect("the semaphore is never closed")))),
            None => Ok(None),
        }
    }

    pub fn pages_fetched(&self) -> u32 {
        self.inner.pages_fetched()
    }
}

/// `GET /software/` rows, parsed on a blocking thread while the body arrives; memory holds a
/// few chunks and one row at a time. Dropping the stream stops the download.
pub struct SoftwareStream {
    rows: mpsc::Receiver<Result<SoftwareRow, TacticalError>>,
    _pump: Pump,
}

impl SoftwareStream {
    fn start(body: StreamedBody) -> Self {
        let (row_tx, rows) = mpsc::channel::<Result<SoftwareRow, TacticalError>>(64);
        let StreamedBody { mut reader, errors, pump } = body;
        tokio::task::spawn_blocking(move || {
            let result = parse::read_software_rows(&mut reader, |row| row_tx.blocking_send(Ok(row)).is_ok());
            if let Err(e) = result {
                if e.to_string().contains(parse::SOFTWARE_STOPPED) {
                    return;
                }
                let _ = row_tx.blocking_send(Err(errors.of(e)));
            }
        });
        SoftwareStream { rows, _pump: pump }
    }

    /// The next row; `None` at the end. After an error, no more rows follow.
    pub async fn next(&mut self) -> Option<Result<SoftwareRow, TacticalError>> {
        self.rows.recv().await
    }
}

/// A 2xx body read by a blocking parser while it arrives: a task (the pump) forwards its chunks
/// through a bounded channel, so memory holds a few chunks whatever the body's size. Dropping the
/// pump stops the download.
struct StreamedBody {
    reader: io::BufReader<ChannelReader>,
    errors: StreamErrors,
    pump: Pump,
}

/// Aborts the pump task when dropped.
struct Pump(tokio::task::JoinHandle<()>);

impl Drop for Pump {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a parse error of a streamed body means: the transport's failure when the body broke off
/// (the parser then saw it end early), else an invalid answer.
struct StreamErrors {
    endpoint: String,
    transport: Arc<Mutex<Option<HttpError>>>,
}

impl StreamErrors {
    fn of(&self, e: serde_json::Error) -> TacticalError {
        match self.transport.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(http) => TacticalError::Http(http),
            None => invalid(&self.endpoint, &e),
        }
    }
}

impl StreamedBody {
    /// Refuses the dashboard's HTML (by content type or first byte), then starts the pump.
    async fn start(mut resp: StreamingResponse, endpoint: &str) -> Result<Self, TacticalError> {
        if resp.content_type().is_some_and(|t| t == "text/html") {
            return Err(TacticalError::DashboardHost { endpoint: endpoint.into() });
        }
        // Peek the first bytes: an HTML page with a JSON content type is still the dashboard.
        let first = resp.chunk().await?.unwrap_or_default();
        if first.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<') {
            return Err(TacticalError::DashboardHost { endpoint: endpoint.into() });
        }
        let (chunk_tx, chunk_rx) = mpsc::channel::<Bytes>(8);
        let transport: Arc<Mutex<Option<HttpError>>> = Arc::default();
        let pump_error = transport.clone();
        let pump = tokio::spawn(async move {
            if !first.is_empty() && chunk_tx.send(first).await.is_err() {
                return;
            }
            loop {
                match resp.chunk().await {
                    Ok(Some(b)) => {
                        if chunk_tx.send(b).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(e) => {
                        *pump_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                        return;
                    }
                }
            }
        });
        Ok(StreamedBody {
            reader: io::BufReader::with_capacity(64 * 1024, ChannelReader { rx: chunk_rx, current: Bytes::new() }),
            errors: StreamErrors { endpoint: endpoint.to_owned(), transport },
            pump: Pump(pump),
        })
    }

    /// Runs `parse` over the whole body on a blocking thread.
    async fn parse<T, F>(self, parse: F) -> Result<T, TacticalError>
    where
        T: Send + 'static,
        F: FnOnce(io::BufReader<ChannelReader>) -> Result<T, serde_json::Error> + Send + 'static,
    {
        let StreamedBody { reader, errors, pump } = self;
        let endpoint = errors.endpoint.clone();
        let parsed = tokio::task::spawn_blocking(move || parse(reader).map_err(|e| errors.of(e))).await;
        drop(pump);
        match parsed {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // The runtime is shutting down.
            Err(e) => Err(TacticalError::InvalidResponse { endpoint, reason: format!("the parser stopped: {e}") }),
        }
    }
}

/// A blocking `Read` over the chunks the pump task forwards.
struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(b) => self.current = b,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_normalisation() {
        let n = |s: &str| normalize_base_url(s);
        assert_eq!(n("https://example.com/").as_deref(), Some("https://example.com"));
        assert_eq!(n("http://example.com////").as_deref(), Some("http://example.com"));
        assert_eq!(n("example.com").as_deref(), Some("https://example.com"));
        assert_eq!(n("https://example.com/api").as_deref(), Some("https://example.com"));
        assert_eq!(n("https://example.com/api/").as_deref(), Some("https://example.com"));
        assert_eq!(n("https://example.com/api/v2").as_deref(), Some("https://example.com/api/v2"));
        assert_eq!(n("https://example.com/tactical/").as_deref(), Some("https://example.com/tactical"));
        assert_eq!(n("  https://api.example.com:8443/?x=1#frag ").as_deref(), Some("https://api.example.com:8443"));
        assert_eq!(n("https://user:pw@api.example.com").as_deref(), Some("https://api.example.com"));
        assert_eq!(n("HTTPS://Api.Example.com").as_deref(), Some("https://api.example.com"));
        assert_eq!(n("   "), None);
        assert_eq!(n(""), None);
    }

    #[test]
    fn endpoints_keep_base_path_and_encode_ids() {
        let config = TacticalConfig::new("https://example.com/tactical/", TacticalAuth::ApiKey("k".to_owned().into()));
        let c = TacticalClient::new(config).unwrap();
        assert_eq!(c.endpoint(&["beta", "v1", "agent"], &[]).as_str(), "https://example.com/tactical/beta/v1/agent/");
        assert_eq!(c.endpoint(&["agents", "a b/c"], &[]).as_str(), "https://example.com/tactical/agents/a%20b%2Fc/");
        let q = AgentQuery {
            client_id: Some(3),
            last_seen_after: Some(DateTime::from_timestamp(1_700_000_000, 0).unwrap()),
            ..AgentQuery::default()
        };
        let url = c.endpoint(&["beta", "v1", "agent"], &q.params());
        assert_eq!(
            url.as_str(),
            "https://example.com/tactical/beta/v1/agent/?client_id=3&last_seen_range_after=2023-11-14T22%3A13%3A20.000000%2B00%3A00"
        );
    }

    #[test]
    fn config_validation() {
        let empty_key = TacticalConfig::new("https://x.example", TacticalAuth::ApiKey(String::new().into()));
        assert!(matches!(TacticalClient::new(empty_key), Err(TacticalError::ApiKeyNotConfigured)));
        let no_url = TacticalConfig::new(" ", TacticalAuth::ApiKey("k".to_owned().into()));
        assert!(matches!(TacticalClient::new(no_url), Err(TacticalError::InstanceUrlNotConfigured)));
        let knox = TacticalConfig::new(
            "https://x.example",
            TacticalAuth::Knox { username: " ".into(), password: "p".to_owned().into(), token: None },
        );
        assert!(matches!(TacticalClient::new(knox), Err(TacticalError::KnoxCredentialsNotConfigured)));
        let auth = TacticalAuth::Knox {
            username: "u".into(),
            password: "hunter2".to_owned().into(),
            token: Some("tok".to_owned().into()),
        };
        let dbg = format!("{auth:?}");
        assert!(!dbg.contains("hunter2") && !dbg.contains("tok\""));
    }
}
