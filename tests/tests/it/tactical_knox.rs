//! Tactical Knox integrations through the job runtime with Tactical's login throttle on (1.5.0+:
//! 10 logins a minute, 300 a day): jobs, their units and worker processes share the saved token
//! and log in only when it is missing or refused; a throttled login fails the job with a clear
//! message and no more logins. Each body runs on PostgreSQL and SQLite; the second worker
//! process (the `rmm-sync` binary) runs on PostgreSQL.

use std::time::Duration;

use rmm_jobs::{JobRequest, JobStatus, JobView, Runtime, Trigger};
use rmm_shared::config::QueueBackend;
use rmm_shared::db::Db;
use rmm_shared::db::sql::ColType;
use rmm_shared::providers::tactical::sync::sync_organizations;
use rmm_tests::runtime::{
    Workers, fast_settings, map_every_scope, rmm_sync_process, runtime, tactical_tenant, wait_finished,
};
use rmm_tests::sim::tactical::{
    DEFAULT_PASSWORD, DEFAULT_USERNAME, FleetSpec, LoginThrottle, SeenAuth, SimConfig, TacticalSim,
};
use rmm_tests::stores::{self, TestStore, scalar};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

const CHECKCREDS: &str = "POST /v2/checkcreds/";
const KNOX_TOKEN: &str = "tacticalrmm_knox_token";

/// A tenant whose Tactical integration points at `sim`, with its clients synced and mapped (with
/// an API key), then switched to Knox: username and password saved, no API key, no token.
async fn knox_tenant(db: &Db, rt: &Runtime, sim: &TacticalSim) -> (Uuid, Uuid) {
    let (tenant, integration) = tactical_tenant(db, rt, Some(sim)).await;
    let client = rmm_jobs::providers::tactical::build_client(rt, tenant, integration).await.unwrap();
    sync_organizations(db, tenant, integration, &client).await.unwrap();
    map_every_scope(db, tenant, "Acme").await;
    for (name, value) in [
        ("tacticalrmm_api_key", None),
        ("tacticalrmm_username", Some(DEFAULT_USERNAME)),
        ("tacticalrmm_password", Some(DEFAULT_PASSWORD)),
    ] {
        let v = value.map(|v| SecretString::from(v.to_owned()));
        rt.secrets.set_tenant_secret(tenant, name, v.as_ref()).await.unwrap();
    }
    let d = db.dialect();
    db.execute(
        &format!(
            "UPDATE rmm_integrations SET settings = {} WHERE tenant = {} AND integration_id = {}",
            d.param(1, ColType::Json),
            d.param(2, ColType::Uuid),
            d.param(3, ColType::Uuid)
        ),
        &[r#"{"auth_mode": "knox"}"#, &tenant.to_string(), &integration.to_string()],
    )
    .await
    .unwrap();
    (tenant, integration)
}

async fn run(rt: &Runtime, kind: &str, tenant: Uuid, integration: Uuid) -> JobView {
    let id = rt
        .queue
        .enqueue(JobRequest::for_integration(kind, tenant, "tacticalrmm", integration, Trigger::Admin))
        .await
        .unwrap();
    wait_finished(rt, &id, Duration::from_secs(60)).await
}

async fn run_ok(rt: &Runtime, kind: &str, tenant: Uuid, integration: Uuid) -> JobView {
    let job = run(rt, kind, tenant, integration).await;
    assert_eq!(job.status, JobStatus::Done, "{kind}: {job:?}");
    job
}

async fn saved_token(rt: &Runtime, tenant: Uuid) -> Option<String> {
    rt.secrets.get_tenant_secret(tenant, KNOX_TOKEN).await.unwrap().map(|t| t.expose_secret().to_owned())
}

/// The token of the simulator's last authenticated request.
fn last_token(sim: &TacticalSim) -> Option<String> {
    sim.requests().into_iter().rev().find_map(|r| match r.auth {
        SeenAuth::Token(t) => Some(t),
        _ => None,
    })
}

async fn jobs_log_in_once(store: &TestStore) {
    let db = &store.db;
    let dir = tempfile::tempdir().unwrap();
    let config = SimConfig {
        login_throttle: Some(LoginThrottle::TACTICAL),
        ..SimConfig::with_fleet(FleetSpec::new(5, 4, 1, 3))
    };
    let sim = TacticalSim::start(config).await.unwrap();
    let rt = runtime(db, fast_settings(QueueBackend::Database), dir.path()).await.unwrap();
    let (tenant, integration) = knox_tenant(db, &rt, &sim).await;
    assert_eq!(sim.hits(CHECKCREDS), 0);
    // Slow answers, so the four units of the device sync ask for a token together.
    sim.set_latency(Duration::from_millis(100));
    let workers = Workers::start(&rt);

    // No token yet: the device sync's units (run side by side) log in once between them.
    let job = run_ok(&rt, "sync-devices", tenant, integration).await;
    assert_eq!(job.result.as_ref().unwrap()["counts"]["units"], 4, "{job:?}");
    assert_eq!(sim.hits(CHECKCREDS), 1);
    let token = saved_token(&rt, tenant).await.expect("the token is saved in the tenant secret");
    // Job after job reuses it.
    for kind in ["sync-org", "sync-devices", "backfill-alerts", "ingest-software", "sync-org", "sync-devices"] {
        run_ok(&rt, kind, tenant, integration).await;
    }
    assert_eq!(sim.hits(CHECKCREDS), 1, "one login for every job");
    assert_eq!(sim.hits("POST /v2/login/"), 0);
    assert_eq!(last_token(&sim).as_deref(), Some(token.as_str()));

    // Tactical refuses the token (it expired): one login, and the jobs after it reuse the new one.
    sim.expire_tokens();
    run_ok(&rt, "sync-devices", tenant, integration).await;
    assert_eq!(sim.hits(CHECKCREDS), 2, "one re-login for the four units");
    let renewed = saved_token(&rt, tenant).await.unwrap();
    assert_ne!(renewed, token);
    run_ok(&rt, "sync-org", tenant, integration).await;
    assert_eq!(sim.hits(CHECKCREDS), 2);
    workers.stop().await;

    if matches!(db, Db::Postgres(_)) {
        // A worker process of its own reads the saved token: no login.
        let mut child = rmm_sync_process("worker", &store.url, dir.path()).spawn().unwrap();
        run_ok(&rt, "sync-org", tenant, integration).await;
        assert_eq!(sim.hits(CHECKCREDS), 2, "the other process reused the saved token");
        assert_eq!(last_token(&sim).as_deref(), Some(renewed.as_str()));
        // Refused there: it logs in once and saves the token…
        sim.expire_tokens();
        run_ok(&rt, "sync-org", tenant, integration).await;
        run_ok(&rt, "sync-org", tenant, integration).await;
        assert_eq!(sim.hits(CHECKCREDS), 3);
        child.start_kill().unwrap();
        child.wait().await.unwrap();
        // …which this process's workers then use.
        let third = saved_token(&rt, tenant).await.unwrap();
        assert_ne!(third, renewed);
        let workers = Workers::start(&rt);
        run_ok(&rt, "sync-org", tenant, integration).await;
        assert_eq!(sim.hits(CHECKCREDS), 3);
        assert_eq!(last_token(&sim).as_deref(), Some(third.as_str()));
        workers.stop().await;
    }
    let statuses: Vec<u16> = sim.requests().iter().filter(|r| r.route == CHECKCREDS).map(|r| r.status).collect();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knox_jobs_and_worker_processes_log_in_only_when_the_token_is_missing_or_refused() {
    stores::each_store(|store| async move {
        jobs_log_in_once(&store).await;
        store
    })
    .await;
}

async fn throttled_login_fails_the_job(store: &TestStore) {
    let db = &store.db;
    let dir = tempfile::tempdir().unwrap();
    // One login a minute.
    let throttle = LoginThrottle { per_minute: 1, per_day: 300 };
    let config = SimConfig { login_throttle: Some(throttle), ..SimConfig::with_fleet(FleetSpec::new(5, 3, 1, 2)) };
    let sim = TacticalSim::start(config).await.unwrap();
    let rt = runtime(db, fast_settings(QueueBackend::Database), dir.path()).await.unwrap();
    let (tenant, integration) = knox_tenant(db, &rt, &sim).await;
    let workers = Workers::start(&rt);
    run_ok(&rt, "sync-org", tenant, integration).await;
    assert_eq!(sim.hits(CHECKCREDS), 1);

    // The token is refused, and the minute's login is used: the job fails, at its first attempt,
    // with the throttle named and Tactical's wait.
    sim.expire_tokens();
    let job = run(&rt, "sync-org", tenant, integration).await;
    assert_eq!(job.status, JobStatus::Failed, "{job:?}");
    assert_eq!(job.attempts, 1, "a throttled login is not retried: {job:?}");
    let error = job.last_error.clone().unwrap();
    assert!(error.contains("Tactical RMM is throttling logins (POST /v2/checkcreds/ answered 429"), "{error}");
    assert!(error.contains("did not retry") && error.contains("seconds."), "{error}");
    assert_eq!(sim.hits(CHECKCREDS), 2);
    // The admin sees it on the integration.
    let d = db.dialect();
    let sync_error = scalar(
        db,
        &format!(
            "SELECT sync_error FROM rmm_integrations WHERE tenant = {} AND integration_id = {}",
            d.param(1, ColType::Uuid),
            d.param(2, ColType::Uuid)
        ),
        &[&tenant.to_string(), &integration.to_string()],
    )
    .await
    .unwrap()
    .unwrap();
    assert!(sync_error.contains("throttling logins"), "{sync_error}");

    // While Tactical's wait lasts, jobs fail the same way without another login: not the device
    // sync's three units, not the next job.
    let job = run(&rt, "sync-devices", tenant, integration).await;
    let counts = &job.result.as_ref().unwrap_or(&serde_json::Value::Null)["counts"];
    assert!(job.status == JobStatus::Failed || counts["units_failed"] == 3, "{job:?}");
    let job = run(&rt, "sync-org", tenant, integration).await;
    assert_eq!(job.status, JobStatus::Failed, "{job:?}");
    assert!(job.last_error.unwrap().contains("throttling logins"));
    let statuses: Vec<u16> = sim.requests().iter().filter(|r| r.route == CHECKCREDS).map(|r| r.status).collect();
    assert_eq!(statuses, [200, 429], "one refused login, never tried again");
    workers.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_knox_login_fails_the_job_clearly_and_no_job_logs_in_again() {
    stores::each_store(|store| async move {
        throttled_login_fails_the_job(&store).await;
        store
    })
    .await;
}
