//! Tactical RMM job kinds: `sync-org`, `sync-devices`, `sync-agent`, `backfill-alerts` and
//! `ingest-software`. Each one builds the client from the integration row and the tenant's
//! secrets, runs the provider function of `rmm_shared::providers::tactical`, and records the run
//! (`rmm_sync.sync_runs`, `rmm_integrations.last_sync_at`/`sync_error`) and its events.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use rmm_shared::db::sql::ColType;
use rmm_shared::events::{Event, EventType};
use rmm_shared::http::HttpClient;
use rmm_shared::ingest::IngestCounts;
use rmm_shared::providers::Provider;
use rmm_shared::providers::tactical::alerts::backfill_alerts;
use rmm_shared::providers::tactical::client::{TacticalAuth, TacticalClient, TacticalConfig, TokenSink};
use rmm_shared::providers::tactical::error::TacticalError;
use rmm_shared::providers::tactical::mapping::SiteIndex;
use rmm_shared::providers::tactical::sync::{
    DeviceSyncMode, DeviceSyncReport, DeviceUnit, SyncError, ingest_software, plan_device_units, refresh_agent,
    sync_device_unit, sync_organizations,
};
use rmm_shared::providers::tactical::{PROVIDER, secrets};
use rmm_shared::runs::{Run, RunKind, RunOutcome};
use rmm_shared::secrets::SecretStore;
use rmm_shared::upstream_calls::CallCounter;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::envelope::JobRequest;
use crate::kind::{JobKind, JobOutcome, Policy, Scope};
use crate::units::{UnitPlan, UnitStatus};
use crate::{JobCtx, JobError, Runtime};

/// Incremental syncs look back this far before the last cursor, so that an agent whose
/// `last_seen` was written while the previous run was reading is not missed.
pub(crate) const INCREMENTAL_OVERLAP: Duration = Duration::from_secs(300);

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

/// [`client_for`] without a job (the admin API's connection test uses it too). Its calls are
/// counted for the tenant in the runtime's call log.
pub async fn build_client(rt: &Runtime, tenant: Uuid, integration: Uuid) -> Result<TacticalClient, JobError> {
    let config = integration_config(&rt.db, tenant, integration).await?;
    client_from_config(&rt.secrets, tenant, config, rt.calls.counter(Some(tenant))).await
}

/// An integration's instance URL and settings (`{}` when it has none); `None` when the
/// integration does not exist.
pub async fn integration_config(
    db: &rmm_shared::db::Db,
    tenant: Uuid,
    integration: Uuid,
) -> Result<Option<(Option<String>, serde_json::Value)>, JobError> {
    let d = db.dialect();
    let sql = format!(
        "SELECT instance_url, {} FROM rmm_integrations WHERE tenant = {} AND integration_id = {}",
        d.text("settings"),
        d.param(1, ColType::Uuid),
        d.param(2, ColType::Uuid)
    );
    let rows: Vec<(Option<String>, Option<String>)> =
        db.fetch(&sql, &[&tenant.to_string(), &integration.to_string()]).await?;
    Ok(rows.into_iter().next().map(|(url, settings)| {
        let settings = settings
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_else(|| serde_json::Value::Object(Default::default()));
        (url, settings)
    }))
}

/// The client for an integration read with [`integration_config`].
async fn client_from_config(
    secrets: &SecretStore,
    tenant: Uuid,
    config: Option<(Option<String>, serde_json::Value)>,
    calls: CallCounter,
) -> Result<TacticalClient, JobError> {
    let Some((url, settings)) = config else {
        return Err(JobError::Permanent("the Tactical RMM integration does not exist".into()));
    };
    let secret = |name: &'static str| async move {
        secrets.get_tenant_secret(tenant, name).await.map_err(|e| JobError::Transient(format!("secret {name}: {e}")))
    };
    let url = match url.filter(|u| !u.trim().is_empty()) {
        Some(u) => u,
        None => secret(secrets::INSTANCE_URL)
            .await?
            .map(|s| secrecy::ExposeSecret::expose_secret(&s).to_owned())
            .ok_or_else(|| JobError::from(TacticalError::InstanceUrlNotConfigured))?,
    };
    let auth = match settings.get("auth_mode").and_then(|v| v.as_str()).unwrap_or("api_key") {
        "knox" => {
            let (Some(user), Some(password)) = (secret(secrets::USERNAME).await?, secret(secrets::PASSWORD).await?)
            else {
                return Err(TacticalError::KnoxCredentialsNotConfigured.into());
            };
            TacticalAuth::Knox {
                username: secrecy::ExposeSecret::expose_secret(&user).to_owned(),
                password,
                token: secret(secrets::KNOX_TOKEN).await?,
            }
        }
        _ => TacticalAuth::ApiKey(secret(secrets::API_KEY).await?.ok_or(TacticalError::ApiKeyNotConfigured)?),
    };
    let config = TacticalConfig::new(url, auth);
    let http = HttpClient::new(config.http.clone()).map_err(TacticalError::from)?.with_call_counter(calls);
    let client = TacticalClient::with_http(config, http)?;
    let sink = KnoxTokenWriter { secrets: secrets.clone(), tenant };
    Ok(client.with_token_sink(Arc::new(sink)))
}

/// Stores a Knox token obtained during a job in the tenant secret, so the next job reuses it.
struct KnoxTokenWriter {
    secrets: SecretStore,
    tenant: Uuid,
}

impl TokenSink for KnoxTokenWriter {
    fn on_token_refreshed<'a>(&'a self, token: &'a SecretString) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Err(e) = self.secrets.set_tenant_secret(self.tenant, secrets::KNOX_TOKEN, Some(token)).await {
                tracing::warn!(error = %e, "could not store the new Knox token; the next job logs in again");
            }
        })
    }
}

pub(crate) fn ids(ctx: &JobCtx) -> Result<(Uuid, Uuid), JobError> {
    match (ctx.tenant(), ctx.integration_id()) {
        (Some(t), Some(i)) => Ok((t, i)),
        _ => Err(JobError::Permanent("job has no tenant or integration".into())),
    }
}

/// Runs `body` as one recorded sync run: `sync_runs` row, integration status, events.
pub(crate) async fn recorded<F>(
    ctx: &JobCtx,
    sync_type: &str,
    run_kind: RunKind,
    body: F,
) -> Result<JobOutcome, JobError>
where
    F: Future<Output = Result<(RunOutcome, JobOutcome), JobError>>,
{
    let (tenant, integration) = ids(ctx)?;
    let db = ctx.db();
    let events = &ctx.runtime().events;
    let provider = ctx.provider().unwrap_or(PROVIDER.slug());
    let trigger = ctx.envelope().trigger.as_str();
    let run = Run::start_for_job(
        db,
        tenant,
        integration,
        provider,
        &ctx.envelope().kind,
        run_kind,
        trigger,
        Some(ctx.job_id()),
    )
    .await?;
    events.publish(&Event::sync(EventType::SyncStarted, tenant, integration, provider, sync_type, None, None)).await;
    match body.await {
        Ok((outcome, job)) => {
            run.finish(db, &outcome).await?;
            let ev = if outcome.succeeded() { EventType::SyncCompleted } else { EventType::SyncFailed };
            let err = outcome.sync_error();
            events
                .publish(&Event::sync(
                    ev,
                    tenant,
                    integration,
                    provider,
                    sync_type,
                    Some(&outcome.counts),
                    err.as_deref(),
                ))
                .await;
            Ok(job)
        }
        Err(e) => {
            let outcome = RunOutcome { errors: vec![e.to_string()], ..Default::default() };
            if let Err(db_err) = run.finish(db, &outcome).await {
                tracing::warn!(error = %db_err, "could not record the failed run");
            }
            let msg = e.to_string();
            events
                .publish(&Event::sync(
                    EventType::SyncFailed,
                    tenant,
                    integration,
                    provider,
                    sync_type,
                    None,
                    Some(&msg),
                ))
                .await;
            Err(e)
        }
    }
}

pub(crate) fn counts_outcome(c: &IngestCounts) -> JobOutcome {
    JobOutcome::default()
        .count("processed", c.processed)
        .count("created", c.created)
        .count("updated", c.updated)
        .count("deleted", c.deleted)
        .count("skipped", c.skipped)
        .count("failed", c.failed)
}

pub(crate) fn provider_policy(timeout_secs: u64) -> Policy {
    Policy {
        max_attempts: 4,
        backoff_initial: Duration::from_secs(15),
        backoff_max: Duration::from_secs(300),
        timeout: Duration::from_secs(timeout_secs),
        concurrency: None,
        priority: 0,
        inline_retry_after: Duration::from_secs(5),
        max_deferrals: 20,
        listen: false,
    }
}

/// No arguments.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

/// `sync-org`: Tactical clients (or Tanium computer groups) → organisation mappings.
pub struct SyncOrg;

impl JobKind for SyncOrg {
    const NAME: &'static str = "sync-org";
    const SCOPE: Scope = Scope::Integration;
    const PROVIDERS: &'static [Provider] = &[PROVIDER, crate::tanium::PROVIDER];
    type Args = NoArgs;

    fn policy() -> Policy {
        provider_policy(300)
    }

    async fn run(ctx: JobCtx, _args: NoArgs) -> Result<JobOutcome, JobError> {
        if ctx.provider() == Some(crate::tanium::PROVIDER.slug()) {
            return crate::tanium::sync_scopes(&ctx).await;
        }
        let (tenant, integration) = ids(&ctx)?;
        let client = client_for(&ctx).await?;
        recorded_org_sync(&ctx, sync_organizations(ctx.db(), tenant, integration, &client)).await
    }
}

/// An organisation (scope) sync of any provider as a recorded `organizations` run.
pub(crate) async fn recorded_org_sync<E>(
    ctx: &JobCtx,
    sync: impl Future<Output = Result<rmm_shared::providers::OrgUpsert, E>>,
) -> Result<JobOutcome, JobError>
where
    JobError: From<E>,
{
    recorded(ctx, "organizations", RunKind::Other, async {
        let r = sync.await?;
        let counts =
            IngestCounts { processed: r.processed, created: r.created, updated: r.updated, ..Default::default() };
        Ok((RunOutcome { counts, ..Default::default() }, counts_outcome(&counts)))
    })
    .await
}

/// Arguments of `sync-devices`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncDevicesArgs {
    /// `full` (default) or `incremental` (agents seen since the last run's cursor).
    #[serde(default)]
    pub mode: SyncMode,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    #[default]
    Full,
    Incremental,
}

/// Where an incremental device sync starts: the last run's cursor less the overlap. `None` for a
/// full run, and for an incremental one of an integration never synced (it runs in full).
pub(crate) async fn incremental_since(
    ctx: &JobCtx,
    args: &SyncDevicesArgs,
) -> Result<Option<chrono::DateTime<Utc>>, JobError> {
    let (tenant, integration) = ids(ctx)?;
    Ok(match args.mode {
        SyncMode::Full => None,
        SyncMode::Incremental => last_cursor(ctx, tenant, integration)
            .await?
            .map(|c| c - chrono::Duration::from_std(INCREMENTAL_OVERLAP).unwrap_or_default()),
    })
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
    type Args = SyncDevicesArgs;

    fn policy() -> Policy {
        Policy { concurrency: Some(2), ..provider_policy(3600) }
    }

    async fn run(ctx: JobCtx, args: SyncDevicesArgs) -> Result<JobOutcome, JobError> {
        let (tenant, integration) = ids(&ctx)?;
        let since = incremental_since(&ctx, &args).await?;
        // Never synced: the first incremental run is a full one.
        let (sync_type, run_kind) = match since {
            None => ("full", RunKind::Full),
            Some(_) => ("incremental", RunKind::Incremental),
        };
        recorded(&ctx, sync_type, run_kind, async {
            let fan = crate::units::run_units(&ctx, || async {
                let units = plan_device_units(ctx.db(), tenant, integration).await?;
                let trigger = ctx.envelope().trigger;
                Ok(units
                    .into_iter()
                    .map(|u| {
                        let args = DeviceUnitArgs {
                            parent_job_id: ctx.job_id().to_owned(),
                            scope: u.scope.clone(),
                            client_id: u.client_id,
                            since,
                        };
                        let child = JobRequest::for_integration(
                            SyncDevicesUnit::NAME,
                            tenant,
                            PROVIDER.slug(),
                            integration,
                            trigger,
                        )
                        .args(serde_json::to_value(args).expect("unit arguments are JSON"));
                        UnitPlan { key: u.scope, child }
                    })
                    .collect())
            })
            .await?;
            let mut report = DeviceSyncReport::default();
            for unit in &fan.units {
                match (unit.status, &unit.report) {
                    (UnitStatus::Done, Some(r)) => match serde_json::from_value::<DeviceSyncReport>(r.clone()) {
                        Ok(r) => report.absorb(r),
                        Err(e) => report.absorb(failed_unit(&unit.key, &format!("unreadable unit report: {e}"))),
                    },
                    _ => report.absorb(failed_unit(&unit.key, unit.error.as_deref().unwrap_or("did not finish"))),
                }
            }
            let outcome =
                RunOutcome { counts: report.counts, errors: report.errors.clone(), cursor: Some(fan.planned_at) };
            let job =
                counts_outcome(&report.counts).count("units", report.units).count("units_failed", report.units_failed);
            Ok((outcome, job))
        })
        .await
    }
}

fn failed_unit(scope: &str, error: &str) -> DeviceSyncReport {
    DeviceSyncReport {
        units: 1,
        units_failed: 1,
        errors: vec![format!("Tactical client {scope}: {error}")],
        ..Default::default()
    }
}

/// Arguments of `sync-devices-unit` (set by `sync-devices`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceUnitArgs {
    /// The `sync-devices` job this unit belongs to.
    pub parent_job_id: String,
    /// The Tactical client pk (the unit key).
    pub scope: String,
    /// The AlgaPSA client the scope is mapped to.
    pub client_id: Uuid,
    /// Incremental: agents seen at or after this time; absent for a full pass.
    #[serde(default)]
    pub since: Option<DateTime<Utc>>,
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
        let db = ctx.db();
        if crate::units::unit_status(db, &args.parent_job_id, &args.scope).await? != Some(UnitStatus::Pending) {
            // Redelivered after the unit was finished (or its parent was pruned): nothing to do.
            return Ok(JobOutcome::default().count("units", 0));
        }
        let client = client_for(&ctx).await?;
        let sites = SiteIndex::new(client.list_sites().await?);
        let mode = match args.since {
            Some(since) => DeviceSyncMode::Incremental { since },
            None => DeviceSyncMode::Full,
        };
        let unit = DeviceUnit { scope: args.scope.clone(), client_id: args.client_id };
        let report = sync_device_unit(db, tenant, integration, &client, &sites, &unit, mode).await?;
        let value = serde_json::to_value(&report).map_err(|e| JobError::Permanent(e.to_string()))?;
        crate::units::finish_unit(db, &args.parent_job_id, &args.scope, &value).await?;
        Ok(counts_outcome(&report.counts).count("units", report.units).count("units_failed", report.units_failed))
    }
}

pub(crate) async fn last_cursor(
    ctx: &JobCtx,
    tenant: Uuid,
    integration: Uuid,
) -> Result<Option<DateTime<Utc>>, JobError> {
    let db = ctx.db();
    let d = db.dialect();
    let sql = format!(
        "SELECT {}, {} FROM rmm_integrations WHERE tenant = {} AND integration_id = {}",
        crate::sqlx_util::ts_out(d, "last_incremental_sync_at"),
        crate::sqlx_util::ts_out(d, "last_full_sync_at"),
        d.param(1, ColType::Uuid),
        d.param(2, ColType::Uuid)
    );
    let rows: Vec<(Option<String>, Option<String>)> =
        db.fetch(&sql, &[&tenant.to_string(), &integration.to_string()]).await?;
    let parse = |s: Option<String>| s.as_deref().and_then(crate::sqlx_util::parse_ts);
    Ok(rows.into_iter().next().and_then(|(inc, full)| parse(inc).into_iter().chain(parse(full)).max()))
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
        let config = integration_config(ctx.db(), tenant, integration).await?;
        let no_settings = serde_json::Value::Object(Default::default());
        let settings = config.as_ref().map_or(&no_settings, |(_, s)| s);
        let (mut alerts, mut alerts_other, mut forwarded) = (0, 0, 0);
        match crate::forward::AlertMode::from_settings(settings).map_err(JobError::Permanent)? {
            crate::forward::AlertMode::Record => {
                (alerts, alerts_other) =
                    crate::webhooks::record_pending_deliveries(ctx.runtime(), tenant, integration, agent_id).await?;
            }
            crate::forward::AlertMode::Forward { .. } => {
                forwarded = crate::forward::forward_pending_deliveries(&ctx, tenant, integration, agent_id).await?;
            }
        }
        let calls = ctx.runtime().calls.counter(Some(tenant));
        let client = client_from_config(&ctx.runtime().secrets, tenant, config, calls).await?;
        let outcome = refresh_agent(ctx.db(), tenant, integration, &client, agent_id).await?;
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
