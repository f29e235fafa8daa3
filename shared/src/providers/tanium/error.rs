//! Errors of the Tanium client.
//!
//! `Display` is the text an admin sees (AlgaPSA's wording), with one deliberate difference:
//! GraphQL errors are shown with their real text (every message, not only the first), where
//! AlgaPSA hides them behind a generic fallback. Texts never contain the API token.

use std::time::Duration;

use crate::http::HttpError;

/// Appended to errors that usually mean a token, network or access problem.
pub const GW_HINT: &str = "Check the Tanium API token, keep the token- prefix, verify the allowed IP/CIDR, and confirm Gateway access/permissions.";
/// Appended to 401s: authenticated, but not allowed.
pub const RBAC_HINT: &str =
    "The Tanium API token may be authenticated but missing required Tanium permissions or content-set access.";

/// How many GraphQL error messages are kept.
const GRAPHQL_MESSAGES: usize = 3;

/// Why a Tanium call failed.
#[derive(Debug, thiserror::Error)]
pub enum TaniumError {
    #[error("Tanium Gateway URL and API token must be configured.")]
    NotConfigured,
    #[error("Tanium Gateway URL is required.")]
    GatewayUrlRequired,
    #[error("Tanium Gateway URL is not a valid http(s) URL.")]
    GatewayUrlInvalid,
    #[error("Tanium Asset API URL is not a valid http(s) URL.")]
    AssetUrlInvalid,
    #[error("Tanium API token is required.")]
    TokenRequired,
    #[error("Tanium API token must include the token- prefix.")]
    TokenPrefix,
    /// 302, or a `Location` pointing at a login/OpenID page.
    #[error("Tanium Gateway redirected to authentication. {GW_HINT}")]
    Redirected,
    #[error("Tanium Gateway rejected the configured API token. {GW_HINT}")]
    Forbidden,
    #[error("Tanium Gateway returned 401 Unauthorized. {RBAC_HINT}")]
    Unauthorized,
    #[error("Tanium Gateway returned an HTML login page instead of GraphQL JSON. {GW_HINT}")]
    HtmlLogin,
    #[error("Tanium Gateway request failed with status {status}. {GW_HINT}")]
    Status { status: u16, retry_after: Option<Duration> },
    /// A 2xx answer that is not a JSON object.
    #[error("Tanium Gateway returned a non-GraphQL response ({content_type}). {GW_HINT}")]
    NotGraphQl { content_type: String },
    /// The `errors` of a GraphQL answer (partial data is discarded).
    #[error("Tanium Gateway query {operation} failed: {}", .messages.join("; "))]
    GraphQl { operation: &'static str, messages: Vec<String> },
    #[error("Tanium Gateway returned an invalid GraphQL payload. {GW_HINT}")]
    InvalidPayload { operation: &'static str, reason: String },
    #[error("Tanium Gateway returned an empty GraphQL payload. {GW_HINT}")]
    EmptyPayload,
    #[error("Tanium Gateway connection probe failed to return computer groups. {GW_HINT}")]
    ProbeFailed,
    #[error("Tanium Gateway kept returning pages of {operation} past the limit ({max_pages}).")]
    TooManyPages { operation: &'static str, max_pages: u32 },
    #[error("Tanium Gateway returned the same cursor twice while paging {operation}.")]
    RepeatedCursor { operation: &'static str },
    #[error("Tanium Asset API request failed: {0}")]
    AssetApi(String),
    /// No answer (connection, timeout) or a rate limit: the transport's own text.
    #[error("Unable to reach Tanium: {0}")]
    Transport(HttpError),
}

impl TaniumError {
    /// Classifies a failed Gateway exchange.
    pub fn from_http(e: HttpError) -> TaniumError {
        match &e {
            HttpError::Status { status, body, content_type, location, retry_after, .. } => {
                let login_location = location.as_deref().is_some_and(|l| {
                    let l = l.to_ascii_lowercase();
                    l.contains("openid-connect") || l.contains("/login") || l.contains("/auth")
                });
                if *status == 302 || login_location {
                    TaniumError::Redirected
                } else if *status == 403 {
                    TaniumError::Forbidden
                } else if *status == 401 {
                    TaniumError::Unauthorized
                } else if content_type.as_deref().is_some_and(|c| c.contains("text/html")) || looks_like_html(body) {
                    TaniumError::HtmlLogin
                } else {
                    TaniumError::Status { status: *status, retry_after: *retry_after }
                }
            }
            _ => TaniumError::Transport(e),
        }
    }

    /// The GraphQL error of an answer: every message (up to three), with the path when given.
    pub fn graphql(operation: &'static str, errors: &[serde_json::Value]) -> TaniumError {
        let mut messages: Vec<String> = errors
            .iter()
            .take(GRAPHQL_MESSAGES)
            .map(|e| {
                let msg = e.get("message").and_then(|m| m.as_str()).map(str::trim).unwrap_or("");
                let msg = if msg.is_empty() { "Tanium Gateway query failed" } else { msg };
                let path = e.get("path").and_then(|p| p.as_array()).map(|p| {
                    p.iter().map(|s| s.as_str().map(str::to_owned).unwrap_or_else(|| s.to_string())).collect::<Vec<_>>()
                });
                match path {
                    Some(p) if !p.is_empty() => format!("{msg} (at {})", p.join(".")),
                    _ => msg.to_owned(),
                }
            })
            .map(|m| m.chars().take(500).collect())
            .collect();
        if errors.len() > GRAPHQL_MESSAGES {
            messages.push(format!("{} more", errors.len() - GRAPHQL_MESSAGES));
        }
        TaniumError::GraphQl { operation, messages }
    }

    /// Whether a later attempt may succeed (transport failures, 5xx, 429).
    pub fn is_transient(&self) -> bool {
        match self {
            TaniumError::Transport(e) => e.is_transient(),
            TaniumError::Status { status, .. } => *status >= 500,
            _ => false,
        }
    }

    /// How long the Gateway asked us to wait.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            TaniumError::Transport(e) => e.retry_after(),
            TaniumError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Technical detail for logs (never credentials).
    pub fn diagnostic(&self) -> String {
        match self {
            TaniumError::InvalidPayload { operation, reason } => format!("{operation}: {reason}"),
            TaniumError::Transport(e) => e.to_string(),
            other => other.to_string(),
        }
    }
}

fn looks_like_html(body: &str) -> bool {
    let b = body.trim_start().to_ascii_lowercase();
    b.starts_with("<!doctype html") || b.contains("<html")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn status(status: u16, content_type: Option<&str>, location: Option<&str>, body: &str) -> TaniumError {
        TaniumError::from_http(HttpError::Status {
            upstream: "POST https://t.example/plugin/products/gateway/graphql".into(),
            status,
            retry_after: None,
            body: body.into(),
            content_type: content_type.map(str::to_owned),
            location: location.map(str::to_owned),
            attempts: 1,
        })
    }

    #[test]
    fn classification_follows_algapsa_order() {
        let login = "https://auth.titankube.com/realms/partners/protocol/openid-connect/auth";
        assert!(matches!(status(302, None, Some(login), ""), TaniumError::Redirected));
        assert!(matches!(status(302, None, None, ""), TaniumError::Redirected));
        assert!(matches!(status(307, None, Some("https://t.example/login"), ""), TaniumError::Redirected));
        // A redirect elsewhere is just a status.
        assert!(matches!(status(307, None, Some("https://t.example/other"), ""), TaniumError::Status { .. }));
        assert!(matches!(status(403, Some("text/html"), None, "<html>"), TaniumError::Forbidden));
        assert!(matches!(status(401, None, None, ""), TaniumError::Unauthorized));
        assert!(matches!(status(400, Some("text/html"), None, ""), TaniumError::HtmlLogin));
        assert!(matches!(status(500, None, None, "<!DOCTYPE html><p>"), TaniumError::HtmlLogin));
        let e = status(502, Some("application/json"), None, "{}");
        assert_eq!(e.to_string(), format!("Tanium Gateway request failed with status 502. {GW_HINT}"));
        assert!(e.is_transient());
        assert!(status(302, None, None, "").to_string().contains("redirected to authentication"));
    }

    #[test]
    fn graphql_errors_show_the_real_text() {
        let e = TaniumError::graphql(
            "TaniumEndpoints",
            &[
                json!({"message": "Permission denied for content set Default", "path": ["endpoints"]}),
                json!({"message": ""}),
            ],
        );
        assert_eq!(
            e.to_string(),
            "Tanium Gateway query TaniumEndpoints failed: Permission denied for content set Default (at endpoints); \
             Tanium Gateway query failed"
        );
        let many: Vec<_> = (0..5).map(|i| json!({"message": format!("e{i}")})).collect();
        assert!(TaniumError::graphql("Q", &many).to_string().ends_with("e0; e1; e2; 2 more"));
    }
}
