//! Tactical alerts delivered by webhook: each stored delivery's alert recorded with AlgaPSA's
//! rules by the agent's `sync-agent` job (alert mode `record`).

use chrono::{DateTime, Utc};
use rmm_shared::alerts::{AlertOutcome, record_alert_in};
use rmm_shared::providers::tactical::alerts::WebhookBody;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::{JobError, Runtime};
use rmm_shared::db::sql::{Exec, P, now_text, parse_ts, ts_out};

/// Records the alerts of the agent's stored deliveries that no job has processed yet (oldest
/// first). Returns (recorded, skipped or resolved). Each delivery's alert is written and the
/// delivery marked processed in one transaction, so a crash or a lost database never records a
/// delivery twice; a delivery another attempt processed meanwhile is left alone.
pub async fn record_pending_deliveries(
    rt: &Runtime,
    tenant: Uuid,
    integration_id: Uuid,
    agent_id: &str,
) -> Result<(u64, u64), JobError> {
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
            &[&tenant.to_string(), &integration_id.to_string(), agent_id],
        )
        .await?;
    let (mut recorded, mut other) = (0, 0);
    for (delivery_id, body, received_at) in rows {
        let fields: Map<String, Value> = serde_json::from_str(&body).unwrap_or_default();
        let received: DateTime<Utc> = parse_ts(&received_at).unwrap_or_else(Utc::now);
        let hook = WebhookBody { fields, agent_id: agent_id.to_owned() };
        let alert = hook.to_alert(integration_id, received);
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
            // Processed by another attempt since it was read: its alert is that attempt's.
            tx.rollback().await?;
            continue;
        }
        tx.commit().await?;
        if label == "recorded" {
            recorded += 1;
        } else {
            other += 1;
        }
        if let Some(alert_id) = alert_id_of(&outcome) {
            let ev = match outcome {
                AlertOutcome::Resolved { .. } => rmm_shared::events::EventType::AlertResolved,
                _ => rmm_shared::events::EventType::AlertTriggered,
            };
            rt.events.publish(&rmm_shared::events::Event::alert(ev, tenant, alert_id, &alert)).await;
        }
    }
    Ok((recorded, other))
}

fn alert_id_of(o: &AlertOutcome) -> Option<Uuid> {
    match o {
        AlertOutcome::Recorded { alert_id } | AlertOutcome::Resolved { alert_id } => Some(*alert_id),
        AlertOutcome::Skipped { .. } => None,
    }
}
