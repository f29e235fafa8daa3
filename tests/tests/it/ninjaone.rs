//! NinjaOne end to end against its simulator: the token lifecycle (rotation, one refresh at a
//! time across clients, a refused refresh token, a token expired in the middle of a sync), the
//! organisation and device syncs (full with tombstones, incremental with the client-side
//! `lastContact` filter, one device) on PostgreSQL and SQLite, faults, and the jobs.

use rmm_shared::ingest::IngestRun;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rmm_shared::db::Db;
use rmm_shared::db::sql::ColType;
use rmm_shared::http::{HttpClient, HttpConfig};
use rmm_shared::ingest::IngestAction;
use rmm_shared::providers::ninjaone::client::{NinjaClient, NinjaConfig};
use rmm_shared::providers::ninjaone::error::NinjaError;
use rmm_shared::providers::ninjaone::secrets;
use rmm_shared::providers::ninjaone::sync::{DeviceSyncMode, refresh_device, sync_device_unit, sync_organizations};
use rmm_shared::providers::ninjaone::token::{
    Grant, OAuthApp, TokenStore, Tokens, read_credentials, write_credentials,
};
use rmm_shared::secrets::SecretStore;
use rmm_tests::sim::ninjaone::{NinjaFault, NinjaFleetSpec, NinjaSim, NinjaSimConfig};
use rmm_tests::stores::{self, count, rows, scalar};
use secrecy::SecretString;
use serde_json::{Value, json};
use uuid::Uuid;

struct Setup {
    tenant: Uuid,
    integration: Uuid,
    secrets: SecretStore,
    _dir: tempfile::TempDir,
}

async fn sim(spec: NinjaFleetSpec) -> NinjaSim {
    NinjaSim::start(NinjaSimConfig { fleet: spec, ..Default::default() }).await.unwrap()
}

/// A tenant with a NinjaOne integration pointing at `sim`, its app's id and secret, and tokens as
/// after an authorization (`ttl`: the access token's lifetime).
async fn setup(db: &Db, sim: &NinjaSim, ttl: Option<chrono::Duration>) -> Setup {
    let tenant = stores::tenant(db).await.unwrap();
    let integration = stores::integration(db, tenant, "ninjaone").await.unwrap();
    rmm_tests::runtime::point_at(db, tenant, "ninjaone", sim.base_url()).await;
    let dir = tempfile::tempdir().unwrap();
    let secrets =
        SecretStore::from_env([("SECRET_FS_BASE_PATH".to_owned(), dir.path().display().to_string())]).unwrap();
    let put = |name: &'static str, v: String| {
        let secrets = secrets.clone();
        async move { secrets.set_tenant_secret(tenant, name, Some(&SecretString::from(v))).await.unwrap() }
    };
    put(secrets::CLIENT_ID, sim.client_id().to_owned()).await;
    put(secrets::CLIENT_SECRET, sim.client_secret().to_owned()).await;
    put(secrets::CREDENTIALS, sim.authorize(ttl).to_string()).await;
    Setup { tenant, integration, secrets, _dir: dir }
}

/// A client as one worker process builds it (its own token cache and lease holder), with fast
/// retries and no rate limit.
fn client(db: &Db, sim: &NinjaSim, s: &Setup, page_size: u32) -> NinjaClient {
    let mut config = NinjaConfig::new(sim.base_url());
    config.page_size = page_size;
    config.http = HttpConfig { provider: "ninjaone", rate_limit: None, ..HttpConfig::default() };
    config.http.retry.base_delay = Duration::from_millis(5);
    config.http.retry.max_delay = Duration::from_millis(20);
    config.http.request_timeout = Duration::from_secs(5);
    let http = HttpClient::new(config.http.clone()).unwrap();
    let store = TokenStore { db: db.clone(), secrets: s.secrets.clone(), tenant: s.tenant, integration: s.integration };
    let app = OAuthApp {
        client_id: sim.client_id().to_owned(),
        client_secret: SecretString::from(sim.client_secret().to_owned()),
    };
    let base = url::Url::parse(&format!("{}/", sim.base_url())).unwrap();
    NinjaClient::new(config, http, Arc::new(Tokens::new(store, app, Grant::AuthorizationCode, base))).unwrap()
}

async fn settings(db: &Db, s: &Setup) -> Value {
    let text = scalar(
        db,
        &format!(
            "SELECT CAST(settings AS TEXT) FROM rmm_integrations WHERE tenant = {} AND integration_id = {}",
            db.dialect().param(1, ColType::Uuid),
            db.dialect().param(2, ColType::Uuid)
        ),
        &[&s.tenant.to_string(), &s.integration.to_string()],
    )
    .await
    .unwrap();
    text.and_then(|t| serde_json::from_str(&t).ok()).unwrap_or(Value::Null)
}

// ---- tokens ---------------------------------------------------------------------------------

/// Four "processes" find the access token expired at once: exactly one refresh reaches NinjaOne,
/// the new refresh token is stored (rotated), and every client goes on with the new access token.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ninjaone_one_refresh_at_a_time_across_clients_and_the_rotated_token_is_stored() {
    stores::each_store(|store| async move {
        let db = &store.db;
        let sim = sim(NinjaFleetSpec::default()).await;
        let s = setup(db, &sim, Some(chrono::Duration::seconds(-60))).await;
        let before = read_credentials(&s.secrets, s.tenant).await.unwrap().unwrap();
        let clients: Vec<NinjaClient> = (0..4).map(|_| client(db, &sim, &s, 100)).collect();
        let results = futures::future::join_all(clients.iter().map(|c| c.test_connection())).await;
        for r in &results {
            assert!(r.is_ok(), "{r:?}");
        }
        assert_eq!(sim.token_requests(), vec!["refresh_token"], "one refresh for four clients");
        let after = read_credentials(&s.secrets, s.tenant).await.unwrap().unwrap();
        assert_ne!(after.refresh_token, before.refresh_token, "the rotated refresh token is stored");
        assert_ne!(after.access_token, before.access_token);
        assert!(after.expires_at > Utc::now().timestamp_millis() + 3_000_000);
        let lifecycle = &settings(db, &s).await["tokenLifecycle"];
        assert!(lifecycle.get("refreshLease").is_none(), "the lease is released: {lifecycle}");
        assert_eq!(lifecycle["status"], json!("active"));
        assert!(lifecycle["lastRefreshedAt"].is_string());
        // A valid token is not refreshed again.
        clients[0].test_connection().await.unwrap();
        assert_eq!(sim.token_requests().len(), 1);
        store
    })
    .await;
}

/// A refresh token NinjaOne refuses (spent elsewhere): `reconnect_required` with the reason in
/// `sync_error`; later clients do not call NinjaOne at all; a new authorization clears it.
#[tokio::test]
async fn ninjaone_a_refused_refresh_token_requires_a_reconnect() {
    stores::each_store(|store| async move {
        let db = &store.db;
        let sim = sim(NinjaFleetSpec::default()).await;
        let s = setup(db, &sim, Some(chrono::Duration::seconds(-60))).await;
        // Someone else (AlgaPSA, an old copy) spends the refresh token first.
        let mut creds = read_credentials(&s.secrets, s.tenant).await.unwrap().unwrap();
        let c = client(db, &sim, &s, 100);
        c.test_connection().await.unwrap();
        creds.expires_at = 0;
        write_credentials(&s.secrets, s.tenant, &creds).await.unwrap();
        let e = client(db, &sim, &s, 100).test_connection().await.unwrap_err();
        assert!(matches!(e, NinjaError::ReconnectRequired), "{e}");
        assert_eq!(sim.token_requests(), vec!["refresh_token", "refresh_token"]);
        let st = settings(db, &s).await;
        assert_eq!(st["tokenLifecycle"]["status"], json!("reconnect_required"), "{st}");
        assert!(st["tokenLifecycle"].get("refreshLease").is_none());
        let err = scalar(
            db,
            &format!("SELECT sync_error FROM rmm_integrations WHERE tenant = {}", db.dialect().param(1, ColType::Uuid)),
            &[&s.tenant.to_string()],
        )
        .await
        .unwrap()
        .unwrap();
        assert!(err.contains("invalid_grant") && err.contains("reconnect"), "{err}");
        // No more refresh attempts while the state says so.
        let e = client(db, &sim, &s, 100).test_connection().await.unwrap_err();
        assert!(matches!(e, NinjaError::ReconnectRequired), "{e}");
        assert_eq!(sim.token_requests().len(), 2);
        // A new authorization clears the state.
        let store_ =
            TokenStore { db: db.clone(), secrets: s.secrets.clone(), tenant: s.tenant, integration: s.integration };
        rmm_shared::providers::ninjaone::token::mark_authorized(&store_).await.unwrap();
        s.secrets
            .set_tenant_secret(
                s.tenant,
                secrets::CREDENTIALS,
                Some(&SecretString::from(sim.authorize(None).to_string())),
            )
            .await
            .unwrap();
        client(db, &sim, &s, 100).test_connection().await.unwrap();
        store
    })
    .await;
}

/// NinjaOne drops the access token in the middle of a device walk: the client renews it once
/// (one refresh) and the walk continues to the end.
#[tokio::test]
async fn ninjaone_an_access_token_expired_mid_sync_is_renewed_once_and_the_run_continues() {
    let store = stores::sqlite().await.unwrap();
    let db = &store.db;
    let sim = sim(NinjaFleetSpec { organizations: 2, devices: 40, ..Default::default() }).await;
    let s = setup(db, &sim, None).await;
    let c = client(db, &sim, &s, 5);
    sync_organizations(db, s.tenant, s.integration, &c).await.unwrap();
    let mapped = stores::map_each_scope(db, s.tenant, 1).await;
    sim.inject(NinjaFault::Pass, Some(2));
    sim.inject(NinjaFault::ExpireTokens, Some(1));
    let (report, read) =
        sync_device_unit(db, s.tenant, &IngestRun::default(), s.integration, &c, &mapped[0].0, DeviceSyncMode::Full)
            .await
            .unwrap();
    assert_eq!((report.counts.created, report.counts.failed), (20, 0), "{:?}", report.errors);
    assert_eq!(read.listed, 20);
    assert_eq!(sim.token_requests(), vec!["refresh_token"]);
    store.cleanup().await;
}

// ---- syncs ----------------------------------------------------------------------------------

#[tokio::test]
async fn ninjaone_organisations_then_full_incremental_and_single_device_syncs() {
    stores::each_store(|store| async move {
        let db = &store.db;
        let sim = sim(NinjaFleetSpec { organizations: 3, devices: 48, ..Default::default() }).await;
        let s = setup(db, &sim, None).await;
        let c = client(db, &sim, &s, 7);
        let (tenant, integration) = (s.tenant, s.integration);

        let r = sync_organizations(db, tenant, integration, &c).await.unwrap();
        assert_eq!((r.processed, r.created, r.updated), (3, 3, 0));
        let mapped = stores::map_each_scope(db, tenant, 2).await;
        let r = sync_organizations(db, tenant, integration, &c).await.unwrap();
        assert_eq!((r.processed, r.created, r.updated), (3, 0, 3));
        assert_eq!(count(db, tenant, "rmm_organization_mappings WHERE client_id IS NOT NULL").await, 2);

        // Full: each mapped organisation's devices, paged 7 at a time with `after`.
        for (scope, _) in &mapped {
            let (report, read) =
                sync_device_unit(db, tenant, &IngestRun::default(), integration, &c, scope, DeviceSyncMode::Full)
                    .await
                    .unwrap();
            assert_eq!((report.counts.created, report.counts.failed), (16, 0), "{:?}", report.errors);
            assert_eq!((read.listed, read.filtered_out), (16, 0));
        }
        let listing: Vec<String> =
            sim.requests().into_iter().filter(|r| r.starts_with("GET /v2/devices-detailed")).collect();
        assert!(listing.iter().all(|r| r.contains("df=org+%3D+")), "{listing:?}");
        assert!(listing.iter().any(|r| r.contains("after=")), "{listing:?}");
        assert_eq!(count(db, tenant, "assets WHERE rmm_provider = 'ninjaone'").await, 32);
        let org_devices: Vec<_> = sim
            .devices()
            .into_iter()
            .filter(|d| mapped.iter().any(|(s, _)| *s == d.organization_id.to_string()))
            .collect();
        let servers =
            org_devices.iter().filter(|d| d.node_class.contains("SERVER") || d.node_class.contains("GUEST")).count()
                as i64;
        assert_eq!(count(db, tenant, "assets WHERE asset_type = 'server'").await, servers);
        assert_eq!(count(db, tenant, "server_assets WHERE true").await, servers);
        assert_eq!(count(db, tenant, "workstation_assets WHERE true").await, 32 - servers);
        // The mapping of one server, column by column.
        let dev = org_devices.iter().find(|d| d.node_class == "HYPERV_VMM_GUEST").unwrap();
        let d = db.dialect();
        let row = rows(
            db,
            &format!(
                "SELECT a.name, a.serial_number, a.agent_status, a.status, a.location, s.os_type, s.lan_ip, s.wan_ip, \
                 s.current_user, CAST(s.ram_gb AS TEXT), s.cpu_model, CAST(s.system_info AS TEXT), a.asset_tag \
                 FROM assets a JOIN server_assets s ON s.tenant = a.tenant AND s.asset_id = a.asset_id \
                 WHERE a.tenant = {} AND a.rmm_device_id = {}",
                d.param(1, ColType::Uuid),
                d.param(2, ColType::Text)
            ),
            &[&tenant.to_string(), &dev.id.to_string()],
        )
        .await
        .unwrap();
        let r = &row[0];
        assert_eq!(r[0].as_deref(), Some(dev.name.as_str()));
        assert_eq!(r[1].as_deref(), Some(dev.serial.as_str()));
        assert_eq!(r[2].as_deref(), Some(if dev.offline { "offline" } else { "online" }));
        assert_eq!(r[4].as_deref(), Some("Main office"));
        assert_eq!(r[5].as_deref(), Some("Windows"));
        assert!(r[6].as_deref().unwrap().starts_with("10."), "{r:?}");
        assert!(r[7].as_deref().unwrap().starts_with("203.0.113."));
        assert_eq!(r[8].as_deref(), Some(dev.user.as_str()));
        assert_eq!(r[9].as_deref().map(|v| v.parse::<f64>().unwrap()), Some(f64::from(dev.ram_gib)));
        assert!(r[11].as_deref().unwrap().contains("Hyper-V"), "{r:?}");
        assert_eq!(r[12].as_deref(), Some(format!("NINJA-{}", dev.serial).as_str()));

        // Incremental: the org filter on the server, lastContact on our side.
        let since = Utc::now() - chrono::Duration::hours(1);
        let scope = &mapped[0].0;
        let in_org: Vec<_> = org_devices.iter().filter(|d| d.organization_id.to_string() == *scope).collect();
        for (k, dev) in in_org.iter().enumerate() {
            let at = if k % 2 == 0 { Utc::now() } else { Utc::now() - chrono::Duration::days(2) };
            sim.update_device(dev.id, |d| d.last_contact = at.timestamp() as f64);
        }
        let (report, read) = sync_device_unit(
            db,
            tenant,
            &IngestRun::default(),
            integration,
            &c,
            scope,
            DeviceSyncMode::Incremental { since },
        )
        .await
        .unwrap();
        assert_eq!(read.listed as usize, in_org.len());
        assert_eq!(read.filtered_out as usize, in_org.len() / 2);
        assert_eq!(report.counts.processed as usize, in_org.len() - in_org.len() / 2);
        assert_eq!((report.counts.created, report.counts.deleted), (0, 0));

        // A device removed from NinjaOne is tombstoned by the next full pass, not by an incremental one.
        let gone = in_org[0].id;
        sim.remove_device(gone);
        let (report, _) = sync_device_unit(
            db,
            tenant,
            &IngestRun::default(),
            integration,
            &c,
            scope,
            DeviceSyncMode::Incremental { since },
        )
        .await
        .unwrap();
        assert_eq!(report.counts.deleted, 0);
        // A dry run of the full pass plans the tombstone and writes nothing.
        let history = format!("{} WHERE action = 'tombstoned'", db.ours("asset_history"));
        let dry = IngestRun::dry();
        sync_device_unit(db, tenant, &dry, integration, &c, scope, DeviceSyncMode::Full).await.unwrap();
        let plan = dry.take_dry_run().expect("a plan");
        let org = &plan.organizations[scope.as_str()];
        assert_eq!((org.tombstone, org.create, org.update), (1, 0, 0), "{plan:?}");
        assert_eq!(org.changes[0].external_device_id, gone.to_string());
        assert_eq!(count(db, tenant, "assets WHERE status = 'inactive'").await, 0, "the dry run wrote nothing");
        assert_eq!(count(db, tenant, &history).await, 0);
        let (report, _) =
            sync_device_unit(db, tenant, &IngestRun::default(), integration, &c, scope, DeviceSyncMode::Full)
                .await
                .unwrap();
        assert_eq!((report.counts.deleted, report.counts.created), (1, 0), "{:?}", report.errors);
        assert_eq!(count(db, tenant, &history).await, 1);
        let status = scalar(
            db,
            &format!(
                "SELECT status FROM assets WHERE tenant = {} AND rmm_device_id = {}",
                d.param(1, ColType::Uuid),
                d.param(2, ColType::Text)
            ),
            &[&tenant.to_string(), &gone.to_string()],
        )
        .await
        .unwrap();
        assert_eq!(status.as_deref(), Some("inactive"));
        let (report, _) =
            sync_device_unit(db, tenant, &IngestRun::default(), integration, &c, scope, DeviceSyncMode::Full)
                .await
                .unwrap();
        assert_eq!(report.counts.deleted, 0, "a tombstone is written once");

        // One device (the webhook path); an unknown one is skipped.
        let one = in_org[1].id;
        sim.update_device(one, |d| d.name = "RENAMED-01".into());
        let outcome =
            refresh_device(db, tenant, &IngestRun::default(), integration, &c, &one.to_string()).await.unwrap();
        assert_eq!(outcome.action, IngestAction::Updated, "{outcome:?}");
        let name = scalar(
            db,
            &format!(
                "SELECT name FROM assets WHERE tenant = {} AND rmm_device_id = {}",
                d.param(1, ColType::Uuid),
                d.param(2, ColType::Text)
            ),
            &[&tenant.to_string(), &one.to_string()],
        )
        .await
        .unwrap();
        assert_eq!(name.as_deref(), Some("RENAMED-01"));
        let missing = refresh_device(db, tenant, &IngestRun::default(), integration, &c, "999999").await.unwrap();
        assert_eq!(missing.action, IngestAction::Skipped);
        store
    })
    .await;
}

// ---- patches --------------------------------------------------------------------------------

/// Per NinjaOne device id: (pending, pending OS, pending software, failed) (-1 for NULL) and
/// whether `last_patch_scan_at` is set.
type PatchRow = (i64, (i64, i64, i64, i64), bool);

async fn patch_counts(db: &Db, tenant: Uuid) -> Vec<PatchRow> {
    let sql = format!(
        "SELECT a.rmm_device_id, CAST(e.pending_patches AS TEXT), CAST(e.pending_os_patches AS TEXT), \
         CAST(e.pending_software_patches AS TEXT), CAST(e.failed_patches AS TEXT), CAST(e.last_patch_scan_at AS TEXT) \
         FROM assets a JOIN (SELECT tenant, asset_id, pending_patches, pending_os_patches, pending_software_patches, \
         failed_patches, last_patch_scan_at FROM workstation_assets UNION ALL SELECT tenant, asset_id, pending_patches, \
         pending_os_patches, pending_software_patches, failed_patches, last_patch_scan_at FROM server_assets) e \
         ON e.tenant = a.tenant AND e.asset_id = a.asset_id WHERE a.tenant = {} ORDER BY a.rmm_device_id",
        db.dialect().param(1, ColType::Uuid)
    );
    let n = |v: &Option<String>| v.as_deref().map_or(-1, |v| v.parse::<i64>().unwrap());
    rows(db, &sql, &[&tenant.to_string()])
        .await
        .unwrap()
        .iter()
        .map(|r| (r[0].as_deref().unwrap().parse().unwrap(), (n(&r[1]), n(&r[2]), n(&r[3]), n(&r[4])), r[5].is_some()))
        .collect()
}

/// Pending patch counts from the fleet-wide reports and from the per-device reads agree with what
/// NinjaOne holds; the reports take a few calls for the whole fleet; a device sync leaves the
/// counts alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ninjaone_patch_counts_from_the_fleet_reports_or_per_device_and_the_device_sync_keeps_them() {
    use rmm_shared::providers::ninjaone::patches::{PatchSource, sync_patches};
    stores::each_store(|store| async move {
        let db = &store.db;
        let spec = NinjaFleetSpec { organizations: 2, devices: 40, patches_per_device: 3, ..Default::default() };
        let sim = sim(spec.clone()).await;
        let s = setup(db, &sim, None).await;
        let c = client(db, &sim, &s, 10);
        let (tenant, integration) = (s.tenant, s.integration);
        sync_organizations(db, tenant, integration, &c).await.unwrap();
        let mapped = stores::map_each_scope(db, tenant, 1).await;
        sync_device_unit(db, tenant, &IngestRun::default(), integration, &c, &mapped[0].0, DeviceSyncMode::Full)
            .await
            .unwrap();
        let mapped_devices: Vec<i64> =
            sim.devices().iter().filter(|d| d.organization_id.to_string() == mapped[0].0).map(|d| d.id).collect();
        assert_eq!(mapped_devices.len(), 20);
        // Before any patch sync the counts are unknown.
        assert!(patch_counts(db, tenant).await.iter().all(|(_, c, scanned)| *c == (-1, -1, -1, -1) && !scanned));

        let expected: Vec<PatchRow> = mapped_devices
            .iter()
            .map(|id| {
                let (os, sw, failed) = rmm_tests::sim::ninjaone::expected_patch_counts(&spec, *id);
                (*id, (os + sw, os, sw, failed), true)
            })
            .collect();
        assert!(expected.iter().any(|(_, c, _)| c.3 > 0) && expected.iter().any(|(_, c, _)| c.0 == 0));

        sim.reset_log();
        let r = sync_patches(db, tenant, &c, PatchSource::Reports).await.unwrap();
        assert_eq!(patch_counts(db, tenant).await, expected);
        assert_eq!(r.items_updated, 20, "{r:?}");
        let unmapped_with_rows = sim
            .devices()
            .iter()
            .filter(|d| !mapped_devices.contains(&d.id) && (d.id % 3 != 0 || d.id % 2 == 0))
            .count();
        assert_eq!(r.devices_unmapped, unmapped_with_rows as u64, "{r:?}");
        let report_calls =
            sim.request_count("GET /v2/queries/os-patches") + sim.request_count("GET /v2/queries/software-patches");
        assert_eq!(r.calls as usize, report_calls);
        assert!(report_calls > 2, "paged with the cursor: {report_calls}");
        assert_eq!(sim.request_count("GET /v2/device/"), 0, "no per-device calls");
        assert!(sim.requests().iter().any(|q| q.starts_with("GET /v2/queries/os-patches") && q.contains("cursor=")));

        // The device sync leaves the counts as they are.
        sync_device_unit(db, tenant, &IngestRun::default(), integration, &c, &mapped[0].0, DeviceSyncMode::Full)
            .await
            .unwrap();
        assert_eq!(patch_counts(db, tenant).await, expected);

        // Per device: the same counts, two calls per mapped device; a device NinjaOne no longer
        // has keeps its counts.
        let gone = mapped_devices[1];
        sim.remove_device(gone);
        sim.reset_log();
        let r = sync_patches(db, tenant, &c, PatchSource::PerDevice).await.unwrap();
        assert_eq!(patch_counts(db, tenant).await, expected);
        assert_eq!(r.items_updated, 19, "{r:?}");
        assert_eq!(sim.request_count("GET /v2/device/"), 2 * 19 + 1);
        assert_eq!(sim.request_count("GET /v2/queries/"), 0);
        store
    })
    .await;
}

// ---- faults ---------------------------------------------------------------------------------

/// Each NinjaOne fault over a whole organisation walk: retried when a retry can help (5xx, 429
/// with `Retry-After`), reported with what to do when not (HTML, a body cut short, 403), and no
/// device written by a failed walk.
#[tokio::test]
async fn ninjaone_faults_are_retried_or_reported_and_write_nothing_partial() {
    let store = stores::sqlite().await.unwrap();
    let db = &store.db;
    let sim = sim(NinjaFleetSpec { organizations: 1, devices: 6, ..Default::default() }).await;
    let s = setup(db, &sim, None).await;
    let c = client(db, &sim, &s, 100);
    sync_organizations(db, s.tenant, s.integration, &c).await.unwrap();
    let mapped = stores::map_each_scope(db, s.tenant, 1).await;
    let scope = mapped[0].0.clone();

    // Transient: retried in place, the walk completes.
    for fault in [NinjaFault::Status(502), NinjaFault::RateLimited("1".into())] {
        sim.reset_log();
        sim.inject(fault.clone(), Some(2));
        let (report, _) =
            sync_device_unit(db, s.tenant, &IngestRun::default(), s.integration, &c, &scope, DeviceSyncMode::Full)
                .await
                .unwrap();
        assert_eq!(report.counts.failed, 0, "{fault:?}: {:?}", report.errors);
        assert_eq!(report.counts.processed, 6, "{fault:?}");
        assert_eq!(sim.request_count("GET /v2/devices-detailed"), 3, "{fault:?}: two failures, then the page");
    }
    // Not transient, or not fixed by retries: the walk fails with the admin's message.
    let cases: [(NinjaFault, &str, bool); 4] = [
        (NinjaFault::Html, "HTML page instead of JSON", false),
        (NinjaFault::Truncated, "truncated JSON", true),
        (NinjaFault::Status(403), "refused access (403)", false),
        (NinjaFault::Status(503), "server error (503)", true),
    ];
    let assets_before = count(db, s.tenant, "assets WHERE true").await;
    for (fault, message, transient) in cases {
        sim.remove_device(sim.devices()[0].id);
        sim.inject(fault.clone(), None);
        let e = sync_device_unit(db, s.tenant, &IngestRun::default(), s.integration, &c, &scope, DeviceSyncMode::Full)
            .await
            .unwrap_err();
        let rmm_shared::providers::ninjaone::sync::SyncError::Ninja(e) = e else { panic!("{fault:?}: {e}") };
        assert!(e.to_string().contains(message), "{fault:?}: {e}");
        assert_eq!(e.is_transient(), transient, "{fault:?}: {e}");
        sim.clear_faults();
        // No tombstone from a walk that did not finish.
        assert_eq!(count(db, s.tenant, "assets WHERE status = 'inactive'").await, 0, "{fault:?}");
    }
    assert_eq!(count(db, s.tenant, "assets WHERE true").await, assets_before);
    store.cleanup().await;
}

// ---- jobs -----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ninjaone_admin_api_saves_tests_and_runs_the_jobs_and_skips_a_reconnect_required_integration() {
    use reqwest::Method;
    use rmm_jobs::JobStatus;
    use rmm_shared::config::QueueBackend;
    use rmm_tests::runtime::{Ingress, Workers, fast_settings, runtime, wait_finished};
    const KEY: &str = "ninjaone-admin-bootstrap-key-0123456789";
    stores::each_store(|store| async move {
        let db = &store.db;
        let dir = tempfile::tempdir().unwrap();
        let sim = sim(NinjaFleetSpec { organizations: 2, devices: 10, ..Default::default() }).await;
        let mut settings = fast_settings(QueueBackend::Database);
        settings.upstream.ninjaone_requests_per_second = 0;
        settings.upstream.ninjaone_page_size = 3;
        let rt = runtime(db, settings, dir.path()).await.unwrap();
        let ing = Ingress::start(&rt, Some(KEY)).await;
        let tenant = stores::tenant(db).await.unwrap();
        let base = format!("/tenants/{tenant}/integrations/ninjaone");

        // Foreign fields and bad regions are refused.
        let (s, b) = ing.api(Method::PUT, &base, KEY, Some(json!({"api_key": "x"}))).await;
        assert_eq!(s, 400, "{b}");
        let (s, b) = ing.api(Method::PUT, &base, KEY, Some(json!({"region": "MARS"}))).await;
        assert_eq!(s, 400, "{b}");
        let (s, b) = ing
            .api(
                Method::PUT,
                &base,
                KEY,
                Some(json!({"instance_url": sim.base_url(), "region": "eu", "client_id": sim.client_id(),
                            "client_secret": sim.client_secret()})),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["credentials"]["clientId"], json!(sim.client_id()));
        assert_eq!(b["credentials"]["region"], json!("EU"));
        assert_eq!(b["credentials"]["authorized"], json!(false));
        assert!(!b.to_string().contains(sim.client_secret()), "the secret is never returned");
        // Not authorized yet: the test says so.
        let (_, b) = ing.api(Method::POST, &format!("{base}/test"), KEY, Some(json!({}))).await;
        assert_eq!(b["success"], json!(false), "{b}");
        assert!(b["error"].as_str().unwrap().contains("authorize"), "{b}");
        // The authorization-code flow: the authorize URL (signed state), NinjaOne's consent
        // (the simulator consents at once), the callback exchanging the code.
        let (s, b) = ing.api(Method::GET, &format!("{base}/authorize"), KEY, None).await;
        assert_eq!(s, 200, "{b}");
        let authorize = url::Url::parse(b["url"].as_str().unwrap()).unwrap();
        assert!(authorize.as_str().starts_with(&format!("{}/oauth/authorize?", sim.base_url())), "{authorize}");
        let q: std::collections::HashMap<String, String> = authorize.query_pairs().into_owned().collect();
        assert_eq!(q["scope"], "monitoring management offline_access");
        assert_eq!(q["redirect_uri"], b["redirectUri"].as_str().unwrap());
        assert!(q["redirect_uri"].ends_with("/api/integrations/ninjaone/callback"));
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let consent = http.get(authorize.clone()).send().await.unwrap();
        assert_eq!(consent.status().as_u16(), 302);
        let back = url::Url::parse(consent.headers()["location"].to_str().unwrap()).unwrap();
        let callback = |query: String| {
            let http = http.clone();
            let url = ing.url(&format!("/api/integrations/ninjaone/callback?{query}"));
            async move {
                let r = http.get(url).send().await.unwrap();
                (r.status().as_u16(), r.json::<Value>().await.unwrap())
            }
        };
        // A state that was tampered with is refused, and the code is not spent.
        let tampered = back.query().unwrap().replace(&tenant.to_string(), &Uuid::new_v4().to_string());
        let (s, b) = callback(tampered).await;
        assert_eq!(s, 400, "{b}");
        let (s, b) = callback(back.query().unwrap().to_owned()).await;
        assert_eq!((s, &b["success"]), (200, &json!(true)), "{b}");
        assert_eq!(sim.token_requests(), vec!["authorization_code"]);
        assert!(read_credentials(&rt.secrets, tenant).await.unwrap().unwrap().refresh_token.is_some());
        let (_, b) = ing.api(Method::POST, &format!("{base}/test"), KEY, Some(json!({}))).await;
        assert_eq!(b["success"], json!(true), "{b}");
        // Tanium has no OAuth step.
        let (s, _) = ing.api(Method::GET, &format!("/tenants/{tenant}/integrations/tanium/authorize"), KEY, None).await;
        assert_eq!(s, 404);

        let workers = Workers::start(&rt);
        let (s, b) = ing.api(Method::POST, &format!("{base}/jobs/sync-org"), KEY, Some(json!({}))).await;
        assert_eq!(s, 202, "{b}");
        let job = wait_finished(&rt, b["job_id"].as_str().unwrap(), Duration::from_secs(30)).await;
        assert_eq!(job.status, JobStatus::Done, "{job:?}");
        stores::map_each_scope(db, tenant, usize::MAX).await;
        let (s, b) = ing.api(Method::POST, &format!("{base}/jobs/ninjaone-sync-devices"), KEY, Some(json!({}))).await;
        assert_eq!(s, 202, "{b}");
        let job = wait_finished(&rt, b["job_id"].as_str().unwrap(), Duration::from_secs(60)).await;
        assert_eq!(job.status, JobStatus::Done, "{job:?}");
        let result = job.result.clone().unwrap();
        assert_eq!(result["counts"]["created"], json!(10), "{result}");
        assert_eq!(result["counts"]["units"], json!(2), "{result}");
        assert_eq!(count(db, tenant, "assets WHERE rmm_provider = 'ninjaone'").await, 10);

        // Incremental: says which filter ran where.
        let (_, b) = ing
            .api(
                Method::POST,
                &format!("{base}/jobs/ninjaone-sync-devices"),
                KEY,
                Some(json!({"args": {"mode": "incremental"}})),
            )
            .await;
        let job = wait_finished(&rt, b["job_id"].as_str().unwrap(), Duration::from_secs(60)).await;
        assert_eq!(job.status, JobStatus::Done, "{job:?}");
        let detail = &job.result.as_ref().unwrap()["detail"];
        assert_eq!(detail["mode"], json!("incremental"), "{detail}");
        assert!(detail["filter"]["client"].as_str().unwrap().contains("lastContact"), "{detail}");

        // Software from the fleet-wide report, paged with its cursor.
        let (_, b) =
            ing.api(Method::POST, &format!("{base}/jobs/ninjaone-ingest-software"), KEY, Some(json!({}))).await;
        let job = wait_finished(&rt, b["job_id"].as_str().unwrap(), Duration::from_secs(60)).await;
        assert_eq!(job.status, JobStatus::Done, "{job:?}");
        let counts = job.result.as_ref().unwrap()["counts"].clone();
        assert_eq!((counts["processed"].as_u64(), counts["updated"].as_u64()), (Some(30), Some(10)), "{counts}");
        assert!(counts["pages"].as_u64().unwrap() > 1, "{counts}");
        assert_eq!(count(db, tenant, "asset_software WHERE true").await, 30);
        assert!(sim.requests().iter().any(|r| r.starts_with("GET /v2/queries/software") && r.contains("cursor=")));
        assert_eq!(sim.request_count("GET /v2/device/"), 0, "no per-device software calls");

        // Patch counts: the fleet reports by default, per device when asked; bad arguments refused.
        for (args, source) in [(json!({}), "reports"), (json!({"args": {"source": "per_device"}}), "per_device")] {
            let (_, b) = ing.api(Method::POST, &format!("{base}/jobs/ninjaone-sync-patches"), KEY, Some(args)).await;
            let job = wait_finished(&rt, b["job_id"].as_str().unwrap(), Duration::from_secs(60)).await;
            assert_eq!(job.status, JobStatus::Done, "{job:?}");
            let result = job.result.clone().unwrap();
            assert_eq!(result["detail"]["source"], json!(source), "{result}");
            assert_eq!(result["counts"]["updated"], json!(10), "{result}");
        }
        assert_eq!(
            count(db, tenant, "workstation_assets WHERE last_patch_scan_at IS NOT NULL").await
                + count(db, tenant, "server_assets WHERE last_patch_scan_at IS NOT NULL").await,
            10
        );
        let (status, b) = ing
            .api(
                Method::POST,
                &format!("{base}/jobs/ninjaone-sync-patches"),
                KEY,
                Some(json!({"args": {"source": "all"}})),
            )
            .await;
        assert_eq!(status, 400, "{b}");

        // A refused refresh token: the next jobs are skipped with that reason, NinjaOne is not called.
        let mut creds = read_credentials(&rt.secrets, tenant).await.unwrap().unwrap();
        creds.expires_at = 0;
        creds.refresh_token = Some("rt-spent".into());
        write_credentials(&rt.secrets, tenant, &creds).await.unwrap();
        let (_, b) = ing.api(Method::POST, &format!("{base}/jobs/sync-org"), KEY, Some(json!({}))).await;
        let job = wait_finished(&rt, b["job_id"].as_str().unwrap(), Duration::from_secs(30)).await;
        assert_eq!(job.status, JobStatus::Failed, "the refused refresh fails the run that met it: {job:?}");
        sim.reset_log();
        let (_, b) = ing.api(Method::POST, &format!("{base}/jobs/ninjaone-sync-devices"), KEY, Some(json!({}))).await;
        let job = wait_finished(&rt, b["job_id"].as_str().unwrap(), Duration::from_secs(30)).await;
        assert_eq!(
            (job.status, job.last_error.as_deref()),
            (JobStatus::Skipped, Some("reconnect_required")),
            "{job:?}"
        );
        assert!(sim.requests().is_empty() && sim.token_requests().is_empty());
        let (_, view) = ing.api(Method::GET, &base, KEY, None).await;
        assert_eq!(view["credentials"]["reconnectRequired"], json!(true), "{view}");
        let metrics = reqwest::get(ing.url("/metrics")).await.unwrap().text().await.unwrap();
        assert!(metrics.contains("rmm_sync_integrations_reconnect_required{provider=\"ninjaone\"} 1"), "{metrics}");
        workers.stop().await;
        drop(ing);
        store
    })
    .await;
}

// ---- webhooks and alerts --------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ninjaone_webhooks_register_authenticate_record_alerts_and_refresh_devices_and_the_backfill_resets_on_request()
{
    use reqwest::Method;
    use rmm_jobs::JobStatus;
    use rmm_shared::config::QueueBackend;
    use rmm_shared::secrets::hmac_sha256_hex;
    use rmm_tests::runtime::{Ingress, Workers, fast_settings, runtime, wait_finished};
    const KEY: &str = "ninjaone-admin-bootstrap-key-0123456789";
    stores::each_store(|store| async move {
        let db = &store.db;
        let dir = tempfile::tempdir().unwrap();
        let sim = sim(NinjaFleetSpec { organizations: 1, devices: 8, ..Default::default() }).await;
        let mut settings = fast_settings(QueueBackend::Database);
        settings.upstream.ninjaone_requests_per_second = 0;
        settings.http.public_url = Some("https://rmm-sync.example.test".into());
        let rt = runtime(db, settings, dir.path()).await.unwrap();
        let ing = Ingress::start(&rt, Some(KEY)).await;
        let tenant = stores::tenant(db).await.unwrap();
        let base = format!("/tenants/{tenant}/integrations/ninjaone");
        let body = json!({"instance_url": sim.base_url(), "client_id": sim.client_id(), "client_secret": sim.client_secret()});
        assert_eq!(ing.api(Method::PUT, &base, KEY, Some(body)).await.0, 200);
        rt.secrets
            .set_tenant_secret(tenant, secrets::CREDENTIALS, Some(&SecretString::from(sim.authorize(None).to_string())))
            .await
            .unwrap();
        assert_eq!(ing.api(Method::POST, &format!("{base}/test"), KEY, Some(json!({}))).await.1["success"], json!(true));
        let workers = Workers::start(&rt);
        let run = |kind: &'static str, args: Value| {
            let (ing, base) = (&ing, &base);
            async move {
                let (s, b) = ing.api(Method::POST, &format!("{base}/jobs/{kind}"), KEY, Some(json!({"args": args}))).await;
                assert_eq!(s, 202, "{kind}: {b}");
                b["job_id"].as_str().unwrap().to_owned()
            }
        };
        let job = wait_finished(&rt, &run("sync-org", json!({})).await, Duration::from_secs(30)).await;
        assert_eq!(job.status, JobStatus::Done, "{job:?}");
        stores::map_each_scope(db, tenant, usize::MAX).await;
        let job = wait_finished(&rt, &run("ninjaone-sync-devices", json!({})).await, Duration::from_secs(60)).await;
        assert_eq!(job.status, JobStatus::Done, "{job:?}");

        // The set-up to paste, and the registration through NinjaOne's API.
        let (s, setup) = ing.api(Method::GET, &format!("{base}/webhook"), KEY, None).await;
        assert_eq!(s, 200, "{setup}");
        let secret = setup["secret"].as_str().unwrap().to_owned();
        assert_eq!(setup["url"], json!(format!("https://rmm-sync.example.test/api/webhooks/ninjaone?tenant={tenant}")));
        let job = wait_finished(&rt, &run("ninjaone-register-webhook", json!({})).await, Duration::from_secs(30)).await;
        assert_eq!(job.status, JobStatus::Done, "{job:?}");
        let registered = sim.webhook().expect("PUT /v2/webhook");
        assert_eq!(registered["url"], setup["url"]);
        assert_eq!(registered["headers"][0], json!({"name": "X-Alga-Webhook-Secret", "value": secret}));

        let http = reqwest::Client::new();
        let post = |body: Value, header: Option<(&'static str, String)>| {
            let http = http.clone();
            let url = ing.url(&format!("/api/webhooks/ninjaone?tenant={tenant}"));
            async move {
                let bytes = body.to_string();
                let mut req = http.post(url).header("content-type", "application/json").body(bytes);
                if let Some((name, value)) = header {
                    req = req.header(name, value);
                }
                let resp = req.send().await.unwrap();
                (resp.status().as_u16(), resp.json::<Value>().await.unwrap_or(Value::Null))
            }
        };
        let dev = sim.devices()[1].clone();
        let trigger = json!({"id": 5001, "activityTime": Utc::now().timestamp(), "deviceId": dev.id,
            "organizationId": dev.organization_id, "type": "CONDITION", "status": "TRIGGERED", "statusCode": "DISK_FULL",
            "activityType": "CONDITION", "severity": "CRITICAL", "message": "Disk C: is full",
            "device": {"displayName": dev.name}});
        // Refused: no credential, a wrong secret, a wrong signature.
        assert_eq!(post(trigger.clone(), None).await.0, 401);
        assert_eq!(post(trigger.clone(), Some(("X-Alga-Webhook-Secret", "wrong".into()))).await.0, 401);
        assert_eq!(post(trigger.clone(), Some(("X-Ninja-Signature", "00ff".into()))).await.0, 401);
        // An event about no device: acknowledged, nothing recorded (as AlgaPSA).
        let (s, b) = post(json!({"id": 1, "type": "SYSTEM", "activityType": "USER_LOGGED_IN"}), Some(("X-Alga-Webhook-Secret", secret.clone()))).await;
        assert_eq!((s, &b["recorded"], &b["reason"]), (200, &json!(false), &json!("no_device_id")), "{b}");
        // A condition with the secret header: stored, its job records the alert and refreshes the device.
        sim.update_device(dev.id, |d| d.name = "WS-RENAMED".into());
        let (s, b) = post(trigger.clone(), Some(("X-Alga-Webhook-Secret", secret.clone()))).await;
        assert_eq!((s, &b["recorded"]), (200, &json!(true)), "{b}");
        let job = wait_finished(&rt, b["job_id"].as_str().unwrap(), Duration::from_secs(30)).await;
        assert_eq!(job.status, JobStatus::Done, "{job:?}");
        let result = job.result.clone().unwrap();
        assert_eq!((result["counts"]["alerts_recorded"].as_u64(), result["counts"]["updated"].as_u64()), (Some(1), Some(1)), "{result}");
        let d = db.dialect();
        let alert = rows(
            db,
            &format!(
                "SELECT status, severity, external_device_id, dedup_key FROM rmm_alerts WHERE tenant = {} AND external_alert_id = '5001'",
                d.param(1, ColType::Uuid)
            ),
            &[&tenant.to_string()],
        )
        .await
        .unwrap();
        assert_eq!(alert.len(), 1);
        assert_eq!(alert[0][0].as_deref(), Some("active"));
        assert_eq!(alert[0][1].as_deref(), Some("critical"));
        assert_eq!(alert[0][3].as_deref(), Some(format!("{}|DISK_FULL", dev.id).as_str()));
        let name = scalar(
            db,
            &format!("SELECT name FROM assets WHERE tenant = {} AND rmm_device_id = {}", d.param(1, ColType::Uuid), d.param(2, ColType::Text)),
            &[&tenant.to_string(), &dev.id.to_string()],
        )
        .await
        .unwrap();
        assert_eq!(name.as_deref(), Some("WS-RENAMED"));
        // The reset, authenticated by NinjaOne's signature alone: the alert is resolved.
        let mut reset = trigger.clone();
        reset["status"] = json!("RESET");
        let sig = hmac_sha256_hex(secret.as_bytes(), reset.to_string().as_bytes());
        let (s, b) = post(reset, Some(("X-Ninja-Signature", sig))).await;
        assert_eq!((s, &b["recorded"]), (200, &json!(true)), "{b}");
        let job = wait_finished(&rt, b["job_id"].as_str().unwrap(), Duration::from_secs(30)).await;
        assert_eq!(job.status, JobStatus::Done, "{job:?}");
        let status = scalar(
            db,
            &format!("SELECT status FROM rmm_alerts WHERE tenant = {} AND external_alert_id = '5001'", d.param(1, ColType::Uuid)),
            &[&tenant.to_string()],
        )
        .await
        .unwrap();
        assert_eq!(status.as_deref(), Some("resolved"));
        // NODE_DELETED for a device NinjaOne no longer has: its asset is tombstoned.
        let gone = sim.devices()[2].clone();
        sim.remove_device(gone.id);
        let (_, b) = post(
            json!({"id": 5002, "type": "SYSTEM", "activityType": "NODE_DELETED", "deviceId": gone.id}),
            Some(("X-Alga-Webhook-Secret", secret.clone())),
        )
        .await;
        let job = wait_finished(&rt, b["job_id"].as_str().unwrap(), Duration::from_secs(30)).await;
        assert_eq!(job.status, JobStatus::Done, "{job:?}");
        assert_eq!(job.result.as_ref().unwrap()["detail"]["action"], json!("marked_deleted"), "{job:?}");

        // Backfill: NinjaOne's active alerts recorded; one reset in NinjaOne because the admin asked.
        let active = sim.alerts();
        assert!(!active.is_empty());
        let job = wait_finished(&rt, &run("ninjaone-backfill-alerts", json!({})).await, Duration::from_secs(30)).await;
        assert_eq!(job.status, JobStatus::Done, "{job:?}");
        assert_eq!(job.result.as_ref().unwrap()["counts"]["created"].as_u64(), Some(active.len() as u64), "{job:?}");
        assert!(sim.resets().is_empty(), "nothing is reset in NinjaOne unless asked");
        let uid = active[0]["uid"].as_str().unwrap().to_owned();
        let job = wait_finished(&rt, &run("ninjaone-backfill-alerts", json!({"reset": [uid.clone()]})).await, Duration::from_secs(30)).await;
        assert_eq!(job.status, JobStatus::Done, "{job:?}");
        assert_eq!(sim.resets(), vec![uid.clone()]);
        let counts = &job.result.as_ref().unwrap()["counts"];
        assert_eq!((counts["reset_in_ninjaone"].as_u64(), counts["updated"].as_u64()), (Some(1), Some(1)), "{counts}");
        let status = scalar(
            db,
            &format!("SELECT status FROM rmm_alerts WHERE tenant = {} AND external_alert_id = {}", d.param(1, ColType::Uuid), d.param(2, ColType::Text)),
            &[&tenant.to_string(), &uid],
        )
        .await
        .unwrap();
        assert_eq!(status.as_deref(), Some("resolved"));
        workers.stop().await;
        drop(ing);
        store
    })
    .await;
}
