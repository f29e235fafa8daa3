//! The soak (see `rmm_tests::soak`): a real `rmm-sync serve` process under mixed load for
//! `--minutes`, sampling its RSS and open sockets; exits non-zero when either grew by more than
//! 10 % after the warm-up, a webhook was refused or a job failed.
//!
//!     cargo build --release --workspace --bins
//!     cargo run --release -p rmm-tests --bin soak -- --minutes 10

use std::time::Duration;

use clap::Parser;

#[derive(Debug, Parser)]
struct Args {
    /// How long the load runs (the first fifth, at least a minute, is warm-up).
    #[arg(long, default_value_t = 10)]
    minutes: u64,
    /// Seconds between samples.
    #[arg(long, default_value_t = 10)]
    every: u64,
    /// Tactical alert webhooks per second.
    #[arg(long, default_value_t = 20)]
    webhooks: u32,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    println!("soak: rmm-sync serve on PostgreSQL, {} min, {} webhooks/s, syncs every 15 s", a.minutes, a.webhooks);
    let r = rmm_tests::soak::run(Duration::from_secs(a.minutes * 60), Duration::from_secs(a.every), a.webhooks).await?;
    println!(
        "RSS: {:.1} MB in the minute after the warm-up, {:.1} MB in the last minute ({:+.1} %; target ≤ +10 %)",
        r.rss_after_warmup,
        r.rss_at_end,
        r.rss_growth() * 100.0
    );
    println!(
        "open sockets: {:.1} after the warm-up, {:.1} at the end ({:+.1} %; target ≤ +10 %)",
        r.sockets_after_warmup,
        r.sockets_at_end,
        r.socket_growth() * 100.0
    );
    println!(
        "webhooks {} ({} refused), jobs done {}, failed {}",
        r.webhooks, r.webhooks_refused, r.jobs_done, r.jobs_failed
    );
    anyhow::ensure!(r.passed(), "soak failed");
    println!("soak passed");
    Ok(())
}
