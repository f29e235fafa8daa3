//! NinjaOne device-sync benchmark: `ninjaone-sync-devices` of a simulated fleet (devices spread over
//! `--organizations` organisations, every organisation mapped), run by one real `rmm-sync worker`
//! process on PostgreSQL against the NinjaOne simulator (in this process, on loopback), then
//! `ninjaone-sync-patches` from the fleet-wide reports and, with `--per-device-patches`, from two
//! calls per device.
//!
//!     cargo build --release --workspace --bins
//!     cargo run --release -p rmm-tests --bin bench-ninjaone-sync -- --devices 5000,50000
//!
//! Before each device sync it times the *fetch floor*: the reads the sync makes (every mapped
//! organisation's detailed device pages, `--concurrency` organisations at once as the worker runs
//! its units) with the same client, nothing written. It prints the sync time, its ratio to that
//! floor, the NinjaOne requests and the worker's peak RSS, for a full sync of a fresh tenant and an
//! unchanged full resync. Targets: 50,000 devices in 100 organisations in under 60 s with one
//! worker and no added latency, peak RSS under 200 MB.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use futures::StreamExt;
use rmm_jobs::{JobRequest, JobStatus, Runtime, Trigger};
use rmm_shared::config::QueueBackend;
use rmm_shared::http::{HttpClient, HttpConfig};
use rmm_shared::providers::ninjaone::client::{NinjaClient, NinjaConfig};
use rmm_shared::providers::ninjaone::secrets;
use rmm_shared::providers::ninjaone::token::{Grant, OAuthApp, TokenStore, Tokens};
use rmm_tests::runtime::{
    fast_settings, map_every_scope, point_at, rmm_sync_process, runtime, set_secret, wait_finished,
};
use rmm_tests::sim::ninjaone::{NinjaFleetSpec, NinjaSim, NinjaSimConfig};
use rmm_tests::stores;
use secrecy::SecretString;
use serde_json::{Value, json};
use uuid::Uuid;

#[derive(Debug, Parser)]
struct Args {
    /// Fleet sizes (devices), comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = vec![5_000usize, 50_000])]
    devices: Vec<usize>,
    /// Organisations (the devices are spread evenly over them).
    #[arg(long, default_value_t = 100)]
    organizations: usize,
    /// Pending OS patches per device (on two devices in three).
    #[arg(long, default_value_t = 3)]
    patches: usize,
    /// Added latency of every simulated NinjaOne answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Units one worker runs at once (`queue.concurrency`).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// NinjaOne requests per second allowed to the worker (`upstream.ninjaone_requests_per_second`, 0 = off).
    #[arg(long, default_value_t = 0)]
    rps: u32,
    /// Devices per page (`upstream.ninjaone_page_size`).
    #[arg(long, default_value_t = 500)]
    page_size: u32,
    /// Also time `ninjaone-sync-patches` with `source: per_device` (two calls per device).
    #[arg(long)]
    per_device_patches: bool,
}

/// A client as a worker builds it, reading the tenant's stored tokens.
fn client(
    rt: &Runtime,
    sim: &NinjaSim,
    tenant: Uuid,
    integration: Uuid,
    page_size: u32,
) -> anyhow::Result<NinjaClient> {
    let mut config = NinjaConfig::new(sim.base_url());
    config.page_size = page_size;
    config.http = HttpConfig { provider: "ninjaone", rate_limit: None, ..HttpConfig::default() };
    let http = HttpClient::new(config.http.clone())?;
    let store = TokenStore { db: rt.db.clone(), secrets: rt.secrets.clone(), tenant, integration };
    let app = OAuthApp {
        client_id: sim.client_id().to_owned(),
        client_secret: SecretString::from(sim.client_secret().to_owned()),
    };
    let base = url::Url::parse(&format!("{}/", sim.base_url()))?;
    Ok(NinjaClient::new(config, http, Arc::new(Tokens::new(store, app, Grant::AuthorizationCode, base)))?)
}

/// The reads of a device sync with nothing written: each organisation's pages.
async fn fetch_floor(client: &NinjaClient, orgs: &[i64], concurrency: usize) -> anyhow::Result<(f64, usize)> {
    let start = Instant::now();
    let walks = futures::stream::iter(orgs.iter().copied())
        .map(|org| async move {
            let mut pages = client.device_pages(org);
            let mut n = 0usize;
            while let Some(p) = pages.next_page().await? {
                n += p.len();
            }
            anyhow::Ok(n)
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

async fn run_job(
    rt: &Runtime,
    tenant: Uuid,
    integration: Uuid,
    kind: &str,
    args: Value,
) -> anyhow::Result<(f64, rmm_jobs::JobView)> {
    let start = Instant::now();
    let id = rt
        .queue
        .enqueue(JobRequest::for_integration(kind, tenant, "ninjaone", integration, Trigger::Admin).args(args))
        .await?;
    let job = wait_finished(rt, &id, Duration::from_secs(1800)).await;
    Ok((start.elapsed().as_secs_f64(), job))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    println!(
        "bench-ninjaone-sync: ninjaone-sync-devices, {} organisations, page size {}, {} ms latency, PostgreSQL queue and store, \
         one rmm-sync worker ({} units at once), {} NinjaOne requests/s",
        args.organizations,
        args.page_size,
        args.latency_ms,
        args.concurrency,
        if args.rps == 0 { "unlimited".to_owned() } else { args.rps.to_string() }
    );
    println!(
        "{:>8} {:>16} {:>8} {:>10} {:>8} {:>10} {:>9} {:>10} {:>12} {:>11}",
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
        let fleet = NinjaFleetSpec {
            seed: 7,
            organizations: args.organizations,
            devices: n,
            software_per_device: 0,
            patches_per_device: args.patches,
        };
        let sim = NinjaSim::start(NinjaSimConfig { fleet, ..Default::default() }).await?;
        sim.set_latency(Duration::from_millis(args.latency_ms));
        let store = stores::postgres_with(20).await?;
        let dir = tempfile::tempdir()?;
        let db = &store.db;
        let rt = runtime(db, fast_settings(QueueBackend::Database), dir.path()).await?;
        let tenant = stores::tenant(db).await?;
        let integration = stores::integration(db, tenant, "ninjaone").await?;
        point_at(db, tenant, "ninjaone", sim.base_url()).await;
        set_secret(&rt, tenant, secrets::CLIENT_ID, sim.client_id()).await;
        set_secret(&rt, tenant, secrets::CLIENT_SECRET, sim.client_secret()).await;
        set_secret(&rt, tenant, secrets::CREDENTIALS, &sim.authorize(None).to_string()).await;
        let mut child = rmm_sync_process("worker", &store.url, dir.path())
            .env("RMM_SYNC_TEST_JOBS", "0")
            .env("RMM_SYNC_LOG__LEVEL", "error")
            .env("RMM_SYNC_QUEUE__CONCURRENCY", args.concurrency.to_string())
            .env("RMM_SYNC_QUEUE__HEARTBEAT_SECS", "5")
            .env("RMM_SYNC_QUEUE__MISSED_HEARTBEATS", "4")
            .env("RMM_SYNC_UPSTREAM__NINJAONE_REQUESTS_PER_SECOND", args.rps.to_string())
            .env("RMM_SYNC_UPSTREAM__NINJAONE_PAGE_SIZE", args.page_size.to_string())
            .stdout(std::process::Stdio::null())
            .spawn()?;
        let (_, job) = run_job(&rt, tenant, integration, "sync-org", json!({})).await?;
        anyhow::ensure!(job.status == JobStatus::Done, "organisation sync failed: {job:?}");
        map_every_scope(db, tenant, "Acme").await;
        let orgs: Vec<i64> = sim.organizations().iter().map(|o| o.id).collect();
        let floor_client = client(&rt, &sim, tenant, integration, args.page_size)?;
        let rss = |child: &tokio::process::Child| child.id().map(rmm_tests::bench::peak_rss_of).unwrap_or(f64::NAN);
        for pass in ["full", "unchanged"] {
            let (floor, read) = fetch_floor(&floor_client, &orgs, args.concurrency).await?;
            anyhow::ensure!(read == n, "the fetch floor read {read} devices, not {n}");
            sim.reset_log();
            let (secs, job) = run_job(&rt, tenant, integration, "ninjaone-sync-devices", json!({})).await?;
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
            let rss = rss(&child);
            println!(
                "{n:>8} {pass:>16} {secs:>8.1} {:>10.0} {floor:>8.1} {:>10.2} {:>9} {:>7.0} MB {:>12.2} {:>11.2}",
                n as f64 / secs,
                secs / floor,
                sim.requests().len(),
                rss,
                secs / 60.0,
                rss / 200.0
            );
        }
        let mut sources = vec!["reports"];
        if args.per_device_patches {
            sources.push("per_device");
        }
        for source in sources {
            sim.reset_log();
            let (secs, job) =
                run_job(&rt, tenant, integration, "ninjaone-sync-patches", json!({ "source": source })).await?;
            let counts = job.result.as_ref().map(|r| r["counts"].clone()).unwrap_or_default();
            if job.status != JobStatus::Done || counts["updated"].as_u64() != Some(n as u64) {
                anyhow::bail!("the patch sync ({source}) did not write every device: {job:?}");
            }
            println!(
                "{n:>8} {:>16} {secs:>8.1} {:>10.0} {:>8} {:>10} {:>9} {:>7.0} MB",
                format!("patches/{source}"),
                n as f64 / secs,
                "-",
                "-",
                sim.requests().len(),
                rss(&child),
            );
        }
        child.start_kill()?;
        child.wait().await?;
        store.cleanup().await;
    }
    println!("targets: 50,000 devices, one worker, 0 ms: < 60 s (time/target < 1), peak RSS < 200 MB (RSS/target < 1)");
    Ok(())
}
