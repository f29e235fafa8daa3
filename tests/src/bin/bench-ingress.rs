//! Ingress benchmark: Tactical alert webhooks posted over loopback to the real ingress, which
//! stores each delivery and enqueues its `sync-agent` job in one PostgreSQL transaction before it
//! answers 200. Reference, in the same run and at the same concurrency: raw single-row
//! `INSERT … COMMIT` transactions of the same body into a plain table of the same database.
//!
//!     cargo run --release -p rmm-tests --bin bench-ingress
//!
//! Prints (1) accepted webhooks/s with p50/p99 latency at a fixed concurrency, the raw insert
//! rate and the ratio (target ≥ 50%), and (2) p50/p99 latency at a fixed offered rate (target
//! p99 < 20 ms at 500 requests/s). Every webhook is for a new agent, so none is coalesced into a
//! pending job: each one writes a delivery, a job status row and a queue task.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use rmm_shared::config::{DatabaseSettings, QueueBackend};
use rmm_shared::db::Db;
use rmm_tests::bench::{peak_rss_mb, quantile_ms};
use rmm_tests::runtime::{Ingress, SECRET, fast_settings, runtime, tactical_tenant};
use rmm_tests::stores;
use serde_json::json;
use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

#[derive(Debug, Parser)]
struct Args {
    /// Webhooks (and raw inserts) in the fixed-concurrency phase.
    #[arg(long, default_value_t = 5_000)]
    requests: usize,
    /// Requests in flight at once (and database connections).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Offered rate of the fixed-rate phase, requests per second.
    #[arg(long, default_value_t = 500)]
    rate: u64,
    /// Length of the fixed-rate phase, seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// `http.webhook_batch_statements`: statements writing webhooks at once (group commit);
    /// a value at the concurrency leaves nearly every webhook a statement of its own.
    #[arg(long)]
    batch_statements: Option<usize>,
}

fn body(n: usize) -> String {
    json!({
        "agent_id": format!("bench-agent-{n:08}"),
        "alert_id": format!("{n}"),
        "event": "trigger",
        "severity": "error",
        "alert_time": "2026-11-30 10:15:02.123456+00:00",
        "message": "ws-0042 - Check: Disk Space Check Failed. Disk C: 92% used",
        "client": "Acme",
        "site": "HQ",
        "hostname": "WS-0042"
    })
    .to_string()
}

struct Phase {
    ok: usize,
    failed: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Phase {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
    fn print(&self, label: &str) {
        let mut l = self.latencies.clone();
        l.sort();
        println!(
            "{label:<34}: {:>8.0} /s  p50 {:>6.2} ms  p99 {:>6.2} ms  ({} ok, {} failed, {:.1} s)",
            self.rate(),
            quantile_ms(&l, 0.5),
            quantile_ms(&l, 0.99),
            self.ok,
            self.failed,
            self.elapsed.as_secs_f64()
        );
    }
}

/// Runs `n` calls of `op` with `concurrency` in flight; `op(i)` returns whether call `i` succeeded.
async fn closed_loop<F, Fut>(n: usize, concurrency: usize, op: F) -> Phase
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (op, next) = (op.clone(), next.clone());
        tasks.spawn(async move {
            let (mut lat, mut failed) = (Vec::new(), 0usize);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return (lat, failed);
                }
                let t = Instant::now();
                if op(i).await {
                    lat.push(t.elapsed());
                } else {
                    failed += 1;
                }
            }
        });
    }
    let mut phase = Phase { ok: 0, failed: 0, elapsed: Duration::ZERO, latencies: Vec::with_capacity(n) };
    while let Some(r) = tasks.join_next().await {
        let (lat, failed) = r.expect("benchmark task");
        phase.ok += lat.len();
        phase.failed += failed;
        phase.latencies.extend(lat);
    }
    phase.elapsed = start.elapsed();
    phase
}

/// Offers `rate` calls per second for `seconds`; latency is counted from each call's scheduled
/// start, so a stalled server is not hidden by the client waiting for it.
async fn open_loop<F, Fut>(rate: u64, seconds: u64, first: usize, op: F) -> Phase
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let op = Arc::new(op);
    let n = (rate * seconds) as usize;
    let gap = Duration::from_secs_f64(1.0 / rate as f64);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let due = start + gap * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let op = op.clone();
        tasks.spawn(async move { op(first + i).await.then(|| due.elapsed()) });
    }
    let mut phase = Phase { ok: 0, failed: 0, elapsed: Duration::ZERO, latencies: Vec::with_capacity(n) };
    while let Some(r) = tasks.join_next().await {
        match r.expect("benchmark task") {
            Some(l) => {
                phase.ok += 1;
                phase.latencies.push(l);
            }
            None => phase.failed += 1,
        }
    }
    phase.elapsed = start.elapsed();
    phase
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let c = args.concurrency.max(1);
    let store = stores::postgres_with(c as u32).await?;
    let dir = tempfile::tempdir()?;
    let mut settings = fast_settings(QueueBackend::Database);
    settings.database = DatabaseSettings { max_connections: c as u32, ..DatabaseSettings::default() };
    if let Some(n) = args.batch_statements {
        settings.http.webhook_batch_statements = n;
    }
    let batch_statements = settings.http.webhook_batch_statements;
    let rt = runtime(&store.db, settings, dir.path()).await?;
    let (tenant, _) = tactical_tenant(&store.db, &rt, None).await;

    // The ingress on a loopback port (no workers: only accepting is measured).
    let ingress = Ingress::start(&rt, None).await;
    let http = reqwest::Client::builder().pool_max_idle_per_host(c * 2).build()?;
    let url = Arc::new(ingress.url(&format!("/api/webhooks/tacticalrmm?tenant={tenant}")));
    let post = {
        let (http, url) = (http.clone(), url.clone());
        move |i: usize| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let r = http
                    .post(url.as_str())
                    .header("content-type", "application/json")
                    .header("X-Alga-Webhook-Secret", SECRET)
                    .body(body(i))
                    .send()
                    .await;
                matches!(r, Ok(r) if r.status() == 200)
            }
        }
    };

    // Reference: single-row INSERT … COMMIT of the same body, same database, same concurrency.
    let raw_pool = PgPoolOptions::new()
        .max_connections(c as u32)
        .connect_with(PgConnectOptions::from_str(&store.url)?.disable_statement_logging())
        .await?;
    sqlx::query(
        "CREATE TABLE bench_raw (id bigserial PRIMARY KEY, tenant uuid NOT NULL, agent_id text NOT NULL, \
         body jsonb NOT NULL, received_at timestamptz NOT NULL DEFAULT now())",
    )
    .execute(&raw_pool)
    .await?;
    let raw = {
        let pool = raw_pool.clone();
        move |i: usize| {
            let pool = pool.clone();
            async move {
                let go = async {
                    let mut tx = pool.begin().await?;
                    sqlx::query("INSERT INTO bench_raw (tenant, agent_id, body) VALUES ($1, $2, $3::jsonb)")
                        .bind(tenant)
                        .bind(format!("bench-agent-{i:08}"))
                        .bind(body(i))
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await
                };
                go.await.is_ok()
            }
        }
    };

    println!(
        "bench-ingress: {} requests at concurrency {c}; then {} req/s for {} s (PostgreSQL, loopback; \
         http.webhook_batch_statements = {batch_statements})",
        args.requests, args.rate, args.seconds
    );
    // Warm-up of both paths (connections, plans, caches).
    let warm = (args.requests / 10).clamp(50, 500);
    closed_loop(warm, c, raw.clone()).await;
    let offset = 10_000_000;
    closed_loop(warm, c, {
        let post = post.clone();
        move |i| post(offset + i)
    })
    .await;

    let raw_phase = closed_loop(args.requests, c, raw).await;
    let ing_phase = closed_loop(args.requests, c, post.clone()).await;
    // The same store-and-enqueue without HTTP: what the database part costs.
    let direct = {
        let rt = rt.clone();
        move |i: usize| {
            let rt = rt.clone();
            async move {
                let Ok(hook) = rmm_shared::providers::tactical::alerts::parse_webhook(body(30_000_000 + i).as_bytes())
                else {
                    return false;
                };
                let delivery = rmm_jobs::webhooks::Delivery {
                    provider: rmm_shared::providers::tactical::PROVIDER,
                    device_id: &hook.agent_id,
                    fields: &hook.fields,
                };
                rmm_jobs::webhooks::accept(&rt, tenant, &delivery, Duration::from_secs(10)).await.is_ok()
            }
        }
    };
    let direct_phase = closed_loop(args.requests, c, direct).await;
    raw_phase.print("raw INSERT … COMMIT (reference)");
    ing_phase.print("webhooks accepted");
    direct_phase.print("  same accept, without HTTP");
    let ratio = ing_phase.rate() / raw_phase.rate();
    println!("webhooks / raw inserts            : {:>7.1}% (target >= 50%)", ratio * 100.0);
    if let Some((statements, rows)) = rt.webhook_batches() {
        println!(
            "webhooks per statement (all phases so far): {:.1} ({rows} in {statements})",
            rows as f64 / statements.max(1) as f64
        );
    }

    let fixed = open_loop(args.rate, args.seconds, 20_000_000, post).await;
    fixed.print(&format!("webhooks at {} req/s offered", args.rate));
    let mut l = fixed.latencies.clone();
    l.sort();
    println!("p99 at {} req/s                  : {:>7.2} ms (target < 20 ms)", args.rate, quantile_ms(&l, 0.99));
    println!("peak RSS (ingress and load)       : {:>7.1} MB", peak_rss_mb());
    let stored: Vec<(i64,)> =
        store.db.fetch(&format!("SELECT COUNT(*) FROM {}", store.db.ours("webhook_deliveries")), &[]).await?;
    let expected = (warm + ing_phase.ok + direct_phase.ok + fixed.ok) as i64;
    println!("deliveries stored                 : {} (answered 200: {expected})", stored[0].0);
    if ing_phase.failed + fixed.failed > 0 || stored[0].0 != expected {
        anyhow::bail!("some webhooks were not accepted or not stored");
    }
    drop(ingress);
    raw_pool.close().await;
    drop(rt);
    let db: Db = store.db.clone();
    db.close().await;
    store.cleanup().await;
    Ok(())
}
