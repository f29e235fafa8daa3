//! The HTTP ingress: RMM webhooks (Tactical alert actions), the admin API (`/api/v1`, OpenAPI at
//! `/openapi.json`, Swagger UI at `/docs`), `/healthz`, `/readyz`, `/metrics` and the operators'
//! status page at `/status`.
#![forbid(unsafe_code)]

pub mod auth;
pub mod errors;
pub mod metrics;
pub mod oauth;
pub mod routes;
pub mod server;
pub mod status;
pub mod status_assets;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use poem::endpoint::make_sync;
use poem::web::Json;
use poem::{Endpoint, EndpointExt, IntoResponse, Response, Route, get, handler, post};
use poem_openapi::OpenApiService;
use rmm_jobs::Runtime;
use secrecy::SecretString;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// What every request handler shares.
pub struct AppState {
    pub rt: Runtime,
    /// `http.admin_token` (`RMM_SYNC_ADMIN_TOKEN`): a global read-write key, if set.
    pub bootstrap_key: Option<SecretString>,
    pub metrics: metrics::HttpMetrics,
}

impl AppState {
    pub fn new(rt: Runtime, bootstrap_key: Option<SecretString>) -> Arc<AppState> {
        Arc::new(AppState { rt, bootstrap_key, metrics: metrics::HttpMetrics::default() })
    }
}

/// The OpenAPI document's description: how to authenticate, and the one shape of every error.
const API_DESCRIPTION: &str = "Every call carries an admin key as `Authorization: Bearer <key>` (AlgaPSA's \
sync route: a tenant key in `x-api-key`). Every error answer is `{\"error\": \"<what is wrong>\"}`: \
400 for a path or query parameter that does not parse (named as in this document) or a body that is \
not JSON of the route's shape, 401 without a valid key, 403 for a read-only key's change, 404 for \
what the key may not see or what does not exist (and for a path no route has), 405 with `Allow` for \
a method the route does not take, 409 for a conflict, 413 for a body over the limit, 415 for a body \
that is not `application/json`, 503 when the database is unavailable. See docs/api.md.";

/// Where the RMMs' webhooks arrive: `/api/webhooks/{provider}` (Tactical: `tacticalrmm`).
pub const WEBHOOK_PREFIX: &str = "/api/webhooks/";
const WEBHOOK_ROUTE: &str = "/api/webhooks/:provider";
const OAUTH_CALLBACK_ROUTE: &str = "/api/integrations/:provider/callback";

/// The whole HTTP application.
pub fn app(state: Arc<AppState>) -> impl Endpoint {
    let api = OpenApiService::new(routes::admin_api(), "rmm-sync admin API", env!("CARGO_PKG_VERSION"))
        .server("/api/v1")
        .description(API_DESCRIPTION);
    let spec = api.spec_endpoint();
    let ui = api.swagger_ui();
    let metrics_state = state.clone();
    let http = &state.rt.settings.http;
    let api_limit = http.api_body_limit_kib.saturating_mul(1024);
    let body_timeout = Duration::from_millis(http.body_timeout_ms);
    // The methods of each route outside the OpenAPI service, for the `Allow` header of a 405.
    use poem::http::Method;
    let errors = errors::ApiErrors::new()
        .api::<routes::AdminApi>("/api/v1")
        .route(WEBHOOK_ROUTE, &[Method::POST, Method::OPTIONS])
        .route(OAUTH_CALLBACK_ROUTE, &[Method::GET])
        .route("/healthz", &[Method::GET])
        .route("/readyz", &[Method::GET])
        .route("/metrics", &[Method::GET])
        .route("/status", &[Method::GET])
        .route("/status/assets/:asset_id", &[Method::GET]);
    Route::new()
        .at(WEBHOOK_ROUTE, post(webhook::receive).options(make_sync(|_| poem::http::StatusCode::NO_CONTENT)))
        .at(OAUTH_CALLBACK_ROUTE, get(oauth::callback))
        .nest("/api/v1", api)
        .at("/openapi.json", spec)
        .nest("/docs", ui)
        .at("/healthz", get(healthz))
        .at("/readyz", get(readyz))
        .at("/metrics", get(metrics::endpoint))
        .at("/status", get(status::page))
        .at("/status/assets/:asset_id", get(status_assets::asset_page))
        .data(state)
        .around(move |ep, req| async move { server::body_guard(ep.as_ref(), req, api_limit, body_timeout).await })
        .with(errors)
        .around(move |ep, req| {
            let state = metrics_state.clone();
            async move {
                let method = req.method().to_string();
                let route = metrics::route_label(req.uri().path());
                let span = request_span(&req, &method, &route);
                let resp = async {
                    match ep.call(req).await {
                        Ok(r) => r.into_response(),
                        Err(e) => e.into_response(),
                    }
                }
                .instrument(span.clone())
                .await;
                let status = resp.status().as_u16();
                span.record("http.response.status_code", status);
                if resp.status().is_server_error() {
                    rmm_shared::telemetry::mark_error(&span, format!("HTTP {status}"));
                }
                state.metrics.record(&method, &route, status);
                Ok(resp)
            }
        })
}

/// The server span of one request, when traces are exported (none for health checks and
/// metrics scrapes). It continues the caller's trace when the request carries a W3C
/// `traceparent`, and everything the request does (e.g. enqueueing a job) happens inside it.
fn request_span(req: &poem::Request, method: &str, route: &str) -> tracing::Span {
    if !rmm_shared::telemetry::exporting() || matches!(route, "/healthz" | "/readyz" | "/metrics") {
        return tracing::Span::none();
    }
    let span = tracing::info_span!(
        "http request",
        otel.name = %format!("{method} {route}"),
        otel.kind = "server",
        http.request.method = %method,
        http.route = %route,
        url.path = %req.uri().path(),
        http.response.status_code = tracing::field::Empty,
    );
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    rmm_shared::telemetry::set_remote_parent(&span, header("traceparent"), header("tracestate"));
    span
}

/// What a worker process serves for operators (`worker.metrics_bind`): `/healthz`, `/readyz` and
/// `/metrics` (its upstream calls, and the job and queue gauges every process reads from the store).
pub fn ops_app(state: Arc<AppState>) -> impl Endpoint {
    use poem::http::Method;
    let errors = errors::ApiErrors::new()
        .route("/healthz", &[Method::GET])
        .route("/readyz", &[Method::GET])
        .route("/metrics", &[Method::GET]);
    Route::new()
        .at("/healthz", get(healthz))
        .at("/readyz", get(readyz))
        .at("/metrics", get(metrics::endpoint))
        .data(state)
        .with(errors)
}

/// Serves [`ops_app`] on `bind` until `shutdown`.
pub async fn serve_ops(state: Arc<AppState>, bind: String, shutdown: CancellationToken) -> std::io::Result<()> {
    let header_timeout = Duration::from_millis(state.rt.settings.http.header_timeout_ms);
    let listener = tokio::net::TcpListener::bind(bind.as_str()).await?;
    tracing::info!(%bind, "worker metrics listening");
    server::serve_listener(listener, ops_app(state), header_timeout, shutdown, Some(Duration::from_secs(2))).await
}

#[handler]
fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

#[handler]
async fn readyz(state: poem::web::Data<&Arc<AppState>>) -> Response {
    let db = &state.rt.db;
    let (db_ok, migrations) = match db.ping().await {
        Ok(()) => (true, db.migrations_current().await.unwrap_or(false)),
        Err(_) => (false, false),
    };
    let queue_ok = state.rt.queue.ping().await.is_ok();
    let ready = db_ok && migrations && queue_ok;
    let body = json!({
        "ready": ready,
        "database": if db_ok { "ok" } else { "unreachable" },
        "migrations": if migrations { "current" } else { "pending" },
        "queue": if queue_ok { "ok" } else { "unreachable" },
    });
    let status = if ready { poem::http::StatusCode::OK } else { poem::http::StatusCode::SERVICE_UNAVAILABLE };
    Json(body).with_status(status).into_response()
}

/// Serves the application on `settings.http.bind` until `shutdown`; then stops accepting and
/// gives open requests up to 10 s.
pub async fn serve(state: Arc<AppState>, shutdown: CancellationToken) -> std::io::Result<()> {
    let bind = state.rt.settings.http.bind.clone();
    let listener = tokio::net::TcpListener::bind(bind.as_str()).await?;
    tracing::info!(%bind, "ingress listening");
    serve_on(listener, state, shutdown, Some(Duration::from_secs(10))).await
}

/// Serves the application on an open listener until `shutdown` (then open requests get up to
/// `grace`), with the header timeout and body limits of `settings.http`.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: CancellationToken,
    grace: Option<Duration>,
) -> std::io::Result<()> {
    let header_timeout = Duration::from_millis(state.rt.settings.http.header_timeout_ms);
    server::serve_listener(listener, app(state), header_timeout, shutdown, grace).await
}
