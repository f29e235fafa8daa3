//! Level job kinds: `levelio-sync-devices` (one `levelio-sync-devices-unit` per top-level group
//! holding a mapped group), `levelio-sync-device` (the refresh a webhook delivery enqueues, with
//! its alerts), `levelio-backfill-alerts`, and its `sync-org` (the group tree → organisation
//! mappings). Each builds the client from the integration row and the tenant's API key, runs the
//! function of `rmm_shared::providers::levelio`, and records the run and its events.

pub mod alerts;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use rmm_shared::ingest::{IngestCounts, IngestRun};
use rmm_shared::providers::levelio::PROVIDER;
use rmm_shared::providers::levelio::alerts::backfill_alerts;
use rmm_shared::providers::levelio::client::LevelClient;
use rmm_shared::providers::levelio::connect::{self, ConnectError};
use rmm_shared::providers::levelio::error::LevelError;
use rmm_shared::providers::levelio::mapping::{GroupTree, PendingUpdates};
use rmm_shared::providers::levelio::sync::{
    DeviceSyncMode, SyncError, UnitInput, known_group, mapped_groups, pending_updates, plan_units, refresh_device,
    sync_groups, sync_root,
};
use rmm_shared::providers::{MappedScope, Provider};
use rmm_shared::runs::{RunKind, RunOutcome};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::device_sync::{DeviceUnitArgs, SyncDevicesArgs, fan_out_over, incremental_since, recorded_or_dry, run_unit};
use crate::kind::{JobKind, JobOutcome, Policy, Scope};
use crate::org_sync::recorded_org_sync;
use crate::providers::ProviderJobs;
use crate::run::{counts_outcome, ids, provider_policy, recorded};
use crate::{JobCtx, JobError, Registry, Runtime};

/// Level in the job runtime.
pub struct Level;

impl ProviderJobs for Level {
    fn provider(&self) -> Provider {
        PROVIDER
    }

    fn register(&self, r: &mut Registry) {
        r.register::<SyncDevices>();
        r.register::<SyncDevicesUnit>();
        r.register::<SyncDevice>();
        r.register::<BackfillAlerts>();
    }

    fn sync_org<'a>(&'a self, ctx: &'a JobCtx) -> BoxFuture<'a, Result<JobOutcome, JobError>> {
        Box::pin(async move {
            let (tenant, integration) = ids(ctx)?;
            let client = client_for(ctx).await?;
            recorded_org_sync(ctx, sync_groups(ctx.db(), tenant, integration, &client)).await
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

impl From<LevelError> for JobError {
    fn from(e: LevelError) -> Self {
        if let Some(after) = e.retry_after() {
            return JobError::RetryAfter { after, message: e.user_message() };
        }
        if e.is_transient() { JobError::Transient(e.diagnostic()) } else { JobError::Permanent(e.user_message()) }
    }
}

impl From<SyncError> for JobError {
    fn from(e: SyncError) -> Self {
        match e {
            SyncError::Level(l) => l.into(),
            SyncError::Db(d) => JobError::Transient(d.to_string()),
        }
    }
}

impl From<ConnectError> for JobError {
    fn from(e: ConnectError) -> Self {
        match e {
            ConnectError::Level(l) => l.into(),
            ConnectError::Secret { .. } => JobError::Transient(e.to_string()),
            ConnectError::NoIntegration => JobError::Permanent(e.to_string()),
        }
    }
}

/// The Level client of an integration (see [`connect::client`]); its calls are counted for the
/// tenant in the runtime's call log.
pub async fn build_client(rt: &Runtime, tenant: Uuid, integration: Uuid) -> Result<LevelClient, JobError> {
    let config = rmm_shared::integrations::config(&rt.db, tenant, integration).await?;
    Ok(connect::client(&rt.secrets, tenant, config, &rt.settings.upstream, rt.calls.counter(Some(tenant))).await?)
}

async fn client_for(ctx: &JobCtx) -> Result<LevelClient, JobError> {
    let (tenant, integration) = ids(ctx)?;
    build_client(ctx.runtime(), tenant, integration).await
}

/// What the summary of an incremental run says about it.
pub const INCREMENTAL_NOTE: &str =
    "Level has no modified-since filter: every device page was read and the last_seen_at window applied here";

/// `levelio-sync-devices`: the devices of every mapped Level group through the pipeline, as one
/// `levelio-sync-devices-unit` per top-level group holding a mapped group (any worker may run
/// them; a crashed sync resumes with the units that had finished). `{"mode": "incremental"}`
/// writes only devices seen since the last run (filtered here) and never tombstones.
pub struct SyncDevices;

impl JobKind for SyncDevices {
    const NAME: &'static str = "levelio-sync-devices";
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
        let (tenant, integration) = ids(&ctx)?;
        let plan = || async {
            let client = client_for(&ctx).await?;
            let roots = plan_units(ctx.db(), tenant, integration, &client).await?;
            Ok(roots.into_iter().map(|scope| MappedScope { scope, client_id: Uuid::nil() }).collect())
        };
        recorded_or_dry(&ctx, &args, sync_type, run_kind, async |run| {
            let (outcome, job) = fan_out_over(&ctx, SyncDevicesUnit::NAME, "Level group", since, run, plan).await?;
            match since {
                Some(_) => Ok((outcome, job.with_detail("incremental", serde_json::json!(INCREMENTAL_NOTE)))),
                None => Ok((outcome, job)),
            }
        })
        .await
    }
}

type UpdatesResult = Result<Arc<HashMap<String, PendingUpdates>>, String>;

/// The available updates of a sync, read once per process for all its units (Level's updates
/// listing has no group filter): keyed by the parent job, kept for an hour.
fn updates_cell(parent: &str) -> Arc<tokio::sync::OnceCell<UpdatesResult>> {
    type Cells = HashMap<String, (Instant, Arc<tokio::sync::OnceCell<UpdatesResult>>)>;
    static CELLS: Mutex<Option<Cells>> = Mutex::new(None);
    let mut guard = CELLS.lock().unwrap_or_else(|e| e.into_inner());
    let cells = guard.get_or_insert_with(HashMap::new);
    cells.retain(|_, (at, _)| at.elapsed() < Duration::from_secs(3600));
    cells.entry(parent.to_owned()).or_insert_with(|| (Instant::now(), Arc::default())).1.clone()
}

/// `levelio-sync-devices-unit` (internal): the devices below one top-level Level group.
pub struct SyncDevicesUnit;

impl JobKind for SyncDevicesUnit {
    const NAME: &'static str = "levelio-sync-devices-unit";
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
            let tree = GroupTree::new(&client.list_groups().await?);
            let mapped = mapped_groups(ctx.db(), tenant, integration).await?;
            let updates = updates_cell(&args.parent_job_id)
                .get_or_init(|| async { pending_updates(&client).await.map(Arc::new).map_err(|e| e.to_string()) })
                .await
                .clone();
            let mode = match args.since {
                Some(since) => DeviceSyncMode::Incremental { since },
                None => DeviceSyncMode::Full,
            };
            let input = UnitInput { tree: &tree, mapped: &mapped, pending: updates.as_deref().ok() };
            let mut report = sync_root(ctx.db(), tenant, run, integration, &client, &input, &args.scope, mode).await?;
            if let Err(e) = updates {
                report.errors.push(format!("Level updates could not be read; pending update counts left empty: {e}"));
            }
            Ok(report)
        })
        .await
    }
}

/// Arguments of `levelio-sync-device` (the webhook enqueues `{"agent_id": <device id>}`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncDeviceArgs {
    /// Level's device id.
    #[serde(alias = "device_id")]
    pub agent_id: String,
}

/// `levelio-sync-device`: the alerts of the device's stored webhook deliveries recorded, then the
/// device refreshed from Level.
pub struct SyncDevice;

impl JobKind for SyncDevice {
    const NAME: &'static str = "levelio-sync-device";
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
            return Err(JobError::Permanent("agent_id (the Level device id) is required".into()));
        }
        let rt = ctx.runtime();
        crate::webhooks::release_agent(rt, tenant, integration, device_id, ctx.job_id()).await?;
        let pending = crate::deliveries::pending(rt, tenant, integration, device_id).await?;
        // An integration that must be reconnected: the alerts are recorded, Level is not called.
        let reconnect = crate::reconnect::check(&ctx).await?;
        // The organisation of an alert: the body's group, else the group the device was synced
        // under, else Level's answer (the device read here is reused for the refresh).
        let mut client = None;
        let mut device = None;
        let mut organization = None;
        if pending.iter().any(|d| rmm_shared::providers::levelio::alerts::text(&d.body, "group_id").is_none()) {
            organization = known_group(ctx.db(), tenant, device_id).await?;
            if organization.is_none()
                && reconnect.is_none()
                && let Ok(c) = client_for(&ctx).await
            {
                if let Ok(Some(d)) = c.get_device(device_id).await {
                    organization = d.group_id.clone();
                    device = Some(d);
                }
                client = Some(c);
            }
        }
        let (recorded, other) =
            alerts::record_deliveries(rt, tenant, integration, device_id, pending, organization).await?;
        if let Some(skipped) = reconnect {
            return Ok(skipped.count("alerts_recorded", recorded).count("alerts_skipped_or_resolved", other));
        }
        let client = match client {
            Some(c) => c,
            None => client_for(&ctx).await?,
        };
        let run = IngestRun::recorded(None, Some(ctx.job_id()));
        let outcome = refresh_device(ctx.db(), tenant, &run, integration, &client, device_id, device).await?;
        let mut counts = IngestCounts::default();
        counts.record(outcome.action);
        let mut job =
            counts_outcome(&counts).count("alerts_recorded", recorded).count("alerts_skipped_or_resolved", other);
        job.detail = serde_json::json!({
            "device_id": device_id,
            "action": outcome.action,
            "asset_id": outcome.asset_id,
            "error": outcome.error,
        });
        Ok(job)
    }
}

/// Arguments of `levelio-backfill-alerts`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackfillArgs {
    /// Also resolve in Level the alerts still active there but resolved here. Off by default:
    /// the backfill then only reads Level.
    #[serde(default)]
    pub resolve_in_level: bool,
}

/// `levelio-backfill-alerts`: Level's active alerts recorded; polled alerts no longer active in
/// Level resolved here; with `resolve_in_level`, alerts resolved here resolved in Level.
pub struct BackfillAlerts;

impl JobKind for BackfillAlerts {
    const NAME: &'static str = "levelio-backfill-alerts";
    const SCOPE: Scope = Scope::Integration;
    const PROVIDERS: &'static [Provider] = &[PROVIDER];
    type Args = BackfillArgs;

    fn policy() -> Policy {
        provider_policy(600)
    }

    async fn run(ctx: JobCtx, args: BackfillArgs) -> Result<JobOutcome, JobError> {
        let (tenant, integration) = ids(&ctx)?;
        let client = client_for(&ctx).await?;
        recorded(&ctx, "alerts", RunKind::Other, async {
            let r = backfill_alerts(ctx.db(), tenant, integration, &client, args.resolve_in_level).await?;
            let counts = IngestCounts {
                processed: r.items_processed,
                created: r.items_created,
                updated: r.items_updated,
                failed: r.items_failed,
                ..Default::default()
            };
            let job = counts_outcome(&counts).count("resolved_in_level", r.resolved_in_level);
            Ok((RunOutcome { counts, errors: r.errors, cursor: None }, job))
        })
        .await
    }
}
