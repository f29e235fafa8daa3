//! Redis goes away under a running service and comes back: the service keeps working. Webhooks are
//! accepted and their jobs run, syncs finish; AlgaPSA events are skipped and counted
//! (`rmm_sync_events_total{outcome="skipped"}`), request limits fall back to the process's own;
//! once Redis is back, events are published again without a restart.

use std::time::{Duration, Instant};

use rmm_jobs::{JobRequest, JobStatus, Runtime, Trigger};
use rmm_shared::config::QueueBackend;
use rmm_tests::runtime::{
    SECRET, fast_settings, mapped_tactical_tenant, rmm_sync_process, runtime, wait_finished, wait_listening,
};
use rmm_tests::services::{PrivateRedis, free_port};
use rmm_tests::sim::tactical::TacticalSim;
use rmm_tests::stores;
use serde_json::json;
use uuid::Uuid;

/// `rmm_sync_events_total{outcome="…"}` from the process's `/metrics`.
async fn events(http: &reqwest::Client, base: &str, outcome: &str) -> u64 {
    let text = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    let prefix = format!("rmm_sync_events_total{{outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in /metrics"))
}

async fn stream_len(url: &str, prefix: &str) -> usize {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut conn).await.unwrap();
    let mut n = 0;
    for k in keys {
        let kind: String = redis::cmd("TYPE").arg(&k).query_async(&mut conn).await.unwrap();
        if kind == "stream" {
            let len: usize = redis::cmd("XLEN").arg(&k).query_async(&mut conn).await.unwrap();
            n += len;
        }
    }
    n
}

/// A full device sync and a webhook with its `sync-agent` job; both must end done, quickly.
async fn sync_and_webhook(rt: &Runtime, http: &reqwest::Client, base: &str, tenant: Uuid, integration: Uuid, n: u32) {
    let started = Instant::now();
    let id = rt
        .queue
        .enqueue(JobRequest::for_integration("sync-devices", tenant, "tacticalrmm", integration, Trigger::Admin))
        .await
        .unwrap();
    let job = wait_finished(rt, &id, Duration::from_secs(60)).await;
    assert_eq!(job.status, JobStatus::Done, "{job:?}");
    let body = json!({"agent_id": format!("agent-outage-{n}"), "alert_id": format!("o{n}"), "event": "trigger",
                      "severity": "error", "message": "Disk"});
    let resp = http
        .post(format!("{base}/api/webhooks/tacticalrmm?tenant={tenant}"))
        .header("X-Alga-Webhook-Secret", SECRET)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let answer: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(answer["recorded"], true, "{answer}");
    let job = wait_finished(rt, answer["job_id"].as_str().unwrap(), Duration::from_secs(60)).await;
    assert!(matches!(job.status, JobStatus::Done), "{job:?}");
    // Nothing waits on Redis: a connection refused is answered at once.
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_keeps_working_without_redis_and_publishes_again_when_it_returns() {
    let store = stores::postgres().await.unwrap();
    let db = &store.db;
    let dir = tempfile::tempdir().unwrap();
    let sim = TacticalSim::start_default().await.unwrap();
    let rt = runtime(db, fast_settings(QueueBackend::Database), dir.path()).await.unwrap();
    let (tenant, integration) = mapped_tactical_tenant(db, &rt, &sim).await;

    let redis_port = free_port();
    let redis = PrivateRedis::start(redis_port).await;
    let prefix = format!("rmm-outage-{}:", Uuid::new_v4().simple());
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let _service = rmm_sync_process("serve", &store.url, dir.path())
        .env("RMM_SYNC_HTTP__BIND", format!("127.0.0.1:{port}"))
        .env("RMM_SYNC_EVENTS_REDIS_URL", redis.url())
        .env("REDIS_PREFIX", &prefix)
        .env("RMM_SYNC_UPSTREAM__RATE_LIMIT_REDIS_URL", redis.url())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    wait_listening(&http, &base).await;

    // Redis up: events reach AlgaPSA's streams; the request limit is kept in Redis.
    sync_and_webhook(&rt, &http, &base, tenant, integration, 1).await;
    let published = events(&http, &base, "published").await;
    assert!(published > 0);
    assert_eq!(events(&http, &base, "skipped").await, 0);
    assert!(stream_len(&redis.url(), &prefix).await > 0);
    let limiter_keys: Vec<String> = {
        let client = redis::Client::open(redis.url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        redis::cmd("KEYS").arg("rmm-sync:*").query_async(&mut conn).await.unwrap()
    };
    assert!(!limiter_keys.is_empty(), "the shared request limit lives in Redis while it is up");

    // Redis gone: everything still works; events are skipped and counted.
    drop(redis);
    sync_and_webhook(&rt, &http, &base, tenant, integration, 2).await;
    let skipped = events(&http, &base, "skipped").await;
    assert!(skipped > 0, "events were skipped while Redis was down");
    assert_eq!(events(&http, &base, "published").await, published);
    sync_and_webhook(&rt, &http, &base, tenant, integration, 3).await;
    assert!(events(&http, &base, "skipped").await > skipped);

    // Redis back (empty, on the same port): events are published again, without a restart.
    let redis = PrivateRedis::start(redis_port).await;
    tokio::time::sleep(Duration::from_secs(6)).await; // past the reconnect pause (5 s)
    sync_and_webhook(&rt, &http, &base, tenant, integration, 4).await;
    assert!(events(&http, &base, "published").await > published);
    assert!(stream_len(&redis.url(), &prefix).await > 0, "the new Redis received events");
    store.cleanup().await;
}
