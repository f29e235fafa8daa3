//! Tactical alerts delivered by webhook: each stored delivery's alert recorded with AlgaPSA's
//! rules by the agent's `sync-agent` job (alert mode `record`).

use rmm_shared::providers::tactical::alerts::WebhookBody;
use uuid::Uuid;

use crate::deliveries;
use crate::{JobError, Runtime};

/// Records the alerts of the agent's stored deliveries that no job has processed yet (oldest
/// first). Returns (recorded, skipped or resolved). See [`deliveries::record`].
pub async fn record_pending_deliveries(
    rt: &Runtime,
    tenant: Uuid,
    integration_id: Uuid,
    agent_id: &str,
) -> Result<(u64, u64), JobError> {
    let (mut recorded, mut other) = (0, 0);
    for d in deliveries::pending(rt, tenant, integration_id, agent_id).await? {
        let hook = WebhookBody { fields: d.body, agent_id: agent_id.to_owned() };
        let alert = hook.to_alert(integration_id, d.received_at);
        match deliveries::record(rt, tenant, &d.delivery_id, Some(&alert)).await? {
            Some(true) => recorded += 1,
            Some(false) => other += 1,
            None => {}
        }
    }
    Ok((recorded, other))
}
