//! `/metrics` in the Prometheus text format: HTTP requests of this process, jobs by kind and
//! status, queue depth and the age of the oldest due job per kind, upstream calls of this process
//! by provider and status, rows processed by the retained sync runs, integrations that must be
//! reconnected (every provider), and schedules whose last slot was skipped.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};

use poem::web::Data;
use poem::{IntoResponse, Response, handler};
use rmm_shared::integrations::lifecycle;

use crate::AppState;

/// Requests by (method, route, status).
#[derive(Default)]
pub struct HttpMetrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
}

impl HttpMetrics {
    pub fn record(&self, method: &str, route: &str, status: u16) {
        let mut m = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry((method.to_owned(), route.to_owned(), status)).or_default() += 1;
    }

    fn snapshot(&self) -> Vec<((String, String, u16), u64)> {
        let m = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        m.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}

/// A low-cardinality label for a path: ids (UUIDs, ULIDs, numbers) become `{id}`, unknown paths
/// collapse to `other`.
pub fn route_label(path: &str) -> String {
    let known = [
        "/api/webhooks/",
        "/api/integrations/",
        "/api/v1/",
        "/healthz",
        "/readyz",
        "/metrics",
        "/status",
        "/openapi.json",
        "/docs",
    ];
    if !known.iter().any(|k| path.starts_with(k)) {
        return "other".into();
    }
    if path.starts_with("/docs") {
        return "/docs".into();
    }
    path.split('/')
        .map(|seg| {
            let id_like = seg.len() >= 20 && seg.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                || (!seg.is_empty() && seg.chars().all(|c| c.is_ascii_digit()));
            if id_like { "{id}" } else { seg }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn esc(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[handler]
pub async fn endpoint(state: Data<&Arc<AppState>>) -> Response {
    let mut out = String::new();
    let _ = writeln!(out, "# HELP rmm_sync_http_requests_total HTTP requests answered by this process.");
    let _ = writeln!(out, "# TYPE rmm_sync_http_requests_total counter");
    for ((method, route, status), n) in state.metrics.snapshot() {
        let _ = writeln!(
            out,
            "rmm_sync_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {n}",
            esc(&method),
            esc(&route)
        );
    }
    let store = state.rt.store();
    let _ = writeln!(out, "# HELP rmm_sync_jobs Jobs by kind and status (retained rows).");
    let _ = writeln!(out, "# TYPE rmm_sync_jobs gauge");
    match store.counts().await {
        Ok(rows) => {
            for (kind, status, n) in rows {
                let _ = writeln!(out, "rmm_sync_jobs{{kind=\"{}\",status=\"{}\"}} {n}", esc(&kind), esc(&status));
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: job counts unavailable"),
    }
    let _ = writeln!(out, "# HELP rmm_sync_queue_depth Jobs waiting to run (pending, retrying, waiting) per kind.");
    let _ = writeln!(out, "# TYPE rmm_sync_queue_depth gauge");
    let _ = writeln!(out, "# HELP rmm_sync_queue_oldest_age_seconds Age of the oldest due waiting job per kind.");
    let _ = writeln!(out, "# TYPE rmm_sync_queue_oldest_age_seconds gauge");
    match store.depth().await {
        Ok(rows) => {
            for d in rows {
                let _ = writeln!(out, "rmm_sync_queue_depth{{kind=\"{}\"}} {}", esc(&d.kind), d.depth);
                let _ = writeln!(
                    out,
                    "rmm_sync_queue_oldest_age_seconds{{kind=\"{}\"}} {:.3}",
                    esc(&d.kind),
                    d.oldest_age_secs
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: queue depth unavailable"),
    }
    let _ = writeln!(out, "# HELP rmm_sync_upstream_calls_total Calls to RMM APIs made by this process.");
    let _ = writeln!(out, "# TYPE rmm_sync_upstream_calls_total counter");
    for ((provider, outcome), n) in rmm_shared::upstream_calls::process_totals() {
        let _ = writeln!(
            out,
            "rmm_sync_upstream_calls_total{{provider=\"{}\",status=\"{}\"}} {n}",
            esc(provider),
            esc(&outcome.to_string())
        );
    }
    let _ = writeln!(
        out,
        "# HELP rmm_sync_webhook_writes_total Statements that wrote accepted webhooks in this process, and the \
         webhooks they wrote (group commit, PostgreSQL with the PostgreSQL queue: webhooks / statements is the \
         mean batch)."
    );
    let _ = writeln!(out, "# TYPE rmm_sync_webhook_writes_total counter");
    if let Some((statements, rows)) = state.rt.webhook_batches() {
        let _ = writeln!(out, "rmm_sync_webhook_writes_total{{what=\"statements\"}} {statements}");
        let _ = writeln!(out, "rmm_sync_webhook_writes_total{{what=\"webhooks\"}} {rows}");
    }
    let events = &state.rt.events;
    let _ = writeln!(
        out,
        "# HELP rmm_sync_events_total AlgaPSA events this process wrote to Redis (published) or could not \
         (skipped: Redis unavailable or not configured)."
    );
    let _ = writeln!(out, "# TYPE rmm_sync_events_total counter");
    let _ = writeln!(out, "rmm_sync_events_total{{outcome=\"published\"}} {}", events.published());
    let _ = writeln!(out, "rmm_sync_events_total{{outcome=\"skipped\"}} {}", events.skipped());
    let db = &state.rt.db;
    let sql = format!(
        "SELECT provider, CAST(COALESCE(SUM(items_processed), 0) AS BIGINT), CAST(COALESCE(SUM(items_created), 0) AS BIGINT), \
         CAST(COALESCE(SUM(items_updated), 0) AS BIGINT), CAST(COALESCE(SUM(items_placeholder_serials), 0) AS BIGINT) \
         FROM {} GROUP BY provider",
        db.ours("sync_runs")
    );
    let _ = writeln!(
        out,
        "# HELP rmm_sync_rows_ingested Rows processed, created and updated by the retained sync runs, and the devices \
         among them whose serial number is a placeholder (action placeholder_serial)."
    );
    let _ = writeln!(out, "# TYPE rmm_sync_rows_ingested gauge");
    match db.fetch::<(String, i64, i64, i64, i64)>(&sql, &[]).await {
        Ok(rows) => {
            for (provider, processed, created, updated, placeholders) in rows {
                for (what, n) in [
                    ("processed", processed),
                    ("created", created),
                    ("updated", updated),
                    ("placeholder_serial", placeholders),
                ] {
                    let _ = writeln!(
                        out,
                        "rmm_sync_rows_ingested{{provider=\"{}\",action=\"{what}\"}} {n}",
                        esc(&provider)
                    );
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: ingest counts unavailable"),
    }
    // Integrations that must be reconnected (`settings.tokenLifecycle.status`, AlgaPSA's place for
    // it), whatever their provider: their scheduled and admin jobs are skipped until they are
    // authorized again or pass a connection test. Every provider is listed, 0 when none.
    let sql = format!(
        "SELECT provider, CAST(COUNT(*) AS BIGINT) FROM rmm_integrations WHERE {} = '{}' GROUP BY provider",
        lifecycle::token_status_sql(db.dialect(), "settings"),
        lifecycle::RECONNECT_REQUIRED
    );
    let _ = writeln!(
        out,
        "# HELP rmm_sync_integrations_reconnect_required Integrations whose settings.tokenLifecycle.status is \
         reconnect_required, by provider; their scheduled and admin jobs are skipped until they are reconnected."
    );
    let _ = writeln!(out, "# TYPE rmm_sync_integrations_reconnect_required gauge");
    match db.fetch::<(String, i64)>(&sql, &[]).await {
        Ok(rows) => {
            let mut by_provider: BTreeMap<String, i64> =
                rmm_shared::integrations::providers().into_iter().map(|p| (p.slug().to_owned(), 0)).collect();
            by_provider.extend(rows);
            for (provider, n) in by_provider {
                let _ =
                    writeln!(out, "rmm_sync_integrations_reconnect_required{{provider=\"{}\"}} {n}", esc(&provider));
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: integration token states unavailable"),
    }
    // Schedules whose last slot was claimed but not run, by provider and reason.
    let sql = format!(
        "SELECT COALESCE(provider, ''), last_skip_reason, CAST(COUNT(*) AS BIGINT) FROM {} \
         WHERE last_skip_reason IS NOT NULL GROUP BY COALESCE(provider, ''), last_skip_reason",
        db.ours("schedules")
    );
    let _ = writeln!(
        out,
        "# HELP rmm_sync_schedules_skipped Schedules whose last slot was skipped (not enqueued), by provider and reason."
    );
    let _ = writeln!(out, "# TYPE rmm_sync_schedules_skipped gauge");
    match db.fetch::<(String, String, i64)>(&sql, &[]).await {
        Ok(rows) => {
            for (provider, reason, n) in rows {
                let _ = writeln!(
                    out,
                    "rmm_sync_schedules_skipped{{provider=\"{}\",reason=\"{}\"}} {n}",
                    esc(&provider),
                    esc(&reason)
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: schedule skips unavailable"),
    }
    out.with_content_type("text/plain; version=0.0.4").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_stay_low_cardinality() {
        assert_eq!(
            route_label("/api/v1/tenants/0b5f8f0e-8f6c-4b4e-9d7a-2f9d1e3c4b5a/integrations/tacticalrmm"),
            "/api/v1/tenants/{id}/integrations/tacticalrmm"
        );
        assert_eq!(route_label("/api/v1/jobs/01JABCDEFGHJKMNPQRSTVWXYZ0"), "/api/v1/jobs/{id}");
        assert_eq!(route_label("/wp-login.php"), "other");
        assert_eq!(route_label("/docs/swagger.js"), "/docs");
    }
}
