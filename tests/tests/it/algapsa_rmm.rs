//! AlgaPSA's v1 RMM routes (`/api/v1/integrations/rmm…`, `/api/v1/assets/{id}/rmm/refresh`, a
//! tenant key in `x-api-key`) on every provider, and the provider-neutral token lifecycle: an
//! integration whose `settings.tokenLifecycle.status` is `reconnect_required` is skipped by its
//! schedules and jobs, and the metrics and the status page say so. Each body on PostgreSQL and
//! SQLite, with real workers against the Tactical and Tanium simulators.

use rmm_shared::ingest::IngestRun;
use std::time::Duration;

use reqwest::Method;
use rmm_ingress::auth::{KeyScope, create_key};
use rmm_jobs::schedules::{ScheduleScope, ScheduleStore, tick};
use rmm_jobs::{JobStatus, Runtime};
use rmm_shared::config::QueueBackend;
use rmm_shared::db::Db;
use rmm_shared::db::sql::{ColType, fmt_ts};
use rmm_tests::runtime::{Ingress, SECRET, Workers, fast_settings, mapped_tactical_tenant, runtime, wait_finished};
use rmm_tests::sim::tactical::TacticalSim;
use rmm_tests::sim::tanium::{DEFAULT_TOKEN, TaniumFleetSpec, TaniumSim, TaniumSimConfig};
use rmm_tests::stores::{self, count, scalar};
use serde_json::{Value, json};
use uuid::Uuid;

const BOOTSTRAP: &str = "algapsa-rmm-bootstrap-0123456789abcdef";

/// A call with AlgaPSA's `x-api-key` header (no key at all when `key` is empty).
async fn alga(ing: &Ingress, method: Method, path: &str, key: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = ing.http.request(method, ing.url(&format!("/api/v1{path}")));
    if !key.is_empty() {
        req = req.header("x-api-key", key);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Makes every schedule of `tenant` due now.
async fn make_due(db: &Db, tenant: Uuid) {
    let d = db.dialect();
    let past = fmt_ts(chrono::Utc::now() - chrono::Duration::minutes(5));
    db.execute(
        &format!(
            "UPDATE {} SET next_run_at = {} WHERE tenant = {}",
            db.ours("schedules"),
            d.param(1, ColType::Timestamp),
            d.param(2, ColType::Uuid)
        ),
        &[&past, &tenant.to_string()],
    )
    .await
    .unwrap();
}

async fn settings_of(db: &Db, tenant: Uuid, provider: &str) -> Value {
    let d = db.dialect();
    let s = scalar(
        db,
        &format!(
            "SELECT CAST(settings AS TEXT) FROM rmm_integrations WHERE tenant = {} AND provider = {}",
            d.param(1, ColType::Uuid),
            d.param(2, ColType::Text)
        ),
        &[&tenant.to_string(), provider],
    )
    .await
    .unwrap();
    s.and_then(|s| serde_json::from_str(&s).ok()).unwrap_or(Value::Null)
}

/// The asset of the device `device` of `provider`.
async fn asset_of(db: &Db, tenant: Uuid, provider: &str, device: &str) -> Uuid {
    let d = db.dialect();
    scalar(
        db,
        &format!(
            "SELECT CAST(alga_entity_id AS TEXT) FROM tenant_external_entity_mappings WHERE tenant = {} \
             AND integration_type = {} AND alga_entity_type = 'asset' AND external_entity_id = {}",
            d.param(1, ColType::Uuid),
            d.param(2, ColType::Text),
            d.param(3, ColType::Text)
        ),
        &[&tenant.to_string(), provider, device],
    )
    .await
    .unwrap()
    .unwrap_or_else(|| panic!("no asset for {provider} device {device}"))
    .parse()
    .unwrap()
}

/// A job's kind and arguments as stored.
async fn job_of(rt: &Runtime, job_id: &str) -> (String, Value) {
    let job = rt.store().get(job_id).await.unwrap().unwrap();
    (job.kind, job.args)
}

async fn routes_on(store: stores::TestStore) -> stores::TestStore {
    let db = &store.db;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = fast_settings(QueueBackend::Database);
    settings.upstream.tanium_requests_per_second = 0;
    settings.scheduler.enabled = false; // the test ticks the scheduler itself
    let rt = runtime(db, settings, dir.path()).await.unwrap();
    let ing = Ingress::start(&rt, Some(BOOTSTRAP)).await;
    let tactical = TacticalSim::start_default().await.unwrap();
    let tanium = TaniumSim::start(TaniumSimConfig {
        fleet: TaniumFleetSpec { groups: 2, endpoints: 6, ..Default::default() },
        ..Default::default()
    })
    .await
    .unwrap();
    let (tenant, _) = mapped_tactical_tenant(db, &rt, &tactical).await;
    let key = create_key(db, Some(tenant), KeyScope::Write, "alga").await.unwrap().key;
    let read = create_key(db, Some(tenant), KeyScope::Read, "alga read").await.unwrap().key;

    // Tanium through the admin API, its groups synced and mapped.
    let base = format!("/tenants/{tenant}/integrations/tanium");
    let (s, b) = ing
        .api(
            Method::PUT,
            &base,
            BOOTSTRAP,
            Some(json!({"instance_url": tanium.base_url(), "api_token": DEFAULT_TOKEN})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (_, b) = ing.api(Method::POST, &format!("{base}/test"), BOOTSTRAP, Some(json!({}))).await;
    assert_eq!(b["success"], json!(true), "{b}");
    let tanium_integ = rmm_shared::integrations::load(db, tenant, rmm_shared::providers::Provider::Tanium)
        .await
        .unwrap()
        .unwrap()
        .integration_id;
    let (client, _) = rmm_jobs::providers::tanium::build_client(&rt, tenant, tanium_integ).await.unwrap();
    rmm_shared::providers::tanium::sync::sync_scopes(db, tenant, tanium_integ, &client).await.unwrap();
    stores::map_each_scope(db, tenant, usize::MAX).await;
    let ninja_integ = stores::integration(db, tenant, "ninjaone").await.unwrap();

    // Who may call: a tenant key in x-api-key; a global key names no tenant; a read key only reads.
    let (s, e) = alga(&ing, Method::GET, "/integrations/rmm", "", None).await;
    assert_eq!(s, 401, "{e}");
    assert_eq!(alga(&ing, Method::GET, "/integrations/rmm", "rmk_nope", None).await.0, 401);
    let (s, b) = alga(&ing, Method::GET, "/integrations/rmm", BOOTSTRAP, None).await;
    assert_eq!((s, b), (400, json!({"error": "this route needs a tenant-scoped key"})));
    let (s, e) =
        alga(&ing, Method::PUT, "/integrations/rmm/tacticalrmm/device-sync", &read, Some(json!({"enabled": true})))
            .await;
    assert_eq!(s, 403, "{e}");
    let (s, b) = alga(&ing, Method::GET, "/integrations/rmm", &read, None).await;
    assert_eq!(s, 200, "{b}");

    // The list: every integration of the tenant, AlgaPSA's fields first.
    let providers: Vec<String> =
        b["data"].as_array().unwrap().iter().map(|i| i["provider"].as_str().unwrap().to_owned()).collect();
    assert_eq!(providers, ["ninjaone", "tacticalrmm", "tanium"], "{b}");
    let t = b["data"].as_array().unwrap().iter().find(|i| i["provider"] == "tacticalrmm").unwrap().clone();
    for field in [
        "integrationId",
        "isActive",
        "syncStatus",
        "syncError",
        "connectedAt",
        "lastSyncAt",
        "deviceCount",
        "deviceSyncEnabled",
        "deviceSyncIntervalMinutes",
        "lastIncrementalSyncAt",
    ] {
        assert!(t.get(field).is_some(), "AlgaPSA's field {field} missing: {t}");
    }
    assert_eq!((&t["deviceSyncEnabled"], &t["deviceSyncIntervalMinutes"]), (&json!(false), &json!(60)), "{t}");
    assert_eq!((&t["alertPollingAvailable"], &t["alertPollingIntervalMinutes"]), (&json!(true), &json!(15)), "{t}");
    assert_eq!(t["reconnectRequired"], json!(false));
    let (s, b) = alga(&ing, Method::GET, "/integrations/rmm/tanium", &key, None).await;
    assert_eq!((s, &b["data"]["alertPollingAvailable"]), (200, &json!(false)), "{b}");
    let (s, b) = alga(&ing, Method::GET, "/integrations/rmm/levelio", &key, None).await;
    assert_eq!((s, b), (404, json!({"error": "No levelio integration is configured for this tenant"})));
    assert_eq!(alga(&ing, Method::GET, "/integrations/rmm/nope", &key, None).await.0, 404);
    let level_integ = stores::integration(db, tenant, "levelio").await.unwrap();

    // Device sync on every provider: AlgaPSA's bounds, stored as rmm-sync's incremental schedule of
    // the provider's device sync; the integration's settings (AlgaPSA's scheduler) untouched.
    let schedules = ScheduleStore::new(db.clone());
    for (provider, kind, integ) in [
        ("tacticalrmm", "sync-devices", None),
        ("tanium", "tanium-full-sync", Some(tanium_integ)),
        ("ninjaone", "ninjaone-sync-devices", Some(ninja_integ)),
        ("levelio", "levelio-sync-devices", Some(level_integ)),
    ] {
        let path = format!("/integrations/rmm/{provider}/device-sync");
        for bad in [json!({"enabled": true, "intervalMinutes": 14}), json!({"enabled": true, "intervalMinutes": 1441})]
        {
            let (s, b) = alga(&ing, Method::PUT, &path, &key, Some(bad)).await;
            assert_eq!(s, 400, "{provider}: {b}");
            assert!(b["error"].as_str().unwrap().contains("between 15 and 1440"), "{b}");
        }
        let before = settings_of(db, tenant, provider).await;
        let (s, b) = alga(&ing, Method::PUT, &path, &key, Some(json!({"enabled": true}))).await;
        assert_eq!(s, 200, "{provider}: {b}");
        assert_eq!(
            (&b["data"]["deviceSyncEnabled"], &b["data"]["deviceSyncIntervalMinutes"]),
            (&json!(true), &json!(60))
        );
        let (s, b) = alga(&ing, Method::PUT, &path, &key, Some(json!({"enabled": true, "intervalMinutes": 30}))).await;
        assert_eq!(s, 200, "{provider}: {b}");
        assert_eq!((&b["data"]["provider"], &b["data"]["deviceSyncIntervalMinutes"]), (&json!(provider), &json!(30)));
        let sched = &b["data"]["schedules"]["deviceSync"];
        assert_eq!(
            (&sched["kind"], &sched["args"], &sched["enabled"]),
            (&json!(kind), &json!({"mode": "incremental"}), &json!(true))
        );
        assert_eq!(settings_of(db, tenant, provider).await, before, "{provider}: AlgaPSA's settings must not change");
        if let Some(integ) = integ {
            let scope = ScheduleScope {
                tenant: Some(tenant),
                provider: Some(provider.into()),
                integration_id: Some(integ),
                kind: kind.into(),
            };
            assert_eq!(schedules.get(&scope).await.unwrap().unwrap().interval_minutes, Some(30));
        }
    }
    let (_, b) =
        alga(&ing, Method::PUT, "/integrations/rmm/levelio/device-sync", &key, Some(json!({"enabled": false}))).await;
    assert_eq!(b["data"]["deviceSyncEnabled"], json!(false), "{b}");

    // Alert polling (AlgaPSA's alertPolling): 5–60 minutes, 15 by default; Tanium has no alerts.
    for (provider, kind) in [
        ("tacticalrmm", "backfill-alerts"),
        ("ninjaone", "ninjaone-backfill-alerts"),
        ("levelio", "levelio-backfill-alerts"),
    ] {
        let path = format!("/integrations/rmm/{provider}/alert-polling");
        for bad in [4, 61] {
            let (s, b) =
                alga(&ing, Method::PUT, &path, &key, Some(json!({"enabled": true, "intervalMinutes": bad}))).await;
            assert_eq!(s, 400, "{provider}: {b}");
            assert!(b["error"].as_str().unwrap().contains("between 5 and 60"), "{b}");
        }
        let (s, b) = alga(&ing, Method::PUT, &path, &key, Some(json!({"enabled": true}))).await;
        assert_eq!(s, 200, "{provider}: {b}");
        assert_eq!(
            (&b["data"]["alertPollingEnabled"], &b["data"]["alertPollingIntervalMinutes"]),
            (&json!(true), &json!(15))
        );
        assert_eq!(b["data"]["schedules"]["alertPolling"]["kind"], json!(kind), "{b}");
    }
    let (s, b) =
        alga(&ing, Method::PUT, "/integrations/rmm/tanium/alert-polling", &key, Some(json!({"enabled": true}))).await;
    assert_eq!((s, b), (400, json!({"error": "Alert polling is not available for provider 'tanium'."})));

    // The sync route: syncType defaults to incremental; each provider's device sync kind.
    for (provider, kind) in [("ninjaone", "ninjaone-sync-devices"), ("levelio", "levelio-sync-devices")] {
        let (s, b) =
            alga(&ing, Method::POST, &format!("/integrations/rmm/{provider}/sync"), &key, Some(json!({}))).await;
        assert_eq!(s, 202, "{b}");
        assert_eq!(job_of(&rt, b["job_id"].as_str().unwrap()).await, (kind.to_owned(), json!({"mode": "incremental"})));
        assert_eq!(b["data"]["syncType"], json!("incremental"));
    }
    let (s, b) =
        alga(&ing, Method::POST, "/integrations/rmm/tacticalrmm/sync", &key, Some(json!({"syncType": "weekly"}))).await;
    assert_eq!((s, b), (400, json!({"error": "syncType must be full or incremental"})));
    // An empty body is AlgaPSA's default too.
    let resp = ing
        .http
        .post(ing.url("/api/v1/integrations/rmm/tanium/sync"))
        .header("x-api-key", &key)
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let b: Value = resp.json().await.unwrap();
    assert_eq!(
        job_of(&rt, b["job_id"].as_str().unwrap()).await,
        ("tanium-full-sync".to_owned(), json!({"mode": "incremental"}))
    );

    // Workers run what follows: a full Tactical sync through the route, then the schedule's
    // incremental one.
    let workers = Workers::start(&rt);
    let (s, b) =
        alga(&ing, Method::POST, "/integrations/rmm/tacticalrmm/sync", &key, Some(json!({"syncType": "full"}))).await;
    assert_eq!(s, 202, "{b}");
    let job = wait_finished(&rt, b["job_id"].as_str().unwrap(), Duration::from_secs(60)).await;
    assert_eq!(
        (job.status, &job.kind, &job.args),
        (JobStatus::Done, &"sync-devices".to_owned(), &json!({"mode": "full"})),
        "{job:?}"
    );
    let synced = count(db, tenant, "assets WHERE rmm_provider = 'tacticalrmm'").await;
    assert!(synced > 0);
    let (_, b) = alga(&ing, Method::GET, "/integrations/rmm/tacticalrmm", &key, None).await;
    assert_eq!(b["data"]["deviceCount"], json!(synced), "{b}");
    assert_eq!(b["data"]["lastRuns"][0]["kind"], json!("sync-devices"), "{b}");
    assert_eq!(b["data"]["lastRuns"][0]["counts"]["created"], json!(synced), "{b}");
    assert!(b["data"]["lastFullSyncAt"].is_string(), "{b}");
    // Only Tactical's device sync due now: its job runs incremental, as AlgaPSA's schedule does.
    let d = db.dialect();
    let f = rmm_shared::db::sql::P(d).bool(false);
    db.execute(&format!("UPDATE {} SET enabled = {f} WHERE kind <> 'sync-devices'", db.ours("schedules")), &[])
        .await
        .unwrap();
    make_due(db, tenant).await;
    let report = tick(&rt.queue).await.unwrap();
    assert_eq!(report.enqueued.len(), 1, "{report:?}");
    let job = wait_finished(&rt, &report.enqueued[0], Duration::from_secs(60)).await;
    assert_eq!((job.status, &job.args), (JobStatus::Done, &json!({"mode": "incremental"})), "{job:?}");
    let runs = scalar(
        db,
        &format!(
            "SELECT CAST(COUNT(*) AS TEXT) FROM {} WHERE kind = 'sync-devices' AND \"trigger\" = 'schedule'",
            db.ours("sync_runs")
        ),
        &[],
    )
    .await
    .unwrap();
    assert_eq!(runs.as_deref(), Some("1"));

    // An asset's refresh: the job of the provider it is mapped to, with its device id.
    let agent = tactical.agents().into_iter().find(|a| a.last_seen.is_some()).unwrap();
    let asset = asset_of(db, tenant, "tacticalrmm", &agent.agent_id).await;
    let (s, b) = alga(&ing, Method::POST, &format!("/assets/{asset}/rmm/refresh"), &read, None).await;
    assert_eq!(s, 403, "{b}");
    let (s, b) = alga(&ing, Method::POST, &format!("/assets/{asset}/rmm/refresh"), &key, None).await;
    assert_eq!(s, 202, "{b}");
    assert_eq!(
        (&b["data"]["provider"], &b["data"]["deviceId"]),
        (&json!("tacticalrmm"), &json!(agent.agent_id)),
        "{b}"
    );
    let job = wait_finished(&rt, b["job_id"].as_str().unwrap(), Duration::from_secs(30)).await;
    assert_eq!((job.status, job.kind.as_str()), (JobStatus::Done, "sync-agent"), "{job:?}");
    let detail = &job.result.as_ref().unwrap()["detail"];
    assert_eq!((&detail["action"], &detail["asset_id"]), (&json!("updated"), &json!(asset)), "{job:?}");

    // Tanium: the endpoint's own refresh job, written under the group it was synced under.
    let (client, options) = rmm_jobs::providers::tanium::build_client(&rt, tenant, tanium_integ).await.unwrap();
    let mode = rmm_shared::providers::tanium::sync::SyncMode::Full;
    let r = rmm_shared::providers::tanium::sync::sync_devices(
        db,
        tenant,
        &IngestRun::default(),
        tanium_integ,
        &client,
        mode,
        options,
    )
    .await
    .unwrap();
    // (the route's tanium-full-sync above may have created them already)
    assert!(r.counts.processed > 0 && r.counts.failed == 0 && r.errors.is_empty(), "{r:?}");
    let endpoint = tanium.fleet().endpoints[0].id.clone();
    let asset = asset_of(db, tenant, "tanium", &endpoint).await;
    tanium.reset_log();
    let (s, b) = alga(&ing, Method::POST, &format!("/assets/{asset}/rmm/refresh"), &key, None).await;
    assert_eq!(s, 202, "{b}");
    let job = wait_finished(&rt, b["job_id"].as_str().unwrap(), Duration::from_secs(30)).await;
    assert_eq!((job.status, job.kind.as_str()), (JobStatus::Done, "tanium-sync-endpoint"), "{job:?}");
    let detail = &job.result.as_ref().unwrap()["detail"];
    assert_eq!((&detail["action"], &detail["asset_id"]), (&json!("updated"), &json!(asset)), "{job:?}");
    assert!(
        tanium.requests().iter().any(|r| r.operation.as_deref() == Some("TaniumEndpoints")),
        "the endpoint was read"
    );

    // NinjaOne: a mapped device's refresh is its webhook refresh kind.
    let device_asset = Uuid::new_v4();
    insert_asset(db, tenant, device_asset).await;
    let d = db.dialect();
    db.execute(
        &format!(
            "INSERT INTO tenant_external_entity_mappings (id, tenant, integration_type, alga_entity_type, alga_entity_id, \
             external_entity_id, sync_status) VALUES ({}, {}, 'ninjaone', 'asset', {}, '4711', 'synced')",
            d.param(1, ColType::Uuid),
            d.param(2, ColType::Uuid),
            d.param(3, ColType::Text)
        ),
        &[&Uuid::new_v4().to_string(), &tenant.to_string(), &device_asset.to_string()],
    )
    .await
    .unwrap();
    let (s, b) = alga(&ing, Method::POST, &format!("/assets/{device_asset}/rmm/refresh"), &key, None).await;
    assert_eq!(s, 202, "{b}");
    assert_eq!(
        job_of(&rt, b["job_id"].as_str().unwrap()).await,
        ("ninjaone-sync-device".to_owned(), json!({"agent_id": "4711"}))
    );

    // No mapping, no asset, another tenant's asset.
    let plain = Uuid::new_v4();
    insert_asset(db, tenant, plain).await;
    let (s, b) = alga(&ing, Method::POST, &format!("/assets/{plain}/rmm/refresh"), &key, None).await;
    assert_eq!((s, b), (404, json!({"error": "Asset is not managed by an RMM provider"})));
    let (s, b) = alga(&ing, Method::POST, &format!("/assets/{}/rmm/refresh", Uuid::new_v4()), &key, None).await;
    assert_eq!((s, b), (404, json!({"error": "Asset not found"})));
    let other = stores::tenant(db).await.unwrap();
    let other_key = create_key(db, Some(other), KeyScope::Write, "other").await.unwrap().key;
    let (s, b) = alga(&ing, Method::POST, &format!("/assets/{asset}/rmm/refresh"), &other_key, None).await;
    assert_eq!((s, b), (404, json!({"error": "Asset not found"})));
    let (_, b) = alga(&ing, Method::GET, "/integrations/rmm", &other_key, None).await;
    assert_eq!(b, json!({"data": []}));

    // An inactive integration: AlgaPSA's 400 for the sync, 409 for the refresh.
    db.execute(&format!("UPDATE rmm_integrations SET is_active = {f} WHERE provider = 'tanium'"), &[]).await.unwrap();
    let (s, b) = alga(&ing, Method::POST, "/integrations/rmm/tanium/sync", &key, Some(json!({}))).await;
    assert_eq!((s, b), (400, json!({"error": "The tanium integration is not active."})));
    let (s, _) = alga(&ing, Method::POST, &format!("/assets/{asset}/rmm/refresh"), &key, None).await;
    assert_eq!(s, 409);

    // Every route is in the OpenAPI document under AlgaPSA's key scheme.
    let spec: Value = ing.http.get(ing.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    for (path, method) in [
        ("/integrations/rmm", "get"),
        ("/integrations/rmm/{provider}", "get"),
        ("/integrations/rmm/{provider}/device-sync", "put"),
        ("/integrations/rmm/{provider}/alert-polling", "put"),
        ("/integrations/rmm/{provider}/sync", "post"),
        ("/assets/{asset_id}/rmm/refresh", "post"),
    ] {
        let op = &spec["paths"][path][method];
        assert!(op.is_object(), "{method} {path} missing from the OpenAPI document");
        assert!(op["security"].to_string().contains("AlgaApiKey"), "{method} {path}: {}", op["security"]);
    }
    workers.stop().await;
    drop(ing);
    store
}

async fn insert_asset(db: &Db, tenant: Uuid, asset: Uuid) {
    let client = stores::client(db, tenant, &format!("Plain {asset}")).await.unwrap();
    let d = db.dialect();
    db.execute(
        &format!(
            "INSERT INTO assets (tenant, asset_id, client_id, asset_tag, name, status) VALUES ({}, {}, {}, {}, 'PC', 'active')",
            d.param(1, ColType::Uuid),
            d.param(2, ColType::Uuid),
            d.param(3, ColType::Uuid),
            d.param(4, ColType::Text)
        ),
        &[&tenant.to_string(), &asset.to_string(), &client.to_string(), &format!("TAG-{}", asset.simple())],
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn algapsa_v1_rmm_routes_read_schedule_sync_and_refresh_on_every_provider() {
    stores::each_store(routes_on).await;
}

async fn reconnect_required_on(store: stores::TestStore) -> stores::TestStore {
    let db = &store.db;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = fast_settings(QueueBackend::Database);
    settings.scheduler.enabled = false; // the test ticks the scheduler itself
    let rt = runtime(db, settings, dir.path()).await.unwrap();
    let ing = Ingress::start(&rt, Some(BOOTSTRAP)).await;
    let tactical = TacticalSim::start_default().await.unwrap();
    let (tenant, integration) = mapped_tactical_tenant(db, &rt, &tactical).await;
    stores::integration(db, tenant, "levelio").await.unwrap();
    let key = create_key(db, Some(tenant), KeyScope::Write, "alga").await.unwrap().key;
    for path in ["device-sync", "alert-polling"] {
        let (s, b) = alga(
            &ing,
            Method::PUT,
            &format!("/integrations/rmm/tacticalrmm/{path}"),
            &key,
            Some(json!({"enabled": true})),
        )
        .await;
        assert_eq!(s, 200, "{b}");
    }
    let agent = tactical.agents()[0].agent_id.clone();
    let workers = Workers::start(&rt);
    let (_, b) =
        alga(&ing, Method::POST, "/integrations/rmm/tacticalrmm/sync", &key, Some(json!({"syncType": "full"}))).await;
    assert_eq!(
        wait_finished(&rt, b["job_id"].as_str().unwrap(), Duration::from_secs(60)).await.status,
        JobStatus::Done
    );
    let asset = asset_of(db, tenant, "tacticalrmm", &agent).await;

    // AlgaPSA (or an operator) marks the Tactical integration: reconnect required.
    let d = db.dialect();
    db.execute(
        &format!(
            "UPDATE rmm_integrations SET settings = {} WHERE tenant = {} AND integration_id = {}",
            d.param(1, ColType::Json),
            d.param(2, ColType::Uuid),
            d.param(3, ColType::Uuid)
        ),
        &[
            &json!({"alert_mode": "record", "tokenLifecycle": {"status": "reconnect_required", "reason": "credentials refused"}})
                .to_string(),
            &tenant.to_string(),
            &integration.to_string(),
        ],
    )
    .await
    .unwrap();
    tactical.reset_counters();

    // Its schedules are claimed and skipped with that reason; nothing reaches Tactical.
    make_due(db, tenant).await;
    let report = tick(&rt.queue).await.unwrap();
    assert!(report.enqueued.is_empty(), "{report:?}");
    let reasons: Vec<&str> = report.skipped.iter().map(|(_, r)| r.as_str()).collect();
    assert_eq!(reasons, ["reconnect_required", "reconnect_required"], "{report:?}");
    let (_, b) = alga(&ing, Method::GET, "/integrations/rmm/tacticalrmm", &key, None).await;
    let status = &b["data"];
    assert_eq!(
        (&status["reconnectRequired"], &status["tokenLifecycleStatus"]),
        (&json!(true), &json!("reconnect_required"))
    );
    assert_eq!(status["schedules"]["deviceSync"]["last_skip_reason"], json!("reconnect_required"), "{b}");
    assert_eq!(status["schedules"]["alertPolling"]["last_skip_reason"], json!("reconnect_required"), "{b}");

    // An admin job is skipped by the gate with the same reason.
    let (s, b) = ing
        .api(
            Method::POST,
            &format!("/tenants/{tenant}/integrations/tacticalrmm/jobs/sync-org"),
            BOOTSTRAP,
            Some(json!({})),
        )
        .await;
    assert_eq!(s, 202, "{b}");
    let job = wait_finished(&rt, b["job_id"].as_str().unwrap(), Duration::from_secs(30)).await;
    assert_eq!((job.status, job.last_error.as_deref()), (JobStatus::Skipped, Some("reconnect_required")), "{job:?}");

    // A webhook's alert is still recorded; the agent is not refreshed from Tactical.
    let body = json!({"agent_id": agent, "alert_id": "77", "event": "trigger", "severity": "error", "message": "Disk"});
    let (s, reply) = ing.webhook(Some(&tenant.to_string()), Some(SECRET), body.to_string()).await;
    assert_eq!(s, 200, "{reply}");
    let job = wait_finished(&rt, reply["job_id"].as_str().unwrap(), Duration::from_secs(30)).await;
    assert_eq!(job.status, JobStatus::Done, "{job:?}");
    let result = job.result.clone().unwrap();
    assert_eq!(
        (&result["counts"]["alerts_recorded"], &result["detail"]["skipped"]),
        (&json!(1), &json!("reconnect_required")),
        "{result}"
    );
    assert_eq!(count(db, tenant, "rmm_alerts WHERE external_alert_id = '77'").await, 1);

    // AlgaPSA's routes refuse to call Tactical.
    let (s, b) = alga(&ing, Method::POST, "/integrations/rmm/tacticalrmm/sync", &key, Some(json!({}))).await;
    assert_eq!(s, 409, "{b}");
    assert!(b["error"].as_str().unwrap().contains("reconnected"), "{b}");
    let (s, _) = alga(&ing, Method::POST, &format!("/assets/{asset}/rmm/refresh"), &key, None).await;
    assert_eq!(s, 409);
    assert!(tactical.requests().is_empty(), "Tactical was called: {:?}", tactical.requests());

    // The metric (every provider listed) and the status page show it.
    let metrics = reqwest::get(ing.url("/metrics")).await.unwrap().text().await.unwrap();
    for line in [
        "rmm_sync_integrations_reconnect_required{provider=\"tacticalrmm\"} 1",
        "rmm_sync_integrations_reconnect_required{provider=\"levelio\"} 0",
        "rmm_sync_integrations_reconnect_required{provider=\"tanium\"} 0",
        "rmm_sync_schedules_skipped{provider=\"tacticalrmm\",reason=\"reconnect_required\"} 2",
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
    let page = ing.http.get(ing.url("/status")).bearer_auth(BOOTSTRAP).send().await.unwrap().text().await.unwrap();
    let row = &page[page
        .find(&format!("<tr data-tenant=\"{tenant}\"><td>{tenant}</td><td>tacticalrmm</td>"))
        .expect("the Tactical row")..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains("data-token=\"reconnect_required\""), "{row}");
    assert!(
        row.contains("sync-devices: reconnect_required") && row.contains("backfill-alerts: reconnect_required"),
        "{row}"
    );
    assert!(page.contains("<td>levelio</td>"));

    // A successful connection test clears it; the next slot runs.
    let (_, b) = ing
        .api(Method::POST, &format!("/tenants/{tenant}/integrations/tacticalrmm/test"), BOOTSTRAP, Some(json!({})))
        .await;
    assert_eq!(b["success"], json!(true), "{b}");
    let settings = settings_of(db, tenant, "tacticalrmm").await;
    assert_eq!(settings["tokenLifecycle"], json!({"status": "active", "reason": "credentials refused"}), "{settings}");
    assert_eq!(settings["alert_mode"], json!("record"));
    make_due(db, tenant).await;
    let report = tick(&rt.queue).await.unwrap();
    assert_eq!((report.enqueued.len(), report.skipped.len()), (2, 0), "{report:?}");
    for id in &report.enqueued {
        assert_eq!(wait_finished(&rt, id, Duration::from_secs(60)).await.status, JobStatus::Done);
    }
    let metrics = reqwest::get(ing.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("rmm_sync_integrations_reconnect_required{provider=\"tacticalrmm\"} 0"), "{metrics}");
    assert!(!metrics.contains("rmm_sync_schedules_skipped{provider=\"tacticalrmm\""), "{metrics}");
    workers.stop().await;
    drop(ing);
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_required_integration_of_any_provider_is_skipped_by_its_schedules_and_jobs() {
    stores::each_store(reconnect_required_on).await;
}
