//! Ingestion benchmark: N synthetic devices through the shared pipeline on a fresh PostgreSQL
//! database, against a raw `COPY` of the same rows into the same tables.
//!
//!     cargo run --release -p rmm-tests --bin bench-ingest -- --devices 50000
//!
//! Prints devices/s for a first sync (all creates), an unchanged resync and a resync with 10%
//! changed, the raw COPY rate measured in the same run, the ratios, the share of heap-only
//! (HOT) updates of each phase and the peak RSS; with `--statements`, the statements that took
//! the most time in each phase.

use rmm_shared::ingest::IngestRun;
use std::time::Instant;

use chrono::{Duration, Utc};
use clap::Parser;
use rmm_shared::ingest::{
    AgentStatus, AssetType, DeviceSnapshot, DiskUsage, ExtensionSnapshot, IngestCounts, Item, Lifecycle, Provider,
    ingest_page,
};
use rmm_tests::bench::peak_rss_mb;
use rmm_tests::stores;
use serde_json::json;
use uuid::Uuid;

#[derive(Debug, Parser)]
struct Args {
    /// Number of synthetic devices.
    #[arg(long, default_value_t = 50_000)]
    devices: usize,
    /// Devices per transaction.
    #[arg(long, default_value_t = 500)]
    page_size: usize,
    /// Number of clients (scopes) the devices are spread over.
    #[arg(long, default_value_t = 50)]
    clients: usize,
    /// Tuning experiment: set this fill factor on `assets` and the mapping table before the first
    /// sync (AlgaPSA's tables have the default, 100), leaving room for heap-only updates.
    #[arg(long)]
    fillfactor: Option<u8>,
    /// Pages ingested at once, each stream a disjoint share of the devices (a worker runs
    /// `queue.concurrency` = 4 units of a sync at once).
    #[arg(long, default_value_t = 1)]
    streams: usize,
    /// Steady state: `VACUUM` the written tables before each resync pass (untimed), as autovacuum
    /// does between hourly syncs (a pass that updates every row makes each table due at once).
    #[arg(long)]
    vacuum: bool,
    /// Also print, for each phase, the statements that took the most time (needs the
    /// `pg_stat_statements` module preloaded; see BENCHMARKS.md).
    #[arg(long)]
    statements: bool,
}

const TABLES: [&str; 4] = ["assets", "workstation_assets", "server_assets", "tenant_external_entity_mappings"];

/// Updates and heap-only updates per written table, as the statistics collector counts them.
type UpdateCounts = Vec<(String, i64, i64)>;

/// Reads `n_tup_upd` and `n_tup_hot_upd` once every pooled connection has reported its counts
/// (a backend flushes them at the end of a transaction at most once a second).
async fn update_counts(db: &rmm_shared::db::Db) -> anyhow::Result<UpdateCounts> {
    let rmm_shared::db::Db::Postgres(pool) = db else { anyhow::bail!("PostgreSQL only") };
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let mut conns = Vec::new();
    for _ in 0..pool.size() {
        let mut c = pool.acquire().await?;
        sqlx::query("SELECT 1").execute(&mut *c).await?;
        conns.push(c);
    }
    drop(conns);
    let names = serde_json::to_string(&TABLES)?;
    Ok(db
        .fetch(
            "SELECT CAST(relname AS TEXT), n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables \
             WHERE relname = ANY(ARRAY(SELECT json_array_elements_text($1::json))) ORDER BY relname",
            &[&names],
        )
        .await?)
}

/// `updates (heap-only share)` per table between two readings.
fn hot_share(before: &UpdateCounts, after: &UpdateCounts) -> String {
    after
        .iter()
        .map(|(t, upd, hot)| {
            let (u0, h0) = before.iter().find(|b| &b.0 == t).map(|b| (b.1, b.2)).unwrap_or((0, 0));
            let (u, h) = (upd - u0, hot - h0);
            let share = if u > 0 { format!("{:.0}%", 100.0 * h as f64 / u as f64) } else { "-".into() };
            format!("{t} {u} ({share})")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The statements that took the most time since the last reset, then resets.
async fn top_statements(db: &rmm_shared::db::Db) -> anyhow::Result<()> {
    let rows: Vec<(String, i64, f64, i64)> = db
        .fetch(
            "SELECT query, calls, total_exec_time, rows FROM pg_stat_statements \
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             ORDER BY total_exec_time DESC LIMIT 12",
            &[],
        )
        .await?;
    for (q, calls, ms, n) in rows {
        let q: String = q.split_whitespace().collect::<Vec<_>>().join(" ");
        println!("    {ms:>9.1} ms {calls:>6} calls {n:>8} rows  {}", q.chars().take(150).collect::<String>());
    }
    db.execute("SELECT pg_stat_statements_reset()", &[]).await?;
    Ok(())
}

fn snapshot(i: usize, integration: Uuid, clients: usize, generation: u32) -> DeviceSnapshot {
    let server = i.is_multiple_of(7);
    // A fixed clock, so that a resync of the same generation is really unchanged.
    let now = chrono::DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z").expect("date").with_timezone(&Utc);
    DeviceSnapshot {
        provider: Provider::TacticalRmm,
        integration_id: integration,
        external_device_id: format!("agent-{i:08}"),
        external_scope_id: format!("client-{}", i % clients),
        lifecycle: Lifecycle::Active,
        asset_type: if server { AssetType::Server } else { AssetType::Workstation },
        display_name: format!("HOST-{i:06}"),
        serial_number: Some(format!("SN{i:010}")),
        status: None,
        location: Some(format!("Site {}", i % 13)),
        asset_tag: None,
        agent_status: Some(if i.is_multiple_of(5) { AgentStatus::Offline } else { AgentStatus::Online }),
        last_seen_at: Some(now - Duration::minutes((i % 90) as i64)),
        extension: Some(ExtensionSnapshot {
            os_type: Some(if server { "Windows Server".into() } else { "Windows".into() }),
            os_version: Some(format!("10.0.{}", 19_000 + generation)),
            agent_version: Some("2.9.1".into()),
            current_user: Some(format!("user{}", i % 300)),
            uptime_seconds: Some((i as i64) * 37 % 864_000),
            lan_ip: Some(format!("10.{}.{}.{}", i / 65_536 % 256, i / 256 % 256, i % 256)),
            wan_ip: Some("203.0.113.7".into()),
            antivirus_status: None,
            antivirus_product: None,
            last_reboot_at: Some(now - Duration::hours((i % 200) as i64)),
            pending_patches: Some((i % 11) as i64),
            pending_os_patches: None,
            pending_software_patches: None,
            failed_patches: None,
            last_patch_scan_at: None,
            system_info: Some(json!({"make_model": "Dell OptiPlex 7090", "cpu": "Intel i7"})),
            patches_untouched: false,
            cpu_model: Some(Some("Intel(R) Core(TM) i7-10700".into())),
            cpu_cores: Some(Some(8.0)),
            ram_gb: Some(Some(15.7)),
            disk_usage: Some(Some(vec![DiskUsage {
                name: "C:".into(),
                total_gb: Some(476.0),
                free_gb: Some(210.5),
                utilization_percent: Some(55.8),
            }])),
            installed_software: None,
        }),
        metadata: Some(
            json!({"site_id": i % 13, "site_name": format!("Site {}", i % 13), "raw": {"agent_id": format!("agent-{i:08}"), "hostname": format!("HOST-{i:06}")}}),
        ),
    }
}

/// Ingests `devices` snapshots made page by page by `make` (as a provider sync streams them), in
/// `streams` disjoint runs of pages at once (as a worker runs that many units of a sync).
async fn run(
    db: &rmm_shared::db::Db,
    tenant: Uuid,
    devices: usize,
    page: usize,
    streams: usize,
    make: impl Fn(usize) -> DeviceSnapshot,
) -> anyhow::Result<(f64, IngestCounts)> {
    let start = Instant::now();
    let stream = |range: std::ops::Range<usize>| {
        let make = &make;
        async move {
            let mut counts = IngestCounts::default();
            for first in range.clone().step_by(page) {
                let chunk: Vec<DeviceSnapshot> = (first..(first + page).min(range.end)).map(make).collect();
                let items: Vec<Item<'_>> = chunk.iter().map(|s| Item { snapshot: s, client_id: None }).collect();
                let r = ingest_page(db, tenant, &IngestRun::default(), &items, Utc::now()).await?;
                counts.add(&r.counts);
            }
            anyhow::Ok(counts)
        }
    };
    let ranges = (0..streams).map(|s| s * devices / streams..(s + 1) * devices / streams);
    let mut counts = IngestCounts::default();
    for c in futures::future::join_all(ranges.map(stream)).await {
        counts.add(&c?);
    }
    Ok((devices as f64 / start.elapsed().as_secs_f64(), counts))
}

/// COPYs the rows the first sync wrote (read back as CSV) into the same tables of a fresh
/// database, and returns devices/s.
async fn raw_copy(src_url: &str, devices: usize) -> anyhow::Result<f64> {
    use sqlx::Connection;
    let mut src = sqlx::PgConnection::connect(src_url).await?;
    let dst = stores::postgres().await?;
    let rmm_shared::db::Db::Postgres(pool) = &dst.db else { unreachable!() };
    let mut conn = pool.acquire().await?;
    for table in ["tenants", "clients", "rmm_integrations", "rmm_organization_mappings"] {
        copy_table(&mut src, &mut conn, table).await?;
    }
    let mut dumps = Vec::new();
    for table in ["assets", "workstation_assets", "server_assets", "tenant_external_entity_mappings"] {
        dumps.push((table, dump(&mut src, table).await?));
    }
    let start = Instant::now();
    let mut tx = conn.begin().await?;
    for (table, data) in &dumps {
        let mut copy = tx.copy_in_raw(&format!("COPY {table} FROM STDIN WITH (FORMAT csv)")).await?;
        copy.send(data.as_slice()).await?;
        copy.finish().await?;
    }
    tx.commit().await?;
    let rate = devices as f64 / start.elapsed().as_secs_f64();
    drop(conn);
    dst.cleanup().await;
    Ok(rate)
}

async fn dump(src: &mut sqlx::PgConnection, table: &str) -> anyhow::Result<Vec<u8>> {
    use futures::TryStreamExt;
    let mut out = Vec::new();
    let mut stream = src.copy_out_raw(&format!("COPY {table} TO STDOUT WITH (FORMAT csv)")).await?;
    while let Some(chunk) = stream.try_next().await? {
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

async fn copy_table(src: &mut sqlx::PgConnection, dst: &mut sqlx::PgConnection, table: &str) -> anyhow::Result<()> {
    let data = dump(src, table).await?;
    let mut copy = dst.copy_in_raw(&format!("COPY {table} FROM STDIN WITH (FORMAT csv)")).await?;
    copy.send(data.as_slice()).await?;
    copy.finish().await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let store = stores::postgres_with(4.max(args.streams as u32)).await?;
    let db = &store.db;
    let tenant = stores::tenant(db).await?;
    let integration = stores::integration(db, tenant, "tacticalrmm").await?;
    for c in 0..args.clients {
        let client = stores::client(db, tenant, &format!("Client {c}")).await?;
        stores::map_scope(db, tenant, integration, &format!("client-{c}"), Some(client)).await?;
    }
    let (n, page, clients) = (args.devices, args.page_size, args.clients);
    if let Some(ff) = args.fillfactor {
        for table in ["assets", "tenant_external_entity_mappings"] {
            db.execute(&format!("ALTER TABLE {table} SET (fillfactor = {})", ff.clamp(10, 100)), &[]).await?;
        }
        println!("(tuning experiment: fillfactor {ff} on assets and tenant_external_entity_mappings)");
    }
    if args.vacuum {
        println!("(steady state: VACUUM of the written tables before each resync, untimed)");
    }

    let transport = if store.url.contains("host=/") || store.url.contains("%2F") { "unix socket" } else { "TCP" };
    println!(
        "bench-ingest: {} devices, pages of {} ({} at once), PostgreSQL over {transport}, {} CPUs",
        args.devices,
        args.page_size,
        args.streams.max(1),
        num_cpus()
    );
    if args.statements {
        db.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements", &[]).await?;
        db.execute("SELECT pg_stat_statements_reset()", &[]).await?;
    }
    let phases: [(&str, u32, u32); 4] = [
        ("first sync (all creates)", 0, 0),
        ("unchanged resync", 0, 0),
        ("unchanged resync, again", 0, 0),
        ("resync, 10% changed", 0, 1),
    ];
    let mut rates = Vec::new();
    let mut counts = update_counts(db).await?;
    for (name, generation, changed) in phases {
        if args.vacuum && !rates.is_empty() {
            db.execute(&format!("VACUUM {}", TABLES.join(", ")), &[]).await?;
            counts = update_counts(db).await?;
        }
        let (rate, c) = run(db, tenant, n, page, args.streams.max(1), |i| {
            snapshot(i, integration, clients, if i % 10 == 0 { changed } else { generation })
        })
        .await?;
        if rates.is_empty() {
            assert_eq!(c.created as usize, n, "first sync must create every device: {c:?}");
        } else {
            assert_eq!(c.updated as usize, n, "{name}: {c:?}");
        }
        let now = update_counts(db).await?;
        println!("{name:<25}: {rate:>10.0} devices/s; updates (heap-only share): {}", hot_share(&counts, &now));
        if args.statements {
            top_statements(db).await?;
        }
        counts = now;
        rates.push(rate);
    }
    let (first_rate, same_rate, steady_rate) = (rates[0], rates[1], rates[2]);
    let copy_rate = raw_copy(&store.url, args.devices).await?;

    println!(
        "unchanged resync         : {:>10.2}x first sync; again {:.2}x (target >= 2x)",
        same_rate / first_rate,
        steady_rate / first_rate
    );
    println!("raw COPY, same rows      : {copy_rate:>10.0} devices/s");
    println!("first sync / raw COPY    : {:>10.1}%  (target >= 50%)", 100.0 * first_rate / copy_rate);
    println!("peak RSS                 : {:>10.1} MB (target < 200 MB)", peak_rss_mb());
    store.cleanup().await;
    Ok(())
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
