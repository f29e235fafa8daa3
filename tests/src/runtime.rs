//! A job runtime on a test store: queue on the store (or on Redis), fast polling and heartbeats,
//! secrets in a temporary directory.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rmm_jobs::{JobStatus, JobView, Registry, Runtime};
use rmm_shared::config::{QueueBackend, Settings};
use rmm_shared::db::Db;
use rmm_shared::db::sql::ColType;
use rmm_shared::events::EventBus;
use rmm_shared::secrets::SecretStore;
use secrecy::SecretString;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::sim::tactical::{DEFAULT_API_KEY, TacticalSim};
use crate::stores;

/// Redis for queue tests: `RMM_TEST_REDIS_URL`, else the local default.
pub fn redis_url() -> String {
    std::env::var("RMM_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Settings with short intervals, so tests wait seconds, not minutes.
pub fn fast_settings(backend: QueueBackend) -> Settings {
    let mut s = Settings::default();
    s.queue.backend = backend;
    s.queue.redis_url = redis_url();
    s.queue.redis_namespace = format!("rmm-test-{}", ulid::Ulid::generate());
    s.queue.poll_interval_ms = 100;
    s.queue.heartbeat_secs = 1;
    s.queue.missed_heartbeats = 3;
    s.scheduler.tick_ms = 200;
    s.worker.shutdown_timeout_secs = 5;
    s.http.webhook_coalesce_secs = 2;
    s
}

/// A runtime with the built-in kinds plus the test kinds.
pub async fn runtime(db: &Db, settings: Settings, secrets_dir: &std::path::Path) -> anyhow::Result<Runtime> {
    let secrets = SecretStore::from_env([("SECRET_FS_BASE_PATH".to_owned(), secrets_dir.display().to_string())])?;
    let mut registry = Registry::builtin();
    rmm_jobs::testing::register(&mut registry);
    Ok(Runtime::open(db.clone(), Arc::new(settings), Arc::new(registry), secrets, Arc::new(EventBus::disabled()))
        .await?)
}

/// Workers (and the scheduler) of `rt` running in the background until the guard is dropped.
pub struct Workers {
    token: CancellationToken,
    handle: Option<tokio::task::JoinHandle<()>>,
}

impl Workers {
    pub fn start(rt: &Runtime) -> Workers {
        let token = CancellationToken::new();
        let (rt, t) = (rt.clone(), token.clone());
        let handle = tokio::spawn(async move {
            if let Err(e) = rmm_jobs::worker::run(rt, t).await {
                eprintln!("workers stopped: {e}");
            }
        });
        Workers { token, handle: Some(handle) }
    }

    pub async fn stop(mut self) {
        self.token.cancel();
        if let Some(h) = self.handle.take() {
            let _ = tokio::time::timeout(Duration::from_secs(15), h).await;
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

/// Waits until the job is finished (done, failed, cancelled, skipped).
pub async fn wait_finished(rt: &Runtime, job_id: &str, within: Duration) -> JobView {
    let start = Instant::now();
    loop {
        let job = rt.store().get(job_id).await.expect("job store").expect("job exists");
        if job.status.is_finished() {
            return job;
        }
        assert!(start.elapsed() < within, "job {job_id} not finished after {within:?}: {job:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the job has this status.
pub async fn wait_status(rt: &Runtime, job_id: &str, status: JobStatus, within: Duration) -> JobView {
    let start = Instant::now();
    loop {
        let job = rt.store().get(job_id).await.expect("job store").expect("job exists");
        if job.status == status {
            return job;
        }
        assert!(start.elapsed() < within, "job {job_id} not {status:?} after {within:?}: {job:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Maps every organisation mapping of `tenant` to one AlgaPSA client named `client_name`.
pub async fn map_every_scope(db: &Db, tenant: Uuid, client_name: &str) -> Uuid {
    let client = stores::client(db, tenant, client_name).await.expect("client");
    let d = db.dialect();
    db.execute(
        &format!(
            "UPDATE rmm_organization_mappings SET client_id = {} WHERE tenant = {}",
            d.param(1, ColType::Uuid),
            d.param(2, ColType::Uuid)
        ),
        &[&client.to_string(), &tenant.to_string()],
    )
    .await
    .expect("mapping update");
    client
}

/// A tenant whose Tactical integration points at `sim`, its Tactical clients synced as
/// organisation mappings and all mapped to one AlgaPSA client, "Acme".
pub async fn mapped_tactical_tenant(db: &Db, rt: &Runtime, sim: &TacticalSim) -> (Uuid, Uuid) {
    let (tenant, integration) = tactical_tenant(db, rt, Some(sim)).await;
    let client = rmm_jobs::providers::tactical::build_client(rt, tenant, integration).await.expect("client");
    rmm_shared::providers::tactical::sync::sync_organizations(db, tenant, integration, &client)
        .await
        .expect("organisation sync");
    map_every_scope(db, tenant, "Acme").await;
    (tenant, integration)
}

/// The webhook secret [`tactical_tenant`] sets.
pub const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef";

pub async fn set_secret(rt: &Runtime, tenant: Uuid, name: &str, value: &str) {
    rt.secrets.set_tenant_secret(tenant, name, Some(&SecretString::from(value.to_owned()))).await.unwrap();
}

/// A tenant with an active Tactical integration pointing at `sim`, and the webhook secret set.
pub async fn tactical_tenant(db: &Db, rt: &Runtime, sim: Option<&TacticalSim>) -> (Uuid, Uuid) {
    let tenant = stores::tenant(db).await.unwrap();
    let integration = stores::integration(db, tenant, "tacticalrmm").await.unwrap();
    if let Some(sim) = sim {
        point_at(db, tenant, "tacticalrmm", sim.base_url()).await;
        set_secret(rt, tenant, "tacticalrmm_api_key", DEFAULT_API_KEY).await;
    }
    set_secret(rt, tenant, "tacticalrmm_webhook_secret", SECRET).await;
    (tenant, integration)
}

/// Points the tenant's `provider` integration at `url` (a simulator).
pub async fn point_at(db: &Db, tenant: Uuid, provider: &str, url: &str) {
    let d = db.dialect();
    db.execute(
        &format!(
            "UPDATE rmm_integrations SET instance_url = {} WHERE tenant = {} AND provider = {}",
            d.param(1, ColType::Text),
            d.param(2, ColType::Uuid),
            d.param(3, ColType::Text)
        ),
        &[url, &tenant.to_string(), provider],
    )
    .await
    .expect("integration update");
}

/// Waits until an `rmm-sync serve` (or `ingress`) process answers `/healthz` at `base`.
pub async fn wait_listening(http: &reqwest::Client, base: &str) {
    let start = Instant::now();
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(start.elapsed() < Duration::from_secs(30), "rmm-sync did not start listening at {base}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `rmm-sync` binary of the same build as the running executable: next to it (a benchmark
/// program) or one directory up (a test executable in `deps/`). The test script builds it first.
pub fn rmm_sync_bin() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("running executable");
    let name = format!("rmm-sync{}", std::env::consts::EXE_SUFFIX);
    let found = exe.ancestors().skip(1).take(2).map(|d| d.join(&name)).find(|p| p.exists());
    found.unwrap_or_else(|| panic!("no {name} next to {}; run `cargo build --workspace --bins` first", exe.display()))
}

/// `rmm-sync <command>` as a child process on `database_url`, with the test job kinds, the short
/// intervals of [`fast_settings`], no scheduler, and tenant secrets in `secrets_dir`.
pub fn rmm_sync_process(command: &str, database_url: &str, secrets_dir: &std::path::Path) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(rmm_sync_bin());
    c.arg(command)
        .env("DATABASE_URL", database_url)
        .env("SECRET_FS_BASE_PATH", secrets_dir)
        .env("RMM_SYNC_TEST_JOBS", "1")
        .env("RMM_SYNC_QUEUE__POLL_INTERVAL_MS", "100")
        .env("RMM_SYNC_QUEUE__HEARTBEAT_SECS", "1")
        .env("RMM_SYNC_QUEUE__MISSED_HEARTBEATS", "3")
        .env("RMM_SYNC_SCHEDULER__ENABLED", "false")
        .env("RMM_SYNC_LOG__LEVEL", "warn")
        .kill_on_drop(true);
    c
}

/// The ingress of a runtime on a loopback port, with a client for it.
pub struct Ingress {
    pub addr: SocketAddr,
    token: CancellationToken,
    pub http: reqwest::Client,
}

impl Ingress {
    /// The ingress as the service runs it (its listener, limits and timeouts from `rt`'s settings).
    pub async fn start(rt: &Runtime, bootstrap: Option<&str>) -> Ingress {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = rmm_ingress::AppState::new(rt.clone(), bootstrap.map(|b| SecretString::from(b.to_owned())));
        let token = CancellationToken::new();
        let t = token.clone();
        tokio::spawn(async move { rmm_ingress::serve_on(listener, state, t, None).await });
        Ingress { addr, token, http: reqwest::Client::new() }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn webhook(
        &self,
        tenant: Option<&str>,
        secret: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value) {
        let path = match tenant {
            Some(t) => format!("/api/webhooks/tacticalrmm?tenant={t}"),
            None => "/api/webhooks/tacticalrmm".into(),
        };
        let mut req = self.http.post(self.url(&path)).header("content-type", "application/json").body(body);
        if let Some(s) = secret {
            req = req.header("X-Alga-Webhook-Secret", s);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn api(&self, method: reqwest::Method, path: &str, key: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method, self.url(&format!("/api/v1{path}"))).bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

impl Drop for Ingress {
    fn drop(&mut self) {
        self.token.cancel();
    }
}
