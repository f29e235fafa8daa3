//! Level alerts delivered by a Level automation's HTTP POST step: each stored delivery's alert
//! recorded with AlgaPSA's rules by the device's `levelio-sync-device` job.

use chrono::{DateTime, Utc};
use rmm_shared::alerts::{AlertOutcome, record_alert_in};
use rmm_shared::providers::levelio::alerts::WebhookBody;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::{JobError, Runtime};
use rmm_shared::db::sql::{Exec, P, now_text, parse_ts, ts_out};

/// A stored delivery not processed yet: (delivery id, body, received at).
pub type Pending = (String, Map<String, Value>, DateTime<Utc>);

/// The device's stored deliveries that no job has processed yet, oldest first.
pub async fn pending_deliveries(
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
        .map(|(id, body, at)| {
            (id, serde_json::from_str(&body).unwrap_or_default(), parse_ts(&at).unwrap_or_else(Utc::now))
        })
        .collect())
}

/// Records the alerts of `pending` (see [`pending_deliveries`]) under `organization` when a body
/// names no group. Returns (recorded, skipped or resolved). Each alert is written and its delivery
/// marked processed in one transaction, so no delivery is recorded twice; one another attempt
/// processed meanwhile is left alone.
pub async fn record_deliveries(
    rt: &Runtime,
    tenant: Uuid,
    integration_id: Uuid,
    device_id: &str,
    pending: Vec<Pending>,
    organization: Option<String>,
) -> Result<(u64, u64), JobError> {
    let db = &rt.db;
    let p = P(db.dialect());
    let (mut recorded, mut other) = (0, 0);
    for (delivery_id, fields, received) in pending {
        let hook = WebhookBody { fields, device_id: device_id.to_owned() };
        let alert = hook.to_alert(integration_id, hook.group_id().or_else(|| organization.clone()), received);
        let mut tx = db.begin_write().await?;
        let outcome = match record_alert_in(&mut tx, tenant, &alert, false).await {
            Ok(o) => o,
            Err(e) => {
                let _ = tx.rollback().await;
                return Err(e.into());
            }
        };
        let label = match outcome {
            AlertOutcome::Recorded { .. } => "recorded",
            AlertOutcome::Skipped { .. } => "skipped",
            AlertOutcome::Resolved { .. } => "resolved",
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
            recorded += 1;
        } else {
            other += 1;
        }
        let alert_id = match outcome {
            AlertOutcome::Recorded { alert_id } | AlertOutcome::Resolved { alert_id } => Some(alert_id),
            AlertOutcome::Skipped { .. } => None,
        };
        if let Some(alert_id) = alert_id {
            let ev = match outcome {
                AlertOutcome::Resolved { .. } => rmm_shared::events::EventType::AlertResolved,
                _ => rmm_shared::events::EventType::AlertTriggered,
            };
            rt.events.publish(&rmm_shared::events::Event::alert(ev, tenant, alert_id, &alert)).await;
        }
    }
    Ok((recorded, other))
}
