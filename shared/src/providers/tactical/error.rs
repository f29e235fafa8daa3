//! Errors of the Tactical client.
//!
//! `Display` is the text a user sees. For HTTP failures it is exactly AlgaPSA's
//! `axiosErrorToMessage`. Configuration and TOTP errors keep their own
//! text (AlgaPSA collapses some of them into the generic message; we do not). Use
//! [`TacticalError::diagnostic`] for logs: it names the failing endpoint (never credentials).

use std::fmt;
use std::time::Duration;

use crate::http::HttpError;

pub const MSG_UNREACHABLE: &str = "Unable to reach Tactical RMM. Check the instance URL and network access.";
pub const MSG_400: &str = "Tactical RMM rejected the request. Check the configured URL and credentials.";
pub const MSG_401: &str = "Tactical RMM credentials are invalid or expired. Reconnect the integration.";
pub const MSG_403: &str = "Tactical RMM rejected the request because the configured account does not have permission.";
pub const MSG_404: &str = "Tactical RMM endpoint was not found. Check the instance URL and Beta API access.";
pub const MSG_429: &str = "Tactical RMM rate limit was reached. Try again later.";
pub const MSG_5XX: &str = "Tactical RMM is temporarily unavailable. Try again later.";
pub const MSG_GENERIC: &str = "Tactical RMM operation failed. Please try again.";
pub const MSG_DASHBOARD_HOST: &str = "The Tactical RMM instance URL points at the web dashboard, which answered with an HTML page instead of API data. Set the instance URL to the Tactical API host (the api. address, for example https://api.example.com), not the dashboard (rmm.) address.";
pub const MSG_INVALID_RESPONSE: &str =
    "Tactical RMM returned an incomplete or invalid response. Try again later; if it persists, check the instance URL.";

/// Why a Tactical call failed.
#[derive(Debug)]
pub enum TacticalError {
    /// No instance URL, or one that cannot be parsed.
    InstanceUrlNotConfigured,
    /// API-key mode without a key.
    ApiKeyNotConfigured,
    /// Knox mode without username/password.
    KnoxCredentialsNotConfigured,
    /// The Knox account has TOTP: a token can only be obtained with a code (`login_with_totp`).
    TotpRequired,
    /// A login answered 2xx without a token.
    NoToken,
    /// `200 text/html`: the dashboard host was configured instead of the API host.
    DashboardHost { endpoint: String },
    /// A 2xx answer that is not the JSON we expect (truncated, malformed, wrong shape).
    InvalidResponse { endpoint: String, reason: String },
    /// The page walk went past the page guard.
    TooManyPages { endpoint: String, max_pages: u32 },
    /// Tactical's login throttle refused a login with 429 (since Tactical 1.5.0,
    /// `POST /v2/checkcreds/` and `POST /v2/login/` accept 10 logins a minute and 300 a day from
    /// one client address by default). Never retried: `retry_after` is when Tactical said it would
    /// accept a login again (or, for a login not attempted because an earlier one was throttled,
    /// what is left of that wait).
    LoginThrottled { endpoint: String, retry_after: Option<Duration> },
    /// Transport or HTTP status failure.
    Http(HttpError),
}

impl From<HttpError> for TacticalError {
    fn from(e: HttpError) -> Self {
        TacticalError::Http(e)
    }
}

impl TacticalError {
    /// The text shown to a user (same as `Display`).
    pub fn user_message(&self) -> String {
        match self {
            TacticalError::InstanceUrlNotConfigured => "Instance URL is not configured".into(),
            TacticalError::ApiKeyNotConfigured => "Tactical API key is not configured".into(),
            TacticalError::KnoxCredentialsNotConfigured => "Knox username/password not configured".into(),
            TacticalError::TotpRequired => {
                "TOTP required. Run Test Connection with a TOTP code to save a Knox token.".into()
            }
            TacticalError::NoToken => "Login succeeded but no token was returned".into(),
            TacticalError::DashboardHost { .. } => MSG_DASHBOARD_HOST.into(),
            TacticalError::InvalidResponse { .. } => MSG_INVALID_RESPONSE.into(),
            TacticalError::TooManyPages { max_pages, .. } => {
                format!("Tactical RMM kept returning more pages than the limit ({max_pages}). Check the instance URL.")
            }
            TacticalError::LoginThrottled { endpoint, retry_after } => {
                let when = match retry_after {
                    Some(d) => format!("Tactical will accept a login again in {}.", human_wait(*d)),
                    None => "Try again in a minute.".to_owned(),
                };
                format!(
                    "Tactical RMM is throttling logins ({endpoint} answered 429; Tactical 1.5.0 and later accept 10 \
                     logins a minute and 300 a day from one address by default). rmm-sync did not retry. {when} \
                     rmm-sync logs in only when its saved Knox token is missing or refused: if this repeats, look \
                     for other clients logging in from this address, or use an API key for this integration."
                )
            }
            TacticalError::Http(e) => http_message(e),
        }
    }

    /// Technical detail for logs: the endpoint and the cause. Never contains credentials.
    pub fn diagnostic(&self) -> String {
        match self {
            TacticalError::DashboardHost { endpoint } => format!("{endpoint} answered 200 text/html"),
            TacticalError::InvalidResponse { endpoint, reason } => format!("{endpoint}: {reason}"),
            TacticalError::TooManyPages { endpoint, max_pages } => {
                format!("{endpoint}: more than {max_pages} pages")
            }
            TacticalError::Http(e) => e.to_string(),
            other => other.user_message(),
        }
    }

    /// The HTTP status of the failing answer, if any.
    pub fn status(&self) -> Option<u16> {
        match self {
            TacticalError::Http(e) => e.status(),
            TacticalError::LoginThrottled { .. } => Some(429),
            _ => None,
        }
    }

    /// How long Tactical asked us to wait (429 / 503 with `Retry-After`): schedule the retry then.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            TacticalError::Http(e) => e.retry_after(),
            _ => None,
        }
    }

    /// Whether retrying later may help (network, 429, 5xx, truncated bodies).
    pub fn is_transient(&self) -> bool {
        match self {
            TacticalError::Http(e) => e.is_transient(),
            TacticalError::InvalidResponse { .. } => true,
            _ => false,
        }
    }

    /// The credentials were refused (401), or a token cannot be obtained without a person.
    pub fn is_auth(&self) -> bool {
        matches!(self, TacticalError::TotpRequired | TacticalError::NoToken) || self.status() == Some(401)
    }
}

/// A wait as a person reads it: seconds under two minutes, then minutes, then hours (rounded up).
fn human_wait(d: Duration) -> String {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    match secs {
        1 => "1 second".into(),
        0..120 => format!("{secs} seconds"),
        120..7200 => format!("{} minutes", secs.div_ceil(60)),
        _ => format!("{} hours", secs.div_ceil(3600)),
    }
}

/// AlgaPSA's `axiosErrorToMessage` for an HTTP-layer failure.
fn http_message(e: &HttpError) -> String {
    if let HttpError::TooLarge { limit, .. } = e {
        return format!(
            "Tactical RMM sent an answer larger than {} MiB, which was not read. Check the instance URL.",
            limit >> 20
        );
    }
    if e.is_no_response() {
        return MSG_UNREACHABLE.into();
    }
    match e.status() {
        Some(400) => MSG_400.into(),
        Some(401) => MSG_401.into(),
        Some(403) => MSG_403.into(),
        Some(404) => MSG_404.into(),
        Some(429) => MSG_429.into(),
        Some(s) if s >= 500 => MSG_5XX.into(),
        Some(s) => format!("Tactical RMM request failed with status {s}."),
        None => MSG_GENERIC.into(),
    }
}

impl fmt::Display for TacticalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.user_message())
    }
}

impl std::error::Error for TacticalError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TacticalError::Http(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16) -> TacticalError {
        TacticalError::Http(HttpError::Status {
            upstream: "GET https://api.example.com/beta/v1/client/".into(),
            status,
            retry_after: None,
            body: String::new(),
            content_type: None,
            location: None,
            attempts: 1,
        })
    }

    #[test]
    fn messages_match_algapsa() {
        assert_eq!(status(400).to_string(), MSG_400);
        assert_eq!(status(401).to_string(), MSG_401);
        assert_eq!(status(403).to_string(), MSG_403);
        assert_eq!(status(404).to_string(), MSG_404);
        assert_eq!(status(500).to_string(), MSG_5XX);
        assert_eq!(status(503).to_string(), MSG_5XX);
        assert_eq!(status(418).to_string(), "Tactical RMM request failed with status 418.");
        let rl = TacticalError::Http(HttpError::RateLimited {
            upstream: "x".into(),
            retry_after: Some(Duration::from_secs(90)),
            attempts: 1,
        });
        assert_eq!(rl.to_string(), MSG_429);
        assert_eq!(rl.retry_after(), Some(Duration::from_secs(90)));
        let t = TacticalError::Http(HttpError::Timeout {
            upstream: "x".into(),
            timeout: Duration::from_secs(1),
            attempts: 2,
        });
        assert_eq!(t.to_string(), MSG_UNREACHABLE);
        assert!(t.is_transient());
        assert_eq!(TacticalError::Http(HttpError::InvalidRequest("x".into())).to_string(), MSG_GENERIC);
        assert!(TacticalError::TotpRequired.to_string().starts_with("TOTP required"));
        assert!(status(401).is_auth());
    }

    #[test]
    fn a_throttled_login_says_so_and_is_not_retried() {
        let e = TacticalError::LoginThrottled {
            endpoint: "POST /v2/checkcreds/".into(),
            retry_after: Some(Duration::from_millis(52_300)),
        };
        let m = e.to_string();
        assert!(m.starts_with("Tactical RMM is throttling logins (POST /v2/checkcreds/ answered 429"), "{m}");
        assert!(m.contains("10 logins a minute and 300 a day"), "{m}");
        assert!(m.contains("did not retry"), "{m}");
        assert!(m.contains("again in 53 seconds."), "{m}");
        assert!(!e.is_transient());
        assert_eq!(e.retry_after(), None, "a throttled login is never scheduled for a retry");
        assert_eq!(e.status(), Some(429));
        let day = TacticalError::LoginThrottled {
            endpoint: "POST /v2/login/".into(),
            retry_after: Some(Duration::from_secs(20_000)),
        };
        assert!(day.to_string().contains("again in 6 hours."), "{day}");
        let unknown = TacticalError::LoginThrottled { endpoint: "POST /v2/login/".into(), retry_after: None };
        assert!(unknown.to_string().contains("Try again in a minute."));
        assert_eq!(human_wait(Duration::from_secs(1)), "1 second");
        assert_eq!(human_wait(Duration::from_secs(119)), "119 seconds");
        assert_eq!(human_wait(Duration::from_secs(121)), "3 minutes");
    }
}
