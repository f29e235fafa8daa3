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
}
