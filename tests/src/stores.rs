//! Fresh, migrated stores for tests and benchmarks: a new PostgreSQL database or a new SQLite file
//! each time, so tests never see each other's rows.
//!
//! PostgreSQL is reached through `RMM_TEST_PG_URL` (an admin URL; default
//! `postgres://postgres@127.0.0.1:5432/postgres`). Databases are named `rmm_test_<random>` and
//! dropped by [`TestStore::cleanup`]; the test script drops leftovers of crashed runs.

use std::path::PathBuf;
use std::str::FromStr;

use rmm_shared::config::{DatabaseSettings, SchemaMode};
use rmm_shared::db::sql::ColType;
use rmm_shared::db::{Db, Dialect};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};
use uuid::Uuid;

pub const DEFAULT_PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub fn pg_admin_url() -> String {
    std::env::var("RMM_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_PG_ADMIN_URL.to_owned())
}

/// A migrated store that belongs to one test.
pub struct TestStore {
    pub db: Db,
    pub url: String,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestStore {
    pub fn dialect(&self) -> Dialect {
        self.db.dialect()
    }

    /// Closes the pool and drops the database (Postgres) or the file (SQLite).
    pub async fn cleanup(self) {
        self.db.close().await;
        if let Some(name) = self.pg_name
            && let Ok(mut admin) = admin_connection().await
        {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")))
                .execute(&mut admin)
                .await;
        }
    }
}

async fn admin_connection() -> Result<sqlx::PgConnection, sqlx::Error> {
    PgConnectOptions::from_str(&pg_admin_url())?.connect().await
}

/// A new empty PostgreSQL database, not migrated.
pub async fn empty_postgres(max_connections: u32) -> anyhow::Result<(Db, String, String)> {
    let name = format!("rmm_test_{}", Uuid::new_v4().simple());
    let mut admin = admin_connection()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach PostgreSQL at {} (set RMM_TEST_PG_URL): {e}", pg_admin_url()))?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\""))).execute(&mut admin).await?;
    let url = PgConnectOptions::from_str(&pg_admin_url())?.database(&name).to_url_lossy().to_string();
    let settings = DatabaseSettings { max_connections, ..DatabaseSettings::default() };
    let db = Db::connect(&url, &settings).await?;
    Ok((db, url, name))
}

/// A fresh PostgreSQL database holding AlgaPSA's real schema (built from AlgaPSA's own migrations,
/// `tests/fixtures/algapsa-schema/schema.sql`), with rmm-sync migrated onto it in `algapsa` mode.
pub async fn algapsa_postgres() -> anyhow::Result<TestStore> {
    let (db, url, name) = empty_postgres(10).await?;
    let schema = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/algapsa-schema/schema.sql"))?;
    // On a connection of its own: the dump empties search_path for its session.
    let mut conn = PgConnectOptions::from_str(&url)?.connect().await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(schema)).execute(&mut conn).await?;
    conn.close().await?;
    db.migrate(SchemaMode::Algapsa).await?;
    Ok(TestStore { db, url, pg_name: Some(name), _dir: None })
}

/// A fresh PostgreSQL database with the standalone schema.
pub async fn postgres() -> anyhow::Result<TestStore> {
    postgres_with(10).await
}

pub async fn postgres_with(max_connections: u32) -> anyhow::Result<TestStore> {
    let (db, url, name) = empty_postgres(max_connections).await?;
    db.migrate(SchemaMode::Standalone).await?;
    Ok(TestStore { db, url, pg_name: Some(name), _dir: None })
}

/// A fresh SQLite file with the standalone schema.
pub async fn sqlite() -> anyhow::Result<TestStore> {
    let dir = tempfile::tempdir()?;
    let path: PathBuf = dir.path().join("rmm-sync-test.db");
    let url = format!("sqlite://{}", path.display());
    let db = Db::connect(&url, &DatabaseSettings::default()).await?;
    db.migrate(SchemaMode::Standalone).await?;
    Ok(TestStore { db, url, pg_name: None, _dir: Some(dir) })
}

/// Both stores, for tests that run one body against each.
pub async fn both() -> anyhow::Result<Vec<TestStore>> {
    Ok(vec![postgres().await?, sqlite().await?])
}

/// Inserts a tenant and returns its id (standalone schema).
pub async fn tenant(db: &Db) -> anyhow::Result<Uuid> {
    let id = Uuid::new_v4();
    let d = db.dialect();
    db.execute(
        &format!(
            "INSERT INTO tenants (tenant, client_name, email) VALUES ({}, 'Test MSP', 'ops@example.test')",
            d.param(1, ColType::Uuid)
        ),
        &[&id.to_string()],
    )
    .await?;
    Ok(id)
}

/// Inserts a client of `tenant` and returns its id.
pub async fn client(db: &Db, tenant: Uuid, name: &str) -> anyhow::Result<Uuid> {
    let id = Uuid::new_v4();
    let d = db.dialect();
    let u = |n| d.param(n, ColType::Uuid);
    db.execute(
        &format!(
            "INSERT INTO clients (tenant, client_id, client_name) VALUES ({}, {}, {})",
            u(1),
            u(2),
            d.param(3, ColType::Text)
        ),
        &[&tenant.to_string(), &id.to_string(), name],
    )
    .await?;
    Ok(id)
}

/// Inserts an active integration and returns its id.
pub async fn integration(db: &Db, tenant: Uuid, provider: &str) -> anyhow::Result<Uuid> {
    let id = Uuid::new_v4();
    let d = db.dialect();
    let u = |n| d.param(n, ColType::Uuid);
    db.execute(
        &format!(
            "INSERT INTO rmm_integrations (tenant, integration_id, provider, is_active) VALUES ({}, {}, {}, true)",
            u(1),
            u(2),
            d.param(3, ColType::Text)
        ),
        &[&tenant.to_string(), &id.to_string(), provider],
    )
    .await?;
    Ok(id)
}

/// Maps an external scope to a client (auto-sync on) and returns the mapping id.
pub async fn map_scope(
    db: &Db,
    tenant: Uuid,
    integration: Uuid,
    scope: &str,
    client: Option<Uuid>,
) -> anyhow::Result<Uuid> {
    let id = Uuid::new_v4();
    let d = db.dialect();
    let u = |n| d.param(n, ColType::Uuid);
    let sql = format!(
        "INSERT INTO rmm_organization_mappings (tenant, mapping_id, integration_id, external_organization_id, \
         external_organization_name, client_id) VALUES ({}, {}, {}, {}, {}, {})",
        u(1),
        u(2),
        u(3),
        d.param(4, ColType::Text),
        d.param(4, ColType::Text),
        if client.is_some() { u(5) } else { "NULL".to_owned() },
    );
    let (t, m, i) = (tenant.to_string(), id.to_string(), integration.to_string());
    let c = client.map(|c| c.to_string());
    let mut binds: Vec<&str> = vec![&t, &m, &i, scope];
    binds.extend(c.as_deref());
    db.execute(&sql, &binds).await?;
    Ok(id)
}

/// Maps each of the first `n` synced organisation mappings of `tenant` (by remote id) to a client
/// of its own, `Client <remote id>`; returns (remote id, client).
pub async fn map_each_scope(db: &Db, tenant: Uuid, n: usize) -> Vec<(String, Uuid)> {
    let d = db.dialect();
    let scopes = rows(
        db,
        &format!(
            "SELECT external_organization_id FROM rmm_organization_mappings WHERE tenant = {} ORDER BY external_organization_id",
            d.param(1, ColType::Uuid)
        ),
        &[&tenant.to_string()],
    )
    .await
    .unwrap();
    let mut mapped = Vec::new();
    for r in scopes.into_iter().take(n) {
        let scope = r[0].clone().unwrap();
        let client = client(db, tenant, &format!("Client {scope}")).await.unwrap();
        db.execute(
            &format!(
                "UPDATE rmm_organization_mappings SET client_id = {} WHERE tenant = {} AND external_organization_id = {}",
                d.param(1, ColType::Uuid),
                d.param(2, ColType::Uuid),
                d.param(3, ColType::Text)
            ),
            &[&client.to_string(), &tenant.to_string(), &scope],
        )
        .await
        .unwrap();
        mapped.push((scope, client));
    }
    mapped
}

/// Runs `body` on a fresh PostgreSQL store, then on a fresh SQLite one (one test body, two
/// stores); each store is dropped after its run.
pub async fn each_store<F, Fut>(body: F)
where
    F: Fn(TestStore) -> Fut,
    Fut: std::future::Future<Output = TestStore>,
{
    for store in both().await.expect("test stores (is PostgreSQL running? see RMM_TEST_PG_URL)") {
        body(store).await.cleanup().await;
    }
}

/// A failed run as the admin sees it: the integration's `sync_status` is `error`, its
/// `sync_error` says `message` and holds no `secret`, and no asset of the tenant was written.
pub async fn assert_failed_run(db: &Db, tenant: Uuid, provider: &str, message: &str, secret: &str, label: &str) {
    let d = db.dialect();
    let state = rows(
        db,
        &format!(
            "SELECT sync_status, sync_error FROM rmm_integrations WHERE tenant = {} AND provider = {}",
            d.param(1, ColType::Uuid),
            d.param(2, ColType::Text)
        ),
        &[&tenant.to_string(), provider],
    )
    .await
    .unwrap();
    assert_eq!(state[0][0].as_deref(), Some("error"), "{label}");
    let error = state[0][1].clone().unwrap_or_default();
    assert!(error.contains(message), "{label}: sync_error {error:?}");
    assert!(!error.contains(secret), "{label}: a secret in sync_error");
    assert_eq!(count(db, tenant, "assets WHERE true").await, 0, "{label}: no partial device writes");
}

/// Runs a query whose every column is text (use `CAST(x AS TEXT)`) and returns the rows.
pub async fn rows(db: &Db, sql: &str, binds: &[&str]) -> anyhow::Result<Vec<Vec<Option<String>>>> {
    use sqlx::Row;
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    Ok(match db {
        Db::Postgres(p) => {
            let mut q = sqlx::query(sql);
            for b in binds {
                q = q.bind(b.to_string());
            }
            q.fetch_all(p)
                .await?
                .iter()
                .map(|r| (0..r.len()).map(|i| r.try_get::<Option<String>, _>(i)).collect::<Result<Vec<_>, _>>())
                .collect::<Result<Vec<_>, _>>()?
        }
        Db::Sqlite(p) => {
            let mut q = sqlx::query(sql);
            for b in binds {
                q = q.bind(b.to_string());
            }
            q.fetch_all(p)
                .await?
                .iter()
                .map(|r| (0..r.len()).map(|i| r.try_get::<Option<String>, _>(i)).collect::<Result<Vec<_>, _>>())
                .collect::<Result<Vec<_>, _>>()?
        }
    })
}

/// One text value (first column of the first row).
pub async fn scalar(db: &Db, sql: &str, binds: &[&str]) -> anyhow::Result<Option<String>> {
    Ok(rows(db, sql, binds).await?.into_iter().next().and_then(|r| r.into_iter().next().flatten()))
}

/// `true`/`1` (Postgres/SQLite booleans read as text).
pub fn truthy(v: &Option<String>) -> bool {
    matches!(v.as_deref(), Some("true") | Some("1") | Some("t"))
}

/// `SELECT COUNT(*) FROM <from_where> AND tenant = <tenant>` (`from_where` is e.g.
/// `assets WHERE asset_type = 'server'`).
pub async fn count(db: &Db, tenant: Uuid, from_where: &str) -> i64 {
    let sql = format!(
        "SELECT CAST(COUNT(*) AS TEXT) FROM {from_where} AND tenant = {}",
        db.dialect().param(1, ColType::Uuid)
    );
    let n = scalar(db, &sql, &[&tenant.to_string()]).await.expect("count query").expect("a count");
    n.parse().expect("a number")
}
