//! Dry runs and the per-asset history, on PostgreSQL and SQLite.
//!
//! The pipeline records each planned change of an asset (created, tracked fields from → to, moved
//! to another client, tombstoned) in `rmm_sync.asset_history` with its run, and nothing for a
//! resync that only refreshes volatile values. A dry run (`?dry_run=true` on the job route,
//! `rmm-sync sync … --dry-run`) plans the same pages in read-only transactions and reports per
//! organisation what it would do, writing nothing. The history is read at
//! `GET …/assets/{asset_id}/history` and on the status page, and pruned with the sync runs.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Method;
use rmm_ingress::auth::{KeyScope, create_key};
use rmm_jobs::{JobStatus, JobView, Runtime};
use rmm_shared::config::QueueBackend;
use rmm_shared::db::Db;
use rmm_shared::db::sql::ColType;
use rmm_shared::history::{self, HistoryQuery};
use rmm_shared::ingest::changes::ChangeAction;
use rmm_shared::ingest::{
    AssetType, DeviceSnapshot, ExtensionSnapshot, IngestRun, Lifecycle, Provider, ingest_snapshots,
};
use rmm_tests::runtime::{
    Ingress, Workers, fast_settings, mapped_tactical_tenant, rmm_sync_process, runtime, wait_finished,
};
use rmm_tests::sim::tactical::{FleetSpec, SimConfig, TacticalSim};
use rmm_tests::stores::{self, count, scalar};
use serde_json::{Value, json};
use uuid::Uuid;

const BOOTSTRAP: &str = "dry-run-history-bootstrap-0123456789";

fn history_rows(db: &Db) -> String {
    format!("{} WHERE 1 = 1", db.ours("asset_history"))
}

fn snap(integration: Uuid, device: &str, scope: &str) -> DeviceSnapshot {
    DeviceSnapshot {
        provider: Provider::TacticalRmm,
        integration_id: integration,
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
            cpu_cores: Some(Some(8.0)),
            cpu_model: Some(Some("Xeon".into())),
            ..Default::default()
        }),
        metadata: Some(json!({"raw": {"agent_id": device}})),
    }
}

async fn asset_of_device(db: &Db, tenant: Uuid, device: &str) -> Uuid {
    let d = db.dialect();
    scalar(
        db,
        &format!(
            "SELECT CAST(alga_entity_id AS TEXT) FROM tenant_external_entity_mappings WHERE tenant = {} \
             AND alga_entity_type = 'asset' AND external_entity_id = {}",
            d.param(1, ColType::Uuid),
            d.param(2, ColType::Text)
        ),
        &[&tenant.to_string(), device],
    )
    .await
    .unwrap()
    .unwrap_or_else(|| panic!("no asset for {device}"))
    .parse()
    .unwrap()
}

async fn serial_of(db: &Db, asset: Uuid) -> Option<String> {
    let d = db.dialect();
    scalar(
        db,
        &format!("SELECT serial_number FROM assets WHERE asset_id = {}", d.param(1, ColType::Uuid)),
        &[&asset.to_string()],
    )
    .await
    .unwrap()
}

fn field<'a>(
    changes: &'a [rmm_shared::ingest::changes::FieldChange],
    name: &str,
) -> (Option<&'a str>, Option<&'a str>) {
    let c = changes.iter().find(|c| c.field == name).unwrap_or_else(|| panic!("no {name} change in {changes:?}"));
    (c.from.as_deref(), c.to.as_deref())
}

/// Every action the history records, with its run and job, and nothing for a resync whose tracked
/// values are the same (volatile values do change); a dry run of the same change writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_records_each_change_of_an_asset_and_a_dry_run_none() {
    stores::each_store(|store| async move {
        let db = &store.db;
        let tenant = stores::tenant(db).await.unwrap();
        let integration = stores::integration(db, tenant, "tacticalrmm").await.unwrap();
        let client_a = stores::client(db, tenant, "Client A").await.unwrap();
        let client_b = stores::client(db, tenant, "Client B").await.unwrap();
        stores::map_scope(db, tenant, integration, "c1", Some(client_a)).await.unwrap();
        stores::map_scope(db, tenant, integration, "c2", Some(client_b)).await.unwrap();
        let first: Vec<DeviceSnapshot> = ["d1", "d2", "d3"].iter().map(|d| snap(integration, d, "c1")).collect();
        let run1 = Uuid::new_v4();
        let r = ingest_snapshots(db, tenant, &IngestRun::recorded(Some(run1), Some("job-1")), &first, 2).await.unwrap();
        assert_eq!(r.counts.created, 3);
        assert_eq!(count(db, tenant, &history_rows(db)).await, 3);
        let d1 = asset_of_device(db, tenant, "d1").await;
        let d2 = asset_of_device(db, tenant, "d2").await;
        let d3 = asset_of_device(db, tenant, "d3").await;
        let created =
            history::read(db, HistoryQuery { tenant: Some(tenant), asset_id: Some(d1), before: None, limit: 10 })
                .await
                .unwrap();
        assert_eq!(created.len(), 1, "{created:?}");
        let e = &created[0];
        assert_eq!((e.action.as_str(), e.run_id, e.job_id.as_deref()), ("created", Some(run1), Some("job-1")));
        assert_eq!((e.external_device_id.as_str(), e.external_organization_id.as_str()), ("d1", "c1"));
        assert_eq!(field(&e.changes, "client_id"), (None, Some(client_a.to_string().as_str())));

        // Only volatile values move: the assets are refreshed, no history is written.
        let mut seen = first.clone();
        for s in &mut seen {
            s.last_seen_at = Some(Utc::now());
            s.extension.as_mut().unwrap().current_user = Some("bob".into());
        }
        let r = ingest_snapshots(db, tenant, &IngestRun::recorded(Some(Uuid::new_v4()), None), &seen, 2).await.unwrap();
        assert_eq!(r.counts.updated, 3);
        assert_eq!(count(db, tenant, &history_rows(db)).await, 3, "an unchanged resync records nothing");

        // A new serial and OS version, a move to the other client, a deletion.
        let mut changed = seen.clone();
        changed[0].serial_number = Some("SN-NEW".into());
        changed[0].extension.as_mut().unwrap().os_version = Some("11 Enterprise".into());
        changed[1].external_scope_id = "c2".into();
        changed[2].lifecycle = Lifecycle::Deleted;

        // Planned only: the dry run says what would happen, per organisation, and writes nothing.
        let dry = IngestRun::dry();
        ingest_snapshots(db, tenant, &dry, &changed, 2).await.unwrap();
        let plan = dry.take_dry_run().expect("a dry run plan");
        let (c1, c2) = (&plan.organizations["c1"], &plan.organizations["c2"]);
        assert_eq!((c1.create, c1.update, c1.moves, c1.tombstone, c1.unchanged), (0, 1, 0, 1, 0), "{plan:?}");
        assert_eq!((c2.create, c2.update, c2.moves, c2.tombstone, c2.unchanged), (0, 1, 1, 0, 0), "{plan:?}");
        let moved = &c2.changes[0];
        assert_eq!((moved.action, moved.asset_id), (ChangeAction::Moved, d2));
        assert_eq!(field(&moved.changes, "rmm_organization_id"), (Some("c1"), Some("c2")));
        assert_eq!(serial_of(db, d1).await.as_deref(), Some("SN-d1"), "the dry run wrote nothing");
        assert_eq!(count(db, tenant, &history_rows(db)).await, 3, "the dry run recorded nothing");

        let run3 = Uuid::new_v4();
        ingest_snapshots(db, tenant, &IngestRun::recorded(Some(run3), Some("job-3")), &changed, 2).await.unwrap();
        assert_eq!(serial_of(db, d1).await.as_deref(), Some("SN-NEW"));
        let latest = |asset| async move {
            let q = HistoryQuery { tenant: Some(tenant), asset_id: Some(asset), before: None, limit: 10 };
            history::read(db, q).await.unwrap()
        };
        let h1 = latest(d1).await;
        assert_eq!(h1.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), ["updated", "created"], "newest first");
        assert_eq!(h1[0].run_id, Some(run3));
        assert_eq!(field(&h1[0].changes, "serial_number"), (Some("SN-d1"), Some("SN-NEW")));
        assert_eq!(field(&h1[0].changes, "os_version"), (Some("11 Pro"), Some("11 Enterprise")));
        assert_eq!(h1[0].changes.len(), 2, "only what changed: {:?}", h1[0].changes);
        let h2 = latest(d2).await;
        assert_eq!(h2[0].action, "moved");
        assert_eq!(
            field(&h2[0].changes, "client_id"),
            (Some(client_a.to_string().as_str()), Some(client_b.to_string().as_str()))
        );
        assert_eq!(h2[0].external_organization_id, "c2");
        let h3 = latest(d3).await;
        assert_eq!(h3[0].action, "tombstoned");
        assert_eq!(field(&h3[0].changes, "status"), (Some("active"), Some("inactive")));

        // The deletion seen again is not a second tombstone; paging goes back through the rest.
        ingest_snapshots(db, tenant, &IngestRun::recorded(Some(Uuid::new_v4()), None), &changed, 2).await.unwrap();
        assert_eq!(count(db, tenant, &history_rows(db)).await, 6);
        let page = history::read(db, HistoryQuery { tenant: Some(tenant), asset_id: None, before: None, limit: 4 })
            .await
            .unwrap();
        let rest = history::read(
            db,
            HistoryQuery { tenant: Some(tenant), asset_id: None, before: Some(page[3].seq), limit: 4 },
        )
        .await
        .unwrap();
        assert_eq!((page.len(), rest.len()), (4, 2));
        assert!(page.windows(2).chain(rest.windows(2)).all(|w| w[0].seq > w[1].seq));
        assert!(rest.iter().all(|e| e.action == "created"));
        let other = history::read(
            db,
            HistoryQuery { tenant: Some(Uuid::new_v4()), asset_id: Some(d1), before: None, limit: 10 },
        )
        .await
        .unwrap();
        assert!(other.is_empty(), "another tenant reads none of it");
        store
    })
    .await;
}

async fn enqueue(ing: &Ingress, tenant: Uuid, kind: &str, query: &str) -> (u16, Value) {
    let path = format!("/tenants/{tenant}/integrations/tacticalrmm/jobs/{kind}{query}");
    ing.api(Method::POST, &path, BOOTSTRAP, Some(json!({}))).await
}

async fn finished(rt: &Runtime, job: &Value) -> JobView {
    let id = job["job_id"].as_str().unwrap_or_else(|| panic!("no job id: {job}"));
    let view = wait_finished(rt, id, Duration::from_secs(60)).await;
    assert_eq!(view.status, JobStatus::Done, "{view:?}");
    view
}

async fn sync_runs(db: &Db, tenant: Uuid) -> i64 {
    count(db, tenant, &format!("{} WHERE 1 = 1", db.ours("sync_runs"))).await
}

async fn status_html(ing: &Ingress, path: &str) -> (u16, String) {
    let resp = ing.http.get(ing.url(path)).basic_auth("operator", Some(BOOTSTRAP)).send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// A Tactical device sync as operators run it: a dry run from the API and the CLI before the
/// first sync and before a resync, the recorded changes on the history route and the status page,
/// and retention.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_runs_write_nothing_and_the_history_is_served_and_pruned() {
    stores::each_store(|store| async move {
        let db = &store.db;
        let dir = tempfile::tempdir().unwrap();
        let sim = TacticalSim::start(SimConfig::with_fleet(FleetSpec::new(23, 2, 1, 3))).await.unwrap();
        let rt = runtime(db, fast_settings(QueueBackend::Database), dir.path()).await.unwrap();
        let ing = Ingress::start(&rt, Some(BOOTSTRAP)).await;
        let (tenant, _) = mapped_tactical_tenant(db, &rt, &sim).await;
        let clients = stores::map_each_scope(db, tenant, 2).await;
        let (c1, c2) = (clients[0].0.clone(), clients[1].0.clone());
        let workers = Workers::start(&rt);

        // Before the first sync: what would be created, per organisation; nothing written.
        let (s, job) = enqueue(&ing, tenant, "sync-devices", "?dry_run=true").await;
        assert_eq!(s, 202, "{job}");
        let view = finished(&rt, &job).await;
        let plan = &view.result.as_ref().unwrap()["detail"]["dry_run"]["organizations"];
        for org in [&c1, &c2] {
            assert_eq!(plan[org]["create"], json!(3), "{plan}");
            assert_eq!(plan[org]["changes"].as_array().unwrap().len(), 3, "{plan}");
            assert_eq!(plan[org]["changes"][0]["action"], json!("created"), "{plan}");
        }
        assert_eq!(count(db, tenant, "assets WHERE 1 = 1").await, 0);
        assert_eq!(count(db, tenant, "tenant_external_entity_mappings WHERE 1 = 1").await, 0);
        assert_eq!(sync_runs(db, tenant).await, 0, "a dry run is not a sync run");
        assert_eq!(count(db, tenant, &history_rows(db)).await, 0);

        // Only device syncs plan: any other kind is refused, as is a flag that is not a boolean.
        let (s, b) = enqueue(&ing, tenant, "sync-org", "?dry_run=true").await;
        assert_eq!(s, 400, "{b}");
        assert!(b["error"].as_str().unwrap().contains("dry run"), "{b}");
        let (s, b) = enqueue(&ing, tenant, "sync-devices", "?dry_run=perhaps").await;
        assert_eq!(s, 400, "{b}");
        assert!(b["error"].as_str().unwrap().contains("dry_run"), "{b}");
        let (s, b) = enqueue(&ing, tenant, "sync-devices", "?dry_run=false").await;
        assert_eq!(s, 202, "{b}");
        let first = finished(&rt, &b).await;
        assert_eq!(count(db, tenant, "assets WHERE 1 = 1").await, 6);
        assert_eq!(count(db, tenant, &history_rows(db)).await, 6);
        let d = db.dialect();
        // Each creation names the job's sync run and the unit job that wrote it.
        let by_run = scalar(
            db,
            &format!(
                "SELECT CAST(COUNT(*) AS TEXT) FROM {h} WHERE tenant = {t} AND action = 'created' AND job_id IS NOT NULL \
                 AND run_id = (SELECT run_id FROM {r} WHERE tenant = {t} AND job_id = {j})",
                h = db.ours("asset_history"),
                r = db.ours("sync_runs"),
                t = d.param(1, ColType::Uuid),
                j = d.param(2, ColType::Text)
            ),
            &[&tenant.to_string(), &first.job_id],
        )
        .await
        .unwrap();
        assert_eq!(by_run.as_deref(), Some("6"), "each creation names its run and job");

        // Upstream: one agent gets a new serial, another moves to the other client's site.
        let agents = sim.agents();
        let in_c1: Vec<_> =
            agents.iter().filter(|a| sim.client_of(a.id).map(|c| c.to_string()) == Some(c1.clone())).collect();
        let (renamed, mover) = (in_c1[0], in_c1[1]);
        assert!(sim.set_serial(renamed.id, "SERIAL-CHANGED"));
        let c2_site = sim.sites().into_iter().find(|s| s.client.to_string() == c2).unwrap().id;
        assert!(sim.move_agent(mover.id, c2_site));
        let renamed_asset = asset_of_device(db, tenant, &renamed.agent_id).await;
        let mover_asset = asset_of_device(db, tenant, &mover.agent_id).await;

        // The CLI's dry run prints the plan and writes nothing.
        let out = rmm_sync_process("sync", &store.url, dir.path())
            .args(["tacticalrmm", "sync-devices", "--tenant", &tenant.to_string(), "--dry-run"])
            .output()
            .await
            .unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{stderr}");
        assert!(
            stdout.contains(&format!(
                "organisation {c1}: create 0, update 1 (move 0), tombstone 0, unchanged 1, skip 0, fail 0"
            )),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!(
                "organisation {c2}: create 0, update 1 (move 1), tombstone 0, unchanged 3, skip 0, fail 0"
            )),
            "{stdout}"
        );
        assert!(stdout.contains("serial_number: "), "{stdout}");
        assert!(stdout.contains("-> SERIAL-CHANGED"), "{stdout}");
        assert!(stdout.contains(&format!("  moved {}", mover.agent_id)), "{stdout}");
        assert_ne!(serial_of(db, renamed_asset).await.as_deref(), Some("SERIAL-CHANGED"));
        assert_eq!(count(db, tenant, &history_rows(db)).await, 6);
        assert_eq!(sync_runs(db, tenant).await, 1, "the dry run added no sync run");
        // A dry run of a kind that does not plan is refused before anything is enqueued.
        let out = rmm_sync_process("sync", &store.url, dir.path())
            .args(["tacticalrmm", "sync-org", "--tenant", &tenant.to_string(), "--dry-run"])
            .output()
            .await
            .unwrap();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("dry run"), "{}", String::from_utf8_lossy(&out.stderr));

        // The real resync records both changes; another one with nothing new records nothing.
        let (_, b) = enqueue(&ing, tenant, "sync-devices", "").await;
        finished(&rt, &b).await;
        assert_eq!(serial_of(db, renamed_asset).await.as_deref(), Some("SERIAL-CHANGED"));
        assert_eq!(count(db, tenant, &history_rows(db)).await, 8);
        let (_, b) = enqueue(&ing, tenant, "sync-devices", "").await;
        finished(&rt, &b).await;
        assert_eq!(count(db, tenant, &history_rows(db)).await, 8, "an unchanged resync records nothing");
        // A single-device refresh records its change with its job and no run.
        assert!(sim.set_serial(renamed.id, "SERIAL-THIRD"));
        let path = format!("/tenants/{tenant}/integrations/tacticalrmm/jobs/sync-agent");
        let args = json!({"args": {"agent_id": renamed.agent_id}});
        let (s, b) = ing.api(Method::POST, &path, BOOTSTRAP, Some(args)).await;
        assert_eq!(s, 202, "{b}");
        let refresh = finished(&rt, &b).await;
        let (_, h) =
            ing.api(Method::GET, &format!("/tenants/{tenant}/assets/{renamed_asset}/history"), BOOTSTRAP, None).await;
        let newest = &h["history"][0];
        assert_eq!((&newest["action"], &newest["run_id"]), (&json!("updated"), &Value::Null), "{h}");
        assert_eq!(newest["job_id"], json!(refresh.job_id), "{h}");
        assert_eq!(newest["changes"], json!([{"field": "serial_number", "from": "SERIAL-CHANGED", "to": "SERIAL-THIRD"}]));

        // The history route, newest first, paged.
        let path = format!("/tenants/{tenant}/assets/{mover_asset}/history");
        let (s, h) = ing.api(Method::GET, &path, BOOTSTRAP, None).await;
        assert_eq!(s, 200, "{h}");
        let actions: Vec<&str> =
            h["history"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
        assert_eq!(actions, ["moved", "created"], "{h}");
        assert_eq!(h["next_before"], Value::Null);
        let moved = &h["history"][0];
        assert!(
            moved["changes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["field"] == "rmm_organization_id" && c["from"] == json!(c1) && c["to"] == json!(c2)),
            "{moved}"
        );
        let (_, p1) = ing.api(Method::GET, &format!("{path}?limit=1"), BOOTSTRAP, None).await;
        assert_eq!(p1["history"].as_array().unwrap().len(), 1, "{p1}");
        let before = p1["next_before"].as_i64().expect("a next page");
        let (_, p2) = ing.api(Method::GET, &format!("{path}?limit=1&before={before}"), BOOTSTRAP, None).await;
        assert_eq!(p2["history"][0]["action"], json!("created"), "{p2}");
        for bad in ["?limit=0", "?limit=501", "?limit=many", "?before=yesterday"] {
            let (s, b) = ing.api(Method::GET, &format!("{path}{bad}"), BOOTSTRAP, None).await;
            assert_eq!(s, 400, "{bad}: {b}");
            assert!(b["error"].is_string(), "{bad}: {b}");
        }
        let (s, b) =
            ing.api(Method::GET, &format!("/tenants/{tenant}/assets/not-an-asset/history"), BOOTSTRAP, None).await;
        assert_eq!((s, b["error"].is_string()), (400, true), "{b}");
        // Another tenant's key cannot read it; this asset under another tenant has no history.
        let other = stores::tenant(db).await.unwrap();
        let other_key = create_key(db, Some(other), KeyScope::Read, "other").await.unwrap().key;
        let (s, b) = ing.api(Method::GET, &path, &other_key, None).await;
        assert_eq!((s, b["error"].is_string()), (404, true), "another tenant is not found: {b}");
        let (s, b) =
            ing.api(Method::GET, &format!("/tenants/{other}/assets/{mover_asset}/history"), &other_key, None).await;
        assert_eq!((s, b["history"].as_array().map(Vec::len)), (200, Some(0)), "{b}");

        // The status page: the latest changes, and one asset's page.
        let (s, page) = status_html(&ing, "/status").await;
        assert_eq!(s, 200);
        assert!(page.contains("Latest asset changes"), "{page}");
        assert!(page.contains(&format!("status/assets/{mover_asset}")), "{page}");
        let (s, page) = status_html(&ing, &format!("/status/assets/{mover_asset}")).await;
        assert_eq!(s, 200);
        assert!(page.contains("moved") && page.contains("created"), "{page}");
        assert!(page.contains(&format!("rmm_organization_id: {c1} → {c2}")), "{page}");
        let resp = ing
            .http
            .get(ing.url(&format!("/status/assets/{mover_asset}")))
            .basic_auth("other", Some(&other_key))
            .send()
            .await
            .unwrap();
        let page = resp.text().await.unwrap();
        assert!(page.contains("No change recorded") && !page.contains("moved"), "another tenant's key: {page}");
        let (s, _) = status_html(&ing, "/status/assets/not-a-uuid").await;
        assert_eq!(s, 400);
        let resp = ing.http.get(ing.url(&format!("/status/assets/{mover_asset}"))).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401, "the asset page asks for the same key as /status");

        // Retention: the history goes with the runs.
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let m = rt
            .queue
            .enqueue(
                rmm_jobs::JobRequest::global("maintenance", rmm_jobs::Trigger::Admin)
                    .args(json!({"retention_days": 0})),
            )
            .await
            .unwrap();
        let job = wait_finished(&rt, &m, Duration::from_secs(30)).await;
        assert_eq!(job.status, JobStatus::Done, "{job:?}");
        assert_eq!(job.result.as_ref().unwrap()["counts"]["asset_history_deleted"], json!(9), "{job:?}");
        assert_eq!(count(db, tenant, &history_rows(db)).await, 0);
        workers.stop().await;
        store
    })
    .await;
}

/// Every kind that says it plans accepts a dry run, and its arguments carry it.
#[test]
fn every_device_sync_kind_takes_a_dry_run() {
    let registry = rmm_jobs::Registry::builtin();
    let planning: std::collections::BTreeSet<&str> = registry.entries().filter(|e| e.dry_run).map(|e| e.name).collect();
    let expected = ["levelio-sync-devices", "ninjaone-sync-devices", "sync-devices", "tanium-full-sync"];
    assert_eq!(planning, expected.into_iter().collect(), "the device syncs of every provider");
    for e in registry.entries() {
        let r = registry.dry_run_args(e, json!({"mode": "full"}));
        if e.dry_run {
            assert_eq!(r.unwrap()["dry_run"], json!(true), "{}", e.name);
            assert!(registry.dry_run_args(e, json!([])).is_err(), "{}: arguments that are not an object", e.name);
        } else {
            assert!(r.unwrap_err().contains("dry run"), "{}", e.name);
        }
    }
}
