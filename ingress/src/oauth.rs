//! `GET /api/integrations/{provider}/callback?code=…&state=…`: where an OAuth provider (NinjaOne)
//! sends the admin's browser after consent. Not behind an API key (the browser has none): the
//! signed `state` made by `GET …/integrations/{provider}/authorize` names the tenant and proves the
//! request started there.

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::{Data, Json, Path};
use poem::{IntoResponse, Request, Response, handler};
use rmm_shared::integrations as svc;
use rmm_shared::providers::{Provider, query_param};
use serde_json::json;

use crate::AppState;

#[handler]
pub async fn callback(req: &Request, provider: Path<String>, state: Data<&Arc<AppState>>) -> Response {
    let query = req.uri().query().unwrap_or("");
    let Some(provider) = Provider::from_slug(&provider) else {
        return Json(json!({ "error": "unknown provider" })).with_status(StatusCode::NOT_FOUND).into_response();
    };
    if let Some(error) = query_param(query, "error") {
        let msg = format!("the authorization was refused: {error}");
        return Json(json!({ "success": false, "error": msg })).with_status(StatusCode::BAD_REQUEST).into_response();
    }
    let code = query_param(query, "code").unwrap_or_default();
    let oauth_state = query_param(query, "state").unwrap_or_default();
    let conn = state.rt.integrations();
    match svc::oauth_callback(&conn, provider, &oauth_state, &code, &state.rt.settings.http).await {
        Ok(tenant) => {
            tracing::info!(%tenant, %provider, "OAuth authorization stored");
            Json(json!({ "success": true, "tenant": tenant, "provider": provider.slug() })).into_response()
        }
        Err(e) => {
            let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
            Json(json!({ "success": false, "error": e.public_message() })).with_status(status).into_response()
        }
    }
}
