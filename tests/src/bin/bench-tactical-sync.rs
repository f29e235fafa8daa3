//! Tactical full-sync benchmark: `sync-devices` of a simulated fleet, run by one or two real
//! `rmm-sync worker` processes on PostgreSQL, with the Tactical simulator answering at once or
//! after a fixed latency per request.
//!
//!     cargo build --release --workspace --bins
//!     cargo run --release -p rmm-tests --bin bench-tactical-sync -- --agents 5000,50000
//!
//! For each fleet size and latency it prints agents/s and the peak RSS of each worker process,
//! with one and with two workers (`--workers`), and the speed-up of two over one.
//! `--wmi-detail-kb 100` pads every agent's `wmi_detail` to about 100 KB, as real agents send it;
//! the memory target is a peak RSS under 150 MB per worker at 50,000 agents whatever that size. Targets: 50,000 agents at 0 ms
//! in under 60 s with one worker; at 50 ms, two workers at least 1.8× one. Each run syncs a fresh
//! tenant (every agent is created).

use std::time::{Duration, Instant};

use clap::Parser;
use rmm_jobs::{JobRequest, JobStatus, Trigger};
use rmm_shared::config::QueueBackend;
use rmm_tests::bench::peak_rss_of;
use rmm_tests::runtime::{fast_settings, mapped_tactical_tenant, rmm_sync_process, runtime, wait_finished};
use rmm_tests::sim::tactical::{FleetSpec, SimConfig, TacticalSim};
use rmm_tests::stores;

#[derive(Debug, Parser)]
struct Args {
    /// Fleet sizes (agents), comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = vec![5_000usize, 50_000])]
    agents: Vec<usize>,
    /// Simulator latency per request in ms, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = vec![0u64, 50])]
    latency_ms: Vec<u64>,
    /// Tactical clients the fleet is spread over (one sync unit each).
    #[arg(long, default_value_t = 20)]
    clients: usize,
    /// Agents per Tactical site.
    #[arg(long, default_value_t = 250)]
    agents_per_site: usize,
    /// Units one worker process runs at once (`queue.concurrency`; the service default is 4).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Pad every agent's `wmi_detail` to about this many KB (0: the recorded size, under 1 KB;
    /// real agents send 20–100 KB).
    #[arg(long, default_value_t = 0)]
    wmi_detail_kb: usize,
    /// Worker processes per run, comma-separated (each fleet is synced once per entry).
    #[arg(long, value_delimiter = ',', default_values_t = vec![1usize, 2])]
    workers: Vec<usize>,
}

struct RunResult {
    secs: f64,
    rss: Vec<f64>,
    /// Unit attempts beyond the first (a unit that failed and was retried after its backoff).
    retries: i64,
    errors: Vec<String>,
}

async fn one_run(
    store: &stores::TestStore,
    sim: &TacticalSim,
    secrets: &std::path::Path,
    workers: usize,
    agents: usize,
    concurrency: usize,
) -> anyhow::Result<RunResult> {
    let db = &store.db;
    let rt = runtime(db, fast_settings(QueueBackend::Database), secrets).await?;
    let (tenant, integration) = mapped_tactical_tenant(db, &rt, sim).await;

    let mut children = Vec::new();
    for _ in 0..workers {
        let child = rmm_sync_process("worker", &store.url, secrets)
            .env("RMM_SYNC_TEST_JOBS", "0")
            .env("RMM_SYNC_LOG__LEVEL", "error")
            .env("RMM_SYNC_QUEUE__CONCURRENCY", concurrency.to_string())
            // The service's own heartbeat (5 s, 4 missed), not the tests' short one.
            .env("RMM_SYNC_QUEUE__HEARTBEAT_SECS", "5")
            .env("RMM_SYNC_QUEUE__MISSED_HEARTBEATS", "4")
            .stdout(std::process::Stdio::null())
            .spawn()?;
        children.push(child);
    }
    // Let the workers connect before the clock starts.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let start = Instant::now();
    let id = rt
        .queue
        .enqueue(JobRequest::for_integration("sync-devices", tenant, "tacticalrmm", integration, Trigger::Admin))
        .await?;
    let job = wait_finished(&rt, &id, Duration::from_secs(1800)).await;
    let secs = start.elapsed().as_secs_f64();
    let rss = children.iter().map(|c| c.id().map(peak_rss_of).unwrap_or(f64::NAN)).collect();
    for mut c in children {
        c.start_kill()?;
        c.wait().await?;
    }
    let counts = &job.result.as_ref().map(|r| r["counts"].clone()).unwrap_or_default();
    if job.status != JobStatus::Done || counts["created"].as_u64() != Some(agents as u64) {
        anyhow::bail!("the sync did not create every agent: {job:?}");
    }
    let p = rmm_shared::db::sql::P(db.dialect());
    let retried: Vec<(i64, Option<String>)> = db
        .fetch(
            &format!(
                "SELECT CAST(attempts AS BIGINT), last_error FROM {} WHERE tenant = {} AND kind = 'sync-devices-unit' AND attempts > 1",
                p.t("job_runs"),
                p.uuid(1)
            ),
            &[&tenant.to_string()],
        )
        .await?;
    let retries = retried.iter().map(|(a, _)| a - 1).sum();
    let errors = retried.into_iter().filter_map(|(_, e)| e).collect();
    Ok(RunResult { secs, rss, retries, errors })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    println!(
        "bench-tactical-sync: full sync, PostgreSQL queue and store, rmm-sync worker processes running {} units at once, wmi_detail {}",
        args.concurrency,
        if args.wmi_detail_kb == 0 {
            "as recorded (< 1 KB)".to_owned()
        } else {
            format!("padded to {} KB", args.wmi_detail_kb)
        }
    );
    println!(
        "{:>8} {:>8} {:>8} {:>9} {:>11} {:>22} {:>9} {:>8}",
        "agents", "latency", "workers", "seconds", "agents/s", "peak RSS per worker", "speed-up", "retries"
    );
    for &agents in &args.agents {
        let sites = agents.div_ceil(args.agents_per_site).max(args.clients);
        let per_client = sites.div_ceil(args.clients);
        let per_site = agents.div_ceil(args.clients * per_client);
        let fleet =
            FleetSpec { wmi_detail_kb: args.wmi_detail_kb, ..FleetSpec::new(7, args.clients, per_client, per_site) };
        let real = fleet.agent_count();
        for &latency in &args.latency_ms {
            let sim = TacticalSim::start(SimConfig::with_fleet(fleet.clone())).await?;
            sim.set_latency(Duration::from_millis(latency));
            let store = stores::postgres_with(20).await?;
            let dir = tempfile::tempdir()?;
            let mut one = None;
            for &workers in &args.workers {
                let r = one_run(&store, &sim, dir.path(), workers, real, args.concurrency).await?;
                let rate = real as f64 / r.secs;
                let speedup = match one {
                    None => {
                        one = Some(rate);
                        String::from("-")
                    }
                    Some(base) => format!("{:.2}×", rate / base),
                };
                let rss: Vec<String> = r.rss.iter().map(|m| format!("{m:.0}")).collect();
                println!(
                    "{real:>8} {:>6}ms {workers:>8} {:>9.1} {rate:>11.0} {:>19} MB {speedup:>9} {:>8}",
                    latency,
                    r.secs,
                    rss.join(" / "),
                    r.retries
                );
                for e in r.errors.iter().take(3) {
                    println!("    retried after: {e}");
                }
            }
            store.cleanup().await;
        }
    }
    println!("targets: 50,000 agents at 0 ms in < 60 s with one worker; at 50 ms two workers >= 1.8x one");
    Ok(())
}
