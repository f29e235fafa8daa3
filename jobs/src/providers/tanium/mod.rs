//! Tanium job kinds: `sync-org` for a Tanium integration (computer groups → organisation
//! mappings; run by [`crate::org_sync::SyncOrg`]), `tanium-full-sync` (endpoints →
//! the ingestion pipeline, criticality → asset facts) and `tanium-sync-endpoint` (one endpoint,
//! for an asset's refresh). They build the client from the integration row and the tenant's
//! secrets, and record the run like the Tactical jobs.

use chrono::Utc;
use rmm_shared::ingest::IngestRun;
use rmm_shared::providers::tanium::client::TaniumClient;
use rmm_shared::providers::tanium::error::TaniumError;
use rmm_shared::providers::tanium::sync::{SyncError, SyncMode, SyncOptions, sync_devices};
use rmm_shared::runs::{RunKind, RunOutcome};
use uuid::Uuid;

use futures::future::BoxFuture;
use rmm_shared::providers::Provider;

use crate::device_sync::{SyncDevicesArgs, incremental_since, recorded_or_dry, with_dry_run};
use crate::kind::{JobKind, JobOutcome, Policy, Scope};
use crate::org_sync::recorded_org_sync;
use crate::providers::ProviderJobs;
use crate::run::{counts_outcome, ids, provider_policy};
use crate::{JobCtx, JobError, Registry, Runtime};

/// Tanium in the job runtime.
pub struct Tanium;

impl ProviderJobs for Tanium {
    fn provider(&self) -> Provider {
        PROVIDER
    }

    fn register(&self, r: &mut Registry) {
        r.register::<TaniumFullSync>();
        r.register::<SyncEndpoint>();
    }

    fn sync_org<'a>(&'a self, ctx: &'a JobCtx) -> BoxFuture<'a, Result<JobOutcome, JobError>> {
        Box::pin(sync_scopes(ctx))
    }

    fn device_sync_kind(&self) -> &'static str {
        TaniumFullSync::NAME
    }

    fn device_refresh_kind(&self) -> Option<&'static str> {
        Some(SyncEndpoint::NAME)
    }
}

pub use rmm_shared::providers::tanium::PROVIDER;
use rmm_shared::providers::tanium::connect::{self, ConnectError};

impl From<TaniumError> for JobError {
    fn from(e: TaniumError) -> Self {
        if let Some(after) = e.retry_after() {
            return JobError::RetryAfter { after, message: e.to_string() };
        }
        if e.is_transient() { JobError::Transient(e.diagnostic()) } else { JobError::Permanent(e.to_string()) }
    }
}

impl From<SyncError> for JobError {
    fn from(e: SyncError) -> Self {
        match e {
            SyncError::Tanium(t) => t.into(),
            SyncError::Db(d) => JobError::Transient(d.to_string()),
        }
    }
}

impl From<ConnectError> for JobError {
    fn from(e: ConnectError) -> Self {
        match e {
            ConnectError::Tanium(t) => t.into(),
            ConnectError::Secret { .. } => JobError::Transient(e.to_string()),
            ConnectError::NoIntegration => JobError::Permanent(e.to_string()),
        }
    }
}

/// The client of a Tanium integration and its sync options (see [`connect::client`]); its calls
/// are counted for the tenant in the runtime's call log.
pub async fn build_client(
    rt: &Runtime,
    tenant: Uuid,
    integration: Uuid,
) -> Result<(TaniumClient, SyncOptions), JobError> {
    let config = rmm_shared::integrations::config(&rt.db, tenant, integration).await?;
    Ok(connect::client(&rt.secrets, tenant, config, &rt.settings.upstream, rt.calls.counter(Some(tenant))).await?)
}

async fn client_for(ctx: &JobCtx) -> Result<(TaniumClient, SyncOptions), JobError> {
    let (tenant, integration) = ids(ctx)?;
    build_client(ctx.runtime(), tenant, integration).await
}

/// `sync-org` of a Tanium integration: computer groups → organisation mappings.
async fn sync_scopes(ctx: &JobCtx) -> Result<JobOutcome, JobError> {
    let (tenant, integration) = ids(ctx)?;
    let (client, _) = client_for(ctx).await?;
    let sync = rmm_shared::providers::tanium::sync::sync_scopes(ctx.db(), tenant, integration, &client);
    recorded_org_sync(ctx, sync).await
}

/// `tanium-full-sync`: every mapped computer group with auto-sync on. `{"mode": "incremental"}`
/// reads only endpoints seen since the last run (and never tombstones).
pub struct TaniumFullSync;

impl JobKind for TaniumFullSync {
    const NAME: &'static str = "tanium-full-sync";
    const SCOPE: Scope = Scope::Integration;
    const PROVIDERS: &'static [Provider] = &[PROVIDER];
    const DRY_RUN: bool = true;
    type Args = SyncDevicesArgs;

    fn policy() -> Policy {
        Policy { concurrency: Some(2), ..provider_policy(3600) }
    }

    async fn run(ctx: JobCtx, args: SyncDevicesArgs) -> Result<JobOutcome, JobError> {
        let (tenant, integration) = ids(&ctx)?;
        let since = incremental_since(&ctx, &args).await?;
        let (sync_type, run_kind, mode) = match since {
            None => ("full", RunKind::Full, SyncMode::Full),
            Some(since) => ("incremental", RunKind::Incremental, SyncMode::Incremental { since }),
        };
        let (client, options) = client_for(&ctx).await?;
        let started = Utc::now();
        recorded_or_dry(&ctx, &args, sync_type, run_kind, async |run| {
            let run = run.ingest(ctx.job_id());
            let r = sync_devices(ctx.db(), tenant, &run, integration, &client, mode, options).await?;
            let outcome = RunOutcome { counts: r.counts, errors: r.errors.clone(), cursor: Some(started) };
            let mut job = counts_outcome(&r.counts)
                .count("placeholder_serials", r.counts.placeholder_serials)
                .count("groups", r.groups)
                .count("groups_failed", r.groups_failed)
                .count("duplicates_skipped", r.duplicates_skipped)
                .count("unchanged", r.unchanged)
                .count("facts", r.facts_written)
                .count("fallback_refreshed", r.fallback_refreshed);
            job.detail = serde_json::json!({
                "mode": sync_type,
                "delta": { "server": r.delta_server, "client": r.delta_client },
                "tombstone_pass": r.tombstone_pass,
            });
            Ok((outcome, with_dry_run(job, run.take_dry_run())))
        })
        .await
    }
}

/// Arguments of `tanium-sync-endpoint`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncEndpointArgs {
    /// The Tanium endpoint id.
    pub agent_id: String,
}

/// `tanium-sync-endpoint`: one endpoint refreshed from the Gateway under the computer group it was
/// synced under (an asset's refresh, `POST /api/v1/assets/{asset_id}/rmm/refresh`).
pub struct SyncEndpoint;

impl JobKind for SyncEndpoint {
    const NAME: &'static str = "tanium-sync-endpoint";
    const SCOPE: Scope = Scope::Integration;
    const PROVIDERS: &'static [Provider] = &[PROVIDER];
    type Args = SyncEndpointArgs;

    fn policy() -> Policy {
        Policy { priority: 5, listen: true, ..provider_policy(120) }
    }

    async fn run(ctx: JobCtx, args: SyncEndpointArgs) -> Result<JobOutcome, JobError> {
        let (tenant, integration) = ids(&ctx)?;
        let endpoint = args.agent_id.trim();
        if endpoint.is_empty() {
            return Err(JobError::Permanent("agent_id (the Tanium endpoint id) is required".into()));
        }
        let (client, _) = client_for(&ctx).await?;
        let run = IngestRun::recorded(None, Some(ctx.job_id()));
        let outcome = rmm_shared::providers::tanium::sync::refresh_endpoint(
            ctx.db(),
            tenant,
            &run,
            integration,
            &client,
            endpoint,
        )
        .await?;
        let mut counts = rmm_shared::ingest::IngestCounts::default();
        counts.record(outcome.action);
        let mut job = counts_outcome(&counts);
        job.detail = serde_json::json!({
            "device_id": endpoint,
            "action": outcome.action,
            "asset_id": outcome.asset_id,
            "error": outcome.error,
        });
        Ok(job)
    }
}
