//! NinjaOne job kinds: `sync-org` (organisations → organisation mappings),
//! `ninjaone-sync-devices` (fanned out as one internal `ninjaone-sync-devices-unit` per mapped
//! organisation). Each builds the client from the integration row and the tenant's secrets, runs
//! the provider function of `rmm_shared::providers::ninjaone`, and records the run.
//!
//! An integration whose refresh token NinjaOne refused (`settings.tokenLifecycle.status =
//! reconnect_required`) is not called: its jobs end at once, skipped with that reason.

use std::sync::Mutex;

use futures::future::BoxFuture;
use rmm_shared::integrations;
use rmm_shared::providers::Provider;
use rmm_shared::providers::ninjaone::PROVIDER;
use rmm_shared::providers::ninjaone::client::NinjaClient;
use rmm_shared::providers::ninjaone::connect::{self, ConnectError};
use rmm_shared::providers::ninjaone::error::NinjaError;
use rmm_shared::providers::ninjaone::sync::{
    DeviceSyncMode, ReadCounts, SyncError, sync_device_unit, sync_organizations,
};
use rmm_shared::providers::ninjaone::token::needs_reconnect;
use rmm_shared::runs::RunKind;
use serde_json::json;
use uuid::Uuid;

use crate::device_sync::{DeviceUnitArgs, SyncDevicesArgs, fan_out, incremental_since, run_unit};
use crate::kind::{JobKind, JobOutcome, Policy, Scope};
use crate::org_sync::recorded_org_sync;
use crate::providers::ProviderJobs;
use crate::run::{ids, provider_policy, recorded};
use crate::{JobCtx, JobError, Registry, Runtime};

/// NinjaOne in the job runtime.
pub struct NinjaOne;

impl ProviderJobs for NinjaOne {
    fn provider(&self) -> Provider {
        PROVIDER
    }

    fn register(&self, r: &mut Registry) {
        r.register::<SyncDevices>();
        r.register::<SyncDevicesUnit>();
    }

    fn sync_org<'a>(&'a self, ctx: &'a JobCtx) -> BoxFuture<'a, Result<JobOutcome, JobError>> {
        Box::pin(async move {
            let (tenant, integration) = ids(ctx)?;
            let client = match client_for(ctx).await? {
                Ok(c) => c,
                Err(skipped) => return Ok(skipped),
            };
            recorded_org_sync(ctx, sync_organizations(ctx.db(), tenant, integration, &client)).await
        })
    }

    fn device_sync_kind(&self) -> &'static str {
        SyncDevices::NAME
    }
}

impl From<NinjaError> for JobError {
    fn from(e: NinjaError) -> Self {
        if let Some(after) = e.retry_after() {
            return JobError::RetryAfter { after, message: e.to_string() };
        }
        if e.is_transient() { JobError::Transient(e.diagnostic()) } else { JobError::Permanent(e.to_string()) }
    }
}

impl From<SyncError> for JobError {
    fn from(e: SyncError) -> Self {
        match e {
            SyncError::Ninja(n) => n.into(),
            SyncError::Db(d) => JobError::Transient(d.to_string()),
        }
    }
}

impl From<ConnectError> for JobError {
    fn from(e: ConnectError) -> Self {
        match e {
            ConnectError::Ninja(n) => n.into(),
            ConnectError::Secret { .. } => JobError::Transient(e.to_string()),
            ConnectError::NoIntegration => JobError::Permanent(e.to_string()),
        }
    }
}

/// The outcome of a job skipped because the integration must be reconnected.
pub fn skipped_reconnect_required() -> JobOutcome {
    let mut o = JobOutcome::default().count("skipped_reconnect_required", 1);
    o.detail = json!({
        "skipped": "reconnect_required",
        "reason": NinjaError::ReconnectRequired.to_string(),
    });
    o
}

/// The client of an integration (see [`connect::client`]), or the skipped outcome when its
/// refresh token was refused. Its calls are counted for the tenant in the runtime's call log.
pub async fn build_client(
    rt: &Runtime,
    tenant: Uuid,
    integration: Uuid,
) -> Result<Result<NinjaClient, JobOutcome>, JobError> {
    let config = integrations::config(&rt.db, tenant, integration).await?;
    if config.as_ref().is_some_and(|(_, s)| needs_reconnect(s)) {
        return Ok(Err(skipped_reconnect_required()));
    }
    let calls = rt.calls.counter(Some(tenant));
    match connect::client(&rt.db, &rt.secrets, tenant, integration, config, &rt.settings.upstream, calls).await {
        Ok(c) => Ok(Ok(c)),
        Err(ConnectError::Ninja(NinjaError::ReconnectRequired)) => Ok(Err(skipped_reconnect_required())),
        Err(e) => Err(e.into()),
    }
}

async fn client_for(ctx: &JobCtx) -> Result<Result<NinjaClient, JobOutcome>, JobError> {
    let (tenant, integration) = ids(ctx)?;
    build_client(ctx.runtime(), tenant, integration).await
}

/// `ninjaone-sync-devices`: the devices of every mapped NinjaOne organisation through the
/// ingestion pipeline, one `ninjaone-sync-devices-unit` job per organisation (resumable).
/// Incremental: NinjaOne filters by organisation (`df=org = <id>`); the `lastContact` window is
/// applied on our side (NinjaOne's device filter has no such predicate).
pub struct SyncDevices;

impl JobKind for SyncDevices {
    const NAME: &'static str = "ninjaone-sync-devices";
    const SCOPE: Scope = Scope::Integration;
    const PROVIDERS: &'static [Provider] = &[PROVIDER];
    type Args = SyncDevicesArgs;

    fn policy() -> Policy {
        Policy { concurrency: Some(2), ..provider_policy(3600) }
    }

    async fn run(ctx: JobCtx, args: SyncDevicesArgs) -> Result<JobOutcome, JobError> {
        let (tenant, integration) = ids(&ctx)?;
        let config = integrations::config(ctx.db(), tenant, integration).await?;
        if config.as_ref().is_some_and(|(_, s)| needs_reconnect(s)) {
            return Ok(skipped_reconnect_required());
        }
        let since = incremental_since(&ctx, &args).await?;
        let (sync_type, run_kind) = match since {
            None => ("full", RunKind::Full),
            Some(_) => ("incremental", RunKind::Incremental),
        };
        let mut job =
            recorded(&ctx, sync_type, run_kind, fan_out(&ctx, SyncDevicesUnit::NAME, "NinjaOne organisation", since))
                .await?;
        job.detail = json!({
            "mode": sync_type,
            "since": since,
            "filter": match since {
                None => json!({ "server": "df=org = <organisation id>", "tombstones": "after each organisation's complete pass" }),
                Some(s) => json!({
                    "server": "df=org = <organisation id>",
                    "client": format!("lastContact >= {} (NinjaOne's device filter has no last-contact predicate)", s.to_rfc3339()),
                }),
            },
        });
        Ok(job)
    }
}

/// `ninjaone-sync-devices-unit` (internal): the devices of one mapped NinjaOne organisation.
pub struct SyncDevicesUnit;

impl JobKind for SyncDevicesUnit {
    const NAME: &'static str = "ninjaone-sync-devices-unit";
    const SCOPE: Scope = Scope::Integration;
    const PROVIDERS: &'static [Provider] = &[PROVIDER];
    const INTERNAL: bool = true;
    type Args = DeviceUnitArgs;

    fn policy() -> Policy {
        Policy { listen: true, ..provider_policy(1800) }
    }

    async fn run(ctx: JobCtx, args: DeviceUnitArgs) -> Result<JobOutcome, JobError> {
        let (tenant, integration) = ids(&ctx)?;
        let read = Mutex::new(ReadCounts::default());
        let outcome = run_unit(&ctx, &args, || async {
            let client = match client_for(&ctx).await? {
                Ok(c) => c,
                Err(_) => return Err(JobError::from(NinjaError::ReconnectRequired)),
            };
            let mode = match args.since {
                Some(since) => DeviceSyncMode::Incremental { since },
                None => DeviceSyncMode::Full,
            };
            let (report, counts) = sync_device_unit(ctx.db(), tenant, integration, &client, &args.scope, mode).await?;
            *read.lock().unwrap_or_else(|e| e.into_inner()) = counts;
            Ok(report)
        })
        .await;
        let read = *read.lock().unwrap_or_else(|e| e.into_inner());
        outcome.map(|o| o.count("listed", read.listed).count("filtered_out", read.filtered_out))
    }
}
