//! A job runtime on a test store: queue on the store (or on Redis), fast polling and heartbeats,
//! secrets in a temporary directory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rmm_jobs::{JobStatus, JobView, Registry, Runtime};
use rmm_shared::config::{QueueBackend, Settings};
use rmm_shared::db::Db;
use rmm_shared::events::EventBus;
use rmm_shared::secrets::SecretStore;
use tokio_util::sync::CancellationToken;

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
