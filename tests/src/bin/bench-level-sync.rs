//! Level device-sync benchmark: `levelio-sync-devices` of a simulated fleet (devices spread over
//! nested groups under `--top-groups` top-level groups, every group mapped), run by one real
//! `rmm-sync worker` process on PostgreSQL against the Level simulator (in this process, on
//! loopback).
//!
//!     cargo build --release --workspace --bins
//!     cargo run --release -p rmm-tests --bin bench-level-sync -- --devices 5000,50000
//!
//! Before each sync it times the *fetch floor*: the reads the sync makes (the available-updates
//! walk, then every top-level group's device pages, `--concurrency` groups at once as the worker
//! runs its units), with nothing written. It prints the sync time, its ratio to that floor, the
//! Level requests, and the worker's peak RSS, for a full sync of a fresh tenant and an unchanged
//! full resync. Targets: 50,000 devices in under 60 s with one worker and no added latency, peak
//! RSS under 200 MB.

use std::time::{Duration, Instant};

use clap::Parser;
use futures::StreamExt;
use rmm_jobs::{JobRequest, JobStatus, Trigger};
use rmm_shared::config::QueueBackend;
use rmm_shared::providers::levelio::client::{DeviceFilter, LevelClient, LevelConfig};
use rmm_shared::providers::levelio::mapping::GroupTree;
use rmm_tests::runtime::{
    fast_settings, map_every_scope, point_at, rmm_sync_process, runtime, set_secret, wait_finished,
};
use rmm_tests::sim::levelio::{LevelFleetSpec, LevelSim};
use rmm_tests::stores;
use secrecy::SecretString;

#[derive(Debug, Parser)]
struct Args {
    /// Fleet sizes (devices), comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = vec![5_000usize, 50_000])]
    devices: Vec<usize>,
    /// Top-level groups (each with two sites and a nested group below the first).
    #[arg(long, default_value_t = 10)]
    top_groups: usize,
    /// Available updates per device.
    #[arg(long, default_value_t = 2)]
    updates: usize,
    /// Added latency of every simulated Level answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Units one worker runs at once (`queue.concurrency`).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Level requests per second allowed to the worker (`upstream.levelio_requests_per_second`, 0 = off).
    #[arg(long, default_value_t = 0)]
    rps: u32,
}

/// The reads of a sync with nothing written: the updates walk, then each top-level group's pages.
async fn fetch_floor(sim: &LevelSim, roots: &[String], concurrency: usize) -> anyhow::Result<(f64, usize)> {
    let mut config = LevelConfig::new(sim.base_url(), SecretString::from(sim.api_key().to_owned()));
    config.http.rate_limit = None;
    let client = LevelClient::new(config)?;
    let start = Instant::now();
    let mut pages = client.available_update_pages(None);
    while pages.next_page().await?.is_some() {}
    let walks = futures::stream::iter(roots.iter().cloned())
        .map(|root| {
            let client = &client;
            async move {
                let mut n = 0usize;
                for filter in [DeviceFilter::Below(root.clone()), DeviceFilter::Group(root)] {
                    let mut pages = client.device_pages(&filter);
                    while let Some(p) = pages.next_page().await? {
                        n += p.len();
                    }
                }
                anyhow::Ok(n)
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
    let mut devices = 0;
    for w in walks {
        devices += w?;
    }
    Ok((start.elapsed().as_secs_f64(), devices))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    println!(
        "bench-level-sync: levelio-sync-devices, {} top-level groups, {} updates/device, {} ms latency, PostgreSQL queue and store, \
         one rmm-sync worker ({} units at once), {} Level requests/s",
        args.top_groups,
        args.updates,
        args.latency_ms,
        args.concurrency,
        if args.rps == 0 { "unlimited".to_owned() } else { args.rps.to_string() }
    );
    println!(
        "{:>8} {:>10} {:>8} {:>10} {:>8} {:>10} {:>9} {:>10} {:>12} {:>11}",
        "devices",
        "pass",
        "seconds",
        "devices/s",
        "floor s",
        "sync/floor",
        "requests",
        "peak RSS",
        "time/target",
        "RSS/target"
    );
    for &n in &args.devices {
        let spec = LevelFleetSpec {
            seed: 7,
            top_groups: args.top_groups,
            sites_per_group: 2,
            devices: n,
            updates_per_device: args.updates,
            alerts: 0,
        };
        let gen_start = Instant::now();
        let sim = LevelSim::start(spec).await?;
        let gen_secs = gen_start.elapsed().as_secs_f64();
        sim.set_latency(Duration::from_millis(args.latency_ms));
        let store = stores::postgres_with(20).await?;
        let dir = tempfile::tempdir()?;
        let db = &store.db;
        let rt = runtime(db, fast_settings(QueueBackend::Database), dir.path()).await?;
        let tenant = stores::tenant(db).await?;
        let integration = stores::integration(db, tenant, "levelio").await?;
        point_at(db, tenant, "levelio", sim.base_url()).await;
        set_secret(&rt, tenant, "levelio_api_key", sim.api_key()).await;
        let mut child = rmm_sync_process("worker", &store.url, dir.path())
            .env("RMM_SYNC_TEST_JOBS", "0")
            .env("RMM_SYNC_LOG__LEVEL", "error")
            .env("RMM_SYNC_QUEUE__CONCURRENCY", args.concurrency.to_string())
            .env("RMM_SYNC_QUEUE__HEARTBEAT_SECS", "5")
            .env("RMM_SYNC_QUEUE__MISSED_HEARTBEATS", "4")
            .env("RMM_SYNC_UPSTREAM__LEVELIO_REQUESTS_PER_SECOND", args.rps.to_string())
            .stdout(std::process::Stdio::null())
            .spawn()?;
        let org = rt
            .queue
            .enqueue(JobRequest::for_integration("sync-org", tenant, "levelio", integration, Trigger::Admin))
            .await?;
        let job = wait_finished(&rt, &org, Duration::from_secs(120)).await;
        anyhow::ensure!(job.status == JobStatus::Done, "group sync failed: {job:?}");
        map_every_scope(db, tenant, "Acme").await;
        let tree = GroupTree::new(
            &sim.fleet()
                .groups
                .iter()
                .map(|g| rmm_shared::providers::levelio::Group {
                    id: g.id.clone(),
                    parent_id: g.parent_id.clone(),
                    name: g.name.clone(),
                    device_count: None,
                    descendent_device_count: None,
                })
                .collect::<Vec<_>>(),
        );
        let mapped = sim.fleet().groups.iter().map(|g| g.id.clone()).collect();
        let roots = tree.roots_of(&mapped);
        for pass in ["full", "unchanged"] {
            let (floor, read) = fetch_floor(&sim, &roots, args.concurrency).await?;
            anyhow::ensure!(read == n, "the fetch floor read {read} devices, not {n}");
            sim.reset_log();
            let start = Instant::now();
            let id = rt
                .queue
                .enqueue(JobRequest::for_integration(
                    "levelio-sync-devices",
                    tenant,
                    "levelio",
                    integration,
                    Trigger::Admin,
                ))
                .await?;
            let job = wait_finished(&rt, &id, Duration::from_secs(1800)).await;
            let secs = start.elapsed().as_secs_f64();
            let counts = job.result.as_ref().map(|r| r["counts"].clone()).unwrap_or_default();
            // A fresh tenant: every device created; the resync: every device processed, none created.
            let expected = if pass == "full" {
                counts["created"].as_u64() == Some(n as u64)
            } else {
                counts["processed"].as_u64() == Some(n as u64) && counts["created"].as_u64() == Some(0)
            };
            if job.status != JobStatus::Done || !expected {
                anyhow::bail!("the {pass} sync did not write every device: {job:?}");
            }
            let rss = child.id().map(rmm_tests::bench::peak_rss_of).unwrap_or(f64::NAN);
            println!(
                "{n:>8} {pass:>10} {secs:>8.1} {:>10.0} {floor:>8.1} {:>10.2} {:>9} {:>7.0} MB {:>12.2} {:>11.2}",
                n as f64 / secs,
                secs / floor,
                sim.requests().len(),
                rss,
                secs / 60.0,
                rss / 200.0
            );
        }
        println!("         (simulator fleet generated in {gen_secs:.1} s, outside the timings)");
        child.start_kill()?;
        child.wait().await?;
        store.cleanup().await;
    }
    println!("targets: 50,000 devices, one worker, 0 ms: < 60 s (time/target < 1), peak RSS < 200 MB (RSS/target < 1)");
    Ok(())
}
