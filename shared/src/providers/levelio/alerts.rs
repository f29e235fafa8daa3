//! Level alerts: the body a Level automation's HTTP POST step sends, and the alert backfill.
//!
//! Level cannot register webhooks through its API. The admin adds an HTTP POST step to a Level
//! automation with the fields `device_id`, `event`, `alert_id`, `severity`, `name`, `description`,
//! `hostname`, `group_id`, `alert_time`, `policy_id` (see docs/level-setup.md). Only `device_id`
//! is required. Levels's severities (`information`, `warning`, `critical`, `emergency`) become
//! AlgaPSA's (`minor`, `moderate`, `major`, `critical`).

use std::collections::HashSet;

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::PROVIDER;
use super::client::LevelClient;
use super::model::Alert;
use super::sync::SyncError;
use crate::alerts::{AlertKind, AlertOutcome, NormalizedAlert, POLL_MARKER, open_polled_alerts, record_alert};
use crate::db::Db;
use crate::db::sql::ColType;

/// Why a webhook body was refused (the ingress answers 400 with these texts).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("Invalid JSON body")]
    InvalidJson,
    #[error("device_id is required")]
    MissingDeviceId,
    /// PostgreSQL stores no NUL character in text or JSON.
    #[error("Invalid JSON body: text with a NUL character (\\u0000) cannot be stored")]
    NulCharacter,
}

/// A parsed webhook body (kept whole as the alert's raw payload).
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookBody {
    pub fields: Map<String, Value>,
    pub device_id: String,
}

fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(m) => m.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// Parses a webhook body; a JSON string holding a JSON object is unwrapped.
pub fn parse_webhook(body: &[u8]) -> Result<WebhookBody, WebhookError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| WebhookError::InvalidJson)?;
    let value = match value {
        Value::String(s) => serde_json::from_str(&s).map_err(|_| WebhookError::InvalidJson)?,
        v => v,
    };
    if has_nul(&value) {
        return Err(WebhookError::NulCharacter);
    }
    let Value::Object(fields) = value else { return Err(WebhookError::InvalidJson) };
    let device_id = text(&fields, "device_id").ok_or(WebhookError::MissingDeviceId)?;
    Ok(WebhookBody { fields, device_id })
}

/// A field as text: absent, null, empty and an unfilled template (`{{…}}`) are "no value".
pub fn text(fields: &Map<String, Value>, key: &str) -> Option<String> {
    let s = match fields.get(key)? {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    let unfilled = s.starts_with("{{") && s.ends_with("}}");
    (!s.is_empty() && !unfilled).then_some(s)
}

/// Level's severities as AlgaPSA's.
pub fn map_severity(raw: Option<&str>) -> &'static str {
    match raw.unwrap_or("").trim().to_lowercase().as_str() {
        "emergency" => "critical",
        "critical" => "major",
        "warning" => "moderate",
        "information" | "info" => "minor",
        _ => "none",
    }
}

/// `alert_time`: RFC 3339, or epoch seconds or milliseconds.
pub fn parse_alert_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(n) = s.parse::<f64>() {
        return match n {
            n if n > 1e12 => Utc.timestamp_millis_opt(n as i64).single(),
            n if n > 1e9 => Utc.timestamp_opt(n as i64, 0).single(),
            _ => None,
        };
    }
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

impl WebhookBody {
    /// The event, lower case (`alert.triggered` when the step sends none).
    pub fn event(&self) -> String {
        text(&self.fields, "event").unwrap_or_else(|| "alert.triggered".into()).to_lowercase()
    }

    /// The group the step says the device is in.
    pub fn group_id(&self) -> Option<String> {
        text(&self.fields, "group_id")
    }

    /// The normalized alert event; `organization` is the device's group as resolved by the caller.
    pub fn to_alert(&self, integration_id: Uuid, organization: Option<String>, now: DateTime<Utc>) -> NormalizedAlert {
        let f = &self.fields;
        let event = self.event();
        let occurred_at = text(f, "alert_time").and_then(|t| parse_alert_time(&t)).unwrap_or(now);
        let (external_alert_id, synthesized_id) = match text(f, "alert_id") {
            Some(id) => (id, false),
            None => (
                format!(
                    "{}:{}:{}",
                    self.device_id,
                    event,
                    text(f, "alert_time").unwrap_or_else(|| crate::db::sql::fmt_ts(now))
                ),
                true,
            ),
        };
        let name = text(f, "name");
        let message = match (&name, text(f, "description")) {
            (Some(n), Some(d)) => Some(format!("{n}: {d}")),
            (Some(n), None) => Some(n.clone()),
            (None, Some(d)) => Some(d),
            (None, None) => Some("Level alert".into()),
        };
        NormalizedAlert {
            integration_id,
            provider: PROVIDER.slug().into(),
            kind: if event.contains("resolve") { AlertKind::Reset } else { AlertKind::Triggered },
            external_alert_id,
            synthesized_id,
            external_device_id: Some(self.device_id.clone()),
            external_organization_id: organization.or_else(|| self.group_id()),
            condition_identity: text(f, "policy_id").or_else(|| name.clone()),
            activity_type: "levelio_webhook".into(),
            source_type: "levelio_webhook".into(),
            alert_class: name,
            severity: map_severity(text(f, "severity").as_deref()).into(),
            message,
            device_name: text(f, "hostname"),
            occurred_at,
            raw: Value::Object(f.clone()),
        }
    }
}

/// An active alert read from Level, marked as polled so that a later backfill may resolve it.
pub fn polled_alert(a: &Alert, integration_id: Uuid, now: DateTime<Utc>) -> NormalizedAlert {
    let mut raw = match serde_json::to_value(a) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    raw.insert("__alga_ingest_source".into(), Value::String(POLL_MARKER.into()));
    let name = a.name.clone().filter(|n| !n.trim().is_empty());
    let mut message = match (&name, a.description.as_deref().filter(|d| !d.trim().is_empty())) {
        (Some(n), Some(d)) => format!("{n}: {d}"),
        (Some(n), None) => n.clone(),
        (None, Some(d)) => d.to_owned(),
        (None, None) => "Level alert".into(),
    };
    if let Some(p) = a.payload.as_deref().filter(|p| !p.trim().is_empty()) {
        message = format!("{message} ({p})");
    }
    NormalizedAlert {
        integration_id,
        provider: PROVIDER.slug().into(),
        kind: AlertKind::Triggered,
        external_alert_id: a.id.clone(),
        synthesized_id: false,
        external_device_id: a.device_id.clone(),
        external_organization_id: None,
        condition_identity: name.clone(),
        activity_type: "levelio_alert".into(),
        source_type: "levelio_alert".into(),
        alert_class: name,
        severity: map_severity(a.severity.as_deref()).into(),
        message: Some(message),
        device_name: a.device_hostname.clone(),
        occurred_at: a.started_at.as_deref().and_then(parse_alert_time).unwrap_or(now),
        raw: Value::Object(raw),
    }
}

/// What a backfill did (AlgaPSA's counts).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BackfillReport {
    /// Active alerts Level reported.
    pub items_processed: u64,
    /// Alerts recorded or reopened.
    pub items_created: u64,
    /// Poll-recorded alerts resolved because Level no longer has them active.
    pub items_updated: u64,
    pub items_failed: u64,
    /// Alerts resolved in Level because they are resolved here (only when asked).
    pub resolved_in_level: u64,
    pub errors: Vec<String>,
}

/// `GET /v2/alerts?status=active`: every active alert recorded (marked as polled); polled alerts
/// no longer active in Level resolved here. Webhook-recorded alerts are never resolved by it.
/// With `resolve_in_level`, alerts still active in Level but resolved here are resolved in Level
/// (`POST /v2/alerts/{id}/resolve`); without it Level is only read.
pub async fn backfill_alerts(
    db: &Db,
    tenant: Uuid,
    integration_id: Uuid,
    client: &LevelClient,
    resolve_in_level: bool,
) -> Result<BackfillReport, SyncError> {
    let remote = client.list_alerts(Some("active"), None).await?;
    let now = Utc::now();
    let mut report = BackfillReport::default();
    let mut seen = HashSet::new();
    let resolved_here =
        if resolve_in_level { resolved_alert_ids(db, tenant, integration_id).await? } else { HashSet::new() };
    for a in remote.iter().filter(|a| a.is_resolved != Some(true)) {
        seen.insert(a.id.clone());
        if resolved_here.contains(&a.id) {
            match client.resolve_alert(&a.id).await {
                Ok(()) => report.resolved_in_level += 1,
                Err(e) => {
                    report.items_failed += 1;
                    report.errors.push(format!("Could not resolve Level alert {} in Level: {e}", a.id));
                }
            }
            continue;
        }
        report.items_processed += 1;
        let alert = polled_alert(a, integration_id, now);
        match record_alert(db, tenant, &alert, true).await {
            Ok(AlertOutcome::Skipped { .. }) => {}
            Ok(_) => report.items_created += 1,
            Err(e) => {
                report.items_failed += 1;
                report.errors.push(format!("Failed to record Level alert {}: {e}", alert.external_alert_id));
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
            activity_type: "levelio_alert".into(),
            source_type: "levelio_alert".into(),
            alert_class: None,
            severity: "none".into(),
            message: None,
            device_name: None,
            occurred_at: now,
            raw: json!({"__alga_ingest_source": POLL_MARKER, "reason": "no_longer_active_in_rmm"}),
        };
        if let AlertOutcome::Resolved { .. } = record_alert(db, tenant, &reset, false).await? {
            report.items_updated += 1;
        }
    }
    Ok(report)
}

/// External ids of the integration's alerts resolved here.
async fn resolved_alert_ids(
    db: &Db,
    tenant: Uuid,
    integration_id: Uuid,
) -> Result<HashSet<String>, crate::db::DbError> {
    let d = db.dialect();
    let rows: Vec<(String,)> = db
        .fetch(
            &format!(
                "SELECT external_alert_id FROM rmm_alerts WHERE tenant = {} AND integration_id = {} AND status = 'resolved'",
                d.param(1, ColType::Uuid),
                d.param(2, ColType::Uuid)
            ),
            &[&tenant.to_string(), &integration_id.to_string()],
        )
        .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automation_bodies() {
        let b = parse_webhook(
            br#"{"device_id":" dev1 ","event":"Alert.Resolved","alert_id":"al1","severity":"emergency",
                "name":"CPU","description":"CPU over 90%","group_id":"g1","alert_time":"1770000000","policy_id":"{{policy_id}}"}"#,
        )
        .unwrap();
        assert_eq!(b.device_id, "dev1");
        let a = b.to_alert(Uuid::nil(), None, Utc::now());
        assert_eq!(a.kind, AlertKind::Reset);
        assert_eq!(a.severity, "critical");
        assert_eq!(a.message.as_deref(), Some("CPU: CPU over 90%"));
        assert_eq!(a.external_organization_id.as_deref(), Some("g1"));
        assert_eq!(a.condition_identity.as_deref(), Some("CPU"), "an unfilled template is no value");
        assert_eq!(a.occurred_at.timestamp(), 1_770_000_000);
        let b = parse_webhook(br#"{"device_id":"d"}"#).unwrap();
        let a = b.to_alert(Uuid::nil(), Some("g9".into()), Utc::now());
        assert!(a.synthesized_id);
        assert_eq!(a.kind, AlertKind::Triggered);
        assert_eq!(a.external_organization_id.as_deref(), Some("g9"));
        assert_eq!(parse_webhook(b"nope"), Err(WebhookError::InvalidJson));
        assert_eq!(parse_webhook(br#"{"device_id":""}"#), Err(WebhookError::MissingDeviceId));
        assert_eq!(parse_webhook(br#"{"device_id":"{{device_id}}"}"#), Err(WebhookError::MissingDeviceId));
        assert_eq!(parse_webhook(br#"{"device_id":"a\u0000"}"#), Err(WebhookError::NulCharacter));
        assert_eq!(map_severity(Some("Warning")), "moderate");
        assert_eq!(map_severity(Some("critical")), "major");
        assert_eq!(map_severity(None), "none");
    }
}
