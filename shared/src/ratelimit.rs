//! A rate limit per upstream shared by every process through Redis, so that N worker processes
//! together stay under one Tactical (or Tanium) instance's limit.
//!
//! Fixed one-second windows: each request increments `<prefix>ratelimit:<upstream>:<second>`
//! (expiring after two seconds); the first `requests_per_second` of a window go, the others wait
//! for the next window (with a little jitter so waiting clients do not all wake at once). A window
//! may therefore see up to twice the rate across its boundary; the per-process bucket in front of
//! it (see [`SharedRateLimiter`]) keeps each process smooth.
//!
//! When Redis cannot be reached the limit falls back to the process's own bucket (logged once per
//! minute); Redis is tried again after a few seconds, and the shared limit applies as soon as it
//! answers.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use rand::Rng;

use crate::http::{RateLimit, RateLimiter, RateLimiterRegistry};

/// How long calls skip Redis after it failed.
const REDIS_RETRY: Duration = Duration::from_secs(5);

/// Redis-backed limiter with the in-process registry in front of it and as its fallback.
pub struct SharedRateLimiter {
    client: redis::Client,
    conn: tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>,
    prefix: String,
    local: Arc<RateLimiterRegistry>,
    last_warning: Mutex<Option<Instant>>,
    /// After a Redis failure, requests skip Redis until then instead of each waiting for it.
    skip_until: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for SharedRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedRateLimiter").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl SharedRateLimiter {
    /// `redis_url` as in the configuration; keys start with `prefix` (e.g. `rmm-sync:`).
    pub fn new(redis_url: &str, prefix: &str, local: Arc<RateLimiterRegistry>) -> Result<Self, redis::RedisError> {
        Ok(SharedRateLimiter {
            client: redis::Client::open(redis_url)?,
            conn: tokio::sync::Mutex::new(None),
            prefix: prefix.to_owned(),
            local,
            last_warning: Mutex::new(None),
            skip_until: Mutex::new(None),
        })
    }

    async fn connection(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        let mut guard = self.conn.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let cfg = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(1)));
        let c = self.client.get_multiplexed_async_connection_with_config(&cfg).await?;
        *guard = Some(c.clone());
        Ok(c)
    }

    /// Takes one slot in the current window; `Ok(None)` when granted, `Ok(Some(wait))` when the
    /// window is full.
    async fn try_take(&self, upstream: &str, limit: RateLimit) -> redis::RedisResult<Option<Duration>> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let second = now.as_secs();
        let key = format!("{}ratelimit:{upstream}:{second}", self.prefix);
        let mut c = self.connection().await?;
        let (n,): (u64,) = redis::pipe().atomic().incr(&key, 1u64).expire(&key, 2).ignore().query_async(&mut c).await?;
        if n <= u64::from(limit.requests_per_second.get()) {
            return Ok(None);
        }
        let to_next = Duration::from_secs(second + 1).saturating_sub(now);
        let jitter = Duration::from_millis(rand::rng().random_range(0..=50));
        Ok(Some(to_next + jitter))
    }

    fn warn(&self, e: &redis::RedisError) {
        let mut last = self.last_warning.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
            *last = Some(Instant::now());
            tracing::warn!(error = %e, "shared rate limit unavailable (Redis); limiting per process until it is back");
        }
    }
}

impl RateLimiter for SharedRateLimiter {
    fn acquire<'a>(&'a self, upstream: &'a str, limit: RateLimit) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            // This process's share first (smooth, no Redis round trip when over it)...
            self.local.acquire(upstream, limit).await;
            // ...then the instance-wide window, unless Redis failed moments ago.
            if self.skip_until.lock().unwrap_or_else(|p| p.into_inner()).is_some_and(|t| Instant::now() < t) {
                return;
            }
            loop {
                match self.try_take(upstream, limit).await {
                    Ok(None) => return,
                    Ok(Some(wait)) => tokio::time::sleep(wait).await,
                    Err(e) => {
                        self.warn(&e);
                        *self.conn.lock().await = None;
                        *self.skip_until.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now() + REDIS_RETRY);
                        return;
                    }
                }
            }
        })
    }
}
