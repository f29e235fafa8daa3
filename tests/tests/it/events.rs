//! Events on AlgaPSA's Redis streams, read back from a real Redis and validated the way AlgaPSA's
//! consumers validate them.

use std::time::Duration;

use rmm_shared::events::{Event, EventBus, EventType};
use rmm_shared::ingest::IngestCounts;
use rmm_tests::services::PrivateRedis;
use serde_json::{Value, json};
use uuid::Uuid;

fn redis_url() -> String {
    std::env::var("RMM_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

type Entries = Vec<(String, Vec<(String, String)>)>;

async fn read(url: &str, stream: &str) -> Entries {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let raw: Vec<(String, Vec<String>)> =
        redis::cmd("XRANGE").arg(stream).arg("-").arg("+").query_async(&mut conn).await.unwrap();
    raw.into_iter().map(|(id, kv)| (id, kv.chunks(2).map(|c| (c[0].clone(), c[1].clone())).collect())).collect()
}

fn field<'a>(entry: &'a [(String, String)], key: &str) -> &'a str {
    entry.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).unwrap_or_else(|| panic!("missing field {key}"))
}

/// zod's `datetime()`: UTC with a `Z`.
fn assert_z_time(s: &str) {
    assert!(s.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(s).is_ok(), "not a Z timestamp: {s}");
}

fn assert_no_nulls(v: &Value) {
    if let Value::Object(m) = v {
        for (k, x) in m {
            assert!(!x.is_null(), "{k} is null; optional fields must be omitted");
            assert!(!k.contains('_') || k.starts_with("__"), "{k} is not camelCase");
        }
    }
}

#[tokio::test]
async fn both_entries_have_algapsa_shapes() {
    let url = redis_url();
    let prefix = format!("rmmtest-{}:", Uuid::new_v4().simple());
    let bus = EventBus::new(&url, &prefix, "event-stream:").unwrap();
    let (tenant, integration) = (Uuid::new_v4(), Uuid::new_v4());
    let counts = IngestCounts { processed: 5, created: 2, updated: 3, ..Default::default() };
    let events = [
        Event::sync(EventType::SyncStarted, tenant, integration, "tacticalrmm", "devices", None, None),
        Event::sync(EventType::SyncCompleted, tenant, integration, "tacticalrmm", "devices", Some(&counts), None),
        Event::sync(EventType::SyncFailed, tenant, integration, "tacticalrmm", "devices", None, Some("boom")),
        Event::webhook_received(
            tenant,
            integration,
            "tacticalrmm",
            "trigger",
            Some("agent-1"),
            None,
            &json!({"agent_id": "agent-1"}),
        ),
    ];
    for e in &events {
        assert!(bus.publish(e).await, "{:?} not published", e.event_type);
    }
    assert_eq!((bus.published(), bus.skipped()), (4, 0));

    for e in &events {
        let typed = read(&url, &bus.type_stream(e.event_type)).await;
        assert_eq!(typed.len(), 1, "{:?}", e.event_type);
        let entry = &typed[0].1;
        assert_eq!(field(entry, "channel"), "global");
        let env: Value = serde_json::from_str(field(entry, "event")).unwrap();
        let id = Uuid::parse_str(env["id"].as_str().unwrap()).unwrap();
        assert_eq!(id.get_version_num(), 4);
        assert_eq!(env["eventType"], json!(e.event_type.as_str()));
        assert_z_time(env["timestamp"].as_str().unwrap());
        let p = &env["payload"];
        assert_eq!(p["tenantId"], json!(tenant.to_string()));
        assert_eq!(p["integrationId"], json!(integration.to_string()));
        assert_eq!(p["provider"], json!("tacticalrmm"));
        assert_eq!(p["actorType"], json!("SYSTEM"));
        assert_z_time(p["occurredAt"].as_str().unwrap());
        assert_no_nulls(p);

        // The workflow stream entry with the same event id.
        let workflow = read(&url, "workflow:events:global").await;
        let flat = &workflow
            .iter()
            .find(|(_, kv)| kv.iter().any(|(k, v)| k == "event_id" && *v == id.to_string()))
            .expect("workflow entry with the same event id")
            .1;
        let keys: Vec<&str> = flat.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "event_id",
                "execution_id",
                "workflow_correlation_key",
                "event_name",
                "event_type",
                "tenant",
                "timestamp",
                "user_id",
                "from_state",
                "to_state",
                "payload_json"
            ]
        );
        assert_eq!(field(flat, "event_type"), e.event_type.as_str());
        assert_eq!(field(flat, "event_name"), e.event_type.as_str());
        assert_eq!(field(flat, "tenant"), tenant.to_string());
        assert_eq!(field(flat, "user_id"), "");
        assert_z_time(field(flat, "timestamp"));
        let payload: Value = serde_json::from_str(field(flat, "payload_json")).unwrap();
        assert_eq!(&payload, p);
    }
    let completed: Value =
        serde_json::from_str(field(&read(&url, &bus.type_stream(EventType::SyncCompleted)).await[0].1, "event"))
            .unwrap();
    assert_eq!(completed["payload"]["itemsProcessed"], json!(5));
    assert_eq!(completed["payload"]["syncType"], json!("devices"));
    assert!(completed["payload"].get("error").is_none());
    let failed: Value =
        serde_json::from_str(field(&read(&url, &bus.type_stream(EventType::SyncFailed)).await[0].1, "event")).unwrap();
    assert_eq!(failed["payload"]["error"], json!({"message": "boom"}));

    // Clean up this run's per-type streams.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    for e in &events {
        let _: i64 = redis::cmd("DEL").arg(bus.type_stream(e.event_type)).query_async(&mut conn).await.unwrap();
    }
}

#[tokio::test]
async fn publishing_is_best_effort_and_recovers_when_redis_returns() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("redis://127.0.0.1:{port}");
    let bus = EventBus::new(&url, "alga-psa:", "event-stream:").unwrap();
    let e = Event::sync(EventType::SyncStarted, Uuid::new_v4(), Uuid::new_v4(), "tacticalrmm", "devices", None, None);

    // Nothing listens yet: skipped quickly, no error.
    let t = std::time::Instant::now();
    assert!(!bus.publish(&e).await);
    assert!(t.elapsed() < Duration::from_secs(3));

    let server = PrivateRedis::start(port).await;
    tokio::time::sleep(Duration::from_secs(5)).await; // past the reconnect pause
    assert!(bus.publish(&e).await, "publishes once Redis is back");

    drop(server);
    assert!(!bus.publish(&e).await, "skipped while Redis is down");
    let _server = PrivateRedis::start(port).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(bus.publish(&e).await, "recovers after a restart");
    assert_eq!((bus.published(), bus.skipped()), (2, 2));
    assert_eq!(
        read(&url, &bus.type_stream(EventType::SyncStarted)).await.len(),
        1,
        "a fresh server holds only the last"
    );
}
