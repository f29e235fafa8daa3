//! `rmm_sync.job_runs`: the job status the API reports, the same on every queue backend.

use chrono::{DateTime, Utc};
use rmm_shared::db::{Db, DbError};
use serde::Serialize;
use uuid::Uuid;

use crate::envelope::{JobEnvelope, Trigger};
use crate::kind::JobOutcome;
use rmm_shared::db::sql::{Exec, P, fmt_ts, now_text, parse_ts, ts_out};

/// The states of a job as the API shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Queued, not started (or handed back after a worker died or shut down).
    Pending,
    Running,
    /// An attempt failed; the next one starts after the backoff.
    Retrying,
    /// Put off by an upstream `Retry-After`; runs again at `run_at`.
    Waiting,
    Done,
    /// Failed after its last attempt (or with an error retrying cannot fix). Can be re-queued.
    Failed,
    Cancelled,
    /// Not run: the tenant is suspended or the integration inactive or gone.
    Skipped,
}

impl JobStatus {
    pub const ALL: [JobStatus; 8] = [
        JobStatus::Pending,
        JobStatus::Running,
        JobStatus::Retrying,
        JobStatus::Waiting,
        JobStatus::Done,
        JobStatus::Failed,
        JobStatus::Cancelled,
        JobStatus::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Retrying => "retrying",
            JobStatus::Waiting => "waiting",
            JobStatus::Done => "done",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
            JobStatus::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<JobStatus> {
        JobStatus::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Finished for good (nothing will run it again unless re-queued).
    pub fn is_finished(self) -> bool {
        matches!(self, JobStatus::Done | JobStatus::Failed | JobStatus::Cancelled | JobStatus::Skipped)
    }
}

/// One job as the API and the CLI show it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct JobView {
    pub job_id: String,
    pub kind: String,
    pub status: JobStatus,
    pub tenant: Option<Uuid>,
    pub provider: Option<String>,
    pub integration_id: Option<Uuid>,
    pub trigger: String,
    pub correlation_id: String,
    pub attempts: i64,
    pub max_attempts: i64,
    pub deferrals: i64,
    pub progress_processed: i64,
    pub progress_total: Option<i64>,
    pub result: Option<serde_json::Value>,
    pub last_error: Option<String>,
    pub worker: Option<String>,
    pub schedule_id: Option<String>,
    pub retry_of: Option<String>,
    pub retried_as: Option<String>,
    pub args: serde_json::Value,
    pub task_id: String,
    pub run_at: Option<DateTime<Utc>>,
    pub created_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct JobRow {
    job_id: String,
    kind: String,
    status: String,
    tenant: Option<String>,
    provider: Option<String>,
    integration_id: Option<String>,
    trigger: String,
    correlation_id: String,
    attempts: i64,
    max_attempts: i64,
    deferrals: i64,
    progress_processed: i64,
    progress_total: Option<i64>,
    result: Option<String>,
    last_error: Option<String>,
    worker: Option<String>,
    schedule_id: Option<String>,
    retry_of: Option<String>,
    retried_as: Option<String>,
    args: String,
    task_id: String,
    run_at: Option<String>,
    created_at: Option<String>,
    started_at: Option<String>,
    finished_at: Option<String>,
}

impl From<JobRow> for JobView {
    fn from(r: JobRow) -> JobView {
        JobView {
            job_id: r.job_id,
            kind: r.kind,
            status: JobStatus::parse(&r.status).unwrap_or(JobStatus::Pending),
            tenant: r.tenant.and_then(|t| t.parse().ok()),
            provider: r.provider,
            integration_id: r.integration_id.and_then(|t| t.parse().ok()),
            trigger: r.trigger,
            correlation_id: r.correlation_id,
            attempts: r.attempts,
            max_attempts: r.max_attempts,
            deferrals: r.deferrals,
            progress_processed: r.progress_processed,
            progress_total: r.progress_total,
            result: r.result.and_then(|s| serde_json::from_str(&s).ok()),
            last_error: r.last_error,
            worker: r.worker,
            schedule_id: r.schedule_id,
            retry_of: r.retry_of,
            retried_as: r.retried_as,
            args: serde_json::from_str(&r.args).unwrap_or(serde_json::Value::Null),
            task_id: r.task_id,
            run_at: r.run_at.as_deref().and_then(parse_ts),
            created_at: r.created_at.as_deref().and_then(parse_ts),
            started_at: r.started_at.as_deref().and_then(parse_ts),
            finished_at: r.finished_at.as_deref().and_then(parse_ts),
        }
    }
}

/// Filters of `GET /api/v1/jobs`.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// `Some(None)`: only global jobs; `Some(Some(t))`: only tenant `t`; `None`: all.
    pub tenant: Option<Option<Uuid>>,
    pub status: Option<JobStatus>,
    pub kind: Option<String>,
    pub limit: u32,
}

/// Queue depth of one kind (pending, retrying or waiting jobs) for `/metrics`.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueDepth {
    pub kind: String,
    pub depth: i64,
    pub oldest_age_secs: f64,
}

/// Jobs of one kind by state, for the status page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KindOverview {
    pub kind: String,
    /// Pending and due.
    pub queued: i64,
    pub running: i64,
    /// Pending with a later `run_at`, retrying after a backoff, or waiting out a `Retry-After`.
    pub delayed: i64,
    /// Failed since the time given to [`JobStore::overview`].
    pub failed: i64,
}

/// Jobs finished in one minute, for the status page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MinuteJobs {
    pub done: i64,
    pub failed: i64,
    /// Cancelled or skipped.
    pub other: i64,
}

/// What [`JobStore::cancel`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    Cancelled,
    AlreadyFinished(JobStatus),
    NotFound,
}

/// Data access for `job_runs`.
#[derive(Clone, Debug)]
pub struct JobStore {
    db: Db,
}

fn select_cols(p: &P) -> String {
    let d = p.0;
    format!(
        "job_id, kind, status, CAST(tenant AS TEXT) AS tenant, provider, CAST(integration_id AS TEXT) AS integration_id, \
         trigger, correlation_id, CAST(attempts AS BIGINT) AS attempts, CAST(max_attempts AS BIGINT) AS max_attempts, \
         CAST(deferrals AS BIGINT) AS deferrals, CAST(progress_processed AS BIGINT) AS progress_processed, \
         CAST(progress_total AS BIGINT) AS progress_total, {} AS result, last_error, worker, schedule_id, retry_of, \
         retried_as, {} AS args, task_id, {} AS run_at, {} AS created_at, {} AS started_at, {} AS finished_at",
        p.json_out("result"),
        p.json_out("args"),
        ts_out(d, "run_at"),
        ts_out(d, "created_at"),
        ts_out(d, "started_at"),
        ts_out(d, "finished_at"),
    )
}

/// Fields of a new `job_runs` row.
pub(crate) struct NewRun<'a> {
    pub env: &'a JobEnvelope,
    pub task_id: &'a str,
    pub max_attempts: u32,
    pub run_at: DateTime<Utc>,
    pub schedule_id: Option<&'a str>,
    pub retry_of: Option<&'a str>,
    pub dispatched: bool,
}

pub(crate) async fn insert_run(ex: &mut impl Exec, run: NewRun<'_>) -> Result<(), DbError> {
    let p = P(ex.dialect());
    // The dialect helpers bind text only, so optional values go through NULLIF('', …).
    let sql = format!(
        "INSERT INTO {} (job_id, task_id, kind, tenant, provider, integration_id, trigger, correlation_id, args, \
         status, max_attempts, schedule_id, retry_of, dispatched, run_at, created_at, updated_at, traceparent) \
         VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, 'pending', {}, {}, {}, {}, {}, {}, {}, {})",
        p.t("job_runs"),
        p.text(1),
        p.text(2),
        p.text(3),
        p.nullable(4, "uuid"),
        p.nullable(5, "text"),
        p.nullable(6, "uuid"),
        p.text(7),
        p.text(8),
        p.json(9),
        p.int(10),
        p.nullable(11, "text"),
        p.nullable(12, "text"),
        p.bool(run.dispatched),
        p.ts(13),
        p.ts(14),
        p.ts(14),
        p.nullable(15, "text"),
    );
    let env = run.env;
    let tenant = env.tenant.map(|t| t.to_string());
    let integration = env.integration_id.map(|t| t.to_string());
    let args = env.args.to_string();
    let max = run.max_attempts.to_string();
    let run_at = fmt_ts(run.run_at);
    let now = now_text();
    ex.exec(
        &sql,
        &[
            &env.job_id,
            run.task_id,
            &env.kind,
            tenant.as_deref().unwrap_or(""),
            env.provider.as_deref().unwrap_or(""),
            integration.as_deref().unwrap_or(""),
            env.trigger.as_str(),
            &env.correlation_id,
            &args,
            &max,
            run.schedule_id.unwrap_or(""),
            run.retry_of.unwrap_or(""),
            &run_at,
            &now,
            env.traceparent.as_deref().unwrap_or(""),
        ],
    )
    .await?;
    Ok(())
}

impl JobStore {
    pub fn new(db: Db) -> JobStore {
        JobStore { db }
    }

    fn p(&self) -> P {
        P(self.db.dialect())
    }

    pub async fn get(&self, job_id: &str) -> Result<Option<JobView>, DbError> {
        let p = self.p();
        let sql = format!("SELECT {} FROM {} WHERE job_id = {}", select_cols(&p), p.t("job_runs"), p.text(1));
        let rows: Vec<JobRow> = self.db.fetch(&sql, &[job_id]).await?;
        Ok(rows.into_iter().next().map(JobView::from))
    }

    pub async fn list(&self, f: &JobFilter) -> Result<Vec<JobView>, DbError> {
        let p = self.p();
        let mut wheres = vec![];
        let mut binds: Vec<String> = vec![];
        match &f.tenant {
            None => {}
            Some(None) => wheres.push("tenant IS NULL".to_owned()),
            Some(Some(t)) => {
                binds.push(t.to_string());
                wheres.push(format!("tenant = {}", p.uuid(binds.len())));
            }
        }
        if let Some(s) = f.status {
            binds.push(s.as_str().to_owned());
            wheres.push(format!("status = {}", p.text(binds.len())));
        }
        if let Some(k) = &f.kind {
            binds.push(k.clone());
            wheres.push(format!("kind = {}", p.text(binds.len())));
        }
        let limit = if f.limit == 0 { 100 } else { f.limit.min(1000) };
        let sql = format!(
            "SELECT {} FROM {} {} ORDER BY created_at DESC, job_id DESC LIMIT {limit}",
            select_cols(&p),
            p.t("job_runs"),
            if wheres.is_empty() { String::new() } else { format!("WHERE {}", wheres.join(" AND ")) }
        );
        let b: Vec<&str> = binds.iter().map(String::as_str).collect();
        let rows: Vec<JobRow> = self.db.fetch(&sql, &b).await?;
        Ok(rows.into_iter().map(JobView::from).collect())
    }

    /// Marks an attempt as started. Returns the status before, or `None` when the row is gone.
    pub async fn mark_running(
        &self,
        job_id: &str,
        task_id: &str,
        attempt: u32,
        worker: &str,
    ) -> Result<Option<JobStatus>, DbError> {
        let p = self.p();
        let before = self.status(job_id).await?;
        match before {
            None => return Ok(None),
            Some(s) if s.is_finished() => return Ok(Some(s)),
            Some(_) => {}
        }
        let now = now_text();
        let sql = format!(
            "UPDATE {} SET status = 'running', task_id = {}, attempts = {}, worker = {}, \
             started_at = COALESCE(started_at, {}), updated_at = {} \
             WHERE job_id = {} AND status NOT IN ('done', 'failed', 'cancelled', 'skipped')",
            p.t("job_runs"),
            p.text(1),
            p.int(2),
            p.text(3),
            p.ts(4),
            p.ts(4),
            p.text(5)
        );
        self.db.execute(&sql, &[task_id, &attempt.to_string(), worker, &now, job_id]).await?;
        Ok(before)
    }

    pub async fn status(&self, job_id: &str) -> Result<Option<JobStatus>, DbError> {
        let p = self.p();
        let sql = format!("SELECT status FROM {} WHERE job_id = {}", p.t("job_runs"), p.text(1));
        let rows: Vec<(String,)> = self.db.fetch(&sql, &[job_id]).await?;
        Ok(rows.into_iter().next().and_then(|(s,)| JobStatus::parse(&s)))
    }

    /// Records progress; returns `true` when the job was cancelled meanwhile.
    pub async fn progress(&self, job_id: &str, processed: u64, total: Option<u64>) -> Result<bool, DbError> {
        let p = self.p();
        let sql = format!(
            "UPDATE {} SET progress_processed = {}, progress_total = {}, updated_at = {} WHERE job_id = {} AND status = 'running'",
            p.t("job_runs"),
            p.bigint(1),
            p.nullable(2, "bigint"),
            p.ts(3),
            p.text(4)
        );
        let total = total.map(|t| t.to_string()).unwrap_or_default();
        self.db.execute(&sql, &[&processed.to_string(), &total, &now_text(), job_id]).await?;
        Ok(self.status(job_id).await? == Some(JobStatus::Cancelled))
    }

    pub async fn mark_done(&self, job_id: &str, outcome: &JobOutcome) -> Result<(), DbError> {
        let p = self.p();
        let now = now_text();
        let sql = format!(
            "UPDATE {} SET status = 'done', result = {}, last_error = NULL, finished_at = {}, updated_at = {} \
             WHERE job_id = {} AND status <> 'cancelled'",
            p.t("job_runs"),
            p.json(1),
            p.ts(2),
            p.ts(2),
            p.text(3)
        );
        let result = serde_json::to_string(outcome).unwrap_or_else(|_| "{}".into());
        self.db.execute(&sql, &[&result, &now, job_id]).await?;
        Ok(())
    }

    /// An attempt failed: `retrying` when another attempt follows, `failed` when it was the last.
    pub async fn mark_failed(&self, job_id: &str, error: &str, last: bool) -> Result<(), DbError> {
        let p = self.p();
        let now = now_text();
        let (status, finished) = if last { ("failed", p.ts(2)) } else { ("retrying", "NULL".to_owned()) };
        let sql = format!(
            "UPDATE {} SET status = '{status}', last_error = {}, finished_at = {finished}, updated_at = {} \
             WHERE job_id = {} AND status NOT IN ('cancelled', 'done')",
            p.t("job_runs"),
            p.text(1),
            p.ts(2),
            p.text(3)
        );
        self.db.execute(&sql, &[&truncate(error), &now, job_id]).await?;
        Ok(())
    }

    pub async fn mark_skipped(&self, job_id: &str, reason: &str) -> Result<(), DbError> {
        let p = self.p();
        let sql = format!(
            "UPDATE {} SET status = 'skipped', last_error = {}, finished_at = {}, updated_at = {} WHERE job_id = {}",
            p.t("job_runs"),
            p.text(1),
            p.ts(2),
            p.ts(2),
            p.text(3)
        );
        self.db.execute(&sql, &[reason, &now_text(), job_id]).await?;
        Ok(())
    }

    /// Cancels a job that has not finished. A running job stops at its next progress report.
    pub async fn cancel(&self, job_id: &str) -> Result<CancelOutcome, DbError> {
        let p = self.p();
        let now = now_text();
        let sql = format!(
            "UPDATE {} SET status = 'cancelled', finished_at = {}, updated_at = {}, last_error = COALESCE(last_error, 'cancelled through the API') \
             WHERE job_id = {} AND status NOT IN ('done', 'failed', 'cancelled', 'skipped')",
            p.t("job_runs"),
            p.ts(1),
            p.ts(1),
            p.text(2)
        );
        if self.db.execute(&sql, &[&now, job_id]).await? > 0 {
            return Ok(CancelOutcome::Cancelled);
        }
        Ok(match self.status(job_id).await? {
            Some(s) => CancelOutcome::AlreadyFinished(s),
            None => CancelOutcome::NotFound,
        })
    }

    /// Deletes finished rows older than `before`. Returns how many.
    pub async fn prune(&self, before: DateTime<Utc>) -> Result<u64, DbError> {
        let p = self.p();
        let sql = format!(
            "DELETE FROM {} WHERE status IN ('done', 'failed', 'cancelled', 'skipped') AND finished_at < {}",
            p.t("job_runs"),
            p.ts(1)
        );
        self.db.execute(&sql, &[&fmt_ts(before)]).await
    }

    /// Jobs by kind and status, for `/metrics`.
    pub async fn counts(&self) -> Result<Vec<(String, String, i64)>, DbError> {
        let p = self.p();
        let sql =
            format!("SELECT kind, status, CAST(COUNT(*) AS BIGINT) FROM {} GROUP BY kind, status", p.t("job_runs"));
        self.db.fetch(&sql, &[]).await
    }

    /// Queued, running, delayed and failed (since `failed_since`) jobs per kind, of one tenant or
    /// of all (`tenant = None`), sorted by kind.
    pub async fn overview(
        &self,
        tenant: Option<Uuid>,
        failed_since: DateTime<Utc>,
    ) -> Result<Vec<KindOverview>, DbError> {
        let p = self.p();
        let tenant_filter = tenant.map(|_| format!(" AND tenant = {}", p.uuid(3))).unwrap_or_default();
        let sql = format!(
            "SELECT kind, status, CAST(CASE WHEN run_at > {} THEN 1 ELSE 0 END AS BIGINT), CAST(COUNT(*) AS BIGINT) \
             FROM {} WHERE (status IN ('pending', 'running', 'retrying', 'waiting') \
             OR (status = 'failed' AND finished_at >= {})){tenant_filter} GROUP BY 1, 2, 3",
            p.ts(1),
            p.t("job_runs"),
            p.ts(2),
        );
        let (now, since, t) = (now_text(), fmt_ts(failed_since), tenant.map(|t| t.to_string()).unwrap_or_default());
        let binds: Vec<&str> = if tenant.is_some() { vec![&now, &since, &t] } else { vec![&now, &since] };
        let rows: Vec<(String, String, i64, i64)> = self.db.fetch(&sql, &binds).await?;
        let mut by_kind: std::collections::BTreeMap<String, KindOverview> = Default::default();
        for (kind, status, later, n) in rows {
            let o = by_kind.entry(kind.clone()).or_insert_with(|| KindOverview { kind, ..Default::default() });
            match (status.as_str(), later != 0) {
                ("pending", false) => o.queued += n,
                ("running", _) => o.running += n,
                ("failed", _) => o.failed += n,
                _ => o.delayed += n,
            }
        }
        Ok(by_kind.into_values().collect())
    }

    /// Failed jobs finished since `since` and jobs waiting for their next attempt, newest first.
    pub async fn recent_failures(
        &self,
        tenant: Option<Uuid>,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<JobView>, DbError> {
        let p = self.p();
        let tenant_filter = tenant.map(|_| format!(" AND tenant = {}", p.uuid(2))).unwrap_or_default();
        let sql = format!(
            "SELECT {} FROM {} WHERE (status = 'retrying' OR (status = 'failed' AND finished_at >= {})){tenant_filter} \
             ORDER BY updated_at DESC, job_id DESC LIMIT {}",
            select_cols(&p),
            p.t("job_runs"),
            p.ts(1),
            limit.clamp(1, 1000)
        );
        let (since, t) = (fmt_ts(since), tenant.map(|t| t.to_string()).unwrap_or_default());
        let binds: Vec<&str> = if tenant.is_some() { vec![&since, &t] } else { vec![&since] };
        let rows: Vec<JobRow> = self.db.fetch(&sql, &binds).await?;
        Ok(rows.into_iter().map(JobView::from).collect())
    }

    /// Jobs finished per minute since `since`, by the minute's start as `YYYY-MM-DDTHH:MM`.
    pub async fn finished_per_minute(
        &self,
        tenant: Option<Uuid>,
        since: DateTime<Utc>,
    ) -> Result<Vec<(String, MinuteJobs)>, DbError> {
        let p = self.p();
        let tenant_filter = tenant.map(|_| format!(" AND tenant = {}", p.uuid(2))).unwrap_or_default();
        let sql = format!(
            "SELECT substr({}, 1, 16), status, CAST(COUNT(*) AS BIGINT) FROM {} \
             WHERE finished_at IS NOT NULL AND finished_at >= {}{tenant_filter} GROUP BY 1, 2",
            ts_out(p.0, "finished_at"),
            p.t("job_runs"),
            p.ts(1)
        );
        let (since, t) = (fmt_ts(since), tenant.map(|t| t.to_string()).unwrap_or_default());
        let binds: Vec<&str> = if tenant.is_some() { vec![&since, &t] } else { vec![&since] };
        let rows: Vec<(String, String, i64)> = self.db.fetch(&sql, &binds).await?;
        let mut by_minute: std::collections::BTreeMap<String, MinuteJobs> = Default::default();
        for (minute, status, n) in rows {
            let m = by_minute.entry(minute).or_default();
            match status.as_str() {
                "done" => m.done += n,
                "failed" => m.failed += n,
                _ => m.other += n,
            }
        }
        Ok(by_minute.into_iter().collect())
    }

    /// Jobs waiting to run, per kind, with the age of the oldest due one.
    pub async fn depth(&self) -> Result<Vec<QueueDepth>, DbError> {
        let p = self.p();
        let sql = format!(
            "SELECT kind, CAST(COUNT(*) AS BIGINT), MIN({}) FROM {} WHERE status IN ('pending', 'retrying', 'waiting') GROUP BY kind",
            ts_out(p.0, "run_at"),
            p.t("job_runs")
        );
        let rows: Vec<(String, i64, Option<String>)> = self.db.fetch(&sql, &[]).await?;
        let now = Utc::now();
        Ok(rows
            .into_iter()
            .map(|(kind, depth, oldest)| {
                let age = oldest
                    .as_deref()
                    .and_then(parse_ts)
                    .map(|t| (now - t).num_milliseconds().max(0) as f64 / 1000.0)
                    .unwrap_or(0.0);
                QueueDepth { kind, depth, oldest_age_secs: age }
            })
            .collect())
    }
}

pub(crate) fn truncate(s: &str) -> String {
    const MAX: usize = 4000;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Parses a `trigger` column value.
pub fn trigger_of(v: &JobView) -> Option<Trigger> {
    Trigger::parse(&v.trigger)
}
