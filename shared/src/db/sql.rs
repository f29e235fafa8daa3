//! A thin dialect layer for set-based statements that both stores run.
//!
//! Every statement binds only text parameters: the tenant, `now`, and JSON documents. A page of rows
//! travels as one JSON array and is turned into a relation by the database itself
//! (`json_to_recordset` on Postgres, `json_each` on SQLite), so one statement writes a whole page
//! whatever its size, and the same SQL shape serves both dialects.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use std::future::Future;

use sqlx::{Arguments, AssertSqlSafe, Database, Encode, FromRow, Postgres, Sqlite, Transaction, Type};

use super::{Db, DbError, Dialect};

/// PostgreSQL column types used to describe a JSON record set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColType {
    Uuid,
    Text,
    Timestamp,
    Int,
    BigInt,
    Bool,
    Json,
}

impl ColType {
    fn pg(self) -> &'static str {
        match self {
            ColType::Uuid => "uuid",
            ColType::Text => "text",
            ColType::Timestamp => "timestamptz",
            ColType::Int => "int",
            ColType::BigInt => "bigint",
            ColType::Bool => "boolean",
            ColType::Json => "jsonb",
        }
    }
}

/// The timestamp text format used in JSON records and SQLite columns (UTC, milliseconds, `Z`).
pub fn fmt_ts(ts: DateTime<Utc>) -> String {
    ts.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

impl Dialect {
    /// Placeholder for the `n`-th (1-based) text parameter, cast to `ty` on Postgres.
    pub fn param(self, n: usize, ty: ColType) -> String {
        match (self, ty) {
            (Dialect::Postgres, ColType::Text) => format!("${n}"),
            (Dialect::Postgres, ty) => format!("${n}::{}", ty.pg()),
            (Dialect::Sqlite, _) => format!("?{n}"),
        }
    }

    /// A relation `r` built from the JSON array bound as parameter `n`, with the given columns.
    pub fn recordset(self, n: usize, cols: &[(&str, ColType)]) -> String {
        match self {
            Dialect::Postgres => {
                let defs: Vec<String> = cols.iter().map(|(c, t)| format!("\"{c}\" {}", t.pg())).collect();
                format!("json_to_recordset(${n}::json) AS r({})", defs.join(", "))
            }
            Dialect::Sqlite => {
                let exprs: Vec<String> = cols
                    .iter()
                    .map(|(c, t)| match t {
                        ColType::Json => format!("NULLIF(j.value -> '$.{c}', 'null') AS \"{c}\""),
                        _ => format!("j.value ->> '$.{c}' AS \"{c}\""),
                    })
                    .collect();
                format!("(SELECT {} FROM json_each(?{n}) AS j) AS r", exprs.join(", "))
            }
        }
    }

    /// Membership in the JSON array of strings bound as parameter `n` (cast to `ty` on Postgres).
    ///
    /// On Postgres this is `= ANY(ARRAY(…))`: the array is built once and the comparison can use an
    /// index (an `IN (SELECT …)` over a set-returning function is planned as a semi-join, often
    /// over a sequential scan).
    pub fn in_json(self, n: usize, ty: ColType) -> String {
        match (self, ty) {
            (Dialect::Postgres, ColType::Text) => format!("= ANY(ARRAY(SELECT json_array_elements_text(${n}::json)))"),
            (Dialect::Postgres, ty) => {
                format!("= ANY(ARRAY(SELECT json_array_elements_text(${n}::json)::{}))", ty.pg())
            }
            (Dialect::Sqlite, _) => format!("IN (SELECT value FROM json_each(?{n}))"),
        }
    }

    /// `a` and `b` differ, a null equal only to a null.
    pub fn distinct(self, a: &str, b: &str) -> String {
        match self {
            Dialect::Postgres => format!("{a} IS DISTINCT FROM {b}"),
            Dialect::Sqlite => format!("{a} IS NOT {b}"),
        }
    }

    /// A uuid column read as text (both dialects decode it as `String`).
    pub fn text(self, expr: &str) -> String {
        format!("CAST({expr} AS TEXT)")
    }
}

/// An open write transaction on either store.
pub enum Tx {
    Postgres(Transaction<'static, Postgres>),
    Sqlite(Transaction<'static, Sqlite>),
}

impl Db {
    /// Begins a write transaction. On SQLite it takes the write lock up front (`BEGIN IMMEDIATE`),
    /// so a read-then-write sequence inside it cannot interleave with another writer.
    pub async fn begin_write(&self) -> Result<Tx, DbError> {
        Ok(match self {
            Db::Postgres(p) => Tx::Postgres(p.begin().await?),
            Db::Sqlite(p) => Tx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
        })
    }

    /// Runs `body` in a write transaction ([`Db::begin_write`]): committed when it returns `Ok`,
    /// rolled back when it returns an error (which is returned as is).
    pub async fn in_write_tx<T, E>(&self, body: impl AsyncFnOnce(&mut Tx) -> Result<T, E>) -> Result<T, E>
    where
        E: From<DbError>,
    {
        let mut tx = self.begin_write().await?;
        match body(&mut tx).await {
            Ok(v) => {
                tx.commit().await?;
                Ok(v)
            }
            Err(e) => {
                if let Err(rollback) = tx.rollback().await {
                    tracing::debug!(error = %rollback, "rollback failed");
                }
                Err(e)
            }
        }
    }

    /// Runs `body` in a transaction that writes nothing: read-only on Postgres, and rolled back on
    /// both stores whatever `body` returns.
    pub async fn in_read_tx<T, E>(&self, body: impl AsyncFnOnce(&mut Tx) -> Result<T, E>) -> Result<T, E>
    where
        E: From<DbError>,
    {
        let mut tx = match self {
            Db::Postgres(p) => Tx::Postgres(p.begin().await.map_err(DbError::from)?),
            Db::Sqlite(p) => Tx::Sqlite(p.begin().await.map_err(DbError::from)?),
        };
        if tx.dialect() == Dialect::Postgres {
            tx.execute("SET TRANSACTION READ ONLY", &[]).await?;
        }
        let result = body(&mut tx).await;
        if let Err(rollback) = tx.rollback().await {
            tracing::debug!(error = %rollback, "rollback failed");
        }
        result
    }

    /// Runs one statement outside a transaction; returns the rows affected.
    pub async fn execute(&self, sql: &str, binds: &[&str]) -> Result<u64, DbError> {
        Ok(match self {
            Db::Postgres(p) => sqlx::query_with(AssertSqlSafe(sql.to_owned()), text_args::<Postgres>(binds)?)
                .execute(p)
                .await?
                .rows_affected(),
            Db::Sqlite(p) => sqlx::query_with(AssertSqlSafe(sql.to_owned()), text_args::<Sqlite>(binds)?)
                .execute(p)
                .await?
                .rows_affected(),
        })
    }

    /// Runs one query outside a transaction.
    pub async fn fetch<T>(&self, sql: &str, binds: &[&str]) -> Result<Vec<T>, DbError>
    where
        T: for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    {
        Ok(match self {
            Db::Postgres(p) => {
                sqlx::query_as_with::<_, T, _>(AssertSqlSafe(sql.to_owned()), text_args::<Postgres>(binds)?)
                    .fetch_all(p)
                    .await?
            }
            Db::Sqlite(p) => {
                sqlx::query_as_with::<_, T, _>(AssertSqlSafe(sql.to_owned()), text_args::<Sqlite>(binds)?)
                    .fetch_all(p)
                    .await?
            }
        })
    }
}

impl Tx {
    pub fn dialect(&self) -> Dialect {
        match self {
            Tx::Postgres(_) => Dialect::Postgres,
            Tx::Sqlite(_) => Dialect::Sqlite,
        }
    }

    pub async fn execute(&mut self, sql: &str, binds: &[&str]) -> Result<u64, DbError> {
        Ok(match self {
            Tx::Postgres(tx) => sqlx::query_with(AssertSqlSafe(sql.to_owned()), text_args::<Postgres>(binds)?)
                .execute(&mut **tx)
                .await?
                .rows_affected(),
            Tx::Sqlite(tx) => sqlx::query_with(AssertSqlSafe(sql.to_owned()), text_args::<Sqlite>(binds)?)
                .execute(&mut **tx)
                .await?
                .rows_affected(),
        })
    }

    pub async fn fetch<T>(&mut self, sql: &str, binds: &[&str]) -> Result<Vec<T>, DbError>
    where
        T: for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    {
        Ok(match self {
            Tx::Postgres(tx) => {
                sqlx::query_as_with::<_, T, _>(AssertSqlSafe(sql.to_owned()), text_args::<Postgres>(binds)?)
                    .fetch_all(&mut **tx)
                    .await?
            }
            Tx::Sqlite(tx) => {
                sqlx::query_as_with::<_, T, _>(AssertSqlSafe(sql.to_owned()), text_args::<Sqlite>(binds)?)
                    .fetch_all(&mut **tx)
                    .await?
            }
        })
    }

    pub async fn commit(self) -> Result<(), DbError> {
        match self {
            Tx::Postgres(tx) => tx.commit().await?,
            Tx::Sqlite(tx) => tx.commit().await?,
        }
        Ok(())
    }

    pub async fn rollback(self) -> Result<(), DbError> {
        match self {
            Tx::Postgres(tx) => tx.rollback().await?,
            Tx::Sqlite(tx) => tx.rollback().await?,
        }
        Ok(())
    }
}

/// The text parameters of one statement, in order (every statement binds only text).
fn text_args<DB>(binds: &[&str]) -> Result<DB::Arguments, DbError>
where
    DB: Database,
    for<'t> &'t str: Encode<'t, DB> + Type<DB>,
{
    let mut args = DB::Arguments::default();
    for b in binds {
        args.add(*b).map_err(sqlx::Error::Encode)?;
    }
    Ok(args)
}

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
        super::ours(self.0, name)
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
    /// Parameter `n` cast to the PostgreSQL type `ty`, an empty text meaning NULL.
    pub fn nullable(&self, n: usize, ty: &str) -> String {
        match (self.0, ty) {
            (Dialect::Postgres, "text") => format!("NULLIF(${n}, '')"),
            (Dialect::Postgres, ty) => format!("NULLIF(${n}, '')::{ty}"),
            (Dialect::Sqlite, _) => format!("NULLIF(?{n}, '')"),
        }
    }
}

/// Now, in the format of [`fmt_ts`].
pub fn now_text() -> String {
    fmt_ts(Utc::now())
}

/// A timestamp read with [`ts_out`] (or written with [`fmt_ts`]).
pub fn parse_ts(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recordsets_per_dialect() {
        let cols = [("asset_id", ColType::Uuid), ("metadata", ColType::Json)];
        assert_eq!(
            Dialect::Postgres.recordset(3, &cols),
            "json_to_recordset($3::json) AS r(\"asset_id\" uuid, \"metadata\" jsonb)"
        );
        assert_eq!(
            Dialect::Sqlite.recordset(3, &cols),
            "(SELECT j.value ->> '$.asset_id' AS \"asset_id\", NULLIF(j.value -> '$.metadata', 'null') AS \"metadata\" FROM json_each(?3) AS j) AS r"
        );
        assert_eq!(Dialect::Postgres.param(1, ColType::Uuid), "$1::uuid");
        assert_eq!(Dialect::Sqlite.param(1, ColType::Uuid), "?1");
        assert_eq!(Dialect::Postgres.distinct("t.a", "excluded.a"), "t.a IS DISTINCT FROM excluded.a");
        assert_eq!(Dialect::Sqlite.distinct("t.a", "excluded.a"), "t.a IS NOT excluded.a");
    }

    #[test]
    fn timestamps_have_one_fixed_format() {
        let t = DateTime::parse_from_rfc3339("2026-01-02T03:04:05.678901Z").unwrap().with_timezone(&Utc);
        assert_eq!(fmt_ts(t), "2026-01-02T03:04:05.678Z");
    }
}
