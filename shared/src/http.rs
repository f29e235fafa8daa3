//! The upstream HTTP layer shared by every provider client.
//!
//! Every call to an RMM goes through [`HttpClient`]:
//! - a per-request timeout (the whole exchange, body included) and a connect timeout;
//! - bounded retries with exponential backoff and full jitter on connection errors, timeouts and
//!   5xx answers (timeouts and 5xx only for idempotent requests; a connection error is always
//!   retried because the request never reached the server);
//! - `Retry-After` on 429 (and 503): a short wait (≤ [`RetryPolicy::retry_after_threshold`]) is
//!   slept in place, a longer one is returned as [`HttpError::RateLimited`] /
//!   [`HttpError::Status`] carrying the duration, so the job runtime can schedule a durable retry;
//! - a per-upstream rate limit (keyed by the upstream origin) shared by every client of the process
//!   through [`RateLimiterRegistry`], and by every process when the Redis limiter of
//!   [`crate::ratelimit`] is installed ([`install_process_rate_limiter`]);
//! - redirects are never followed;
//! - every attempt is counted per minute in `rmm_sync.upstream_calls` when the client has a
//!   [`CallCounter`] ([`HttpClient::with_call_counter`]; see [`crate::upstream_calls`]).
//! - when traces are exported ([`crate::telemetry`]), each attempt is a client span, child of the
//!   caller's span (the job), and sends that span's `traceparent` to the upstream.
//!
//! Errors never carry credentials: no header values, and URLs are reduced to
//! `scheme://host[:port]/path` (no userinfo, no query string).

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, NaiveDateTime, Utc};
use futures::future::BoxFuture;
use governor::{DefaultDirectRateLimiter, Quota};
use rand::Rng;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use tracing::Instrument;
use url::Url;

use crate::upstream_calls::CallCounter;

/// How many characters of an error body are kept in [`HttpError::Status`].
const ERROR_BODY_LIMIT: usize = 512;

/// Retry behaviour of one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts, the first one included (1 = no retry).
    pub max_attempts: u32,
    /// Backoff cap of the first retry; doubles with every further retry.
    pub base_delay: Duration,
    /// Upper bound of any backoff.
    pub max_delay: Duration,
    /// A `Retry-After` up to this long is waited in place; a longer one is returned to the caller.
    pub retry_after_threshold: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
            retry_after_threshold: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// One attempt, no retry.
    pub fn none() -> Self {
        RetryPolicy { max_attempts: 1, ..RetryPolicy::default() }
    }

    /// The backoff ceiling before retry number `retry` (1 = the first retry):
    /// `min(max_delay, base_delay × 2^(retry-1))`.
    pub fn backoff_ceiling(&self, retry: u32) -> Duration {
        let exp = retry.saturating_sub(1).min(31);
        let factor = 1u64 << exp;
        let base = u64::try_from(self.base_delay.as_micros()).unwrap_or(u64::MAX);
        let ceiling = Duration::from_micros(base.saturating_mul(factor));
        ceiling.min(self.max_delay)
    }

    /// Full jitter: a uniformly random delay in `[0, backoff_ceiling(retry)]`.
    pub fn backoff_delay<R: Rng + ?Sized>(&self, retry: u32, rng: &mut R) -> Duration {
        let ceiling = u64::try_from(self.backoff_ceiling(retry).as_micros()).unwrap_or(u64::MAX);
        if ceiling == 0 {
            return Duration::ZERO;
        }
        Duration::from_micros(rng.random_range(0..=ceiling))
    }
}

/// A request rate for one upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateLimit {
    pub requests_per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

impl RateLimit {
    pub fn per_second(requests_per_second: u32, burst: u32) -> Option<RateLimit> {
        Some(RateLimit { requests_per_second: NonZeroU32::new(requests_per_second)?, burst: NonZeroU32::new(burst)? })
    }
}

/// Settings of one [`HttpClient`].
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Bound on one attempt: connect, send, and read the whole answer.
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    pub retry: RetryPolicy,
    /// Applied per upstream origin, shared by every client in the process.
    pub rate_limit: Option<RateLimit>,
    pub user_agent: String,
    /// Label of the upstream calls in [`upstream_call_counts`] (`tacticalrmm`, `tanium`, …).
    pub provider: &'static str,
    /// Largest 2xx body read whole ([`HttpClient::send`], [`StreamingResponse::bytes`]): a longer
    /// one fails with [`HttpError::TooLarge`] as soon as it is known (its `Content-Length`, or
    /// the byte past the limit), so that a misconfigured URL cannot fill the memory.
    pub max_body_bytes: usize,
}

/// [`HttpConfig::max_body_bytes`] by default: 64 MiB (a page of 1,000 Tactical agents is about
/// 3 MiB; the software list, the one large answer, is streamed).
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 << 20;

/// Upstream calls made by this process, by provider and answer (`200`, `429`, `error`, …).
pub fn upstream_call_counts() -> Vec<((&'static str, String), u64)> {
    let map = upstream_calls().lock().unwrap_or_else(|e| e.into_inner());
    map.iter().map(|(k, v)| (k.clone(), *v)).collect()
}

fn upstream_calls() -> &'static std::sync::Mutex<std::collections::BTreeMap<(&'static str, String), u64>> {
    static CALLS: OnceLock<std::sync::Mutex<std::collections::BTreeMap<(&'static str, String), u64>>> = OnceLock::new();
    CALLS.get_or_init(Default::default)
}

fn count_upstream_call(provider: &'static str, outcome: String) {
    let mut map = upstream_calls().lock().unwrap_or_else(|e| e.into_inner());
    *map.entry((provider, outcome)).or_default() += 1;
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            rate_limit: RateLimit::per_second(10, 20),
            user_agent: concat!("rmm-sync/", env!("CARGO_PKG_VERSION")).to_owned(),
            provider: "upstream",
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

/// Why an upstream call failed. Never contains header values or URLs with credentials.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("invalid upstream request: {0}")]
    InvalidRequest(String),
    #[error("could not connect to {upstream} after {attempts} attempt(s): {reason}")]
    Connect { upstream: String, reason: String, attempts: u32 },
    #[error("{upstream} did not answer within {timeout:?} ({attempts} attempt(s))")]
    Timeout { upstream: String, timeout: Duration, attempts: u32 },
    #[error("transport error talking to {upstream} after {attempts} attempt(s): {reason}")]
    Transport { upstream: String, reason: String, attempts: u32 },
    #[error("{upstream} answered HTTP {status} after {attempts} attempt(s)")]
    Status {
        upstream: String,
        status: u16,
        /// A `Retry-After` the upstream sent with the answer (503 mostly).
        retry_after: Option<Duration>,
        /// The start of the answer body, for diagnostics.
        body: String,
        /// Media type of the answer (`text/html`), when it had one.
        content_type: Option<String>,
        /// A redirect's `Location`, reduced to `scheme://host[:port]/path`.
        location: Option<String>,
        attempts: u32,
    },
    #[error("{upstream} is rate limiting requests (HTTP 429){}", fmt_retry_after(*.retry_after))]
    RateLimited { upstream: String, retry_after: Option<Duration>, attempts: u32 },
    /// A 2xx answer longer than [`HttpConfig::max_body_bytes`]; not read, not retried.
    #[error("{upstream} sent an answer larger than {limit} bytes; it was not read")]
    TooLarge { upstream: String, limit: usize },
}

fn fmt_retry_after(d: Option<Duration>) -> String {
    match d {
        Some(d) => format!("; retry after {}s", d.as_secs()),
        None => String::new(),
    }
}

impl HttpError {
    /// The HTTP status of the final answer, if there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            HttpError::Status { status, .. } => Some(*status),
            HttpError::RateLimited { .. } => Some(429),
            _ => None,
        }
    }

    /// How long the upstream asked us to wait before trying again.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            HttpError::Status { retry_after, .. } | HttpError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// True when no HTTP answer was received (connection failure, timeout, broken transport).
    pub fn is_no_response(&self) -> bool {
        matches!(self, HttpError::Connect { .. } | HttpError::Timeout { .. } | HttpError::Transport { .. })
    }

    /// The start of the error body, for a status error.
    pub fn body(&self) -> Option<&str> {
        match self {
            HttpError::Status { body, .. } => Some(body),
            _ => None,
        }
    }

    /// Whether a later retry (e.g. a delayed job) may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            HttpError::Connect { .. } | HttpError::Timeout { .. } | HttpError::Transport { .. } => true,
            HttpError::RateLimited { .. } => true,
            HttpError::Status { status, .. } => *status >= 500,
            HttpError::InvalidRequest(_) | HttpError::TooLarge { .. } => false,
        }
    }
}

/// `scheme://host[:port]/path` of a URL: no userinfo, no query, no fragment.
pub fn redact_url(url: &Url) -> String {
    let mut s = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(port) = url.port() {
        s.push_str(&format!(":{port}"));
    }
    s.push_str(url.path());
    s
}

/// The rate-limiter key of a URL: its origin (`scheme://host:port`), without credentials.
pub fn upstream_key(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// Parses a `Retry-After` value: delay-seconds or an HTTP-date (IMF-fixdate, RFC 850 or asctime).
/// A date in the past gives zero. Unparseable values give `None`.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let v = value.trim();
    if v.is_empty() {
        return None;
    }
    if v.bytes().all(|b| b.is_ascii_digit()) {
        return v.parse::<u64>().ok().map(Duration::from_secs);
    }
    let at = parse_http_date(v)?;
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

fn parse_http_date(v: &str) -> Option<DateTime<Utc>> {
    if let Ok(d) = DateTime::parse_from_rfc2822(v) {
        return Some(d.with_timezone(&Utc));
    }
    // RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
    if let Some(rest) = v.strip_suffix(" GMT")
        && let Ok(n) = NaiveDateTime::parse_from_str(rest, "%A, %d-%b-%y %H:%M:%S")
    {
        return Some(n.and_utc());
    }
    // asctime: Sun Nov  6 08:49:37 1994
    let squashed = v.split_whitespace().collect::<Vec<_>>().join(" ");
    NaiveDateTime::parse_from_str(&squashed, "%a %b %e %H:%M:%S %Y").ok().map(|n| n.and_utc())
}

/// A per-upstream rate limiter. `acquire` resolves when one request to `upstream` may be sent.
pub trait RateLimiter: Send + Sync + fmt::Debug {
    fn acquire<'a>(&'a self, upstream: &'a str, limit: RateLimit) -> BoxFuture<'a, ()>;
}

static PROCESS_LIMITER: OnceLock<Arc<dyn RateLimiter>> = OnceLock::new();

/// Makes every [`HttpClient`] created afterwards use `limiter` (e.g. the Redis-shared one of
/// [`crate::ratelimit`]); call once at start. `false` when one was installed already.
pub fn install_process_rate_limiter(limiter: Arc<dyn RateLimiter>) -> bool {
    PROCESS_LIMITER.set(limiter).is_ok()
}

/// The installed limiter, else the process-wide in-process registry.
fn process_rate_limiter() -> Arc<dyn RateLimiter> {
    PROCESS_LIMITER.get().cloned().unwrap_or_else(|| RateLimiterRegistry::global())
}

/// In-process limiter: one GCRA bucket (governor) per upstream key.
#[derive(Default)]
pub struct RateLimiterRegistry {
    buckets: Mutex<HashMap<String, (RateLimit, Arc<DefaultDirectRateLimiter>)>>,
}

impl fmt::Debug for RateLimiterRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.buckets.lock().map(|b| b.len()).unwrap_or(0);
        f.debug_struct("RateLimiterRegistry").field("upstreams", &n).finish()
    }
}

impl RateLimiterRegistry {
    pub fn new() -> Self {
        RateLimiterRegistry::default()
    }

    /// The registry shared by every [`HttpClient`] of this process.
    pub fn global() -> Arc<RateLimiterRegistry> {
        static GLOBAL: OnceLock<Arc<RateLimiterRegistry>> = OnceLock::new();
        GLOBAL.get_or_init(|| Arc::new(RateLimiterRegistry::new())).clone()
    }

    /// The bucket of an upstream; a changed limit replaces the bucket.
    fn bucket(&self, upstream: &str, limit: RateLimit) -> Arc<DefaultDirectRateLimiter> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((l, b)) = buckets.get(upstream)
            && *l == limit
        {
            return b.clone();
        }
        let quota = Quota::per_second(limit.requests_per_second).allow_burst(limit.burst);
        let bucket = Arc::new(governor::RateLimiter::direct(quota));
        buckets.insert(upstream.to_owned(), (limit, bucket.clone()));
        bucket
    }
}

impl RateLimiter for RateLimiterRegistry {
    fn acquire<'a>(&'a self, upstream: &'a str, limit: RateLimit) -> BoxFuture<'a, ()> {
        let bucket = self.bucket(upstream, limit);
        Box::pin(async move { bucket.until_ready().await })
    }
}

/// One upstream request. Build it, then hand it to [`HttpClient::send`].
#[derive(Clone)]
pub struct UpstreamRequest {
    method: Method,
    url: Url,
    headers: HeaderMap,
    body: Option<Bytes>,
    idempotent: bool,
    timeout: Option<Duration>,
    retry: Option<RetryPolicy>,
}

impl fmt::Debug for UpstreamRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamRequest")
            .field("method", &self.method)
            .field("url", &redact_url(&self.url))
            .field("headers", &self.headers.keys().map(|k| k.as_str()).collect::<Vec<_>>())
            .field("body_len", &self.body.as_ref().map(|b| b.len()))
            .field("idempotent", &self.idempotent)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl UpstreamRequest {
    /// Methods that are idempotent by definition are retried on timeouts and 5xx; others only
    /// on connection errors unless [`UpstreamRequest::idempotent`] says otherwise.
    pub fn new(method: Method, url: Url) -> Self {
        let idempotent = matches!(
            method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
        );
        UpstreamRequest { method, url, headers: HeaderMap::new(), body: None, idempotent, timeout: None, retry: None }
    }

    pub fn get(url: Url) -> Self {
        UpstreamRequest::new(Method::GET, url)
    }

    pub fn post(url: Url) -> Self {
        UpstreamRequest::new(Method::POST, url)
    }

    pub fn patch(url: Url) -> Self {
        UpstreamRequest::new(Method::PATCH, url)
    }

    pub fn method(&self) -> &Method {
        &self.method
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    /// A plain header.
    pub fn header(mut self, name: &'static str, value: &str) -> Result<Self, HttpError> {
        let v = HeaderValue::from_str(value)
            .map_err(|_| HttpError::InvalidRequest(format!("header {name} has an invalid value")))?;
        self.headers.insert(HeaderName::from_static(name), v);
        Ok(self)
    }

    /// A header carrying a secret: marked sensitive, never printed.
    pub fn secret_header(mut self, name: &'static str, value: &SecretString) -> Result<Self, HttpError> {
        self.set_secret_header(name, value.expose_secret())?;
        Ok(self)
    }

    /// Same as [`UpstreamRequest::secret_header`] with a prefix (`Token <token>`).
    pub fn secret_header_with_prefix(
        mut self,
        name: &'static str,
        prefix: &str,
        value: &SecretString,
    ) -> Result<Self, HttpError> {
        self.set_secret_header(name, &format!("{prefix}{}", value.expose_secret()))?;
        Ok(self)
    }

    fn set_secret_header(&mut self, name: &'static str, value: &str) -> Result<(), HttpError> {
        let mut v = HeaderValue::from_str(value)
            .map_err(|_| HttpError::InvalidRequest(format!("header {name} has an invalid value")))?;
        v.set_sensitive(true);
        self.headers.insert(HeaderName::from_static(name), v);
        Ok(())
    }

    /// A JSON body (`Content-Type: application/json`).
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Result<Self, HttpError> {
        let bytes = serde_json::to_vec(body).map_err(|e| HttpError::InvalidRequest(format!("body: {e}")))?;
        self.headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        self.body = Some(Bytes::from(bytes));
        Ok(self)
    }

    /// Override whether the request may be repeated after a timeout or a 5xx.
    pub fn idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = idempotent;
        self
    }

    /// Override the client's per-attempt timeout for this request.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Override the client's retry policy for this request.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    fn redacted(&self) -> String {
        format!("{} {}", self.method, redact_url(&self.url))
    }
}

/// A buffered 2xx answer.
#[derive(Debug, Clone)]
pub struct UpstreamResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl UpstreamResponse {
    /// The media type without parameters, lower-cased (`application/json`).
    pub fn content_type(&self) -> Option<String> {
        media_type(&self.headers)
    }
}

/// A 2xx answer whose body has not been read yet.
#[derive(Debug)]
pub struct StreamingResponse {
    upstream: String,
    timeout: Duration,
    max_body: usize,
    inner: reqwest::Response,
}

impl StreamingResponse {
    pub fn status(&self) -> StatusCode {
        self.inner.status()
    }

    pub fn headers(&self) -> &HeaderMap {
        self.inner.headers()
    }

    pub fn content_type(&self) -> Option<String> {
        media_type(self.inner.headers())
    }

    /// The next chunk of the body, `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, HttpError> {
        let upstream = self.upstream.clone();
        let timeout = self.timeout;
        self.inner.chunk().await.map_err(|e| classify_transport(&upstream, timeout, e, 1))
    }

    /// Read the rest of the body (at most [`HttpConfig::max_body_bytes`]).
    pub async fn bytes(self) -> Result<Bytes, HttpError> {
        let StreamingResponse { upstream, timeout, max_body, inner } = self;
        read_body(inner, max_body, &upstream).await.map_err(|e| match e {
            BodyError::TooLarge(e) => e,
            BodyError::Read(e) => classify_transport(&upstream, timeout, e, 1),
        })
    }
}

enum BodyError {
    TooLarge(HttpError),
    Read(reqwest::Error),
}

/// The whole body, refused as soon as it is known to be longer than `max` bytes.
async fn read_body(mut resp: reqwest::Response, max: usize, upstream: &str) -> Result<Bytes, BodyError> {
    let too_large = || BodyError::TooLarge(HttpError::TooLarge { upstream: upstream.to_owned(), limit: max });
    let declared = resp.content_length();
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(0) as usize);
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Read)? {
        if body.len() + chunk.len() > max {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
}

fn media_type(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    Some(v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
}

/// The shared HTTP client. Cheap to clone.
#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: reqwest::Client,
    config: Arc<HttpConfig>,
    limiter: Arc<dyn RateLimiter>,
    /// Where calls are counted durably, per minute (the status page's upstream rate).
    calls: Option<CallCounter>,
}

enum Attempt {
    Done(Result<reqwest::Response, HttpError>),
    /// Retry after this delay.
    Retry(Duration, HttpError),
}

impl HttpClient {
    /// A client on the process-wide rate-limiter registry.
    pub fn new(config: HttpConfig) -> Result<Self, HttpError> {
        let inner = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .user_agent(config.user_agent.clone())
            .build()
            .map_err(|e| HttpError::InvalidRequest(format!("http client: {}", e.without_url())))?;
        Ok(HttpClient { inner, config: Arc::new(config), limiter: process_rate_limiter(), calls: None })
    }

    /// Counts every call (every attempt) in `counter`, for `rmm_sync.upstream_calls`.
    pub fn with_call_counter(mut self, counter: CallCounter) -> Self {
        self.calls = Some(counter);
        self
    }

    /// Use another limiter (a separate registry in tests, a shared Redis limiter in production).
    pub fn with_rate_limiter(mut self, limiter: Arc<dyn RateLimiter>) -> Self {
        self.limiter = limiter;
        self
    }

    pub fn config(&self) -> &HttpConfig {
        &self.config
    }

    /// Sends the request (with retries) and reads the whole 2xx body.
    pub async fn send(&self, req: UpstreamRequest) -> Result<UpstreamResponse, HttpError> {
        let policy = req.retry.unwrap_or(self.config.retry);
        let timeout = req.timeout.unwrap_or(self.config.request_timeout);
        let upstream = req.redacted();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let (outcome, span) = self.attempt(&req, &policy, timeout, attempt).await;
            let outcome = match outcome {
                Attempt::Done(Ok(resp)) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    match read_body(resp, self.config.max_body_bytes, &upstream).instrument(span.clone()).await {
                        Ok(body) => return Ok(UpstreamResponse { status, headers, body }),
                        Err(BodyError::TooLarge(e)) => {
                            crate::telemetry::mark_error(&span, e.to_string());
                            return Err(e);
                        }
                        Err(BodyError::Read(e)) => {
                            let err = classify_transport(&upstream, timeout, e, attempt);
                            crate::telemetry::mark_error(&span, err.to_string());
                            if req.idempotent && attempt < policy.max_attempts.max(1) {
                                Attempt::Retry(policy.backoff_delay(attempt, &mut rand::rng()), err)
                            } else {
                                Attempt::Done(Err(err))
                            }
                        }
                    }
                }
                other => other,
            };
            match outcome {
                Attempt::Done(Ok(_)) => unreachable!("handled above"),
                Attempt::Done(Err(e)) => return Err(e),
                Attempt::Retry(delay, err) => {
                    tracing::debug!(upstream = %upstream, attempt, delay_ms = delay.as_millis() as u64, error = %err, "retrying upstream request");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// Sends the request (with retries up to the answer's headers) and returns the 2xx answer
    /// unread, for streaming parsers. A failure while reading the body is not retried.
    pub async fn send_streaming(&self, req: UpstreamRequest) -> Result<StreamingResponse, HttpError> {
        let policy = req.retry.unwrap_or(self.config.retry);
        let timeout = req.timeout.unwrap_or(self.config.request_timeout);
        let upstream = req.redacted();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match self.attempt(&req, &policy, timeout, attempt).await.0 {
                Attempt::Done(Ok(inner)) => {
                    let max_body = self.config.max_body_bytes;
                    return Ok(StreamingResponse { upstream, timeout, max_body, inner });
                }
                Attempt::Done(Err(e)) => return Err(e),
                Attempt::Retry(delay, err) => {
                    tracing::debug!(upstream = %upstream, attempt, delay_ms = delay.as_millis() as u64, error = %err, "retrying upstream request");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// One attempt: rate limit, then send and classify the answer in the attempt's span (the span
    /// exists only when traces are exported; it is returned so that reading the body belongs to it).
    async fn attempt(
        &self,
        req: &UpstreamRequest,
        policy: &RetryPolicy,
        timeout: Duration,
        attempt: u32,
    ) -> (Attempt, tracing::Span) {
        if let Some(limit) = self.config.rate_limit {
            let key = upstream_key(&req.url);
            self.limiter.acquire(&key, limit).await;
        }
        let span = self.request_span(req, attempt);
        let outcome = self.exchange(req, policy, timeout, attempt, &span).instrument(span.clone()).await;
        match &outcome {
            Attempt::Done(Ok(_)) => {}
            Attempt::Done(Err(e)) | Attempt::Retry(_, e) => {
                if let Some(status) = e.status() {
                    span.record("http.response.status_code", status);
                }
                let kind = e.status().map(|s| s.to_string()).unwrap_or_else(|| error_kind(e).to_owned());
                span.record("error.type", kind.as_str());
                crate::telemetry::mark_error(&span, e.to_string());
            }
        }
        (outcome, span)
    }

    /// The client span of one attempt (OpenTelemetry HTTP conventions), when traces are exported.
    fn request_span(&self, req: &UpstreamRequest, attempt: u32) -> tracing::Span {
        if !crate::telemetry::exporting() {
            return tracing::Span::none();
        }
        tracing::info_span!(
            "upstream request",
            otel.name = %req.method,
            otel.kind = "client",
            http.request.method = %req.method,
            url.full = %redact_url(&req.url),
            server.address = req.url.host_str().unwrap_or(""),
            server.port = req.url.port_or_known_default().unwrap_or(0),
            http.request.resend_count = attempt.saturating_sub(1),
            rmm.provider = self.config.provider,
            http.response.status_code = tracing::field::Empty,
            "error.type" = tracing::field::Empty,
        )
    }

    /// Sends one attempt and classifies the answer.
    async fn exchange(
        &self,
        req: &UpstreamRequest,
        policy: &RetryPolicy,
        timeout: Duration,
        attempt: u32,
        span: &tracing::Span,
    ) -> Attempt {
        let upstream = req.redacted();
        let last = attempt >= policy.max_attempts.max(1);
        let mut headers = req.headers.clone();
        for (name, value) in crate::telemetry::propagation_headers(span) {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(HeaderName::from_static(name), v);
            }
        }
        let mut builder = self.inner.request(req.method.clone(), req.url.clone()).headers(headers).timeout(timeout);
        if let Some(body) = &req.body {
            builder = builder.body(body.clone());
        }
        let resp = match builder.send().await {
            Ok(resp) => {
                count_upstream_call(self.config.provider, resp.status().as_u16().to_string());
                if let Some(c) = &self.calls {
                    c.record(self.config.provider, resp.status().as_u16() >= 400);
                }
                span.record("http.response.status_code", resp.status().as_u16());
                resp
            }
            Err(e) => {
                count_upstream_call(self.config.provider, "error".to_owned());
                if let Some(c) = &self.calls {
                    c.record(self.config.provider, true);
                }
                let connect = e.is_connect();
                let err = classify_transport(&upstream, timeout, e, attempt);
                // A connection failure never reached the server: always safe to repeat.
                if !last && (connect || req.idempotent) {
                    return Attempt::Retry(policy.backoff_delay(attempt, &mut rand::rng()), err);
                }
                return Attempt::Done(Err(err));
            }
        };
        let status = resp.status();
        if status.is_success() {
            return Attempt::Done(Ok(resp));
        }
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, Utc::now()));
        let content_type = media_type(resp.headers());
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(|l| Url::parse(l).or_else(|_| req.url.join(l)).map(|u| redact_url(&u)).unwrap_or_default());
        let body = read_error_body(resp).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            let err = HttpError::RateLimited { upstream, retry_after, attempts: attempt };
            return match retry_after {
                Some(d) if d > policy.retry_after_threshold => Attempt::Done(Err(err)),
                _ if last => Attempt::Done(Err(err)),
                Some(d) => Attempt::Retry(d, err),
                None => Attempt::Retry(policy.backoff_delay(attempt, &mut rand::rng()), err),
            };
        }
        let err = HttpError::Status {
            upstream,
            status: status.as_u16(),
            retry_after,
            body,
            content_type,
            location,
            attempts: attempt,
        };
        if status.is_server_error() && req.idempotent && !last {
            return match retry_after {
                Some(d) if d > policy.retry_after_threshold => Attempt::Done(Err(err)),
                Some(d) => Attempt::Retry(d.max(policy.backoff_delay(attempt, &mut rand::rng())), err),
                None => Attempt::Retry(policy.backoff_delay(attempt, &mut rand::rng()), err),
            };
        }
        Attempt::Done(Err(err))
    }
}

/// `error.type` of an attempt that got no HTTP answer.
fn error_kind(e: &HttpError) -> &'static str {
    match e {
        HttpError::Timeout { .. } => "timeout",
        HttpError::Connect { .. } => "connect",
        HttpError::Transport { .. } => "transport",
        HttpError::InvalidRequest(_) => "invalid_request",
        HttpError::Status { .. } | HttpError::RateLimited { .. } => "status",
        HttpError::TooLarge { .. } => "too_large",
    }
}

/// The start of an error answer's body: at most `ERROR_BODY_LIMIT * 4` bytes are read, however
/// long the body is (the rest is dropped with the connection).
async fn read_error_body(mut resp: reqwest::Response) -> String {
    let mut b = Vec::new();
    while b.len() < ERROR_BODY_LIMIT * 4 {
        match resp.chunk().await {
            Ok(Some(c)) => b.extend_from_slice(&c[..c.len().min(ERROR_BODY_LIMIT * 4 - b.len())]),
            Ok(None) | Err(_) => break,
        }
    }
    String::from_utf8_lossy(&b).chars().take(ERROR_BODY_LIMIT).collect()
}

fn classify_transport(upstream: &str, timeout: Duration, e: reqwest::Error, attempts: u32) -> HttpError {
    let upstream = upstream.to_owned();
    if e.is_timeout() {
        return HttpError::Timeout { upstream, timeout, attempts };
    }
    let connect = e.is_connect();
    let reason = error_chain(e.without_url());
    if connect {
        HttpError::Connect { upstream, reason, attempts }
    } else {
        HttpError::Transport { upstream, reason, attempts }
    }
}

/// The error and its sources, joined; reqwest errors stripped of their URL first.
fn error_chain(e: reqwest::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn backoff_ceiling_doubles_and_caps() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            retry_after_threshold: Duration::from_secs(30),
        };
        assert_eq!(p.backoff_ceiling(1), Duration::from_millis(100));
        assert_eq!(p.backoff_ceiling(2), Duration::from_millis(200));
        assert_eq!(p.backoff_ceiling(3), Duration::from_millis(400));
        assert_eq!(p.backoff_ceiling(4), Duration::from_millis(800));
        assert_eq!(p.backoff_ceiling(5), Duration::from_millis(1000));
        assert_eq!(p.backoff_ceiling(60), Duration::from_millis(1000));
        assert_eq!(p.backoff_ceiling(0), Duration::from_millis(100));
    }

    #[test]
    fn full_jitter_stays_within_ceiling_and_spreads() {
        let p = RetryPolicy { base_delay: Duration::from_millis(100), ..RetryPolicy::default() };
        let mut rng = StdRng::seed_from_u64(7);
        let mut seen_low = false;
        let mut seen_high = false;
        for _ in 0..1000 {
            let d = p.backoff_delay(3, &mut rng);
            assert!(d <= Duration::from_millis(400));
            seen_low |= d < Duration::from_millis(100);
            seen_high |= d > Duration::from_millis(300);
        }
        assert!(seen_low && seen_high, "full jitter covers the whole range");
        let zero = RetryPolicy { base_delay: Duration::ZERO, ..RetryPolicy::default() };
        assert_eq!(zero.backoff_delay(5, &mut rng), Duration::ZERO);
    }

    #[test]
    fn retry_after_seconds() {
        let now = Utc::now();
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn retry_after_http_dates() {
        let now = Utc.with_ymd_and_hms(1994, 11, 6, 8, 49, 0).unwrap();
        let expect = Some(Duration::from_secs(37));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), expect);
        assert_eq!(parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now), expect);
        assert_eq!(parse_retry_after("Sun Nov  6 08:49:37 1994", now), expect);
        // In the past: retry now.
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now), Some(Duration::ZERO));
    }

    #[test]
    fn redaction_drops_credentials_and_query() {
        let u = Url::parse("https://user:pa55@api.example.com:8443/beta/v1/agent/?token=abc#x").unwrap();
        assert_eq!(redact_url(&u), "https://api.example.com:8443/beta/v1/agent/");
        assert_eq!(upstream_key(&u), "https://api.example.com:8443");
        let req = UpstreamRequest::get(u).secret_header("x-api-key", &SecretString::from("sekrit-key")).unwrap();
        let dbg = format!("{req:?}");
        assert!(!dbg.contains("sekrit-key"));
        assert!(!dbg.contains("pa55"));
        assert!(!dbg.contains("token=abc"));
    }

    #[test]
    fn methods_default_idempotency() {
        let u = Url::parse("http://127.0.0.1/").unwrap();
        assert!(UpstreamRequest::get(u.clone()).idempotent);
        assert!(!UpstreamRequest::post(u.clone()).idempotent);
        assert!(UpstreamRequest::patch(u).idempotent(true).idempotent);
    }

    #[tokio::test]
    async fn registry_shares_buckets_per_upstream() {
        let reg = RateLimiterRegistry::new();
        let limit = RateLimit::per_second(1, 1).unwrap();
        let a = reg.bucket("https://a.example", limit);
        let b = reg.bucket("https://a.example", limit);
        assert!(Arc::ptr_eq(&a, &b));
        let c = reg.bucket("https://b.example", limit);
        assert!(!Arc::ptr_eq(&a, &c));
        // One token per second, burst 1: the first passes, the second must wait.
        assert!(a.check().is_ok());
        assert!(b.check().is_err());
        assert!(c.check().is_ok());
    }
}
