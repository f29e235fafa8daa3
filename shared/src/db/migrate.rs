//! Embedded migrations. Our own schema (`rmm_sync`) is always migrated; the AlgaPSA-compatible
//! tables are created only in standalone mode. In algapsa mode they are checked instead.
//!
//! Migration history is kept out of `public`: `rmm_sync._sqlx_migrations` and
//! `rmm_sync._standalone_migrations` on Postgres, `rmm_sync__sqlx_migrations` and
//! `rmm_sync__standalone_migrations` on SQLite.

use sqlx::migrate::Migrator;

use super::{Db, DbError, schema_check};
use crate::config::SchemaMode;

static PG_OURS: Migrator = sqlx::migrate!("../migrations/postgres/rmm_sync");
static PG_ALGAPSA: Migrator = sqlx::migrate!("../migrations/postgres/algapsa");
static SQLITE_OURS: Migrator = sqlx::migrate!("../migrations/sqlite/rmm_sync");
static SQLITE_ALGAPSA: Migrator = sqlx::migrate!("../migrations/sqlite/algapsa");

fn with_table(base: &Migrator, table: &'static str, schema: Option<&'static str>) -> Migrator {
    let mut m = Migrator::with_migrations(base.migrations.to_vec());
    m.dangerous_set_table_name(table);
    if let Some(schema) = schema {
        m.create_schema(schema);
    }
    m
}

/// What a migration run did, for the start-up log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    pub ours_applied: usize,
    pub algapsa: AlgapsaSchema,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlgapsaSchema {
    /// Standalone: the tables were created or brought up to date by us.
    Created { applied: usize },
    /// algapsa mode: the real AlgaPSA tables have every column we use.
    Verified,
}

impl Db {
    /// Applies our migrations and either the standalone AlgaPSA tables or the AlgaPSA schema check.
    pub async fn migrate(&self, mode: SchemaMode) -> Result<MigrationReport, DbError> {
        if mode == SchemaMode::Algapsa && matches!(self, Db::Sqlite(_)) {
            return Err(DbError::AlgapsaNeedsPostgres);
        }
        // In standalone mode the AlgaPSA tables come first: our tables may reference them.
        let algapsa = match mode {
            SchemaMode::Standalone => AlgapsaSchema::Created { applied: self.run_standalone().await? },
            SchemaMode::Algapsa => {
                schema_check::verify(self).await?;
                AlgapsaSchema::Verified
            }
        };
        let ours_applied = self.run_ours().await?;
        Ok(MigrationReport { ours_applied, algapsa })
    }

    /// Are all of our migrations applied? (`/readyz`)
    pub async fn migrations_current(&self) -> Result<bool, DbError> {
        let (table, expected) = match self {
            Db::Postgres(_) => ("rmm_sync._sqlx_migrations", PG_OURS.migrations.len()),
            Db::Sqlite(_) => ("rmm_sync__sqlx_migrations", SQLITE_OURS.migrations.len()),
        };
        let sql = format!("SELECT COUNT(*) FROM {table} WHERE success");
        let applied: i64 = match self {
            Db::Postgres(p) => sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone())).fetch_one(p).await?,
            Db::Sqlite(p) => sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone())).fetch_one(p).await?,
        };
        Ok(applied as usize >= expected)
    }

    async fn run_ours(&self) -> Result<usize, DbError> {
        match self {
            Db::Postgres(p) => {
                let m = with_table(&PG_OURS, "rmm_sync._sqlx_migrations", Some("rmm_sync"));
                let before = applied_count(self, "rmm_sync._sqlx_migrations").await;
                m.run(p).await?;
                Ok(applied_count(self, "rmm_sync._sqlx_migrations").await - before)
            }
            Db::Sqlite(p) => {
                let m = with_table(&SQLITE_OURS, "rmm_sync__sqlx_migrations", None);
                let before = applied_count(self, "rmm_sync__sqlx_migrations").await;
                m.run(p).await?;
                Ok(applied_count(self, "rmm_sync__sqlx_migrations").await - before)
            }
        }
    }

    async fn run_standalone(&self) -> Result<usize, DbError> {
        match self {
            Db::Postgres(p) => {
                let m = with_table(&PG_ALGAPSA, "rmm_sync._standalone_migrations", Some("rmm_sync"));
                let before = applied_count(self, "rmm_sync._standalone_migrations").await;
                m.run(p).await?;
                Ok(applied_count(self, "rmm_sync._standalone_migrations").await - before)
            }
            Db::Sqlite(p) => {
                let m = with_table(&SQLITE_ALGAPSA, "rmm_sync__standalone_migrations", None);
                let before = applied_count(self, "rmm_sync__standalone_migrations").await;
                m.run(p).await?;
                Ok(applied_count(self, "rmm_sync__standalone_migrations").await - before)
            }
        }
    }
}

/// How many migrations a history table records (0 when it does not exist yet).
async fn applied_count(db: &Db, table: &str) -> usize {
    let sql = format!("SELECT COUNT(*) FROM {table} WHERE success");
    let n: Result<i64, _> = match db {
        Db::Postgres(p) => sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone())).fetch_one(p).await,
        Db::Sqlite(p) => sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone())).fetch_one(p).await,
    };
    n.unwrap_or(0) as usize
}
