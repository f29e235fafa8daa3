//! NinjaOne job kinds: `sync-org` (organisations → organisation mappings),
//! `ninjaone-sync-devices` (fanned out as one internal `ninjaone-sync-devices-unit` per mapped
//! organisation), `ninjaone-sync-device` (one device and its webhook deliveries),
//! `ninjaone-backfill-alerts`, `ninjaone-register-webhook`, `ninjaone-ingest-software` and
//! `ninjaone-sync-patches`. Each builds the client from the integration row and the tenant's secrets, runs
//! the provider function of `rmm_shared::providers::ninjaone`, and records the run.
//!
//! An integration whose refresh token NinjaOne refused (`settings.tokenLifecycle.status =
//! reconnect_required`) is not called: the job gate skips its scheduled and admin jobs (as for every
//! provider, [`crate::reconnect`]); a refusal met while a job runs ends that job's later calls with
//! the same skipped outcome.

pub mod alerts;

use std::sync::Mutex;

use futures::future::BoxFuture;
use rmm_shared::ingest::{IngestCounts, IngestRun};
use rmm_shared::integrations;
use rmm_shared::providers::Provider;
use rmm_shared::providers::ninjaone::PROVIDER;
use rmm_shared::providers::ninjaone::alerts::backfill_alerts;
use rmm_shared::providers::ninjaone::client::NinjaClient;
use rmm_shared::providers::ninjaone::connect::{self, ConnectError};
use rmm_shared::providers::ninjaone::error::NinjaError;
use rmm_shared::providers::ninjaone::integration::webhook_registration;
use rmm_shared::providers::ninjaone::patches::{PatchSource, sync_patches};
use rmm_shared::providers::ninjaone::sync::{
    DeviceSyncMode, ReadCounts, SyncError, refresh_device, sync_device_unit, sync_organizations,
};
use rmm_shared::providers::ninjaone::token::needs_reconnect;
use rmm_shared::runs::{RunKind, RunOutcome};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::device_sync::{DeviceUnitArgs, SyncDevicesArgs, fan_out, incremental_since, recorded_or_dry, run_unit};
use crate::kind::{JobKind, JobOutcome, Policy, Scope};
use crate::org_sync::recorded_org_sync;
use crate::providers::ProviderJobs;
use crate::run::{NoArgs, counts_outcome, ids, provider_policy, recorded};
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
        r.register::<SyncDevice>();
        r.register::<BackfillAlerts>();
        r.register::<RegisterWebhook>();
        r.register::<IngestSoftware>();
        r.register::<SyncPatches>();
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

    fn webhook_refresh_kind(&self) -> Option<&'static str> {
        Some(SyncDevice::NAME)
    }

    fn alert_poll_kind(&self) -> Option<&'static str> {
        Some(BackfillAlerts::NAME)
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
fn skipped_reconnect_required() -> JobOutcome {
    let mut o = crate::reconnect::skipped(PROVIDER.slug());
    o.detail["reason"] = json!(NinjaError::ReconnectRequired.to_string());
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
    const DRY_RUN: bool = true;
    type Args = SyncDevicesArgs;

    fn policy() -> Policy {
        Policy { concurrency: Some(2), ..provider_policy(3600) }
    }

    async fn run(ctx: JobCtx, args: SyncDevicesArgs) -> Result<JobOutcome, JobError> {
        let since = incremental_since(&ctx, &args).await?;
        let (sync_type, run_kind) = match since {
            None => ("full", RunKind::Full),
            Some(_) => ("incremental", RunKind::Incremental),
        };
        let job = recorded_or_dry(&ctx, &args, sync_type, run_kind, async |run| {
            fan_out(&ctx, SyncDevicesUnit::NAME, "NinjaOne organisation", since, run).await
        })
        .await?;
        let filter = match since {
            None => {
                json!({ "server": "df=org = <organisation id>", "tombstones": "after each organisation's complete pass" })
            }
            Some(s) => json!({
                "server": "df=org = <organisation id>",
                "client": format!("lastContact >= {} (NinjaOne's device filter has no last-contact predicate)", s.to_rfc3339()),
            }),
        };
        Ok(job.with_detail("mode", json!(sync_type)).with_detail("since", json!(since)).with_detail("filter", filter))
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
        let outcome = run_unit(&ctx, &args, async |run| {
            let client = match client_for(&ctx).await? {
                Ok(c) => c,
                Err(_) => return Err(JobError::from(NinjaError::ReconnectRequired)),
            };
            let mode = match args.since {
                Some(since) => DeviceSyncMode::Incremental { since },
                None => DeviceSyncMode::Full,
            };
            let (report, counts) =
                sync_device_unit(ctx.db(), tenant, run, integration, &client, &args.scope, mode).await?;
            *read.lock().unwrap_or_else(|e| e.into_inner()) = counts;
            Ok(report)
        })
        .await;
        let read = *read.lock().unwrap_or_else(|e| e.into_inner());
        outcome.map(|o| o.count("listed", read.listed).count("filtered_out", read.filtered_out))
    }
}

/// Arguments of `ninjaone-sync-device` (a webhook enqueues it with the delivery's `deviceId`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncDeviceArgs {
    /// NinjaOne's device id.
    pub agent_id: String,
}

/// `ninjaone-sync-device`: the device's stored webhook deliveries (conditions recorded as alerts),
/// then the device refreshed from NinjaOne (`GET /v2/device/{id}`; a device NinjaOne no longer has
/// is tombstoned).
pub struct SyncDevice;

impl JobKind for SyncDevice {
    const NAME: &'static str = "ninjaone-sync-device";
    const SCOPE: Scope = Scope::Integration;
    const PROVIDERS: &'static [Provider] = &[PROVIDER];
    type Args = SyncDeviceArgs;

    fn policy() -> Policy {
        Policy { priority: 5, listen: true, ..provider_policy(120) }
    }

    async fn run(ctx: JobCtx, args: SyncDeviceArgs) -> Result<JobOutcome, JobError> {
        let (tenant, integration) = ids(&ctx)?;
        let device_id = args.agent_id.trim();
        if device_id.is_empty() {
            return Err(JobError::Permanent("agent_id (the NinjaOne device id) is required".into()));
        }
        // Deliveries arriving from now on start another refresh instead of joining this one.
        crate::webhooks::release_agent(ctx.runtime(), tenant, integration, device_id, ctx.job_id()).await?;
        // Alerts first: recorded even when NinjaOne cannot be reached for the refresh.
        let deliveries = alerts::record_pending_deliveries(ctx.runtime(), tenant, integration, device_id).await?;
        let client = match client_for(&ctx).await? {
            Ok(c) => c,
            Err(skipped) => return Ok(skipped.count("alerts_recorded", deliveries.alerts_recorded)),
        };
        let run = IngestRun::recorded(None, Some(ctx.job_id()));
        let outcome = refresh_device(ctx.db(), tenant, &run, integration, &client, device_id).await?;
        let mut counts = IngestCounts::default();
        counts.record(outcome.action);
        let mut job = counts_outcome(&counts)
            .count("alerts_recorded", deliveries.alerts_recorded)
            .count("deliveries_other", deliveries.other);
        job.detail = json!({
            "device_id": device_id,
            "action": outcome.action,
            "asset_id": outcome.asset_id,
            "error": outcome.error,
            "removal_event": deliveries.removal,
        });
        Ok(job)
    }
}

/// Arguments of `ninjaone-backfill-alerts`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackfillArgs {
    /// Alert uids to reset in NinjaOne first (`POST /v2/alert/{uid}/reset`); nothing is reset in
    /// NinjaOne unless an admin lists it here.
    #[serde(default)]
    pub reset: Vec<String>,
}

/// `ninjaone-backfill-alerts`: NinjaOne's active alerts recorded; polled alerts gone remotely
/// resolved.
pub struct BackfillAlerts;

impl JobKind for BackfillAlerts {
    const NAME: &'static str = "ninjaone-backfill-alerts";
    const SCOPE: Scope = Scope::Integration;
    const PROVIDERS: &'static [Provider] = &[PROVIDER];
    type Args = BackfillArgs;

    fn policy() -> Policy {
        provider_policy(600)
    }

    async fn run(ctx: JobCtx, args: BackfillArgs) -> Result<JobOutcome, JobError> {
        let (tenant, integration) = ids(&ctx)?;
        let client = match client_for(&ctx).await? {
            Ok(c) => c,
            Err(skipped) => return Ok(skipped),
        };
        recorded(&ctx, "alerts", RunKind::Other, async {
            let r = backfill_alerts(ctx.db(), tenant, integration, &client, &args.reset).await?;
            let counts = IngestCounts {
                processed: r.items_processed,
                created: r.items_created,
                updated: r.items_updated,
                failed: r.items_failed,
                ..Default::default()
            };
            let job = counts_outcome(&counts).count("reset_in_ninjaone", r.reset_in_ninjaone);
            Ok((RunOutcome { counts, errors: r.errors, cursor: None }, job))
        })
        .await
    }
}

/// `ninjaone-register-webhook`: `PUT /v2/webhook` with this service's webhook URL for the tenant
/// and its webhook secret header (made on first use), as AlgaPSA registers it.
pub struct RegisterWebhook;

impl JobKind for RegisterWebhook {
    const NAME: &'static str = "ninjaone-register-webhook";
    const SCOPE: Scope = Scope::Integration;
    const PROVIDERS: &'static [Provider] = &[PROVIDER];
    type Args = NoArgs;

    fn policy() -> Policy {
        provider_policy(120)
    }

    async fn run(ctx: JobCtx, _args: NoArgs) -> Result<JobOutcome, JobError> {
        let (tenant, _) = ids(&ctx)?;
        let client = match client_for(&ctx).await? {
            Ok(c) => c,
            Err(skipped) => return Ok(skipped),
        };
        let rt = ctx.runtime();
        let config = webhook_registration(&rt.secrets, tenant, &rt.settings.http)
            .await
            .map_err(|e| JobError::Transient(e.public_message()))?;
        client.register_webhook(&config).await?;
        let mut job = JobOutcome::default().count("registered", 1);
        job.detail = json!({ "url": config["url"], "header": "X-Alga-Webhook-Secret" });
        Ok(job)
    }
}

/// `ninjaone-ingest-software`: the fleet-wide software report (`GET /v2/queries/software`, cursor
/// paging) → software catalog and per-asset software.
pub struct IngestSoftware;

impl JobKind for IngestSoftware {
    const NAME: &'static str = "ninjaone-ingest-software";
    const SCOPE: Scope = Scope::Integration;
    const PROVIDERS: &'static [Provider] = &[PROVIDER];
    type Args = NoArgs;

    fn policy() -> Policy {
        Policy { concurrency: Some(1), ..provider_policy(1800) }
    }

    async fn run(ctx: JobCtx, _args: NoArgs) -> Result<JobOutcome, JobError> {
        let (tenant, _) = ids(&ctx)?;
        let client = match client_for(&ctx).await? {
            Ok(c) => c,
            Err(skipped) => return Ok(skipped),
        };
        recorded(&ctx, "software", RunKind::Other, async {
            let r = rmm_shared::providers::ninjaone::software::ingest_software(ctx.db(), tenant, &client).await?;
            let counts = IngestCounts {
                processed: r.items_processed,
                created: r.items_created,
                updated: r.items_updated,
                failed: r.items_failed,
                ..Default::default()
            };
            let job = counts_outcome(&counts).count("devices_unmapped", r.devices_unmapped).count("pages", r.pages);
            Ok((RunOutcome { counts, errors: r.errors, cursor: None }, job))
        })
        .await
    }
}

/// Arguments of `ninjaone-sync-patches`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncPatchesArgs {
    /// `reports` (default): the fleet-wide query reports; `per_device`: two calls per device.
    #[serde(default)]
    pub source: PatchSource,
}

/// `ninjaone-sync-patches`: pending OS and software patch counts (and failed ones) of every mapped
/// device on its extension row, from the fleet-wide query reports `GET /v2/queries/os-patches` and
/// `/v2/queries/software-patches` (or, asked with `source: per_device`, one device at a time).
pub struct SyncPatches;

impl JobKind for SyncPatches {
    const NAME: &'static str = "ninjaone-sync-patches";
    const SCOPE: Scope = Scope::Integration;
    const PROVIDERS: &'static [Provider] = &[PROVIDER];
    type Args = SyncPatchesArgs;

    fn policy() -> Policy {
        Policy { concurrency: Some(1), ..provider_policy(1800) }
    }

    async fn run(ctx: JobCtx, args: SyncPatchesArgs) -> Result<JobOutcome, JobError> {
        let (tenant, _) = ids(&ctx)?;
        let client = match client_for(&ctx).await? {
            Ok(c) => c,
            Err(skipped) => return Ok(skipped),
        };
        recorded(&ctx, "patches", RunKind::Other, async {
            let r = sync_patches(ctx.db(), tenant, &client, args.source).await?;
            let counts = IngestCounts { processed: r.items_processed, updated: r.items_updated, ..Default::default() };
            let mut job = counts_outcome(&counts)
                .count("devices_with_pending", r.devices_with_pending)
                .count("devices_unmapped", r.devices_unmapped)
                .count("calls", r.calls);
            job.detail = json!({ "source": r.source });
            Ok((RunOutcome { counts, errors: Vec::new(), cursor: None }, job))
        })
        .await
    }
}
