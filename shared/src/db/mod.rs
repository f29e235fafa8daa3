//! The two stores (PostgreSQL for production, SQLite for the embedded default), their migrations and
//! the AlgaPSA schema check.
//!
//! Our own tables live in schema `rmm_sync` on Postgres; SQLite has no schemas, so there they carry
//! the prefix `rmm_sync_` instead. [`Db::ours`] gives the right name for either.

pub mod migrate;
pub mod schema_check;
pub mod sql;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

use crate::config::{DatabaseSettings, redact_url};

/// Which SQL dialect a store speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    Postgres,
    Sqlite,
}

impl Dialect {
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Postgres => "postgres",
            Dialect::Sqlite => "sqlite",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot open database {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("cannot create the directory {path} for the SQLite database: {source}")]
    CreateDir { path: String, source: std::io::Error },
    #[error("migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(
        "the AlgaPSA database is missing what rmm-sync needs ({}); run AlgaPSA's migrations or check DATABASE_URL",
        .0.join("; ")
    )]
    SchemaMismatch(Vec<String>),
    #[error(
        "algapsa schema mode needs PostgreSQL (AlgaPSA runs on PostgreSQL); use schema_mode = \"standalone\" with SQLite"
    )]
    AlgapsaNeedsPostgres,
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

/// A pool for one of the two stores. Cloning is cheap.
#[derive(Clone, Debug)]
pub enum Db {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

impl Db {
    /// Opens a pool for `url` (`postgres://…` or `sqlite://…`). A SQLite file and its directory are
    /// created when missing.
    pub async fn connect(url: &str, settings: &DatabaseSettings) -> Result<Db, DbError> {
        let acquire = Duration::from_secs(settings.acquire_timeout_secs.max(1));
        if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)
                .map_err(|source| DbError::Connect { url: redact_url(url), source })?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(30));
            let file = opts.get_filename();
            if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty())
                && file != Path::new(":memory:")
            {
                std::fs::create_dir_all(dir)
                    .map_err(|source| DbError::CreateDir { path: dir.display().to_string(), source })?;
            }
            let pool = SqlitePoolOptions::new()
                .max_connections(settings.max_connections)
                .acquire_timeout(acquire)
                .connect_with(opts)
                .await
                .map_err(|source| DbError::Connect { url: redact_url(url), source })?;
            Ok(Db::Sqlite(pool))
        } else {
            let opts = PgConnectOptions::from_str(url)
                .map_err(|source| DbError::Connect { url: redact_url(url), source })?
                .application_name("rmm-sync");
            let pool = PgPoolOptions::new()
                .max_connections(settings.max_connections)
                .acquire_timeout(acquire)
                .connect_with(opts)
                .await
                .map_err(|source| DbError::Connect { url: redact_url(url), source })?;
            Ok(Db::Postgres(pool))
        }
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Db::Postgres(_) => Dialect::Postgres,
            Db::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// The qualified name of one of our own tables: `rmm_sync.<name>` on Postgres,
    /// `rmm_sync_<name>` on SQLite.
    pub fn ours(&self, name: &str) -> String {
        ours(self.dialect(), name)
    }

    /// Is the database reachable?
    pub async fn ping(&self) -> Result<(), DbError> {
        match self {
            Db::Postgres(p) => sqlx::query("SELECT 1").execute(p).await?,
            Db::Sqlite(p) => {
                sqlx::query("SELECT 1").execute(p).await?;
                return Ok(());
            }
        };
        Ok(())
    }

    pub async fn close(&self) {
        match self {
            Db::Postgres(p) => p.close().await,
            Db::Sqlite(p) => p.close().await,
        }
    }
}

/// See [`Db::ours`].
pub fn ours(dialect: Dialect, name: &str) -> String {
    match dialect {
        Dialect::Postgres => format!("rmm_sync.{name}"),
        Dialect::Sqlite => format!("rmm_sync_{name}"),
    }
}
