//! The shared ingestion pipeline against real stores: each test body runs on PostgreSQL and SQLite.

use chrono::{DateTime, Utc};
use rmm_shared::db::Db;
use rmm_shared::ingest::IngestRun;
use rmm_shared::ingest::{
    AssetType, DeviceSnapshot, ExtensionSnapshot, IngestAction, Item, Lifecycle, Provider, ingest_page,
    ingest_snapshots,
};
use rmm_tests::stores::{self, TestStore, rows, scalar, truthy};
use serde_json::{Value, json};
use uuid::Uuid;

struct Fixture {
    store: TestStore,
    tenant: Uuid,
    integration: Uuid,
    client_a: Uuid,
    client_b: Uuid,
}

impl Fixture {
    fn db(&self) -> &Db {
        &self.store.db
    }

    fn p(&self, n: usize) -> String {
        self.db().dialect().param(n, rmm_shared::db::sql::ColType::Uuid)
    }
}

/// A tenant with one Tactical integration, scope `c1` mapped to client A, `c2` to client B and
/// `c3` unmapped.
async fn fixture(store: TestStore) -> Fixture {
    let db = &store.db;
    let tenant = stores::tenant(db).await.unwrap();
    let integration = stores::integration(db, tenant, "tacticalrmm").await.unwrap();
    let client_a = stores::client(db, tenant, "Client A").await.unwrap();
    let client_b = stores::client(db, tenant, "Client B").await.unwrap();
    stores::map_scope(db, tenant, integration, "c1", Some(client_a)).await.unwrap();
    stores::map_scope(db, tenant, integration, "c2", Some(client_b)).await.unwrap();
    stores::map_scope(db, tenant, integration, "c3", None).await.unwrap();
    Fixture { store, tenant, integration, client_a, client_b }
}

async fn each_store<F, Fut>(body: F)
where
    F: Fn(Fixture) -> Fut,
    Fut: std::future::Future<Output = Fixture>,
{
    for store in stores::both().await.expect("test stores (is PostgreSQL running? see RMM_TEST_PG_URL)") {
        let dialect = store.dialect();
        let f = fixture(store).await;
        eprintln!("-- on {}", dialect.name());
        let f = body(f).await;
        f.store.cleanup().await;
    }
}

fn snap(f: &Fixture, device: &str, scope: &str) -> DeviceSnapshot {
    DeviceSnapshot {
        provider: Provider::TacticalRmm,
        integration_id: f.integration,
        external_device_id: device.into(),
        external_scope_id: scope.into(),
        lifecycle: Lifecycle::Active,
        asset_type: AssetType::Workstation,
        display_name: format!("host-{device}"),
        serial_number: Some(format!("SN-{device}")),
        status: None,
        location: Some("HQ".into()),
        asset_tag: None,
        agent_status: None,
        last_seen_at: Some(DateTime::parse_from_rfc3339("2026-11-01T09:00:00Z").unwrap().with_timezone(&Utc)),
        extension: Some(ExtensionSnapshot {
            os_type: Some("Windows".into()),
            os_version: Some("11 Pro".into()),
            current_user: Some("alice".into()),
            lan_ip: Some("10.0.0.5".into()),
            ram_gb: Some(Some(15.6)),
            cpu_model: Some(Some("Xeon".into())),
            ..Default::default()
        }),
        metadata: Some(json!({"site_id": 1, "raw": {"agent_id": device}})),
    }
}

async fn ingest(f: &Fixture, snaps: &[DeviceSnapshot]) -> rmm_shared::ingest::IngestReport {
    ingest_snapshots(f.db(), f.tenant, &IngestRun::default(), snaps, 500).await.expect("ingest")
}

async fn count(f: &Fixture, table: &str) -> i64 {
    let sql = format!("SELECT CAST(COUNT(*) AS TEXT) FROM {table} WHERE tenant = {}", f.p(1));
    scalar(f.db(), &sql, &[&f.tenant.to_string()]).await.unwrap().unwrap().parse().unwrap()
}

/// Asset ids with no mapping, and mappings whose asset does not exist.
async fn orphans(f: &Fixture) -> (i64, i64) {
    let t = f.tenant.to_string();
    let a = scalar(
        f.db(),
        &format!(
            "SELECT CAST(COUNT(*) AS TEXT) FROM assets a WHERE a.tenant = {p} AND a.rmm_provider IS NOT NULL AND NOT EXISTS \
             (SELECT 1 FROM tenant_external_entity_mappings m WHERE m.tenant = a.tenant AND m.alga_entity_id = CAST(a.asset_id AS TEXT))",
            p = f.p(1)
        ),
        &[&t],
    )
    .await
    .unwrap()
    .unwrap();
    let m = scalar(
        f.db(),
        &format!(
            "SELECT CAST(COUNT(*) AS TEXT) FROM tenant_external_entity_mappings m WHERE m.tenant = {p} AND NOT EXISTS \
             (SELECT 1 FROM assets a WHERE a.tenant = m.tenant AND CAST(a.asset_id AS TEXT) = m.alga_entity_id)",
            p = f.p(1)
        ),
        &[&t],
    )
    .await
    .unwrap()
    .unwrap();
    (a.parse().unwrap(), m.parse().unwrap())
}

#[tokio::test]
async fn create_update_and_tombstone_write_algapsa_rows() {
    each_store(|f| async move {
        let r = ingest(&f, &[snap(&f, "a1", "c1"), snap(&f, "a2", "c3")]).await;
        assert_eq!((r.counts.processed, r.counts.created, r.counts.skipped, r.counts.failed), (2, 1, 1, 0));
        assert_eq!(r.outcomes[1].error.as_deref(), Some("No mapped client for external scope c3"));
        let asset_id = r.outcomes[0].asset_id.unwrap().to_string();

        let row = &rows(
            f.db(),
            &format!(
                "SELECT CAST(client_id AS TEXT), asset_tag, name, serial_number, status, location, rmm_provider, rmm_device_id, \
                 rmm_organization_id, agent_status, asset_type, CAST(last_seen_at IS NOT NULL AS TEXT), \
                 CAST(last_rmm_sync_at IS NOT NULL AS TEXT) FROM assets WHERE tenant = {} AND asset_id = {}",
                f.p(1),
                f.p(2)
            ),
            &[&f.tenant.to_string(), &asset_id],
        )
        .await
        .unwrap()[0];
        let v: Vec<&str> = row.iter().map(|c| c.as_deref().unwrap_or("NULL")).collect();
        assert_eq!(v[0], f.client_a.to_string());
        assert_eq!(&v[1..11], ["tacticalrmm:a1", "host-a1", "SN-a1", "active", "HQ", "tacticalrmm", "a1", "c1", "online", "workstation"]);
        assert!(truthy(&row[11]) && truthy(&row[12]));

        let ext = &rows(
            f.db(),
            &format!(
                "SELECT os_type, os_version, \"current_user\", lan_ip, CAST(ram_gb AS TEXT), cpu_model, CAST(system_info AS TEXT), \
                 CAST(disk_usage AS TEXT), CAST(installed_software AS TEXT) FROM workstation_assets WHERE tenant = {} AND asset_id = {}",
                f.p(1),
                f.p(2)
            ),
            &[&f.tenant.to_string(), &asset_id],
        )
        .await
        .unwrap()[0];
        assert_eq!(ext[0].as_deref(), Some("Windows"));
        assert_eq!(ext[2].as_deref(), Some("alice"));
        assert_eq!(ext[4].as_deref(), Some("16"), "ram_gb is rounded to an integer");
        assert_eq!(ext[5].as_deref(), Some("Xeon"));
        assert_eq!(ext[6], None, "system_info absent is NULL, not the column default");
        assert_eq!(serde_json::from_str::<Value>(ext[7].as_deref().unwrap()).unwrap(), json!([]), "disk_usage keeps its default");

        let map = &rows(
            f.db(),
            &format!(
                "SELECT integration_type, alga_entity_type, external_entity_id, external_realm_id, sync_status, CAST(metadata AS TEXT), \
                 CAST(last_synced_at IS NOT NULL AS TEXT) FROM tenant_external_entity_mappings WHERE tenant = {} AND alga_entity_id = {}",
                f.p(1),
                rmm_shared::db::Dialect::param(f.db().dialect(), 2, rmm_shared::db::sql::ColType::Text)
            ),
            &[&f.tenant.to_string(), &asset_id],
        )
        .await
        .unwrap();
        assert_eq!(map.len(), 1);
        let m = &map[0];
        assert_eq!(
            m[..5].iter().map(|c| c.as_deref().unwrap()).collect::<Vec<_>>(),
            ["tacticalrmm", "asset", "a1", "c1", "synced"]
        );
        assert_eq!(serde_json::from_str::<Value>(m[5].as_deref().unwrap()).unwrap(), json!({"site_id": 1, "raw": {"agent_id": "a1"}}));
        assert!(truthy(&m[6]));

        // Update: reclassified, renamed; absent present-only fields are left alone, always-written
        // ones are nulled; a present null writes NULL; a null software list writes [].
        let mut s = snap(&f, "a1", "c1");
        s.asset_type = AssetType::Server;
        s.display_name = "renamed".into();
        s.serial_number = None;
        s.extension = Some(ExtensionSnapshot { os_type: Some("Windows Server".into()), installed_software: Some(None), ..Default::default() });
        let r = ingest(&f, &[s.clone()]).await;
        assert_eq!((r.counts.updated, r.counts.created), (1, 0));
        assert_eq!(r.outcomes[0].asset_id.unwrap().to_string(), asset_id);
        let a = &rows(
            f.db(),
            &format!("SELECT asset_type, name, serial_number, asset_tag FROM assets WHERE tenant = {} AND asset_id = {}", f.p(1), f.p(2)),
            &[&f.tenant.to_string(), &asset_id],
        )
        .await
        .unwrap()[0];
        assert_eq!(a.iter().map(|c| c.as_deref().unwrap()).collect::<Vec<_>>(), ["server", "renamed", "", "tacticalrmm:a1"]);
        let srv = &rows(
            f.db(),
            &format!(
                "SELECT os_type, \"current_user\", CAST(ram_gb AS TEXT), cpu_model, CAST(installed_software AS TEXT) FROM server_assets \
                 WHERE tenant = {} AND asset_id = {}",
                f.p(1),
                f.p(2)
            ),
            &[&f.tenant.to_string(), &asset_id],
        )
        .await
        .unwrap()[0];
        assert_eq!(srv[0].as_deref(), Some("Windows Server"));
        assert_eq!((srv[1].as_deref(), srv[2].as_deref(), srv[3].as_deref()), (None, None, None));
        assert_eq!(serde_json::from_str::<Value>(srv[4].as_deref().unwrap()).unwrap(), json!([]));
        // The old workstation row stays (AlgaPSA leaves it as an orphan).
        assert_eq!(count(&f, "workstation_assets").await, 1);

        // Present-only fields: ram present again, then cpu_model present as null.
        s.extension = Some(ExtensionSnapshot { ram_gb: Some(Some(31.5)), cpu_model: Some(Some("EPYC".into())), ..Default::default() });
        ingest(&f, &[s.clone()]).await;
        s.extension = Some(ExtensionSnapshot { cpu_model: Some(None), ..Default::default() });
        ingest(&f, &[s.clone()]).await;
        let srv = &rows(
            f.db(),
            &format!("SELECT CAST(ram_gb AS TEXT), cpu_model FROM server_assets WHERE tenant = {} AND asset_id = {}", f.p(1), f.p(2)),
            &[&f.tenant.to_string(), &asset_id],
        )
        .await
        .unwrap()[0];
        assert_eq!((srv[0].as_deref(), srv[1].as_deref()), (Some("32"), None));

        // Tombstone.
        s.lifecycle = Lifecycle::Deleted;
        let r = ingest(&f, &[s]).await;
        assert_eq!((r.counts.processed, r.counts.deleted), (1, 1));
        let a = &rows(
            f.db(),
            &format!("SELECT status, agent_status FROM assets WHERE tenant = {} AND asset_id = {}", f.p(1), f.p(2)),
            &[&f.tenant.to_string(), &asset_id],
        )
        .await
        .unwrap()[0];
        assert_eq!((a[0].as_deref(), a[1].as_deref()), (Some("inactive"), Some("offline")));
        let m = &rows(
            f.db(),
            &format!(
                "SELECT sync_status, CAST(metadata AS TEXT) FROM tenant_external_entity_mappings WHERE tenant = {} AND external_entity_id = 'a1'",
                f.p(1)
            ),
            &[&f.tenant.to_string()],
        )
        .await
        .unwrap()[0];
        assert_eq!(m[0].as_deref(), Some("error"));
        let meta: Value = serde_json::from_str(m[1].as_deref().unwrap()).unwrap();
        assert_eq!(meta["deleted"], json!(true));
        assert!(meta["deletedAt"].as_str().unwrap().ends_with('Z'));
        assert_eq!(count(&f, "assets").await, 1, "assets are never deleted");

        // Deleting an unknown device writes nothing.
        let mut gone = snap(&f, "zz", "c1");
        gone.lifecycle = Lifecycle::Tombstoned;
        let r = ingest(&f, &[gone]).await;
        assert_eq!(r.outcomes[0].action, IngestAction::Skipped);
        assert_eq!(r.outcomes[0].error.as_deref(), Some("No existing mapping to mark as deleted"));
        f
    })
    .await;
}

#[tokio::test]
async fn a_device_that_changes_scope_keeps_its_asset_and_mapping() {
    each_store(|f| async move {
        let first = ingest(&f, &[snap(&f, "a1", "c1")]).await;
        let asset = first.outcomes[0].asset_id.unwrap();
        let moved = ingest(&f, &[snap(&f, "a1", "c2")]).await;
        assert_eq!(moved.outcomes[0].action, IngestAction::Updated);
        assert_eq!(moved.outcomes[0].asset_id, Some(asset));
        // Moved to an unmapped scope: still the same asset, client unchanged.
        let unmapped = ingest(&f, &[snap(&f, "a1", "c3")]).await;
        assert_eq!(unmapped.outcomes[0].asset_id, Some(asset));
        assert_eq!(count(&f, "assets").await, 1);
        assert_eq!(count(&f, "tenant_external_entity_mappings").await, 1);
        let r = &rows(
            f.db(),
            &format!(
                "SELECT CAST(a.client_id AS TEXT), a.rmm_organization_id, m.external_realm_id FROM assets a \
                 JOIN tenant_external_entity_mappings m ON m.tenant = a.tenant AND m.alga_entity_id = CAST(a.asset_id AS TEXT) \
                 WHERE a.tenant = {}",
                f.p(1)
            ),
            &[&f.tenant.to_string()],
        )
        .await
        .unwrap()[0];
        assert_eq!(r[0].as_deref(), Some(f.client_b.to_string().as_str()), "moved to client B with scope c2, kept on c3");
        assert_eq!((r[1].as_deref(), r[2].as_deref()), (Some("c3"), Some("c3")));
        f
    })
    .await;
}

#[tokio::test]
async fn concurrent_ingests_of_the_same_new_devices_create_each_once() {
    each_store(|f| async move {
        let snaps: Vec<DeviceSnapshot> = (0..40).map(|i| snap(&f, &format!("dev-{i}"), "c1")).collect();
        for round in 0..3 {
            let mut reversed = snaps.clone();
            reversed.reverse();
            let run = IngestRun::default();
            let (a, b) = tokio::join!(
                ingest_snapshots(f.db(), f.tenant, &run, &snaps, 7),
                ingest_snapshots(f.db(), f.tenant, &run, &reversed, 5)
            );
            let (a, b) = (a.unwrap(), b.unwrap());
            assert_eq!(
                a.counts.failed + b.counts.failed,
                0,
                "round {round}: {:?}",
                a.errors().chain(b.errors()).collect::<Vec<_>>()
            );
            if round == 0 {
                assert_eq!(a.counts.created + b.counts.created, 40);
                assert_eq!(a.counts.updated + b.counts.updated, 40);
            }
            assert_eq!(count(&f, "assets").await, 40);
            assert_eq!(count(&f, "tenant_external_entity_mappings").await, 40);
            assert_eq!(count(&f, "workstation_assets").await, 40);
        }
        f
    })
    .await;
}

async fn create_failing_trigger(db: &Db) {
    let statements: &[&str] = match db.dialect() {
        rmm_shared::db::Dialect::Postgres => &[
            "CREATE FUNCTION fail_boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             IF NEW.external_entity_id = 'boom' THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $$",
            "CREATE TRIGGER fail_boom BEFORE INSERT ON tenant_external_entity_mappings FOR EACH ROW EXECUTE FUNCTION fail_boom()",
        ],
        rmm_shared::db::Dialect::Sqlite => {
            &["CREATE TRIGGER fail_boom BEFORE INSERT ON tenant_external_entity_mappings \
             WHEN NEW.external_entity_id = 'boom' BEGIN SELECT RAISE(ABORT, 'injected failure'); END"]
        }
    };
    for s in statements {
        db.execute(s, &[]).await.unwrap();
    }
}

#[tokio::test]
async fn a_failure_in_the_middle_of_a_page_leaves_no_half_written_device() {
    each_store(|f| async move {
        ingest(&f, &[snap(&f, "old", "c1")]).await;
        create_failing_trigger(f.db()).await;
        // The mapping insert is the page's last statement: by then the page's assets and extension
        // rows are written, and all of it must roll back.
        let page = [snap(&f, "n1", "c1"), snap(&f, "boom", "c1"), snap(&f, "old", "c2"), snap(&f, "n2", "c2")];
        let items: Vec<Item<'_>> = page.iter().map(|s| Item { snapshot: s, client_id: None }).collect();
        let r = ingest_page(f.db(), f.tenant, &IngestRun::default(), &items, Utc::now()).await.unwrap();
        assert_eq!((r.counts.processed, r.counts.created, r.counts.updated, r.counts.failed), (4, 2, 1, 1));
        assert_eq!(r.outcomes[1].action, IngestAction::Failed);
        assert!(r.outcomes[1].error.as_deref().unwrap().contains("injected failure"), "{:?}", r.outcomes[1]);
        assert_eq!(orphans(&f).await, (0, 0));
        assert_eq!(count(&f, "assets").await, 3);
        assert_eq!(count(&f, "workstation_assets").await, 3);
        f
    })
    .await;
}

#[tokio::test]
async fn a_mapping_whose_asset_was_deleted_is_repointed() {
    each_store(|f| async move {
        let first = ingest(&f, &[snap(&f, "a1", "c1")]).await;
        let old = first.outcomes[0].asset_id.unwrap();
        f.db()
            .execute(
                &format!("DELETE FROM assets WHERE tenant = {} AND asset_id = {}", f.p(1), f.p(2)),
                &[&f.tenant.to_string(), &old.to_string()],
            )
            .await
            .unwrap();
        let again = ingest(&f, &[snap(&f, "a1", "c1")]).await;
        assert_eq!(again.outcomes[0].action, IngestAction::Created, "{:?}", again.outcomes);
        assert_ne!(again.outcomes[0].asset_id, Some(old));
        assert_eq!(count(&f, "tenant_external_entity_mappings").await, 1);
        assert_eq!(orphans(&f).await, (0, 0));
        f
    })
    .await;
}

async fn patches(f: &Fixture) -> Vec<Option<String>> {
    let sql = format!(
        "SELECT CAST(pending_patches AS TEXT), CAST(pending_os_patches AS TEXT), CAST(failed_patches AS TEXT), os_type \
         FROM workstation_assets WHERE tenant = {}",
        f.p(1)
    );
    rows(f.db(), &sql, &[&f.tenant.to_string()]).await.unwrap().remove(0)
}

#[tokio::test]
async fn patch_columns_are_written_unless_the_snapshot_leaves_them_untouched() {
    each_store(|f| async move {
        let mut s = snap(&f, "p1", "c1");
        s.extension = Some(ExtensionSnapshot {
            os_type: Some("Windows".into()),
            pending_patches: Some(4),
            pending_os_patches: Some(3),
            failed_patches: Some(1),
            ..Default::default()
        });
        ingest(&f, &[s.clone()]).await;
        assert_eq!(patches(&f).await, [Some("4".into()), Some("3".into()), Some("1".into()), Some("Windows".into())]);

        // A provider that counts patches elsewhere: the counts stay, the other columns are written.
        s.extension = Some(ExtensionSnapshot {
            os_type: Some("Windows 11".into()),
            patches_untouched: true,
            ..Default::default()
        });
        let r = ingest(&f, &[s.clone()]).await;
        assert_eq!(r.counts.updated, 1, "{:?}", r.outcomes);
        assert_eq!(
            patches(&f).await,
            [Some("4".into()), Some("3".into()), Some("1".into()), Some("Windows 11".into())]
        );

        // In one page, a later snapshot that leaves them untouched keeps the earlier one's counts.
        let mut later = s.clone();
        s.extension = Some(ExtensionSnapshot { pending_patches: Some(9), ..Default::default() });
        later.extension = Some(ExtensionSnapshot {
            os_type: Some("Windows 10".into()),
            patches_untouched: true,
            ..Default::default()
        });
        ingest(&f, &[s.clone(), later]).await;
        assert_eq!(patches(&f).await, [Some("9".into()), None, None, Some("Windows 10".into())]);

        // By default (AlgaPSA's pipeline) absent counts are written as NULL.
        s.extension = Some(ExtensionSnapshot { os_type: Some("Windows".into()), ..Default::default() });
        ingest(&f, &[s]).await;
        assert_eq!(patches(&f).await, [None, None, None, Some("Windows".into())]);
        f
    })
    .await;
}

#[tokio::test]
async fn long_strings_are_cut_not_failed() {
    each_store(|f| async move {
        let mut s = snap(&f, "a1", "c1");
        s.extension = Some(ExtensionSnapshot {
            os_type: Some("x".repeat(1000)),
            lan_ip: Some("1".repeat(100)),
            antivirus_status: Some("s".repeat(100)),
            current_user: Some("u".repeat(400)),
            ..Default::default()
        });
        let r = ingest(&f, &[s]).await;
        assert_eq!(r.counts.created, 1, "{:?}", r.outcomes);
        let e = &rows(
            f.db(),
            &format!(
                "SELECT os_type, lan_ip, antivirus_status, \"current_user\" FROM workstation_assets WHERE tenant = {}",
                f.p(1)
            ),
            &[&f.tenant.to_string()],
        )
        .await
        .unwrap()[0];
        let lens: Vec<usize> = e.iter().map(|c| c.as_deref().unwrap().chars().count()).collect();
        assert_eq!(lens, [255, 45, 50, 255]);
        f
    })
    .await;
}

/// `(rmm_device_id, asset_id, serial_number)` of every asset of the tenant.
async fn assets_by_device(f: &Fixture) -> Vec<Vec<Option<String>>> {
    let sql = format!(
        "SELECT rmm_device_id, CAST(asset_id AS TEXT), serial_number FROM assets WHERE tenant = {} ORDER BY rmm_device_id",
        f.p(1)
    );
    rows(f.db(), &sql, &[&f.tenant.to_string()]).await.unwrap()
}

/// The asset id and serial of a device in [`assets_by_device`]'s rows.
fn serial_of(rows: &[Vec<Option<String>>], device: &str) -> Option<(String, Option<String>)> {
    rows.iter().find(|r| r[0].as_deref() == Some(device)).map(|r| (r[1].clone().unwrap(), r[2].clone()))
}

/// White-box PCs: a placeholder serial is stored as reported, never merges two devices (not even
/// when their mappings are gone), and is counted in the run; devices of every provider alike.
#[tokio::test]
async fn placeholder_serials_are_stored_counted_and_never_merge_devices() {
    each_store(|f| async move {
        let device = |provider: Provider, id: &str, serial: Option<&str>| {
            let mut s = snap(&f, id, "c1");
            s.provider = provider;
            s.serial_number = serial.map(str::to_owned);
            s
        };
        let page = vec![
            device(Provider::TacticalRmm, "wb1", Some("To Be Filled By O.E.M.")),
            device(Provider::TacticalRmm, "wb2", Some("To Be Filled By O.E.M.")),
            device(Provider::NinjaOne, "wb3", Some("System Serial Number")),
            device(Provider::LevelIo, "wb4", Some("0")),
            device(Provider::Tanium, "wb5", Some("Default string")),
            device(Provider::TacticalRmm, "real", Some("5CG1234XYZ")),
            device(Provider::TacticalRmm, "bare", None),
        ];
        let r = ingest(&f, &page).await;
        assert_eq!((r.counts.created, r.counts.failed, r.counts.placeholder_serials), (7, 0, 5), "{:?}", r.outcomes);
        let first = assets_by_device(&f).await;
        assert_eq!(first.len(), 7, "seven devices, seven assets");
        let (wb1, s1) = serial_of(&first, "wb1").unwrap();
        let (wb2, s2) = serial_of(&first, "wb2").unwrap();
        assert_ne!(wb1, wb2, "the two white-box PCs are two assets");
        assert_eq!((s1.as_deref(), s2.as_deref()), (Some("To Be Filled By O.E.M."), Some("To Be Filled By O.E.M.")));
        assert_eq!(serial_of(&first, "wb4").unwrap().1.as_deref(), Some("0"), "stored as reported");
        assert_eq!(serial_of(&first, "bare").unwrap().1.as_deref(), Some(""), "no serial is '' as AlgaPSA writes it");

        // The mappings of the white-box PCs are lost: each still finds its own asset.
        let sql = format!(
            "DELETE FROM tenant_external_entity_mappings WHERE tenant = {} AND external_entity_id IN ('wb1', 'wb2')",
            f.p(1)
        );
        f.db().execute(&sql, &[&f.tenant.to_string()]).await.unwrap();
        let r = ingest(&f, &page).await;
        assert_eq!((r.counts.created, r.counts.updated, r.counts.placeholder_serials), (0, 7, 5), "{:?}", r.outcomes);
        assert_eq!(assets_by_device(&f).await, first, "every device kept its asset, the real serial's too");
        assert_eq!(count(&f, "tenant_external_entity_mappings").await, 7);
        assert_eq!(orphans(&f).await, (0, 0));

        // The run summary counts them.
        let run = rmm_shared::runs::Run::start(
            f.db(),
            f.tenant,
            f.integration,
            "tacticalrmm",
            "sync-devices",
            rmm_shared::runs::RunKind::Full,
            "admin",
        )
        .await
        .unwrap();
        let outcome = rmm_shared::runs::RunOutcome { counts: r.counts, ..Default::default() };
        run.finish(f.db(), &outcome).await.unwrap();
        let runs = f.db().ours("sync_runs");
        let summary = &rows(
            f.db(),
            &format!(
                "SELECT CAST(items_updated AS TEXT), CAST(items_placeholder_serials AS TEXT), status FROM {runs} \
                 WHERE tenant = {} AND run_id = {}",
                f.p(1),
                f.p(2)
            ),
            &[&f.tenant.to_string(), &run.run_id.to_string()],
        )
        .await
        .unwrap()[0];
        assert_eq!(summary.iter().map(|c| c.as_deref().unwrap()).collect::<Vec<_>>(), ["7", "5", "completed"]);
        f
    })
    .await;
}
