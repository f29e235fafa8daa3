//! Alert handling mode `forward`: instead of recording Tactical alerts ourselves, each stored
//! webhook delivery is posted, unchanged, to AlgaPSA's own Tactical webhook URL, so that
//! AlgaPSA's ticket automation and maintenance windows run on it. The agent refresh stays ours.
//!
//! Integration settings: `alert_mode` (`record`, the default, or `forward`) and
//! `alert_forward_url` (AlgaPSA's `…/api/webhooks/tacticalrmm?tenant=<uuid>`). The tenant's
//! webhook secret is sent in `X-Alga-Webhook-Secret`, as Tactical would send it.
//!
//! Each delivery becomes one `forward-alert` job, retried with backoff until AlgaPSA answers 2xx
//! (12 attempts, 5 s doubling to 10 minutes: about an hour), then listed as failed and re-queueable.

use std::time::Duration;

use rmm_shared::providers::Provider;
use rmm_shared::providers::tactical::settings::{AlertMode, is_http_url};
use rmm_shared::providers::tactical::{PROVIDER, secrets};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::envelope::{JobRequest, Trigger};
use crate::kind::{JobKind, JobOutcome, Policy, Scope};
use crate::{JobCtx, JobError};
use rmm_shared::db::sql::{Exec, P, now_text};

/// Hands the agent's unprocessed deliveries to `forward-alert` jobs (oldest first): each one is
/// enqueued and its delivery marked `forwarding` in one transaction. Returns how many.
pub async fn forward_pending_deliveries(
    ctx: &JobCtx,
    tenant: Uuid,
    integration: Uuid,
    agent_id: &str,
) -> Result<u64, JobError> {
    let rt = ctx.runtime();
    let p = P(rt.db.dialect());
    let pending: Vec<(String,)> = rt
        .db
        .fetch(
            &format!(
                "SELECT delivery_id FROM {} WHERE tenant = {} AND integration_id = {} AND agent_id = {} \
                 AND processed_at IS NULL ORDER BY received_at, delivery_id",
                p.t("webhook_deliveries"),
                p.uuid(1),
                p.uuid(2),
                p.text(3)
            ),
            &[&tenant.to_string(), &integration.to_string(), agent_id],
        )
        .await?;
    let mut n = 0;
    for (delivery_id,) in pending {
        let mut tx = rt.db.begin_write().await?;
        let claimed = tx
            .exec(
                &format!(
                    "UPDATE {} SET processed_at = {}, outcome = 'forwarding' WHERE delivery_id = {} AND processed_at IS NULL",
                    p.t("webhook_deliveries"),
                    p.ts(1),
                    p.text(2)
                ),
                &[&now_text(), &delivery_id],
            )
            .await?;
        if claimed == 0 {
            tx.rollback().await?;
            continue;
        }
        let req =
            JobRequest::for_integration(ForwardAlert::NAME, tenant, PROVIDER.slug(), integration, Trigger::Webhook)
                .args(serde_json::json!({ "delivery_id": delivery_id }))
                .correlation_id(delivery_id.clone());
        rt.queue.enqueue_in_tx(&mut tx, req).await.map_err(JobError::transient)?;
        tx.commit().await?;
        n += 1;
    }
    if n > 0
        && let Err(e) = rt.queue.relay_outbox().await
    {
        tracing::warn!(error = %e, "could not hand forward jobs to Redis yet; the relay will retry");
    }
    Ok(n)
}

/// Arguments of `forward-alert`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardArgs {
    pub delivery_id: String,
}

/// `forward-alert` (internal): one stored delivery posted to AlgaPSA's webhook URL.
pub struct ForwardAlert;

impl JobKind for ForwardAlert {
    const NAME: &'static str = "forward-alert";
    const SCOPE: Scope = Scope::Integration;
    const PROVIDERS: &'static [Provider] = &[PROVIDER];
    const INTERNAL: bool = true;
    type Args = ForwardArgs;

    fn policy() -> Policy {
        Policy {
            max_attempts: 12,
            backoff_initial: Duration::from_secs(5),
            backoff_max: Duration::from_secs(600),
            timeout: Duration::from_secs(60),
            concurrency: None,
            priority: 5,
            inline_retry_after: Duration::from_secs(5),
            max_deferrals: 20,
            listen: true,
        }
    }

    async fn run(ctx: JobCtx, args: ForwardArgs) -> Result<JobOutcome, JobError> {
        let (Some(tenant), Some(integration)) = (ctx.tenant(), ctx.integration_id()) else {
            return Err(JobError::Permanent("job has no tenant or integration".into()));
        };
        let rt = ctx.runtime();
        let p = P(rt.db.dialect());
        let rows: Vec<(String,)> = rt
            .db
            .fetch(
                &format!(
                    "SELECT {} FROM {} WHERE delivery_id = {} AND tenant = {}",
                    p.json_out("body"),
                    p.t("webhook_deliveries"),
                    p.text(1),
                    p.uuid(2)
                ),
                &[&args.delivery_id, &tenant.to_string()],
            )
            .await?;
        let Some((body,)) = rows.into_iter().next() else {
            return Err(JobError::Permanent(format!("delivery {} no longer exists", args.delivery_id)));
        };
        let settings = rmm_shared::integrations::config(&rt.db, tenant, integration)
            .await?
            .map_or_else(|| Value::Object(Default::default()), |(_, s)| s);
        let url = match AlertMode::from_settings(&settings) {
            Ok(AlertMode::Forward { url }) => url,
            // Switched back to `record` since: forward what was accepted in forward mode anyway,
            // to the URL that was configured.
            Ok(AlertMode::Record) => match settings.get("alert_forward_url").and_then(Value::as_str) {
                Some(u) if is_http_url(u) => u.to_owned(),
                _ => return Err(JobError::Permanent("no alert_forward_url is configured".into())),
            },
            Err(e) => return Err(JobError::Permanent(e)),
        };
        let secret = rt
            .secrets
            .get_tenant_secret(tenant, secrets::WEBHOOK)
            .await
            .map_err(|e| JobError::Transient(format!("webhook secret: {e}")))?
            .ok_or_else(|| JobError::Permanent("the tenant has no Tactical webhook secret to forward with".into()))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(JobError::transient)?;
        let resp = http
            .post(&url)
            .header("content-type", "application/json")
            .header("X-Alga-Webhook-Secret", secret.expose_secret())
            .body(body)
            .send()
            .await
            .map_err(|e| JobError::Transient(format!("AlgaPSA's webhook could not be reached: {}", e.without_url())))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(JobError::Transient(format!("AlgaPSA's webhook answered {}", status.as_u16())));
        }
        rt.db
            .execute(
                &format!(
                    "UPDATE {} SET outcome = 'forwarded' WHERE delivery_id = {}",
                    p.t("webhook_deliveries"),
                    p.text(1)
                ),
                &[&args.delivery_id],
            )
            .await?;
        Ok(JobOutcome::default().count("forwarded", 1))
    }
}
