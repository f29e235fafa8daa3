//! `rmm-sync sync …` and `rmm-sync jobs …`: enqueue a provider job and follow it, and look at or
//! act on jobs, straight on the store (no API key needed on the host that runs the service).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use rmm_jobs::{JobFilter, JobRequest, JobStatus, JobView, Runtime, Trigger};
use rmm_shared::db::Db;
use rmm_shared::ingest::dry_run::DryRun;
use rmm_shared::providers::Provider;
use uuid::Uuid;

/// The integration id of `tenant`'s `provider` integration.
pub async fn integration_of(db: &Db, tenant: Uuid, provider: &str) -> anyhow::Result<Uuid> {
    let found = match Provider::from_slug(provider) {
        Some(p) => rmm_shared::integrations::load(db, tenant, p).await?,
        None => None,
    };
    match found {
        Some(i) => Ok(i.integration_id),
        None => anyhow::bail!("tenant {tenant} has no {provider} integration"),
    }
}

/// Enqueues `kind` for the tenant's integration; with `wait`, follows it to the end and fails
/// when the job does not end `done`. A dry run is always followed, and its plan printed.
pub async fn sync(
    rt: &Runtime,
    provider: &str,
    kind: &str,
    tenant: Uuid,
    args: serde_json::Value,
    wait: bool,
    dry_run: bool,
) -> anyhow::Result<()> {
    let entry = rt.registry.require_for(kind, Some(provider))?;
    let args = if dry_run { rt.registry.dry_run_args(entry, args).map_err(anyhow::Error::msg)? } else { args };
    let integration = integration_of(&rt.db, tenant, provider).await?;
    let req = JobRequest::for_integration(kind, tenant, provider, integration, Trigger::Admin).args(args);
    let id = rt.queue.enqueue(req).await?;
    println!("{id}");
    if !wait && !dry_run {
        return Ok(());
    }
    let job = follow(rt, &id).await?;
    match job.status {
        JobStatus::Done => {
            if let Some(counts) = job.result.as_ref().and_then(|r| r.get("counts")) {
                eprintln!("{kind} done: {counts}");
            }
            if dry_run {
                let plan = job.result.as_ref().and_then(|r| r.pointer("/detail/dry_run")).cloned();
                let plan: DryRun = plan.map(serde_json::from_value).transpose()?.unwrap_or_default();
                print!("{}", dry_run_text(&plan));
            }
            Ok(())
        }
        other => {
            anyhow::bail!("{kind} {}: {}", other.as_str(), job.last_error.as_deref().unwrap_or("no error recorded"))
        }
    }
}

/// A dry run's plan as lines: one per organisation with its counts, then one per listed change.
pub fn dry_run_text(plan: &DryRun) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if plan.organizations.is_empty() {
        out.push_str("dry run: nothing to sync (no mapped organisation with auto-sync on)\n");
    }
    for (org, p) in &plan.organizations {
        let _ = writeln!(
            out,
            "organisation {org}: create {}, update {} (move {}), tombstone {}, unchanged {}, skip {}, fail {}",
            p.create, p.update, p.moves, p.tombstone, p.unchanged, p.skip, p.fail
        );
        for c in &p.changes {
            let fields: Vec<String> = c
                .changes
                .iter()
                .map(|f| {
                    format!(
                        "{}: {} -> {}",
                        f.field,
                        f.from.as_deref().unwrap_or("(empty)"),
                        f.to.as_deref().unwrap_or("(empty)")
                    )
                })
                .collect();
            let _ = writeln!(
                out,
                "  {} {} ({}): {}",
                c.action.as_str(),
                c.external_device_id,
                c.name.as_deref().unwrap_or("-"),
                fields.join("; ")
            );
        }
        if p.changes_not_listed > 0 {
            let _ = writeln!(out, "  ... and {} more changes", p.changes_not_listed);
        }
        for e in &p.errors {
            let _ = writeln!(out, "  not planned: {e}");
        }
    }
    out
}

/// Polls the job until it is finished, showing progress on stderr: a line redrawn in place on a
/// terminal, plain lines (one per change, at most one a second) otherwise.
async fn follow(rt: &Runtime, id: &str) -> anyhow::Result<JobView> {
    let tty = std::io::stderr().is_terminal();
    let start = Instant::now();
    let mut last_line = String::new();
    let mut last_print = Instant::now() - Duration::from_secs(10);
    loop {
        let job = rt.store().get(id).await?.ok_or_else(|| anyhow::anyhow!("job {id} disappeared"))?;
        let line = progress_line(
            &job.kind,
            job.status.as_str(),
            job.progress_processed.max(0) as u64,
            job.progress_total.filter(|t| *t > 0).map(|t| t as u64),
            start.elapsed(),
        );
        let changed = line_key(&line) != line_key(&last_line);
        let mut err = std::io::stderr();
        if tty {
            let _ = write!(err, "\r\x1b[2K{line}");
            let _ = err.flush();
        } else if changed && (last_print.elapsed() >= Duration::from_secs(1) || job.status.is_finished()) {
            let _ = writeln!(err, "{line}");
            last_print = Instant::now();
        }
        last_line = line;
        if job.status.is_finished() {
            if tty {
                let _ = writeln!(err);
            }
            return Ok(job);
        }
        tokio::time::sleep(Duration::from_millis(if tty { 200 } else { 500 })).await;
    }
}

/// `sync-devices running [#####---------------] 5/20  1.2/s  12s` (`7 done` when the total is
/// not known).
fn progress_line(kind: &str, status: &str, done: u64, total: Option<u64>, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
    let amount = match total {
        Some(total) => {
            let width = 20usize;
            let filled = ((done.min(total) as f64 / total as f64) * width as f64).round() as usize;
            format!("[{}{}] {done}/{total}", "#".repeat(filled), "-".repeat(width - filled))
        }
        None => format!("{done} done"),
    };
    format!("{kind} {status} {amount}  {rate:.1}/s  {secs:.0}s")
}

/// The part of a progress line that matters for "did anything change" (not the clock).
fn line_key(line: &str) -> &str {
    line.split("  ").next().unwrap_or(line)
}

/// `rmm-sync jobs list`.
pub async fn list(
    rt: &Runtime,
    tenant: Option<Uuid>,
    status: Option<String>,
    kind: Option<String>,
    limit: u32,
) -> anyhow::Result<()> {
    let status = match status {
        Some(s) => Some(JobStatus::parse(&s).ok_or_else(|| anyhow::anyhow!("unknown status {s:?}"))?),
        None => None,
    };
    let jobs = rt.store().list(&JobFilter { tenant: tenant.map(Some), status, kind, limit }).await?;
    for j in jobs {
        println!(
            "{}\t{}\t{}\t{}\t{}/{}\t{}",
            j.job_id,
            j.kind,
            j.status.as_str(),
            j.tenant.map(|t| t.to_string()).unwrap_or_else(|| "-".into()),
            j.attempts,
            j.max_attempts,
            j.last_error.as_deref().unwrap_or("")
        );
    }
    Ok(())
}

/// `rmm-sync jobs show`: the job as JSON.
pub async fn show(rt: &Runtime, id: &str) -> anyhow::Result<()> {
    let job = rt.store().get(id).await?.ok_or_else(|| anyhow::anyhow!("job {id} not found"))?;
    println!("{}", serde_json::to_string_pretty(&job)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_show_counts_rate_and_a_bar_when_the_total_is_known() {
        let l = progress_line("sync-devices", "running", 5, Some(20), Duration::from_secs(10));
        assert_eq!(l, "sync-devices running [#####---------------] 5/20  0.5/s  10s");
        let l = progress_line("sync-org", "pending", 0, None, Duration::from_secs(0));
        assert_eq!(l, "sync-org pending 0 done  0.0/s  0s");
        // Only the clock moved: not a change worth a new plain line.
        let a = progress_line("k", "running", 3, Some(9), Duration::from_secs(1));
        let b = progress_line("k", "running", 3, Some(9), Duration::from_secs(5));
        assert_eq!(line_key(&a), line_key(&b));
    }
}
