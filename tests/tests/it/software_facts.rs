//! The software and facts writers against real stores: each test body runs on PostgreSQL and SQLite.

use chrono::{Duration, Utc};
use rmm_shared::db::Db;
use rmm_shared::db::sql::ColType;
use rmm_shared::facts::{AssetFact, upsert_facts};
use rmm_shared::ingest::IngestRun;
use rmm_shared::ingest::{AssetType, DeviceSnapshot, Lifecycle, Provider, ingest_snapshots};
use rmm_shared::software::{SoftwareItem, sync_asset_software};
use rmm_tests::stores::{self, TestStore, count, rows, scalar};
use serde_json::json;
use uuid::Uuid;

struct World {
    store: TestStore,
    tenant: Uuid,
    integration: Uuid,
    assets: Vec<Uuid>,
}

async fn world(store: TestStore, devices: usize) -> World {
    let db = &store.db;
    let tenant = stores::tenant(db).await.unwrap();
    let integration = stores::integration(db, tenant, "tacticalrmm").await.unwrap();
    let client = stores::client(db, tenant, "Client").await.unwrap();
    stores::map_scope(db, tenant, integration, "c1", Some(client)).await.unwrap();
    let snaps: Vec<DeviceSnapshot> = (0..devices)
        .map(|i| DeviceSnapshot {
            provider: Provider::TacticalRmm,
            integration_id: integration,
            external_device_id: format!("a{i}"),
            external_scope_id: "c1".into(),
            lifecycle: Lifecycle::Active,
            asset_type: AssetType::Workstation,
            display_name: format!("host{i}"),
            serial_number: None,
            status: None,
            location: None,
            asset_tag: None,
            agent_status: None,
            last_seen_at: None,
            extension: None,
            metadata: None,
        })
        .collect();
    let r = ingest_snapshots(db, tenant, &IngestRun::default(), &snaps, 100).await.unwrap();
    let assets = r.outcomes.iter().map(|o| o.asset_id.unwrap()).collect();
    World { store, tenant, integration, assets }
}

async fn each_store<F, Fut>(devices: usize, body: F)
where
    F: Fn(World) -> Fut,
    Fut: std::future::Future<Output = World>,
{
    for store in stores::both().await.expect("test stores (is PostgreSQL running? see RMM_TEST_PG_URL)") {
        let w = world(store, devices).await;
        let w = body(w).await;
        w.store.cleanup().await;
    }
}

fn item(name: &str, version: &str, publisher: Option<&str>) -> SoftwareItem {
    SoftwareItem {
        name: name.into(),
        version: Some(version.into()),
        publisher: publisher.map(str::to_owned),
        install_path: Some(format!("C:\\Program Files\\{name}")),
        ..Default::default()
    }
}

#[tokio::test]
async fn software_reruns_are_idempotent_and_track_uninstalls() {
    each_store(2, |w| async move {
        let db = &w.store.db;
        let (a, b) = (w.assets[0], w.assets[1]);
        let t0 = Utc::now();
        let batch = vec![
            (a, vec![item("Google Chrome", "120.0", Some("Google LLC")), item("7-Zip", "23.01", None)]),
            (b, vec![item("  google   chrome ", "119.0", Some("Google LLC "))]),
        ];
        let r = sync_asset_software(db, w.tenant, &batch, t0).await.unwrap();
        assert_eq!((r.items_processed, r.installed, r.uninstalled, r.catalog_created), (3, 3, 0, 2));
        assert_eq!(count(db, w.tenant, "software_catalog WHERE true").await, 2);
        assert_eq!(count(db, w.tenant, "asset_software WHERE is_current").await, 3);

        // The same input again: no new rows, nothing installed or uninstalled (AlgaPSA T082).
        let r = sync_asset_software(db, w.tenant, &batch, t0 + Duration::seconds(5)).await.unwrap();
        assert_eq!((r.installed, r.uninstalled, r.catalog_created), (0, 0, 0));
        assert_eq!(count(db, w.tenant, "software_catalog WHERE true").await, 2);
        assert_eq!(count(db, w.tenant, "asset_software WHERE true").await, 3);

        // 7-Zip is gone from asset a; an empty version keeps the old one.
        let mut chrome = item("Google Chrome", "", Some("Google LLC"));
        chrome.install_path = None;
        let r = sync_asset_software(db, w.tenant, &[(a, vec![chrome])], t0 + Duration::seconds(10)).await.unwrap();
        assert_eq!((r.installed, r.uninstalled), (0, 1));
        let gone = rows(
            db,
            &format!(
                "SELECT CAST(s.is_current AS TEXT), CAST(s.uninstalled_at IS NOT NULL AS TEXT) FROM asset_software s \
                 JOIN software_catalog c ON c.tenant = s.tenant AND c.software_id = s.software_id \
                 WHERE s.tenant = {} AND c.normalized_name = '7-zip'",
                db.dialect().param(1, ColType::Uuid)
            ),
            &[&w.tenant.to_string()],
        )
        .await
        .unwrap();
        assert!(matches!(gone[0][0].as_deref(), Some("false") | Some("0")));
        assert!(matches!(gone[0][1].as_deref(), Some("true") | Some("1")));
        let kept = rows(
            db,
            &format!(
                "SELECT s.version, s.install_path FROM asset_software s JOIN software_catalog c \
                 ON c.tenant = s.tenant AND c.software_id = s.software_id \
                 WHERE s.tenant = {} AND c.normalized_name = 'google chrome' AND s.asset_id = {}",
                db.dialect().param(1, ColType::Uuid),
                db.dialect().param(2, ColType::Uuid)
            ),
            &[&w.tenant.to_string(), &a.to_string()],
        )
        .await
        .unwrap();
        assert_eq!(kept[0][0].as_deref(), Some("120.0"));
        assert!(kept[0][1].as_deref().unwrap().contains("Google Chrome"));

        // Reinstalled: back to current, counted as installed.
        let r = sync_asset_software(db, w.tenant, &[(a, vec![item("7-Zip", "24.0", None)])], t0 + Duration::seconds(20))
            .await
            .unwrap();
        assert_eq!((r.installed, r.uninstalled), (1, 1));
        assert_eq!(count(db, w.tenant, "asset_software WHERE is_current").await, 2);
        // Two versions of one product on one asset collapse into one row; the last wins.
        let r = sync_asset_software(
            db,
            w.tenant,
            &[(b, vec![item("Tool", "1.0", None), item("tool", "2.0", None)])],
            t0 + Duration::seconds(30),
        )
        .await
        .unwrap();
        assert_eq!(r.installed, 1);
        let v = scalar(
            db,
            &format!(
                "SELECT s.version FROM asset_software s JOIN software_catalog c ON c.tenant = s.tenant AND c.software_id = s.software_id \
                 WHERE s.tenant = {} AND c.normalized_name = 'tool'",
                db.dialect().param(1, ColType::Uuid)
            ),
            &[&w.tenant.to_string()],
        )
        .await
        .unwrap();
        assert_eq!(v.as_deref(), Some("2.0"));
        // AlgaPSA's view sees the rows.
        assert!(count(db, w.tenant, "v_asset_software_details WHERE is_current").await >= 2);
        w
    })
    .await;
}

#[tokio::test]
async fn concurrent_software_syncs_create_one_catalog_row_per_product_even_without_publisher() {
    each_store(8, |w| async move {
        let db = w.store.db.clone();
        let mut tasks = Vec::new();
        for (i, asset) in w.assets.iter().enumerate() {
            let (db, tenant, asset) = (db.clone(), w.tenant, *asset);
            tasks.push(tokio::spawn(async move {
                let items =
                    vec![item("NoPublisher App", &format!("1.{i}"), None), item("Shared App", "1", Some("Acme"))];
                sync_asset_software(&db, tenant, &[(asset, items)], Utc::now()).await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(count(&db, w.tenant, "software_catalog WHERE publisher IS NULL").await, 1);
        assert_eq!(count(&db, w.tenant, "software_catalog WHERE true").await, 2);
        assert_eq!(count(&db, w.tenant, "asset_software WHERE is_current").await, 16);
        w
    })
    .await;
}

#[tokio::test]
async fn facts_upsert_on_their_key_and_clear_values_when_unavailable() {
    each_store(1, |w| async move {
        let db = &w.store.db;
        let fact = |value: Option<&str>, available: bool| AssetFact {
            asset_id: w.assets[0],
            source_type: "integration".into(),
            provider: Some("tanium".into()),
            integration_id: Some(w.integration),
            namespace: "tanium".into(),
            fact_key: "criticality".into(),
            label: "Tanium Criticality".into(),
            value_text: value.map(str::to_owned),
            value_number: Some(3.0),
            value_bool: None,
            value_json: json!({"level": value}),
            source: "tanium.gateway.sensor.Endpoint Criticality with Level".into(),
            source_updated_at: None,
            last_synced_at: None,
            is_available: available,
        };
        upsert_facts(db, w.tenant, &[fact(Some("High"), true)], Utc::now()).await.unwrap();
        upsert_facts(db, w.tenant, &[fact(Some("Critical"), true)], Utc::now()).await.unwrap();
        assert_eq!(count(db, w.tenant, "asset_facts WHERE true").await, 1);
        let read = |db: Db, tenant: Uuid| async move {
            rows(
                &db,
                &format!(
                    "SELECT value_text, CAST(value_number AS TEXT), CAST(is_available AS TEXT) FROM asset_facts WHERE tenant = {}",
                    db.dialect().param(1, ColType::Uuid)
                ),
                &[&tenant.to_string()],
            )
            .await
            .unwrap()
            .remove(0)
        };
        let r = read(db.clone(), w.tenant).await;
        assert_eq!(r[0].as_deref(), Some("Critical"));
        assert_eq!(r[1].as_deref().map(|n| n.parse::<f64>().unwrap()), Some(3.0));
        upsert_facts(db, w.tenant, &[fact(Some("ignored"), false)], Utc::now()).await.unwrap();
        let r = read(db.clone(), w.tenant).await;
        assert_eq!((r[0].as_deref(), r[1].as_deref()), (None, None));
        assert!(matches!(r[2].as_deref(), Some("false") | Some("0")));
        w
    })
    .await;
}
