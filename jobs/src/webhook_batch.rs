//! Group commit of webhook accepts on PostgreSQL (with the PostgreSQL queue).
//!
//! Each accept is one row of work: check the tenant and integration, take the agent's coalescing
//! row, store the delivery and, when no refresh is pending, write the job's status row and its
//! apalis task. Accepts that arrive while earlier ones are being written wait together and are
//! written by one statement over arrays (one round trip, one commit, one plan), and each is
//! answered from that statement's result, so a caller is still answered only after its own rows
//! are committed. At low load a batch holds one accept and nothing waits: a batch is sent as soon
//! as one of the `http.webhook_batch_statements` slots is free.
//!
//! Rules that keep a batch equivalent to its accepts run one by one:
//! * one accept per agent per batch (an `INSERT … ON CONFLICT DO UPDATE` cannot touch a row twice);
//!   later deliveries for the agent wait for a following batch, in arrival order;
//! * the agent rows are locked in (tenant, agent) order, so two batches (also of two ingress
//!   processes) never wait on each other in a cycle;
//! * when the statement fails for a reason of the database's data (one body PostgreSQL will not
//!   store, a deadlock with another process), each accept of the batch is written alone, so one
//!   bad delivery fails alone; when the database cannot be reached, every accept of the batch
//!   fails (and is answered 503).

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use tokio::sync::{Semaphore, mpsc, oneshot};
use uuid::Uuid;

use crate::error::RuntimeError;

/// Most accepts one statement writes.
pub const MAX_ROWS: usize = 128;
/// Most bytes of accepts (bodies, tasks, ids) one statement carries, unless a single accept is
/// larger: it bounds a statement's parameters (and the memory a batch holds) whatever the body cap.
/// It is not a speed setting: with sqlx 0.9.1 batches of any size up to [`MAX_ROWS`] cost the same
/// per webhook (BENCHMARKS.md, "Webhook ingress").
pub const MAX_BYTES: usize = 1024 * 1024;

/// One accept, ready to be written.
#[derive(Debug, Clone)]
pub struct Row {
    pub tenant: Uuid,
    /// Stands for the integration id in `task` until the statement learns it.
    pub placeholder: String,
    pub agent_id: String,
    pub delivery_id: String,
    pub received_at: DateTime<Utc>,
    pub body: String,
    pub job_id: String,
    pub args: String,
    pub max_attempts: i32,
    pub task: String,
    pub priority: i32,
    pub correlation_id: String,
    pub traceparent: Option<String>,
    /// Seconds of the coalescing window (a batch holds accepts of one window).
    pub window_secs: f64,
    /// The provider and the kind of its refresh job (a batch holds accepts of one provider).
    pub provider: &'static str,
    pub kind: &'static str,
}

/// What the statement decided for one accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decided {
    /// Not stored: `tenant_suspended`, `integration_not_configured` or `integration_inactive`.
    Refused(&'static str),
    /// Stored, processed by `job_id` (`is_new`: that job was enqueued by this accept).
    Stored { integration_id: Uuid, job_id: String, is_new: bool },
}

type Reply = oneshot::Sender<Result<Decided, RuntimeError>>;

/// Statements and accepts written so far by one process (for `/metrics`).
#[derive(Debug, Default)]
pub struct BatchCounts {
    statements: AtomicU64,
    rows: AtomicU64,
}

impl BatchCounts {
    /// (statements, accepts) written.
    pub fn get(&self) -> (u64, u64) {
        (self.statements.load(Ordering::Relaxed), self.rows.load(Ordering::Relaxed))
    }
}

/// The handle accepts are sent through; the task writing them ends when the last handle is dropped.
#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::Sender<(Row, Reply)>,
    pub counts: Arc<BatchCounts>,
}

impl Batcher {
    /// Starts the collecting task (needs a Tokio runtime). `parallel`: statements in flight at once.
    pub fn start(pool: sqlx::PgPool, parallel: usize) -> Batcher {
        let (tx, rx) = mpsc::channel(4 * MAX_ROWS);
        let counts = Arc::new(BatchCounts::default());
        tokio::spawn(collect(rx, pool, Arc::new(Semaphore::new(parallel.max(1))), counts.clone()));
        Batcher { tx, counts }
    }

    /// Writes `row` with whatever accepts wait beside it; answers once its batch is committed.
    pub async fn accept(&self, row: Row) -> Result<Decided, RuntimeError> {
        let (reply, answer) = oneshot::channel();
        self.tx.send((row, reply)).await.map_err(|_| RuntimeError::Queue("the webhook writer has stopped".into()))?;
        answer.await.map_err(|_| RuntimeError::Queue("the webhook writer stopped before answering".into()))?
    }
}

async fn collect(
    mut rx: mpsc::Receiver<(Row, Reply)>,
    pool: sqlx::PgPool,
    slots: Arc<Semaphore>,
    counts: Arc<BatchCounts>,
) {
    let mut waiting: VecDeque<(Row, Reply)> = VecDeque::new();
    loop {
        if waiting.is_empty() {
            match rx.recv().await {
                Some(item) => waiting.push_back(item),
                None => return,
            }
        }
        // While every slot is busy, accepts gather in the channel: that is the batching.
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        while waiting.len() < 4 * MAX_ROWS {
            match rx.try_recv() {
                Ok(item) => waiting.push_back(item),
                Err(_) => break,
            }
        }
        let batch = take_batch(&mut waiting);
        let (pool, counts) = (pool.clone(), counts.clone());
        tokio::spawn(async move {
            write(&pool, batch, &counts).await;
            drop(slot);
        });
    }
}

impl Row {
    /// About the bytes this accept adds to a statement.
    fn size(&self) -> usize {
        let texts = [&self.placeholder, &self.agent_id, &self.delivery_id, &self.body, &self.job_id, &self.args];
        let more = [&self.task, &self.correlation_id];
        texts.iter().chain(&more).map(|t| t.len()).sum::<usize>()
            + self.traceparent.as_ref().map_or(0, String::len)
            + 80
    }
}

/// The next batch: the oldest waiting accept of each agent, all of the first one's window and
/// provider, up to
/// [`MAX_ROWS`] and [`MAX_BYTES`] (the first accept is always taken); the rest stay waiting in
/// their order. An agent whose oldest accept stays waiting has none taken.
fn take_batch(waiting: &mut VecDeque<(Row, Reply)>) -> Vec<(Row, Reply)> {
    let (window, provider) = waiting.front().map(|(r, _)| (r.window_secs, r.provider)).unwrap_or_default();
    let mut agents = HashSet::new();
    let (mut batch, mut bytes) = (Vec::new(), 0);
    let mut rest = VecDeque::with_capacity(waiting.len());
    for item in waiting.drain(..) {
        let row = &item.0;
        let fits = batch.is_empty() || (batch.len() < MAX_ROWS && bytes + row.size() <= MAX_BYTES);
        // The agent is marked seen whether or not its accept is taken: a later one must not pass it.
        let first_of_agent = agents.insert((row.tenant, row.agent_id.clone()));
        if first_of_agent && fits && row.window_secs == window && row.provider == provider {
            bytes += row.size();
            batch.push(item);
        } else {
            rest.push_back(item);
        }
    }
    *waiting = rest;
    batch
}

async fn write(pool: &sqlx::PgPool, batch: Vec<(Row, Reply)>, counts: &BatchCounts) {
    let (rows, replies): (Vec<Row>, Vec<Reply>) = batch.into_iter().unzip();
    match run(pool, &rows, counts).await {
        Ok(decided) => {
            for (reply, d) in replies.into_iter().zip(decided) {
                let _ = reply.send(Ok(d));
            }
        }
        Err(sqlx::Error::Database(e)) if rows.len() > 1 => {
            tracing::warn!(error = %e, rows = rows.len(), "a webhook batch failed; writing its deliveries one by one");
            for (row, reply) in rows.into_iter().zip(replies) {
                let one = run(pool, std::slice::from_ref(&row), counts).await;
                let _ = reply.send(one.map(|mut d| d.remove(0)).map_err(RuntimeError::Sql));
            }
        }
        Err(e) => {
            let msg = e.to_string();
            for reply in replies {
                let _ = reply.send(Err(RuntimeError::Queue(format!("database error: {msg}"))));
            }
        }
    }
}

/// One statement for `rows`; a decision per row, in their order.
async fn run(pool: &sqlx::PgPool, rows: &[Row], counts: &BatchCounts) -> Result<Vec<Decided>, sqlx::Error> {
    let col = |f: fn(&Row) -> &str| rows.iter().map(f).collect::<Vec<&str>>();
    type Out = (i64, Option<String>, Option<Uuid>, Option<String>, Option<bool>);
    let out: Vec<Out> = sqlx::query_as(ACCEPT_BATCH)
        .bind(rows.iter().map(|r| r.tenant).collect::<Vec<_>>())
        .bind(col(|r| &r.placeholder))
        .bind(col(|r| &r.agent_id))
        .bind(col(|r| &r.delivery_id))
        .bind(rows.iter().map(|r| r.received_at).collect::<Vec<_>>())
        .bind(col(|r| &r.body))
        .bind(col(|r| &r.job_id))
        .bind(col(|r| &r.args))
        .bind(rows.iter().map(|r| r.max_attempts).collect::<Vec<_>>())
        .bind(col(|r| &r.task))
        .bind(rows.iter().map(|r| r.priority).collect::<Vec<_>>())
        .bind(col(|r| &r.correlation_id))
        .bind(rows.iter().map(|r| r.traceparent.as_deref()).collect::<Vec<_>>())
        .bind(rows.first().map(|r| r.kind).unwrap_or_default())
        .bind(rows.first().map(|r| r.provider).unwrap_or_default())
        .bind(rows.first().map(|r| r.window_secs).unwrap_or_default())
        .fetch_all(pool)
        .await?;
    counts.statements.fetch_add(1, Ordering::Relaxed);
    counts.rows.fetch_add(rows.len() as u64, Ordering::Relaxed);
    let mut decided = vec![Decided::Refused("integration_not_configured"); rows.len()];
    for (n, reason, integration, job_id, is_new) in out {
        let Some(slot) = usize::try_from(n - 1).ok().and_then(|i| decided.get_mut(i)) else { continue };
        *slot = match (integration, job_id, is_new) {
            (Some(integration_id), Some(job_id), Some(is_new)) => Decided::Stored { integration_id, job_id, is_new },
            _ => Decided::Refused(match reason.as_deref() {
                Some("tenant_suspended") => "tenant_suspended",
                Some("integration_inactive") => "integration_inactive",
                _ => "integration_not_configured",
            }),
        };
    }
    Ok(decided)
}

/// The accept of every row of a batch (`$1`..`$13` are arrays, one element per accept, numbered
/// by `n`). Per row, as [`crate::webhooks`] describes: the agent's row decides whether a pending
/// job is joined (only while its status row says `pending`) or a new one is enqueued, delayed to
/// the end of the window when a refresh already ran in it.
const ACCEPT_BATCH: &str = concat!(
    "\
WITH x AS (
    SELECT * FROM unnest(CAST($1 AS uuid[]), CAST($2 AS text[]), CAST($3 AS text[]), CAST($4 AS text[]),
        CAST($5 AS timestamptz[]), CAST($6 AS text[]), CAST($7 AS text[]), CAST($8 AS text[]), CAST($9 AS int[]),
        CAST($10 AS text[]), CAST($11 AS int[]), CAST($12 AS text[]), CAST($13 AS text[]))
        WITH ORDINALITY AS x(tenant, placeholder, agent_id, delivery_id, received_at, body, job_id, args,
            max_attempts, task, priority, correlation_id, traceparent, n)
), chk AS (
    SELECT x.*, i.integration_id,
        CASE WHEN t.suspended_at IS NOT NULL THEN 'tenant_suspended'
             WHEN i.integration_id IS NULL THEN 'integration_not_configured'
             WHEN NOT i.is_active THEN 'integration_inactive' END AS reason
    FROM x
    LEFT JOIN tenants t ON t.tenant = x.tenant
    LEFT JOIN rmm_integrations i ON i.tenant = x.tenant AND i.provider = $15
), up AS (
    INSERT INTO rmm_sync.webhook_agents AS w (tenant, integration_id, agent_id, pending_job_id, window_start)
    SELECT tenant, integration_id, agent_id, job_id, received_at FROM chk WHERE reason IS NULL
    ORDER BY tenant, agent_id
    ON CONFLICT (tenant, integration_id, agent_id) DO UPDATE SET
        pending_job_id = CASE
            WHEN w.pending_job_id IS NOT NULL AND EXISTS (
                SELECT 1 FROM rmm_sync.job_runs j WHERE j.job_id = w.pending_job_id AND j.status = 'pending')
            THEN w.pending_job_id ELSE EXCLUDED.pending_job_id END,
        window_start = CASE
            WHEN w.pending_job_id IS NOT NULL AND EXISTS (
                SELECT 1 FROM rmm_sync.job_runs j WHERE j.job_id = w.pending_job_id AND j.status = 'pending')
            THEN w.window_start
            WHEN w.window_start + make_interval(secs => $16) <= EXCLUDED.window_start THEN EXCLUDED.window_start
            ELSE w.window_start END
    RETURNING tenant, agent_id, pending_job_id, window_start
), calc AS (
    SELECT chk.*, up.pending_job_id AS run_job, up.pending_job_id = chk.job_id AS is_new,
        CASE WHEN up.window_start >= chk.received_at THEN 0
             ELSE CEIL(EXTRACT(EPOCH FROM (up.window_start + make_interval(secs => $16) - chk.received_at))) END AS delay
    FROM up JOIN chk ON chk.tenant = up.tenant AND chk.agent_id = up.agent_id
), d AS (
    INSERT INTO rmm_sync.webhook_deliveries (delivery_id, tenant, integration_id, provider, agent_id, body, received_at, job_id)
    SELECT delivery_id, tenant, integration_id, $15, agent_id, CAST(body AS jsonb), received_at, run_job FROM calc
), r AS (
    INSERT INTO rmm_sync.job_runs (job_id, task_id, kind, tenant, provider, integration_id, trigger, correlation_id,
        args, status, max_attempts, dispatched, run_at, created_at, updated_at, traceparent)
    SELECT job_id, job_id, $14, tenant, $15, integration_id, 'webhook', correlation_id, CAST(args AS jsonb), 'pending',
        max_attempts, true, received_at + make_interval(secs => delay), received_at, received_at, traceparent
    FROM calc WHERE is_new
), q AS (
    ",
    crate::apalis_tables::pg_insert_tasks!(),
    "
    SELECT job_id, $14, convert_to(replace(task, placeholder, CAST(integration_id AS text)), 'UTF8'), max_attempts,
        received_at + make_interval(secs => delay), priority
    FROM calc WHERE is_new
)
SELECT chk.n, chk.reason, calc.integration_id, calc.run_job, calc.is_new FROM chk LEFT JOIN calc ON calc.n = chk.n"
);

#[cfg(test)]
mod tests {
    use super::*;

    fn row(tenant: Uuid, agent: &str, window: f64) -> (Row, Reply) {
        let (reply, _) = oneshot::channel();
        let r = Row {
            tenant,
            placeholder: String::new(),
            agent_id: agent.into(),
            delivery_id: format!("d-{agent}"),
            received_at: Utc::now(),
            body: "{}".into(),
            job_id: String::new(),
            args: "{}".into(),
            max_attempts: 1,
            task: String::new(),
            priority: 0,
            correlation_id: String::new(),
            traceparent: None,
            window_secs: window,
            provider: "tacticalrmm",
            kind: "sync-agent",
        };
        (r, reply)
    }

    fn agents<'a>(items: impl IntoIterator<Item = &'a (Row, Reply)>) -> Vec<&'a str> {
        items.into_iter().map(|(r, _)| r.agent_id.as_str()).collect()
    }

    #[test]
    fn a_batch_takes_one_accept_per_agent_and_keeps_the_rest_in_order() {
        let (t1, t2) = (Uuid::new_v4(), Uuid::new_v4());
        let mut waiting: VecDeque<_> =
            [row(t1, "a", 10.0), row(t1, "b", 10.0), row(t1, "a", 10.0), row(t2, "a", 10.0), row(t1, "a", 10.0)]
                .into_iter()
                .collect();
        waiting[2].0.delivery_id = "second-a".into();
        let first = take_batch(&mut waiting);
        assert_eq!(agents(&first), ["a", "b", "a"]);
        assert_eq!(first[2].0.tenant, t2, "the same agent id of another tenant is another agent");
        assert_eq!(waiting[0].0.delivery_id, "second-a", "later deliveries of an agent keep their order");
        let second = take_batch(&mut waiting);
        assert_eq!(agents(&second), ["a"]);
        assert_eq!(take_batch(&mut waiting).len(), 1);
        assert!(waiting.is_empty());
    }

    #[test]
    fn a_batch_holds_one_provider() {
        let t = Uuid::new_v4();
        let mut waiting: VecDeque<_> = [row(t, "a", 10.0), row(t, "b", 10.0), row(t, "c", 10.0)].into_iter().collect();
        waiting[1].0.provider = "other";
        assert_eq!(agents(&take_batch(&mut waiting)), ["a", "c"]);
        assert_eq!(agents(&take_batch(&mut waiting)), ["b"]);
    }

    #[test]
    fn a_batch_holds_one_window_and_at_most_max_rows_and_max_bytes() {
        let t = Uuid::new_v4();
        let mut waiting: VecDeque<_> = (0..MAX_ROWS + 5).map(|i| row(t, &format!("a{i}"), 10.0)).collect();
        waiting.insert(1, row(t, "other-window", 3.0));
        waiting.insert(2, row(t, "other-window", 10.0));
        assert_eq!(take_batch(&mut waiting).len(), MAX_ROWS);
        assert_eq!(agents(&waiting)[..2], ["other-window", "other-window"], "neither passes the other");
        assert_eq!(waiting.len(), 7);
        assert_eq!(agents(&take_batch(&mut waiting)), ["other-window"]);
        assert_eq!(take_batch(&mut waiting).len(), 6);

        // Bytes: a large accept goes alone; small ones fill a batch up to the limit.
        let mut big = row(t, "big", 10.0);
        big.0.body = "x".repeat(MAX_BYTES * 2);
        let mut waiting: VecDeque<_> =
            std::iter::once(big).chain((0..100).map(|i| row(t, &format!("s{i}"), 10.0))).collect();
        for (r, _) in waiting.iter_mut().skip(1) {
            r.body = "y".repeat(MAX_BYTES / 40);
        }
        assert_eq!(agents(&take_batch(&mut waiting)), ["big"]);
        let small = take_batch(&mut waiting);
        let bytes: usize = small.iter().map(|(r, _)| r.size()).sum();
        assert!(small.len() > 1 && bytes <= MAX_BYTES, "{} rows, {bytes} bytes", small.len());
        assert!(bytes + waiting[0].0.size() > MAX_BYTES, "the batch stopped only when the next one did not fit");
    }
}
