//! Stored webhook deliveries processed by a device's refresh job, whatever the provider: the ones
//! no job has processed yet, read oldest first, and each one's alert recorded with AlgaPSA's rules
//! while the delivery is marked processed in the same transaction, so a crash or a lost database
//! never records a delivery twice.

use chrono::{DateTime, Utc};
use rmm_shared::alerts::{AlertOutcome, NormalizedAlert, record_alert_in};
use rmm_shared::events::{Event, EventType};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::{JobError, Runtime};
use rmm_shared::db::sql::{Exec, P, now_text, parse_ts, ts_out};

/// A stored delivery no job has processed yet.
#[derive(Debug, Clone)]
pub struct Pending {
    pub delivery_id: String,
    /// The body's fields (empty when it does not parse as a JSON object).
    pub body: Map<String, Value>,
    pub received_at: DateTime<Utc>,
}

/// The device's stored deliveries that no job has processed yet, oldest first.
pub async fn pending(
    rt: &Runtime,
    tenant: Uuid,
    integration_id: Uuid,
    device_id: &str,
) -> Result<Vec<Pending>, JobError> {
    let db = &rt.db;
    let p = P(db.dialect());
    let rows: Vec<(String, String, String)> = db
        .fetch(
            &format!(
                "SELECT delivery_id, {}, {} FROM {} WHERE tenant = {} AND integration_id = {} AND agent_id = {} \
                 AND processed_at IS NULL ORDER BY received_at, delivery_id",
                p.json_out("body"),
                ts_out(p.0, "received_at"),
                p.t("webhook_deliveries"),
                p.uuid(1),
                p.uuid(2),
                p.text(3)
            ),
            &[&tenant.to_string(), &integration_id.to_string(), device_id],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|(delivery_id, body, at)| Pending {
            delivery_id,
            body: serde_json::from_str(&body).unwrap_or_default(),
            received_at: parse_ts(&at).unwrap_or_else(Utc::now),
        })
        .collect())
}

/// Records one delivery's alert (`None`: an event that is not an alert) and marks the delivery
/// processed, in one write transaction; a recorded or resolved alert's event is published after
/// the commit. Returns whether an alert was recorded, or `None` when another attempt processed
/// the delivery since it was read (its alert is that attempt's).
pub async fn record(
    rt: &Runtime,
    tenant: Uuid,
    delivery_id: &str,
    alert: Option<&NormalizedAlert>,
) -> Result<Option<bool>, JobError> {
    let db = &rt.db;
    let p = P(db.dialect());
    let mut tx = db.begin_write().await?;
    let outcome = match alert {
        Some(a) => match record_alert_in(&mut tx, tenant, a, false).await {
            Ok(o) => Some(o),
            Err(e) => {
                let _ = tx.rollback().await;
                return Err(e.into());
            }
        },
        None => None,
    };
    let label = match outcome {
        Some(AlertOutcome::Recorded { .. }) => "recorded",
        Some(AlertOutcome::Skipped { .. }) => "skipped",
        Some(AlertOutcome::Resolved { .. }) => "resolved",
        None => "not_an_alert",
    };
    let marked = tx
        .exec(
            &format!(
                "UPDATE {} SET processed_at = {}, outcome = {} WHERE delivery_id = {} AND processed_at IS NULL",
                p.t("webhook_deliveries"),
                p.ts(1),
                p.text(2),
                p.text(3)
            ),
            &[&now_text(), label, delivery_id],
        )
        .await?;
    if marked == 0 {
        tx.rollback().await?;
        return Ok(None);
    }
    tx.commit().await?;
    if let (Some(a), Some(AlertOutcome::Recorded { alert_id } | AlertOutcome::Resolved { alert_id })) = (alert, outcome)
    {
        let ev = match outcome {
            Some(AlertOutcome::Resolved { .. }) => EventType::AlertResolved,
            _ => EventType::AlertTriggered,
        };
        rt.events.publish(&Event::alert(ev, tenant, alert_id, a)).await;
    }
    Ok(Some(label == "recorded"))
}
