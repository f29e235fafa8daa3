//! `rmm_sync.schedules` and the scheduler tick.
//!
//! Each due schedule is claimed with `UPDATE … SET next_run_at = <next> WHERE schedule_id = $1 AND
//! next_run_at = <old>` in the same transaction that enqueues its job, so with any number of
//! scheduler replicas a slot is enqueued once. The next slot is the first one after *now*: after
//! downtime a missed run happens once, not once per missed slot.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use rmm_shared::db::{Db, DbError, Dialect};
use serde::Serialize;
use ulid::Ulid;
use uuid::Uuid;

use crate::dispatch::integration_gate;
use crate::envelope::{JobRequest, Trigger};
use crate::error::RuntimeError;
use crate::queue::Queue;
use rmm_shared::db::sql::{Exec, P, fmt_ts, now_text, parse_ts, ts_out};

/// When a schedule runs.
#[derive(Debug, Clone)]
pub enum Cadence {
    /// Every `n` minutes.
    Every(u32),
    /// A cron expression (UTC), 5 fields (`min hour day month weekday`) or 6 with seconds first.
    Cron(Box<cron::Schedule>, String),
}

impl Cadence {
    /// Exactly one of the two must be given.
    pub fn parse(interval_minutes: Option<u32>, cron_expr: Option<&str>) -> Result<Cadence, String> {
        match (interval_minutes, cron_expr.map(str::trim).filter(|c| !c.is_empty())) {
            (Some(_), Some(_)) => Err("give either interval_minutes or cron, not both".into()),
            (None, None) => Err("give interval_minutes (e.g. 60) or cron (e.g. \"0 */6 * * *\")".into()),
            (Some(0), None) => Err("interval_minutes must be at least 1".into()),
            (Some(m), None) if m > 525_600 => Err("interval_minutes must be at most 525600 (a year)".into()),
            (Some(m), None) => Ok(Cadence::Every(m)),
            (None, Some(c)) => {
                let fields = c.split_whitespace().count();
                let full = match fields {
                    5 => format!("0 {c}"),
                    6 | 7 => c.to_owned(),
                    _ => return Err(format!("cron {c:?} must have 5 fields (min hour day month weekday), in UTC")),
                };
                let s = cron::Schedule::from_str(&full).map_err(|e| format!("cron {c:?} is not valid: {e}"))?;
                if s.upcoming(Utc).next().is_none() {
                    return Err(format!("cron {c:?} never fires"));
                }
                Ok(Cadence::Cron(Box::new(s), c.to_owned()))
            }
        }
    }

    /// The first slot after `now`, for a schedule whose previous slot was `prev`.
    pub fn next_after(&self, prev: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Cadence::Every(m) => {
                let step = chrono::Duration::minutes(i64::from(*m));
                if prev > now {
                    return prev;
                }
                let behind = (now - prev).num_milliseconds() / step.num_milliseconds() + 1;
                prev + step * behind as i32
            }
            Cadence::Cron(s, _) => s.after(&now).next().unwrap_or(now + chrono::Duration::days(365)),
        }
    }

    /// The first slot of a new schedule.
    pub fn first(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Cadence::Every(m) => now + chrono::Duration::minutes(i64::from(*m)),
            Cadence::Cron(s, _) => s.after(&now).next().unwrap_or(now + chrono::Duration::days(365)),
        }
    }

    fn columns(&self) -> (String, String) {
        match self {
            Cadence::Every(m) => (m.to_string(), String::new()),
            Cadence::Cron(_, c) => (String::new(), c.clone()),
        }
    }
}

/// What a schedule is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleScope {
    pub tenant: Option<Uuid>,
    pub provider: Option<String>,
    pub integration_id: Option<Uuid>,
    pub kind: String,
}

impl ScheduleScope {
    pub fn global(kind: &str) -> Self {
        ScheduleScope { tenant: None, provider: None, integration_id: None, kind: kind.to_owned() }
    }

    pub fn key(&self) -> String {
        match (&self.tenant, &self.provider) {
            (Some(t), Some(p)) => format!("{t}:{p}:{}", self.kind),
            _ => format!("global:{}", self.kind),
        }
    }
}

/// One schedule as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ScheduleView {
    pub schedule_id: String,
    pub tenant: Option<Uuid>,
    pub provider: Option<String>,
    pub integration_id: Option<Uuid>,
    pub kind: String,
    pub interval_minutes: Option<i64>,
    pub cron: Option<String>,
    pub enabled: bool,
    pub next_run_at: Option<DateTime<Utc>>,
    pub last_run_at: Option<DateTime<Utc>>,
    pub last_job_id: Option<String>,
    pub last_skip_reason: Option<String>,
    /// The arguments its jobs are enqueued with (`{}`: the kind's defaults).
    pub args: serde_json::Value,
}

#[derive(sqlx::FromRow)]
struct Row {
    schedule_id: String,
    tenant: Option<String>,
    provider: Option<String>,
    integration_id: Option<String>,
    kind: String,
    interval_minutes: Option<i64>,
    cron: Option<String>,
    enabled: i64,
    next_run_at: String,
    last_run_at: Option<String>,
    last_job_id: Option<String>,
    last_skip_reason: Option<String>,
    args: Option<String>,
}

impl Row {
    fn view(&self) -> ScheduleView {
        ScheduleView {
            schedule_id: self.schedule_id.clone(),
            tenant: self.tenant.as_deref().and_then(|t| t.parse().ok()),
            provider: self.provider.clone(),
            integration_id: self.integration_id.as_deref().and_then(|t| t.parse().ok()),
            kind: self.kind.clone(),
            interval_minutes: self.interval_minutes,
            cron: self.cron.clone(),
            enabled: self.enabled != 0,
            next_run_at: parse_ts(&self.next_run_at),
            last_run_at: self.last_run_at.as_deref().and_then(parse_ts),
            last_job_id: self.last_job_id.clone(),
            last_skip_reason: self.last_skip_reason.clone(),
            args: self
                .args
                .as_deref()
                .and_then(|a| serde_json::from_str(a).ok())
                .unwrap_or_else(|| serde_json::json!({})),
        }
    }

    fn cadence(&self) -> Result<Cadence, String> {
        Cadence::parse(self.interval_minutes.map(|m| m as u32), self.cron.as_deref())
    }
}

fn cols(d: Dialect) -> String {
    format!(
        "schedule_id, CAST(tenant AS TEXT) AS tenant, provider, CAST(integration_id AS TEXT) AS integration_id, kind, \
         CAST(interval_minutes AS BIGINT) AS interval_minutes, cron, CAST(CASE WHEN enabled THEN 1 ELSE 0 END AS BIGINT) AS enabled, \
         {} AS next_run_at, {} AS last_run_at, last_job_id, last_skip_reason, CAST(args AS TEXT) AS args",
        ts_out(d, "next_run_at"),
        ts_out(d, "last_run_at")
    )
}

/// Data access for `schedules`.
#[derive(Clone, Debug)]
pub struct ScheduleStore {
    db: Db,
}

impl ScheduleStore {
    pub fn new(db: Db) -> Self {
        ScheduleStore { db }
    }

    fn p(&self) -> P {
        P(self.db.dialect())
    }

    /// Creates or replaces the schedule of `scope`. The next run is recomputed when the cadence
    /// changes. The arguments of an existing schedule are kept (a new one has none).
    pub async fn put(&self, scope: &ScheduleScope, cadence: &Cadence, enabled: bool) -> Result<ScheduleView, DbError> {
        self.put_with_args(scope, cadence, enabled, None).await
    }

    /// [`Self::put`], with the arguments its jobs are enqueued with when `args` is given.
    pub async fn put_with_args(
        &self,
        scope: &ScheduleScope,
        cadence: &Cadence,
        enabled: bool,
        args: Option<&serde_json::Value>,
    ) -> Result<ScheduleView, DbError> {
        let p = self.p();
        let now = Utc::now();
        let (interval, cron) = cadence.columns();
        let existing = self.get(scope).await?;
        let same = existing.as_ref().is_some_and(|e| {
            e.interval_minutes.map(|m| m.to_string()).unwrap_or_default() == interval
                && e.cron.clone().unwrap_or_default() == cron
        });
        let next = match (&existing, same) {
            (Some(e), true) => e.next_run_at.unwrap_or_else(|| cadence.first(now)),
            _ => cadence.first(now),
        };
        let sql = format!(
            "INSERT INTO {t} (schedule_id, scope_key, tenant, provider, integration_id, kind, interval_minutes, cron, enabled, \
             next_run_at, created_at, updated_at, args) VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}) \
             ON CONFLICT (scope_key) DO UPDATE SET interval_minutes = excluded.interval_minutes, cron = excluded.cron, \
             enabled = excluded.enabled, next_run_at = excluded.next_run_at, integration_id = excluded.integration_id, \
             updated_at = excluded.updated_at{set_args}",
            p.text(1),
            p.text(2),
            p.nullable(3, "uuid"),
            p.nullable(4, "text"),
            p.nullable(5, "uuid"),
            p.text(6),
            p.nullable(7, "int"),
            p.nullable(8, "text"),
            p.bool(enabled),
            p.ts(9),
            p.ts(10),
            p.ts(10),
            p.json(11),
            t = p.t("schedules"),
            set_args = if args.is_some() { ", args = excluded.args" } else { "" },
        );
        let args_text = args.cloned().unwrap_or_else(|| serde_json::json!({})).to_string();
        let id = Ulid::generate().to_string();
        let tenant = scope.tenant.map(|t| t.to_string()).unwrap_or_default();
        let integ = scope.integration_id.map(|t| t.to_string()).unwrap_or_default();
        self.db
            .execute(
                &sql,
                &[
                    &id,
                    &scope.key(),
                    &tenant,
                    scope.provider.as_deref().unwrap_or(""),
                    &integ,
                    &scope.kind,
                    &interval,
                    &cron,
                    &fmt_ts(next),
                    &fmt_ts(now),
                    &args_text,
                ],
            )
            .await?;
        Ok(self.get(scope).await?.expect("schedule just written"))
    }

    pub async fn get(&self, scope: &ScheduleScope) -> Result<Option<ScheduleView>, DbError> {
        let p = self.p();
        let sql = format!("SELECT {} FROM {} WHERE scope_key = {}", cols(p.0), p.t("schedules"), p.text(1));
        let rows: Vec<Row> = self.db.fetch(&sql, &[&scope.key()]).await?;
        Ok(rows.first().map(Row::view))
    }

    pub async fn delete(&self, scope: &ScheduleScope) -> Result<bool, DbError> {
        let p = self.p();
        let sql = format!("DELETE FROM {} WHERE scope_key = {}", p.t("schedules"), p.text(1));
        Ok(self.db.execute(&sql, &[&scope.key()]).await? > 0)
    }

    /// Schedules of a tenant (`None`: the service-wide ones).
    pub async fn list(&self, tenant: Option<Uuid>) -> Result<Vec<ScheduleView>, DbError> {
        let p = self.p();
        let rows: Vec<Row> = match tenant {
            Some(t) => {
                let sql = format!(
                    "SELECT {} FROM {} WHERE tenant = {} ORDER BY scope_key",
                    cols(p.0),
                    p.t("schedules"),
                    p.uuid(1)
                );
                self.db.fetch(&sql, &[&t.to_string()]).await?
            }
            None => {
                let sql =
                    format!("SELECT {} FROM {} WHERE tenant IS NULL ORDER BY scope_key", cols(p.0), p.t("schedules"));
                self.db.fetch(&sql, &[]).await?
            }
        };
        Ok(rows.iter().map(Row::view).collect())
    }

    /// Makes sure a service-wide schedule exists with this interval (internal jobs such as
    /// `maintenance`). Keeps its next run when the interval did not change.
    pub async fn ensure_global(&self, kind: &str, interval_minutes: u32) -> Result<ScheduleView, DbError> {
        self.put(&ScheduleScope::global(kind), &Cadence::Every(interval_minutes), true).await
    }
}

/// What one scheduler tick did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TickReport {
    /// Job ids enqueued.
    pub enqueued: Vec<String>,
    /// Slots claimed but not run (suspended tenant, inactive integration), with the reason.
    pub skipped: Vec<(String, String)>,
    /// Due slots another replica claimed first.
    pub lost: usize,
}

/// Enqueues the jobs of every due schedule once. Safe to run in any number of processes at once.
pub async fn tick(queue: &Queue) -> Result<TickReport, RuntimeError> {
    let db = queue.db().clone();
    let p = P(db.dialect());
    let now = Utc::now();
    let sql = format!(
        "SELECT {} FROM {} WHERE enabled AND next_run_at <= {} ORDER BY next_run_at LIMIT 100",
        cols(p.0),
        p.t("schedules"),
        p.ts(1)
    );
    let due: Vec<Row> = db.fetch(&sql, &[&now_text()]).await?;
    let mut report = TickReport::default();
    for row in due {
        let Some(prev) = parse_ts(&row.next_run_at) else { continue };
        let next = match row.cadence() {
            Ok(c) => c.next_after(prev, now),
            Err(e) => {
                tracing::warn!(schedule_id = %row.schedule_id, error = %e, "schedule has an invalid cadence; disabled");
                let sql = format!(
                    "UPDATE {} SET enabled = {} WHERE schedule_id = {}",
                    p.t("schedules"),
                    p.bool(false),
                    p.text(1)
                );
                db.execute(&sql, &[&row.schedule_id]).await?;
                continue;
            }
        };
        let mut tx = db.begin_write().await?;
        let old_match = match p.0 {
            Dialect::Postgres => format!("date_trunc('milliseconds', next_run_at) = {}", p.ts(2)),
            Dialect::Sqlite => format!("next_run_at = {}", p.ts(2)),
        };
        let claim = format!(
            "UPDATE {} SET next_run_at = {}, last_run_at = {}, updated_at = {} WHERE schedule_id = {} AND enabled AND {old_match}",
            p.t("schedules"),
            p.ts(3),
            p.ts(4),
            p.ts(4),
            p.text(1)
        );
        let claimed = tx.execute(&claim, &[&row.schedule_id, &row.next_run_at, &fmt_ts(next), &fmt_ts(now)]).await?;
        if claimed == 0 {
            tx.rollback().await?;
            report.lost += 1;
            continue;
        }
        let view = row.view();
        let skip = match (view.tenant, view.integration_id) {
            (Some(t), Some(i)) => integration_gate(&mut tx, t, i).await?,
            (Some(_), None) => Some("integration not found"),
            _ => None,
        };
        let (job_id, reason) = match skip {
            Some(reason) => (None, Some(reason)),
            None => {
                let mut req = match (view.tenant, &view.provider, view.integration_id) {
                    (Some(t), Some(pr), Some(i)) => {
                        JobRequest::for_integration(&view.kind, t, pr, i, Trigger::Schedule)
                    }
                    _ => JobRequest::global(&view.kind, Trigger::Schedule),
                };
                if view.args.as_object().is_some_and(|a| !a.is_empty()) {
                    req = req.args(view.args.clone());
                }
                req.schedule_id = Some(view.schedule_id.clone());
                match queue.enqueue_in_tx(&mut tx, req).await {
                    Ok(id) => (Some(id), None),
                    Err(RuntimeError::UnknownKind { .. }) => (None, Some("job kind not registered in this version")),
                    Err(e) => {
                        tx.rollback().await?;
                        return Err(e);
                    }
                }
            }
        };
        let note = format!(
            "UPDATE {} SET last_job_id = COALESCE({}, last_job_id), last_skip_reason = {} WHERE schedule_id = {}",
            p.t("schedules"),
            p.nullable(2, "text"),
            p.nullable(3, "text"),
            p.text(1)
        );
        tx.exec(&note, &[&row.schedule_id, job_id.as_deref().unwrap_or(""), reason.unwrap_or("")]).await?;
        tx.commit().await?;
        match (job_id, reason) {
            (Some(id), _) => {
                tracing::info!(schedule_id = %row.schedule_id, kind = %row.kind, job_id = %id, next = %fmt_ts(next), "scheduled job enqueued");
                report.enqueued.push(id);
            }
            (None, Some(r)) => {
                tracing::info!(schedule_id = %row.schedule_id, kind = %row.kind, reason = r, "scheduled run skipped");
                report.skipped.push((row.schedule_id.clone(), r.to_owned()));
            }
            (None, None) => {}
        }
    }
    if let Err(e) = queue.relay_outbox().await {
        tracing::warn!(error = %e, "outbox relay failed; will retry");
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn missed_interval_slots_collapse_into_one_run() {
        let c = Cadence::Every(60);
        // Due at 10:00, noticed at 10:00:01: next is 11:00.
        assert_eq!(c.next_after(t("2026-01-01T10:00:00Z"), t("2026-01-01T10:00:01Z")), t("2026-01-01T11:00:00Z"));
        // Down from 10:00 to 15:30: one run now, the next at 16:00 (not five catch-up runs).
        assert_eq!(c.next_after(t("2026-01-01T10:00:00Z"), t("2026-01-01T15:30:00Z")), t("2026-01-01T16:00:00Z"));
        // Exactly on a slot boundary: the next one.
        assert_eq!(c.next_after(t("2026-01-01T10:00:00Z"), t("2026-01-01T11:00:00Z")), t("2026-01-01T12:00:00Z"));
    }

    #[test]
    fn cron_takes_five_fields_in_utc() {
        let c = Cadence::parse(None, Some("0 */6 * * *")).unwrap();
        assert_eq!(c.next_after(t("2026-01-01T00:00:00Z"), t("2026-01-01T07:10:00Z")), t("2026-01-01T12:00:00Z"));
        assert!(Cadence::parse(None, Some("nope")).unwrap_err().contains("5 fields"));
        assert!(Cadence::parse(Some(5), Some("* * * * *")).unwrap_err().contains("not both"));
        assert!(Cadence::parse(None, None).is_err());
        assert!(Cadence::parse(Some(0), None).is_err());
    }
}
