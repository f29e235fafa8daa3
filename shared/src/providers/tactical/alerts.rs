//! Tactical alerts: the alert-action webhook body, and the active-alert backfill.
//!
//! What Tactical really sends (recorded from a Tactical RMM 1.5.1 server): a missing template value is the
//! literal string `None`; `{{alert.alert_time}}` is Python's `str(datetime)`
//! (`2026-02-13 18:25:43.511000+00:00`); and when the rendered body is not valid JSON, Tactical
//! sends it as a JSON *string* — which, when it does contain an object, is unwrapped here.

use std::collections::HashSet;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::PROVIDER;
use super::client::TacticalClient;
use super::model::Alert;
use super::sync::SyncError;
use crate::alerts::{AlertKind, AlertOutcome, NormalizedAlert, POLL_MARKER, open_polled_alerts, record_alert};
use crate::db::Db;

/// Why a webhook body was refused (the ingress answers 400 with these texts).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("Invalid JSON body")]
    InvalidJson,
    #[error("agent_id is required")]
    MissingAgentId,
    /// PostgreSQL cannot store a NUL character in text or JSON, so such a body could never be
    /// stored; it is refused as bad input rather than answered 503 as if the database were down.
    #[error("Invalid JSON body: text with a NUL character (\\u0000) cannot be stored")]
    NulCharacter,
}

/// A parsed webhook body: the JSON object (kept whole as the alert's raw payload).
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookBody {
    pub fields: Map<String, Value>,
    pub agent_id: String,
}

/// Parses a webhook body; a JSON string holding a JSON object is unwrapped.
pub fn parse_webhook(body: &[u8]) -> Result<WebhookBody, WebhookError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| WebhookError::InvalidJson)?;
    let value = match value {
        Value::String(s) => serde_json::from_str(&s).map_err(|_| WebhookError::InvalidJson)?,
        v => v,
    };
    let Value::Object(fields) = value else { return Err(WebhookError::InvalidJson) };
    if map_has_nul(&fields) {
        return Err(WebhookError::NulCharacter);
    }
    let agent_id = text(&fields, "agent_id").ok_or(WebhookError::MissingAgentId)?;
    Ok(WebhookBody { fields, agent_id })
}

fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(m) => map_has_nul(m),
        _ => false,
    }
}

fn map_has_nul(m: &Map<String, Value>) -> bool {
    m.iter().any(|(k, v)| k.contains('\0') || has_nul(v))
}

/// A field as text: absent, null, empty and Tactical's `None` are all "no value".
fn text(fields: &Map<String, Value>, key: &str) -> Option<String> {
    let s = match fields.get(key)? {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    (!s.is_empty() && s != "None").then_some(s)
}

/// Tactical's native severities (`error|warning|info`) as well as AlgaPSA's own names.
pub fn map_severity(raw: Option<&str>) -> &'static str {
    let s = raw.unwrap_or("").to_lowercase();
    if s.contains("crit") || s.contains("error") {
        "critical"
    } else if s.contains("major") || s.contains("high") {
        "major"
    } else if s.contains("moder") || s.contains("warn") {
        "moderate"
    } else if s.contains("minor") || s.contains("low") || s.contains("info") {
        "minor"
    } else {
        "none"
    }
}

/// `alert_time`: epoch seconds or milliseconds, RFC 3339, or Python's `str(datetime)`.
pub fn parse_alert_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(n) = s.parse::<f64>() {
        return match n {
            n if n > 1e12 => Utc.timestamp_millis_opt(n as i64).single(),
            n if n > 1e9 => Utc.timestamp_opt(n as i64, 0).single(),
            _ => None,
        };
    }
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%:z"))
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%:z"))
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
                .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f"))
                .ok()
                .map(|t| t.and_utc())
        })
}

impl WebhookBody {
    /// The normalized alert event.
    pub fn to_alert(&self, integration_id: Uuid, now: DateTime<Utc>) -> NormalizedAlert {
        let f = &self.fields;
        let event_raw = text(f, "event");
        let event = event_raw.clone().unwrap_or_else(|| "trigger".into()).to_lowercase();
        let occurred_at = text(f, "alert_time").and_then(|t| parse_alert_time(&t)).unwrap_or(now);
        let (external_alert_id, synthesized_id) = match text(f, "alert_id") {
            Some(id) => (id, false),
            None => (
                format!(
                    "{}:{}:{}",
                    self.agent_id,
                    event_raw.as_deref().unwrap_or("alert"),
                    text(f, "alert_time").unwrap_or_else(|| crate::db::sql::fmt_ts(now))
                ),
                true,
            ),
        };
        NormalizedAlert {
            integration_id,
            provider: PROVIDER.slug().into(),
            kind: if event.contains("resolve") { AlertKind::Reset } else { AlertKind::Triggered },
            external_alert_id,
            synthesized_id,
            external_device_id: Some(self.agent_id.clone()),
            external_organization_id: text(f, "client_id"),
            condition_identity: text(f, "check_id").or_else(|| text(f, "alert_type")).or(event_raw),
            activity_type: "tacticalrmm_webhook".into(),
            source_type: "tacticalrmm_webhook".into(),
            alert_class: text(f, "alert_type"),
            severity: map_severity(text(f, "severity").as_deref()).into(),
            message: text(f, "message"),
            device_name: text(f, "hostname").or_else(|| text(f, "agent_hostname")),
            occurred_at,
            raw: Value::Object(f.clone()),
        }
    }
}

/// An active alert read from Tactical as the normalized event the backfill records (marked as
/// polled, so that a later backfill may resolve it).
pub fn polled_alert(a: &Alert, integration_id: Uuid, now: DateTime<Utc>) -> NormalizedAlert {
    let mut raw = match &a.raw {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    raw.insert("__alga_ingest_source".into(), Value::String(POLL_MARKER.into()));
    NormalizedAlert {
        integration_id,
        provider: PROVIDER.slug().into(),
        kind: AlertKind::Triggered,
        external_alert_id: a.id.to_string(),
        synthesized_id: false,
        external_device_id: a.agent_id.clone(),
        external_organization_id: None,
        condition_identity: a.assigned_check.map(|c| c.to_string()).or_else(|| a.alert_type.clone()),
        activity_type: "tacticalrmm_alert".into(),
        source_type: "tacticalrmm_alert".into(),
        alert_class: a.alert_type.clone(),
        severity: map_severity(a.severity.as_deref()).into(),
        message: a.message.clone(),
        device_name: a.hostname.clone(),
        occurred_at: a.alert_time.as_deref().and_then(parse_alert_time).unwrap_or(now),
        raw: Value::Object(raw),
    }
}

/// What a backfill did (AlgaPSA's counts).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BackfillReport {
    /// Active alerts Tactical reported.
    pub items_processed: u64,
    /// Alerts recorded or reopened.
    pub items_created: u64,
    /// Poll-recorded alerts resolved because Tactical no longer has them.
    pub items_updated: u64,
    pub items_failed: u64,
    pub errors: Vec<String>,
}

/// `PATCH /alerts/` with the active filter; records every active alert (marked as polled) and
/// resolves polled alerts that are gone remotely. Webhook-recorded alerts are never resolved here.
pub async fn backfill_alerts(
    db: &Db,
    tenant: Uuid,
    integration_id: Uuid,
    client: &TacticalClient,
) -> Result<BackfillReport, SyncError> {
    let remote = client.list_active_alerts().await?;
    let now = Utc::now();
    let mut report = BackfillReport::default();
    let mut seen = HashSet::new();
    for a in remote.into_iter().filter(|a| !a.resolved) {
        report.items_processed += 1;
        let alert = polled_alert(&a, integration_id, now);
        seen.insert(alert.external_alert_id.clone());
        match record_alert(db, tenant, &alert, true).await {
            Ok(AlertOutcome::Skipped { .. }) => {}
            Ok(_) => report.items_created += 1,
            Err(e) => {
                report.items_failed += 1;
                report.errors.push(format!("Failed to record Tactical alert {}: {e}", alert.external_alert_id));
            }
        }
    }
    for (_, external) in open_polled_alerts(db, tenant, integration_id).await? {
        if seen.contains(&external) {
            continue;
        }
        let reset = NormalizedAlert {
            integration_id,
            provider: PROVIDER.slug().into(),
            kind: AlertKind::Reset,
            external_alert_id: external,
            synthesized_id: false,
            external_device_id: None,
            external_organization_id: None,
            condition_identity: None,
            activity_type: "tacticalrmm_alert".into(),
            source_type: "tacticalrmm_alert".into(),
            alert_class: None,
            severity: "none".into(),
            message: None,
            device_name: None,
            occurred_at: now,
            raw: serde_json::json!({"__alga_ingest_source": POLL_MARKER, "reason": "no_longer_active_in_rmm"}),
        };
        if let AlertOutcome::Resolved { .. } = record_alert(db, tenant, &reset, false).await? {
            report.items_updated += 1;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_as_tactical_sends_them() {
        let b = parse_webhook(br#"{"agent_id":" abc ","alert_id":"None","severity":"error","alert_time":"2026-02-13 18:25:43.511000+00:00"}"#).unwrap();
        assert_eq!(b.agent_id, "abc");
        let a = b.to_alert(Uuid::nil(), Utc::now());
        assert!(a.synthesized_id);
        assert_eq!(a.severity, "critical");
        assert_eq!(a.occurred_at.to_rfc3339(), "2026-02-13T18:25:43.511+00:00");
        assert_eq!(a.kind, AlertKind::Triggered);

        // The body as a JSON string holding the object.
        let wrapped = serde_json::to_vec(&Value::String(r#"{"agent_id":"x","event":"RESOLVE"}"#.into())).unwrap();
        let b = parse_webhook(&wrapped).unwrap();
        assert_eq!(b.to_alert(Uuid::nil(), Utc::now()).kind, AlertKind::Reset);

        assert_eq!(parse_webhook(b"not json"), Err(WebhookError::InvalidJson));
        assert_eq!(parse_webhook(b"[1]"), Err(WebhookError::InvalidJson));
        assert_eq!(parse_webhook(br#""just text""#), Err(WebhookError::InvalidJson));
        assert_eq!(parse_webhook(br#"{"agent_id":"None"}"#), Err(WebhookError::MissingAgentId));
        assert_eq!(parse_webhook(br#"{"agent_id":""}"#), Err(WebhookError::MissingAgentId));
        // PostgreSQL stores no NUL in text or jsonb: refused as input, wherever it hides.
        for nul in [
            r#"{"agent_id":"a\u0000b"}"#,
            r#"{"agent_id":"a","message":"x\u0000"}"#,
            r#"{"agent_id":"a","k\u0000":1}"#,
            r#"{"agent_id":"a","nested":{"list":["ok","\u0000"]}}"#,
        ] {
            assert_eq!(parse_webhook(nul.as_bytes()), Err(WebhookError::NulCharacter), "{nul}");
            let wrapped = serde_json::to_vec(&Value::String(nul.into())).unwrap();
            assert_eq!(parse_webhook(&wrapped), Err(WebhookError::NulCharacter), "wrapped {nul}");
        }
    }

    #[test]
    fn severities_and_times() {
        assert_eq!(map_severity(Some("warning")), "moderate");
        assert_eq!(map_severity(Some("info")), "minor");
        assert_eq!(map_severity(Some("HIGH")), "major");
        assert_eq!(map_severity(None), "none");
        assert_eq!(parse_alert_time("1770000000").unwrap().timestamp(), 1_770_000_000);
        assert_eq!(parse_alert_time("1770000000123").unwrap().timestamp_millis(), 1_770_000_000_123);
        assert!(parse_alert_time("2026-02-13T18:25:43Z").is_some());
        assert!(parse_alert_time("2026-02-13 18:25:43+00:00").is_some());
        assert!(parse_alert_time("yesterday").is_none());
    }
}
