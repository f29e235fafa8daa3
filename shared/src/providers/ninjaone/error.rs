//! Errors of the NinjaOne client. `Display` is the text an admin acts on; it never carries a
//! token, a client secret or a query string.

use std::time::Duration;

use crate::http::HttpError;

/// Why a NinjaOne call failed.
#[derive(Debug, thiserror::Error)]
pub enum NinjaError {
    /// Missing client id/secret, region or tokens.
    #[error("NinjaOne is not connected: {0}")]
    NotConfigured(String),
    /// The integration's token lifecycle is `reconnect_required` (a refused refresh token).
    #[error(
        "NinjaOne refused the refresh token (invalid_grant): the integration must be reconnected (authorize it again)"
    )]
    ReconnectRequired,
    /// The token endpoint refused the client or the grant (other than a spent refresh token).
    #[error("NinjaOne refused the token request ({code}): {message}")]
    TokenRefused { code: String, message: String },
    /// Another process held the refresh lease for longer than we waited, and no fresh token appeared.
    #[error("another worker is refreshing the NinjaOne token; try again shortly")]
    RefreshBusy,
    /// The token state could not be read or written (database, secret store).
    #[error("NinjaOne token state: {0}")]
    TokenStore(String),
    /// A 2xx answer that is not the JSON expected (HTML, a truncated body, another shape).
    #[error("NinjaOne returned an unreadable answer for {what} ({reason}). Check the region / instance URL.")]
    InvalidPayload { what: String, reason: String },
    /// NinjaOne kept returning the same cursor.
    #[error("NinjaOne returned the same paging cursor twice for {0}")]
    RepeatedCursor(String),
    #[error("{}", http_message(.0))]
    Http(HttpError),
}

fn http_message(e: &HttpError) -> String {
    if let HttpError::TooLarge { limit, .. } = e {
        return format!("NinjaOne sent an answer larger than {} MiB, which was not read.", limit >> 20);
    }
    if e.is_no_response() {
        return format!("Unable to reach NinjaOne: {e}");
    }
    let html = e.body().is_some_and(looks_like_html);
    match e.status() {
        Some(401) => "NinjaOne rejected the access token (401). Reconnect the integration if this persists.".into(),
        Some(403) => "NinjaOne refused access (403): the app lacks the monitoring/management scope or the user the \
                      permission."
            .into(),
        Some(404) => "NinjaOne answered 404: check the region / instance URL.".into(),
        Some(429) => "NinjaOne rate limit reached (429); the job is retried later.".into(),
        Some(s) if s >= 500 => format!("NinjaOne server error ({s}); try again later."),
        Some(s) if html => format!("NinjaOne answered {s} with an HTML page: check the region / instance URL."),
        Some(s) => format!("NinjaOne request failed with status {s}."),
        None => format!("NinjaOne request failed: {e}"),
    }
}

/// Whether a body is an HTML page (a login page, a proxy's error page).
pub fn looks_like_html(body: &str) -> bool {
    let head: String = body.trim_start().chars().take(64).collect::<String>().to_ascii_lowercase();
    head.starts_with("<!doctype html") || head.starts_with("<html") || head.starts_with("<head")
}

impl From<HttpError> for NinjaError {
    fn from(e: HttpError) -> Self {
        NinjaError::Http(e)
    }
}

impl NinjaError {
    /// Whether a later attempt may succeed (no answer, 5xx, 429, a refresh in progress, a store
    /// that did not answer, a body cut short).
    pub fn is_transient(&self) -> bool {
        match self {
            NinjaError::Http(e) => e.is_transient() || e.status() == Some(429),
            NinjaError::RefreshBusy | NinjaError::TokenStore(_) => true,
            NinjaError::InvalidPayload { reason, .. } => !reason.starts_with("HTML"),
            _ => false,
        }
    }

    /// How long the upstream asked us to wait (429 / 503 `Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            NinjaError::Http(e) => e.retry_after(),
            _ => None,
        }
    }

    /// The refresh token was refused: only a new authorization helps.
    pub fn is_reconnect_required(&self) -> bool {
        matches!(self, NinjaError::ReconnectRequired)
    }

    /// The transport's own text for a transient error (for logs and a job's retry message).
    pub fn diagnostic(&self) -> String {
        match self {
            NinjaError::Http(e) => format!("{self} ({e})"),
            other => other.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, body: &str) -> NinjaError {
        NinjaError::Http(HttpError::Status {
            upstream: "GET https://app.ninjarmm.com/v2/organizations".into(),
            status,
            retry_after: None,
            body: body.into(),
            content_type: None,
            location: None,
            attempts: 1,
        })
    }

    #[test]
    fn messages_say_what_to_do() {
        assert!(status(401, "").to_string().contains("Reconnect"));
        assert!(status(404, "").to_string().contains("region"));
        assert!(status(418, "<!DOCTYPE html><html>").to_string().contains("HTML page"));
        assert!(status(502, "").is_transient());
        assert!(!status(403, "").is_transient());
        assert!(NinjaError::RefreshBusy.is_transient());
        assert!(!NinjaError::ReconnectRequired.is_transient());
        assert!(NinjaError::ReconnectRequired.to_string().contains("invalid_grant"));
        assert!(looks_like_html("  <html><body>login</body></html>"));
        assert!(!looks_like_html("[]"));
    }
}
