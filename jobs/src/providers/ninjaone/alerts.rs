//! NinjaOne webhook deliveries processed by the device's `ninjaone-sync-device` job: each stored
//! delivery's condition recorded with AlgaPSA's rules, and whether any of them said the device
//! left NinjaOne.

use rmm_shared::providers::ninjaone::alerts::{is_device_removal, webhook_alert};
use uuid::Uuid;

use crate::deliveries;
use crate::{JobError, Runtime};

/// What the device's pending deliveries held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deliveries {
    pub alerts_recorded: u64,
    /// Redeliveries, resets of unknown alerts, and events that are not alerts.
    pub other: u64,
    /// A `NODE_DELETED` / `NODE_APPROVAL_REJECTED` event was among them.
    pub removal: bool,
}

/// Records the device's stored deliveries no job has processed yet (oldest first). See
/// [`deliveries::record`].
pub async fn record_pending_deliveries(
    rt: &Runtime,
    tenant: Uuid,
    integration_id: Uuid,
    device_id: &str,
) -> Result<Deliveries, JobError> {
    let mut out = Deliveries::default();
    for d in deliveries::pending(rt, tenant, integration_id, device_id).await? {
        out.removal |= is_device_removal(&d.body);
        let alert = webhook_alert(&d.body, integration_id, d.received_at);
        match deliveries::record(rt, tenant, &d.delivery_id, alert.as_ref()).await? {
            Some(true) => out.alerts_recorded += 1,
            Some(false) => out.other += 1,
            None => {}
        }
    }
    Ok(out)
}
