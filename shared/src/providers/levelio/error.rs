//! Errors of the Level client. `Display` is the text an admin sees (what to do);
//! [`LevelError::diagnostic`] is for logs and names the endpoint (never the key).

use std::fmt;
use std::time::Duration;

use crate::http::HttpError;

/// Why a Level call failed.
#[derive(Debug)]
pub enum LevelError {
    /// No `levelio_api_key` secret.
    ApiKeyNotConfigured,
    /// The instance URL cannot be used.
    InvalidBaseUrl,
    /// A 2xx answer that is an HTML page (a proxy, a login page, the web app's host).
    HtmlAnswer { endpoint: String },
    /// A 2xx answer that is not the JSON we expect (truncated, malformed, wrong shape).
    InvalidResponse { endpoint: String, reason: String },
    /// The cursor walk went past the page guard (a server repeating `has_more: true`).
    TooManyPages { endpoint: String, max_pages: u32 },
    /// Transport or HTTP status failure.
    Http(HttpError),
}

impl From<HttpError> for LevelError {
    fn from(e: HttpError) -> Self {
        LevelError::Http(e)
    }
}

impl LevelError {
    /// The text shown to an admin (same as `Display`).
    pub fn user_message(&self) -> String {
        match self {
            LevelError::ApiKeyNotConfigured => {
                "The Level API key is not configured. Create a key in Level (Settings → API Keys) and save it in the \
                 integration."
                    .into()
            }
            LevelError::InvalidBaseUrl => {
                "The Level API URL is not a valid http(s) URL (Level's is https://api.level.io).".into()
            }
            LevelError::HtmlAnswer { .. } => {
                "Level answered with an HTML page instead of API data. Check the API URL: it is https://api.level.io, \
                 not the web app's address."
                    .into()
            }
            LevelError::InvalidResponse { .. } => {
                "Level returned an incomplete or invalid response. Try again later; if it persists, check the API URL."
                    .into()
            }
            LevelError::TooManyPages { max_pages, .. } => {
                format!("Level kept answering more pages than the limit ({max_pages}); the walk was stopped.")
            }
            LevelError::Http(e) => http_message(e),
        }
    }

    /// Technical detail for logs: the endpoint and the cause.
    pub fn diagnostic(&self) -> String {
        match self {
            LevelError::HtmlAnswer { endpoint } => format!("{endpoint} answered 200 text/html"),
            LevelError::InvalidResponse { endpoint, reason } => format!("{endpoint}: {reason}"),
            LevelError::TooManyPages { endpoint, max_pages } => format!("{endpoint}: more than {max_pages} pages"),
            LevelError::Http(e) => e.to_string(),
            other => other.user_message(),
        }
    }

    /// The HTTP status of the failing answer, if any.
    pub fn status(&self) -> Option<u16> {
        match self {
            LevelError::Http(e) => e.status(),
            _ => None,
        }
    }

    /// How long Level asked us to wait (429 with `Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            LevelError::Http(e) => e.retry_after(),
            _ => None,
        }
    }

    /// Whether retrying later may help (network, 429, 5xx, truncated bodies).
    pub fn is_transient(&self) -> bool {
        match self {
            LevelError::Http(e) => e.is_transient(),
            LevelError::InvalidResponse { .. } => true,
            _ => false,
        }
    }
}

fn http_message(e: &HttpError) -> String {
    if let HttpError::TooLarge { limit, .. } = e {
        return format!("Level sent an answer larger than {} MiB, which was not read. Check the API URL.", limit >> 20);
    }
    if e.is_no_response() {
        return "Unable to reach Level. Check the API URL and the network access to it.".into();
    }
    match e.status() {
        Some(401) | Some(403) => {
            "Level refused the API key. Create a key in Level (Settings → API Keys) and save it in the integration."
                .into()
        }
        Some(404) => "Level answered 404 Not Found. Check the API URL (https://api.level.io).".into(),
        Some(429) => "Level's rate limit was reached. Try again later.".into(),
        Some(s) if s >= 500 => "Level is temporarily unavailable. Try again later.".into(),
        Some(s) => format!("Level request failed with status {s}."),
        None => "Level operation failed. Please try again.".into(),
    }
}

impl fmt::Display for LevelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.user_message())
    }
}

impl std::error::Error for LevelError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LevelError::Http(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16) -> LevelError {
        LevelError::Http(HttpError::Status {
            upstream: "GET https://api.level.io/v2/devices".into(),
            status,
            retry_after: None,
            body: String::new(),
            content_type: None,
            location: None,
            attempts: 1,
        })
    }

    #[test]
    fn messages_say_what_to_do() {
        assert!(status(401).to_string().contains("Settings → API Keys"));
        assert!(status(403).to_string().contains("refused the API key"));
        assert!(status(503).is_transient());
        assert!(!status(401).is_transient());
        assert_eq!(status(418).to_string(), "Level request failed with status 418.");
        let rl = LevelError::Http(HttpError::RateLimited {
            upstream: "x".into(),
            retry_after: Some(Duration::from_secs(30)),
            attempts: 1,
        });
        assert_eq!(rl.retry_after(), Some(Duration::from_secs(30)));
        assert!(rl.to_string().contains("rate limit"));
        assert!(LevelError::InvalidResponse { endpoint: "e".into(), reason: "r".into() }.is_transient());
    }
}
