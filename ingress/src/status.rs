//! `GET /status`: the operators' status page, server-rendered HTML with inline SVG charts (no
//! JavaScript, no external assets).
//!
//! It shows the jobs per kind (queued, running, delayed, failed in the last 24 hours), the running
//! jobs, the failed and retrying jobs with their errors, every integration with its last sync run
//! (marked when it must be reconnected, with its schedules whose last slot was skipped and why),
//! the jobs finished and upstream calls made per minute over the last hour, and the latest changes
//! the sync made to assets (each asset's whole history at `/status/assets/{asset_id}`, see
//! [`crate::status_assets`]). Everything comes from the store (`rmm_sync.job_runs`, `sync_runs`,
//! `upstream_calls`, `rmm_integrations`, `asset_history`), which every process writes whatever the
//! queue backend, so one ingress shows the whole deployment.
//!
//! Access: an admin API key, sent as `Authorization: Bearer <key>` or as the password of HTTP
//! Basic authentication (any user name), which browsers ask for on the `401` this page answers
//! without one. A tenant-scoped key sees only its tenant's rows; a global key sees all.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

use chrono::{DateTime, Duration, DurationRound, Utc};
use poem::http::{HeaderMap, StatusCode, header};
use poem::web::Data;
use poem::web::headers::authorization::{Basic, Bearer};
use poem::web::headers::{Authorization, HeaderMapExt};
use poem::{Request, Response, handler};
use rmm_jobs::store::{KindOverview, MinuteJobs};
use rmm_jobs::{JobFilter, JobStatus, JobView, Scope};
use rmm_shared::db::sql::ColType;
use rmm_shared::db::{Db, DbError};
use rmm_shared::history::{self, HistoryEntry, HistoryQuery};
use rmm_shared::integrations::lifecycle;
use rmm_shared::upstream_calls::{self, MinuteCalls};
use uuid::Uuid;

use crate::AppState;
use crate::auth::{Principal, authenticate};

/// How many rows each table shows at most.
const RUNNING_LIMIT: u32 = 100;
const FAILURES_LIMIT: u32 = 50;
const INTEGRATIONS_LIMIT: usize = 500;
const CHANGES_LIMIT: u32 = 20;
/// The page reloads itself this often (`<meta http-equiv="refresh">`).
const REFRESH_SECS: u32 = 30;

/// The key a request presents: a Bearer token, or the password of Basic authentication.
fn presented_key(headers: &HeaderMap) -> Option<String> {
    if let Some(Authorization(b)) = headers.typed_get::<Authorization<Bearer>>() {
        return Some(b.token().to_owned());
    }
    headers.typed_get::<Authorization<Basic>>().map(|Authorization(b)| b.password().to_owned())
}

fn unauthorized() -> Response {
    Response::builder()
        .status(StatusCode::UNAUTHORIZED)
        .header(header::WWW_AUTHENTICATE, "Basic realm=\"rmm-sync status\", charset=\"UTF-8\"")
        .header(header::CACHE_CONTROL, "no-store")
        .content_type("text/html; charset=utf-8")
        .body(
            "<!doctype html><title>rmm-sync status</title><p>Sign in with an rmm-sync admin API key as the \
             password (any user name), or send <code>Authorization: Bearer &lt;key&gt;</code>.</p>",
        )
}

pub(crate) fn unavailable() -> Response {
    Response::builder()
        .status(StatusCode::SERVICE_UNAVAILABLE)
        .header(header::CACHE_CONTROL, "no-store")
        .content_type("text/html; charset=utf-8")
        .body("<!doctype html><title>rmm-sync status</title><p>The database is unavailable; try again later.</p>")
}

#[handler]
pub async fn page(req: &Request, state: Data<&Arc<AppState>>) -> Response {
    let principal = match principal(req, &state).await {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    match gather(&state, &principal, Utc::now()).await {
        Ok(d) => html(render(&d)),
        Err(e) => {
            tracing::error!(error = %e, "status page: database error");
            unavailable()
        }
    }
}

/// The caller of a status page, or the answer to give instead (401, 503).
pub(crate) async fn principal(req: &Request, state: &AppState) -> Result<Principal, Response> {
    let Some(key) = presented_key(req.headers()) else {
        return Err(unauthorized());
    };
    match authenticate(&state.rt.db, state.bootstrap_key.as_ref(), &key).await {
        Ok(Some(p)) => Ok(p),
        Ok(None) => Err(unauthorized()),
        Err(e) => {
            tracing::warn!(error = %e, "status page: API key lookup failed");
            Err(unavailable())
        }
    }
}

/// A status page answer: the HTML with the page's headers (no caching, a strict CSP).
pub(crate) fn html(body: String) -> Response {
    Response::builder()
        .header(header::CACHE_CONTROL, "no-store")
        .header(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        )
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::REFERRER_POLICY, "no-referrer")
        .content_type("text/html; charset=utf-8")
        .body(body)
}

/// Everything the page shows.
#[derive(Debug, Clone)]
pub struct StatusData {
    pub now: DateTime<Utc>,
    /// `None`: every tenant (a global key).
    pub tenant: Option<Uuid>,
    pub queue_backend: &'static str,
    pub store: &'static str,
    pub kinds: Vec<KindOverview>,
    pub running: Vec<JobView>,
    pub failures: Vec<JobView>,
    pub integrations: Vec<IntegrationRow>,
    /// True when there were more integrations than the page shows.
    pub integrations_truncated: bool,
    /// The sixty minutes ending with the current one, oldest first.
    pub minutes: Vec<DateTime<Utc>>,
    pub jobs_per_minute: Vec<MinuteJobs>,
    pub calls_per_minute: Vec<MinuteCalls>,
    /// The latest recorded asset changes, newest first.
    pub asset_changes: Vec<HistoryEntry>,
}

/// An integration and its most recent sync run.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IntegrationRow {
    pub tenant: String,
    pub provider: String,
    pub is_active: i64,
    pub sync_status: Option<String>,
    pub last_sync_at: Option<String>,
    pub sync_error: Option<String>,
    pub run_kind: Option<String>,
    pub run_status: Option<String>,
    pub run_started_at: Option<String>,
    pub run_finished_at: Option<String>,
    pub processed: Option<i64>,
    pub created: Option<i64>,
    pub updated: Option<i64>,
    pub deleted: Option<i64>,
    pub skipped: Option<i64>,
    pub failed: Option<i64>,
    pub placeholder_serials: Option<i64>,
    /// `settings.tokenLifecycle.status` (`reconnect_required`: its jobs are skipped).
    pub token_status: Option<String>,
    /// The integration's schedules whose last slot was skipped: `(kind, reason)`.
    #[sqlx(skip)]
    pub skipped_schedules: Vec<(String, String)>,
}

async fn integrations(db: &Db, tenant: Option<Uuid>) -> Result<Vec<IntegrationRow>, DbError> {
    let d = db.dialect();
    let ts = |c: &str| rmm_shared::db::sql::ts_out(d, c);
    let runs = db.ours("sync_runs");
    let filter = match tenant {
        Some(_) => format!("WHERE i.tenant = {}", d.param(1, ColType::Uuid)),
        None => String::new(),
    };
    let sql = format!(
        "SELECT {} AS tenant, i.provider AS provider, CAST(CASE WHEN i.is_active THEN 1 ELSE 0 END AS BIGINT) AS is_active, \
         i.sync_status AS sync_status, {} AS last_sync_at, i.sync_error AS sync_error, r.kind AS run_kind, \
         r.status AS run_status, {} AS run_started_at, {} AS run_finished_at, \
         CAST(r.items_processed AS BIGINT) AS processed, CAST(r.items_created AS BIGINT) AS created, \
         CAST(r.items_updated AS BIGINT) AS updated, CAST(r.items_deleted AS BIGINT) AS deleted, \
         CAST(r.items_skipped AS BIGINT) AS skipped, CAST(r.items_failed AS BIGINT) AS failed, \
         CAST(r.items_placeholder_serials AS BIGINT) AS placeholder_serials, \
         {} AS token_status \
         FROM rmm_integrations i LEFT JOIN {runs} r ON r.tenant = i.tenant AND r.integration_id = i.integration_id \
         AND r.run_id = (SELECT r2.run_id FROM {runs} r2 WHERE r2.tenant = i.tenant \
         AND r2.integration_id = i.integration_id ORDER BY r2.started_at DESC LIMIT 1) \
         {filter} ORDER BY CASE WHEN i.sync_error IS NULL THEN 1 ELSE 0 END, 1, 2 LIMIT {}",
        d.text("i.tenant"),
        ts("i.last_sync_at"),
        ts("r.started_at"),
        ts("r.finished_at"),
        lifecycle::token_status_sql(d, "i.settings"),
        INTEGRATIONS_LIMIT + 1
    );
    let t = tenant.map(|t| t.to_string()).unwrap_or_default();
    let binds: Vec<&str> = if tenant.is_some() { vec![&t] } else { vec![] };
    let mut rows: Vec<IntegrationRow> = db.fetch(&sql, &binds).await?;
    // The schedules whose last slot was skipped, on their integration's row.
    let filter = match tenant {
        Some(_) => format!("AND tenant = {}", d.param(1, ColType::Uuid)),
        None => String::new(),
    };
    let sql = format!(
        "SELECT {}, provider, kind, last_skip_reason FROM {} WHERE last_skip_reason IS NOT NULL \
         AND tenant IS NOT NULL {filter} ORDER BY kind",
        d.text("tenant"),
        db.ours("schedules")
    );
    let skips: Vec<(String, Option<String>, String, String)> = db.fetch(&sql, &binds).await?;
    for (t, provider, kind, reason) in skips {
        if let Some(row) = rows.iter_mut().find(|r| r.tenant == t && Some(&r.provider) == provider.as_ref()) {
            row.skipped_schedules.push((kind, reason));
        }
    }
    Ok(rows)
}

/// Reads what the page shows for `principal`, as of `now`.
pub async fn gather(state: &AppState, principal: &Principal, now: DateTime<Utc>) -> Result<StatusData, DbError> {
    let rt = &state.rt;
    let store = rt.store();
    let tenant = principal.tenant;
    let this_minute = now.duration_trunc(Duration::minutes(1)).unwrap_or(now);
    let minutes: Vec<DateTime<Utc>> = (0..60).rev().map(|i| this_minute - Duration::minutes(i)).collect();
    let since = minutes[0];
    let running_filter =
        JobFilter { tenant: tenant.map(Some), status: Some(JobStatus::Running), kind: None, limit: RUNNING_LIMIT };
    let changes = HistoryQuery { tenant, limit: CHANGES_LIMIT, ..Default::default() };
    let (kinds, running, failures, mut integrations, jobs, calls, asset_changes) = tokio::try_join!(
        store.overview(tenant, now - Duration::hours(24)),
        store.list(&running_filter),
        store.recent_failures(tenant, now - Duration::hours(24), FAILURES_LIMIT),
        integrations(&rt.db, tenant),
        store.finished_per_minute(tenant, since),
        upstream_calls::per_minute(&rt.db, since, tenant),
        history::read(&rt.db, changes),
    )?;

    // Every kind this caller can run, even with nothing to show, then any other kind with rows.
    let mut by_kind: BTreeMap<String, KindOverview> = rt
        .registry
        .entries()
        .filter(|e| tenant.is_none() || e.scope != Scope::Global)
        .map(|e| (e.name.to_owned(), KindOverview { kind: e.name.to_owned(), ..Default::default() }))
        .collect();
    for k in kinds {
        by_kind.insert(k.kind.clone(), k);
    }

    let key = |m: &DateTime<Utc>| m.format("%Y-%m-%dT%H:%M").to_string();
    let jobs: BTreeMap<String, MinuteJobs> = jobs.into_iter().collect();
    let calls: BTreeMap<String, MinuteCalls> = calls.into_iter().collect();
    let integrations_truncated = integrations.len() > INTEGRATIONS_LIMIT;
    integrations.truncate(INTEGRATIONS_LIMIT);
    Ok(StatusData {
        now,
        tenant,
        queue_backend: rt.queue.kind().name(),
        store: rt.db.dialect().name(),
        kinds: by_kind.into_values().collect(),
        running,
        failures,
        integrations,
        integrations_truncated,
        jobs_per_minute: minutes.iter().map(|m| jobs.get(&key(m)).copied().unwrap_or_default()).collect(),
        calls_per_minute: minutes.iter().map(|m| calls.get(&key(m)).copied().unwrap_or_default()).collect(),
        minutes,
        asset_changes,
    })
}

/// HTML-escapes a value for text and for quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn opt(s: Option<&str>) -> String {
    s.map(esc).unwrap_or_else(|| "–".into())
}

/// `2026-01-02 03:04:05` and how long ago, or a dash.
fn when(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    match t {
        Some(t) => format!("{} <span class=\"ago\">({})</span>", t.format("%Y-%m-%d %H:%M:%S"), ago(now - t)),
        None => "–".into(),
    }
}

pub(crate) fn when_text(t: Option<&str>, now: DateTime<Utc>) -> String {
    when(t.and_then(rmm_shared::db::sql::parse_ts), now)
}

fn ago(d: Duration) -> String {
    let s = d.num_seconds();
    if s < 0 { format!("in {}", span(-s)) } else { format!("{} ago", span(s)) }
}

fn span(s: i64) -> String {
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d", s / 86_400),
    }
}

fn tenant_cell(t: Option<Uuid>) -> String {
    t.map(|t| t.to_string()).unwrap_or_else(|| "service".into())
}

pub(crate) const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:16px 24px;color:#1b1f24;background:#fff}\
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}\
.meta{color:#57606a;margin:0 0 8px}table{border-collapse:collapse;width:100%;font-size:13px}\
th,td{border:1px solid #d0d7de;padding:3px 6px;text-align:left;vertical-align:top}\
th{background:#f6f8fa}td.n{text-align:right;font-variant-numeric:tabular-nums}\
.err{white-space:pre-wrap;word-break:break-word;min-width:16em;max-height:8em;overflow:auto;color:#a40e26;font-family:ui-monospace,monospace;font-size:12px}\
.ago{color:#57606a}.none{color:#57606a;font-style:italic}.bad{color:#a40e26;font-weight:600}\
.charts{display:flex;flex-wrap:wrap;gap:24px}figure{margin:0}figcaption{margin:4px 0}\
.key{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}";

/// The whole page.
pub fn render(d: &StatusData) -> String {
    let mut h = String::with_capacity(16 * 1024);
    let scope = match d.tenant {
        Some(t) => format!("tenant {t}"),
        None => "all tenants".into(),
    };
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECS}\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>rmm-sync status</title><style>{STYLE}</style></head><body>\
         <h1>rmm-sync status</h1><p class=\"meta\" id=\"summary\">Scope: <b>{}</b> · queue: {} · store: {} · \
         generated {} UTC · reloads every {REFRESH_SECS} s</p>",
        esc(&scope),
        esc(d.queue_backend),
        esc(d.store),
        d.now.format("%Y-%m-%d %H:%M:%S"),
    );
    queues(&mut h, d);
    charts(&mut h, d);
    running(&mut h, d);
    failures(&mut h, d);
    integrations_table(&mut h, d);
    crate::status_assets::latest_changes(&mut h, &d.asset_changes, d.now);
    h.push_str("</body></html>\n");
    h
}

fn queues(h: &mut String, d: &StatusData) {
    h.push_str(
        "<section id=\"queues\"><h2>Jobs by kind</h2><table><thead><tr><th>kind</th><th>queued</th>\
         <th>running</th><th>delayed</th><th>failed (24 h)</th></tr></thead><tbody>",
    );
    for k in &d.kinds {
        let failed_class = if k.failed > 0 { " bad" } else { "" };
        let _ = write!(
            h,
            "<tr data-kind=\"{0}\"><td>{0}</td><td class=\"n\">{1}</td><td class=\"n\">{2}</td><td class=\"n\">{3}</td>\
             <td class=\"n{failed_class}\">{4}</td></tr>",
            esc(&k.kind),
            k.queued,
            k.running,
            k.delayed,
            k.failed
        );
    }
    h.push_str(
        "</tbody></table><p class=\"meta\">Queued: due and waiting for a worker. Delayed: due later, retrying \
         after a backoff, or waiting out an upstream Retry-After.</p></section>",
    );
}

fn running(h: &mut String, d: &StatusData) {
    h.push_str("<section id=\"running\"><h2>Running jobs</h2>");
    if d.running.is_empty() {
        h.push_str("<p class=\"none\">No job is running.</p></section>");
        return;
    }
    h.push_str(
        "<table><thead><tr><th>job</th><th>kind</th><th>tenant</th><th>provider</th><th>progress</th>\
         <th>attempt</th><th>worker</th><th>started</th></tr></thead><tbody>",
    );
    for j in &d.running {
        let progress = match j.progress_total {
            Some(t) => format!("{} / {t}", j.progress_processed),
            None => j.progress_processed.to_string(),
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{} / {}</td>\
             <td>{}</td><td>{}</td></tr>",
            esc(&j.job_id),
            esc(&j.kind),
            tenant_cell(j.tenant),
            opt(j.provider.as_deref()),
            progress,
            j.attempts,
            j.max_attempts,
            opt(j.worker.as_deref()),
            when(j.started_at, d.now),
        );
    }
    h.push_str("</tbody></table></section>");
}

fn failures(h: &mut String, d: &StatusData) {
    h.push_str("<section id=\"failures\"><h2>Failed (24 h) and retrying jobs</h2>");
    if d.failures.is_empty() {
        h.push_str("<p class=\"none\">No job failed in the last 24 hours.</p></section>");
        return;
    }
    h.push_str(
        "<table><thead><tr><th>job</th><th>kind</th><th>tenant</th><th>status</th><th>attempts</th>\
         <th>finished</th><th>error</th></tr></thead><tbody>",
    );
    for j in &d.failures {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td class=\"n\">{} / {}</td><td>{}</td>\
             <td><div class=\"err\">{}</div></td></tr>",
            esc(&j.job_id),
            esc(&j.kind),
            tenant_cell(j.tenant),
            if j.status == JobStatus::Failed { "bad" } else { "" },
            j.status.as_str(),
            j.attempts,
            j.max_attempts,
            when(j.finished_at, d.now),
            opt(j.last_error.as_deref()),
        );
    }
    h.push_str("</tbody></table></section>");
}

fn integrations_table(h: &mut String, d: &StatusData) {
    h.push_str("<section id=\"integrations\"><h2>Integrations and their last sync run</h2>");
    if d.integrations.is_empty() {
        h.push_str("<p class=\"none\">No integration.</p></section>");
        return;
    }
    h.push_str(
        "<table><thead><tr><th>tenant</th><th>provider</th><th>status</th><th>last sync</th><th>last run</th>\
         <th>started</th><th>took</th><th>processed</th><th>created</th><th>updated</th><th>deleted</th>\
         <th>skipped</th><th>failed</th><th title=\"devices whose serial number is a placeholder such as To Be \
         Filled By O.E.M.: stored, never used to identify a device\">placeholder serials</th><th>sync error</th>\
         <th>skipped schedules</th></tr></thead><tbody>",
    );
    let n = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_else(|| "–".into());
    for i in &d.integrations {
        let mut status = match (i.is_active != 0, i.sync_status.as_deref()) {
            (false, s) => format!("inactive ({})", opt(s)),
            (true, s) => opt(s),
        };
        if i.token_status.as_deref() == Some(lifecycle::RECONNECT_REQUIRED) {
            status.push_str(" · <span class=\"bad\" data-token=\"reconnect_required\">reconnect required</span>");
        }
        let skips: Vec<String> = i.skipped_schedules.iter().map(|(k, r)| format!("{}: {}", esc(k), esc(r))).collect();
        let run = match (&i.run_kind, &i.run_status) {
            (Some(k), Some(s)) => format!("{} · {}", esc(k), esc(s)),
            _ => "–".into(),
        };
        let parse = |s: &Option<String>| s.as_deref().and_then(rmm_shared::db::sql::parse_ts);
        let took = match (parse(&i.run_started_at), parse(&i.run_finished_at)) {
            (Some(a), Some(b)) => span((b - a).num_seconds().max(0)),
            (Some(_), None) => "running".into(),
            _ => "–".into(),
        };
        let failed_class = if i.failed.unwrap_or(0) > 0 { " bad" } else { "" };
        let _ = write!(
            h,
            "<tr data-tenant=\"{0}\"><td>{0}</td><td>{1}</td><td>{2}</td><td>{3}</td><td>{4}</td><td>{5}</td>\
             <td>{6}</td><td class=\"n\">{7}</td><td class=\"n\">{8}</td><td class=\"n\">{9}</td><td class=\"n\">{10}</td>\
             <td class=\"n\">{11}</td><td class=\"n{failed_class}\">{12}</td><td class=\"n\">{13}</td>\
             <td><div class=\"err\">{14}</div></td><td class=\"skips\">{15}</td></tr>",
            esc(&i.tenant),
            esc(&i.provider),
            status,
            when_text(i.last_sync_at.as_deref(), d.now),
            run,
            when_text(i.run_started_at.as_deref(), d.now),
            took,
            n(i.processed),
            n(i.created),
            n(i.updated),
            n(i.deleted),
            n(i.skipped),
            n(i.failed),
            n(i.placeholder_serials),
            i.sync_error.as_deref().map(esc).unwrap_or_default(),
            skips.join("<br>"),
        );
    }
    h.push_str("</tbody></table>");
    if d.integrations_truncated {
        let _ = write!(h, "<p class=\"meta\">Only the first {INTEGRATIONS_LIMIT} integrations are shown.</p>");
    }
    h.push_str("</section>");
}

fn charts(h: &mut String, d: &StatusData) {
    let jobs: Vec<Vec<i64>> = d.jobs_per_minute.iter().map(|m| vec![m.done, m.failed, m.other]).collect();
    let (done, failed, other) =
        d.jobs_per_minute.iter().fold((0, 0, 0), |(a, b, c), m| (a + m.done, b + m.failed, c + m.other));
    let calls: Vec<Vec<i64>> = d.calls_per_minute.iter().map(|m| vec![(m.calls - m.errors).max(0), m.errors]).collect();
    let (ncalls, nerrors) = d.calls_per_minute.iter().fold((0, 0), |(a, b), m| (a + m.calls, b + m.errors));
    h.push_str("<section id=\"rates\"><h2>Last hour, per minute</h2><div class=\"charts\">");
    chart(
        h,
        "jobs-chart",
        &format!(
            "Jobs finished: {} in the last hour ({done} done, {failed} failed, {other} cancelled or skipped)",
            done + failed + other
        ),
        done + failed + other,
        &[("done", "#2da44e"), ("failed", "#cf222e"), ("cancelled or skipped", "#8c959f")],
        &jobs,
        &d.minutes,
    );
    chart(
        h,
        "calls-chart",
        &format!("Upstream calls: {ncalls} in the last hour ({nerrors} failed or refused)"),
        ncalls,
        &[("answered", "#0969da"), ("failed or refused", "#cf222e")],
        &calls,
        &d.minutes,
    );
    h.push_str(
        "</div><p class=\"meta\">Upstream calls count every attempt to an RMM API by every process \
         (written every few seconds); failed or refused: no answer, or HTTP 400 and above.</p></section>",
    );
}

/// The smallest 1, 2 or 5 × 10ⁿ that is at least `v` (and at least 1).
fn nice_ceiling(v: i64) -> i64 {
    let mut step = 1i64;
    loop {
        for m in [1, 2, 5] {
            if step * m >= v {
                return step * m;
            }
        }
        step = step.saturating_mul(10);
    }
}

/// A stacked bar chart, one bar per minute, as inline SVG.
fn chart(
    h: &mut String,
    id: &str,
    caption: &str,
    total: i64,
    series: &[(&str, &str)],
    values: &[Vec<i64>],
    minutes: &[DateTime<Utc>],
) {
    const W: f64 = 600.0;
    const H: f64 = 180.0;
    const LEFT: f64 = 44.0;
    const RIGHT: f64 = 8.0;
    const TOP: f64 = 10.0;
    const BOTTOM: f64 = 22.0;
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let max = values.iter().map(|v| v.iter().sum::<i64>()).max().unwrap_or(0);
    let top = nice_ceiling(max.max(1));
    let slot = plot_w / values.len().max(1) as f64;
    let bar = (slot * 0.8).max(1.0);
    let y = |v: f64| TOP + plot_h - v / top as f64 * plot_h;
    let _ = write!(
        h,
        "<figure id=\"{id}\" data-total=\"{total}\" data-max=\"{max}\"><figcaption>{}</figcaption>\
         <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\" \
         aria-label=\"{}\" font-family=\"system-ui,sans-serif\" font-size=\"10\">",
        esc(caption),
        esc(caption)
    );
    for frac in [0.0, 0.5, 1.0] {
        let v = top as f64 * frac;
        let _ = write!(
            h,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#d0d7de\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#57606a\">{}</text>",
            W - RIGHT,
            LEFT - 4.0,
            y(v) + 3.0,
            if frac == 0.5 && top % 2 != 0 { format!("{v:.1}") } else { format!("{}", v as i64) },
            y = y(v),
        );
    }
    for (i, (stack, minute)) in values.iter().zip(minutes).enumerate() {
        let x = LEFT + i as f64 * slot + (slot - bar) / 2.0;
        let parts: Vec<String> = series.iter().zip(stack).map(|((name, _), v)| format!("{v} {name}")).collect();
        let _ = write!(h, "<g><title>{} UTC: {}</title>", minute.format("%H:%M"), esc(&parts.join(", ")));
        let mut base = 0i64;
        for ((_, color), v) in series.iter().zip(stack) {
            if *v > 0 {
                let (y0, y1) = (y(base as f64), y((base + v) as f64));
                let _ = write!(
                    h,
                    "<rect x=\"{x:.1}\" y=\"{y1:.1}\" width=\"{bar:.1}\" height=\"{:.1}\" fill=\"{color}\"/>",
                    (y0 - y1).max(0.5)
                );
            }
            base += v;
        }
        h.push_str("</g>");
    }
    for i in [0usize, 15, 30, 45, 59] {
        if let Some(m) = minutes.get(i) {
            let x = LEFT + i as f64 * slot + slot / 2.0;
            let anchor = match i {
                0 => "start",
                59 => "end",
                _ => "middle",
            };
            let _ = write!(
                h,
                "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\" fill=\"#57606a\">{}</text>",
                H - 6.0,
                m.format("%H:%M")
            );
        }
    }
    h.push_str("</svg><div>");
    for (name, color) in series {
        let _ = write!(h, "<span class=\"key\" style=\"background:{color}\"></span>{}", esc(name));
    }
    h.push_str(" <span class=\"ago\">(UTC)</span></div></figure>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }

    #[test]
    fn chart_scale_is_round() {
        assert_eq!([0, 1, 3, 7, 10, 11, 180, 501].map(nice_ceiling), [1, 1, 5, 10, 10, 20, 200, 1000]);
    }

    #[test]
    fn keys_from_bearer_and_basic() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Bearer rmk_abc".parse().unwrap());
        assert_eq!(presented_key(&h).as_deref(), Some("rmk_abc"));
        // "admin:rmk_def"
        h.insert(header::AUTHORIZATION, "Basic YWRtaW46cm1rX2RlZg==".parse().unwrap());
        assert_eq!(presented_key(&h).as_deref(), Some("rmk_def"));
        h.insert(header::AUTHORIZATION, "Digest x".parse().unwrap());
        assert_eq!(presented_key(&h), None);
    }
}
