//! The asset history on the status page: the "Latest asset changes" section of `/status`, and
//! `GET /status/assets/{asset_id}`, one asset's recorded changes (same access as `/status`; a
//! tenant key sees only its tenant's assets).

use std::fmt::Write;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{Request, Response, handler};
use rmm_shared::history::{self, HistoryEntry, HistoryQuery, MAX_LIMIT};
use uuid::Uuid;

use crate::AppState;
use crate::status::{STYLE, esc, html, principal, unavailable, when_text};

#[handler]
pub async fn asset_page(req: &Request, state: Data<&Arc<AppState>>, asset_id: Path<String>) -> Response {
    let principal = match principal(req, &state).await {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let Ok(asset_id) = asset_id.0.parse::<Uuid>() else {
        return Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .content_type("text/html; charset=utf-8")
            .body("<!doctype html><title>rmm-sync status</title><p>The asset id is not a UUID.</p>");
    };
    let q = HistoryQuery { tenant: principal.tenant, asset_id: Some(asset_id), before: None, limit: MAX_LIMIT };
    match history::read(&state.rt.db, q).await {
        Ok(entries) => html(render_asset(asset_id, &entries, Utc::now())),
        Err(e) => {
            tracing::error!(error = %e, "status page: database error");
            unavailable()
        }
    }
}

/// The "Latest asset changes" section of `/status`.
pub fn latest_changes(h: &mut String, entries: &[HistoryEntry], now: DateTime<Utc>) {
    h.push_str("<section id=\"asset-changes\"><h2>Latest asset changes</h2>");
    if entries.is_empty() {
        h.push_str("<p class=\"none\">No asset change recorded.</p></section>");
        return;
    }
    table(h, entries, now, true);
    h.push_str("</section>");
}

fn render_asset(asset_id: Uuid, entries: &[HistoryEntry], now: DateTime<Utc>) -> String {
    let mut h = String::with_capacity(8 * 1024);
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>rmm-sync asset {id}</title><style>{STYLE}</style></head><body>\
         <h1>Asset {id}</h1><p class=\"meta\"><a href=\"../../status\">status</a> · the changes rmm-sync made \
         to this asset, newest first (at most {MAX_LIMIT})</p><section id=\"history\">",
        id = esc(&asset_id.to_string()),
    );
    if entries.is_empty() {
        h.push_str("<p class=\"none\">No change recorded for this asset.</p>");
    } else {
        table(&mut h, entries, now, false);
    }
    h.push_str("</section></body></html>\n");
    h
}

fn table(h: &mut String, entries: &[HistoryEntry], now: DateTime<Utc>, link: bool) {
    h.push_str(
        "<table><thead><tr><th>when</th><th>asset</th><th>device</th><th>organisation</th><th>change</th>\
         <th>fields</th><th>run</th></tr></thead><tbody>",
    );
    for e in entries {
        let asset = esc(&e.asset_id.to_string());
        let asset = if link { format!("<a href=\"status/assets/{asset}\">{asset}</a>") } else { asset };
        let fields: Vec<String> = e
            .changes
            .iter()
            .map(|c| {
                format!(
                    "{}: {} → {}",
                    esc(&c.field),
                    esc(c.from.as_deref().unwrap_or("–")),
                    esc(c.to.as_deref().unwrap_or("–"))
                )
            })
            .collect();
        let run = match (&e.run_id, &e.job_id) {
            (Some(r), _) => format!("run {}", esc(&r.to_string())),
            (None, Some(j)) => format!("job {}", esc(j)),
            (None, None) => "–".into(),
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{asset}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{run}</td></tr>",
            when_text(Some(&e.recorded_at), now),
            esc(&e.external_device_id),
            esc(&e.external_organization_id),
            esc(&e.action),
            fields.join("<br>"),
        );
    }
    h.push_str("</tbody></table>");
}
