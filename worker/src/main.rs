//! `rmm-sync`: the one command of the service.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rmm_shared::config::{Settings, redact_url};
use rmm_shared::db::Db;
use rmm_shared::db::migrate::AlgapsaSchema;

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
    /// Run the service (the default): apply migrations, then serve until Ctrl-C or SIGTERM.
    Serve,
    /// Apply migrations (or, in algapsa schema mode, check AlgaPSA's tables) and exit.
    Migrate,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rmm-sync: {e}");
            return ExitCode::from(2);
        }
    };
    rmm_shared::telemetry::init(&settings.log);
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(&settings).await,
        Command::Migrate => migrate(&settings).await.map(|_| ()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("rmm-sync: {e:#}");
            ExitCode::FAILURE
        }
    }
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

async fn serve(settings: &Settings) -> anyhow::Result<()> {
    let db = if settings.database.migrate_on_start { migrate(settings).await? } else { open(settings).await? };
    let active: Vec<(String,)> =
        db.fetch("SELECT provider FROM rmm_integrations WHERE is_active ORDER BY provider", &[]).await?;
    if active.is_empty() {
        tracing::info!("no integration is configured yet; nothing to sync");
    } else {
        let names: Vec<&str> = active.iter().map(|(p,)| p.as_str()).collect();
        tracing::info!(integrations = ?names, "active integrations found");
    }
    tracing::info!("rmm-sync is running; press Ctrl-C to stop");
    shutdown_signal().await;
    tracing::info!("shutting down");
    db.close().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
