//! NinjaOne alerts: webhook deliveries (CONDITION events triggered/reset; SYSTEM node events),
//! and the active alerts read by the backfill, in AlgaPSA's normalized shape and recorded with its
//! rules (`crate::alerts`).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::PROVIDER;
use super::client::NinjaClient;
use super::model::{Alert, parse_timestamp};
use super::sync::SyncError;
use crate::alerts::{AlertKind, AlertOutcome, NormalizedAlert, POLL_MARKER, open_polled_alerts, record_alert};
use crate::db::Db;

/// NinjaOne's webhook (`X-Alga-Webhook-Secret`, or `X-Ninja-Signature` = HMAC-SHA256 of the body
/// under the same secret).
pub fn parse_webhook(body: &[u8]) -> Result<crate::providers::ParsedWebhook, String> {
    let value: Value = serde_json::from_slice(body).map_err(|_| "Invalid JSON payload".to_owned())?;
    let Value::Object(fields) = value else {
        return Err("Invalid JSON payload".into());
    };
    let device_id = match fields.get("deviceId") {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.trim().to_owned(),
        _ => String::new(),
    };
    Ok(crate::providers::ParsedWebhook { device_id, event: event_name(&fields), fields })
}

fn text(f: &Map<String, Value>, key: &str) -> Option<String> {
    match f.get(key)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `triggered`/`reset`/`acknowledged` for a condition, else the activity type (`node_updated`),
/// lower case.
pub fn event_name(f: &Map<String, Value>) -> String {
    let condition = text(f, "type").is_some_and(|t| t.eq_ignore_ascii_case("CONDITION"));
    let name = if condition { text(f, "status") } else { None };
    name.or_else(|| text(f, "activityType")).unwrap_or_else(|| "unknown".into()).to_lowercase()
}

/// Whether a delivery says the device left NinjaOne (AlgaPSA deletes the asset for these).
pub fn is_device_removal(f: &Map<String, Value>) -> bool {
    matches!(text(f, "activityType").as_deref(), Some("NODE_DELETED") | Some("NODE_APPROVAL_REJECTED"))
}

/// NinjaOne severities → AlgaPSA's.
pub fn map_severity(s: Option<&str>) -> &'static str {
    match s.unwrap_or("").to_ascii_uppercase().as_str() {
        "CRITICAL" => "critical",
        "MAJOR" => "major",
        "MODERATE" => "moderate",
        "MINOR" => "minor",
        _ => "none",
    }
}

/// A condition delivery as AlgaPSA's normalizer reads it; `None` for anything else (a SYSTEM
/// event, an acknowledgement, a delivery without an activity id).
pub fn webhook_alert(f: &Map<String, Value>, integration_id: Uuid, received: DateTime<Utc>) -> Option<NormalizedAlert> {
    if !text(f, "type").is_some_and(|t| t.eq_ignore_ascii_case("CONDITION")) {
        return None;
    }
    let kind = match text(f, "status").as_deref() {
        Some("TRIGGERED") => AlertKind::Triggered,
        Some("RESET") => AlertKind::Reset,
        _ => return None,
    };
    let external_alert_id = text(f, "activityId").or_else(|| text(f, "id"))?;
    let device = f.get("device");
    let device_name = device
        .and_then(|d| d.get("displayName").or_else(|| d.get("systemName")))
        .and_then(Value::as_str)
        .map(str::to_owned);
    Some(NormalizedAlert {
        integration_id,
        provider: PROVIDER.slug().into(),
        kind,
        external_alert_id,
        synthesized_id: false,
        external_device_id: text(f, "deviceId"),
        external_organization_id: text(f, "organizationId"),
        condition_identity: text(f, "statusCode").or_else(|| text(f, "activityType")),
        activity_type: text(f, "activityType").unwrap_or_default(),
        source_type: text(f, "type").map(|t| t.to_lowercase()).unwrap_or_else(|| "condition".into()),
        alert_class: text(f, "statusCode"),
        severity: map_severity(text(f, "severity").as_deref()).into(),
        message: text(f, "message").or_else(|| text(f, "statusCode")),
        device_name,
        occurred_at: f.get("activityTime").and_then(parse_timestamp).unwrap_or(received),
        raw: Value::Object(f.clone()),
    })
}

/// An active alert of `GET /v2/alerts` as the backfill records it (marked as polled).
pub fn polled_alert(a: &Alert, raw: Value, integration_id: Uuid, now: DateTime<Utc>) -> NormalizedAlert {
    let mut raw = match raw {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    raw.insert("__alga_ingest_source".into(), json!(POLL_MARKER));
    NormalizedAlert {
        integration_id,
        provider: PROVIDER.slug().into(),
        kind: AlertKind::Triggered,
        external_alert_id: a.uid.clone(),
        synthesized_id: false,
        external_device_id: a.device_id.map(|d| d.to_string()),
        external_organization_id: None,
        condition_identity: a.source_type.clone().or_else(|| a.status_code.clone()),
        activity_type: "ninjaone_alert".into(),
        source_type: a.source_type.clone().map(|s| s.to_lowercase()).unwrap_or_else(|| "condition".into()),
        alert_class: a.status_code.clone(),
        severity: map_severity(a.severity.as_deref()).into(),
        message: a.message.clone().or_else(|| a.source_name.clone()),
        device_name: None,
        occurred_at: a.create_time.unwrap_or(now),
        raw: Value::Object(raw),
    }
}

/// What a backfill did (AlgaPSA's counts).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BackfillReport {
    /// Active alerts NinjaOne reported.
    pub items_processed: u64,
    /// Alerts recorded or reopened.
    pub items_created: u64,
    /// Poll-recorded alerts resolved because NinjaOne no longer has them (or an admin reset them).
    pub items_updated: u64,
    pub items_failed: u64,
    /// Alerts reset in NinjaOne at the admin's request.
    pub reset_in_ninjaone: u64,
    pub errors: Vec<String>,
}

fn reset_event(integration_id: Uuid, external: String, now: DateTime<Utc>, reason: &str) -> NormalizedAlert {
    NormalizedAlert {
        integration_id,
        provider: PROVIDER.slug().into(),
        kind: AlertKind::Reset,
        external_alert_id: external,
        synthesized_id: false,
        external_device_id: None,
        external_organization_id: None,
        condition_identity: None,
        activity_type: "ninjaone_alert".into(),
        source_type: "condition".into(),
        alert_class: None,
        severity: "none".into(),
        message: None,
        device_name: None,
        occurred_at: now,
        raw: json!({"__alga_ingest_source": POLL_MARKER, "reason": reason}),
    }
}

/// Resets the alerts `reset` (uids) in NinjaOne first (only what an admin asked for), then
/// records every active alert (marked as polled) and resolves polled alerts NinjaOne no longer
/// has. Webhook-recorded alerts are never resolved here.
pub async fn backfill_alerts(
    db: &Db,
    tenant: Uuid,
    integration_id: Uuid,
    client: &NinjaClient,
    reset: &[String],
) -> Result<BackfillReport, SyncError> {
    let mut report = BackfillReport::default();
    for uid in reset.iter().map(|u| u.trim()).filter(|u| !u.is_empty()) {
        match client.reset_alert(uid).await {
            Ok(()) => report.reset_in_ninjaone += 1,
            Err(e) => {
                report.items_failed += 1;
                report.errors.push(format!("Failed to reset NinjaOne alert {uid}: {e}"));
            }
        }
    }
    let remote = client.list_alerts_raw().await?;
    let now = Utc::now();
    let mut seen = HashSet::new();
    for (a, raw) in remote {
        if a.uid.is_empty() {
            continue;
        }
        report.items_processed += 1;
        let alert = polled_alert(&a, raw, integration_id, now);
        seen.insert(alert.external_alert_id.clone());
        match record_alert(db, tenant, &alert, true).await {
            Ok(AlertOutcome::Skipped { .. }) => {}
            Ok(_) => report.items_created += 1,
            Err(e) => {
                report.items_failed += 1;
                report.errors.push(format!("Failed to record NinjaOne alert {}: {e}", alert.external_alert_id));
            }
        }
    }
    for (_, external) in open_polled_alerts(db, tenant, integration_id).await? {
        if seen.contains(&external) {
            continue;
        }
        let reset = reset_event(integration_id, external, now, "no_longer_active_in_rmm");
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
    fn deliveries_as_ninjaone_sends_them() {
        let body = br#"{"id": 981, "activityTime": 1764000000.5, "deviceId": 1042, "organizationId": 3,
            "type": "CONDITION", "status": "TRIGGERED", "statusCode": "CPU_HIGH", "activityType": "CONDITION",
            "severity": "MAJOR", "message": "CPU above 90%", "device": {"displayName": "SRV-01"}}"#;
        let hook = parse_webhook(body).unwrap();
        assert_eq!((hook.device_id.as_str(), hook.event.as_str()), ("1042", "triggered"));
        let a = webhook_alert(&hook.fields, Uuid::nil(), Utc::now()).unwrap();
        assert_eq!(a.external_alert_id, "981");
        assert_eq!(a.kind, AlertKind::Triggered);
        assert_eq!((a.severity.as_str(), a.source_type.as_str()), ("major", "condition"));
        assert_eq!(a.condition_identity.as_deref(), Some("CPU_HIGH"));
        assert_eq!(a.device_name.as_deref(), Some("SRV-01"));
        assert_eq!(a.occurred_at.timestamp(), 1_764_000_000);
        assert_eq!(a.dedup_key(), "1042|CPU_HIGH");

        let node =
            parse_webhook(br#"{"id": 5, "type": "SYSTEM", "activityType": "NODE_DELETED", "deviceId": "77"}"#).unwrap();
        assert_eq!((node.device_id.as_str(), node.event.as_str()), ("77", "node_deleted"));
        assert!(webhook_alert(&node.fields, Uuid::nil(), Utc::now()).is_none());
        assert!(is_device_removal(&node.fields));
        let ack = parse_webhook(br#"{"id": 6, "type": "CONDITION", "status": "ACKNOWLEDGED", "deviceId": 1}"#).unwrap();
        assert!(webhook_alert(&ack.fields, Uuid::nil(), Utc::now()).is_none());

        let none = parse_webhook(br#"{"id": 7, "type": "SYSTEM", "activityType": "USER_LOGGED_IN"}"#).unwrap();
        assert_eq!(none.device_id, "");
        assert_eq!(parse_webhook(b"[1]").unwrap_err(), "Invalid JSON payload");
        assert_eq!(parse_webhook(b"{").unwrap_err(), "Invalid JSON payload");
    }
}
