//! Level alerts delivered by a Level automation's HTTP POST step: each stored delivery's alert
//! recorded with AlgaPSA's rules by the device's `levelio-sync-device` job.

use rmm_shared::providers::levelio::alerts::WebhookBody;
use uuid::Uuid;

use crate::deliveries::{self, Pending};
use crate::{JobError, Runtime};

/// Records the alerts of `pending` (see [`deliveries::pending`]) under `organization` when a body
/// names no group. Returns (recorded, skipped or resolved). See [`deliveries::record`].
pub async fn record_deliveries(
    rt: &Runtime,
    tenant: Uuid,
    integration_id: Uuid,
    device_id: &str,
    pending: Vec<Pending>,
    organization: Option<String>,
) -> Result<(u64, u64), JobError> {
    let (mut recorded, mut other) = (0, 0);
    for d in pending {
        let hook = WebhookBody { fields: d.body, device_id: device_id.to_owned() };
        let alert = hook.to_alert(integration_id, hook.group_id().or_else(|| organization.clone()), d.received_at);
        match deliveries::record(rt, tenant, &d.delivery_id, Some(&alert)).await? {
            Some(true) => recorded += 1,
            Some(false) => other += 1,
            None => {}
        }
    }
    Ok((recorded, other))
}
