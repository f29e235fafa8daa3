//! Exponential backoff: the one doubling-with-a-cap of the service, used by the upstream retries of
//! [`RetryPolicy`](super::RetryPolicy) and by the job runtime's retries between attempts.

use std::time::Duration;

use rand::Rng;

/// `min(max, initial × 2^doublings)`: `initial` doubled `doublings` times, never above `max`.
/// Saturates instead of overflowing (the doublings count is capped at 31).
pub fn exponential(initial: Duration, max: Duration, doublings: u32) -> Duration {
    initial.saturating_mul(1u32 << doublings.min(31)).min(max)
}

/// Full jitter: a uniformly random delay in `[0, ceiling]`, in whole microseconds.
pub fn full_jitter<R: Rng + ?Sized>(ceiling: Duration, rng: &mut R) -> Duration {
    let ceiling = u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX);
    if ceiling == 0 {
        return Duration::ZERO;
    }
    Duration::from_micros(rng.random_range(0..=ceiling))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_then_caps_and_saturates() {
        let s = Duration::from_secs;
        assert_eq!(exponential(s(2), s(10), 0), s(2));
        assert_eq!(exponential(s(2), s(10), 1), s(4));
        assert_eq!(exponential(s(2), s(10), 2), s(8));
        assert_eq!(exponential(s(2), s(10), 3), s(10));
        assert_eq!(exponential(s(2), s(10), u32::MAX), s(10));
        assert_eq!(exponential(Duration::MAX, Duration::MAX, 40), Duration::MAX);
        assert_eq!(exponential(Duration::ZERO, s(10), 5), Duration::ZERO);
    }
}
