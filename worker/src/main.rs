//! `rmm-sync`: the one command of the service.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use std::sync::Arc;

use clap::{Parser, Subcommand};

#[cfg(feature = "demo")]
mod demo;
mod integration_cli;
mod jobs_cli;
use rmm_ingress::auth::KeyScope;
use rmm_shared::config::{Settings, redact_url};
use rmm_shared::db::Db;
use rmm_shared::db::migrate::AlgapsaSchema;
use tokio_util::sync::CancellationToken;

/// jemalloc, not glibc's malloc: under a steady mixed load glibc's per-thread arenas fragment and
/// the RSS of a long-running process creeps up (about 1.5 MB a minute in the soak); see
/// BENCHMARKS.md, soak.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Keeps AlgaPSA in sync with Tactical RMM and Tanium.
///
/// With no configuration it runs on one SQLite file (./data/rmm-sync.db) in one process.
/// Settings come from built-in defaults, then the TOML file, then RMM_SYNC_* environment
/// variables (and DATABASE_URL); see docs/configuration.md.
#[derive(Debug, Parser)]
#[command(name = "rmm-sync", version, about, long_about)]
struct Cli {
    /// TOML configuration file (default: ./rmm-sync.toml when it exists).
    #[arg(long, short, global = true, env = "RMM_SYNC_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the ingress and the workers in one process (the default) until Ctrl-C or SIGTERM.
    Serve,
    /// Run only the HTTP ingress (webhooks, admin API, health, metrics).
    Ingress,
    /// Run only the job workers and the schedule runner.
    Worker,
    /// Apply migrations (or, in algapsa schema mode, check AlgaPSA's tables) and exit.
    Migrate,
    /// Make, list and revoke admin API keys (`keys` is the same command).
    #[command(subcommand, name = "api-key", visible_alias = "keys")]
    Keys(KeysCommand),
    /// Enqueue a provider job for a tenant's integration and print its id; `--wait` follows it
    /// (progress on stderr) and exits non-zero unless it ends done.
    /// Example: `rmm-sync sync tacticalrmm sync-devices --tenant <uuid> --wait`.
    Sync {
        /// Provider, e.g. tacticalrmm.
        provider: String,
        /// Job kind, e.g. sync-org, sync-devices, ingest-software, backfill-alerts.
        kind: String,
        /// The tenant whose integration is synced.
        #[arg(long)]
        tenant: uuid::Uuid,
        /// The kind's arguments as JSON, e.g. '{"mode":"incremental"}'.
        #[arg(long, default_value = "{}")]
        args: String,
        /// Follow the job until it ends.
        #[arg(long)]
        wait: bool,
        /// Plan only (device syncs): write nothing and print, per organisation, what the sync
        /// would create, update, move and tombstone. Implies --wait.
        #[arg(long)]
        dry_run: bool,
    },
    /// List, show, re-queue or cancel jobs.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Set, test or show a tenant's RMM integration (the admin API's integration routes, run on
    /// the store directly).
    #[command(subcommand)]
    Integration(integration_cli::IntegrationCommand),
    /// Try the whole service with nothing installed: starts simulated Tactical RMM, Tanium, Level
    /// and NinjaOne servers on 127.0.0.1, sets up a tenant with clients and the four integrations
    /// on a fresh SQLite database (in --dir, cleared first), runs every job kind and a few alert
    /// webhooks, prints
    /// what was synced and the URLs of the API, Swagger UI, status page and metrics, and serves
    /// until Ctrl-C. Listens on http.bind (RMM_SYNC_HTTP__BIND, default 127.0.0.1:8080).
    /// Only in builds with the `demo` cargo feature (the default; not the container image).
    #[cfg_attr(not(feature = "demo"), command(hide = true))]
    Demo {
        /// Where the demo keeps its database and secrets (deleted and made anew on every run).
        #[arg(long, default_value = "./data/demo", value_name = "DIR")]
        dir: PathBuf,
        /// Simulated Tactical agents per site (3 clients with 2 sites each).
        #[arg(long, default_value_t = 10)]
        agents_per_site: usize,
        /// Simulated Tanium endpoints (in 3 computer groups).
        #[arg(long, default_value_t = 30)]
        endpoints: usize,
        /// Simulated Level devices (in 2 customers' nested groups).
        #[arg(long, default_value_t = 30)]
        level_devices: usize,
        /// Simulated NinjaOne devices (in 3 organisations).
        #[arg(long, default_value_t = 30)]
        ninjaone_devices: usize,
    },
    /// Enqueue one job and print its id (e.g. `rmm-sync enqueue maintenance`).
    Enqueue {
        /// Job kind, e.g. sync-devices.
        kind: String,
        /// Tenant (integration jobs).
        #[arg(long)]
        tenant: Option<uuid::Uuid>,
        /// Provider (integration jobs), e.g. tacticalrmm.
        #[arg(long)]
        provider: Option<String>,
        /// The kind's arguments as JSON, e.g. '{"mode":"incremental"}'.
        #[arg(long, default_value = "{}")]
        args: String,
    },
}

#[derive(Debug, Subcommand)]
enum JobsCommand {
    /// Jobs, newest first: id, kind, status, tenant, attempts, last error (tab-separated).
    List {
        /// Only this tenant's jobs.
        #[arg(long)]
        tenant: Option<uuid::Uuid>,
        /// pending, running, retrying, waiting, done, failed, cancelled or skipped.
        #[arg(long)]
        status: Option<String>,
        /// Only this kind.
        #[arg(long)]
        kind: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// One job as JSON (status, attempts, progress, result counts, last error).
    Show { job_id: String },
    /// Re-queue a failed or cancelled job as a new job; prints the new id.
    Retry { job_id: String },
    /// Cancel a pending or running job.
    Cancel { job_id: String },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Make a key; it is printed once and only its hash is stored.
    Create {
        /// Scope the key to this tenant (default: a global key).
        #[arg(long)]
        tenant: Option<uuid::Uuid>,
        /// Read-only key.
        #[arg(long)]
        read_only: bool,
        /// A name to recognise the key by.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List keys (never the keys themselves).
    List,
    /// Revoke a key by its id.
    Revoke { key_id: String },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rmm-sync: {e}");
            return ExitCode::from(2);
        }
    };
    // The demo prints its own summary; its logs are warnings and errors unless a level is asked for.
    if matches!(cli.command, Some(Command::Demo { .. }))
        && std::env::var_os("RUST_LOG").is_none()
        && std::env::var_os("RMM_SYNC_LOG__LEVEL").is_none()
    {
        settings.log.level = "warn".into();
    }
    let telemetry = match rmm_shared::telemetry::init(&settings.log, &settings.telemetry) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("rmm-sync: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings, true, true).await,
        Command::Ingress => serve(settings, true, false).await,
        Command::Worker => serve(settings, false, true).await,
        Command::Migrate => migrate(&settings).await.map(|_| ()),
        Command::Keys(k) => keys(&settings, k).await,
        Command::Enqueue { kind, tenant, provider, args } => enqueue(settings, kind, tenant, provider, args).await,
        Command::Sync { provider, kind, tenant, args, wait, dry_run } => {
            with_runtime(settings, |rt| async move {
                let args = serde_json::from_str(&args).map_err(|e| anyhow::anyhow!("--args is not JSON: {e}"))?;
                jobs_cli::sync(&rt, &provider, &kind, tenant, args, wait, dry_run).await
            })
            .await
        }
        Command::Integration(cmd) => with_runtime(settings, |rt| integration_cli::run(rt, cmd)).await,
        #[cfg(feature = "demo")]
        Command::Demo { dir, agents_per_site, endpoints, level_devices, ninjaone_devices } => {
            demo::run(settings, dir, demo::DemoSize { agents_per_site, endpoints, level_devices, ninjaone_devices })
                .await
        }
        #[cfg(not(feature = "demo"))]
        Command::Demo { .. } => Err(anyhow::anyhow!(
            "this rmm-sync is built without the demo (cargo feature `demo`, on by default, left out of the \
             container image so that it carries no simulators); run `cargo run --release -- demo` in a \
             checkout of the source instead"
        )),
        Command::Jobs(cmd) => {
            with_runtime(settings, |rt| async move {
                match cmd {
                    JobsCommand::List { tenant, status, kind, limit } => {
                        jobs_cli::list(&rt, tenant, status, kind, limit).await
                    }
                    JobsCommand::Show { job_id } => jobs_cli::show(&rt, &job_id).await,
                    JobsCommand::Retry { job_id } => {
                        println!("{}", rt.queue.retry(&job_id).await?);
                        Ok(())
                    }
                    JobsCommand::Cancel { job_id } => {
                        let out = rt.queue.cancel(&job_id).await?;
                        println!("{out:?}");
                        Ok(())
                    }
                }
            })
            .await
        }
    };
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("rmm-sync: {e:#}");
            ExitCode::FAILURE
        }
    };
    // After SIGTERM (or any end): the spans of the last seconds still reach the collector.
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    code
}

async fn open(settings: &Settings) -> anyhow::Result<Db> {
    let db = Db::connect(&settings.database_url, &settings.database).await?;
    tracing::info!(database = %redact_url(&settings.database_url), dialect = db.dialect().name(), "database opened");
    Ok(db)
}

async fn migrate(settings: &Settings) -> anyhow::Result<Db> {
    let db = open(settings).await?;
    let report = db.migrate(settings.schema_mode).await?;
    match report.algapsa {
        AlgapsaSchema::Created { applied } => tracing::info!(
            own_applied = report.ours_applied,
            algapsa_applied = applied,
            "migrations applied (standalone: AlgaPSA tables managed here)"
        ),
        AlgapsaSchema::Verified => {
            tracing::info!(own_applied = report.ours_applied, "migrations applied; AlgaPSA schema verified")
        }
    }
    Ok(db)
}

async fn runtime(settings: Settings, db: Db) -> anyhow::Result<rmm_jobs::Runtime> {
    let secrets = rmm_shared::secrets::SecretStore::from_process_env()?;
    secrets.log_location();
    let events = match settings.events.redis_url() {
        Some(url) => {
            rmm_shared::events::EventBus::new(url, &settings.events.redis_prefix, &settings.events.stream_prefix)?
        }
        None => rmm_shared::events::EventBus::disabled(),
    };
    if let Some(url) = settings.upstream.rate_limit_redis_url.as_deref().filter(|u| !u.is_empty()) {
        let shared = rmm_shared::ratelimit::SharedRateLimiter::new(
            url,
            "rmm-sync:",
            rmm_shared::http::RateLimiterRegistry::global(),
        )
        .map_err(|e| anyhow::anyhow!("upstream.rate_limit_redis_url: {e}"))?;
        rmm_shared::http::install_process_rate_limiter(Arc::new(shared));
    }
    build_runtime(settings, db, secrets, events).await
}

/// The job runtime over `db` with these secrets and events.
async fn build_runtime(
    settings: Settings,
    db: Db,
    secrets: rmm_shared::secrets::SecretStore,
    events: rmm_shared::events::EventBus,
) -> anyhow::Result<rmm_jobs::Runtime> {
    let registry = Arc::new(rmm_jobs::Registry::builtin());
    Ok(rmm_jobs::Runtime::open(db, Arc::new(settings), registry, secrets, Arc::new(events)).await?)
}

async fn serve(settings: Settings, ingress: bool, worker: bool) -> anyhow::Result<()> {
    let db = if settings.database.migrate_on_start { migrate(&settings).await? } else { open(&settings).await? };
    let rt = runtime(settings, db.clone()).await?;
    let shutdown = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    if ingress {
        let state = rmm_ingress::AppState::new(rt.clone(), rt.settings.http.admin_token().cloned());
        let token = shutdown.clone();
        tasks.spawn(async move { rmm_ingress::serve(state, token).await.map_err(anyhow::Error::from) });
    }
    if worker
        && !ingress
        && let Some(bind) = rt.settings.worker.metrics_bind.clone().filter(|b| !b.is_empty())
    {
        let state = rmm_ingress::AppState::new(rt.clone(), None);
        let token = shutdown.clone();
        tasks.spawn(async move { rmm_ingress::serve_ops(state, bind, token).await.map_err(anyhow::Error::from) });
    }
    if worker {
        let (rt, token) = (rt.clone(), shutdown.clone());
        tasks.spawn(async move { rmm_jobs::worker::run(rt, token).await.map_err(anyhow::Error::from) });
    }
    tracing::info!(ingress, worker, queue = rt.queue.kind().name(), "rmm-sync is running; Ctrl-C or SIGTERM stops it");
    let mut result = Ok(());
    tokio::select! {
        _ = rmm_jobs::worker::termination_signal() => tracing::info!("shutting down"),
        Some(r) = tasks.join_next() => {
            result = r.map_err(anyhow::Error::from).and_then(|r| r);
            if let Err(e) = &result { tracing::error!("{e:#}"); }
        }
    }
    shutdown.cancel();
    while let Some(r) = tasks.join_next().await {
        if let Ok(Err(e)) = r {
            tracing::error!("{e:#}");
            result = result.and(Err(e));
        }
    }
    // The upstream calls of the last seconds, which the periodic flush has not written yet.
    if let Err(e) = rt.calls.flush().await {
        tracing::warn!(error = %e, "could not write the last upstream call counts");
    }
    db.close().await;
    result
}

async fn keys(settings: &Settings, cmd: KeysCommand) -> anyhow::Result<()> {
    let db = migrate(settings).await?;
    match cmd {
        KeysCommand::Create { tenant, read_only, name } => {
            let scope = if read_only { KeyScope::Read } else { KeyScope::Write };
            let k = rmm_ingress::auth::create_key(&db, tenant, scope, &name).await?;
            println!("{}", k.key);
            eprintln!(
                "key {} created ({}, {}); it is shown only now",
                k.key_id,
                tenant.map(|t| format!("tenant {t}")).unwrap_or_else(|| "global".into()),
                scope.as_str()
            );
        }
        KeysCommand::List => {
            for k in rmm_ingress::auth::list_keys(&db).await? {
                println!(
                    "{}\t{}…\t{}\t{}\t{}{}",
                    k.key_id,
                    k.prefix,
                    k.tenant.as_deref().unwrap_or("global"),
                    k.scope,
                    k.name.as_deref().unwrap_or(""),
                    if k.revoked { "\trevoked" } else { "" }
                );
            }
        }
        KeysCommand::Revoke { key_id } => {
            if !rmm_ingress::auth::revoke_key(&db, &key_id).await? {
                anyhow::bail!("no active key {key_id}");
            }
            eprintln!("key {key_id} revoked");
        }
    }
    db.close().await;
    Ok(())
}

/// Runs `f` on a runtime over the migrated store, then closes the store.
async fn with_runtime<F, Fut>(settings: Settings, f: F) -> anyhow::Result<()>
where
    F: FnOnce(rmm_jobs::Runtime) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let db = migrate(&settings).await?;
    let rt = runtime(settings, db.clone()).await?;
    let result = f(rt).await;
    db.close().await;
    result
}

async fn enqueue(
    settings: Settings,
    kind: String,
    tenant: Option<uuid::Uuid>,
    provider: Option<String>,
    args: String,
) -> anyhow::Result<()> {
    let args: serde_json::Value =
        serde_json::from_str(&args).map_err(|e| anyhow::anyhow!("--args is not JSON: {e}"))?;
    with_runtime(settings, |rt| async move {
        rt.registry.require_for(&kind, provider.as_deref())?;
        let req = match (tenant, provider) {
            (Some(t), Some(p)) => {
                let id = jobs_cli::integration_of(&rt.db, t, &p).await?;
                rmm_jobs::JobRequest::for_integration(kind, t, p, id, rmm_jobs::Trigger::Admin)
            }
            (None, None) => rmm_jobs::JobRequest::global(kind, rmm_jobs::Trigger::Admin),
            _ => anyhow::bail!("give both --tenant and --provider, or neither"),
        };
        println!("{}", rt.queue.enqueue(req.args(args)).await?);
        Ok(())
    })
    .await
}
