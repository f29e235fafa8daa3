//! OTLP trace export end to end: a collector on loopback (OTLP/HTTP, protobuf), the ingress and
//! the workers in this process exporting to it, the Tactical simulator upstream. One trace covers
//! the ingress request (continuing the caller's `traceparent`), the job (through the queue
//! payload, so in whichever process runs it) and every Tactical call (which sends `traceparent`).
//!
//! The OpenTelemetry subscriber is process-global: it is installed once for the whole test binary
//! ([`crate::support::telemetry`]), and the spans of the tests running meanwhile reach the same
//! collector, so every check here selects its spans by trace id (or job id). Its last part runs
//! the job in an `rmm-sync worker` child process (`cargo build --workspace --bins` first).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use rmm_jobs::JobStatus;
use rmm_shared::config::QueueBackend;
use rmm_shared::telemetry::Telemetry;
use rmm_tests::runtime::{
    Ingress, SECRET, Workers, fast_settings, mapped_tactical_tenant, rmm_sync_process, runtime, wait_finished,
};
use rmm_tests::sim::tactical::{FleetSpec, SimConfig, TacticalSim};
use rmm_tests::stores::{self, TestStore};
use serde_json::{Value, json};

use crate::support::{Collector, Got};

fn random_hex(bytes: usize) -> String {
    (0..bytes).map(|_| format!("{:02x}", rand::random::<u8>())).collect()
}

/// Flushes the exporter until `check` is satisfied by what the collector has (the job's span
/// ends just after its status is written), or fails after 15 s.
async fn until_collected<T>(telemetry: &Arc<Telemetry>, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        let t = telemetry.clone();
        tokio::task::spawn_blocking(move || t.flush()).await.unwrap();
        if let Some(v) = check() {
            return v;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "the collector did not receive the expected spans");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The spans of one trace, as the test expects them.
struct Trace {
    server: Got,
    job: Got,
    clients: Vec<Got>,
}

/// The ingress span, the job span of `kind` (a child of it) and the client spans under the job,
/// once all are there.
fn find_trace(spans: &[Got], route: &str, kind: &str) -> Option<Trace> {
    let server = spans.iter().find(|s| s.kind == SpanKind::Server as i32 && s.name == route)?.clone();
    let job = spans.iter().find(|s| s.kind == SpanKind::Consumer as i32 && s.name == format!("job {kind}"))?.clone();
    let by_id: HashMap<&str, &Got> = spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    let under_job = |s: &Got| {
        let mut cur = s;
        for _ in 0..10 {
            if cur.parent_span_id == job.span_id {
                return true;
            }
            match by_id.get(cur.parent_span_id.as_str()) {
                Some(p) => cur = p,
                None => return false,
            }
        }
        false
    };
    let clients: Vec<Got> =
        spans.iter().filter(|s| s.kind == SpanKind::Client as i32 && under_job(s)).cloned().collect();
    (!clients.is_empty()).then_some(Trace { server, job, clients })
}

/// Trace id and parent span id of a `traceparent` value.
fn parse_traceparent(v: &str) -> (String, String) {
    let parts: Vec<&str> = v.split('-').collect();
    assert_eq!(parts.len(), 4, "traceparent {v}");
    assert_eq!(parts[0], "00", "traceparent {v}");
    (parts[1].to_owned(), parts[2].to_owned())
}

/// Checks one trace: the job span is the child of the ingress span, every client span under the
/// job reached the simulator with its own span id as the `traceparent` parent, and every
/// simulator request of the trace came from one of those spans.
fn check_trace(t: &Trace, sim: &TacticalSim, job_id: &str, ingress_service: &str, worker_service: &str) {
    assert_eq!(t.job.parent_span_id, t.server.span_id, "the job span continues the ingress span: {:?}", t.job);
    assert_eq!(t.job.attributes.get("job_id").map(String::as_str), Some(job_id), "{:?}", t.job);
    let status = t.server.attributes.get("http.response.status_code").map(String::as_str);
    assert!(matches!(status, Some("200" | "202")), "{:?}", t.server);
    assert_eq!(t.server.service, ingress_service, "service.name of {:?}", t.server);
    for s in [&t.job].into_iter().chain(&t.clients) {
        assert_eq!(s.service, worker_service, "service.name of {s:?}");
    }
    let client_ids: Vec<&str> = t.clients.iter().map(|c| c.span_id.as_str()).collect();
    for c in &t.clients {
        assert!(c.attributes.get("url.full").is_some_and(|u| u.starts_with(sim.base_url())), "{c:?}");
        assert_eq!(c.attributes.get("http.response.status_code").map(String::as_str), Some("200"), "{c:?}");
    }
    let seen: Vec<(String, String)> =
        sim.requests().iter().filter_map(|r| r.traceparent.as_deref()).map(parse_traceparent).collect();
    let of_trace: Vec<&(String, String)> = seen.iter().filter(|(trace, _)| *trace == t.server.trace_id).collect();
    assert!(!of_trace.is_empty(), "the simulator saw no traceparent of trace {}: {seen:?}", t.server.trace_id);
    for (_, parent) in &of_trace {
        assert!(
            client_ids.contains(&parent.as_str()),
            "traceparent parent {parent} is not a client span {client_ids:?}"
        );
    }
    assert_eq!(of_trace.len(), t.clients.len(), "one upstream request per client span");
}

async fn scenario(store: &TestStore, backend: QueueBackend, collector: &Collector, telemetry: &Arc<Telemetry>) {
    let db = &store.db;
    let dir = tempfile::tempdir().unwrap();
    let sim = TacticalSim::start(SimConfig::with_fleet(FleetSpec::new(7, 1, 1, 3))).await.unwrap();
    let rt = runtime(db, fast_settings(backend), dir.path()).await.unwrap();
    let (tenant, _) = mapped_tactical_tenant(db, &rt, &sim).await;
    let workers = Workers::start(&rt);
    let ing = Ingress::start(&rt, Some("bootstrap-key")).await;
    let webhook_url = ing.url(&format!("/api/webhooks/tacticalrmm?tenant={tenant}"));
    let agents = sim.agents();
    let webhook = |agent: &str, alert: &str| {
        json!({"agent_id": agent, "alert_id": alert, "event": "trigger", "severity": "error", "message": "CPU"})
            .to_string()
    };

    // A webhook with this traceparent, answered 200; its sync-agent job run to the end.
    let deliver = |traceparent: String, agent: String, alert: &'static str| {
        let (http, url, rt) = (ing.http.clone(), webhook_url.clone(), rt.clone());
        async move {
            let resp = http
                .post(&url)
                .header("content-type", "application/json")
                .header("x-alga-webhook-secret", SECRET)
                .header("traceparent", traceparent)
                .body(webhook(&agent, alert))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status().as_u16(), 200);
            let reply: Value = resp.json().await.unwrap();
            let job_id = reply["job_id"].as_str().expect("job id").to_owned();
            let job = wait_finished(&rt, &job_id, Duration::from_secs(30)).await;
            assert_eq!(job.status, JobStatus::Done, "{job:?}");
            job_id
        }
    };

    // 1. A webhook whose caller sends a traceparent: the trace continues from the caller's span.
    let (trace_id, caller_span) = (random_hex(16), random_hex(8));
    let job_id = deliver(format!("00-{trace_id}-{caller_span}-01"), agents[0].agent_id.clone(), "701").await;
    let t = until_collected(telemetry, || {
        find_trace(&collector.trace(&trace_id), "POST /api/webhooks/tacticalrmm", "sync-agent")
    })
    .await;
    assert_eq!(t.server.parent_span_id, caller_span, "the ingress span is a child of the caller's span");
    check_trace(&t, &sim, &job_id, "rmm-sync-test", "rmm-sync-test");

    // 2. A webhook with a malformed traceparent: a new trace starts at the ingress.
    let job_id2 = deliver("00-not-a-trace-01".into(), agents[1].agent_id.clone(), "702").await;
    let t2 = until_collected(telemetry, || {
        let root = collector
            .received
            .lock()
            .unwrap()
            .iter()
            .find(|s| s.attributes.get("job_id") == Some(&job_id2))
            .cloned()?;
        find_trace(&collector.trace(&root.trace_id), "POST /api/webhooks/tacticalrmm", "sync-agent")
    })
    .await;
    assert_ne!(t2.server.trace_id, trace_id);
    assert_eq!(t2.server.parent_span_id, "", "a new trace has a root span at the ingress");
    check_trace(&t2, &sim, &job_id2, "rmm-sync-test", "rmm-sync-test");

    // 3. An admin API enqueue: the sync-org job and its Tactical calls join the request's trace.
    let (trace_id3, caller_span3) = (random_hex(16), random_hex(8));
    let resp = ing
        .http
        .post(ing.url(&format!("/api/v1/tenants/{tenant}/integrations/tacticalrmm/jobs/sync-org")))
        .bearer_auth("bootstrap-key")
        .header("traceparent", format!("00-{trace_id3}-{caller_span3}-01"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let reply: Value = resp.json().await.unwrap();
    let job_id3 = reply["job_id"].as_str().expect("job id").to_owned();
    let job = wait_finished(&rt, &job_id3, Duration::from_secs(30)).await;
    assert_eq!(job.status, JobStatus::Done, "{job:?}");
    let route = "POST /api/v1/tenants/{id}/integrations/tacticalrmm/jobs/sync-org";
    let t3 = until_collected(telemetry, || find_trace(&collector.trace(&trace_id3), route, "sync-org")).await;
    assert_eq!(t3.server.parent_span_id, caller_span3);
    assert_eq!(t3.server.attributes.get("http.response.status_code").map(String::as_str), Some("202"));
    check_trace(&t3, &sim, &job_id3, "rmm-sync-test", "rmm-sync-test");

    workers.stop().await;
}

/// The ingress in this process, the job in an `rmm-sync worker` child process exporting to the
/// same collector. Its batch interval is a minute, so its spans arrive only through the flush on
/// SIGTERM.
async fn child_worker_scenario(store: &TestStore, collector: &Collector, telemetry: &Arc<Telemetry>) {
    let db = &store.db;
    let dir = tempfile::tempdir().unwrap();
    let sim = TacticalSim::start(SimConfig::with_fleet(FleetSpec::new(8, 1, 1, 2))).await.unwrap();
    let rt = runtime(db, fast_settings(QueueBackend::Database), dir.path()).await.unwrap();
    let (tenant, _) = mapped_tactical_tenant(db, &rt, &sim).await;
    let ing = Ingress::start(&rt, None).await;
    let mut child = rmm_sync_process("worker", &store.url, dir.path())
        .env("RMM_SYNC_TELEMETRY__OTLP_ENDPOINT", &collector.url)
        .env("RMM_SYNC_TELEMETRY__SERVICE_NAME", "rmm-sync-worker-test")
        .env("OTEL_BSP_SCHEDULE_DELAY", "60000")
        .spawn()
        .unwrap();

    let (trace_id, caller_span) = (random_hex(16), random_hex(8));
    let agent = sim.agents()[0].agent_id.clone();
    let resp = ing
        .http
        .post(ing.url(&format!("/api/webhooks/tacticalrmm?tenant={tenant}")))
        .header("content-type", "application/json")
        .header("x-alga-webhook-secret", SECRET)
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .body(
            json!({"agent_id": agent, "alert_id": "801", "event": "trigger", "severity": "warning", "message": "Disk"})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let reply: Value = resp.json().await.unwrap();
    let job_id = reply["job_id"].as_str().expect("job id").to_owned();
    let job = wait_finished(&rt, &job_id, Duration::from_secs(60)).await;
    assert_eq!(job.status, JobStatus::Done, "{job:?}");
    assert!(job.worker.as_deref().is_some_and(|w| w.contains(&child.id().unwrap().to_string())), "{job:?}");
    assert!(
        collector.trace(&trace_id).iter().all(|s| s.service != "rmm-sync-worker-test"),
        "the worker exported before its batch interval"
    );

    let pid = child.id().unwrap().to_string();
    let kill = tokio::process::Command::new("kill").args(["-TERM", &pid]).status().await.unwrap();
    assert!(kill.success());
    let exit = tokio::time::timeout(Duration::from_secs(20), child.wait()).await.expect("worker stops").unwrap();
    assert!(exit.success(), "worker exit: {exit:?}");
    let t = until_collected(telemetry, || {
        find_trace(&collector.trace(&trace_id), "POST /api/webhooks/tacticalrmm", "sync-agent")
    })
    .await;
    assert_eq!(t.server.parent_span_id, caller_span);
    check_trace(&t, &sim, &job_id, "rmm-sync-test", "rmm-sync-worker-test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_runs_from_the_ingress_request_through_the_job_to_every_tactical_call() {
    let (collector, telemetry) = crate::support::telemetry();
    assert!(telemetry.exporting(), "a subscriber was installed before the process's telemetry");

    // The PostgreSQL queue (the webhook accept is one statement), SQLite, and the Redis queue
    // (the job is handed to Redis from the outbox row after commit).
    let sqlite = stores::sqlite().await.unwrap();
    scenario(&sqlite, QueueBackend::Database, collector, telemetry).await;
    sqlite.cleanup().await;
    let pg = stores::postgres().await.expect("PostgreSQL (see RMM_TEST_PG_URL)");
    scenario(&pg, QueueBackend::Database, collector, telemetry).await;
    pg.cleanup().await;
    let pg = stores::postgres().await.unwrap();
    scenario(&pg, QueueBackend::Redis, collector, telemetry).await;
    pg.cleanup().await;
    // The job in another process: the trace crosses the process boundary through the queue.
    let pg = stores::postgres().await.unwrap();
    child_worker_scenario(&pg, collector, telemetry).await;
    pg.cleanup().await;
}
