//! `POST /api/webhooks/{provider}?tenant=<uuid>` (`tacticalrmm`, `ninjaone`): AlgaPSA's contract
//! (status codes and JSON bodies), with a constant-time secret check, one answer in one time for a wrong secret and an
//! unknown tenant, a 256 KiB body limit, and a 200 only once the delivery is stored and its job
//! enqueued (503 when the database cannot take it).

use std::sync::Arc;
use std::time::{Duration, Instant};

use poem::http::StatusCode;
use poem::web::{Data, Json, Path};
use poem::{Body, IntoResponse, Request, Response, handler};
use rmm_jobs::webhooks::{Accepted, Delivery, accept};
use rmm_shared::events::Event;
use rmm_shared::providers::{Provider, webhook, webhook_tenant};
use rmm_shared::secrets::{ct_eq_or_none, hmac_matches};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::AppState;

/// Largest accepted body.
pub const MAX_BODY: usize = 256 * 1024;
/// The answer to a larger one (413).
pub const TOO_LARGE: &str = "Webhook body too large (limit 256 KiB)";
pub const SECRET_HEADER: &str = "x-alga-webhook-secret";

fn reply(status: StatusCode, body: Value) -> Response {
    Json(body).with_status(status).into_response()
}

fn error(status: StatusCode, msg: &str) -> Response {
    reply(status, json!({ "error": msg }))
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "{what}; webhook refused with 503");
    error(StatusCode::SERVICE_UNAVAILABLE, "Webhook could not be stored; try again later.")
}

#[handler]
pub async fn receive(req: &Request, provider: Path<String>, body: Body, state: Data<&Arc<AppState>>) -> Response {
    let started = Instant::now();
    let Some((provider, spec)) = Provider::from_slug(&provider).and_then(|p| Some((p, webhook(p)?))) else {
        return error(StatusCode::NOT_FOUND, "No webhook for this provider");
    };
    if req.headers().get(poem::http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        > Some(MAX_BODY)
    {
        return error(StatusCode::PAYLOAD_TOO_LARGE, TOO_LARGE);
    }
    let Some(tenant) = webhook_tenant(req.uri().query()) else {
        return error(StatusCode::BAD_REQUEST, "Missing tenant");
    };
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::trim).unwrap_or("");
    let presented = header(SECRET_HEADER);
    // A provider that signs its deliveries may authenticate with the signature instead.
    let signature = spec.signature_header.map(header).unwrap_or("");
    if presented.is_empty() && signature.is_empty() {
        return error(StatusCode::UNAUTHORIZED, "Unauthorized: missing webhook secret");
    }
    // One answer, in one time, for a wrong secret, an unknown tenant, a tenant without a secret
    // and a tenant that is not a UUID (which cannot have a secret): nothing tells whether the
    // tenant exists. A missing secret is compared against a placeholder, and the refusal waits
    // for `http.webhook_unauthorized_floor_ms` to cover the secret lookup's own time.
    let tenant = Uuid::parse_str(&tenant).ok();
    let stored = match tenant {
        Some(t) => match state.rt.secrets.get_tenant_secret(t, spec.secret).await {
            Ok(s) => s,
            Err(e) => return unavailable("webhook secret could not be read", e),
        },
        None => None,
    };
    // The signature covers the body, so the body is read first on that path (within the limit).
    let mut body = Some(body);
    let mut bytes = None;
    let authentic = if presented.is_empty() {
        let read = match body.take().expect("the body").into_bytes_limit(MAX_BODY).await {
            Ok(b) => b,
            Err(poem::error::ReadBodyError::PayloadTooLarge) => {
                return error(StatusCode::PAYLOAD_TOO_LARGE, TOO_LARGE);
            }
            Err(_) => return error(StatusCode::BAD_REQUEST, "Invalid JSON body"),
        };
        let ok = hmac_matches(signature, stored.as_ref(), &read);
        bytes = Some(read);
        ok
    } else {
        ct_eq_or_none(presented, stored.as_ref())
    };
    let (Some(tenant), true) = (tenant, authentic) else {
        let floor = Duration::from_millis(state.rt.settings.http.webhook_unauthorized_floor_ms);
        tokio::time::sleep_until((started + floor).into()).await;
        return error(StatusCode::UNAUTHORIZED, "Unauthorized: invalid webhook secret");
    };
    let bytes = match (bytes, body) {
        (Some(b), _) => b,
        (None, Some(body)) => match body.into_bytes_limit(MAX_BODY).await {
            Ok(b) => b,
            Err(poem::error::ReadBodyError::PayloadTooLarge) => {
                return error(StatusCode::PAYLOAD_TOO_LARGE, TOO_LARGE);
            }
            Err(_) => return error(StatusCode::BAD_REQUEST, "Invalid JSON body"),
        },
        (None, None) => unreachable!("the body is read once"),
    };
    let hook = match (spec.parse)(&bytes) {
        Ok(h) => h,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    if hook.device_id.is_empty() {
        // An event about no device (AlgaPSA answers these 200 and records nothing).
        return reply(StatusCode::OK, json!({ "ok": true, "recorded": false, "reason": "no_device_id" }));
    }
    let window = Duration::from_secs(state.rt.settings.http.webhook_coalesce_secs);
    let delivery = Delivery { provider, device_id: &hook.device_id, fields: &hook.fields };
    match accept(&state.rt, tenant, &delivery, window).await {
        Ok(Accepted::NotRecorded(reason)) => {
            reply(StatusCode::OK, json!({ "ok": true, "recorded": false, "reason": reason }))
        }
        Ok(Accepted::Recorded { delivery_id, job_id, integration_id, coalesced }) => {
            tracing::info!(%tenant, %provider, agent_id = %hook.device_id, %delivery_id, %job_id, coalesced,
                "webhook stored");
            let events = state.rt.events.clone();
            tokio::spawn(async move {
                let raw = Value::Object(hook.fields);
                let ev = Event::webhook_received(
                    tenant,
                    integration_id,
                    provider.slug(),
                    &hook.event,
                    Some(&hook.device_id),
                    None,
                    &raw,
                );
                events.publish(&ev).await;
            });
            reply(
                StatusCode::OK,
                json!({ "ok": true, "recorded": true, "job_id": job_id, "delivery_id": delivery_id, "coalesced": coalesced }),
            )
        }
        Err(e) => unavailable("webhook delivery could not be stored", e),
    }
}
