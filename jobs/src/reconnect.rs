//! Integrations that must be reconnected (`settings.tokenLifecycle.status = reconnect_required`,
//! [`rmm_shared::integrations::lifecycle`]), whatever their provider.
//!
//! The job gate ([`crate::dispatch::integration_gate`]) skips every scheduled and admin job of such
//! an integration, and the scheduler records the reason on the schedule. A webhook's job still
//! runs, because the delivery's alerts need no call to the RMM: it records them, then asks
//! [`check`] and ends with [`skipped`] instead of refreshing the device.

use rmm_shared::integrations::lifecycle::{RECONNECT_REQUIRED, needs_reconnect};
use serde_json::json;

use crate::kind::JobOutcome;
use crate::run::ids;
use crate::{JobCtx, JobError};

/// The outcome of a job that did not call the RMM because the integration must be reconnected:
/// `counts.skipped_reconnect_required = 1`, `detail.skipped = "reconnect_required"`.
pub fn skipped(provider: &str) -> JobOutcome {
    let mut o = JobOutcome::default().count("skipped_reconnect_required", 1);
    o.detail = json!({
        "skipped": RECONNECT_REQUIRED,
        "reason": format!(
            "the {provider} integration must be reconnected (settings.tokenLifecycle.status = {RECONNECT_REQUIRED}); \
             it is not called until it is authorized again or passes a connection test"
        ),
    });
    o
}

/// [`skipped`] when the job's integration must be reconnected now, else `None`.
pub async fn check(ctx: &JobCtx) -> Result<Option<JobOutcome>, JobError> {
    let (tenant, integration) = ids(ctx)?;
    let config = rmm_shared::integrations::config(ctx.db(), tenant, integration).await?;
    Ok(config.filter(|(_, s)| needs_reconnect(s)).map(|_| skipped(ctx.provider().unwrap_or("RMM"))))
}
