//! Small helpers to write one statement for both stores, on a pool or inside a transaction.

use std::future::Future;

use chrono::{DateTime, Utc};
use rmm_shared::db::sql::{ColType, Tx, fmt_ts};
use rmm_shared::db::{Db, DbError, Dialect};
use sqlx::FromRow;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;

/// A pool or an open transaction: where a statement runs.
pub trait Exec: Send {
    fn dialect(&self) -> Dialect;
    fn exec(&mut self, sql: &str, binds: &[&str]) -> impl Future<Output = Result<u64, DbError>> + Send;
    fn rows<T>(&mut self, sql: &str, binds: &[&str]) -> impl Future<Output = Result<Vec<T>, DbError>> + Send
    where
        T: for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin;
}

impl Exec for Db {
    fn dialect(&self) -> Dialect {
        Db::dialect(self)
    }
    fn exec(&mut self, sql: &str, binds: &[&str]) -> impl Future<Output = Result<u64, DbError>> + Send {
        self.execute(sql, binds)
    }
    fn rows<T>(&mut self, sql: &str, binds: &[&str]) -> impl Future<Output = Result<Vec<T>, DbError>> + Send
    where
        T: for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    {
        self.fetch(sql, binds)
    }
}

impl Exec for Tx {
    fn dialect(&self) -> Dialect {
        Tx::dialect(self)
    }
    fn exec(&mut self, sql: &str, binds: &[&str]) -> impl Future<Output = Result<u64, DbError>> + Send {
        self.execute(sql, binds)
    }
    fn rows<T>(&mut self, sql: &str, binds: &[&str]) -> impl Future<Output = Result<Vec<T>, DbError>> + Send
    where
        T: for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    {
        self.fetch(sql, binds)
    }
}

/// A timestamp column read as text in one format on both stores (`2026-01-02T03:04:05.678Z`).
pub fn ts_out(d: Dialect, col: &str) -> String {
    match d {
        Dialect::Postgres => format!("to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"),
        Dialect::Sqlite => col.to_owned(),
    }
}

/// Placeholder helpers, shorter to read in SQL builders.
pub struct P(pub Dialect);

impl P {
    pub fn text(&self, n: usize) -> String {
        self.0.param(n, ColType::Text)
    }
    pub fn uuid(&self, n: usize) -> String {
        self.0.param(n, ColType::Uuid)
    }
    pub fn ts(&self, n: usize) -> String {
        self.0.param(n, ColType::Timestamp)
    }
    pub fn int(&self, n: usize) -> String {
        self.0.param(n, ColType::Int)
    }
    pub fn bigint(&self, n: usize) -> String {
        self.0.param(n, ColType::BigInt)
    }
    pub fn json(&self, n: usize) -> String {
        self.0.param(n, ColType::Json)
    }
    /// Our table's qualified name.
    pub fn t(&self, name: &str) -> String {
        rmm_shared::db::ours(self.0, name)
    }
    /// A JSON column read as text.
    pub fn json_out(&self, col: &str) -> String {
        format!("CAST({col} AS TEXT)")
    }
    /// A boolean literal.
    pub fn bool(&self, v: bool) -> &'static str {
        match (self.0, v) {
            (Dialect::Postgres, true) => "true",
            (Dialect::Postgres, false) => "false",
            (Dialect::Sqlite, true) => "1",
            (Dialect::Sqlite, false) => "0",
        }
    }
}

pub fn now_text() -> String {
    fmt_ts(Utc::now())
}

pub fn ts_text(t: DateTime<Utc>) -> String {
    fmt_ts(t)
}

pub fn parse_ts(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}
