//! Enqueueing jobs on the configured backend, and the backend chores (set-up, cancel, retention).
//!
//! One queue per job kind, named after the kind. The payload of every task is a [`JobEnvelope`]
//! (JSON). Task ids are ULIDs chosen here; the first task of a job has the job's id.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::{TaskBuilder, TaskId};
use apalis_redis::ConnectionManager;
use chrono::Utc;
use rmm_shared::config::{QueueBackend, Settings};
use rmm_shared::db::Db;
use rmm_shared::db::sql::Tx;
use ulid::Ulid;

use crate::apalis_tables;
use crate::envelope::{JobEnvelope, JobRequest};
use crate::error::RuntimeError;
use crate::kind::{Policy, Scope};
use crate::registry::Registry;
use crate::store::{NewRun, insert_run};
use rmm_shared::db::sql::{P, fmt_ts, now_text};

/// Which backend holds the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueKind {
    Postgres,
    Sqlite,
    Redis,
}

impl QueueKind {
    pub fn name(self) -> &'static str {
        match self {
            QueueKind::Postgres => "postgres",
            QueueKind::Sqlite => "sqlite",
            QueueKind::Redis => "redis",
        }
    }
}

#[derive(Clone)]
pub(crate) enum Backend {
    Postgres(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
    Redis(ConnectionManager),
}

/// The handle to enqueue jobs. Cheap to clone.
#[derive(Clone)]
pub struct Queue {
    pub(crate) backend: Backend,
    pub(crate) db: Db,
    pub(crate) registry: Arc<Registry>,
    /// Prefix of the Redis queue names (`queue.redis_namespace`).
    pub(crate) redis_ns: String,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").field("kind", &self.kind()).finish_non_exhaustive()
    }
}

fn qerr(e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Queue(e.to_string())
}

impl Queue {
    /// Opens the queue configured in `settings` next to the store `db`.
    pub async fn connect(db: &Db, settings: &Settings, registry: Arc<Registry>) -> Result<Queue, RuntimeError> {
        let backend = match (settings.queue.backend, db) {
            (QueueBackend::Redis, _) => {
                let conn = apalis_redis::connect(settings.queue.redis_url.as_str()).await.map_err(|e| {
                    RuntimeError::Queue(format!(
                        "cannot reach Redis at {} (queue.redis_url): {e}",
                        rmm_shared::config::redact_url(&settings.queue.redis_url)
                    ))
                })?;
                Backend::Redis(conn)
            }
            (QueueBackend::Database, Db::Postgres(p)) => {
                // The workers' queue consumers get a pool of their own. At shutdown apalis drops
                // their streams mid-statement, which can hand a connection back to its pool
                // inside an open transaction; on a shared pool a job's final status update could
                // land in that transaction and be rolled back. Lazy: the ingress never opens it.
                let listeners = registry.entries().filter(|e| e.policy.listen).count() as u32;
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(listeners + 5)
                    .acquire_timeout(std::time::Duration::from_secs(settings.database.acquire_timeout_secs))
                    .connect_lazy_with((*p.connect_options()).clone());
                Backend::Postgres(pool)
            }
            (QueueBackend::Database, Db::Sqlite(p)) => Backend::Sqlite(p.clone()),
        };
        Ok(Queue { backend, db: db.clone(), registry, redis_ns: settings.queue.redis_namespace.clone() })
    }

    pub fn kind(&self) -> QueueKind {
        match self.backend {
            Backend::Postgres(_) => QueueKind::Postgres,
            Backend::Sqlite(_) => QueueKind::Sqlite,
            Backend::Redis(_) => QueueKind::Redis,
        }
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Creates or upgrades the backend's own tables (schema `apalis` on Postgres, `Jobs`/`Workers`
    /// on SQLite). Redis needs nothing.
    pub async fn setup(&self) -> Result<(), RuntimeError> {
        match &self.backend {
            Backend::Postgres(p) => apalis_postgres::PostgresStorage::setup(p).await.map_err(|e| {
                RuntimeError::Queue(format!(
                    "cannot create the queue tables in schema apalis (the role needs CREATE SCHEMA and the hstore extension): {e}"
                ))
            }),
            Backend::Sqlite(p) => apalis_sqlite::SqliteStorage::migrations()
                .run(p)
                .await
                .map_err(|e| RuntimeError::Queue(format!("cannot create the queue tables: {e}"))),
            Backend::Redis(_) => Ok(()),
        }
    }

    /// Checks a request against the registry and turns it into an envelope with a fresh job id.
    /// The envelope and policy a request becomes (for a caller that writes the task row itself
    /// on the PostgreSQL queue, see [`crate::webhooks`]).
    pub(crate) fn prepare(&self, req: &JobRequest) -> Result<(JobEnvelope, Policy), RuntimeError> {
        self.envelope(req)
    }

    fn envelope(&self, req: &JobRequest) -> Result<(JobEnvelope, Policy), RuntimeError> {
        let entry = self.registry.require(&req.kind)?;
        match entry.scope {
            Scope::Integration if req.tenant.is_none() || req.provider.is_none() || req.integration_id.is_none() => {
                return Err(RuntimeError::Invalid(format!(
                    "{} runs for one integration: give tenant, provider and integration",
                    req.kind
                )));
            }
            Scope::Global if req.tenant.is_some() => {
                return Err(RuntimeError::Invalid(format!("{} is a service-wide job and takes no tenant", req.kind)));
            }
            _ => {}
        }
        entry
            .check_args(&req.args)
            .map_err(|e| RuntimeError::Invalid(format!("invalid arguments for {}: {e}", req.kind)))?;
        let job_id = Ulid::generate().to_string();
        let env = JobEnvelope {
            correlation_id: req.correlation_id.clone().unwrap_or_else(|| job_id.clone()),
            job_id,
            kind: req.kind.clone(),
            tenant: req.tenant,
            provider: req.provider.clone(),
            integration_id: req.integration_id,
            trigger: req.trigger,
            args: req.args.clone(),
            deferrals: 0,
            attempts_before: 0,
            traceparent: rmm_shared::telemetry::current_traceparent(),
        };
        Ok((env, entry.policy))
    }

    /// Enqueues a job; returns its id.
    pub async fn enqueue(&self, req: JobRequest) -> Result<String, RuntimeError> {
        let mut tx = self.db.begin_write().await?;
        let id = self.enqueue_in_tx(&mut tx, req).await?;
        tx.commit().await?;
        if matches!(self.backend, Backend::Redis(_)) {
            // Best effort now; the outbox relay retries whatever is left.
            if let Err(e) = self.relay_outbox().await {
                tracing::warn!(error = %e, "could not hand jobs to Redis yet; the relay will retry");
            }
        }
        Ok(id)
    }

    /// Enqueues a job inside the caller's transaction on the store (e.g. "record the webhook
    /// delivery and enqueue its job" as one unit): nothing is queued if the caller rolls back.
    ///
    /// Postgres and SQLite: the queue row is written in `tx`. Redis: the job is written to the
    /// outbox in `tx` and handed to Redis after commit by [`Queue::relay_outbox`] (call it after
    /// commit; the worker's relay also runs every scheduler tick).
    pub async fn enqueue_in_tx(&self, tx: &mut Tx, req: JobRequest) -> Result<String, RuntimeError> {
        let (env, policy) = self.envelope(&req)?;
        let run_at = Utc::now() + chrono::Duration::seconds(req.delay_secs as i64);
        let redis = matches!(self.backend, Backend::Redis(_));
        insert_run(
            tx,
            NewRun {
                env: &env,
                task_id: &env.job_id,
                max_attempts: policy.max_attempts,
                run_at,
                schedule_id: req.schedule_id.as_deref(),
                retry_of: req.retry_of.as_deref(),
                dispatched: !redis,
            },
        )
        .await?;
        if !redis {
            let task = build_task(&env, &env.job_id, &policy, req.delay_secs)?;
            match (&self.backend, &mut *tx) {
                (Backend::Postgres(_), Tx::Postgres(t)) => {
                    apalis_postgres::queries::push_tasks(&mut **t, &env.kind, vec![task]).await.map_err(qerr)?
                }
                (Backend::Sqlite(_), Tx::Sqlite(t)) => {
                    apalis_sqlite::queries::push_tasks(&mut **t, &env.kind, &[task]).await.map_err(qerr)?
                }
                _ => return Err(RuntimeError::Queue("the transaction is not on the queue's database".into())),
            }
        }
        if let Some(old) = &req.retry_of {
            let p = P(self.db.dialect());
            let sql = format!("UPDATE {} SET retried_as = {} WHERE job_id = {}", p.t("job_runs"), p.text(1), p.text(2));
            tx.execute(&sql, &[&env.job_id, old]).await?;
        }
        tracing::info!(job_id = %env.job_id, kind = %env.kind, tenant = ?env.tenant, provider = ?env.provider,
            trigger = env.trigger.as_str(), correlation_id = %env.correlation_id, "job enqueued");
        Ok(env.job_id)
    }

    /// Hands jobs written to the outbox (Redis backend) to Redis. Returns how many.
    pub async fn relay_outbox(&self) -> Result<usize, RuntimeError> {
        let Backend::Redis(conn) = &self.backend else { return Ok(0) };
        let p = P(self.db.dialect());
        let sql = format!(
            "SELECT job_id, kind, CAST(tenant AS TEXT), provider, CAST(integration_id AS TEXT), trigger, correlation_id, \
             CAST(args AS TEXT), {}, traceparent FROM {} WHERE NOT dispatched ORDER BY created_at LIMIT 200",
            rmm_shared::db::sql::ts_out(p.0, "run_at"),
            p.t("job_runs")
        );
        #[allow(clippy::type_complexity)]
        let rows: Vec<(
            String,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            String,
            String,
            String,
            String,
            Option<String>,
        )> = self.db.fetch(&sql, &[]).await?;
        let mut n = 0;
        for (job_id, kind, tenant, provider, integration, trigger, correlation_id, args, run_at, traceparent) in rows {
            let Some(entry) = self.registry.get(&kind) else {
                tracing::warn!(%job_id, %kind, "outbox job of a kind this process does not know; left for another");
                continue;
            };
            let env = JobEnvelope {
                job_id: job_id.clone(),
                kind: kind.clone(),
                tenant: tenant.and_then(|t| t.parse().ok()),
                provider,
                integration_id: integration.and_then(|t| t.parse().ok()),
                trigger: crate::Trigger::parse(&trigger).unwrap_or(crate::Trigger::Admin),
                correlation_id,
                args: serde_json::from_str(&args).unwrap_or_default(),
                deferrals: 0,
                attempts_before: 0,
                traceparent,
            };
            let delay = rmm_shared::db::sql::parse_ts(&run_at)
                .map(|t| (t - Utc::now()).num_seconds().max(0) as u64)
                .unwrap_or(0);
            let task = build_task(&env, &job_id, &entry.policy, delay)?;
            let mut c = conn.clone();
            apalis_redis::queries::push_tasks(&mut c, &redis_config(&self.redis_ns, &kind), &[task])
                .await
                .map_err(qerr)?;
            let upd =
                format!("UPDATE {} SET dispatched = {} WHERE job_id = {}", p.t("job_runs"), p.bool(true), p.text(1));
            self.db.execute(&upd, &[&job_id]).await?;
            n += 1;
        }
        Ok(n)
    }

    /// Pushes a delayed continuation of a running job: a new task with the same job id, due in
    /// `delay`. Used for an upstream `Retry-After` (`Continuation::Deferred`) and for the backoff
    /// before the next attempt (`Continuation::Retry`), so that neither holds a worker slot nor
    /// is lost when the process dies. Returns the new task id.
    pub async fn push_continuation(
        &self,
        env: &JobEnvelope,
        delay: Duration,
        why: Continuation<'_>,
    ) -> Result<String, RuntimeError> {
        let entry = self.registry.require(&env.kind)?;
        let task_id = Ulid::generate().to_string();
        // The backends keep `run_at` in whole seconds; one more second makes the wait at least
        // `delay`, never less.
        let secs = delay.as_secs().max(1) + 1;
        let task = build_task(env, &task_id, &entry.policy, secs)?;
        match &self.backend {
            Backend::Postgres(p) => {
                let mut c = p.acquire().await?;
                apalis_postgres::queries::push_tasks(&mut *c, &env.kind, vec![task]).await.map_err(qerr)?
            }
            Backend::Sqlite(p) => {
                let mut c = p.acquire().await?;
                apalis_sqlite::queries::push_tasks(&mut *c, &env.kind, &[task]).await.map_err(qerr)?
            }
            Backend::Redis(conn) => {
                let mut c = conn.clone();
                apalis_redis::queries::push_tasks(&mut c, &redis_config(&self.redis_ns, &env.kind), &[task])
                    .await
                    .map_err(qerr)?;
            }
        }
        let p = P(self.db.dialect());
        let run_at = fmt_ts(Utc::now() + chrono::Duration::seconds(secs as i64));
        let (status, error) = match why {
            Continuation::Deferred => ("waiting", None),
            Continuation::Retry { error } => ("retrying", Some(crate::store::truncate(error))),
        };
        let sql = format!(
            "UPDATE {} SET status = '{status}', task_id = {}, run_at = {}, deferrals = {}, attempts = {}, \
             last_error = COALESCE({}, last_error), updated_at = {} \
             WHERE job_id = {} AND status NOT IN ('cancelled', 'done', 'failed', 'skipped')",
            p.t("job_runs"),
            p.text(1),
            p.ts(2),
            p.int(3),
            p.int(4),
            p.nullable(5, "text"),
            p.ts(6),
            p.text(7)
        );
        let binds = [
            task_id.as_str(),
            run_at.as_str(),
            &env.deferrals.to_string(),
            &env.attempts_before.to_string(),
            error.as_deref().unwrap_or(""),
            &now_text(),
            &env.job_id,
        ];
        self.db.execute(&sql, &binds).await?;
        Ok(task_id)
    }

    /// Re-queues a job that failed or was cancelled, as a new job (same kind, scope and
    /// arguments, trigger `admin`, same correlation id). Returns the new job id.
    pub async fn retry(&self, job_id: &str) -> Result<String, RuntimeError> {
        let store = crate::store::JobStore::new(self.db.clone());
        let Some(job) = store.get(job_id).await? else { return Err(RuntimeError::NotFound(job_id.to_owned())) };
        if !matches!(job.status, crate::JobStatus::Failed | crate::JobStatus::Cancelled) {
            return Err(RuntimeError::Conflict(format!(
                "job {job_id} is {}; only failed or cancelled jobs can be re-queued",
                job.status.as_str()
            )));
        }
        if let Some(next) = &job.retried_as {
            return Err(RuntimeError::Conflict(format!("job {job_id} was already re-queued as {next}")));
        }
        let req = JobRequest {
            kind: job.kind.clone(),
            tenant: job.tenant,
            provider: job.provider.clone(),
            integration_id: job.integration_id,
            trigger: crate::Trigger::Admin,
            correlation_id: Some(job.correlation_id.clone()),
            args: job.args.clone(),
            delay_secs: 0,
            schedule_id: None,
            retry_of: Some(job_id.to_owned()),
        };
        self.enqueue(req).await
    }

    /// Cancels a job: one that has not started never runs; a running one stops at its next
    /// progress report.
    pub async fn cancel(&self, job_id: &str) -> Result<crate::store::CancelOutcome, RuntimeError> {
        let store = crate::store::JobStore::new(self.db.clone());
        let out = store.cancel(job_id).await?;
        if matches!(out, crate::store::CancelOutcome::Cancelled)
            && let Some(job) = store.get(job_id).await?
        {
            self.kill_task(&job.task_id).await?;
        }
        Ok(out)
    }

    /// Stops the backend from handing out a task that has not started (after a cancel).
    /// Redis tasks are not touched: the worker skips cancelled jobs when it picks them up.
    pub async fn kill_task(&self, task_id: &str) -> Result<(), RuntimeError> {
        match &self.backend {
            Backend::Postgres(p) => apalis_tables::kill_pending_postgres(p, task_id).await?,
            Backend::Sqlite(p) => apalis_tables::kill_pending_sqlite(p, task_id).await?,
            Backend::Redis(_) => {}
        }
        Ok(())
    }

    /// Deletes finished tasks older than `age` from the backend, and workers not seen for that
    /// long. Returns the number of tasks deleted.
    pub async fn purge_finished(&self, age: Duration) -> Result<u64, RuntimeError> {
        let secs = age.as_secs() as i64;
        match &self.backend {
            Backend::Postgres(p) => Ok(apalis_tables::purge_finished_postgres(p, secs).await?),
            Backend::Sqlite(p) => Ok(apalis_tables::purge_finished_sqlite(p, secs).await?),
            Backend::Redis(conn) => {
                use apalis_core::backend::Vacuum;
                let mut n = 0u64;
                for kind in self.registry.names() {
                    let mut storage = apalis_redis::RedisStorage::<JobEnvelope>::new(conn.clone())
                        .with_config(redis_config(&self.redis_ns, kind));
                    n += storage.vacuum_before(age).await.map_err(qerr)? as u64;
                }
                Ok(n)
            }
        }
    }

    /// Is the queue backend reachable? (`/readyz`)
    pub async fn ping(&self) -> Result<(), RuntimeError> {
        match &self.backend {
            Backend::Redis(conn) => {
                let mut c = conn.clone();
                redis_ping(&mut c).await
            }
            _ => Ok(()),
        }
    }
}

async fn redis_ping(c: &mut ConnectionManager) -> Result<(), RuntimeError> {
    redis::cmd("PING").query_async::<String>(c).await.map(|_| ()).map_err(qerr)
}

/// The apalis Redis configuration of a kind's queue (the worker uses the same names).
pub(crate) fn redis_config(namespace: &str, kind: &str) -> apalis_redis::Config {
    apalis_redis::Config::default().queue(format!("{namespace}:{kind}"))
}

/// Why a running job is continued by a new, delayed task.
#[derive(Debug, Clone, Copy)]
pub enum Continuation<'a> {
    /// The upstream asked us to come back later.
    Deferred,
    /// An attempt failed; the next one runs after the backoff.
    Retry { error: &'a str },
}

/// The queue task carrying `env`. Its attempt limit is what is left of the kind's limit, so that
/// crash loops (the backend re-queues a dead worker's task with one more attempt) stop too.
pub(crate) fn build_task(
    env: &JobEnvelope,
    task_id: &str,
    policy: &Policy,
    delay_secs: u64,
) -> Result<apalis::prelude::Task<Vec<u8>>, RuntimeError> {
    let bytes = serde_json::to_vec(env).map_err(qerr)?;
    let id: Ulid = task_id.parse().map_err(|_| RuntimeError::Invalid(format!("{task_id} is not a ULID")))?;
    let left = policy.max_attempts.saturating_sub(env.attempts_before).max(1);
    let mut b = TaskBuilder::new(bytes)
        .task_id(TaskId::from_ulid(id))
        .max_attempts(left as usize)
        .priority(policy.priority as usize);
    if delay_secs > 0 {
        b = b.run_after(Duration::from_secs(delay_secs));
    }
    Ok(b.build())
}
