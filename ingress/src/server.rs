//! The HTTP listener: poem endpoints served over HTTP/1.1 by hyper, with the limits a public
//! endpoint needs and poem's own `Server` does not set.
//!
//! - A client has `header_timeout` to send a request's headers, counted from the start of the
//!   connection or the end of the previous response; then the connection is closed. A client that
//!   trickles its headers (slowloris), or holds an idle keep-alive connection, is cut off.
//! - Bodies are limited in size and time by [`body_guard`] (wired in by [`crate::app`]).
//! - Only HTTP/1.1 is served (no h2c): a proxy in front may speak HTTP/2 to its clients.
//!
//! On shutdown the listener stops accepting, every connection finishes its current request and
//! closes, and after `grace` the rest are dropped.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use poem::endpoint::BoxEndpoint;
use poem::http::StatusCode;
use poem::http::uri::Scheme;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Addr, Body, Endpoint, EndpointExt, IntoResponse, Request, Response};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Serves `ep` on `listener` until `shutdown`; then open requests get up to `grace` (`None`: as
/// long as they take).
pub async fn serve_listener<E>(
    listener: TcpListener,
    ep: E,
    header_timeout: Duration,
    shutdown: CancellationToken,
    grace: Option<Duration>,
) -> std::io::Result<()>
where
    E: Endpoint + 'static,
{
    let ep: Arc<BoxEndpoint<'static, Response>> = Arc::new(ep.map_to_response().boxed());
    let connections = TaskTracker::new();
    let abort = CancellationToken::new();
    loop {
        let (socket, remote) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: keep serving the open connections.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let (ep, shutdown, abort) = (ep.clone(), shutdown.clone(), abort.clone());
        connections.spawn(async move {
            tokio::select! {
                _ = serve_connection(socket, remote, ep, header_timeout, shutdown) => {}
                _ = abort.cancelled() => {}
            }
        });
    }
    drop(listener);
    connections.close();
    match grace {
        Some(grace) => {
            if tokio::time::timeout(grace, connections.wait()).await.is_err() {
                tracing::warn!(open = connections.len(), "connections still open after the shutdown grace period");
                abort.cancel();
                connections.wait().await;
            }
        }
        None => connections.wait().await,
    }
    Ok(())
}

async fn serve_connection(
    socket: TcpStream,
    remote: SocketAddr,
    ep: Arc<BoxEndpoint<'static, Response>>,
    header_timeout: Duration,
    shutdown: CancellationToken,
) {
    let _ = socket.set_nodelay(true);
    let local = socket.local_addr().ok();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let ep = ep.clone();
        async move {
            let local = LocalAddr(local.map(Addr::SocketAddr).unwrap_or_default());
            let req = Request::from((req, local, RemoteAddr(Addr::SocketAddr(remote)), Scheme::HTTP));
            let resp = ep.get_response(req).await;
            Ok::<_, Infallible>(hyper::Response::<BoxBody<_, _>>::from(resp))
        }
    });
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(header_timeout);
    let conn = builder.serve_connection(TokioIo::new(socket), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        // Timeouts, resets and malformed requests: the client's doing, not ours.
        tracing::debug!(%remote, error = %e, "connection ended with an error");
    }
}

/// The largest body of a request to `path`.
fn body_limit(path: &str, api_limit: usize) -> usize {
    if path.starts_with(crate::WEBHOOK_PREFIX) { crate::webhook::MAX_BODY } else { api_limit }
}

fn refuse(status: StatusCode, msg: String) -> Response {
    let mut resp = poem::web::Json(json!({ "error": msg })).with_status(status).into_response();
    // The rest of the body is not read: the connection cannot carry another request.
    resp.headers_mut().insert(poem::http::header::CONNECTION, poem::http::HeaderValue::from_static("close"));
    resp
}

fn too_large(path: &str, limit: usize) -> Response {
    if path.starts_with(crate::WEBHOOK_PREFIX) {
        return refuse(StatusCode::PAYLOAD_TOO_LARGE, crate::webhook::TOO_LARGE.into());
    }
    refuse(StatusCode::PAYLOAD_TOO_LARGE, format!("Request body too large (limit {} KiB)", limit / 1024))
}

/// Reads the request body before the route runs: more than the route's limit is answered 413 (at
/// once when `Content-Length` says so, else as soon as the limit is passed, never buffering more
/// than the limit; chunked bodies too), a body not complete within `body_timeout` of the request's
/// start is answered 408. The route gets the body already read.
pub async fn body_guard<E: Endpoint>(
    ep: &E,
    mut req: Request,
    api_limit: usize,
    body_timeout: Duration,
) -> poem::Result<Response> {
    let path = req.uri().path().to_owned();
    let limit = body_limit(&path, api_limit);
    let declared = req
        .headers()
        .get(poem::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Ok(too_large(&path, limit));
    }
    let body = req.take_body();
    let bytes = match tokio::time::timeout(body_timeout, body.into_bytes_limit(limit)).await {
        Err(_) => {
            return Ok(refuse(
                StatusCode::REQUEST_TIMEOUT,
                format!("Request body not received within {} ms", body_timeout.as_millis()),
            ));
        }
        Ok(Err(poem::error::ReadBodyError::PayloadTooLarge)) => return Ok(too_large(&path, limit)),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "request body could not be read");
            return Ok(refuse(StatusCode::BAD_REQUEST, "Request body could not be read".into()));
        }
        Ok(Ok(b)) => b,
    };
    req.set_body(Body::from(bytes));
    ep.call(req).await.map(IntoResponse::into_response)
}
