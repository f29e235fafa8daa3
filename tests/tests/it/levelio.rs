//! Level end to end against its simulator: the client (key header, cursor paging, faults), the
//! group and device syncs on PostgreSQL and SQLite (deepest mapped group, one unit per top-level
//! group, pending updates, incremental window, tombstones), single-device refresh, the alert
//! backfill, and the jobs and the automation webhook through the ingress.

use rmm_shared::ingest::IngestRun;
use std::time::Duration;

use chrono::Utc;
use rmm_shared::db::Db;
use rmm_shared::db::sql::ColType;
use rmm_shared::ingest::IngestAction;
use rmm_shared::providers::UnitReport;
use rmm_shared::providers::levelio::alerts::backfill_alerts;
use rmm_shared::providers::levelio::client::{DeviceFilter, LevelClient, LevelConfig};
use rmm_shared::providers::levelio::error::LevelError;
use rmm_shared::providers::levelio::mapping::GroupTree;
use rmm_shared::providers::levelio::sync::{
    DeviceSyncMode, UnitInput, mapped_groups, pending_updates, plan_units, refresh_device, sync_groups, sync_root,
};
use rmm_tests::sim::levelio::{DEFAULT_API_KEY, LevelFault, LevelFleetSpec, LevelSim};
use rmm_tests::stores::{self, count, rows, scalar};
use secrecy::SecretString;
use serde_json::{Value, json};
use uuid::Uuid;

fn client_with(url: &str, key: &str) -> LevelClient {
    let mut config = LevelConfig::new(url, SecretString::from(key.to_owned()));
    config.http.retry.base_delay = Duration::from_millis(5);
    config.http.retry.max_delay = Duration::from_millis(20);
    config.http.rate_limit = None;
    LevelClient::new(config).unwrap()
}

fn client_for(sim: &LevelSim) -> LevelClient {
    client_with(sim.base_url(), DEFAULT_API_KEY)
}

async fn sim(spec: LevelFleetSpec) -> LevelSim {
    LevelSim::start(spec).await.unwrap()
}

// ---- client -------------------------------------------------------------------------------

#[tokio::test]
async fn lists_walk_the_cursor_with_the_key_header_and_every_include() {
    let sim = sim(LevelFleetSpec { devices: 250, ..Default::default() }).await;
    let c = client_for(&sim);
    let mut pages = c.device_pages(&DeviceFilter::All);
    let mut sizes = Vec::new();
    while let Some(p) = pages.next_page().await.unwrap() {
        sizes.push(p.len());
    }
    assert_eq!(sizes, vec![100, 100, 50]);
    let log = sim.requests();
    assert!(log[0].contains("limit=100") && !log[0].contains("starting_after"), "{log:?}");
    assert!(log[1].contains("starting_after=dev_0000099"), "{log:?}");
    assert!(log[2].contains("starting_after=dev_0000199"), "{log:?}");
    for part in [
        "include_operating_system=true",
        "include_disks=true",
        "include_security=true",
        "include_network_interfaces=true",
    ] {
        assert!(log[0].contains(part), "{part} missing: {}", log[0]);
    }
    // Groups: nested through parent_id.
    let groups = c.list_groups().await.unwrap();
    assert_eq!(groups.len(), 8);
    let tree = GroupTree::new(&groups);
    assert_eq!(tree.path("grp_011"), "Customer 01 / Site 1 / Servers");
    // Filters: `ancestor_group_id` is everything below, `group_id` the group's own devices.
    let below: Vec<_> = c.device_pages(&DeviceFilter::Below("grp_000".into())).next_page().await.unwrap().unwrap();
    assert!(below.iter().all(|d| ["grp_010", "grp_011", "grp_020"].contains(&d.group_id.as_deref().unwrap())));
    let own = c.device_pages(&DeviceFilter::Group("grp_000".into())).next_page().await.unwrap().unwrap();
    assert!(!own.is_empty() && own.iter().all(|d| d.group_id.as_deref() == Some("grp_000")));
    // One device; an unknown one is None.
    let d = c.get_device("dev_0000001").await.unwrap().unwrap();
    assert_eq!(d.security.unwrap().antivirus_provider.as_deref(), Some("Microsoft Defender"));
    assert!(c.get_device("dev_nope").await.unwrap().is_none());
    // A wrong key: the sim answers 401; the message says what to do and carries no key.
    let e = client_with(sim.base_url(), "lvl_wrong").list_groups().await.unwrap_err();
    assert_eq!(e.status(), Some(401));
    assert!(e.to_string().contains("Settings → API Keys") && !e.to_string().contains("lvl_wrong"), "{e}");
}

#[tokio::test]
async fn faults_are_retried_or_reported_with_what_to_do() {
    let sim = sim(LevelFleetSpec::default()).await;
    let c = client_for(&sim);
    // 429 with a short Retry-After is waited for in place, then the call succeeds.
    sim.inject(LevelFault::RateLimited("1".into()), Some(1));
    let started = std::time::Instant::now();
    assert_eq!(c.list_groups().await.unwrap().len(), 8);
    assert!(started.elapsed() >= Duration::from_millis(900), "Retry-After honoured");
    // A long Retry-After comes back to the job runtime as the wait.
    sim.inject(LevelFault::RateLimited("120".into()), Some(1));
    let e = c.list_groups().await.unwrap_err();
    assert_eq!(e.retry_after(), Some(Duration::from_secs(120)));
    assert!(e.is_transient());
    // 5xx: retried; lasting, a transient error after bounded attempts.
    sim.reset_log();
    sim.inject(LevelFault::Status(502), Some(1));
    assert!(c.test_connection().await.unwrap());
    assert_eq!(sim.requests().len(), 2);
    sim.inject(LevelFault::Status(503), None);
    let e = c.test_connection().await.unwrap_err();
    assert!(e.is_transient() && e.to_string().contains("temporarily unavailable"), "{e}");
    sim.clear_faults();
    // HTML and truncated bodies are not data.
    sim.inject(LevelFault::Html, Some(1));
    assert!(matches!(c.list_groups().await.unwrap_err(), LevelError::HtmlAnswer { .. }));
    sim.inject(LevelFault::Truncated, Some(1));
    let e = c.list_groups().await.unwrap_err();
    assert!(matches!(e, LevelError::InvalidResponse { .. }) && e.is_transient(), "{e:?}");
    assert!(e.diagnostic().contains("ended early"), "{}", e.diagnostic());
}

// ---- syncs on both stores -------------------------------------------------------------------

/// Maps `group` to a new client named after it.
async fn map(db: &Db, tenant: Uuid, group: &str) -> Uuid {
    let client = stores::client(db, tenant, &format!("Client {group}")).await.unwrap();
    let d = db.dialect();
    db.execute(
        &format!(
            "UPDATE rmm_organization_mappings SET client_id = {} WHERE tenant = {} AND external_organization_id = {}",
            d.param(1, ColType::Uuid),
            d.param(2, ColType::Uuid),
            d.param(3, ColType::Text)
        ),
        &[&client.to_string(), &tenant.to_string(), group],
    )
    .await
    .unwrap();
    client
}

async fn run_all(db: &Db, tenant: Uuid, integration: Uuid, c: &LevelClient, mode: DeviceSyncMode) -> UnitReport {
    let tree = GroupTree::new(&c.list_groups().await.unwrap());
    let mapped = mapped_groups(db, tenant, integration).await.unwrap();
    let pending = pending_updates(c).await.unwrap();
    let input = UnitInput { tree: &tree, mapped: &mapped, pending: Some(&pending) };
    let mut report = UnitReport::default();
    for root in plan_units(db, tenant, integration, c).await.unwrap() {
        report.absorb(sync_root(db, tenant, &IngestRun::default(), integration, c, &input, &root, mode).await.unwrap());
    }
    report
}

/// The client of each synced device (`device → client id`).
async fn clients_of(db: &Db, tenant: Uuid) -> std::collections::HashMap<String, String> {
    let d = db.dialect();
    rows(
        db,
        &format!(
            "SELECT rmm_device_id, {} FROM assets WHERE tenant = {} AND rmm_provider = 'levelio'",
            d.text("client_id"),
            d.param(1, ColType::Uuid)
        ),
        &[&tenant.to_string()],
    )
    .await
    .unwrap()
    .into_iter()
    .map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap()))
    .collect()
}

#[tokio::test]
async fn groups_then_device_syncs_follow_the_deepest_mapped_group() {
    stores::each_store(|store| async move {
        let sim = sim(LevelFleetSpec { devices: 40, ..Default::default() }).await;
        let c = client_for(&sim);
        let db = &store.db;
        let tenant = stores::tenant(db).await.unwrap();
        let integration = stores::integration(db, tenant, "levelio").await.unwrap();

        // Every group is a mapping named by its path; a rerun updates and keeps assignments.
        let r = sync_groups(db, tenant, integration, &c).await.unwrap();
        assert_eq!((r.processed, r.created, r.updated), (8, 8, 0));
        let name = scalar(
            db,
            &format!(
                "SELECT external_organization_name FROM rmm_organization_mappings WHERE tenant = {} AND external_organization_id = 'grp_011'",
                db.dialect().param(1, ColType::Uuid)
            ),
            &[&tenant.to_string()],
        )
        .await
        .unwrap();
        assert_eq!(name.as_deref(), Some("Customer 01 / Site 1 / Servers"));
        let a = map(db, tenant, "grp_000").await;
        let b = map(db, tenant, "grp_010").await;
        let z = map(db, tenant, "grp_111").await;
        let r = sync_groups(db, tenant, integration, &c).await.unwrap();
        assert_eq!((r.created, r.updated), (0, 8));
        assert_eq!(count(db, tenant, "rmm_organization_mappings WHERE client_id IS NOT NULL").await, 3);
        // One unit per top-level group holding a mapped group.
        assert_eq!(plan_units(db, tenant, integration, &c).await.unwrap(), vec!["grp_000", "grp_100"]);

        // Full: groups 000 and 020 → A; 010 and its child 011 → B (deepest); 111 → Z; 1xx others unmapped.
        let report = run_all(db, tenant, integration, &c, DeviceSyncMode::Full).await;
        assert_eq!((report.counts.created, report.counts.failed, report.units), (25, 0, 2), "{:?}", report.errors);
        let fleet = sim.fleet();
        let owners = clients_of(db, tenant).await;
        for d in &fleet.devices {
            let want = match d.group_id.as_str() {
                "grp_000" | "grp_020" => Some(a),
                "grp_010" | "grp_011" => Some(b),
                "grp_111" => Some(z),
                _ => None,
            };
            assert_eq!(owners.get(&d.id).cloned(), want.map(|w| w.to_string()), "device {} in {}", d.id, d.group_id);
        }
        // The root's own devices were asked with group_id (ancestor_group_id is below it).
        assert!(sim.requests().iter().any(|r| r.contains("group_id=grp_000") && !r.contains("ancestor")));

        // Fields, pending updates split by category, the WAN address of a server.
        let server = fleet.devices.iter().find(|d| d.role == "server" && d.group_id == "grp_010").unwrap();
        let d = db.dialect();
        let ext = rows(
            db,
            &format!(
                "SELECT a.asset_type, a.name, a.location, a.agent_status, s.wan_ip, s.lan_ip, \
                 CAST(s.pending_patches AS TEXT), CAST(s.pending_os_patches AS TEXT), CAST(s.pending_software_patches AS TEXT), \
                 s.antivirus_product, CAST(s.ram_gb AS TEXT), s.agent_version \
                 FROM assets a JOIN server_assets s ON s.tenant = a.tenant AND s.asset_id = a.asset_id \
                 WHERE a.tenant = {} AND a.rmm_device_id = {}",
                d.param(1, ColType::Uuid),
                d.param(2, ColType::Text)
            ),
            &[&tenant.to_string(), &server.id],
        )
        .await
        .unwrap();
        let e = &ext[0];
        assert_eq!(e[0].as_deref(), Some("server"));
        assert_eq!(e[1].as_deref(), Some(server.hostname.as_str()));
        assert_eq!(e[2].as_deref(), Some(format!("{}, {}", server.city, server.country).as_str()));
        assert_eq!(e[4], server.public_ip, "the interface's public address");
        assert_eq!(e[5].as_deref(), Some(server.lan_ip.as_str()));
        assert_eq!((e[6].as_deref(), e[7].as_deref(), e[8].as_deref()), (Some("2"), Some("1"), Some("1")));
        assert_eq!(e[9].as_deref(), Some("Microsoft Defender"));
        assert!(e[10].as_deref().unwrap().starts_with(&((server.memory_bytes >> 30).to_string())), "{:?}", e[10]);
        assert_eq!(e[11], None, "Level has no agent version");

        // A rerun changes nothing new.
        let report = run_all(db, tenant, integration, &c, DeviceSyncMode::Full).await;
        assert_eq!((report.counts.created, report.counts.updated), (0, 25));

        // Incremental: every page is still read (no server-side filter), only recent devices written.
        let recent: Vec<String> = ["dev_0000000", "dev_0000008"].map(str::to_owned).into();
        sim.with_fleet(|f| {
            for dev in &mut f.devices {
                dev.last_seen_at = if recent.contains(&dev.id) { Utc::now() } else { Utc::now() - chrono::Duration::days(30) };
            }
        });
        sim.reset_log();
        let since = Utc::now() - chrono::Duration::minutes(10);
        let report = run_all(db, tenant, integration, &c, DeviceSyncMode::Incremental { since }).await;
        assert_eq!((report.counts.processed, report.counts.updated), (2, 2), "{report:?}");
        assert!(sim.count("GET /v2/devices?") >= 3, "{:?}", sim.requests());

        // A device gone from Level: never tombstoned by an incremental run, tombstoned by a full one.
        sim.remove_device("dev_0000008");
        run_all(db, tenant, integration, &c, DeviceSyncMode::Incremental { since }).await;
        assert_eq!(count(db, tenant, "tenant_external_entity_mappings WHERE sync_status = 'error'").await, 0);
        let report = run_all(db, tenant, integration, &c, DeviceSyncMode::Full).await;
        assert_eq!(report.counts.deleted, 1, "{report:?}");
        assert_eq!(count(db, tenant, "tenant_external_entity_mappings WHERE sync_status = 'error'").await, 1);
        let status = scalar(
            db,
            &format!("SELECT status FROM assets WHERE tenant = {} AND rmm_device_id = 'dev_0000008'", d.param(1, ColType::Uuid)),
            &[&tenant.to_string()],
        )
        .await
        .unwrap();
        assert_eq!(status.as_deref(), Some("inactive"));

        // A device moved under another mapped group follows it.
        sim.update_device("dev_0000001", |dev| dev.group_id = "grp_111".into());
        run_all(db, tenant, integration, &c, DeviceSyncMode::Full).await;
        assert_eq!(clients_of(db, tenant).await["dev_0000001"], z.to_string());
        assert_eq!(count(db, tenant, "tenant_external_entity_mappings WHERE sync_status = 'error'").await, 1);

        // Single-device refresh: mapped, unmapped, unknown.
        let o = refresh_device(db, tenant, &IngestRun::default(), integration, &c, "dev_0000002", None).await.unwrap();
        assert_eq!(o.action, IngestAction::Updated, "{o:?}");
        let unmapped = fleet.devices.iter().find(|d| d.group_id == "grp_120").unwrap();
        let o = refresh_device(db, tenant, &IngestRun::default(), integration, &c, &unmapped.id, None).await.unwrap();
        assert_eq!((o.action, o.error.as_deref()), (IngestAction::Skipped, Some("Device has no mapped Level group ancestor")));
        let o = refresh_device(db, tenant, &IngestRun::default(), integration, &c, "dev_gone", None).await.unwrap();
        assert_eq!(o.action, IngestAction::Skipped);
        store
    })
    .await;
}

#[tokio::test]
async fn backfill_records_active_alerts_resolves_gone_ones_and_resolves_in_level_only_when_asked() {
    stores::each_store(|store| async move {
        let sim = sim(LevelFleetSpec { alerts: 3, ..Default::default() }).await;
        let c = client_for(&sim);
        let db = &store.db;
        let tenant = stores::tenant(db).await.unwrap();
        let integration = stores::integration(db, tenant, "levelio").await.unwrap();
        let r = backfill_alerts(db, tenant, integration, &c, false).await.unwrap();
        assert_eq!((r.items_processed, r.items_created, r.items_failed), (3, 3, 0), "{r:?}");
        let d = db.dialect();
        let sev = rows(
            db,
            &format!(
                "SELECT external_alert_id, severity, status, message FROM rmm_alerts WHERE tenant = {} ORDER BY external_alert_id",
                d.param(1, ColType::Uuid)
            ),
            &[&tenant.to_string()],
        )
        .await
        .unwrap();
        assert_eq!(sev[0][1].as_deref(), Some("minor"), "information");
        assert_eq!(sev[2][1].as_deref(), Some("major"), "critical");
        assert!(sev[0][3].as_deref().unwrap().starts_with("CPU usage: "), "{:?}", sev[0][3]);
        // Resolved in Level → resolved here.
        sim.with_fleet(|f| f.alerts[0].resolved_at = Some(Utc::now()));
        let r = backfill_alerts(db, tenant, integration, &c, false).await.unwrap();
        assert_eq!((r.items_processed, r.items_updated), (2, 1));
        assert_eq!(count(db, tenant, "rmm_alerts WHERE status = 'active'").await, 2);
        // Resolved here but still active in Level: without being asked, Level is only read and
        // the alert, still active there, is reopened (AlgaPSA's rule for a trigger of a resolved alert).
        let resolve_here = format!(
            "UPDATE rmm_alerts SET status = 'resolved' WHERE tenant = {} AND external_alert_id = 'alr_000001'",
            d.param(1, ColType::Uuid)
        );
        db.execute(&resolve_here, &[&tenant.to_string()]).await.unwrap();
        backfill_alerts(db, tenant, integration, &c, false).await.unwrap();
        assert!(sim.resolved().is_empty());
        assert_eq!(sim.count("POST"), 0);
        assert_eq!(count(db, tenant, "rmm_alerts WHERE status = 'active'").await, 2);
        // Asked: the alert is resolved in Level and stays resolved here.
        db.execute(&resolve_here, &[&tenant.to_string()]).await.unwrap();
        let r = backfill_alerts(db, tenant, integration, &c, true).await.unwrap();
        assert_eq!(r.resolved_in_level, 1, "{r:?}");
        assert_eq!(sim.resolved(), vec!["alr_000001".to_owned()]);
        assert!(sim.fleet().alerts[1].resolved_at.is_some());
        assert_eq!(count(db, tenant, "rmm_alerts WHERE status = 'active'").await, 1);
        store
    })
    .await;
}

#[tokio::test]
async fn a_walk_that_breaks_off_fails_its_unit_and_tombstones_nothing() {
    stores::each_store(|store| async move {
        let sim = sim(LevelFleetSpec { devices: 400, top_groups: 1, ..Default::default() }).await;
        let c = client_for(&sim);
        let db = &store.db;
        let tenant = stores::tenant(db).await.unwrap();
        let integration = stores::integration(db, tenant, "levelio").await.unwrap();
        sync_groups(db, tenant, integration, &c).await.unwrap();
        map(db, tenant, "grp_000").await;
        let report = run_all(db, tenant, integration, &c, DeviceSyncMode::Full).await;
        assert_eq!(report.counts.created, 400, "{:?}", report.errors);
        let tree = GroupTree::new(&c.list_groups().await.unwrap());
        let mapped = mapped_groups(db, tenant, integration).await.unwrap();
        let input = UnitInput { tree: &tree, mapped: &mapped, pending: None };
        sim.remove_device("dev_0000399");
        let second_page = "ancestor_group_id=grp_000&limit=100&starting_after=";
        for (fault, transient) in [
            (LevelFault::Truncated, true),
            (LevelFault::Html, false),
            (LevelFault::Status(401), false),
            (LevelFault::RateLimited("600".into()), true),
        ] {
            sim.clear_faults();
            sim.reset_log();
            sim.fail_matching(second_page, fault.clone());
            let e =
                sync_root(db, tenant, &IngestRun::default(), integration, &c, &input, "grp_000", DeviceSyncMode::Full)
                    .await
                    .unwrap_err();
            let rmm_shared::providers::levelio::sync::SyncError::Level(e) = e else { panic!("{fault:?}: {e}") };
            assert_eq!(e.is_transient() || e.retry_after().is_some(), transient, "{fault:?}: {e:?}");
            assert!(sim.count("GET /v2/devices?") >= 2, "{fault:?}: the first page was read");
            assert_eq!(
                count(db, tenant, "tenant_external_entity_mappings WHERE sync_status = 'error'").await,
                0,
                "{fault:?}: no tombstone after an incomplete walk"
            );
        }
        // Once Level answers again, the complete walk tombstones the device that left.
        sim.clear_faults();
        let r = sync_root(db, tenant, &IngestRun::default(), integration, &c, &input, "grp_000", DeviceSyncMode::Full)
            .await
            .unwrap();
        assert_eq!(r.counts.deleted, 1, "{r:?}");
        store
    })
    .await;
}

// ---- jobs, admin API and the automation webhook --------------------------------------------

async fn post_webhook(
    ing: &rmm_tests::runtime::Ingress,
    tenant: Uuid,
    secret: Option<&str>,
    body: &Value,
) -> (u16, Value) {
    let mut req = ing.http.post(ing.url(&format!("/api/webhooks/levelio?tenant={tenant}"))).json(body);
    if let Some(s) = secret {
        req = req.header("X-Alga-Webhook-Secret", s);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_jobs_and_the_automation_webhook() {
    use reqwest::Method;
    use rmm_jobs::JobStatus;
    use rmm_shared::config::QueueBackend;
    use rmm_tests::runtime::{Ingress, Workers, fast_settings, runtime, wait_finished};
    const KEY: &str = "levelio-admin-bootstrap-key-0123456789";
    stores::each_store(|store| async move {
        let db = &store.db;
        let dir = tempfile::tempdir().unwrap();
        let sim = sim(LevelFleetSpec { devices: 24, alerts: 2, ..Default::default() }).await;
        let mut settings = fast_settings(QueueBackend::Database);
        settings.upstream.levelio_requests_per_second = 0;
        let rt = runtime(db, settings, dir.path()).await.unwrap();
        let ing = Ingress::start(&rt, Some(KEY)).await;
        let tenant = stores::tenant(db).await.unwrap();
        let base = format!("/tenants/{tenant}/integrations/levelio");

        // Other providers' fields are refused; the key alone is enough, and the view shows Level's URL.
        let (s, b) = ing.api(Method::PUT, &base, KEY, Some(json!({"api_token": "x"}))).await;
        assert_eq!(s, 400, "{b}");
        let (s, b) = ing.api(Method::PUT, &base, KEY, Some(json!({"api_key": DEFAULT_API_KEY}))).await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["config"]["instanceUrl"], json!("https://api.level.io"), "{b}");
        assert_eq!(b["credentials"]["hasApiKey"], json!(true));
        assert!(!b.to_string().contains(DEFAULT_API_KEY), "the key is never returned");
        let (s, b) = ing.api(Method::PUT, &base, KEY, Some(json!({"instance_url": format!("{}/v2/", sim.base_url())}))).await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["config"]["instanceUrl"], json!(sim.base_url()), "{b}");
        let (_, b) = ing.api(Method::POST, &format!("{base}/test"), KEY, Some(json!({}))).await;
        assert_eq!((&b["success"], &b["groupsVisible"]), (&json!(true), &json!(true)), "{b}");

        // The automation step to paste: URL, header with the tenant's secret, body templates.
        let (s, hook) = ing.api(Method::GET, &format!("{base}/webhook"), KEY, None).await;
        assert_eq!(s, 200, "{hook}");
        assert!(hook["url"].as_str().unwrap().ends_with(&format!("/api/webhooks/levelio?tenant={tenant}")), "{hook}");
        assert_eq!(hook["headerName"], json!("X-Alga-Webhook-Secret"));
        let template: Value = serde_json::from_str(hook["payloadTemplate"].as_str().unwrap()).unwrap();
        for f in ["device_id", "event", "alert_id", "severity", "name", "description", "hostname", "group_id", "alert_time", "policy_id"] {
            assert!(template.get(f).is_some(), "template lacks {f}");
        }
        let secret = hook["secret"].as_str().unwrap().to_owned();
        let (_, again) = ing.api(Method::GET, &format!("{base}/webhook"), KEY, None).await;
        assert_eq!(again["secret"], json!(secret), "made once");

        // Jobs: a Tactical-only kind is refused; sync-org then levelio-sync-devices.
        let (s, b) = ing.api(Method::POST, &format!("{base}/jobs/sync-devices"), KEY, Some(json!({}))).await;
        assert_eq!(s, 400, "{b}");
        assert!(b.to_string().contains("levelio-sync-devices"), "{b}");
        let workers = Workers::start(&rt);
        let (s, b) = ing.api(Method::POST, &format!("{base}/jobs/sync-org"), KEY, Some(json!({}))).await;
        assert_eq!(s, 202, "{b}");
        let job = wait_finished(&rt, b["job_id"].as_str().unwrap(), Duration::from_secs(30)).await;
        assert_eq!(job.status, JobStatus::Done, "{job:?}");
        assert_eq!(count(db, tenant, "rmm_organization_mappings WHERE true").await, 8);
        map(db, tenant, "grp_000").await;
        map(db, tenant, "grp_100").await;
        // A dry run first: per group what would be created, nothing written.
        let dry = format!("{base}/jobs/levelio-sync-devices?dry_run=true");
        let (s, b) = ing.api(Method::POST, &dry, KEY, Some(json!({}))).await;
        assert_eq!(s, 202, "{b}");
        let job = wait_finished(&rt, b["job_id"].as_str().unwrap(), Duration::from_secs(60)).await;
        assert_eq!(job.status, JobStatus::Done, "{job:?}");
        let plan = job.result.as_ref().unwrap()["detail"]["dry_run"]["organizations"].as_object().unwrap().clone();
        assert_eq!(plan.values().map(|o| o["create"].as_u64().unwrap()).sum::<u64>(), 24, "{plan:?}");
        assert_eq!(count(db, tenant, "assets WHERE true").await, 0, "the dry run wrote nothing");
        assert_eq!(count(db, tenant, "tenant_external_entity_mappings WHERE true").await, 0);
        sim.reset_log();
        let (_, b) = ing.api(Method::POST, &format!("{base}/jobs/levelio-sync-devices"), KEY, Some(json!({}))).await;
        let job = wait_finished(&rt, b["job_id"].as_str().unwrap(), Duration::from_secs(60)).await;
        assert_eq!(job.status, JobStatus::Done, "{job:?}");
        let counts = &job.result.as_ref().unwrap()["counts"];
        assert_eq!((counts["created"].as_u64(), counts["units"].as_u64()), (Some(24), Some(2)), "{job:?}");
        // One walk of the updates for the whole sync, whatever the number of units.
        assert_eq!(sim.count("GET /v2/updates"), 1, "{:?}", sim.requests());
        let (_, b) = ing
            .api(Method::POST, &format!("{base}/jobs/levelio-sync-devices"), KEY, Some(json!({"args": {"mode": "incremental"}})))
            .await;
        let job = wait_finished(&rt, b["job_id"].as_str().unwrap(), Duration::from_secs(60)).await;
        assert_eq!(job.status, JobStatus::Done, "{job:?}");
        assert!(job.result.as_ref().unwrap()["detail"]["incremental"].as_str().unwrap().contains("no modified-since"), "{job:?}");

        // The webhook: refused without the secret or a device; stored and turned into a refresh
        // job that records the alert (organisation from the body's group) and refreshes the device.
        let dev = sim.fleet().devices[5].clone();
        let body = json!({"device_id": dev.id, "event": "alert.triggered", "alert_id": "alr_hook_1", "severity": "warning",
                          "name": "Disk space", "description": "C: below 10%", "hostname": dev.hostname, "group_id": dev.group_id,
                          "alert_time": "2026-12-01T10:00:00Z", "policy_id": "{{policy_id}}"});
        assert_eq!(post_webhook(&ing, tenant, None, &body).await.0, 401);
        assert_eq!(post_webhook(&ing, tenant, Some(&secret), &json!({"event": "x"})).await, (400, json!({"error": "device_id is required"})));
        sim.reset_log();
        let (s, reply) = post_webhook(&ing, tenant, Some(&secret), &body).await;
        assert_eq!(s, 200, "{reply}");
        let job = wait_finished(&rt, reply["job_id"].as_str().unwrap(), Duration::from_secs(30)).await;
        assert_eq!(job.status, JobStatus::Done, "{job:?}");
        let result = job.result.as_ref().unwrap();
        assert_eq!(result["counts"]["alerts_recorded"], json!(1), "{result}");
        assert_eq!(result["detail"]["action"], json!("updated"), "{result}");
        assert_eq!(sim.count(&format!("GET /v2/devices/{}", dev.id)), 1, "{:?}", sim.requests());
        let d = db.dialect();
        let alert = rows(
            db,
            &format!(
                "SELECT severity, status, message, {} FROM rmm_alerts WHERE tenant = {} AND external_alert_id = 'alr_hook_1'",
                d.text("asset_id"),
                d.param(1, ColType::Uuid)
            ),
            &[&tenant.to_string()],
        )
        .await
        .unwrap();
        assert_eq!(alert[0][0].as_deref(), Some("moderate"));
        assert_eq!(alert[0][1].as_deref(), Some("active"));
        assert_eq!(alert[0][2].as_deref(), Some("Disk space: C: below 10%"));
        assert!(alert[0][3].is_some(), "linked to the device's asset");
        // The resolve event resolves it.
        let mut resolved = body.clone();
        resolved["event"] = json!("alert.resolved");
        let (_, reply) = post_webhook(&ing, tenant, Some(&secret), &resolved).await;
        let job = wait_finished(&rt, reply["job_id"].as_str().unwrap(), Duration::from_secs(30)).await;
        assert_eq!(job.status, JobStatus::Done, "{job:?}");
        assert_eq!(count(db, tenant, "rmm_alerts WHERE external_alert_id = 'alr_hook_1' AND status = 'resolved'").await, 1);

        // The backfill job: Level's active alerts recorded; nothing resolved in Level unless asked.
        let (_, b) = ing.api(Method::POST, &format!("{base}/jobs/levelio-backfill-alerts"), KEY, Some(json!({}))).await;
        let job = wait_finished(&rt, b["job_id"].as_str().unwrap(), Duration::from_secs(30)).await;
        assert_eq!(job.status, JobStatus::Done, "{job:?}");
        assert_eq!(job.result.as_ref().unwrap()["counts"]["created"], json!(2), "{job:?}");
        assert!(sim.resolved().is_empty());
        workers.stop().await;
        drop(ing);
        store
    })
    .await;
}
