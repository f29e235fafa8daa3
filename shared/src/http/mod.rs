//! The upstream HTTP layer shared by every provider client.
//!
//! Every call to an RMM goes through [`HttpClient`]:
//! - a per-request timeout (the whole exchange, body included) and a connect timeout;
//! - bounded retries with exponential backoff and full jitter on connection errors, timeouts and
//!   5xx answers (timeouts and 5xx only for idempotent requests; a connection error is always
//!   retried because the request never reached the server);
//! - `Retry-After` on 429 (and 503): a short wait (≤ [`RetryPolicy::retry_after_threshold`]) is
//!   slept in place, a longer one is returned as [`HttpError::RateLimited`] /
//!   [`HttpError::Status`] carrying the duration, so the job runtime can schedule a durable retry
//!   (a request built with [`UpstreamRequest::final_on_429`] gets its 429 back at once);
//! - a per-upstream rate limit (keyed by the upstream origin) shared by every client of the process
//!   through [`RateLimiterRegistry`], and by every process when the Redis limiter of
//!   [`crate::ratelimit`] is installed ([`install_process_rate_limiter`]);
//! - redirects are never followed;
//! - every attempt is counted once in its [`CallCounter`] ([`crate::upstream_calls`]): in the
//!   process totals of `/metrics`, and per minute in `rmm_sync.upstream_calls` (the status page)
//!   when the client has a tenant's counter ([`HttpClient::with_call_counter`]);
//! - when traces are exported ([`crate::telemetry`]), each attempt is a client span, child of the
//!   caller's span (the job), and sends that span's `traceparent` to the upstream.
//!
//! Errors never carry credentials: no header values, and URLs are reduced to
//! `scheme://host[:port]/path` (no userinfo, no query string).
//!
//! One file per concern: [`HttpClient`] and its settings here; the retry policy in `retry.rs`
//! and its backoff in [`backoff`] (shared with the job runtime); `Retry-After` values in
//! `retry_after.rs`; rate limits in `rate_limit.rs`; requests and URL redaction in `request.rs`;
//! answers and body limits in `response.rs`; errors and their classification in `error.rs`.

pub mod backoff;
mod error;
mod rate_limit;
mod request;
mod response;
mod retry;
mod retry_after;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use reqwest::StatusCode;
use reqwest::header::{HeaderName, HeaderValue, RETRY_AFTER};
use tracing::Instrument;
use url::Url;

pub use error::HttpError;
pub use rate_limit::{RateLimit, RateLimiter, RateLimiterRegistry, install_process_rate_limiter};
pub use request::{UpstreamRequest, redact_url, upstream_key};
pub use response::{StreamingResponse, UpstreamResponse};
pub use retry::RetryPolicy;
pub use retry_after::parse_retry_after;

use crate::upstream_calls::{CallCounter, CallOutcome};
use error::{classify_transport, error_kind};
use rate_limit::process_rate_limiter;
use response::{BodyError, media_type, read_body, read_error_body};

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
    /// Label of the client's calls in the upstream call counts (`tacticalrmm`, `tanium`, …).
    pub provider: &'static str,
    /// Largest 2xx body read whole ([`HttpClient::send`], [`StreamingResponse::bytes`]): a longer
    /// one fails with [`HttpError::TooLarge`] as soon as it is known (its `Content-Length`, or
    /// the byte past the limit), so that a misconfigured URL cannot fill the memory.
    pub max_body_bytes: usize,
}

/// [`HttpConfig::max_body_bytes`] by default: 64 MiB (the large answers, Tactical's agent pages
/// and software list, are streamed and not held whole).
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 << 20;

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

/// The shared HTTP client. Cheap to clone.
#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: reqwest::Client,
    config: Arc<HttpConfig>,
    limiter: Arc<dyn RateLimiter>,
    /// Where every attempt is counted: the process totals, and per minute for a tenant (the status
    /// page's upstream rate) when the counter comes from a call log.
    calls: CallCounter,
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
        Ok(HttpClient {
            inner,
            config: Arc::new(config),
            limiter: process_rate_limiter(),
            calls: CallCounter::process(),
        })
    }

    /// Counts every call (every attempt) in `counter` (e.g. a tenant's counter of a call log, for
    /// `rmm_sync.upstream_calls`) instead of in the process totals alone.
    pub fn with_call_counter(mut self, counter: CallCounter) -> Self {
        self.calls = counter;
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
                    return Ok(StreamingResponse {
                        upstream,
                        timeout,
                        max_body,
                        inner,
                        streamed: 0,
                        stream_limit: None,
                    });
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
                self.calls.record(self.config.provider, CallOutcome::Status(resp.status().as_u16()));
                span.record("http.response.status_code", resp.status().as_u16());
                resp
            }
            Err(e) => {
                self.calls.record(self.config.provider, CallOutcome::NoAnswer);
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
            if !req.retry_429 {
                return Attempt::Done(Err(err));
            }
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
