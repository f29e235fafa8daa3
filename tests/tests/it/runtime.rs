//! The job runtime and the ingress end to end: real stores, real queues (Postgres, SQLite,
//! Redis), the ingress on a loopback port and the Tactical simulator.

use std::time::{Duration, Instant};

use poem::listener::{Acceptor, Listener, TcpListener};
use rmm_jobs::schedules::{Cadence, ScheduleScope, ScheduleStore, tick};
use rmm_jobs::{JobFilter, JobRequest, JobStatus, Trigger};
use rmm_shared::config::QueueBackend;
use rmm_shared::db::sql::ColType;
use rmm_tests::runtime::{
    Ingress, SECRET, Workers, fast_settings, map_every_scope, rmm_sync_process, runtime, tactical_tenant, wait_finished,
};
use rmm_tests::sim::tactical::{FleetSpec, SimConfig, TacticalSim};
use rmm_tests::stores::{self, TestStore, count, scalar};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_contract_case_by_case() {
    stores::each_store(|store| async move {
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime(&store.db, fast_settings(QueueBackend::Database), dir.path()).await.unwrap();
        let ing = Ingress::start(&rt, None).await;
        let db = &store.db;
        let (tenant, _) = tactical_tenant(db, &rt, None).await;
        let t = tenant.to_string();
        let ok_body = json!({"agent_id": "agent-1", "alert_id": "77", "event": "trigger", "severity": "error",
            "message": "Disk C: below 10%", "alert_time": "2026-02-13 18:25:43.511000+00:00", "client_id": "None"});

        assert_eq!(
            ing.webhook(None, Some(SECRET), ok_body.to_string()).await,
            (400, json!({"error": "Missing tenant"}))
        );
        assert_eq!(
            ing.webhook(Some(&t), None, ok_body.to_string()).await,
            (401, json!({"error": "Unauthorized: missing webhook secret"}))
        );
        assert_eq!(
            ing.webhook(Some(&t), Some("wrong"), ok_body.to_string()).await,
            (401, json!({"error": "Unauthorized: invalid webhook secret"}))
        );
        // Another tenant's secret does not open this tenant.
        assert_eq!(ing.webhook(Some(&Uuid::new_v4().to_string()), Some(SECRET), ok_body.to_string()).await.0, 401);
        assert_eq!(
            ing.webhook(Some(&t), Some(SECRET), "{not json").await,
            (400, json!({"error": "Invalid JSON body"}))
        );
        assert_eq!(ing.webhook(Some(&t), Some(SECRET), "[1,2]").await, (400, json!({"error": "Invalid JSON body"})));
        assert_eq!(
            ing.webhook(Some(&t), Some(SECRET), json!({"agent_id": "None"}).to_string()).await,
            (400, json!({"error": "agent_id is required"}))
        );
        // PostgreSQL cannot store a NUL: refused as input on every store, not a 503.
        assert_eq!(
            ing.webhook(Some(&t), Some(SECRET), r#"{"agent_id":"a","message":"x\u0000y"}"#).await,
            (400, json!({"error": "Invalid JSON body: text with a NUL character (\\u0000) cannot be stored"}))
        );
        let big = format!("{{\"agent_id\":\"a\",\"message\":\"{}\"}}", "x".repeat(300 * 1024));
        assert_eq!(ing.webhook(Some(&t), Some(SECRET), big).await.0, 413);

        // A valid delivery: stored and its job enqueued before the 200.
        let (status, body) = ing.webhook(Some(&t), Some(SECRET), ok_body.to_string()).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!((body["ok"].clone(), body["recorded"].clone()), (json!(true), json!(true)));
        let job_id = body["job_id"].as_str().unwrap().to_owned();
        let job = rt.store().get(&job_id).await.unwrap().unwrap();
        assert_eq!(
            (job.kind.as_str(), job.trigger.as_str(), job.status),
            ("sync-agent", "webhook", JobStatus::Pending)
        );
        assert_eq!(job.args, json!({"agent_id": "agent-1"}));
        let deliveries = scalar(
            db,
            &format!(
                "SELECT CAST(COUNT(*) AS TEXT) FROM {} WHERE job_id = {}",
                db.ours("webhook_deliveries"),
                db.dialect().param(1, ColType::Text)
            ),
            &[&job_id],
        )
        .await
        .unwrap();
        assert_eq!(deliveries.as_deref(), Some("1"));

        // The body as a JSON string holding the object (what Tactical sends when its template breaks).
        let wrapped = serde_json::to_string(&json!({"agent_id": "agent-2", "event": "trigger"}).to_string()).unwrap();
        let (status, body) = ing.webhook(Some(&t), Some(SECRET), wrapped).await;
        assert_eq!((status, body["recorded"].clone()), (200, json!(true)), "{body}");

        // Inactive integration, suspended tenant, no integration.
        let d = db.dialect();
        let f = rmm_shared::db::sql::P(d).bool(false);
        db.execute(
            &format!("UPDATE rmm_integrations SET is_active = {f} WHERE tenant = {}", d.param(1, ColType::Uuid)),
            &[&t],
        )
        .await
        .unwrap();
        assert_eq!(
            ing.webhook(Some(&t), Some(SECRET), ok_body.to_string()).await,
            (200, json!({"ok": true, "recorded": false, "reason": "integration_inactive"}))
        );
        db.execute(&format!("DELETE FROM rmm_integrations WHERE tenant = {}", d.param(1, ColType::Uuid)), &[&t])
            .await
            .unwrap();
        assert_eq!(
            ing.webhook(Some(&t), Some(SECRET), ok_body.to_string()).await,
            (200, json!({"ok": true, "recorded": false, "reason": "integration_not_configured"}))
        );
        let now = rmm_shared::db::sql::fmt_ts(chrono::Utc::now());
        db.execute(
            &format!(
                "UPDATE tenants SET suspended_at = {}, suspended_reason = 'tenant_cancelled' WHERE tenant = {}",
                d.param(1, ColType::Timestamp),
                d.param(2, ColType::Uuid)
            ),
            &[&now, &t],
        )
        .await
        .unwrap();
        assert_eq!(
            ing.webhook(Some(&t), Some(SECRET), ok_body.to_string()).await,
            (200, json!({"ok": true, "recorded": false, "reason": "tenant_suspended"}))
        );

        // The database goes away: never a 200 for a delivery that was not stored.
        db.execute(
            &format!(
                "UPDATE tenants SET suspended_at = NULL, suspended_reason = NULL WHERE tenant = {}",
                d.param(1, ColType::Uuid)
            ),
            &[&t],
        )
        .await
        .unwrap();
        stores::integration(db, tenant, "tacticalrmm").await.unwrap();
        db.close().await;
        let (status, body) = ing.webhook(Some(&t), Some(SECRET), ok_body.to_string()).await;
        assert_eq!(status, 503, "{body}");
        store
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_for_one_agent_records_every_alert_and_refreshes_at_most_twice() {
    stores::each_store(|store| async move {
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime(&store.db, fast_settings(QueueBackend::Database), dir.path()).await.unwrap();
        let ing = Ingress::start(&rt, None).await;
        let (tenant, _) = tactical_tenant(&store.db, &rt, None).await;
        let mut jobs = std::collections::BTreeSet::new();
        for i in 0..8 {
            let body = json!({"agent_id": "agent-burst", "alert_id": format!("{i}"), "event": "trigger"});
            let (status, reply) = ing.webhook(Some(&tenant.to_string()), Some(SECRET), body.to_string()).await;
            assert_eq!(status, 200, "{reply}");
            jobs.insert(reply["job_id"].as_str().unwrap().to_owned());
        }
        // No worker runs here, so the first job stays pending and every later delivery joins it.
        assert_eq!(jobs.len(), 1, "{jobs:?}");
        let deliveries = count(
            &store.db,
            tenant,
            &format!("{} WHERE agent_id = 'agent-burst'", store.db.ours("webhook_deliveries")),
        )
        .await;
        assert_eq!(deliveries, 8);
        store
    })
    .await;
}

/// Webhook → job → alert recorded and agent refreshed from Tactical, on each queue backend.
async fn webhook_to_rows(store: &TestStore, backend: QueueBackend) {
    let db = &store.db;
    let dir = tempfile::tempdir().unwrap();
    let sim = TacticalSim::start(SimConfig::with_fleet(FleetSpec::new(5, 2, 1, 3))).await.unwrap();
    let rt = runtime(db, fast_settings(backend), dir.path()).await.unwrap();
    let (tenant, integration) = tactical_tenant(db, &rt, Some(&sim)).await;
    let workers = Workers::start(&rt);

    // Organisations first (a job through the queue), then map one and sync its devices.
    let org = rt
        .queue
        .enqueue(JobRequest::for_integration("sync-org", tenant, "tacticalrmm", integration, Trigger::Admin))
        .await
        .unwrap();
    let job = wait_finished(&rt, &org, Duration::from_secs(30)).await;
    assert_eq!(job.status, JobStatus::Done, "{job:?}");
    assert_eq!(count(db, tenant, "rmm_organization_mappings WHERE true").await, 2);
    map_every_scope(db, tenant, "Acme").await;
    let d = db.dialect();
    let devices = rt
        .queue
        .enqueue(JobRequest::for_integration("sync-devices", tenant, "tacticalrmm", integration, Trigger::Admin))
        .await
        .unwrap();
    let job = wait_finished(&rt, &devices, Duration::from_secs(60)).await;
    assert_eq!(job.status, JobStatus::Done, "{job:?}");
    assert_eq!(job.progress_processed, 2);
    assert_eq!(count(db, tenant, "assets WHERE true").await, 6);

    // A webhook for one agent: its alert is recorded and the agent refreshed by the job.
    let agent = sim.agents()[0].agent_id.clone();
    let ing = Ingress::start(&rt, None).await;
    let body = json!({"agent_id": agent, "alert_id": "901", "event": "trigger", "severity": "error", "message": "CPU"});
    let (status, reply) = ing.webhook(Some(&tenant.to_string()), Some(SECRET), body.to_string()).await;
    assert_eq!(status, 200, "{reply}");
    let job = wait_finished(&rt, reply["job_id"].as_str().unwrap(), Duration::from_secs(30)).await;
    assert_eq!(job.status, JobStatus::Done, "{job:?}");
    let counts = &job.result.as_ref().unwrap()["counts"];
    assert_eq!(counts["alerts_recorded"], json!(1), "{job:?}");
    assert_eq!(counts["updated"].as_u64().unwrap() + counts["created"].as_u64().unwrap(), 1, "{job:?}");
    let alert = scalar(
        db,
        &format!(
            "SELECT severity FROM rmm_alerts WHERE tenant = {} AND external_alert_id = '901'",
            d.param(1, ColType::Uuid)
        ),
        &[&tenant.to_string()],
    )
    .await
    .unwrap();
    assert_eq!(alert.as_deref(), Some("critical"));
    workers.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_to_rows_on_the_database_queue() {
    stores::each_store(|store| async move {
        webhook_to_rows(&store, QueueBackend::Database).await;
        store
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_to_rows_on_the_redis_queue() {
    let store = stores::postgres().await.unwrap();
    webhook_to_rows(&store, QueueBackend::Redis).await;
    store.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_attempts_back_off_then_exhausted_jobs_are_listed_and_requeued() {
    stores::each_store(|store| async move {
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime(&store.db, fast_settings(QueueBackend::Database), dir.path()).await.unwrap();
        let workers = Workers::start(&rt);
        // Fails twice, succeeds on the third attempt: backoff 1 s then 2 s between attempts.
        let started = Instant::now();
        let id = rt
            .queue
            .enqueue(JobRequest::global("test-fail", Trigger::Admin).args(json!({"fail_times": 2})))
            .await
            .unwrap();
        let job = wait_finished(&rt, &id, Duration::from_secs(30)).await;
        let took = started.elapsed();
        assert_eq!(job.status, JobStatus::Done, "{job:?}");
        assert_eq!(job.attempts, 3, "{job:?}");
        assert_eq!(job.result.as_ref().unwrap()["counts"]["attempt"], json!(3));
        assert!(took >= Duration::from_secs(3), "attempts were not spaced by the backoff: {took:?}");

        // Always failing: three attempts, then failed; listed; re-queued as a new job.
        let id = rt
            .queue
            .enqueue(JobRequest::global("test-fail", Trigger::Admin).args(json!({"fail_times": 9})))
            .await
            .unwrap();
        let job = wait_finished(&rt, &id, Duration::from_secs(30)).await;
        assert_eq!((job.status, job.attempts), (JobStatus::Failed, 3), "{job:?}");
        assert!(job.last_error.as_deref().unwrap().contains("failure 3"), "{job:?}");
        let failed = rt
            .store()
            .list(&JobFilter {
                tenant: None,
                status: Some(JobStatus::Failed),
                kind: Some("test-fail".into()),
                limit: 10,
            })
            .await
            .unwrap();
        assert!(failed.iter().any(|j| j.job_id == id));
        let again = rt.queue.retry(&id).await.unwrap();
        assert_ne!(again, id);
        let job = wait_finished(&rt, &again, Duration::from_secs(30)).await;
        assert_eq!(job.retry_of.as_deref(), Some(id.as_str()));
        assert!(rt.queue.retry(&id).await.is_err(), "a job is re-queued once");

        // A permanent error is not retried.
        let id = rt
            .queue
            .enqueue(JobRequest::global("test-fail", Trigger::Admin).args(json!({"fail_times": 1, "permanent": true})))
            .await
            .unwrap();
        let job = wait_finished(&rt, &id, Duration::from_secs(30)).await;
        assert_eq!((job.status, job.attempts), (JobStatus::Failed, 1), "{job:?}");

        // Retry-After: a durable delayed continuation of the same job, then done.
        let id = rt
            .queue
            .enqueue(
                JobRequest::global("test-fail", Trigger::Admin).args(json!({"fail_times": 1, "retry_after_secs": 1})),
            )
            .await
            .unwrap();
        let job = wait_finished(&rt, &id, Duration::from_secs(30)).await;
        assert_eq!((job.status, job.deferrals), (JobStatus::Done, 1), "{job:?}");
        workers.stop().await;
        store
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_scheduler_replicas_enqueue_each_slot_once_and_skip_inactive_integrations() {
    stores::each_store(|store| async move {
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime(&store.db, fast_settings(QueueBackend::Database), dir.path()).await.unwrap();
        let (tenant, integration) = tactical_tenant(&store.db, &rt, None).await;
        let schedules = ScheduleStore::new(store.db.clone());
        let scope = ScheduleScope {
            tenant: Some(tenant),
            provider: Some("tacticalrmm".into()),
            integration_id: Some(integration),
            kind: "sync-org".into(),
        };
        schedules.put(&scope, &Cadence::Every(60), true).await.unwrap();
        // Make it due now.
        let d = store.db.dialect();
        let past = rmm_shared::db::sql::fmt_ts(chrono::Utc::now() - chrono::Duration::minutes(5));
        store
            .db
            .execute(
                &format!("UPDATE {} SET next_run_at = {}", store.db.ours("schedules"), d.param(1, ColType::Timestamp)),
                &[&past],
            )
            .await
            .unwrap();
        let (a, b) = tokio::join!(tick(&rt.queue), tick(&rt.queue));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.enqueued.len() + b.enqueued.len(), 1, "{a:?} {b:?}");
        let (c, _) = tokio::join!(tick(&rt.queue), tick(&rt.queue));
        assert!(c.unwrap().enqueued.is_empty(), "the next slot is an hour away");

        // Due again, but the integration is inactive: the slot is claimed and skipped.
        store
            .db
            .execute(
                &format!("UPDATE {} SET next_run_at = {}", store.db.ours("schedules"), d.param(1, ColType::Timestamp)),
                &[&past],
            )
            .await
            .unwrap();
        let f = rmm_shared::db::sql::P(d).bool(false);
        store.db.execute(&format!("UPDATE rmm_integrations SET is_active = {f}"), &[]).await.unwrap();
        let r = tick(&rt.queue).await.unwrap();
        assert!(r.enqueued.is_empty());
        assert_eq!(r.skipped.len(), 1, "{r:?}");
        store
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_of_one_tenant_cannot_see_or_touch_another() {
    let store = stores::sqlite().await.unwrap();
    let db = &store.db;
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(db, fast_settings(QueueBackend::Database), dir.path()).await.unwrap();
    let ing = Ingress::start(&rt, Some("bootstrap-key")).await;
    let (a, _) = tactical_tenant(db, &rt, None).await;
    let (b, _) = tactical_tenant(db, &rt, None).await;
    let key_a = rmm_ingress::auth::create_key(db, Some(a), rmm_ingress::auth::KeyScope::Write, "a").await.unwrap().key;
    let read_a = rmm_ingress::auth::create_key(db, Some(a), rmm_ingress::auth::KeyScope::Read, "ra").await.unwrap().key;
    use reqwest::Method;

    assert_eq!(ing.api(Method::GET, &format!("/tenants/{a}/integrations/tacticalrmm"), "nope", None).await.0, 401);
    assert_eq!(ing.api(Method::GET, &format!("/tenants/{a}/integrations/tacticalrmm"), &key_a, None).await.0, 200);
    assert_eq!(ing.api(Method::GET, &format!("/tenants/{b}/integrations/tacticalrmm"), &key_a, None).await.0, 404);
    let (status, job) = ing
        .api(Method::POST, &format!("/tenants/{b}/integrations/tacticalrmm/jobs/sync-org"), &key_a, Some(json!({})))
        .await;
    assert_eq!(status, 404, "{job}");
    // A job of tenant B, enqueued with the bootstrap key, is invisible to A's key.
    let (status, job) = ing
        .api(
            Method::POST,
            &format!("/tenants/{b}/integrations/tacticalrmm/jobs/sync-org"),
            "bootstrap-key",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 202, "{job}");
    let job_b = job["job_id"].as_str().unwrap();
    assert_eq!(ing.api(Method::GET, &format!("/jobs/{job_b}"), &key_a, None).await.0, 404);
    assert_eq!(ing.api(Method::POST, &format!("/jobs/{job_b}/cancel"), &key_a, None).await.0, 404);
    let (_, list) = ing.api(Method::GET, &format!("/jobs?tenant={b}"), &key_a, None).await;
    assert_eq!(list["jobs"], json!([]));
    let (_, list) = ing.api(Method::GET, "/jobs", "bootstrap-key", None).await;
    assert_eq!(list["jobs"].as_array().unwrap().len(), 1);
    // Read-only keys read but do not write; unknown kinds are refused.
    assert_eq!(
        ing.api(
            Method::POST,
            &format!("/tenants/{a}/integrations/tacticalrmm/jobs/sync-org"),
            &read_a,
            Some(json!({}))
        )
        .await
        .0,
        403
    );
    let (status, err) = ing
        .api(
            Method::POST,
            &format!("/tenants/{a}/integrations/tacticalrmm/jobs/tanium-full-sync"),
            &key_a,
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 400, "{err}");
    // The webhook info needs a write key and creates nothing new for a tenant that has a secret.
    assert_eq!(
        ing.api(Method::GET, &format!("/tenants/{a}/integrations/tacticalrmm/webhook"), &read_a, None).await.0,
        403
    );
    let (status, info) =
        ing.api(Method::GET, &format!("/tenants/{a}/integrations/tacticalrmm/webhook"), &key_a, None).await;
    assert_eq!(status, 200);
    assert_eq!(info["secret"], json!(SECRET));
    assert!(info["url"].as_str().unwrap().ends_with(&format!("/api/webhooks/tacticalrmm?tenant={a}")));
    // Only providers whose webhooks rmm-sync takes have a webhook set-up and a webhook route.
    let (status, err) = ing.api(Method::GET, &format!("/tenants/{a}/integrations/tanium/webhook"), &key_a, None).await;
    assert_eq!((status, err), (404, json!({ "error": "tanium integrations take no webhooks" })));
    for provider in ["tanium", "nope"] {
        let resp = reqwest::Client::new()
            .post(ing.url(&format!("/api/webhooks/{provider}?tenant={a}")))
            .header("X-Alga-Webhook-Secret", SECRET)
            .body(r#"{"agent_id":"x"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 404, "{provider}");
        assert_eq!(resp.json::<serde_json::Value>().await.unwrap(), json!({ "error": "No webhook for this provider" }));
    }
    // Settings are merged, and secrets come back masked.
    let (status, v) = ing
        .api(
            Method::PUT,
            &format!("/tenants/{a}/integrations/tacticalrmm"),
            &key_a,
            Some(json!({"instance_url": "https://api.example.com/", "api_key": "api_abcdefghijklmnop", "settings": {"alertPolling": {"enabled": false}}})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let (_, v) = ing
        .api(
            Method::PUT,
            &format!("/tenants/{a}/integrations/tacticalrmm"),
            &key_a,
            Some(json!({"settings": {"deviceSync": {"enabled": true}}})),
        )
        .await;
    assert_eq!(v["settings"]["alertPolling"], json!({"enabled": false}), "{v}");
    assert_eq!(v["settings"]["deviceSync"], json!({"enabled": true}), "{v}");
    assert_eq!(v["credentials"]["apiKeyMasked"], json!(format!("{}mnop", "•".repeat(16))));
    assert_eq!(v["config"]["instanceUrl"], json!("https://api.example.com"));
    let spec: Value = ing.http.get(ing.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(spec["paths"]["/jobs/{job_id}"].is_object());
    drop(ing);
    store.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_worker_process_s_job_is_finished_by_another_worker() {
    let store = stores::postgres().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let settings = fast_settings(QueueBackend::Database);
    let rt = runtime(&store.db, settings.clone(), dir.path()).await.unwrap();
    let id =
        rt.queue.enqueue(JobRequest::global("test-sleep", Trigger::Admin).args(json!({"ms": 8000}))).await.unwrap();

    // A worker process picks the job up…
    let mut child = rmm_sync_process("worker", &store.url, dir.path()).spawn().unwrap();
    let running = rmm_tests::runtime::wait_status(&rt, &id, JobStatus::Running, Duration::from_secs(30)).await;
    let victim = running.worker.clone().unwrap();
    // …and dies in the middle of it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let killed_at = Instant::now();

    // Another worker (new name) takes it over after the heartbeat timeout and finishes it.
    let workers = Workers::start(&rt);
    let job = wait_finished(&rt, &id, Duration::from_secs(60)).await;
    assert_eq!(job.status, JobStatus::Done, "{job:?}");
    assert_eq!(job.attempts, 2, "{job:?}");
    assert_ne!(job.worker.as_deref(), Some(victim.as_str()));
    assert!(killed_at.elapsed() < Duration::from_secs(30), "recovery took {:?}", killed_at.elapsed());
    workers.stop().await;
    store.cleanup().await;
}

/// Retention on one queue backend: finished jobs (their queue tasks and status rows) older than the
/// retention are deleted; pending jobs are kept.
async fn retention(store: &TestStore, backend: QueueBackend) {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(&store.db, fast_settings(backend), dir.path()).await.unwrap();
    let workers = Workers::start(&rt);
    let mut done = Vec::new();
    for _ in 0..2 {
        let id =
            rt.queue.enqueue(JobRequest::global("test-sleep", Trigger::Admin).args(json!({"ms": 10}))).await.unwrap();
        assert_eq!(wait_finished(&rt, &id, Duration::from_secs(30)).await.status, JobStatus::Done);
        done.push(id);
    }
    let later = rt
        .queue
        .enqueue(JobRequest::global("test-sleep", Trigger::Admin).args(json!({"ms": 10})).delay_secs(3600))
        .await
        .unwrap();
    // Upstream call counts: a row two days old, and this minute's calls written by two flushes
    // (the second adds to the row the first wrote).
    let db = &store.db;
    let d = db.dialect();
    let calls_table = db.ours("upstream_calls");
    db.execute(
        &format!(
            "INSERT INTO {calls_table} (minute, tenant, provider, calls, errors) VALUES ({}, {}, 'tacticalrmm', 3, 1)",
            d.param(1, ColType::Timestamp),
            d.param(2, ColType::Uuid)
        ),
        &[&rmm_shared::db::sql::fmt_ts(chrono::Utc::now() - chrono::Duration::days(2)), &Uuid::nil().to_string()],
    )
    .await
    .unwrap();
    let counter = rt.calls.counter(None);
    counter.record("tacticalrmm", rmm_shared::upstream_calls::CallOutcome::Status(200));
    rt.calls.flush().await.unwrap();
    counter.record("tacticalrmm", rmm_shared::upstream_calls::CallOutcome::NoAnswer);
    rt.calls.flush().await.unwrap();
    // Summed, in case the two flushes fall in different minutes.
    let recent = format!(
        "SELECT CAST(SUM(calls) AS TEXT), CAST(SUM(errors) AS TEXT) FROM {calls_table} WHERE minute >= {}",
        d.param(1, ColType::Timestamp)
    );
    let hour_ago = rmm_shared::db::sql::fmt_ts(chrono::Utc::now() - chrono::Duration::hours(1));
    let sums = [[Some("2".to_owned()), Some("1".to_owned())]];
    assert_eq!(stores::rows(db, &recent, &[&hour_ago]).await.unwrap(), sums, "{backend:?}: this minute's calls");
    // Timestamps of some backends are whole seconds: let the finished ones be strictly older.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let m = rt
        .queue
        .enqueue(JobRequest::global("maintenance", Trigger::Admin).args(json!({"retention_days": 0})))
        .await
        .unwrap();
    let job = wait_finished(&rt, &m, Duration::from_secs(30)).await;
    assert_eq!(job.status, JobStatus::Done, "{job:?}");
    let counts = &job.result.as_ref().unwrap()["counts"];
    assert!(counts["queue_tasks_deleted"].as_u64().unwrap() >= 2, "{backend:?}: {job:?}");
    assert!(counts["job_runs_deleted"].as_u64().unwrap() >= 2, "{backend:?}: {job:?}");
    assert_eq!(counts["upstream_call_minutes_deleted"], 1, "{backend:?}: {job:?}");
    assert_eq!(stores::rows(db, &recent, &[&hour_ago]).await.unwrap(), sums, "{backend:?}: recent calls kept");
    for id in &done {
        assert!(rt.store().get(id).await.unwrap().is_none(), "{backend:?}: finished job {id} kept");
    }
    let pending = rt.store().get(&later).await.unwrap().expect("pending job kept");
    assert_eq!(pending.status, JobStatus::Pending);
    // Nothing else finished is left for a second pass: only the maintenance job's own task.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(rt.queue.purge_finished(Duration::ZERO).await.unwrap(), 1, "{backend:?}: only the maintenance job");
    workers.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_finished_jobs_and_keeps_pending_ones_on_every_backend() {
    stores::each_store(|store| async move {
        retention(&store, QueueBackend::Database).await;
        store
    })
    .await;
    let store = stores::postgres().await.unwrap();
    retention(&store, QueueBackend::Redis).await;
    store.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_while_workers_run_refreshes_the_agent_at_most_twice_per_window() {
    let store = stores::postgres().await.unwrap();
    let db = &store.db;
    let dir = tempfile::tempdir().unwrap();
    let sim = TacticalSim::start(SimConfig::with_fleet(FleetSpec::new(5, 1, 1, 2))).await.unwrap();
    // A slow Tactical: the first refresh is still running while the burst goes on.
    sim.set_latency(Duration::from_millis(300));
    let mut settings = fast_settings(QueueBackend::Database);
    settings.http.webhook_coalesce_secs = 3;
    let rt = runtime(db, settings, dir.path()).await.unwrap();
    let (tenant, _) = tactical_tenant(db, &rt, Some(&sim)).await;
    let workers = Workers::start(&rt);
    let ing = Ingress::start(&rt, None).await;
    let agent = sim.agents()[0].agent_id.clone();
    sim.reset_counters();
    let started = Instant::now();
    let mut jobs = std::collections::BTreeSet::new();
    for i in 0..15 {
        let body = json!({"agent_id": agent, "alert_id": format!("b{i}"), "event": "trigger", "severity": "warning"});
        let (status, reply) = ing.webhook(Some(&tenant.to_string()), Some(SECRET), body.to_string()).await;
        assert_eq!(status, 200, "{reply}");
        jobs.insert(reply["job_id"].as_str().unwrap().to_owned());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let burst = started.elapsed();
    assert!(burst < Duration::from_secs(3), "the burst must fit in one window: {burst:?}");
    assert!(jobs.len() <= 2, "{jobs:?}");
    for id in &jobs {
        let job = wait_finished(&rt, id, Duration::from_secs(30)).await;
        assert_eq!(job.status, JobStatus::Done, "{job:?}");
    }
    assert!(sim.hits("GET /agents/{agent_id}/") <= 2, "refreshed {} times", sim.hits("GET /agents/{agent_id}/"));
    let d = db.dialect();
    let recorded = count(
        db,
        tenant,
        &format!("rmm_alerts WHERE external_alert_id LIKE 'b%' AND {} IS NOT NULL", d.text("external_alert_id")),
    )
    .await;
    assert_eq!(recorded, 15, "every alert of the burst is recorded");
    workers.stop().await;
    store.cleanup().await;
}

/// What [`FakeAlgaPsa`] received: (secret header, body) per request.
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(Option<String>, String)>>>;

/// A stand-in for AlgaPSA's Tactical webhook: records each request (secret header, body) and
/// answers 503 to the first `fail_first`, then 200.
struct FakeAlgaPsa {
    url: String,
    seen: Seen,
    _token: tokio_util::sync::DropGuard,
}

impl FakeAlgaPsa {
    async fn start(fail_first: usize) -> FakeAlgaPsa {
        use poem::{EndpointExt, handler, web::Data};
        #[handler]
        fn hook(req: &poem::Request, body: String, seen: Data<&Seen>, fail: Data<&usize>) -> poem::Response {
            let secret = req.headers().get("x-alga-webhook-secret").and_then(|v| v.to_str().ok()).map(str::to_owned);
            let mut s = seen.0.lock().unwrap();
            s.push((secret, body));
            let code = if s.len() <= *fail.0 { 503 } else { 200 };
            poem::Response::builder().status(poem::http::StatusCode::from_u16(code).unwrap()).body("{}")
        }
        let seen: Seen = Default::default();
        let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
        let addr = acceptor.local_addr()[0].as_socket_addr().copied().unwrap();
        let token = CancellationToken::new();
        let (t, app) = (token.clone(), poem::Route::new().at("/api/webhooks/tacticalrmm", poem::post(hook)));
        let app = app.data(seen.clone()).data(fail_first);
        tokio::spawn(async move {
            poem::Server::new_with_acceptor(acceptor)
                .run_with_graceful_shutdown(app, async move { t.cancelled().await }, None)
                .await
        });
        FakeAlgaPsa { url: format!("http://{addr}/api/webhooks/tacticalrmm"), seen, _token: token.drop_guard() }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_mode_posts_each_alert_to_algapsa_until_it_answers_and_still_refreshes_the_agent() {
    let store = stores::postgres().await.unwrap();
    let db = &store.db;
    let dir = tempfile::tempdir().unwrap();
    let sim = TacticalSim::start(SimConfig::with_fleet(FleetSpec::new(5, 1, 1, 2))).await.unwrap();
    let rt = runtime(db, fast_settings(QueueBackend::Database), dir.path()).await.unwrap();
    let (tenant, _) = tactical_tenant(db, &rt, Some(&sim)).await;
    let algapsa = FakeAlgaPsa::start(1).await;
    let ing = Ingress::start(&rt, Some("bootstrap-key-for-forward-test")).await;
    let key = "bootstrap-key-for-forward-test";
    let path = format!("/tenants/{tenant}/integrations/tacticalrmm");

    // The mode is validated when it is saved.
    let (status, v) =
        ing.api(reqwest::Method::PUT, &path, key, Some(json!({"settings": {"alert_mode": "forward"}}))).await;
    assert_eq!(status, 400, "{v}");
    let (status, v) = ing
        .api(
            reqwest::Method::PUT,
            &path,
            key,
            Some(json!({"settings": {"alert_mode": "forward", "alert_forward_url": format!("{}?tenant={tenant}", algapsa.url)}})),
        )
        .await;
    assert_eq!(status, 200, "{v}");

    let workers = Workers::start(&rt);
    let agent = sim.agents()[0].agent_id.clone();
    let hook = json!({"agent_id": agent, "alert_id": "77", "event": "trigger", "severity": "error", "message": "Disk"});
    let (status, reply) = ing.webhook(Some(&tenant.to_string()), Some(SECRET), hook.to_string()).await;
    assert_eq!(status, 200, "{reply}");
    let job = wait_finished(&rt, reply["job_id"].as_str().unwrap(), Duration::from_secs(30)).await;
    assert_eq!(job.status, JobStatus::Done, "{job:?}");
    assert_eq!(job.result.as_ref().unwrap()["counts"]["alerts_forwarding"], json!(1), "{job:?}");
    assert!(sim.hits("GET /agents/{agent_id}/") >= 1, "the agent is still refreshed by us");

    // AlgaPSA answers 503 once: the forward is retried after the backoff and then delivered.
    let forwards = rt
        .store()
        .list(&JobFilter { tenant: Some(Some(tenant)), status: None, kind: Some("forward-alert".into()), limit: 10 })
        .await
        .unwrap();
    assert_eq!(forwards.len(), 1, "{forwards:?}");
    let fwd = wait_finished(&rt, &forwards[0].job_id, Duration::from_secs(40)).await;
    assert_eq!((fwd.status, fwd.attempts), (JobStatus::Done, 2), "{fwd:?}");
    let seen = algapsa.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    for (secret, body) in &seen {
        assert_eq!(secret.as_deref(), Some(SECRET));
        assert_eq!(serde_json::from_str::<Value>(body).unwrap(), hook);
    }
    // Forwarded, not recorded by us.
    assert_eq!(count(db, tenant, "rmm_alerts WHERE true").await, 0);
    let outcome =
        scalar(db, &format!("SELECT outcome FROM {} WHERE tenant = '{tenant}'", db.ours("webhook_deliveries")), &[])
            .await
            .unwrap();
    assert_eq!(outcome.as_deref(), Some("forwarded"));
    // Internal kinds cannot be enqueued through the API.
    let (status, v) = ing
        .api(
            reqwest::Method::POST,
            &format!("/tenants/{tenant}/integrations/tacticalrmm/jobs/forward-alert"),
            key,
            Some(json!({"args": {"delivery_id": "x"}})),
        )
        .await;
    assert!(status == 400 || status == 404, "{status} {v}");
    workers.stop().await;
    store.cleanup().await;
}

/// Every route of the admin API (read from the OpenAPI document, so a new route is covered when it
/// is added) refuses a key of another tenant, shows none of that tenant's data and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_route_refuses_a_key_of_another_tenant() {
    use reqwest::Method;
    let store = stores::postgres().await.unwrap();
    let db = &store.db;
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(db, fast_settings(QueueBackend::Database), dir.path()).await.unwrap();
    let ing = Ingress::start(&rt, Some("bootstrap-key")).await;
    let (a, _) = tactical_tenant(db, &rt, None).await;
    let (b, b_integration) = tactical_tenant(db, &rt, None).await;
    let key_a = rmm_ingress::auth::create_key(db, Some(a), rmm_ingress::auth::KeyScope::Write, "a").await.unwrap().key;
    let mapping_b = stores::map_scope(db, b, b_integration, "42", None).await.unwrap();
    let (status, job) = ing
        .api(
            Method::POST,
            &format!("/tenants/{b}/integrations/tacticalrmm/jobs/sync-org"),
            "bootstrap-key",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 202, "{job}");
    let job_b = job["job_id"].as_str().unwrap().to_owned();
    let snapshot = move |db: rmm_shared::db::Db| async move {
        let t = |q: &str| q.to_owned();
        let mut out = Vec::new();
        for q in [
            t("SELECT CAST(settings AS TEXT) FROM rmm_integrations"),
            t("SELECT CAST(is_active AS TEXT) FROM rmm_integrations"),
            t("SELECT CAST(auto_sync_assets AS TEXT) FROM rmm_organization_mappings"),
            t("SELECT client_name FROM tenants"),
        ] {
            out.push(scalar(&db, &format!("{q} WHERE tenant = '{b}'"), &[]).await.unwrap());
        }
        out.push(Some(count(&db, b, &format!("{} WHERE true", db.ours("job_runs"))).await.to_string()));
        out.push(Some(count(&db, b, &format!("{} WHERE true", db.ours("schedules"))).await.to_string()));
        out
    };
    let before = snapshot(db.clone()).await;

    let spec: Value = ing.http.get(ing.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let mut checked = 0;
    for (path, ops) in spec["paths"].as_object().unwrap() {
        if ops.as_object().unwrap().values().any(|op| op["security"].to_string().contains("AlgaApiKey")) {
            // AlgaPSA's routes: tenant-scoped by the key itself, they have no other tenant to name
            // (another tenant's asset: algapsa_rmm::algapsa_v1_rmm_routes_…).
            continue;
        }
        for (method, _) in ops.as_object().unwrap() {
            let url = path
                .replace("{tenant}", &b.to_string())
                .replace("{provider}", "tacticalrmm")
                .replace("{client_id}", &Uuid::new_v4().to_string())
                .replace("{asset_id}", &Uuid::new_v4().to_string())
                .replace("{mapping_id}", &mapping_b.to_string())
                .replace("{kind}", "sync-org")
                .replace("{job_id}", &job_b);
            let url = if path == "/jobs" { format!("{url}?tenant={b}") } else { url };
            let body = match (method.as_str(), path.as_str()) {
                ("put", p) if p.ends_with("/schedules/{kind}") => Some(json!({"interval_minutes": 60})),
                ("put", "/tenants/{tenant}") | ("put", "/tenants/{tenant}/clients/{client_id}") => {
                    Some(json!({"name": "taken over"}))
                }
                ("put", _) => Some(json!({"settings": {"alert_mode": "record", "x": 1}})),
                ("patch", _) => Some(json!({"auto_sync_assets": false})),
                ("post", _) => Some(json!({})),
                _ => None,
            };
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let (status, v) = ing.api(m, &url, &key_a, body).await;
            let text = v.to_string();
            if path == "/jobs" {
                assert_eq!(status, 200, "{method} {url}: {v}");
                assert_eq!(v["jobs"], json!([]), "{method} {url}: another tenant's jobs listed");
            } else {
                assert!(status == 403 || status == 404, "{method} {url} answered {status}: {v}");
            }
            // Nothing of B's that the caller did not name itself (an error may repeat the path's id).
            for secret_id in [job_b.clone(), mapping_b.to_string(), b_integration.to_string()] {
                assert!(url.contains(&secret_id) || !text.contains(&secret_id), "{method} {url} leaked: {v}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 17, "only {checked} routes in the OpenAPI document");
    assert_eq!(snapshot(db.clone()).await, before, "a key of tenant A changed tenant B");
    drop(ing);
    store.cleanup().await;
}

/// Seconds since the worker of `kind` last heartbeat (the newest one of that kind).
async fn heartbeat_age(db: &rmm_shared::db::Db, kind: &str) -> f64 {
    let sql = match db.dialect() {
        rmm_shared::db::Dialect::Postgres => {
            "SELECT CAST(EXTRACT(EPOCH FROM now() - MAX(last_seen)) AS TEXT) FROM apalis.workers WHERE worker_type = $1"
        }
        rmm_shared::db::Dialect::Sqlite => {
            "SELECT CAST(strftime('%s', 'now') - MAX(last_seen) AS TEXT) FROM Workers WHERE worker_type = ?1"
        }
    };
    let age = stores::rows(db, sql, &[kind]).await.unwrap();
    age[0][0].as_deref().expect("a worker of the kind").parse().unwrap()
}

/// With every slot of a kind busy and more of its jobs due, the worker keeps heartbeating: it never
/// looks dead to the other replicas (whose heartbeats would hand its running jobs to another worker
/// and run them twice), and every job runs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_with_every_slot_busy_keeps_heartbeating_and_runs_each_job_once() {
    stores::each_store(|store| async move {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = fast_settings(QueueBackend::Database);
        settings.queue.concurrency = 2;
        let orphaned_after = (settings.queue.heartbeat_secs * u64::from(settings.queue.missed_heartbeats)) as f64;
        let rt = runtime(&store.db, settings, dir.path()).await.unwrap();
        // A long job and a short one take both slots; when the short one ends, two more are due
        // while the long one still runs for seconds.
        let mut ids = Vec::new();
        for ms in [6000, 300, 3000, 3000] {
            let req = JobRequest::global("test-sleep", Trigger::Admin).args(json!({ "ms": ms }));
            ids.push(rt.queue.enqueue(req).await.unwrap());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let workers = Workers::start(&rt);
        rmm_tests::runtime::wait_status(&rt, &ids[0], JobStatus::Running, Duration::from_secs(30)).await;
        let mut oldest: f64 = 0.0;
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            oldest = oldest.max(heartbeat_age(&store.db, "test-sleep").await);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(
            oldest < orphaned_after,
            "{:?}: the busy worker's heartbeat was {oldest:.1} s old (taken for dead after {orphaned_after} s)",
            store.db.dialect()
        );
        for id in &ids {
            let job = wait_finished(&rt, id, Duration::from_secs(30)).await;
            assert_eq!((job.status, job.attempts), (JobStatus::Done, 1), "{:?}: {job:?}", store.db.dialect());
        }
        workers.stop().await;
        store
    })
    .await;
}

/// A job whose handler panics fails that attempt like any error: retried after the backoff, and
/// `failed` with the panic's message when no attempt is left; the worker keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_job_fails_its_attempt_and_is_retried_and_the_worker_goes_on() {
    let store = stores::postgres().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(&store.db, fast_settings(QueueBackend::Database), dir.path()).await.unwrap();
    let workers = Workers::start(&rt);
    let once = JobRequest::global("test-fail", Trigger::Admin).args(json!({"fail_times": 1, "panic": true}));
    let once = rt.queue.enqueue(once).await.unwrap();
    let always = JobRequest::global("test-fail", Trigger::Admin).args(json!({"fail_times": 9, "panic": true}));
    let always = rt.queue.enqueue(always).await.unwrap();
    let job = wait_finished(&rt, &once, Duration::from_secs(60)).await;
    assert_eq!((job.status, job.attempts), (JobStatus::Done, 2), "{job:?}");
    let job = wait_finished(&rt, &always, Duration::from_secs(60)).await;
    assert_eq!((job.status, job.attempts), (JobStatus::Failed, 3), "{job:?}");
    let error = job.last_error.unwrap_or_default();
    assert!(error.contains("the job panicked") && error.contains("panic 3 from the test"), "{error}");
    // The same worker still runs jobs.
    let after =
        rt.queue.enqueue(JobRequest::global("test-sleep", Trigger::Admin).args(json!({"ms": 10}))).await.unwrap();
    assert_eq!(wait_finished(&rt, &after, Duration::from_secs(30)).await.status, JobStatus::Done);
    workers.stop().await;
    store.cleanup().await;
}

/// Webhooks arriving together on PostgreSQL are written by shared statements (group commit), and
/// each caller is still answered from its own rows: one job per agent, every delivery stored
/// once with the job that will record it, and the refusals of another tenant's inactive
/// integration decided row by row inside the same statements.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_arriving_together_are_written_together_and_each_answered_for_itself() {
    let store = stores::postgres_with(4).await.unwrap();
    let db = &store.db;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = fast_settings(QueueBackend::Database);
    // One statement at a time: whatever arrives meanwhile waits for the next one.
    settings.http.webhook_batch_statements = 1;
    let rt = runtime(db, settings, dir.path()).await.unwrap();
    let ing = Ingress::start(&rt, None).await;
    let (active, _) = tactical_tenant(db, &rt, None).await;
    let (inactive, _) = tactical_tenant(db, &rt, None).await;
    db.execute(&format!("UPDATE rmm_integrations SET is_active = false WHERE tenant = '{inactive}'"), &[])
        .await
        .unwrap();
    let (agents, per_agent) = (60, 3);
    let mut calls = Vec::new();
    for round in 0..per_agent {
        for a in 0..agents {
            calls.push((active, format!("agent-{a:03}"), format!("{a}-{round}")));
        }
    }
    for i in 0..20 {
        calls.push((inactive, format!("agent-{i:03}"), format!("x{i}")));
    }
    let answers = futures::future::join_all(calls.iter().map(|(tenant, agent, alert)| {
        let body = json!({"agent_id": agent, "alert_id": alert, "event": "trigger"}).to_string();
        let tenant = tenant.to_string();
        let ing = &ing;
        async move { ing.webhook(Some(&tenant), Some(SECRET), body).await }
    }))
    .await;
    let mut job_of_agent = std::collections::BTreeMap::new();
    let mut deliveries = std::collections::BTreeMap::new();
    for ((tenant, agent, _), (status, reply)) in calls.iter().zip(&answers) {
        assert_eq!(*status, 200, "{reply}");
        if *tenant == inactive {
            assert_eq!(reply, &json!({"ok": true, "recorded": false, "reason": "integration_inactive"}));
            continue;
        }
        assert_eq!(reply["recorded"], true, "{reply}");
        let job = reply["job_id"].as_str().unwrap().to_owned();
        // No worker runs: the agent's first job stays pending and its later deliveries join it.
        assert_eq!(job_of_agent.entry(agent.clone()).or_insert_with(|| job.clone()), &job, "{agent}");
        deliveries.insert(reply["delivery_id"].as_str().unwrap().to_owned(), job);
    }
    assert_eq!(job_of_agent.len(), agents);
    assert_eq!(deliveries.len(), agents * per_agent, "every delivery id is its own");
    let stored: Vec<(String, String)> =
        db.fetch(&format!("SELECT delivery_id, job_id FROM {}", db.ours("webhook_deliveries")), &[]).await.unwrap();
    assert_eq!(stored.into_iter().collect::<std::collections::BTreeMap<_, _>>(), deliveries);
    let jobs: Vec<(String, String, String)> = db
        .fetch(
            &format!(
                "SELECT r.job_id, r.status, CAST(r.tenant AS TEXT) FROM {} r JOIN apalis.jobs q ON q.id = r.job_id",
                db.ours("job_runs")
            ),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(jobs.len(), agents, "one status row and one queue task per agent: {jobs:?}");
    assert!(jobs.iter().all(|(_, status, t)| status == "pending" && *t == active.to_string()), "{jobs:?}");
    let (statements, rows) = rt.webhook_batches().expect("group commit on PostgreSQL");
    assert_eq!(rows as usize, calls.len());
    assert!(statements < rows / 2, "{rows} webhooks arriving together took {statements} statements");
    let metrics = reqwest::get(ing.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains(&format!("rmm_sync_webhook_writes_total{{what=\"webhooks\"}} {rows}")), "{metrics}");
    store.cleanup().await;
}

/// A delivery PostgreSQL refuses fails alone: its batch is written again one delivery at a time,
/// the others are stored and answered, and the refused one leaves no row behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_the_database_refuses_fails_alone_in_its_batch() {
    use rmm_jobs::webhook_batch::{Batcher, Decided, Row};
    let store = stores::postgres_with(4).await.unwrap();
    let db = &store.db;
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(db, fast_settings(QueueBackend::Database), dir.path()).await.unwrap();
    let (tenant, integration) = tactical_tenant(db, &rt, None).await;
    let rmm_shared::db::Db::Postgres(pool) = db else { unreachable!() };
    let batcher = Batcher::start(pool.clone(), 1);
    let row = |i: usize, body: &str| {
        let job_id = ulid::Ulid::generate().to_string();
        Row {
            tenant,
            placeholder: "PLACEHOLDER".into(),
            agent_id: format!("agent-{i}"),
            delivery_id: ulid::Ulid::generate().to_string(),
            received_at: chrono::Utc::now(),
            body: body.into(),
            job_id: job_id.clone(),
            args: json!({"agent_id": format!("agent-{i}")}).to_string(),
            max_attempts: 3,
            task: json!({"job_id": job_id, "integration_id": "PLACEHOLDER"}).to_string(),
            priority: 0,
            correlation_id: job_id,
            traceparent: None,
            window_secs: 10.0,
            provider: "tacticalrmm",
            kind: "sync-agent",
        }
    };
    // The first accept holds the one slot; the next 20 (one of them not JSON) wait and go together.
    let first = batcher.accept(row(0, "{}"));
    let rest = (1..=20).map(|i| batcher.accept(row(i, if i == 7 { "{not json" } else { "{}" })));
    let (first, rest) = tokio::join!(first, futures::future::join_all(rest));
    assert!(matches!(first, Ok(Decided::Stored { is_new: true, .. })), "{first:?}");
    for (i, r) in rest.iter().enumerate() {
        let i = i + 1;
        match r {
            Ok(Decided::Stored { integration_id, is_new: true, .. }) if i != 7 => {
                assert_eq!(*integration_id, integration)
            }
            Err(e) if i == 7 => assert!(e.to_string().contains("json"), "{e}"),
            other => panic!("accept {i}: {other:?}"),
        }
    }
    let (statements, rows) = batcher.counts.get();
    assert!(statements < 21, "the waiting accepts were tried together first ({statements} statements)");
    assert_eq!(rows, 20, "the failed batch's statement counts nothing; each of its rows was then written alone");
    assert_eq!(count(db, tenant, &format!("{} WHERE true", db.ours("webhook_deliveries"))).await, 20);
    assert_eq!(count(db, tenant, &format!("{} WHERE true", db.ours("job_runs"))).await, 20);
    let tasks: Vec<(String,)> = db.fetch("SELECT convert_from(job, 'UTF8') FROM apalis.jobs", &[]).await.unwrap();
    assert_eq!(tasks.len(), 20);
    assert!(tasks.iter().all(|(t,)| t.contains(&integration.to_string()) && !t.contains("PLACEHOLDER")), "{tasks:?}");
    store.cleanup().await;
}
