//! Every statement of ours on apalis's own tables, in one place.
//!
//! apalis creates and migrates its tables itself (`apalis.jobs` and `apalis.workers` on
//! PostgreSQL, `Jobs` and `Workers` on SQLite; [`crate::Queue::setup`]) and pushes and fetches
//! tasks through its own queries. We go around it only where it has no API for what we need:
//!
//! * killing a task that has not started, after its job was cancelled ([`kill_pending_postgres`],
//!   [`kill_pending_sqlite`]);
//! * retention: deleting finished tasks and workers gone for good, which apalis never does on
//!   PostgreSQL ([`purge_finished_postgres`], [`purge_finished_sqlite`]);
//! * writing task rows inside the webhook group commit's one statement ([`pg_insert_tasks!`],
//!   used by [`crate::webhook_batch`]).
//!
//! The columns these statements read or write, with their types, are [`POSTGRES_COLUMNS`] and
//! [`SQLITE_COLUMNS`]; a test checks them against the tables apalis's own set-up creates, so an
//! apalis upgrade that changes them fails there rather than in production.

use sqlx::{PgPool, SqlitePool};

/// A column of an apalis table that a statement of this module uses, and its type as the
/// database reports it (`information_schema.columns.data_type` on PostgreSQL, the declared type
/// of `pragma_table_info` on SQLite).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// `schema.table` on PostgreSQL, the table name on SQLite.
    pub table: &'static str,
    pub name: &'static str,
    pub data_type: &'static str,
}

const fn col(table: &'static str, name: &'static str, data_type: &'static str) -> Column {
    Column { table, name, data_type }
}

/// The PostgreSQL columns this module reads or writes.
pub const POSTGRES_COLUMNS: &[Column] = &[
    col("apalis.jobs", "id", "text"),
    col("apalis.jobs", "job_type", "text"),
    col("apalis.jobs", "job", "bytea"),
    col("apalis.jobs", "status", "text"),
    col("apalis.jobs", "attempts", "integer"),
    col("apalis.jobs", "max_attempts", "integer"),
    col("apalis.jobs", "run_at", "timestamp with time zone"),
    col("apalis.jobs", "done_at", "timestamp with time zone"),
    col("apalis.jobs", "lock_by", "text"),
    col("apalis.jobs", "priority", "integer"),
    col("apalis.workers", "id", "text"),
    col("apalis.workers", "last_seen", "timestamp with time zone"),
];

/// The SQLite columns this module reads or writes (times are Unix seconds).
pub const SQLITE_COLUMNS: &[Column] = &[
    col("Jobs", "id", "TEXT"),
    col("Jobs", "status", "TEXT"),
    col("Jobs", "attempts", "INTEGER"),
    col("Jobs", "max_attempts", "INTEGER"),
    col("Jobs", "done_at", "INTEGER"),
    col("Jobs", "lock_by", "TEXT"),
    col("Workers", "id", "TEXT"),
    col("Workers", "last_seen", "INTEGER"),
];

/// The head of an `INSERT` of task rows into apalis's PostgreSQL queue, for a statement that
/// writes them itself. It must be followed by a `SELECT` of, in this order: the task id (a ULID),
/// the queue (the job kind), the encoded task (`bytea`), its attempt limit, when it is due
/// (`timestamptz`) and its priority. A macro so that it can be part of a `const` statement.
macro_rules! pg_insert_tasks {
    () => {
        "INSERT INTO apalis.jobs (id, job_type, job, max_attempts, run_at, priority)"
    };
}
pub(crate) use pg_insert_tasks;

/// Kills a task that has not started (pending, or failed and waiting to be fetched again) so the
/// backend never hands it out; a started or finished task is left alone.
pub const PG_KILL_PENDING: &str =
    "UPDATE apalis.jobs SET status = 'Killed', done_at = now() WHERE id = $1 AND status IN ('Pending', 'Failed')";

/// [`PG_KILL_PENDING`] on SQLite.
pub const SQLITE_KILL_PENDING: &str = "UPDATE Jobs SET status = 'Killed', done_at = strftime('%s', 'now') \
     WHERE id = ?1 AND status IN ('Pending', 'Failed')";

/// Deletes tasks finished (done, killed, or failed with no attempt left) more than `$1` seconds
/// ago.
pub const PG_PURGE_TASKS: &str = "DELETE FROM apalis.jobs \
     WHERE (status IN ('Done', 'Killed') OR (status = 'Failed' AND attempts >= max_attempts)) \
     AND done_at < now() - make_interval(secs => $1)";

/// Deletes workers not seen for `$1` seconds that no task refers to.
pub const PG_PURGE_WORKERS: &str = "DELETE FROM apalis.workers w WHERE w.last_seen < now() - make_interval(secs => $1) \
     AND NOT EXISTS (SELECT 1 FROM apalis.jobs j WHERE j.lock_by = w.id)";

/// [`PG_PURGE_TASKS`] on SQLite.
pub const SQLITE_PURGE_TASKS: &str = "DELETE FROM Jobs \
     WHERE (status IN ('Done', 'Killed') OR (status = 'Failed' AND attempts >= max_attempts)) \
     AND done_at < CAST(strftime('%s', 'now') AS INTEGER) - ?1";

/// [`PG_PURGE_WORKERS`] on SQLite.
pub const SQLITE_PURGE_WORKERS: &str = "DELETE FROM Workers WHERE last_seen < CAST(strftime('%s', 'now') AS INTEGER) - ?1 \
     AND NOT EXISTS (SELECT 1 FROM Jobs WHERE Jobs.lock_by = Workers.id)";

/// [`PG_KILL_PENDING`].
pub async fn kill_pending_postgres(pool: &PgPool, task_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query(PG_KILL_PENDING).bind(task_id).execute(pool).await.map(|_| ())
}

/// [`SQLITE_KILL_PENDING`].
pub async fn kill_pending_sqlite(pool: &SqlitePool, task_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query(SQLITE_KILL_PENDING).bind(task_id).execute(pool).await.map(|_| ())
}

/// Deletes the tasks finished more than `age_secs` ago and the workers not seen for as long
/// (that no task refers to). Returns the number of tasks deleted.
pub async fn purge_finished_postgres(pool: &PgPool, age_secs: i64) -> Result<u64, sqlx::Error> {
    let n = sqlx::query(PG_PURGE_TASKS).bind(age_secs as f64).execute(pool).await?.rows_affected();
    sqlx::query(PG_PURGE_WORKERS).bind(age_secs as f64).execute(pool).await?;
    Ok(n)
}

/// [`purge_finished_postgres`] on SQLite.
pub async fn purge_finished_sqlite(pool: &SqlitePool, age_secs: i64) -> Result<u64, sqlx::Error> {
    let n = sqlx::query(SQLITE_PURGE_TASKS).bind(age_secs).execute(pool).await?.rows_affected();
    sqlx::query(SQLITE_PURGE_WORKERS).bind(age_secs).execute(pool).await?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every table a statement here names has its columns listed (and the other way round), so
    /// the layout test covers what the statements use.
    #[test]
    fn the_statements_use_only_the_listed_tables() {
        let pg = [PG_KILL_PENDING, PG_PURGE_TASKS, PG_PURGE_WORKERS, pg_insert_tasks!()];
        for sql in pg {
            assert!(sql.contains("apalis.jobs") || sql.contains("apalis.workers"), "{sql}");
        }
        for c in POSTGRES_COLUMNS {
            assert!(pg.iter().any(|s| s.contains(c.table) && s.contains(c.name)), "{c:?} unused");
        }
        let sqlite = [SQLITE_KILL_PENDING, SQLITE_PURGE_TASKS, SQLITE_PURGE_WORKERS];
        for c in SQLITE_COLUMNS {
            assert!(sqlite.iter().any(|s| s.contains(c.table) && s.contains(c.name)), "{c:?} unused");
        }
    }
}
