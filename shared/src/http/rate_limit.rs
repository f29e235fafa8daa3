//! Per-upstream rate limits: the in-process registry (one GCRA bucket per upstream origin) and the
//! process-wide limiter every new [`HttpClient`](super::HttpClient) uses (the registry, or the
//! Redis-shared limiter of [`crate::ratelimit`] once installed).

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, OnceLock};

use futures::future::BoxFuture;
use governor::{DefaultDirectRateLimiter, Quota};

/// A request rate for one upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateLimit {
    pub requests_per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

impl RateLimit {
    pub fn per_second(requests_per_second: u32, burst: u32) -> Option<RateLimit> {
        Some(RateLimit { requests_per_second: NonZeroU32::new(requests_per_second)?, burst: NonZeroU32::new(burst)? })
    }
}

/// A per-upstream rate limiter. `acquire` resolves when one request to `upstream` may be sent.
pub trait RateLimiter: Send + Sync + fmt::Debug {
    fn acquire<'a>(&'a self, upstream: &'a str, limit: RateLimit) -> BoxFuture<'a, ()>;
}

static PROCESS_LIMITER: OnceLock<Arc<dyn RateLimiter>> = OnceLock::new();

/// Makes every [`HttpClient`](super::HttpClient) created afterwards use `limiter` (e.g. the
/// Redis-shared one of [`crate::ratelimit`]); call once at start. `false` when one was installed
/// already.
pub fn install_process_rate_limiter(limiter: Arc<dyn RateLimiter>) -> bool {
    PROCESS_LIMITER.set(limiter).is_ok()
}

/// The installed limiter, else the process-wide in-process registry.
pub(super) fn process_rate_limiter() -> Arc<dyn RateLimiter> {
    PROCESS_LIMITER.get().cloned().unwrap_or_else(|| RateLimiterRegistry::global())
}

/// In-process limiter: one GCRA bucket (governor) per upstream key.
#[derive(Default)]
pub struct RateLimiterRegistry {
    buckets: Mutex<HashMap<String, (RateLimit, Arc<DefaultDirectRateLimiter>)>>,
}

impl fmt::Debug for RateLimiterRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.buckets.lock().map(|b| b.len()).unwrap_or(0);
        f.debug_struct("RateLimiterRegistry").field("upstreams", &n).finish()
    }
}

impl RateLimiterRegistry {
    pub fn new() -> Self {
        RateLimiterRegistry::default()
    }

    /// The registry shared by every [`HttpClient`](super::HttpClient) of this process.
    pub fn global() -> Arc<RateLimiterRegistry> {
        static GLOBAL: OnceLock<Arc<RateLimiterRegistry>> = OnceLock::new();
        GLOBAL.get_or_init(|| Arc::new(RateLimiterRegistry::new())).clone()
    }

    /// The bucket of an upstream; a changed limit replaces the bucket.
    fn bucket(&self, upstream: &str, limit: RateLimit) -> Arc<DefaultDirectRateLimiter> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((l, b)) = buckets.get(upstream)
            && *l == limit
        {
            return b.clone();
        }
        let quota = Quota::per_second(limit.requests_per_second).allow_burst(limit.burst);
        let bucket = Arc::new(governor::RateLimiter::direct(quota));
        buckets.insert(upstream.to_owned(), (limit, bucket.clone()));
        bucket
    }
}

impl RateLimiter for RateLimiterRegistry {
    fn acquire<'a>(&'a self, upstream: &'a str, limit: RateLimit) -> BoxFuture<'a, ()> {
        let bucket = self.bucket(upstream, limit);
        Box::pin(async move { bucket.until_ready().await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn registry_shares_buckets_per_upstream() {
        let reg = RateLimiterRegistry::new();
        let limit = RateLimit::per_second(1, 1).unwrap();
        let a = reg.bucket("https://a.example", limit);
        let b = reg.bucket("https://a.example", limit);
        assert!(Arc::ptr_eq(&a, &b));
        let c = reg.bucket("https://b.example", limit);
        assert!(!Arc::ptr_eq(&a, &c));
        // One token per second, burst 1: the first passes, the second must wait.
        assert!(a.check().is_ok());
        assert!(b.check().is_err());
        assert!(c.check().is_ok());
    }
}
