//! The retry policy of a client: how many attempts, and the backoff between them.

use std::time::Duration;

use rand::Rng;

use super::backoff;

/// Retry behaviour of one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts, the first one included (1 = no retry).
    pub max_attempts: u32,
    /// Backoff cap of the first retry; doubles with every further retry.
    pub base_delay: Duration,
    /// Upper bound of any backoff.
    pub max_delay: Duration,
    /// A `Retry-After` up to this long is waited in place; a longer one is returned to the caller.
    pub retry_after_threshold: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
            retry_after_threshold: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// One attempt, no retry.
    pub fn none() -> Self {
        RetryPolicy { max_attempts: 1, ..RetryPolicy::default() }
    }

    /// The backoff ceiling before retry number `retry` (1 = the first retry):
    /// `min(max_delay, base_delay × 2^(retry-1))`.
    pub fn backoff_ceiling(&self, retry: u32) -> Duration {
        backoff::exponential(self.base_delay, self.max_delay, retry.saturating_sub(1))
    }

    /// Full jitter: a uniformly random delay in `[0, backoff_ceiling(retry)]`.
    pub fn backoff_delay<R: Rng + ?Sized>(&self, retry: u32, rng: &mut R) -> Duration {
        backoff::full_jitter(self.backoff_ceiling(retry), rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn backoff_ceiling_doubles_and_caps() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            retry_after_threshold: Duration::from_secs(30),
        };
        assert_eq!(p.backoff_ceiling(1), Duration::from_millis(100));
        assert_eq!(p.backoff_ceiling(2), Duration::from_millis(200));
        assert_eq!(p.backoff_ceiling(3), Duration::from_millis(400));
        assert_eq!(p.backoff_ceiling(4), Duration::from_millis(800));
        assert_eq!(p.backoff_ceiling(5), Duration::from_millis(1000));
        assert_eq!(p.backoff_ceiling(60), Duration::from_millis(1000));
        assert_eq!(p.backoff_ceiling(0), Duration::from_millis(100));
    }

    #[test]
    fn full_jitter_stays_within_ceiling_and_spreads() {
        let p = RetryPolicy { base_delay: Duration::from_millis(100), ..RetryPolicy::default() };
        let mut rng = StdRng::seed_from_u64(7);
        let mut seen_low = false;
        let mut seen_high = false;
        for _ in 0..1000 {
            let d = p.backoff_delay(3, &mut rng);
            assert!(d <= Duration::from_millis(400));
            seen_low |= d < Duration::from_millis(100);
            seen_high |= d > Duration::from_millis(300);
        }
        assert!(seen_low && seen_high, "full jitter covers the whole range");
        let zero = RetryPolicy { base_delay: Duration::ZERO, ..RetryPolicy::default() };
        assert_eq!(zero.backoff_delay(5, &mut rng), Duration::ZERO);
    }
}
