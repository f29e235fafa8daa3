//! The soak: a real `rmm-sync serve` process on PostgreSQL under a mixed load for a while —
//! Tactical alert webhooks (triggers and resolves), Tactical device syncs (full and incremental),
//! Tanium full syncs, software and alert backfills — sampling the process's RSS and open sockets.
//! After the warm-up neither may grow by more than 10 %. Run by `tests/src/bin/soak.rs` and by
//! the long test in `tests/tests/it/soak.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rmm_jobs::{JobRequest, JobStatus, Trigger};
use rmm_shared::config::QueueBackend;
use serde_json::json;

use crate::bench::{rss_of, sockets_of};
use crate::runtime::{SECRET, fast_settings, map_every_scope, mapped_tactical_tenant, rmm_sync_process, runtime};
use crate::sim::tactical::{FleetSpec, SimConfig, TacticalSim};
use crate::sim::tanium::{TaniumFleetSpec, TaniumSim, TaniumSimConfig};
use crate::stores;

/// One sample of the service process.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub at: Duration,
    pub rss_mb: f64,
    pub sockets: usize,
    pub webhooks: u64,
    pub jobs_done: u64,
}

#[derive(Debug, Clone)]
pub struct SoakReport {
    pub samples: Vec<Sample>,
    pub warmup: Duration,
    /// Mean RSS of the first minute after the warm-up, and of the last minute.
    pub rss_after_warmup: f64,
    pub rss_at_end: f64,
    pub sockets_after_warmup: f64,
    pub sockets_at_end: f64,
    pub webhooks: u64,
    pub webhooks_refused: u64,
    pub jobs_done: u64,
    pub jobs_failed: u64,
}

impl SoakReport {
    pub fn rss_growth(&self) -> f64 {
        self.rss_at_end / self.rss_after_warmup - 1.0
    }
    pub fn socket_growth(&self) -> f64 {
        self.sockets_at_end / self.sockets_after_warmup - 1.0
    }
    /// Neither grew by more than 10 % after the warm-up; every webhook was accepted; no job failed.
    pub fn passed(&self) -> bool {
        self.rss_growth() <= 0.10 && self.socket_growth() <= 0.10 && self.webhooks_refused == 0 && self.jobs_failed == 0
    }
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 { f64::NAN } else { sum / n as f64 }
}

/// Runs the soak for `duration` (warm-up: the first fifth, at least a minute), printing a line per
/// `every` on stdout.
pub async fn run(duration: Duration, every: Duration, webhooks_per_second: u32) -> anyhow::Result<SoakReport> {
    let warmup = (duration / 5).max(Duration::from_secs(60));
    anyhow::ensure!(duration >= warmup + Duration::from_secs(120), "a soak needs at least warm-up + 2 minutes");
    let store = stores::postgres_with(30).await?;
    let db = &store.db;
    let dir = tempfile::tempdir()?;
    let tactical = TacticalSim::start(SimConfig::with_fleet(FleetSpec::new(5, 5, 2, 50))).await?;
    let tanium = TaniumSim::start(TaniumSimConfig {
        fleet: TaniumFleetSpec { endpoints: 500, groups: 5, in_two_groups: 20, apps_per_endpoint: 5, seed: 3 },
        ..TaniumSimConfig::default()
    })
    .await?;
    let rt = runtime(db, fast_settings(QueueBackend::Database), dir.path()).await?;
    let (tenant, tactical_id) = mapped_tactical_tenant(db, &rt, &tactical).await;
    let tanium_id = stores::integration(db, tenant, "tanium").await?;
    crate::runtime::point_at(db, tenant, "tanium", tanium.base_url()).await;
    crate::runtime::set_secret(&rt, tenant, "tanium_api_token", tanium.token()).await;

    let port = crate::services::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut service = rmm_sync_process("serve", &store.url, dir.path())
        .env("RMM_SYNC_HTTP__BIND", format!("127.0.0.1:{port}"))
        .env("RMM_SYNC_TEST_JOBS", "0")
        .env("RMM_SYNC_LOG__LEVEL", "error")
        .spawn()?;
    let pid = service.id().ok_or_else(|| anyhow::anyhow!("no pid"))?;
    let http = reqwest::Client::new();
    crate::runtime::wait_listening(&http, &base).await;
    let start = Instant::now();
    let enqueue = |kind: &'static str, provider: &'static str, integration, args: serde_json::Value| {
        let rt = rt.clone();
        async move {
            rt.queue
                .enqueue(JobRequest::for_integration(kind, tenant, provider, integration, Trigger::Schedule).args(args))
                .await
        }
    };
    let org = enqueue("sync-org", "tanium", tanium_id, json!({})).await?;
    let job = crate::runtime::wait_finished(&rt, &org, Duration::from_secs(60)).await;
    anyhow::ensure!(job.status == JobStatus::Done, "Tanium scope sync failed: {job:?}");
    // Every remote organisation (Tactical clients and Tanium groups) to one client.
    map_every_scope(db, tenant, "Soak Co").await;

    // Webhooks, at a steady rate, for random agents: mostly triggers, every fourth a resolve.
    let sent = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let agents: Vec<String> = tactical.agents().into_iter().map(|a| a.agent_id).collect();
    let load_ends = start + duration;
    let hooks = {
        let (http, base, sent, refused) = (http.clone(), base.clone(), sent.clone(), refused.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1) / webhooks_per_second.max(1));
            let mut i = 0u64;
            while Instant::now() < load_ends {
                tick.tick().await;
                i += 1;
                let agent = &agents[(i as usize * 7919) % agents.len()];
                let event = if i.is_multiple_of(4) { "resolve" } else { "trigger" };
                let body = json!({"agent_id": agent, "alert_id": format!("soak-{}", i - i % 4), "event": event,
                                  "severity": "warning", "message": "Disk C: below 10%"});
                let ok = http
                    .post(format!("{base}/api/webhooks/tacticalrmm?tenant={tenant}"))
                    .header("X-Alga-Webhook-Secret", SECRET)
                    .json(&body)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                sent.fetch_add(1, Ordering::Relaxed);
                if !ok {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };

    let mut samples = Vec::new();
    let mut next_sample = start;
    let mut round = 0u64;
    // Jobs of every kind with this status (the store's per-status counts; the soak's database
    // holds this tenant's jobs and the service's own maintenance jobs).
    let done_count = |rt: rmm_jobs::Runtime, status: JobStatus| async move {
        rt.store()
            .counts()
            .await
            .map(|rows| rows.iter().filter(|(_, s, _)| s == status.as_str()).map(|(_, _, n)| *n as u64).sum::<u64>())
    };
    while Instant::now() < load_ends {
        // Syncs every 15 s: Tactical devices (full every fourth round, else incremental) and a
        // Tanium full sync; software and alert backfills every minute.
        let mode = if round.is_multiple_of(4) { "full" } else { "incremental" };
        enqueue("sync-devices", "tacticalrmm", tactical_id, json!({ "mode": mode })).await?;
        enqueue("tanium-full-sync", "tanium", tanium_id, json!({ "mode": "full" })).await?;
        if round.is_multiple_of(4) {
            enqueue("ingest-software", "tacticalrmm", tactical_id, json!({})).await?;
            enqueue("backfill-alerts", "tacticalrmm", tactical_id, json!({})).await?;
        }
        round += 1;
        let round_ends = Instant::now() + Duration::from_secs(15);
        while Instant::now() < round_ends.min(load_ends) {
            if Instant::now() >= next_sample {
                let s = Sample {
                    at: start.elapsed(),
                    rss_mb: rss_of(pid),
                    sockets: sockets_of(pid),
                    webhooks: sent.load(Ordering::Relaxed),
                    jobs_done: done_count(rt.clone(), JobStatus::Done).await.unwrap_or(0),
                };
                println!(
                    "{:>6.0} s  RSS {:>7.1} MB  sockets {:>4}  webhooks {:>7}  jobs done {:>6}{}",
                    s.at.as_secs_f64(),
                    s.rss_mb,
                    s.sockets,
                    s.webhooks,
                    s.jobs_done,
                    if s.at < warmup { "  (warm-up)" } else { "" }
                );
                samples.push(s);
                next_sample += every;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    hooks.await?;
    let jobs_failed = done_count(rt.clone(), JobStatus::Failed).await?;
    let jobs_done = done_count(rt.clone(), JobStatus::Done).await?;
    service.start_kill()?;
    service.wait().await?;
    let minute = Duration::from_secs(60);
    let after = || samples.iter().filter(|s| s.at >= warmup && s.at < warmup + minute);
    let end = || samples.iter().filter(|s| s.at + minute >= duration);
    let report = SoakReport {
        warmup,
        rss_after_warmup: mean(after().map(|s| s.rss_mb)),
        rss_at_end: mean(end().map(|s| s.rss_mb)),
        sockets_after_warmup: mean(after().map(|s| s.sockets as f64)),
        sockets_at_end: mean(end().map(|s| s.sockets as f64)),
        webhooks: sent.load(Ordering::Relaxed),
        webhooks_refused: refused.load(Ordering::Relaxed),
        jobs_done,
        jobs_failed,
        samples,
    };
    store.cleanup().await;
    Ok(report)
}
