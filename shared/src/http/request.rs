//! Building an upstream request, and the redacted forms of its URL used in errors, logs and keys.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use url::Url;

use super::{HttpError, RetryPolicy};

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

/// One upstream request. Build it, then hand it to [`HttpClient::send`](super::HttpClient::send).
#[derive(Clone)]
pub struct UpstreamRequest {
    pub(super) method: Method,
    pub(super) url: Url,
    pub(super) headers: HeaderMap,
    pub(super) body: Option<Bytes>,
    pub(super) idempotent: bool,
    pub(super) timeout: Option<Duration>,
    pub(super) retry: Option<RetryPolicy>,
    /// Whether a 429 may be waited out and repeated in place (see [`UpstreamRequest::final_on_429`]).
    pub(super) retry_429: bool,
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
            .field("retry_429", &self.retry_429)
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
        UpstreamRequest {
            method,
            url,
            headers: HeaderMap::new(),
            body: None,
            idempotent,
            timeout: None,
            retry: None,
            retry_429: true,
        }
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

    /// A form body (`Content-Type: application/x-www-form-urlencoded`), as OAuth token endpoints
    /// take it. The values may be secrets: the request's `Debug` shows only the body's length.
    pub fn form(mut self, fields: &[(&str, &str)]) -> Self {
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
        self.headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded"));
        self.body = Some(Bytes::from(body));
        self
    }

    /// Override whether the request may be repeated after a timeout or a 5xx.
    pub fn idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = idempotent;
        self
    }

    /// A 429 answer ends the request at once as [`HttpError::RateLimited`], whatever its
    /// `Retry-After`: for calls an upstream counts even when it refuses them, or whose refusal
    /// the caller must report rather than wait out (Tactical's throttled logins). Connection
    /// errors, timeouts and 5xx are retried as usual.
    pub fn final_on_429(mut self) -> Self {
        self.retry_429 = false;
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

    pub(super) fn redacted(&self) -> String {
        format!("{} {}", self.method, redact_url(&self.url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(UpstreamRequest::patch(u.clone()).idempotent(true).idempotent);
        let form = UpstreamRequest::post(u).form(&[("grant_type", "refresh_token"), ("refresh_token", "a b&c")]);
        assert_eq!(form.body.as_deref(), Some(&b"grant_type=refresh_token&refresh_token=a+b%26c"[..]));
        assert!(!format!("{form:?}").contains("a+b"));
    }
}
