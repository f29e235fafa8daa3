//! Events on AlgaPSA's Redis-stream bus, written exactly as AlgaPSA's `publishEvent` writes them
//! (docs/operations.md): each event is two stream entries,
//!
//! 1. `workflow:events:global` (no prefix), with eleven flat string fields
//!    (`event_id`, `execution_id`, `workflow_correlation_key`, `event_name`, `event_type`, `tenant`,
//!    `timestamp`, `user_id`, `from_state`, `to_state`, `payload_json`; `''` when absent), and
//! 2. `<REDIS_PREFIX><REDIS_EVENT_STREAM_PREFIX>global:<EVENT_TYPE>` with `event` (the JSON envelope
//!    `{id, eventType, timestamp, payload}`) and `channel` = `global`,
//!
//! both `MAXLEN ~ 1000`. Event ids are fresh v4 UUIDs and timestamps are UTC with a `Z`; payloads
//! are camelCase and omit optional fields instead of sending null (AlgaPSA's consumers drop
//! invalid events silently).
//!
//! Publishing is best effort: a sync never fails because Redis is down. A failed publish is counted
//! and logged, and the next one tries to reconnect (at most once per `RECONNECT_EVERY`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::ingest::IngestCounts;

const STREAM_MAXLEN: &str = "1000";
const WORKFLOW_STREAM: &str = "workflow:events:global";
const RECONNECT_EVERY: Duration = Duration::from_secs(5);
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// The RMM event types rmm-sync publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    SyncStarted,
    SyncCompleted,
    SyncFailed,
    WebhookReceived,
    AlertTriggered,
    AlertResolved,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::SyncStarted => "RMM_SYNC_STARTED",
            EventType::SyncCompleted => "RMM_SYNC_COMPLETED",
            EventType::SyncFailed => "RMM_SYNC_FAILED",
            EventType::WebhookReceived => "RMM_WEBHOOK_RECEIVED",
            EventType::AlertTriggered => "RMM_ALERT_TRIGGERED",
            EventType::AlertResolved => "RMM_ALERT_RESOLVED",
        }
    }

    /// `event_name` on the workflow stream: the alert events carry a readable name
    /// (`publishWorkflowEvent`); the others their type.
    fn event_name(self) -> &'static str {
        match self {
            EventType::AlertTriggered => "RMM Alert Triggered",
            EventType::AlertResolved => "RMM Alert Resolved",
            other => other.as_str(),
        }
    }
}

/// One event: its type and payload (which carries `tenantId`).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event_type: EventType,
    pub payload: Map<String, Value>,
}

/// `YYYY-MM-DDTHH:MM:SS.sssZ`, the only form AlgaPSA's zod `datetime()` accepts.
pub fn iso(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn base(tenant: Uuid, integration_id: Uuid, provider: &str, now: DateTime<Utc>) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("tenantId".into(), json!(tenant));
    m.insert("integrationId".into(), json!(integration_id));
    m.insert("provider".into(), json!(provider));
    m.insert("occurredAt".into(), json!(iso(now)));
    m.insert("actorType".into(), json!("SYSTEM"));
    m
}

impl Event {
    /// `RMM_SYNC_STARTED` (no counts), `_COMPLETED` (counts) or `_FAILED` (error message).
    /// `sync_type` is one of `full|incremental|organizations|devices|alerts`.
    pub fn sync(
        event_type: EventType,
        tenant: Uuid,
        integration_id: Uuid,
        provider: &str,
        sync_type: &str,
        counts: Option<&IngestCounts>,
        error: Option<&str>,
    ) -> Event {
        let mut p = base(tenant, integration_id, provider, Utc::now());
        p.insert("syncType".into(), json!(sync_type));
        if let Some(c) = counts {
            p.insert("itemsProcessed".into(), json!(c.processed));
            p.insert("itemsCreated".into(), json!(c.created));
            p.insert("itemsUpdated".into(), json!(c.updated));
            p.insert("itemsFailed".into(), json!(c.failed));
        }
        if let Some(message) = error {
            p.insert("error".into(), json!({ "message": message }));
        }
        Event { event_type, payload: p }
    }

    /// `RMM_WEBHOOK_RECEIVED`.
    pub fn webhook_received(
        tenant: Uuid,
        integration_id: Uuid,
        provider: &str,
        webhook_event_type: &str,
        external_device_id: Option<&str>,
        asset_id: Option<Uuid>,
        raw_payload: &Value,
    ) -> Event {
        let mut p = base(tenant, integration_id, provider, Utc::now());
        p.insert("webhookEventType".into(), json!(webhook_event_type));
        if let Some(d) = external_device_id {
            p.insert("externalDeviceId".into(), json!(d));
        }
        if let Some(a) = asset_id {
            p.insert("assetId".into(), json!(a));
        }
        let raw = if raw_payload.is_object() { raw_payload.clone() } else { json!({ "value": raw_payload }) };
        p.insert("rawPayload".into(), raw);
        Event { event_type: EventType::WebhookReceived, payload: p }
    }

    /// `RMM_ALERT_TRIGGERED` / `RMM_ALERT_RESOLVED` for a recorded alert row.
    pub fn alert(event_type: EventType, tenant: Uuid, alert_id: Uuid, alert: &crate::alerts::NormalizedAlert) -> Event {
        let mut p = base(tenant, alert.integration_id, &alert.provider, Utc::now());
        p.insert("alertId".into(), json!(alert_id));
        p.insert("externalAlertId".into(), json!(alert.external_alert_id));
        p.insert("severity".into(), json!(alert.severity));
        let mut opt = |k: &str, v: Option<&str>| {
            if let Some(v) = v {
                p.insert(k.into(), json!(v));
            }
        };
        opt("externalDeviceId", alert.external_device_id.as_deref());
        opt("message", alert.message.as_deref());
        opt("sourceType", Some(alert.source_type.as_str()));
        opt("alertClass", alert.alert_class.as_deref());
        let at = iso(alert.occurred_at);
        match event_type {
            EventType::AlertResolved => opt("resolvedAt", Some(&at)),
            _ => opt("triggeredAt", Some(&at)),
        }
        Event { event_type, payload: p }
    }

    /// The per-type stream's envelope `{id, eventType, timestamp, payload}` and the workflow
    /// stream's flat fields, for one fresh event id.
    pub fn encode(&self, now: DateTime<Utc>) -> (Value, Vec<(&'static str, String)>) {
        let id = Uuid::new_v4();
        let timestamp = iso(now);
        let envelope = json!({
            "id": id,
            "eventType": self.event_type.as_str(),
            "timestamp": timestamp,
            "payload": self.payload,
        });
        let text = |k: &str| self.payload.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        let tenant = match self.payload.get("tenantId") {
            Some(Value::String(s)) => s.clone(),
            _ => text("tenant"),
        };
        let user = self
            .payload
            .get("actorUserId")
            .or_else(|| self.payload.get("userId"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let flat = vec![
            ("event_id", id.to_string()),
            ("execution_id", String::new()),
            ("workflow_correlation_key", String::new()),
            ("event_name", self.event_type.event_name().to_owned()),
            ("event_type", self.event_type.as_str().to_owned()),
            ("tenant", tenant),
            ("timestamp", timestamp),
            ("user_id", user),
            ("from_state", String::new()),
            ("to_state", String::new()),
            ("payload_json", Value::Object(self.payload.clone()).to_string()),
        ];
        (envelope, flat)
    }
}

/// Where and how events go. Cheap to share behind an `Arc`.
pub struct EventBus {
    client: Option<redis::Client>,
    conn: tokio::sync::Mutex<(Option<redis::aio::ConnectionManager>, Option<Instant>)>,
    /// `REDIS_PREFIX` + `REDIS_EVENT_STREAM_PREFIX` (default `alga-psa:event-stream:`).
    stream_prefix: String,
    published: AtomicU64,
    skipped: AtomicU64,
}

impl EventBus {
    /// A bus that publishes nothing (no Redis configured); publishes are counted as skipped.
    pub fn disabled() -> Self {
        EventBus::build(None, "alga-psa:", "event-stream:")
    }

    /// A bus on `redis_url` with AlgaPSA's prefixes (`REDIS_PREFIX`, `REDIS_EVENT_STREAM_PREFIX`).
    /// Nothing is connected until the first publish.
    pub fn new(redis_url: &str, redis_prefix: &str, event_stream_prefix: &str) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(redis_url)?;
        Ok(EventBus::build(Some(client), redis_prefix, event_stream_prefix))
    }

    fn build(client: Option<redis::Client>, redis_prefix: &str, event_stream_prefix: &str) -> Self {
        EventBus {
            client,
            conn: tokio::sync::Mutex::new((None, None)),
            stream_prefix: format!("{redis_prefix}{event_stream_prefix}"),
            published: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
        }
    }

    /// The per-type stream of an event type (channel `global`).
    pub fn type_stream(&self, event_type: EventType) -> String {
        format!("{}global:{}", self.stream_prefix, event_type.as_str())
    }

    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// Publishes an event (both entries). Returns whether it was written; never fails.
    pub async fn publish(&self, event: &Event) -> bool {
        match self.try_publish(event).await {
            Ok(()) => {
                self.published.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(reason) => {
                self.skipped.fetch_add(1, Ordering::Relaxed);
                if self.client.is_some() {
                    tracing::warn!(event = event.event_type.as_str(), %reason, "event not published");
                } else {
                    // Events are off by configuration: counted, not worth a warning each time.
                    tracing::debug!(event = event.event_type.as_str(), %reason, "event not published");
                }
                false
            }
        }
    }

    async fn try_publish(&self, event: &Event) -> Result<(), String> {
        let Some(client) = &self.client else { return Err("no Redis configured".into()) };
        let mut guard = self.conn.lock().await;
        if guard.0.is_none() {
            if guard.1.is_some_and(|last| last.elapsed() < RECONNECT_EVERY) {
                return Err("Redis unavailable (waiting before reconnecting)".into());
            }
            guard.1 = Some(Instant::now());
            let connect = redis::aio::ConnectionManager::new(client.clone());
            match tokio::time::timeout(WRITE_TIMEOUT, connect).await {
                Ok(Ok(c)) => guard.0 = Some(c),
                Ok(Err(e)) => return Err(format!("cannot connect to Redis: {e}")),
                Err(_) => return Err("cannot connect to Redis: timed out".into()),
            }
        }
        let mut conn = guard.0.clone().expect("connected above");
        drop(guard);
        let (envelope, flat) = event.encode(Utc::now());
        let mut workflow = redis::cmd("XADD");
        workflow.arg(WORKFLOW_STREAM).arg("MAXLEN").arg("~").arg(STREAM_MAXLEN).arg("*");
        for (k, v) in &flat {
            workflow.arg(*k).arg(v);
        }
        let mut typed = redis::cmd("XADD");
        typed
            .arg(self.type_stream(event.event_type))
            .arg("MAXLEN")
            .arg("~")
            .arg(STREAM_MAXLEN)
            .arg("*")
            .arg("event")
            .arg(envelope.to_string())
            .arg("channel")
            .arg("global");
        let write = async {
            let _: String = workflow.query_async(&mut conn).await?;
            let _: String = typed.query_async(&mut conn).await?;
            Ok::<_, redis::RedisError>(())
        };
        match tokio::time::timeout(WRITE_TIMEOUT, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                if e.is_connection_dropped() || e.is_io_error() || e.is_connection_refusal() {
                    self.conn.lock().await.0 = None;
                }
                Err(format!("Redis write failed: {e}"))
            }
            Err(_) => {
                self.conn.lock().await.0 = None;
                Err("Redis write timed out".into())
            }
        }
    }
}
