//! Tactical organisation and device syncs end to end: the simulator on loopback, the shared
//! pipeline, and each body on PostgreSQL and SQLite.

use chrono::{Duration, Utc};
use rmm_shared::db::sql::ColType;
use rmm_shared::ingest::IngestAction;
use rmm_shared::ingest::IngestRun;
use rmm_shared::providers::tactical::mapping::SiteIndex;
use rmm_shared::providers::tactical::sync::{
    DeviceSyncMode, PAGES_IN_MEMORY, ingest_software, plan_device_units, refresh_agent, sync_device_unit, sync_devices,
    sync_organizations,
};
use rmm_shared::providers::tactical::{TacticalAuth, TacticalClient, TacticalConfig};
use rmm_shared::runs::{Run, RunKind, RunOutcome};
use rmm_tests::sim::tactical::{DEFAULT_API_KEY, Fault, FleetSpec, SimConfig, TacticalSim};
use rmm_tests::stores::{self, count, rows, scalar};
use secrecy::SecretString;

fn client_for(sim: &TacticalSim) -> TacticalClient {
    let mut config = TacticalConfig::new(sim.base_url(), TacticalAuth::ApiKey(SecretString::from(DEFAULT_API_KEY)));
    config.http.retry.base_delay = std::time::Duration::from_millis(5);
    config.http.retry.max_delay = std::time::Duration::from_millis(20);
    TacticalClient::new(config).unwrap()
}

#[tokio::test]
async fn organisations_then_full_and_incremental_device_syncs() {
    stores::each_store(|store| async move {
        let sim = TacticalSim::start(SimConfig::with_fleet(FleetSpec::new(7, 3, 2, 20))).await.unwrap();
        let tactical = client_for(&sim);
        let db = &store.db;
        let tenant = stores::tenant(db).await.unwrap();
        let integration = stores::integration(db, tenant, "tacticalrmm").await.unwrap();

        // Organisations: every client once; a rerun updates, never touches the assignment.
        let r = sync_organizations(db, tenant, integration, &tactical).await.unwrap();
        assert_eq!((r.processed, r.created, r.updated), (3, 3, 0));
        let mapped = stores::map_each_scope(db, tenant, 2).await;
        let r = sync_organizations(db, tenant, integration, &tactical).await.unwrap();
        assert_eq!((r.processed, r.created, r.updated), (3, 0, 3));
        assert_eq!(count(db, tenant, "rmm_organization_mappings WHERE client_id IS NOT NULL").await, 2);
        assert_eq!(plan_device_units(db, tenant, integration).await.unwrap().len(), 2);

        // Full sync: the agents of the two mapped clients (2 sites x 20 agents each).
        let run = Run::start(db, tenant, integration, "tacticalrmm", "sync-devices", RunKind::Full, "admin").await.unwrap();
        let report = sync_devices(db, tenant, &IngestRun::default(), integration, &tactical, DeviceSyncMode::Full).await.unwrap();
        assert_eq!(report.counts.created, 80, "{:?}", report.errors);
        assert_eq!((report.counts.failed, report.units, report.units_failed), (0, 2, 0));
        run.finish(db, &RunOutcome { counts: report.counts, errors: report.errors.clone(), cursor: None }).await.unwrap();
        assert_eq!(count(db, tenant, "assets WHERE rmm_provider = 'tacticalrmm'").await, 80);
        assert_eq!(count(db, tenant, "tenant_external_entity_mappings WHERE sync_status = 'synced'").await, 80);
        let servers = sim.agents().iter().filter(|a| a.monitoring_type == "server").filter(|a| {
            let c = sim.client_of(a.id).unwrap().to_string();
            mapped.iter().any(|(s, _)| *s == c)
        }).count() as i64;
        assert_eq!(count(db, tenant, "assets WHERE asset_type = 'server'").await, servers);
        assert_eq!(count(db, tenant, "server_assets WHERE true").await, servers);
        let state = rows(
            db,
            &format!(
                "SELECT sync_status, CAST(last_full_sync_at IS NOT NULL AS TEXT), sync_error FROM rmm_integrations WHERE tenant = {}",
                db.dialect().param(1, ColType::Uuid)
            ),
            &[&tenant.to_string()],
        )
        .await
        .unwrap();
        assert_eq!(state[0][0].as_deref(), Some("completed"));
        assert!(matches!(state[0][1].as_deref(), Some("true") | Some("1")));
        assert_eq!(state[0][2], None);

        // Incremental: only agents seen since the cursor are fetched (server-side filter).
        let since = Utc::now() - Duration::minutes(10);
        let recent = sim.agents().iter().filter(|a| a.last_seen.is_some_and(|t| t >= since)).count();
        let before = sim.requests().len();
        let report =
            sync_devices(db, tenant, &IngestRun::default(), integration, &tactical, DeviceSyncMode::Incremental { since }).await.unwrap();
        let agent_queries: Vec<String> = sim.requests()[before..]
            .iter()
            .filter(|r| r.path.starts_with("/beta/v1/agent/"))
            .filter_map(|r| r.query.clone())
            .collect();
        assert!(!agent_queries.is_empty() && agent_queries.iter().all(|q| q.contains("last_seen_range_after")), "{agent_queries:?}");
        assert!(report.counts.processed as usize <= recent);
        assert_eq!(report.counts.created, 0);

        // An agent that moves to another mapped client keeps its asset and follows the mapping.
        let moving = sim
            .agents()
            .into_iter()
            .find(|a| sim.client_of(a.id).map(|c| c.to_string()) == Some(mapped[0].0.clone()))
            .unwrap();
        let target_site = sim.sites().into_iter().find(|s| s.client.to_string() == mapped[1].0).unwrap();
        let d = db.dialect();
        let asset_before = scalar(
            db,
            &format!("SELECT CAST(asset_id AS TEXT) FROM assets WHERE tenant = {} AND rmm_device_id = {}", d.param(1, ColType::Uuid), d.param(2, ColType::Text)),
            &[&tenant.to_string(), &moving.agent_id],
        )
        .await
        .unwrap();
        assert!(sim.move_agent(moving.id, target_site.id));
        let report = sync_devices(db, tenant, &IngestRun::default(), integration, &tactical, DeviceSyncMode::Full).await.unwrap();
        assert_eq!((report.counts.created, report.counts.failed), (0, 0), "{:?}", report.errors);
        let after = rows(
            db,
            &format!(
                "SELECT CAST(asset_id AS TEXT), CAST(client_id AS TEXT), rmm_organization_id FROM assets WHERE tenant = {} AND rmm_device_id = {}",
                d.param(1, ColType::Uuid),
                d.param(2, ColType::Text)
            ),
            &[&tenant.to_string(), &moving.agent_id],
        )
        .await
        .unwrap();
        assert_eq!(after.len(), 1);
        assert_eq!(after[0][0], asset_before);
        assert_eq!(after[0][1].as_deref(), Some(mapped[1].1.to_string().as_str()));
        assert_eq!(after[0][2].as_deref(), Some(mapped[1].0.as_str()));
        assert_eq!(count(db, tenant, "assets WHERE true").await, 80);

        // A stale agent turns offline/overdue on the next full pass.
        let stale = sim.agents().into_iter().find(|a| {
            sim.client_of(a.id).map(|c| c.to_string()) == Some(mapped[0].0.clone()) && a.last_seen.is_some()
        }).unwrap();
        sim.set_last_seen(stale.id, Some(Utc::now() - Duration::days(3)));
        sync_devices(db, tenant, &IngestRun::default(), integration, &tactical, DeviceSyncMode::Full).await.unwrap();
        let status = scalar(
            db,
            &format!("SELECT agent_status FROM assets WHERE tenant = {} AND rmm_device_id = {}", d.param(1, ColType::Uuid), d.param(2, ColType::Text)),
            &[&tenant.to_string(), &stale.agent_id],
        )
        .await
        .unwrap();
        assert!(matches!(status.as_deref(), Some("overdue") | Some("offline")), "{status:?}");

        // The webhook path: one agent refreshed by its string id.
        let outcome = refresh_agent(db, tenant, &IngestRun::default(), integration, &tactical, &stale.agent_id).await.unwrap();
        assert_eq!(outcome.action, IngestAction::Updated, "{outcome:?}");
        let missing = refresh_agent(db, tenant, &IngestRun::default(), integration, &tactical, "no-such-agent").await.unwrap();
        assert_eq!(missing.action, IngestAction::Skipped);
        store
    })
    .await;
}

#[tokio::test]
async fn an_upstream_outage_ends_the_run_in_error_without_moving_the_cursor() {
    stores::each_store(|store| async move {
        let sim = TacticalSim::start(SimConfig::with_fleet(FleetSpec::new(3, 2, 1, 5))).await.unwrap();
        let tactical = client_for(&sim);
        let db = &store.db;
        let tenant = stores::tenant(db).await.unwrap();
        let integration = stores::integration(db, tenant, "tacticalrmm").await.unwrap();
        sync_organizations(db, tenant, integration, &tactical).await.unwrap();
        stores::map_each_scope(db, tenant, 2).await;

        sim.inject(Fault::status(503).on("GET /beta/v1/agent/"));
        let run = Run::start(db, tenant, integration, "tacticalrmm", "sync-devices", RunKind::Incremental, "schedule")
            .await
            .unwrap();
        let since = Utc::now() - Duration::hours(1);
        let report =
            sync_devices(db, tenant, &IngestRun::default(), integration, &tactical, DeviceSyncMode::Incremental { since }).await.unwrap();
        assert_eq!((report.units, report.units_failed), (2, 2));
        assert!(report.errors[0].contains("temporarily unavailable"), "{:?}", report.errors);
        run.finish(db, &RunOutcome { counts: report.counts, errors: report.errors.clone(), cursor: Some(since) })
            .await
            .unwrap();
        let state = rows(
            db,
            &format!(
                "SELECT sync_status, sync_error, CAST(last_incremental_sync_at IS NULL AS TEXT), CAST(last_sync_at IS NOT NULL AS TEXT) \
                 FROM rmm_integrations WHERE tenant = {}",
                db.dialect().param(1, ColType::Uuid)
            ),
            &[&tenant.to_string()],
        )
        .await
        .unwrap();
        assert_eq!(state[0][0].as_deref(), Some("error"));
        let error = state[0][1].clone().unwrap();
        assert!(error.contains("Tactical RMM is temporarily unavailable") && error.contains("; "), "{error}");
        assert!(!error.contains(DEFAULT_API_KEY));
        assert!(matches!(state[0][2].as_deref(), Some("true") | Some("1")), "the cursor must not move");
        assert!(matches!(state[0][3].as_deref(), Some("true") | Some("1")));
        let run_row = rows(
            db,
            &format!("SELECT status FROM {} WHERE tenant = {}", db.ours("sync_runs"), db.dialect().param(1, ColType::Uuid)),
            &[&tenant.to_string()],
        )
        .await
        .unwrap();
        assert_eq!(run_row[0][0].as_deref(), Some("failed"));
        assert_eq!(count(db, tenant, "assets WHERE true").await, 0, "no partial device writes");
        store
    })
    .await;
}

/// Every kind of upstream fault on the agent list, for a whole run: bounded retries (at most the
/// client's 4 attempts per request, once for answers a retry cannot fix), the run ends in error
/// with the admin's message for that fault, and no device is written.
#[tokio::test]
async fn each_upstream_fault_ends_the_run_in_error_with_bounded_retries_and_no_device_written() {
    use rmm_shared::providers::tactical::error::{
        MSG_5XX, MSG_429, MSG_DASHBOARD_HOST, MSG_INVALID_RESPONSE, MSG_UNREACHABLE,
    };
    let store = stores::sqlite().await.unwrap();
    let db = &store.db;
    let faults: [(&str, Fault, &str, u64); 5] = [
        ("5xx", Fault::status(502), MSG_5XX, 4),
        ("429 with Retry-After", Fault::rate_limited("1"), MSG_429, 4),
        ("timeout", Fault::hang(), MSG_UNREACHABLE, 4),
        ("HTML", Fault::html(), MSG_DASHBOARD_HOST, 1),
        ("truncated JSON", Fault::truncate(), MSG_INVALID_RESPONSE, 1),
    ];
    for (label, fault, message, attempts) in faults {
        let sim = TacticalSim::start(SimConfig::with_fleet(FleetSpec::new(3, 2, 1, 5))).await.unwrap();
        let mut config = TacticalConfig::new(sim.base_url(), TacticalAuth::ApiKey(SecretString::from(DEFAULT_API_KEY)));
        config.http.retry.base_delay = std::time::Duration::from_millis(5);
        config.http.retry.max_delay = std::time::Duration::from_millis(20);
        config.http.request_timeout = std::time::Duration::from_millis(300);
        let tactical = TacticalClient::new(config).unwrap();
        let tenant = stores::tenant(db).await.unwrap();
        let integration = stores::integration(db, tenant, "tacticalrmm").await.unwrap();
        sync_organizations(db, tenant, integration, &tactical).await.unwrap();
        stores::map_each_scope(db, tenant, 2).await;
        sim.reset_counters();
        sim.inject(fault.on("GET /beta/v1/agent/"));

        let started = std::time::Instant::now();
        let run =
            Run::start(db, tenant, integration, "tacticalrmm", "sync-devices", RunKind::Full, "admin").await.unwrap();
        let report = sync_devices(db, tenant, &IngestRun::default(), integration, &tactical, DeviceSyncMode::Full)
            .await
            .unwrap();
        run.finish(db, &RunOutcome { counts: report.counts, errors: report.errors.clone(), cursor: None })
            .await
            .unwrap();
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "{label}: took {:?}", started.elapsed());
        assert_eq!((report.units, report.units_failed), (2, 2), "{label}: {report:?}");
        let hits = sim.hits("GET /beta/v1/agent/");
        assert_eq!(hits, 2 * attempts, "{label}: agent-list requests for 2 units");
        stores::assert_failed_run(db, tenant, "tacticalrmm", message, DEFAULT_API_KEY, label).await;
    }
    store.cleanup().await;
}

#[tokio::test]
async fn software_is_ingested_by_integer_agent_id_and_reruns_change_nothing() {
    stores::each_store(|store| async move {
        let sim = TacticalSim::start(SimConfig::with_fleet(FleetSpec::new(11, 2, 1, 6))).await.unwrap();
        let tactical = client_for(&sim);
        let db = &store.db;
        let tenant = stores::tenant(db).await.unwrap();
        let integration = stores::integration(db, tenant, "tacticalrmm").await.unwrap();
        sync_organizations(db, tenant, integration, &tactical).await.unwrap();
        let mapped = stores::map_each_scope(db, tenant, 1).await;
        sync_devices(db, tenant, &IngestRun::default(), integration, &tactical, DeviceSyncMode::Full).await.unwrap();

        let agents = sim.agents();
        let (ours, theirs): (Vec<_>, Vec<_>) =
            agents.iter().partition(|a| sim.client_of(a.id).map(|c| c.to_string()) == Some(mapped[0].0.clone()));
        let list = |n: usize| -> Vec<serde_json::Value> {
            (0..n)
                .map(|i| serde_json::json!({"name": format!("App {i}"), "version": "1.0", "publisher": "Acme", "location": "C:\\Apps", "install_date": "2026-01-02"}))
                .collect()
        };
        for a in &agents {
            sim.set_software(a.id, list(3));
        }
        // The webhook path refreshes an agent through the detail route, which has no integer pk:
        // the pk the mapping already had is kept.
        refresh_agent(db, tenant, &IngestRun::default(), integration, &tactical, &ours[0].agent_id).await.unwrap();

        let r = ingest_software(db, tenant, &tactical).await.unwrap();
        assert_eq!(r.items_processed as usize, 3 * agents.len(), "unmapped agents' items count as processed");
        assert_eq!(r.agents_unmapped as usize, theirs.len());
        assert_eq!((r.items_created as usize, r.items_updated as usize), (3 * ours.len(), ours.len()), "{r:?}");
        assert_eq!(count(db, tenant, "software_catalog WHERE true").await, 3);
        assert_eq!(count(db, tenant, "asset_software WHERE is_current").await as usize, 3 * ours.len());

        let again = ingest_software(db, tenant, &tactical).await.unwrap();
        assert_eq!(again.items_created, 0);
        assert_eq!(count(db, tenant, "asset_software WHERE true").await as usize, 3 * ours.len());

        sim.set_software(ours[0].id, list(2));
        let r = ingest_software(db, tenant, &tactical).await.unwrap();
        assert_eq!(r.items_created, 0);
        assert_eq!(count(db, tenant, "asset_software WHERE is_current").await as usize, 3 * ours.len() - 1);
        assert_eq!(count(db, tenant, "asset_software WHERE uninstalled_at IS NOT NULL").await, 1);
        store
    })
    .await;
}

#[tokio::test]
async fn webhook_alerts_and_the_backfill_follow_algapsa_recording_rules() {
    use rmm_shared::alerts::{AlertOutcome, record_alert};
    use rmm_shared::providers::tactical::alerts::{backfill_alerts, parse_webhook};

    stores::each_store(|store| async move {
        let sim = TacticalSim::start(SimConfig::with_fleet(FleetSpec { alerts: 0, ..FleetSpec::new(5, 1, 1, 6) }))
            .await
            .unwrap();
        let tactical = client_for(&sim);
        let db = &store.db;
        let tenant = stores::tenant(db).await.unwrap();
        let integration = stores::integration(db, tenant, "tacticalrmm").await.unwrap();
        sync_organizations(db, tenant, integration, &tactical).await.unwrap();
        stores::map_each_scope(db, tenant, 1).await;
        sync_devices(db, tenant, &IngestRun::default(), integration, &tactical, DeviceSyncMode::Full).await.unwrap();
        let agent = sim.agents()[0].clone();
        let now = Utc::now();
        let body = |extra: &str| format!(r#"{{"agent_id":"{}","severity":"error","message":"Disk C: low"{extra}}}"#, agent.agent_id);
        let record = |b: String| async move {
            let alert = parse_webhook(b.as_bytes()).unwrap().to_alert(integration, now);
            record_alert(db, tenant, &alert, false).await.unwrap()
        };

        // Trigger, redelivery, resolve, re-trigger.
        let AlertOutcome::Recorded { alert_id } = record(body(r#","alert_id":"100","event":"trigger""#)).await else {
            panic!("not recorded")
        };
        assert!(matches!(record(body(r#","alert_id":"100""#)).await, AlertOutcome::Skipped { .. }));
        assert_eq!(record(body(r#","alert_id":"100","event":"resolve""#)).await, AlertOutcome::Resolved { alert_id });
        assert!(matches!(record(body(r#","alert_id":"100","event":"resolve""#)).await, AlertOutcome::Skipped { .. }));
        assert_eq!(record(body(r#","alert_id":"100""#)).await, AlertOutcome::Recorded { alert_id });
        let d = db.dialect();
        let row = rows(
            db,
            &format!(
                "SELECT status, severity, CAST(asset_id IS NOT NULL AS TEXT), dedup_key, CAST(resolved_at IS NULL AS TEXT) \
                 FROM rmm_alerts WHERE tenant = {} AND alert_id = {}",
                d.param(1, ColType::Uuid),
                d.param(2, ColType::Uuid)
            ),
            &[&tenant.to_string(), &alert_id.to_string()],
        )
        .await
        .unwrap();
        assert_eq!(row[0][0].as_deref(), Some("active"));
        assert_eq!(row[0][1].as_deref(), Some("critical"), "Tactical's `error` maps to critical");
        assert!(matches!(row[0][2].as_deref(), Some("true") | Some("1")), "linked to the agent's asset");
        assert!(row[0][3].as_deref().unwrap().starts_with(&format!("{}|", agent.agent_id)));
        assert!(matches!(row[0][4].as_deref(), Some("true") | Some("1")), "reopening clears resolved_at");

        // A resolve without alert_id resolves the open alert of the same agent and condition.
        assert!(matches!(record(body(r#","check_id":"42","alert_time":"None""#)).await, AlertOutcome::Recorded { .. }));
        assert!(matches!(record(body(r#","check_id":"42","event":"resolve""#)).await, AlertOutcome::Resolved { .. }));

        // Backfill: active alerts recorded as polled; a polled alert gone remotely is resolved; the
        // webhook-recorded alert stays active.
        let a1 = sim.add_alert(agent.id, Default::default()).unwrap();
        let a2 = sim.add_alert(sim.agents()[1].id, Default::default()).unwrap();
        let r = backfill_alerts(db, tenant, integration, &tactical).await.unwrap();
        assert_eq!((r.items_processed, r.items_created, r.items_updated), (2, 2, 0), "{r:?}");
        let again = backfill_alerts(db, tenant, integration, &tactical).await.unwrap();
        assert_eq!((again.items_created, again.items_updated), (0, 0));
        assert!(sim.resolve_alert(a1));
        let r = backfill_alerts(db, tenant, integration, &tactical).await.unwrap();
        assert_eq!((r.items_processed, r.items_updated), (1, 1));
        let active = rows(
            db,
            &format!("SELECT external_alert_id FROM rmm_alerts WHERE tenant = {} AND status = 'active' ORDER BY 1", d.param(1, ColType::Uuid)),
            &[&tenant.to_string()],
        )
        .await
        .unwrap();
        let active: Vec<String> = active.into_iter().map(|r| r[0].clone().unwrap()).collect();
        let mut expected = vec!["100".to_string(), a2.to_string()];
        expected.sort();
        assert_eq!(active, expected);
        store
    })
    .await;
}

/// Agents whose `wmi_detail` is as large as real agents send (100 KB each, pages streamed by the
/// simulator): the page walk and the single-agent refresh write the same hardware fields as for
/// the recorded sizes, and no mapping keeps the WMI tree.
#[tokio::test]
async fn agents_with_large_wmi_detail_sync_their_hardware_fields() {
    stores::each_store(|store| async move {
        let fleet = FleetSpec { wmi_detail_kb: 100, ..FleetSpec::new(5, 2, 2, 10) };
        let sim = TacticalSim::start(SimConfig::with_fleet(fleet)).await.unwrap();
        let tactical = client_for(&sim);
        let db = &store.db;
        let d = db.dialect();
        let tenant = stores::tenant(db).await.unwrap();
        let integration = stores::integration(db, tenant, "tacticalrmm").await.unwrap();

        // The simulator really sends the padded size, as a chunked stream.
        let page = reqwest::Client::new()
            .get(format!("{}/beta/v1/agent/?page_size=1000", sim.base_url()))
            .header("x-api-key", DEFAULT_API_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(page.content_length(), None, "streamed");
        let page: serde_json::Value = serde_json::from_slice(&page.bytes().await.unwrap()).unwrap();
        let results = page["results"].as_array().unwrap();
        assert_eq!(results.len(), 40);
        for r in results {
            let wmi = serde_json::to_vec(&r["wmi_detail"]).unwrap().len();
            assert!((95 * 1024..110 * 1024).contains(&wmi), "wmi_detail of {} bytes", wmi);
        }

        sync_organizations(db, tenant, integration, &tactical).await.unwrap();
        stores::map_each_scope(db, tenant, 2).await;
        let report = sync_devices(db, tenant, &IngestRun::default(), integration, &tactical, DeviceSyncMode::Full)
            .await
            .unwrap();
        assert_eq!((report.counts.created, report.counts.failed), (40, 0), "{:?}", report.errors);
        // Refreshed through the detail route (its own padded `wmi_detail`, no `serial_number`).
        let agents = sim.agents();
        let windows = agents.iter().find(|a| a.plat.as_str() == "windows").unwrap();
        let outcome =
            refresh_agent(db, tenant, &IngestRun::default(), integration, &tactical, &windows.agent_id).await.unwrap();
        assert_eq!(outcome.action, IngestAction::Updated, "{outcome:?}");

        let written = rows(
            db,
            &format!(
                "SELECT m.external_entity_id, a.serial_number, COALESCE(w.lan_ip, s.lan_ip), \
                 COALESCE(w.cpu_model, s.cpu_model), CAST(COALESCE(w.system_info, s.system_info) AS TEXT), \
                 CAST(m.metadata AS TEXT) \
                 FROM tenant_external_entity_mappings m \
                 JOIN assets a ON a.tenant = m.tenant AND {} = m.alga_entity_id \
                 LEFT JOIN workstation_assets w ON w.tenant = a.tenant AND w.asset_id = a.asset_id \
                 LEFT JOIN server_assets s ON s.tenant = a.tenant AND s.asset_id = a.asset_id \
                 WHERE m.tenant = {} AND m.integration_type = 'tacticalrmm'",
                d.text("a.asset_id"),
                d.param(1, ColType::Uuid)
            ),
            &[&tenant.to_string()],
        )
        .await
        .unwrap();
        assert_eq!(written.len(), 40);
        for row in written {
            let a = agents.iter().find(|a| Some(a.agent_id.as_str()) == row[0].as_deref()).unwrap();
            let h = &a.hardware;
            let cpu = match a.plat.as_str() {
                "windows" => format!("{}, {}C/{}T", h.cpu, h.cores, h.threads),
                _ => h.cpu.clone(),
            };
            assert_eq!(row[1].as_deref(), Some(h.serial.as_str()), "{} serial", a.hostname);
            assert_eq!(row[2].as_deref(), Some(a.ipv4.as_str()), "{} lan_ip", a.hostname);
            assert_eq!(row[3].as_deref(), Some(cpu.as_str()), "{} cpu_model", a.hostname);
            let info: serde_json::Value = serde_json::from_str(row[4].as_deref().unwrap()).unwrap();
            assert_eq!(info["make_model"], a.make_model(), "{} make_model", a.hostname);
            let meta: serde_json::Value = serde_json::from_str(row[5].as_deref().unwrap()).unwrap();
            assert_eq!(meta["raw"]["hostname"], a.hostname.as_str());
            assert!(meta["raw"].get("wmi_detail").is_none() && meta["raw"].get("services").is_none(), "{meta}");
            assert!(row[5].as_ref().unwrap().len() < 16 * 1024, "{} bytes of metadata", row[5].as_ref().unwrap().len());
        }
        store
    })
    .await;
}

/// Units wait on Tactical together: every unit's request for a page is out at once (the server's
/// time holds no page turn), while at most `PAGES_IN_MEMORY` answers are read and held at a time
/// (the bound on memory, measured by `bench-tactical-sync --wmi-detail-kb 100`); every agent is
/// still written.
#[tokio::test]
async fn units_wait_on_tactical_together_and_every_agent_is_written() {
    let store = stores::postgres_with(20).await.unwrap();
    let sim = TacticalSim::start(SimConfig::with_fleet(FleetSpec::new(3, 4, 1, 12))).await.unwrap();
    sim.set_latency(std::time::Duration::from_millis(150));
    let mut config = TacticalConfig::new(sim.base_url(), TacticalAuth::ApiKey(SecretString::from(DEFAULT_API_KEY)));
    config.page_size = 4;
    let tactical = TacticalClient::new(config).unwrap();
    let db = &store.db;
    let tenant = stores::tenant(db).await.unwrap();
    let integration = stores::integration(db, tenant, "tacticalrmm").await.unwrap();
    sync_organizations(db, tenant, integration, &tactical).await.unwrap();
    stores::map_each_scope(db, tenant, 4).await;
    let units = plan_device_units(db, tenant, integration).await.unwrap();
    assert_eq!(units.len(), 4);
    let sites = SiteIndex::new(tactical.list_sites().await.unwrap());
    sim.reset_counters();
    let run = IngestRun::default();
    let runs = units
        .iter()
        .map(|u| sync_device_unit(db, tenant, &run, integration, &tactical, &sites, u, DeviceSyncMode::Full));
    let created: u64 = futures::future::join_all(runs).await.into_iter().map(|r| r.unwrap().counts.created).sum();
    assert_eq!(created, 48);
    assert_eq!(sim.hits("GET /beta/v1/agent/"), 12, "3 pages of 4 agents per unit");
    let most = sim.max_in_flight("GET /beta/v1/agent/");
    assert!(most > PAGES_IN_MEMORY as u64, "only {most} pages asked for at once by 4 units");
    store.cleanup().await;
}

/// Two white-box agents report `To Be Filled By O.E.M.` in their BIOS: two assets, the serial
/// stored as reported, and the device sync job counts them (job result, run, status page data).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placeholder_serials_from_tactical_are_counted_by_the_device_sync_job() {
    use rmm_jobs::{JobRequest, JobStatus, Trigger};
    use rmm_shared::config::QueueBackend;
    use rmm_tests::runtime::{Workers, fast_settings, mapped_tactical_tenant, runtime, wait_finished};

    stores::each_store(|store| async move {
        let db = &store.db;
        let dir = tempfile::tempdir().unwrap();
        let sim = TacticalSim::start(SimConfig::with_fleet(FleetSpec::new(3, 2, 1, 3))).await.unwrap();
        let agents = sim.agents();
        assert!(sim.set_serial(agents[0].id, "To Be Filled By O.E.M."));
        assert!(sim.set_serial(agents[4].id, "To Be Filled By O.E.M."));
        assert!(sim.set_serial(agents[5].id, "Default string"));
        let rt = runtime(db, fast_settings(QueueBackend::Database), dir.path()).await.unwrap();
        let (tenant, integration) = mapped_tactical_tenant(db, &rt, &sim).await;
        let workers = Workers::start(&rt);
        let id = rt
            .queue
            .enqueue(JobRequest::for_integration("sync-devices", tenant, "tacticalrmm", integration, Trigger::Admin))
            .await
            .unwrap();
        let job = wait_finished(&rt, &id, std::time::Duration::from_secs(60)).await;
        assert_eq!(job.status, JobStatus::Done, "{job:?}");
        let counts = &job.result.as_ref().unwrap()["counts"];
        assert_eq!((counts["created"].as_u64(), counts["placeholder_serials"].as_u64()), (Some(6), Some(3)), "{job:?}");
        let d = db.dialect();
        let white_box = rows(
            db,
            &format!(
                "SELECT CAST(asset_id AS TEXT) FROM assets WHERE tenant = {} AND serial_number = 'To Be Filled By O.E.M.'",
                d.param(1, ColType::Uuid)
            ),
            &[&tenant.to_string()],
        )
        .await
        .unwrap();
        assert_eq!(white_box.len(), 2, "two agents, two assets");
        assert_ne!(white_box[0], white_box[1]);
        let run = scalar(
            db,
            &format!(
                "SELECT CAST(items_placeholder_serials AS TEXT) FROM {} WHERE tenant = {} AND job_id = {}",
                db.ours("sync_runs"),
                d.param(1, ColType::Uuid),
                d.param(2, ColType::Text)
            ),
            &[&tenant.to_string(), &id],
        )
        .await
        .unwrap();
        assert_eq!(run.as_deref(), Some("3"));
        workers.stop().await;
        store
    })
    .await;
}
