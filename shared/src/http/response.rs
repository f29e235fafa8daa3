//! Upstream answers: a buffered 2xx answer, a streamed one, and reading bodies within their limits.

use std::time::Duration;

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap};

use super::HttpError;
use super::error::classify_transport;

/// How many characters of an error body are kept in [`HttpError::Status`].
const ERROR_BODY_LIMIT: usize = 512;

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
///
/// Read whole ([`StreamingResponse::bytes`]), it is held to
/// [`HttpConfig::max_body_bytes`](super::HttpConfig::max_body_bytes). Read chunk by chunk, its
/// memory is the reader's business and there is no byte limit unless the caller sets one
/// ([`StreamingResponse::limit`]); the request timeout still bounds the whole exchange.
#[derive(Debug)]
pub struct StreamingResponse {
    pub(super) upstream: String,
    pub(super) timeout: Duration,
    pub(super) max_body: usize,
    pub(super) inner: reqwest::Response,
    /// Bytes handed out by [`StreamingResponse::chunk`] so far, and the limit on them.
    pub(super) streamed: usize,
    pub(super) stream_limit: Option<usize>,
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

    /// Refuse a body longer than `limit` bytes when read chunk by chunk: at once when its
    /// `Content-Length` says so, else with the chunk that goes past it
    /// ([`HttpError::TooLarge`], not retried).
    pub fn limit(mut self, limit: usize) -> Result<Self, HttpError> {
        if self.inner.content_length().is_some_and(|n| n > limit as u64) {
            return Err(HttpError::TooLarge { upstream: self.upstream, limit });
        }
        self.stream_limit = Some(limit);
        Ok(self)
    }

    /// The next chunk of the body, `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, HttpError> {
        let upstream = self.upstream.clone();
        let timeout = self.timeout;
        let chunk = self.inner.chunk().await.map_err(|e| classify_transport(&upstream, timeout, e, 1))?;
        if let (Some(c), Some(limit)) = (&chunk, self.stream_limit) {
            self.streamed += c.len();
            if self.streamed > limit {
                return Err(HttpError::TooLarge { upstream, limit });
            }
        }
        Ok(chunk)
    }

    /// Read the rest of the body (at most
    /// [`HttpConfig::max_body_bytes`](super::HttpConfig::max_body_bytes)).
    pub async fn bytes(self) -> Result<Bytes, HttpError> {
        let StreamingResponse { upstream, timeout, max_body, inner, .. } = self;
        read_body(inner, max_body, &upstream).await.map_err(|e| match e {
            BodyError::TooLarge(e) => e,
            BodyError::Read(e) => classify_transport(&upstream, timeout, e, 1),
        })
    }
}

pub(super) enum BodyError {
    TooLarge(HttpError),
    Read(reqwest::Error),
}

/// The whole body, refused as soon as it is known to be longer than `max` bytes.
pub(super) async fn read_body(mut resp: reqwest::Response, max: usize, upstream: &str) -> Result<Bytes, BodyError> {
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

pub(super) fn media_type(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    Some(v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
}

/// The start of an error answer's body: at most `ERROR_BODY_LIMIT * 4` bytes are read, however
/// long the body is (the rest is dropped with the connection).
pub(super) async fn read_error_body(mut resp: reqwest::Response) -> String {
    let mut b = Vec::new();
    while b.len() < ERROR_BODY_LIMIT * 4 {
        match resp.chunk().await {
            Ok(Some(c)) => b.extend_from_slice(&c[..c.len().min(ERROR_BODY_LIMIT * 4 - b.len())]),
            Ok(None) | Err(_) => break,
        }
    }
    String::from_utf8_lossy(&b).chars().take(ERROR_BODY_LIMIT).collect()
}
