//! PostgreSQL restarts (stopped as by a crash, started again) while Tactical webhooks pour in:
//! every webhook answered 200 was stored and processed, every other answer was a 503, and no
//! delivery was processed twice. The service is a real `rmm-sync serve` process on a PostgreSQL
//! server of the test's own.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmm_shared::config::{DatabaseSettings, QueueBackend};
use rmm_shared::db::Db;
use rmm_tests::runtime::{SECRET, fast_settings, mapped_tactical_tenant, rmm_sync_process, runtime, wait_listening};
use rmm_tests::services::{PrivatePostgres, free_port};
use rmm_tests::sim::tactical::TacticalSim;
use rmm_tests::stores::rows;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhooks_during_a_postgres_restart_are_stored_and_processed_once_or_refused_with_503() {
    let pg = PrivatePostgres::start();
    let dir = tempfile::tempdir().unwrap();
    let sim = TacticalSim::start_default().await.unwrap();
    let (tenant, agents) = {
        let db = Db::connect(&pg.url(), &DatabaseSettings::default()).await.unwrap();
        db.migrate(Default::default()).await.unwrap();
        let rt = runtime(&db, fast_settings(QueueBackend::Database), dir.path()).await.unwrap();
        let (tenant, _) = mapped_tactical_tenant(&db, &rt, &sim).await;
        db.close().await;
        (tenant, sim.agents().into_iter().map(|a| a.agent_id).collect::<Vec<_>>())
    };
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let _service = rmm_sync_process("serve", &pg.url(), dir.path())
        .env("RMM_SYNC_HTTP__BIND", format!("127.0.0.1:{port}"))
        .env("RMM_SYNC_DATABASE__ACQUIRE_TIMEOUT_SECS", "2")
        .spawn()
        .unwrap();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    wait_listening(&http, &base).await;

    // Four senders post webhooks (each with its own alert id) for 10 s; PostgreSQL is stopped 2 s
    // in and started again 5 s in.
    let answers: Arc<Mutex<HashMap<String, u16>>> = Arc::default();
    let stop_at = Instant::now() + Duration::from_secs(10);
    let mut senders = Vec::new();
    for s in 0..4 {
        let (http, base, answers, agents) = (http.clone(), base.clone(), answers.clone(), agents.clone());
        senders.push(tokio::spawn(async move {
            let mut i = 0;
            while Instant::now() < stop_at {
                i += 1;
                let alert_id = format!("pg-{s}-{i}");
                let body = json!({"agent_id": agents[(s * 7 + i) % agents.len()], "alert_id": alert_id,
                                  "event": "trigger", "severity": "warning", "message": format!("Check {alert_id}")});
                let status = match http
                    .post(format!("{base}/api/webhooks/tacticalrmm?tenant={tenant}"))
                    .header("X-Alga-Webhook-Secret", SECRET)
                    .json(&body)
                    .send()
                    .await
                {
                    Ok(r) => r.status().as_u16(),
                    Err(e) => panic!("the ingress must answer while the database is down: {e}"),
                };
                answers.lock().unwrap().insert(alert_id, status);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    pg.stop_immediately();
    tokio::time::sleep(Duration::from_secs(3)).await;
    pg.start_again();
    for s in senders {
        s.await.unwrap();
    }
    let answers = answers.lock().unwrap().clone();
    let ok: HashSet<&String> = answers.iter().filter(|(_, s)| **s == 200).map(|(a, _)| a).collect();
    let refused = answers.values().filter(|s| **s == 503).count();
    let other: Vec<(&String, &u16)> = answers.iter().filter(|(_, s)| **s != 200 && **s != 503).collect();
    assert!(other.is_empty(), "answers other than 200 and 503: {other:?}");
    assert!(refused > 0, "no webhook met the stopped database ({} answered 200)", ok.len());
    assert!(ok.len() > 20, "too few accepted webhooks to prove anything: {}", ok.len());

    // Every accepted delivery is processed (its alert recorded), once.
    let db = Db::connect(&pg.url(), &DatabaseSettings::default()).await.unwrap();
    let t = tenant.to_string();
    let deadline = Instant::now() + Duration::from_secs(120);
    let deliveries = loop {
        let d = rows(
            &db,
            "SELECT body->>'alert_id', CAST(processed_at IS NOT NULL AS TEXT), COALESCE(outcome, '') \
             FROM rmm_sync.webhook_deliveries WHERE tenant = $1::uuid",
            &[&t],
        )
        .await
        .unwrap();
        if d.iter().all(|r| r[1].as_deref() == Some("true")) && d.len() >= ok.len() {
            break d;
        }
        assert!(
            Instant::now() < deadline,
            "deliveries still unprocessed after 120 s: {}",
            d.iter().filter(|r| r[1].as_deref() != Some("true")).count()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let mut stored: HashMap<String, usize> = HashMap::new();
    for r in &deliveries {
        *stored.entry(r[0].clone().unwrap_or_default()).or_default() += 1;
    }
    for a in &ok {
        assert_eq!(stored.get(*a), Some(&1), "webhook {a} was answered 200: stored once");
    }
    // A delivery stored by a transaction whose commit answer was lost got a 503; it is processed
    // all the same (Tactical does not resend), once.
    assert!(stored.values().all(|n| *n == 1), "a delivery was stored twice");
    let alerts = rows(
        &db,
        "SELECT external_alert_id, CAST(occurrence_count AS TEXT) FROM rmm_alerts WHERE tenant = $1::uuid",
        &[&t],
    )
    .await
    .unwrap();
    let recorded: HashMap<String, String> =
        alerts.into_iter().map(|r| (r[0].clone().unwrap_or_default(), r[1].clone().unwrap_or_default())).collect();
    for a in &ok {
        assert_eq!(recorded.get(*a).map(String::as_str), Some("1"), "alert {a} recorded once");
    }
    assert_eq!(recorded.len(), stored.len(), "one alert per stored delivery");
    let outcomes: HashSet<&str> = deliveries.iter().filter_map(|r| r[2].as_deref()).collect();
    assert!(!outcomes.contains("skipped"), "a delivery was recorded twice (a redelivery was skipped): {outcomes:?}");
    eprintln!("{} webhooks: {} answered 200, {refused} answered 503", answers.len(), ok.len());
    db.close().await;
}
