//! Tactical RMM job kinds: `sync-devices` (with its internal units), `sync-agent`, `forward-alert`,
//! `backfill-alerts`, `ingest-software`, and its `sync-org`. Each one builds the client from the integration row and the tenant's
//! secrets, runs the provider function of `rmm_shared::providers::tactical`, and records the run
//! (`rmm_sync.sync_runs`, `rmm_integrations.last_sync_at`/`sync_error`) and its events.

pub mod alerts;
pub mod forward;

use futures::future::BoxFuture;
use rmm_shared::ingest::{IngestCounts, IngestRun};
use rmm_shared::integrations;
use rmm_shared::integrations::lifecycle::needs_reconnect;
use rmm_shared::providers::Provider;
use rmm_shared::providers::tactical::PROVIDER;
use rmm_shared::providers::tactical::alerts::backfill_alerts;
use rmm_shared::providers::tactical::client::TacticalClient;
use rmm_shared::providers::tactical::connect::{self, ConnectError};
use rmm_shared::providers::tactical::error::TacticalError;
use rmm_shared::providers::tactical::mapping::SiteIndex;
use rmm_shared::providers::tactical::settings::AlertMode;
use rmm_shared::providers::tactical::sync::{
    DeviceSyncMode, DeviceUnit, SyncError, ingest_software, refresh_agent, sync_device_unit, sync_organizations,
};
use rmm_shared::runs::{RunKind, RunOutcome};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::device_sync::{DeviceUnitArgs, SyncDevicesArgs, fan_out, incremental_since, recorded_or_dry, run_unit};
use crate::kind::{JobKind, JobOutcome, Policy, Scope};
use crate::org_sync::recorded_org_sync;
use crate::providers::ProviderJobs;
use crate::run::{NoArgs, counts_outcome, ids, provider_policy, recorded};
use crate::{JobCtx, JobError, Registry, Runtime};

/// Tactical RMM in the job runtime.
pub struct Tactical;

impl ProviderJobs for Tactical {
    fn provider(&self) -> Provider {
        PROVIDER
    }

    fn register(&self, r: &mut Registry) {
        r.register::<SyncDevices>();
        r.register::<SyncDevicesUnit>();
        r.register::<SyncAgent>();
        r.register::<forward::ForwardAlert>();
        r.register::<BackfillAlerts>();
        r.register::<IngestSoftware>();
    }

    fn sync_org<'a>(&'a self, ctx: &'a JobCtx) -> BoxFuture<'a, Result<JobOutcome, JobError>> {
        Box::pin(async move {
            let (tenant, integration) = ids(ctx)?;
            let client = client_for(ctx).await?;
            recorded_org_sync(ctx, sync_organizations(ctx.db(), tenant, integration, &client)).await
        })
    }

    fn device_sync_kind(&self) -> &'static str {
        SyncDevices::NAME
    }

    fn webhook_refresh_kind(&self) -> Option<&'static str> {
        Some(SyncAgent::NAME)
    }

    fn alert_poll_kind(&self) -> Option<&'static str> {
        Some(BackfillAlerts::NAME)
    }
}

impl From<TacticalError> for JobError {
    fn from(e: TacticalError) -> Self {
        if let Some(after) = e.retry_after() {
            return JobError::RetryAfter { after, message: e.user_message() };
        }
        if e.is_transient() { JobError::Transient(e.diagnostic()) } else { JobError::Permanent(e.user_message()) }
    }
}

impl From<SyncError> for JobError {
    fn from(e: SyncError) -> Self {
        match e {
            SyncError::Tactical(t) => t.into(),
            SyncError::Db(d) => JobError::Transient(d.to_string()),
        }
    }
}

/// Builds the Tactical client of the job's integration: instance URL from the row (else the
/// secret), auth mode from `settings.auth_mode` (default `api_key`), credentials from the tenant
/// secrets. A Knox token obtained during the job is written back to `tacticalrmm_knox_token`.
pub async fn client_for(ctx: &JobCtx) -> Result<TacticalClient, JobError> {
    let (tenant, integration) = ids(ctx)?;
    build_client(ctx.runtime(), tenant, integration).await
}

/// [`client_for`] without a job. Its calls are counted for the tenant in the runtime's call log.
pub async fn build_client(rt: &Runtime, tenant: Uuid, integration: Uuid) -> Result<TacticalClient, JobError> {
    let config = integrations::config(&rt.db, tenant, integration).await?;
    Ok(connect::client(&rt.secrets, tenant, config, rt.calls.counter(Some(tenant))).await?)
}

impl From<ConnectError> for JobError {
    fn from(e: ConnectError) -> Self {
        match e {
            ConnectError::Tactical(t) => t.into(),
            ConnectError::Secret { .. } => JobError::Transient(e.to_string()),
            ConnectError::NoIntegration => JobError::Permanent(e.to_string()),
        }
    }
}

/// `sync-devices`: the agents of every mapped Tactical client through the ingestion pipeline.
/// Split into one `sync-devices-unit` job per mapped client, which every worker process may run;
/// this job plans the units, waits for them and records the run. A crashed sync resumes with the
/// units that had finished (see [`crate::units`]).
pub struct SyncDevices;

impl JobKind for SyncDevices {
    const NAME: &'static str = "sync-devices";
    const SCOPE: Scope = Scope::Integration;
    const PROVIDERS: &'static [Provider] = &[PROVIDER];
    const DRY_RUN: bool = true;
    type Args = SyncDevicesArgs;

    fn policy() -> Policy {
        Policy { concurrency: Some(2), ..provider_policy(3600) }
    }

    async fn run(ctx: JobCtx, args: SyncDevicesArgs) -> Result<JobOutcome, JobError> {
        let since = incremental_since(&ctx, &args).await?;
        // Never synced: the first incremental run is a full one.
        let (sync_type, run_kind) = match since {
            None => ("full", RunKind::Full),
            Some(_) => ("incremental", RunKind::Incremental),
        };
        recorded_or_dry(&ctx, &args, sync_type, run_kind, async |run| {
            fan_out(&ctx, SyncDevicesUnit::NAME, "Tactical client", since, run).await
        })
        .await
    }
}

/// `sync-devices-unit` (internal): the agents of one mapped Tactical client, page by page.
pub struct SyncDevicesUnit;

impl JobKind for SyncDevicesUnit {
    const NAME: &'static str = "sync-devices-unit";
    const SCOPE: Scope = Scope::Integration;
    const PROVIDERS: &'static [Provider] = &[PROVIDER];
    const INTERNAL: bool = true;
    type Args = DeviceUnitArgs;

    fn policy() -> Policy {
        Policy { listen: true, ..provider_policy(1800) }
    }

    async fn run(ctx: JobCtx, args: DeviceUnitArgs) -> Result<JobOutcome, JobError> {
        let (tenant, integration) = ids(&ctx)?;
        run_unit(&ctx, &args, async |run| {
            let client = client_for(&ctx).await?;
            let sites = SiteIndex::new(client.list_sites().await?);
            let mode = match args.since {
                Some(since) => DeviceSyncMode::Incremental { since },
                None => DeviceSyncMode::Full,
            };
            let unit = DeviceUnit { scope: args.scope.clone(), client_id: args.client_id };
            Ok(sync_device_unit(ctx.db(), tenant, run, integration, &client, &sites, &unit, mode).await?)
        })
        .await
    }
}

/// Arguments of `sync-agent`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncAgentArgs {
    /// Tactical's `agent_id` (the long string id).
    pub agent_id: String,
}

/// `sync-agent`: one agent refreshed from Tactical (webhooks enqueue it).
pub struct SyncAgent;

impl JobKind for SyncAgent {
    const NAME: &'static str = "sync-agent";
    const SCOPE: Scope = Scope::Integration;
    const PROVIDERS: &'static [Provider] = &[PROVIDER];
    type Args = SyncAgentArgs;

    fn policy() -> Policy {
        Policy { priority: 5, listen: true, ..provider_policy(120) }
    }

    async fn run(ctx: JobCtx, args: SyncAgentArgs) -> Result<JobOutcome, JobError> {
        let (tenant, integration) = ids(&ctx)?;
        let agent_id = args.agent_id.trim();
        if agent_id.is_empty() {
            return Err(JobError::Permanent("agent_id is required".into()));
        }
        // Deliveries arriving from now on start another refresh instead of joining this one.
        crate::webhooks::release_agent(ctx.runtime(), tenant, integration, agent_id, ctx.job_id()).await?;
        // Alerts first: they are recorded (or forwarded) even when Tactical cannot be reached for
        // the refresh.
        let config = integrations::config(ctx.db(), tenant, integration).await?;
        let no_settings = serde_json::Value::Object(Default::default());
        let settings = config.as_ref().map_or(&no_settings, |(_, s)| s);
        let must_reconnect = needs_reconnect(settings);
        let (mut alerts, mut alerts_other, mut forwarded) = (0, 0, 0);
        match AlertMode::from_settings(settings).map_err(JobError::Permanent)? {
            AlertMode::Record => {
                (alerts, alerts_other) =
                    alerts::record_pending_deliveries(ctx.runtime(), tenant, integration, agent_id).await?;
            }
            AlertMode::Forward { .. } => {
                forwarded = forward::forward_pending_deliveries(&ctx, tenant, integration, agent_id).await?;
            }
        }
        if must_reconnect {
            // The alerts are in; Tactical is not called until the integration is reconnected.
            let job = crate::reconnect::skipped(PROVIDER.slug())
                .count("alerts_recorded", alerts)
                .count("alerts_skipped_or_resolved", alerts_other);
            return Ok(if forwarded > 0 { job.count("alerts_forwarding", forwarded) } else { job });
        }
        let calls = ctx.runtime().calls.counter(Some(tenant));
        let client = connect::client(&ctx.runtime().secrets, tenant, config, calls).await?;
        let run = IngestRun::recorded(None, Some(ctx.job_id()));
        let outcome = refresh_agent(ctx.db(), tenant, &run, integration, &client, agent_id).await?;
        let mut counts = IngestCounts::default();
        counts.record(outcome.action);
        let mut job =
            counts_outcome(&counts).count("alerts_recorded", alerts).count("alerts_skipped_or_resolved", alerts_other);
        if forwarded > 0 {
            job = job.count("alerts_forwarding", forwarded);
        }
        job.detail = serde_json::json!({
            "agent_id": agent_id,
            "action": outcome.action,
            "asset_id": outcome.asset_id,
            "error": outcome.error,
        });
        Ok(job)
    }
}

/// `backfill-alerts`: Tactical's active alerts recorded; polled alerts gone remotely resolved.
pub struct BackfillAlerts;

impl JobKind for BackfillAlerts {
    const NAME: &'static str = "backfill-alerts";
    const SCOPE: Scope = Scope::Integration;
    const PROVIDERS: &'static [Provider] = &[PROVIDER];
    type Args = NoArgs;

    fn policy() -> Policy {
        provider_policy(600)
    }

    async fn run(ctx: JobCtx, _args: NoArgs) -> Result<JobOutcome, JobError> {
        let (tenant, integration) = ids(&ctx)?;
        let client = client_for(&ctx).await?;
        recorded(&ctx, "alerts", RunKind::Other, async {
            let r = backfill_alerts(ctx.db(), tenant, integration, &client).await?;
            let counts = IngestCounts {
                processed: r.items_processed,
                created: r.items_created,
                updated: r.items_updated,
                failed: r.items_failed,
                ..Default::default()
            };
            Ok((RunOutcome { counts, errors: r.errors, cursor: None }, counts_outcome(&counts)))
        })
        .await
    }
}

/// `ingest-software`: `GET /software/` → catalog and per-asset software.
pub struct IngestSoftware;

impl JobKind for IngestSoftware {
    const NAME: &'static str = "ingest-software";
    const SCOPE: Scope = Scope::Integration;
    const PROVIDERS: &'static [Provider] = &[PROVIDER];
    type Args = NoArgs;

    fn policy() -> Policy {
        Policy { concurrency: Some(1), ..provider_policy(1800) }
    }

    async fn run(ctx: JobCtx, _args: NoArgs) -> Result<JobOutcome, JobError> {
        let (tenant, _) = ids(&ctx)?;
        let client = client_for(&ctx).await?;
        recorded(&ctx, "software", RunKind::Other, async {
            let r = ingest_software(ctx.db(), tenant, &client).await?;
            let counts = IngestCounts {
                processed: r.items_processed,
                created: r.items_created,
                updated: r.items_updated,
                failed: r.items_failed,
                ..Default::default()
            };
            let job = counts_outcome(&counts).count("agents_unmapped", r.agents_unmapped);
            Ok((RunOutcome { counts, errors: r.errors, cursor: None }, job))
        })
        .await
    }
}
