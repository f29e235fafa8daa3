//! Run-level state: the row of the run in `rmm_sync.sync_runs` and the integration's status in
//! `rmm_integrations`, written as AlgaPSA writes it.
//!
//! At start the integration is `syncing`. At the end it is `completed` with `sync_error` cleared,
//! or `error` with the first errors joined by `; ` — a run in which devices failed is not a clean
//! success. `last_sync_at` is set either way, `last_full_sync_at` on full runs, and
//! `last_incremental_sync_at` (the delta cursor) only when an incremental run succeeded, so a
//! failed window is never skipped.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use crate::db::sql::{ColType, fmt_ts};
use crate::db::{Db, DbError};
use crate::ingest::IngestCounts;

/// How many errors go into `sync_error`.
pub const SYNC_ERROR_LIMIT: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunKind {
    Full,
    Incremental,
    /// A run that is neither (organisations, one agent, software, alerts): only `last_sync_at`.
    Other,
}

/// One run, from start to finish.
#[derive(Debug, Clone)]
pub struct Run {
    pub run_id: Uuid,
    pub tenant: Uuid,
    pub integration_id: Uuid,
    pub provider: String,
    pub kind: String,
    pub run_kind: RunKind,
    pub trigger: String,
    pub started_at: DateTime<Utc>,
}

/// The outcome of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunOutcome {
    pub counts: IngestCounts,
    pub errors: Vec<String>,
    /// The cursor the next incremental run starts from, when this one succeeded.
    pub cursor: Option<DateTime<Utc>>,
}

impl RunOutcome {
    pub fn succeeded(&self) -> bool {
        self.errors.is_empty() && self.counts.failed == 0
    }

    /// `sync_error`: the first errors joined by `; `.
    pub fn sync_error(&self) -> Option<String> {
        (!self.errors.is_empty())
            .then(|| self.errors.iter().take(SYNC_ERROR_LIMIT).cloned().collect::<Vec<_>>().join("; "))
    }
}

impl Run {
    /// Records the start: a `running` row in `sync_runs`, the integration `syncing`.
    pub async fn start(
        db: &Db,
        tenant: Uuid,
        integration_id: Uuid,
        provider: &str,
        kind: &str,
        run_kind: RunKind,
        trigger: &str,
    ) -> Result<Run, DbError> {
        Run::start_for_job(db, tenant, integration_id, provider, kind, run_kind, trigger, None).await
    }

    /// [`Run::start`] for a job: a later attempt of the same job (after a crash or a retry)
    /// continues the job's unfinished run instead of leaving it open and starting another.
    #[allow(clippy::too_many_arguments)]
    pub async fn start_for_job(
        db: &Db,
        tenant: Uuid,
        integration_id: Uuid,
        provider: &str,
        kind: &str,
        run_kind: RunKind,
        trigger: &str,
        job_id: Option<&str>,
    ) -> Result<Run, DbError> {
        let d = db.dialect();
        let (u, t, ts) = (ColType::Uuid, ColType::Text, ColType::Timestamp);
        let mut run = Run {
            run_id: Uuid::new_v4(),
            tenant,
            integration_id,
            provider: provider.to_owned(),
            kind: kind.to_owned(),
            run_kind,
            trigger: trigger.to_owned(),
            started_at: Utc::now(),
        };
        let open: Vec<(String, String)> = match job_id {
            Some(job) => {
                db.fetch(
                    &format!(
                        "SELECT {}, {} FROM {} WHERE job_id = {} AND finished_at IS NULL",
                        d.text("run_id"),
                        match d {
                            crate::db::Dialect::Postgres => {
                                "to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
                            }
                            crate::db::Dialect::Sqlite => "started_at",
                        },
                        db.ours("sync_runs"),
                        d.param(1, t)
                    ),
                    &[job],
                )
                .await?
            }
            None => Vec::new(),
        };
        if let Some((run_id, started)) = open.into_iter().next() {
            run.run_id = run_id.parse().unwrap_or(run.run_id);
            run.started_at =
                DateTime::parse_from_rfc3339(&started).map(|t| t.with_timezone(&Utc)).unwrap_or(run.started_at);
        } else {
            db.execute(
                &format!(
                    "INSERT INTO {} (run_id, tenant, provider, integration_id, kind, \"trigger\", status, started_at, job_id) \
                     VALUES ({}, {}, {}, {}, {}, {}, 'running', {}, NULLIF({}, ''))",
                    db.ours("sync_runs"),
                    d.param(1, u),
                    d.param(2, u),
                    d.param(3, t),
                    d.param(4, u),
                    d.param(5, t),
                    d.param(6, t),
                    d.param(7, ts),
                    d.param(8, t)
                ),
                &[
                    &run.run_id.to_string(),
                    &tenant.to_string(),
                    provider,
                    &integration_id.to_string(),
                    kind,
                    trigger,
                    &fmt_ts(run.started_at),
                    job_id.unwrap_or(""),
                ],
            )
            .await?;
        }
        db.execute(
            &format!(
                "UPDATE rmm_integrations SET sync_status = 'syncing' WHERE tenant = {} AND integration_id = {}",
                d.param(1, u),
                d.param(2, u)
            ),
            &[&tenant.to_string(), &integration_id.to_string()],
        )
        .await?;
        Ok(run)
    }

    /// Records the end of the run in `sync_runs` and `rmm_integrations`.
    pub async fn finish(&self, db: &Db, outcome: &RunOutcome) -> Result<(), DbError> {
        let ok = outcome.succeeded();
        let now = fmt_ts(Utc::now());
        let c = &outcome.counts;

        let mut q = Binds::new(db);
        let status = q.push(if ok { "completed" } else { "failed" }, ColType::Text);
        let finished = q.push(&now, ColType::Timestamp);
        let counts: Vec<String> =
            [c.processed, c.created, c.updated, c.deleted, c.skipped, c.failed, c.placeholder_serials]
                .iter()
                .map(|n| q.push(&n.to_string(), ColType::Int))
                .collect();
        let errors = q.push(&json!(outcome.errors.iter().take(100).collect::<Vec<_>>()).to_string(), ColType::Json);
        let cursor = match outcome.cursor {
            Some(cur) => q.push(&json!({ "since": fmt_ts(cur) }).to_string(), ColType::Json),
            None => "NULL".to_owned(),
        };
        let run_id = q.push(&self.run_id.to_string(), ColType::Uuid);
        let tenant = q.push(&self.tenant.to_string(), ColType::Uuid);
        let sql = format!(
            "UPDATE {} SET status = {status}, finished_at = {finished}, items_processed = {}, items_created = {}, \
             items_updated = {}, items_deleted = {}, items_skipped = {}, items_failed = {}, \
             items_placeholder_serials = {}, errors = {errors}, cursor = {cursor} WHERE run_id = {run_id} AND tenant = {tenant}",
            db.ours("sync_runs"),
            counts[0],
            counts[1],
            counts[2],
            counts[3],
            counts[4],
            counts[5],
            counts[6],
        );
        q.execute(&sql).await?;

        let mut q = Binds::new(db);
        let mut sets = vec![
            format!("sync_status = {}", q.push(if ok { "completed" } else { "error" }, ColType::Text)),
            format!("last_sync_at = {}", q.push(&fmt_ts(self.started_at), ColType::Timestamp)),
        ];
        match (self.run_kind, ok) {
            (RunKind::Full, _) => {
                sets.push(format!("last_full_sync_at = {}", q.push(&fmt_ts(self.started_at), ColType::Timestamp)))
            }
            (RunKind::Incremental, true) => sets.push(format!(
                "last_incremental_sync_at = {}",
                q.push(&fmt_ts(outcome.cursor.unwrap_or(self.started_at)), ColType::Timestamp)
            )),
            _ => {}
        }
        sets.push(match outcome.sync_error() {
            Some(e) => format!("sync_error = {}", q.push(&e, ColType::Text)),
            None => "sync_error = NULL".to_owned(),
        });
        let tenant = q.push(&self.tenant.to_string(), ColType::Uuid);
        let integration = q.push(&self.integration_id.to_string(), ColType::Uuid);
        let sql = format!(
            "UPDATE rmm_integrations SET {} WHERE tenant = {tenant} AND integration_id = {integration}",
            sets.join(", ")
        );
        q.execute(&sql).await?;
        Ok(())
    }
}

/// Text parameters collected in order, each placeholder numbered as it is pushed.
struct Binds<'a> {
    db: &'a Db,
    values: Vec<String>,
}

impl<'a> Binds<'a> {
    fn new(db: &'a Db) -> Self {
        Binds { db, values: Vec::new() }
    }

    /// Adds a value and returns its placeholder.
    fn push(&mut self, value: &str, ty: ColType) -> String {
        self.values.push(value.to_owned());
        self.db.dialect().param(self.values.len(), ty)
    }

    async fn execute(&self, sql: &str) -> Result<u64, DbError> {
        let refs: Vec<&str> = self.values.iter().map(String::as_str).collect();
        self.db.execute(sql, &refs).await
    }
}
