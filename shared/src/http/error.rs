//! Upstream errors and how a failed exchange is classified.

use std::time::Duration;

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
    /// A 2xx answer longer than
    /// [`HttpConfig::max_body_bytes`](super::HttpConfig::max_body_bytes); not read, not retried.
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

/// `error.type` of an attempt that got no HTTP answer.
pub(super) fn error_kind(e: &HttpError) -> &'static str {
    match e {
        HttpError::Timeout { .. } => "timeout",
        HttpError::Connect { .. } => "connect",
        HttpError::Transport { .. } => "transport",
        HttpError::InvalidRequest(_) => "invalid_request",
        HttpError::Status { .. } | HttpError::RateLimited { .. } => "status",
        HttpError::TooLarge { .. } => "too_large",
    }
}

pub(super) fn classify_transport(upstream: &str, timeout: Duration, e: reqwest::Error, attempts: u32) -> HttpError {
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
