//! `rmm-sync demo`: the whole service on the embedded default, against the Tactical RMM, Tanium,
//! Level and NinjaOne simulators on loopback. Nothing to install, no network: it sets up a tenant
//! with clients and the four integrations, maps the remote organisations to the clients, runs every
//! job kind an operator starts (and a few webhooks), prints what landed in AlgaPSA's tables, and
//! keeps serving the API, Swagger UI, status page and metrics until Ctrl-C.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rmm_ingress::auth::KeyScope;
use rmm_jobs::{JobRequest, JobStatus, JobView, Runtime, Scope, Trigger};
use rmm_shared::config::{QueueBackend, SchemaMode, Settings};
use rmm_shared::db::Db;
use rmm_shared::db::sql::ColType;
use rmm_shared::integrations::{self as svc, IntegrationInput, MappingPatch};
use rmm_shared::providers::Provider;
use rmm_sim::levelio::{LevelFleetSpec, LevelSim};
use rmm_sim::ninjaone::{NinjaFleetSpec, NinjaSim, NinjaSimConfig};
use rmm_sim::tactical::{DEFAULT_API_KEY, FleetSpec, SimConfig, TacticalSim};
use rmm_sim::tanium::{TaniumFleetSpec, TaniumSim, TaniumSimConfig};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The sizes of the simulated fleets.
#[derive(Debug, Clone, Copy)]
pub struct DemoSize {
    /// Tactical agents per site (3 clients × 2 sites).
    pub agents_per_site: usize,
    /// Tanium endpoints (in 3 computer groups).
    pub endpoints: usize,
    /// Level devices (in 2 top-level groups with nested groups).
    pub level_devices: usize,
    /// NinjaOne devices (in 3 organisations).
    pub ninjaone_devices: usize,
}

/// How long any one demo job may take before the demo gives up on it.
const JOB_DEADLINE: Duration = Duration::from_secs(300);

fn step(msg: &str) {
    eprintln!("demo: {msg}");
}

/// The demo's settings: the configured ones (bind address, log level, limits), on a fresh SQLite
/// database and secret directory under `dir`, with the database queue and nothing external.
fn demo_settings(mut settings: Settings, dir: &Path) -> Settings {
    settings.database_url = format!("sqlite://{}", dir.join("rmm-sync.db").display());
    settings.schema_mode = SchemaMode::Standalone;
    settings.database.migrate_on_start = true;
    settings.queue.backend = QueueBackend::Database;
    settings.upstream.rate_limit_redis_url = None;
    settings
}

pub async fn run(settings: Settings, dir: PathBuf, size: DemoSize) -> anyhow::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| anyhow::anyhow!("cannot clear {}: {e}", dir.display()))?;
    }
    std::fs::create_dir_all(dir.join("secrets"))
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    let settings = demo_settings(settings, &dir);
    let bind = settings.http.bind.clone();
    let listener = tokio::net::TcpListener::bind(bind.as_str()).await.map_err(|e| {
        anyhow::anyhow!("cannot listen on {bind}: {e}; give the demo a free address with RMM_SYNC_HTTP__BIND")
    })?;
    let base = format!("http://{}", listener.local_addr()?);

    step("starting the Tactical RMM, Tanium, Level and NinjaOne simulators on 127.0.0.1");
    let fleet = FleetSpec {
        clients: 3,
        sites_per_client: 2,
        agents_per_site: size.agents_per_site,
        alerts: 24,
        ..FleetSpec::default()
    };
    let tactical = TacticalSim::start(SimConfig::with_fleet(fleet)).await?;
    let tanium_fleet = TaniumFleetSpec {
        groups: 3,
        endpoints: size.endpoints,
        in_two_groups: size.endpoints / 10,
        apps_per_endpoint: 4,
        ..TaniumFleetSpec::default()
    };
    let tanium = TaniumSim::start(TaniumSimConfig { fleet: tanium_fleet, ..TaniumSimConfig::default() }).await?;
    let level = LevelSim::start(LevelFleetSpec {
        top_groups: 2,
        sites_per_group: 2,
        devices: size.level_devices,
        updates_per_device: 3,
        alerts: 4,
        ..LevelFleetSpec::default()
    })
    .await?;
    let ninja_fleet = NinjaFleetSpec {
        organizations: 3,
        devices: size.ninjaone_devices,
        software_per_device: 4,
        patches_per_device: 3,
        ..NinjaFleetSpec::default()
    };
    let ninja = NinjaSim::start(NinjaSimConfig { fleet: ninja_fleet, ..NinjaSimConfig::default() }).await?;

    let db = crate::migrate(&settings).await?;
    let secrets_dir = dir.join("secrets");
    let secrets = rmm_shared::secrets::SecretStore::from_env(
        std::env::vars().filter(|(k, _)| !k.starts_with("SECRET_") && !k.starts_with("VAULT_")).chain([
            ("SECRET_READ_CHAIN".to_owned(), "filesystem".to_owned()),
            ("SECRET_WRITE_PROVIDER".to_owned(), "filesystem".to_owned()),
            ("SECRET_FS_BASE_PATH".to_owned(), secrets_dir.display().to_string()),
        ]),
    )?;
    let rt = crate::build_runtime(settings, db.clone(), secrets, rmm_shared::events::EventBus::disabled()).await?;

    let shutdown = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    {
        let state = rmm_ingress::AppState::new(rt.clone(), None);
        let token = shutdown.clone();
        tasks.spawn(async move {
            rmm_ingress::serve_on(listener, state, token, Some(Duration::from_secs(2)))
                .await
                .map_err(anyhow::Error::from)
        });
        let (rt, token) = (rt.clone(), shutdown.clone());
        tasks.spawn(async move { rmm_jobs::worker::run(rt, token).await.map_err(anyhow::Error::from) });
    }

    let sims = Sims { tactical: &tactical, tanium: &tanium, level: &level, ninja: &ninja };
    let result = tokio::select! {
        r = populate(&rt, &sims, &base) => r,
        Some(r) = tasks.join_next() => Err(match r {
            Ok(Err(e)) => e.context("the service stopped during the demo"),
            Ok(Ok(())) => anyhow::anyhow!("the service stopped during the demo"),
            Err(e) => anyhow::anyhow!("the service stopped during the demo: {e}"),
        }),
        _ = rmm_jobs::worker::termination_signal() => Err(anyhow::anyhow!("interrupted")),
    };
    let outcome = match result {
        Ok((tenant, timings)) => {
            let key = rmm_ingress::auth::create_key(&db, None, KeyScope::Write, "demo").await?;
            print_summary(&db, tenant, &timings).await?;
            println!();
            println!("Simulated Tactical RMM  {}", tactical.base_url());
            println!("Simulated Tanium        {}", tanium.gateway_url());
            println!("Simulated Level         {}", level.base_url());
            println!("Simulated NinjaOne      {}", ninja.base_url());
            println!("Database                {}", rt.settings.database_url);
            println!();
            println!("API          {base}/api/v1   (Authorization: Bearer <key>)");
            println!("Swagger UI   {base}/docs");
            println!("Status page  {base}/status   (any user name, the key as password)");
            println!("Metrics      {base}/metrics");
            println!("Admin key    {}   (global, read-write; made for this demo)", key.key);
            println!("Tenant       {tenant}");
            println!();
            println!("demo ready: serving until Ctrl-C");
            tokio::select! {
                _ = rmm_jobs::worker::termination_signal() => { step("stopping"); Ok(()) }
                Some(r) = tasks.join_next() => r.map_err(anyhow::Error::from).and_then(|r| r),
            }
        }
        Err(e) => Err(e),
    };
    shutdown.cancel();
    while tasks.join_next().await.is_some() {}
    db.close().await;
    outcome
}

/// One finished job: kind, provider, status and how long it ran.
struct Timing {
    kind: String,
    provider: String,
    took: Duration,
    error: Option<String>,
}

/// The simulated RMM servers.
struct Sims<'a> {
    tactical: &'a TacticalSim,
    tanium: &'a TaniumSim,
    level: &'a LevelSim,
    ninja: &'a NinjaSim,
}

/// Sets up the tenant and runs the jobs; returns the tenant and the jobs' timings.
async fn populate(rt: &Runtime, sims: &Sims<'_>, base: &str) -> anyhow::Result<(Uuid, Vec<Timing>)> {
    let Sims { tactical, tanium, level, ninja } = *sims;
    let (db, secrets) = (&rt.db, &rt.secrets);
    let e = crate::integration_cli::service_error;
    let tenant = Uuid::new_v4();
    step("creating a tenant, its clients and the four integrations");
    svc::put_tenant(db, tenant, "Demo MSP", None).await.map_err(e)?;
    let mut clients = Vec::new();
    for c in tactical.clients() {
        let id = Uuid::new_v4();
        svc::put_client(db, tenant, id, &c.name).await.map_err(e)?;
        clients.push((id, c.name));
    }
    let tactical_input = IntegrationInput {
        instance_url: Some(tactical.base_url().to_owned()),
        api_key: Some(SecretString::from(DEFAULT_API_KEY)),
        ..IntegrationInput::default()
    };
    svc::save(db, secrets, tenant, Provider::TacticalRmm, &tactical_input).await.map_err(e)?;
    let tanium_input = IntegrationInput {
        instance_url: Some(tanium.gateway_url().to_owned()),
        api_token: Some(SecretString::from(tanium.token().to_owned())),
        asset_api_url: Some(tanium.asset_api_url().to_owned()),
        ..IntegrationInput::default()
    };
    svc::save(db, secrets, tenant, Provider::Tanium, &tanium_input).await.map_err(e)?;
    let level_input = IntegrationInput {
        instance_url: Some(level.base_url().to_owned()),
        api_key: Some(SecretString::from(level.api_key().to_owned())),
        ..IntegrationInput::default()
    };
    svc::save(db, secrets, tenant, Provider::LevelIo, &level_input).await.map_err(e)?;
    // NinjaOne as an API-service app (client-credentials grant): no browser consent needed.
    let ninja_input = IntegrationInput {
        instance_url: Some(ninja.base_url().to_owned()),
        auth_mode: Some("client_credentials".into()),
        client_id: Some(ninja.client_id().to_owned()),
        client_secret: Some(SecretString::from(ninja.client_secret().to_owned())),
        ..IntegrationInput::default()
    };
    svc::save(db, secrets, tenant, Provider::NinjaOne, &ninja_input).await.map_err(e)?;
    let providers = [Provider::TacticalRmm, Provider::Tanium, Provider::LevelIo, Provider::NinjaOne];
    let conn = rt.integrations();
    for p in providers {
        let t = svc::test(&conn, tenant, p, None).await.map_err(e)?;
        if !t.success() {
            anyhow::bail!("{p} connection test failed: {}", t.to_json());
        }
    }

    let mut timings = Vec::new();
    step("sync-org: Tactical clients, Tanium computer groups, Level groups and NinjaOne organisations");
    let mut orgs = Vec::new();
    for p in providers {
        orgs.push(enqueue(rt, tenant, p, "sync-org", json!({})).await?);
    }
    for id in &orgs {
        timings.push(wait(rt, id).await?);
    }
    step("mapping the remote organisations to the tenant's clients");
    for p in providers {
        for (i, m) in svc::mappings(db, tenant, p).await.map_err(e)?.iter().enumerate() {
            let name = m.external_organization_name.as_deref().unwrap_or_default();
            // Tactical clients by name; Tanium and Level groups and NinjaOne organisations in turn.
            let client = clients.iter().find(|(_, n)| n == name).unwrap_or(&clients[i % clients.len()]).0;
            let id = Uuid::parse_str(&m.mapping_id)?;
            let patch =
                MappingPatch { client_id: Some(Some(client)), auto_sync_assets: Some(true), ..MappingPatch::default() };
            svc::patch_mapping(db, tenant, p, id, &patch).await.map_err(e)?;
        }
    }

    step(
        "sync-devices, ingest-software, backfill-alerts (Tactical), tanium-full-sync, levelio-sync-devices, \
         levelio-backfill-alerts, ninjaone-sync-devices, ninjaone-ingest-software, ninjaone-sync-patches, \
         ninjaone-backfill-alerts",
    );
    let jobs = [
        enqueue(rt, tenant, Provider::TacticalRmm, "sync-devices", json!({ "mode": "full" })).await?,
        enqueue(rt, tenant, Provider::Tanium, "tanium-full-sync", json!({ "mode": "full" })).await?,
        enqueue(rt, tenant, Provider::LevelIo, "levelio-sync-devices", json!({ "mode": "full" })).await?,
        enqueue(rt, tenant, Provider::NinjaOne, "ninjaone-sync-devices", json!({ "mode": "full" })).await?,
    ];
    for id in &jobs {
        timings.push(wait(rt, id).await?);
    }
    let jobs = [
        enqueue(rt, tenant, Provider::TacticalRmm, "ingest-software", json!({})).await?,
        enqueue(rt, tenant, Provider::TacticalRmm, "backfill-alerts", json!({})).await?,
        enqueue(rt, tenant, Provider::LevelIo, "levelio-backfill-alerts", json!({})).await?,
        enqueue(rt, tenant, Provider::NinjaOne, "ninjaone-ingest-software", json!({})).await?,
        enqueue(rt, tenant, Provider::NinjaOne, "ninjaone-sync-patches", json!({})).await?,
        enqueue(rt, tenant, Provider::NinjaOne, "ninjaone-backfill-alerts", json!({})).await?,
        rt.queue.enqueue(JobRequest::global("maintenance", Trigger::Admin)).await?,
    ];
    for id in &jobs {
        timings.push(wait(rt, id).await?);
    }

    step("sending Tactical alert webhooks (three triggers, one resolve)");
    let setup = svc::webhook_setup(secrets, tenant, Provider::TacticalRmm, &rt.settings.http).await.map_err(e)?;
    let secret = setup["secret"].as_str().unwrap_or_default().to_owned();
    let http = reqwest::Client::new();
    let agents = tactical.agents();
    let mut hook_jobs = Vec::new();
    for (n, agent) in agents.iter().step_by((agents.len() / 3).max(1)).take(3).enumerate() {
        for event in if n == 0 { &["trigger", "resolve"][..] } else { &["trigger"][..] } {
            let body = json!({
                "agent_id": agent.agent_id, "alert_id": format!("demo-{n}"), "event": event, "severity": "error",
                "message": format!("{} - Disk space C: below 10%", agent.hostname), "alert_type": "check",
                "alert_time": chrono::Utc::now().format("%Y-%m-%d %H:%M:%S%.6f+00:00").to_string(),
                "hostname": agent.hostname,
            });
            let resp = http
                .post(format!("{base}{}tacticalrmm?tenant={tenant}", rmm_ingress::WEBHOOK_PREFIX))
                .header("X-Alga-Webhook-Secret", &secret)
                .json(&body)
                .send()
                .await?;
            let status = resp.status();
            let answer: Value = resp.json().await.unwrap_or(Value::Null);
            if !status.is_success() {
                anyhow::bail!("webhook answered {status}: {answer}");
            }
            if let Some(id) = answer["job_id"].as_str()
                && !hook_jobs.iter().any(|j| j == id)
            {
                hook_jobs.push(id.to_owned());
            }
        }
    }
    step("sending a Level automation's webhook (a trigger)");
    let setup = svc::webhook_setup(secrets, tenant, Provider::LevelIo, &rt.settings.http).await.map_err(e)?;
    let secret = setup["secret"].as_str().unwrap_or_default().to_owned();
    if let Some(device) = level.fleet().devices.first() {
        let body = json!({
            "device_id": device.id, "event": "alert.triggered", "alert_id": "demo-level-1", "severity": "critical",
            "name": "Disk space", "description": "C: below 10%", "hostname": device.hostname, "group_id": device.group_id,
            "alert_time": chrono::Utc::now().to_rfc3339(),
        });
        let resp = http
            .post(format!("{base}{}levelio?tenant={tenant}", rmm_ingress::WEBHOOK_PREFIX))
            .header("X-Alga-Webhook-Secret", &secret)
            .json(&body)
            .send()
            .await?;
        let status = resp.status();
        let answer: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            anyhow::bail!("Level webhook answered {status}: {answer}");
        }
        if let Some(id) = answer["job_id"].as_str() {
            hook_jobs.push(id.to_owned());
        }
    }
    step("sending a NinjaOne webhook (a triggered condition)");
    let setup = svc::webhook_setup(secrets, tenant, Provider::NinjaOne, &rt.settings.http).await.map_err(e)?;
    let secret = setup["secret"].as_str().unwrap_or_default().to_owned();
    if let Some(device) = ninja.devices().first() {
        let body = json!({
            "id": 9001, "activityTime": chrono::Utc::now().timestamp(), "deviceId": device.id,
            "organizationId": device.organization_id, "type": "CONDITION", "status": "TRIGGERED",
            "statusCode": "DISK_FULL", "activityType": "CONDITION", "severity": "CRITICAL",
            "message": "Disk C: is below 10%", "device": {"displayName": device.name},
        });
        let resp = http
            .post(format!("{base}{}ninjaone?tenant={tenant}", rmm_ingress::WEBHOOK_PREFIX))
            .header("X-Alga-Webhook-Secret", &secret)
            .json(&body)
            .send()
            .await?;
        let status = resp.status();
        let answer: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            anyhow::bail!("NinjaOne webhook answered {status}: {answer}");
        }
        if let Some(id) = answer["job_id"].as_str() {
            hook_jobs.push(id.to_owned());
        }
    }
    for id in &hook_jobs {
        timings.push(wait(rt, id).await?);
    }
    Ok((tenant, timings))
}

/// Enqueues `kind` for the tenant's `provider` integration, as the admin API does.
async fn enqueue(rt: &Runtime, tenant: Uuid, provider: Provider, kind: &str, args: Value) -> anyhow::Result<String> {
    let entry = rt.registry.require_for(kind, Some(provider.slug()))?;
    if entry.scope != Scope::Integration {
        anyhow::bail!("{kind} is a service-wide job, not an integration job");
    }
    let integ = svc::require(&rt.db, tenant, provider).await.map_err(crate::integration_cli::service_error)?;
    let req =
        JobRequest::for_integration(kind, tenant, provider.slug(), integ.integration_id, Trigger::Admin).args(args);
    Ok(rt.queue.enqueue(req).await?)
}

/// Waits for the job to finish (it must end `done`).
async fn wait(rt: &Runtime, id: &str) -> anyhow::Result<Timing> {
    let start = Instant::now();
    loop {
        let job = rt.store().get(id).await?.ok_or_else(|| anyhow::anyhow!("job {id} disappeared"))?;
        if job.status.is_finished() {
            let t = timing(&job);
            if job.status != JobStatus::Done {
                anyhow::bail!("{} ended {}: {}", job.kind, job.status.as_str(), t.error.unwrap_or_default());
            }
            return Ok(t);
        }
        if start.elapsed() > JOB_DEADLINE {
            anyhow::bail!("{} did not finish within {} s", job.kind, JOB_DEADLINE.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn timing(job: &JobView) -> Timing {
    let took = match (job.started_at, job.finished_at) {
        (Some(s), Some(f)) => (f - s).to_std().unwrap_or_default(),
        _ => Duration::ZERO,
    };
    Timing {
        kind: job.kind.clone(),
        provider: job.provider.clone().unwrap_or_else(|| "-".into()),
        took,
        error: job.last_error.clone(),
    }
}

async fn print_summary(db: &Db, tenant: Uuid, timings: &[Timing]) -> anyhow::Result<()> {
    let d = db.dialect();
    let t = tenant.to_string();
    let p1 = d.param(1, ColType::Uuid);
    let assets: Vec<(Option<String>, String, Option<String>, i64)> = db
        .fetch(
            &format!(
                "SELECT rmm_provider, asset_type, agent_status, CAST(COUNT(*) AS BIGINT) FROM assets WHERE tenant = {p1} \
                 GROUP BY rmm_provider, asset_type, agent_status ORDER BY rmm_provider, asset_type, agent_status"
            ),
            &[&t],
        )
        .await?;
    println!("Assets in AlgaPSA's tables");
    println!("  {:<12} {:<12} {:<9} {:>6}", "provider", "type", "status", "count");
    for (p, ty, st, n) in &assets {
        println!("  {:<12} {:<12} {:<9} {:>6}", p.as_deref().unwrap_or("-"), ty, st.as_deref().unwrap_or("-"), n);
    }
    let total: i64 = assets.iter().map(|a| a.3).sum();
    println!("  {:<34} {:>6}", "total", total);

    let alerts: Vec<(String, i64)> = db
        .fetch(
            &format!("SELECT status, CAST(COUNT(*) AS BIGINT) FROM rmm_alerts WHERE tenant = {p1} GROUP BY status ORDER BY status"),
            &[&t],
        )
        .await?;
    let count = |s: &str| alerts.iter().find(|a| a.0 == s).map(|a| a.1).unwrap_or(0);
    let other: i64 = alerts.iter().filter(|a| a.0 != "active" && a.0 != "resolved").map(|a| a.1).sum();
    println!();
    println!(
        "Alerts       {} open, {} resolved{}",
        count("active"),
        count("resolved"),
        if other > 0 { format!(", {other} other") } else { String::new() }
    );

    let one = |sql: String| {
        let t = t.clone();
        async move { db.fetch::<(i64,)>(&sql, &[&t]).await.map(|r| r.first().map(|x| x.0).unwrap_or(0)) }
    };
    let titles = one(format!("SELECT CAST(COUNT(*) AS BIGINT) FROM software_catalog WHERE tenant = {p1}")).await?;
    let installs = one(format!("SELECT CAST(COUNT(*) AS BIGINT) FROM asset_software WHERE tenant = {p1}")).await?;
    let with_sw =
        one(format!("SELECT CAST(COUNT(DISTINCT asset_id) AS BIGINT) FROM asset_software WHERE tenant = {p1}")).await?;
    let facts = one(format!("SELECT CAST(COUNT(*) AS BIGINT) FROM asset_facts WHERE tenant = {p1}")).await?;
    println!("Software     {titles} titles, {installs} installs on {with_sw} assets");
    println!("Facts        {facts} (Tanium criticality)");
    let mut pending = 0;
    let mut with_pending = 0;
    for table in ["workstation_assets", "server_assets"] {
        pending +=
            one(format!("SELECT CAST(COALESCE(SUM(pending_patches), 0) AS BIGINT) FROM {table} WHERE tenant = {p1}"))
                .await?;
        with_pending +=
            one(format!("SELECT CAST(COUNT(*) AS BIGINT) FROM {table} WHERE tenant = {p1} AND pending_patches > 0"))
                .await?;
    }
    println!("Patches      {pending} pending on {with_pending} assets");

    let mut by_kind: BTreeMap<(String, String), (usize, Duration, Duration)> = BTreeMap::new();
    for t in timings {
        let e = by_kind.entry((t.kind.clone(), t.provider.clone())).or_default();
        e.0 += 1;
        e.1 += t.took;
        e.2 = e.2.max(t.took);
    }
    println!();
    println!("Jobs (all ended done)");
    println!("  {:<25} {:<12} {:>4} {:>10} {:>10}", "kind", "provider", "runs", "total", "slowest");
    for ((kind, provider), (n, total, max)) in &by_kind {
        println!(
            "  {:<25} {:<12} {:>4} {:>8.2} s {:>8.2} s",
            kind,
            provider,
            n,
            total.as_secs_f64(),
            max.as_secs_f64()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_runs_on_its_own_sqlite_file_with_the_database_queue() {
        let mut s = Settings {
            database_url: "postgres://elsewhere/db".into(),
            schema_mode: SchemaMode::Algapsa,
            ..Settings::default()
        };
        s.queue.backend = QueueBackend::Redis;
        s.upstream.rate_limit_redis_url = Some("redis://x".into());
        let s = demo_settings(s, Path::new("/tmp/demo-x"));
        assert_eq!(s.database_url, "sqlite:///tmp/demo-x/rmm-sync.db");
        assert_eq!(s.schema_mode, SchemaMode::Standalone);
        assert_eq!(s.queue.backend, QueueBackend::Database);
        assert!(s.upstream.rate_limit_redis_url.is_none());
    }
}
