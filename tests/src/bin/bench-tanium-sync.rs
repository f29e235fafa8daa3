//! Tanium full-sync benchmark: `tanium-full-sync` of a simulated estate (endpoints spread over
//! computer groups, some in two groups), run by one real `rmm-sync worker` process on PostgreSQL
//! against the Gateway simulator (a GraphQL server in this process, on loopback).
//!
//!     cargo build --release --workspace --bins
//!     cargo run --release -p rmm-tests --bin bench-tanium-sync -- --endpoints 5000,50000
//!
//! Prints endpoints/s, the Gateway requests made and the worker's peak RSS, with the ratio to the
//! targets: 50,000 endpoints in 20 groups in under 90 s, peak RSS under 200 MB. The worker runs
//! with the service's default Tanium request limit (20/s) unless `--rps` says otherwise. Each run
//! syncs a fresh tenant (every endpoint is created).

use std::time::{Duration, Instant};

use clap::Parser;
use rmm_jobs::{JobRequest, JobStatus, Trigger};
use rmm_shared::config::QueueBackend;
use rmm_tests::runtime::{
    fast_settings, map_every_scope, point_at, rmm_sync_process, runtime, set_secret, wait_finished,
};
use rmm_tests::sim::tanium::{TaniumFleetSpec, TaniumSim, TaniumSimConfig};
use rmm_tests::stores;

#[derive(Debug, Parser)]
struct Args {
    /// Estate sizes (endpoints), comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = vec![5_000usize, 50_000])]
    endpoints: Vec<usize>,
    /// Computer groups the endpoints are spread over.
    #[arg(long, default_value_t = 20)]
    groups: usize,
    /// Endpoints that are also in a second group.
    #[arg(long, default_value_t = 500)]
    in_two_groups: usize,
    /// Installed applications per endpoint.
    #[arg(long, default_value_t = 10)]
    apps: usize,
    /// Gateway requests per second allowed to the worker (`upstream.tanium_requests_per_second`).
    #[arg(long, default_value_t = 20)]
    rps: u32,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    println!(
        "bench-tanium-sync: tanium-full-sync, {} groups, PostgreSQL queue and store, one rmm-sync worker, {} Gateway requests/s",
        args.groups, args.rps
    );
    println!(
        "{:>9} {:>9} {:>12} {:>9} {:>10} {:>12} {:>14} {:>12}",
        "endpoints", "seconds", "endpoints/s", "requests", "peak RSS", "time/target", "RSS/target", "duplicates"
    );
    for &n in &args.endpoints {
        let spec = TaniumFleetSpec {
            seed: 7,
            groups: args.groups,
            endpoints: n,
            in_two_groups: args.in_two_groups.min(n),
            apps_per_endpoint: args.apps,
        };
        let sim = TaniumSim::start(TaniumSimConfig { fleet: spec, ..TaniumSimConfig::default() }).await?;
        let store = stores::postgres_with(20).await?;
        let dir = tempfile::tempdir()?;
        let db = &store.db;
        let rt = runtime(db, fast_settings(QueueBackend::Database), dir.path()).await?;
        let tenant = stores::tenant(db).await?;
        let integration = stores::integration(db, tenant, "tanium").await?;
        point_at(db, tenant, "tanium", sim.base_url()).await;
        set_secret(&rt, tenant, "tanium_api_token", sim.token()).await;
        let org = rt
            .queue
            .enqueue(JobRequest::for_integration("sync-org", tenant, "tanium", integration, Trigger::Admin))
            .await?;
        let mut child = rmm_sync_process("worker", &store.url, dir.path())
            .env("RMM_SYNC_TEST_JOBS", "0")
            .env("RMM_SYNC_LOG__LEVEL", "error")
            .env("RMM_SYNC_UPSTREAM__TANIUM_REQUESTS_PER_SECOND", args.rps.to_string())
            .stdout(std::process::Stdio::null())
            .spawn()?;
        let job = wait_finished(&rt, &org, Duration::from_secs(120)).await;
        anyhow::ensure!(job.status == JobStatus::Done, "scope sync failed: {job:?}");
        map_every_scope(db, tenant, "Acme").await;
        sim.reset_log();
        let start = Instant::now();
        let id = rt
            .queue
            .enqueue(JobRequest::for_integration("tanium-full-sync", tenant, "tanium", integration, Trigger::Admin))
            .await?;
        let job = wait_finished(&rt, &id, Duration::from_secs(1800)).await;
        let secs = start.elapsed().as_secs_f64();
        let rss = child.id().map(rmm_tests::bench::peak_rss_of).unwrap_or(f64::NAN);
        child.start_kill()?;
        child.wait().await?;
        let counts = job.result.as_ref().map(|r| r["counts"].clone()).unwrap_or_default();
        if job.status != JobStatus::Done || counts["created"].as_u64() != Some(n as u64) {
            anyhow::bail!("the sync did not create every endpoint: {job:?}");
        }
        let requests = sim.requests().len();
        println!(
            "{n:>9} {secs:>9.1} {:>12.0} {requests:>9} {:>7.0} MB {:>12.2} {:>14.2} {:>12}",
            n as f64 / secs,
            rss,
            secs / 90.0,
            rss / 200.0,
            counts["duplicates_skipped"]
        );
        store.cleanup().await;
    }
    println!("targets: 50,000 endpoints in 20 groups in < 90 s (time/target < 1), peak RSS < 200 MB (RSS/target < 1)");
    Ok(())
}
