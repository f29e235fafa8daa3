//! The migrations and the AlgaPSA schema check against real databases: a fresh PostgreSQL database
//! (through the admin URL in `RMM_TEST_PG_URL`) and a fresh SQLite file.

use std::collections::BTreeSet;
use std::panic::AssertUnwindSafe;
use std::str::FromStr;

use futures::FutureExt;
use rmm_shared::config::{DatabaseSettings, SchemaMode};
use rmm_shared::db::migrate::AlgapsaSchema;
use rmm_shared::db::schema_check::{self, NOT_REQUIRED, REQUIRED};
use rmm_shared::db::sql::ColType;
use rmm_shared::db::{Db, DbError};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};
use uuid::Uuid;

/// The tables (not views) the standalone migrations create in `public`.
const STANDALONE_TABLES: &[&str] = &[
    "tenants",
    "clients",
    "assets",
    "workstation_assets",
    "server_assets",
    "tenant_external_entity_mappings",
    "rmm_integrations",
    "rmm_organization_mappings",
    "rmm_alerts",
    "software_catalog",
    "asset_software",
    "asset_facts",
];

#[tokio::test]
async fn postgres_standalone_migrations_and_algapsa_check() {
    let Ok(admin_url) = std::env::var("RMM_TEST_PG_URL") else {
        if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
            panic!(
                "RMM_TEST_PG_URL is not set, but CI=true: the PostgreSQL schema test must run in CI. \
                 Set RMM_TEST_PG_URL to an admin URL, e.g. postgres://postgres@127.0.0.1:5432/postgres"
            );
        }
        eprintln!(
            "SKIPPED postgres_standalone_migrations_and_algapsa_check: RMM_TEST_PG_URL is not set \
             (e.g. postgres://postgres@127.0.0.1:5432/postgres)"
        );
        return;
    };
    let admin_opts = PgConnectOptions::from_str(&admin_url).expect("RMM_TEST_PG_URL is a PostgreSQL URL");
    let mut admin =
        admin_opts.connect().await.unwrap_or_else(|e| panic!("cannot reach PostgreSQL through RMM_TEST_PG_URL: {e}"));
    let name = format!("rmm_schema_{}", Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\""))).execute(&mut admin).await.unwrap();
    let url = admin_opts.clone().database(&name).to_url_lossy().to_string();

    let outcome = AssertUnwindSafe(postgres_body(&url)).catch_unwind().await;

    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")))
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.ok();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn postgres_body(url: &str) {
    let db = Db::connect(url, &DatabaseSettings::default()).await.unwrap();

    let first = db.migrate(SchemaMode::Standalone).await.unwrap();
    assert!(first.ours_applied >= 1, "{first:?}");
    assert!(matches!(first.algapsa, AlgapsaSchema::Created { applied } if applied >= 1), "{first:?}");
    assert!(db.migrations_current().await.unwrap());
    assert_eq!(schema_check::missing(&db).await.unwrap(), Vec::<String>::new());

    // Idempotent: a second run applies nothing.
    let second = db.migrate(SchemaMode::Standalone).await.unwrap();
    assert_eq!(second.ours_applied, 0, "{second:?}");
    assert_eq!(second.algapsa, AlgapsaSchema::Created { applied: 0 });

    // public holds exactly the AlgaPSA tables and the view; our state and both migration
    // histories live in schema rmm_sync.
    let public: Vec<(String, String)> = sqlx_pg(&db, |p| {
        sqlx::query_as(
            "SELECT table_name::text, table_type::text FROM information_schema.tables \
             WHERE table_schema = 'public' ORDER BY 1",
        )
        .fetch_all(p)
    })
    .await;
    let public_tables: BTreeSet<&str> =
        public.iter().filter(|(_, t)| t == "BASE TABLE").map(|(n, _)| n.as_str()).collect();
    assert_eq!(public_tables, STANDALONE_TABLES.iter().copied().collect::<BTreeSet<_>>());
    assert!(public.iter().any(|(n, t)| n == "v_asset_software_details" && t == "VIEW"), "{public:?}");
    let ours: Vec<String> = sqlx_pg(&db, |p| {
        sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'rmm_sync' ORDER BY 1",
        )
        .fetch_all(p)
    })
    .await;
    for table in ["_sqlx_migrations", "_standalone_migrations", "sync_runs"] {
        assert!(ours.iter().any(|t| t == table), "rmm_sync.{table} missing: {ours:?}");
    }

    // REQUIRED + NOT_REQUIRED cover the standalone tables exactly.
    let columns: Vec<(String, String)> = sqlx_pg(&db, |p| {
        sqlx::query_as(
            "SELECT c.table_name::text, c.column_name::text FROM information_schema.columns c \
             JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
             WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'",
        )
        .fetch_all(p)
    })
    .await;
    assert_lists_cover(&columns);

    check_unique_external_mapping(&db).await;
    check_updated_at_trigger(&db).await;

    // algapsa mode on a complete schema passes and migrates only our own tables.
    let algapsa = db.migrate(SchemaMode::Algapsa).await.unwrap();
    assert_eq!(algapsa.algapsa, AlgapsaSchema::Verified);

    // Take things away: the check names every gap.
    db.execute("ALTER TABLE assets DROP COLUMN agent_status", &[]).await.unwrap();
    db.execute("DROP TABLE asset_facts", &[]).await.unwrap();
    let gaps = schema_check::missing(&db).await.unwrap();
    assert_eq!(gaps, ["missing column assets.agent_status", "missing table asset_facts"]);
    let err = db.migrate(SchemaMode::Algapsa).await.unwrap_err();
    assert!(matches!(err, DbError::SchemaMismatch(_)), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("missing column assets.agent_status"), "{text}");
    assert!(text.contains("missing table asset_facts"), "{text}");

    db.close().await;
}

#[tokio::test]
async fn sqlite_standalone_migrations_and_schema_check() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("schema.db").display());
    let db = Db::connect(&url, &DatabaseSettings::default()).await.unwrap();

    let first = db.migrate(SchemaMode::Standalone).await.unwrap();
    assert!(first.ours_applied >= 1, "{first:?}");
    assert!(matches!(first.algapsa, AlgapsaSchema::Created { applied } if applied >= 1), "{first:?}");
    let second = db.migrate(SchemaMode::Standalone).await.unwrap();
    assert_eq!(second.ours_applied, 0, "{second:?}");
    assert_eq!(second.algapsa, AlgapsaSchema::Created { applied: 0 });
    assert!(db.migrations_current().await.unwrap());

    let objects: Vec<(String, String)> = match &db {
        Db::Sqlite(p) => sqlx::query_as("SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view')")
            .fetch_all(p)
            .await
            .unwrap(),
        Db::Postgres(_) => unreachable!(),
    };
    let tables: BTreeSet<&str> = objects.iter().filter(|(_, t)| t == "table").map(|(n, _)| n.as_str()).collect();
    // Everything but the AlgaPSA tables carries the rmm_sync_ prefix (SQLite has no schemas).
    let algapsa: BTreeSet<&str> = tables.iter().copied().filter(|n| !n.starts_with("rmm_sync_")).collect();
    assert_eq!(algapsa, STANDALONE_TABLES.iter().copied().collect::<BTreeSet<_>>());
    for table in ["rmm_sync_sync_runs", "rmm_sync__sqlx_migrations", "rmm_sync__standalone_migrations"] {
        assert!(tables.contains(table), "{table} missing: {tables:?}");
    }
    assert!(objects.iter().any(|(n, t)| n == "v_asset_software_details" && t == "view"), "{objects:?}");

    assert_eq!(schema_check::missing(&db).await.unwrap(), Vec::<String>::new());

    let columns: Vec<(String, String)> = match &db {
        Db::Sqlite(p) => sqlx::query_as(
            "SELECT m.name, c.name FROM sqlite_master m JOIN pragma_table_info(m.name) c \
             WHERE m.type = 'table' AND m.name NOT LIKE 'rmm\\_sync\\_%' ESCAPE '\\'",
        )
        .fetch_all(p)
        .await
        .unwrap(),
        Db::Postgres(_) => unreachable!(),
    };
    assert_lists_cover(&columns);

    check_unique_external_mapping(&db).await;
    check_updated_at_trigger(&db).await;

    // The check itself sees gaps on SQLite too.
    db.execute("DROP VIEW v_asset_software_details", &[]).await.unwrap();
    // SQLite cannot drop an indexed column.
    db.execute("DROP INDEX idx_assets_agent_status", &[]).await.unwrap();
    db.execute("ALTER TABLE assets DROP COLUMN agent_status", &[]).await.unwrap();
    assert_eq!(
        schema_check::missing(&db).await.unwrap(),
        ["missing column assets.agent_status", "missing table v_asset_software_details"]
    );
    // algapsa mode is PostgreSQL only.
    assert!(matches!(db.migrate(SchemaMode::Algapsa).await, Err(DbError::AlgapsaNeedsPostgres)));

    db.close().await;
}

/// Every column of the standalone tables is in exactly one of REQUIRED and NOT_REQUIRED, and both
/// lists name only columns that exist.
fn assert_lists_cover(columns: &[(String, String)]) {
    let created: BTreeSet<(&str, &str)> = columns.iter().map(|(t, c)| (t.as_str(), c.as_str())).collect();
    let listed: BTreeSet<(&str, &str)> =
        REQUIRED.iter().chain(NOT_REQUIRED).flat_map(|(t, cols)| cols.iter().map(move |c| (*t, *c))).collect();
    let unlisted: Vec<_> = created.difference(&listed).collect();
    assert!(unlisted.is_empty(), "columns created but neither REQUIRED nor NOT_REQUIRED: {unlisted:?}");
    let phantom: Vec<_> = listed.difference(&created).filter(|(t, _)| *t != "v_asset_software_details").collect();
    assert!(phantom.is_empty(), "listed columns the migrations do not create: {phantom:?}");
    for table in STANDALONE_TABLES {
        assert!(REQUIRED.iter().any(|(t, _)| t == table), "{table} is not checked");
    }
}

/// `idx_unique_external_mapping` treats a NULL realm as '' and rejects a second mapping of the same
/// external device; another realm is a different mapping.
async fn check_unique_external_mapping(db: &Db) {
    let d = db.dialect();
    let u = |n| d.param(n, ColType::Uuid);
    let tenant = Uuid::new_v4().to_string();
    db.execute(
        &format!("INSERT INTO tenants (tenant, client_name, email) VALUES ({}, 'MSP', 'ops@example.test')", u(1)),
        &[&tenant],
    )
    .await
    .unwrap();
    // realm: None inserts NULL, Some(r) inserts r.
    let mapping = async |realm: Option<&str>| {
        let realm_sql = match realm {
            None => "NULL".to_owned(),
            Some(_) => d.param(4, ColType::Text),
        };
        let sql = format!(
            "INSERT INTO tenant_external_entity_mappings \
             (id, tenant, integration_type, alga_entity_type, alga_entity_id, external_entity_id, external_realm_id) \
             VALUES ({}, {}, 'tacticalrmm', 'asset', {}, 'agent-1', {realm_sql})",
            u(1),
            u(2),
            d.param(3, ColType::Text),
        );
        let (id, asset) = (Uuid::new_v4().to_string(), Uuid::new_v4().to_string());
        let mut binds = vec![id.as_str(), tenant.as_str(), asset.as_str()];
        binds.extend(realm);
        db.execute(&sql, &binds).await
    };
    mapping(None).await.unwrap();
    // NULL again, and '' (the same key once COALESCEd): both collide with the first mapping.
    for realm in [None, Some("")] {
        let err = mapping(realm).await.expect_err("a second mapping of the same device and realm must be rejected");
        match &err {
            DbError::Sql(sqlx::Error::Database(e)) => {
                assert!(e.is_unique_violation(), "{err}");
                assert!(
                    e.constraint() == Some("idx_unique_external_mapping")
                        || e.message().contains("idx_unique_external_mapping"),
                    "{err}"
                );
            }
            other => panic!("expected a unique violation, got {other:?}"),
        }
    }
    mapping(Some("client-7")).await.unwrap();
    assert!(mapping(Some("client-7")).await.is_err());
}

/// `set_timestamp_rmm_integrations` bumps `updated_at` on an update that does not set it.
async fn check_updated_at_trigger(db: &Db) {
    let d = db.dialect();
    let tenant = Uuid::new_v4().to_string();
    let integration = Uuid::new_v4().to_string();
    db.execute(
        &format!(
            "INSERT INTO tenants (tenant, client_name, email) VALUES ({}, 'MSP', 'ops@example.test')",
            d.param(1, ColType::Uuid)
        ),
        &[&tenant],
    )
    .await
    .unwrap();
    db.execute(
        &format!(
            "INSERT INTO rmm_integrations (tenant, integration_id, provider, created_at, updated_at) \
             VALUES ({}, {}, 'tacticalrmm', {ts}, {ts})",
            d.param(1, ColType::Uuid),
            d.param(2, ColType::Uuid),
            ts = d.param(3, ColType::Timestamp)
        ),
        &[&tenant, &integration, "2020-01-01T00:00:00.000Z"],
    )
    .await
    .unwrap();
    let updated = db
        .execute(
            &format!(
                "UPDATE rmm_integrations SET is_active = true WHERE tenant = {} AND integration_id = {}",
                d.param(1, ColType::Uuid),
                d.param(2, ColType::Uuid)
            ),
            &[&tenant, &integration],
        )
        .await
        .unwrap();
    assert_eq!(updated, 1);
    let sql = format!(
        "SELECT {} FROM rmm_integrations WHERE tenant = {} AND integration_id = {}",
        d.text("updated_at"),
        d.param(1, ColType::Uuid),
        d.param(2, ColType::Uuid)
    );
    let rows: Vec<(String,)> = db.fetch(&sql, &[&tenant, &integration]).await.unwrap();
    assert!(!rows[0].0.starts_with("2020-"), "updated_at was not bumped: {}", rows[0].0);
}

/// Runs a query on the PostgreSQL pool of `db`.
async fn sqlx_pg<'a, T, F, Fut>(db: &'a Db, f: F) -> T
where
    F: FnOnce(&'a sqlx::PgPool) -> Fut,
    Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    match db {
        Db::Postgres(p) => f(p).await.unwrap(),
        Db::Sqlite(_) => unreachable!("a PostgreSQL store"),
    }
}
