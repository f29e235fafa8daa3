//! apalis's own tables, after apalis's own set-up, have the columns and types that our statements
//! on them (`rmm_jobs::apalis_tables`) read and write. An apalis upgrade that changes them fails
//! here.

use std::sync::Arc;
use std::time::Duration;

use rmm_jobs::apalis_tables::{Column, POSTGRES_COLUMNS, SQLITE_COLUMNS};
use rmm_jobs::{Queue, Registry};
use rmm_shared::config::{QueueBackend, Settings};
use rmm_shared::db::Dialect;
use rmm_tests::stores::{self, TestStore, rows};

/// The queue on `store`, with apalis's tables set up by apalis (twice, as every process start does).
async fn queue(store: &TestStore) -> Queue {
    let mut settings = Settings::default();
    settings.queue.backend = QueueBackend::Database;
    let queue = Queue::connect(&store.db, &settings, Arc::new(Registry::builtin())).await.unwrap();
    queue.setup().await.unwrap();
    queue.setup().await.unwrap();
    queue
}

/// Every expected column that is missing or of another type.
async fn layout_problems(store: &TestStore) -> Vec<String> {
    let (expected, sql): (&[Column], &str) = match store.dialect() {
        Dialect::Postgres => (
            POSTGRES_COLUMNS,
            "SELECT CAST(data_type AS TEXT) FROM information_schema.columns \
             WHERE table_schema || '.' || table_name = $1 AND column_name = $2",
        ),
        Dialect::Sqlite => (SQLITE_COLUMNS, "SELECT type FROM pragma_table_info(?1) WHERE name = ?2"),
    };
    let mut wrong = Vec::new();
    for c in expected {
        let found = rows(&store.db, sql, &[c.table, c.name]).await.unwrap();
        match found.first().and_then(|r| r[0].clone()) {
            Some(t) if t.eq_ignore_ascii_case(c.data_type) => {}
            Some(t) => wrong.push(format!("{}.{} is {t}, expected {}", c.table, c.name, c.data_type)),
            None => wrong.push(format!("{}.{} is missing (expected {})", c.table, c.name, c.data_type)),
        }
    }
    wrong
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apalis_tables_have_the_layout_our_statements_expect() {
    stores::each_store(|store| async move {
        let queue = queue(&store).await;
        let wrong = layout_problems(&store).await;
        assert!(wrong.is_empty(), "{}: apalis's tables changed: {wrong:#?}", store.dialect().name());

        // The statements run against them.
        queue.kill_task("01KAAAAAAAAAAAAAAAAAAAAAAA").await.unwrap();
        assert_eq!(queue.purge_finished(Duration::from_secs(3600)).await.unwrap(), 0);

        // And the check notices a change: a column of another type, a column gone.
        let change: &[&str] = match store.dialect() {
            Dialect::Postgres => &[
                "ALTER TABLE apalis.jobs ALTER COLUMN priority TYPE bigint",
                "ALTER TABLE apalis.workers RENAME COLUMN last_seen TO seen_at",
            ],
            Dialect::Sqlite => &["ALTER TABLE Workers RENAME COLUMN last_seen TO seen_at"],
        };
        for sql in change {
            store.db.execute(sql, &[]).await.unwrap();
        }
        let wrong = layout_problems(&store).await;
        assert!(wrong.iter().any(|w| w.contains("last_seen is missing")), "{wrong:?}");
        if store.dialect() == Dialect::Postgres {
            assert!(wrong.iter().any(|w| w.contains("priority is bigint")), "{wrong:?}");
        }
        store
    })
    .await;
}
