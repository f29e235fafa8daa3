//! `POST /api/webhooks/tacticalrmm?tenant=<uuid>`: AlgaPSA's contract (status codes and JSON
//! bodies), with a constant-time secret check, a 256 KiB body limit, and a 200 only once the
//! delivery is stored and its job enqueued (503 when the database cannot take it).

use std::sync::Arc;
use std::time::Duration;

use poem::http::StatusCode;
use poem::web::{Data, Json};
use poem::{Body, IntoResponse, Request, Response, handler};
use rmm_jobs::tactical::SECRET_WEBHOOK;
use rmm_jobs::webhooks::{Accepted, accept_tactical};
use rmm_shared::events::Event;
use rmm_shared::providers::tactical::alerts::parse_webhook;
use rmm_shared::providers::tactical::sync::PROVIDER;
use rmm_shared::secrets::ct_eq;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::AppState;

/// Largest accepted body.
pub const MAX_BODY: usize = 256 * 1024;
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
pub async fn tactical(req: &Request, body: Body, state: Data<&Arc<AppState>>) -> Response {
    if req.headers().get(poem::http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        > Some(MAX_BODY)
    {
        return error(StatusCode::PAYLOAD_TOO_LARGE, "Webhook body too large (limit 256 KiB)");
    }
    let tenant =
        req.uri().query().and_then(|q| url_param(q, "tenant")).map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
    let Some(tenant) = tenant else { return error(StatusCode::BAD_REQUEST, "Missing tenant") };
    let presented = req.headers().get(SECRET_HEADER).and_then(|v| v.to_str().ok()).map(str::trim).unwrap_or("");
    if presented.is_empty() {
        return error(StatusCode::UNAUTHORIZED, "Unauthorized: missing webhook secret");
    }
    // A tenant that is not a UUID cannot have a secret.
    let Ok(tenant) = Uuid::parse_str(&tenant) else {
        return error(StatusCode::UNAUTHORIZED, "Unauthorized: invalid webhook secret");
    };
    let stored = match state.rt.secrets.get_tenant_secret(tenant, SECRET_WEBHOOK).await {
        Ok(s) => s,
        Err(e) => return unavailable("webhook secret could not be read", e),
    };
    match stored {
        Some(s) if ct_eq(presented, &s) => {}
        _ => return error(StatusCode::UNAUTHORIZED, "Unauthorized: invalid webhook secret"),
    }
    let bytes = match body.into_bytes_limit(MAX_BODY).await {
        Ok(b) => b,
        Err(poem::error::ReadBodyError::PayloadTooLarge) => {
            return error(StatusCode::PAYLOAD_TOO_LARGE, "Webhook body too large (limit 256 KiB)");
        }
        Err(_) => return error(StatusCode::BAD_REQUEST, "Invalid JSON body"),
    };
    let hook = match parse_webhook(&bytes) {
        Ok(h) => h,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let window = Duration::from_secs(state.rt.settings.http.webhook_coalesce_secs);
    match accept_tactical(&state.rt, tenant, &hook, window).await {
        Ok(Accepted::NotRecorded(reason)) => {
            reply(StatusCode::OK, json!({ "ok": true, "recorded": false, "reason": reason }))
        }
        Ok(Accepted::Recorded { delivery_id, job_id, integration_id, coalesced }) => {
            tracing::info!(%tenant, agent_id = %hook.agent_id, %delivery_id, %job_id, coalesced, "webhook stored");
            let events = state.rt.events.clone();
            let raw = Value::Object(hook.fields.clone());
            let event_type = raw.get("event").and_then(Value::as_str).unwrap_or("trigger").to_lowercase();
            let agent = hook.agent_id.clone();
            tokio::spawn(async move {
                let ev =
                    Event::webhook_received(tenant, integration_id, PROVIDER, &event_type, Some(&agent), None, &raw);
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

/// A query parameter, percent-decoded.
fn url_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(if b == b'+' { b' ' } else { b });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params() {
        assert_eq!(url_param("tenant=abc&x=1", "tenant").as_deref(), Some("abc"));
        assert_eq!(url_param("x=1&tenant=a%2Db", "tenant").as_deref(), Some("a-b"));
        assert_eq!(url_param("x=1", "tenant"), None);
        assert_eq!(url_param("tenant=%zz", "tenant").as_deref(), Some("%zz"));
        assert_eq!(url_param("tenant=%4", "tenant").as_deref(), Some("%4"));
        assert_eq!(url_param("tenant=%é1", "tenant").as_deref(), Some("%é1"));
    }
}
