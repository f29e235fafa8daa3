//! NinjaOne webhook deliveries processed by the device's `ninjaone-sync-device` job: each stored
//! delivery's condition recorded with AlgaPSA's rules, and whether any of them said the device
//! left NinjaOne.

use chrono::{DateTime, Utc};
use rmm_shared::alerts::{AlertOutcome, record_alert_in};
use rmm_shared::providers::ninjaone::alerts::{is_device_removal, webhook_alert};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::{JobError, Runtime};
use rmm_shared::db::sql::{Exec, P, now_text, parse_ts, ts_out};

/// What the device's pending deliveries held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deliveries {
    pub alerts_recorded: u64,
    /// Redeliveries, resets of unknown alerts, and events that are not alerts.
    pub other: u64,
    /// A `NODE_DELETED` / `NODE_APPROVAL_REJECTED` event was among them.
    pub removal: bool,
}

/// Records the device's stored deliveries no job has processed yet (oldest first). Each
/// delivery's alert is written and the delivery marked processed in one transaction, so a crash
/// never records a delivery twice; a delivery another attempt processed meanwhile is left alone.
pub async fn record_pending_deliveries(
    rt: &Runtime,
    tenant: Uuid,
    integration_id: Uuid,
    device_id: &str,
) -> Result<Deliveries, JobError> {
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
    let mut out = Deliveries::default();
    for (delivery_id, body, received_at) in rows {
        let fields: Map<String, Value> = serde_json::from_str(&body).unwrap_or_default();
        let received: DateTime<Utc> = parse_ts(&received_at).unwrap_or_else(Utc::now);
        out.removal |= is_device_removal(&fields);
        let alert = webhook_alert(&fields, integration_id, received);
        let mut tx = db.begin_write().await?;
        let outcome = match &alert {
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
                &[&now_text(), label, &delivery_id],
            )
            .await?;
        if marked == 0 {
            tx.rollback().await?;
            continue;
        }
        tx.commit().await?;
        if label == "recorded" {
            out.alerts_recorded += 1;
        } else {
            out.other += 1;
        }
        if let (Some(a), Some(AlertOutcome::Recorded { alert_id } | AlertOutcome::Resolved { alert_id })) =
            (&alert, outcome)
        {
            let ev = match outcome {
                Some(AlertOutcome::Resolved { .. }) => rmm_shared::events::EventType::AlertResolved,
                _ => rmm_shared::events::EventType::AlertTriggered,
            };
            rt.events.publish(&rmm_shared::events::Event::alert(ev, tenant, alert_id, a)).await;
        }
    }
    Ok(out)
}
