//! Small helpers the benchmark programs share.

use std::time::Duration;

/// Peak resident set size of this process (`VmHWM`), in MB.
pub fn peak_rss_mb() -> f64 {
    vm_hwm_mb("/proc/self/status")
}

/// The `q`-quantile (0..=1) of `sorted` (nearest rank), in milliseconds.
pub fn quantile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1000.0
}

/// `VmHWM` (peak RSS) of another process, in MB.
pub fn peak_rss_of(pid: u32) -> f64 {
    vm_hwm_mb(&format!("/proc/{pid}/status"))
}

/// `VmRSS` (current RSS) of another process, in MB.
pub fn rss_of(pid: u32) -> f64 {
    status_mb(&format!("/proc/{pid}/status"), "VmRSS:")
}

/// Open sockets of another process (network connections and listeners: its database pool, HTTP
/// clients and servers).
pub fn sockets_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy().starts_with("socket:")))
                .count()
        })
        .unwrap_or(0)
}

/// CPU time (user + system, every thread) another process has used so far, in seconds.
pub fn cpu_secs_of(pid: u32) -> f64 {
    cpu_secs_in(&format!("/proc/{pid}/stat"))
}

/// CPU time (user + system, every thread) this process has used so far, in seconds.
pub fn cpu_secs() -> f64 {
    cpu_secs_in("/proc/self/stat")
}

/// `utime + stime` of a `/proc/<pid>/stat` file, in seconds.
fn cpu_secs_in(stat_file: &str) -> f64 {
    let ticks = std::fs::read_to_string(stat_file).ok().and_then(|s| stat_cpu_ticks(&s));
    let per_sec = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().filter(|t| *t > 0);
    match (ticks, per_sec) {
        (Some(t), Some(hz)) => t as f64 / hz as f64,
        _ => f64::NAN,
    }
}

/// `utime + stime` (fields 14 and 15, in clock ticks) of the text of a `/proc/<pid>/stat` file.
/// The command name (field 2) is in parentheses and may itself hold spaces or parentheses, so
/// the fields are counted from the last `)`.
fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // `rest` starts at field 3 (the state).
    let mut fields = rest.split_whitespace().skip(14 - 3);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn vm_hwm_mb(status_file: &str) -> f64 {
    status_mb(status_file, "VmHWM:")
}

fn status_mb(status_file: &str, key: &str) -> f64 {
    std::fs::read_to_string(status_file)
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(key)).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile_ms(&v, 0.5), 50.0);
        assert_eq!(quantile_ms(&v, 0.99), 99.0);
        assert_eq!(quantile_ms(&v, 1.0), 100.0);
        assert!(quantile_ms(&[], 0.5).is_nan());
    }

    #[test]
    fn cpu_ticks_are_utime_plus_stime_counted_from_the_last_parenthesis() {
        let stat = "4242 (rmm sync) (x)) S 1 4242 4242 0 -1 4194560 1200 0 0 0 731 86 0 0 20 0 9 0 123 0 0";
        assert_eq!(stat_cpu_ticks(stat), Some(731 + 86));
        assert_eq!(stat_cpu_ticks("garbage"), None);
        assert!(cpu_secs() >= 0.0);
    }
}
