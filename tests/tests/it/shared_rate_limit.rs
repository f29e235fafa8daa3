//! The Redis-shared upstream rate limit: two limiters (two processes) together stay under one
//! instance's limit; with Redis unreachable each still limits its own calls.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rmm_shared::http::{RateLimit, RateLimiter, RateLimiterRegistry};
use rmm_shared::ratelimit::SharedRateLimiter;
use rmm_tests::runtime::redis_url;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_one_limit_per_upstream() {
    let prefix = format!("rmm-test-{}:", ulid::Ulid::generate());
    let limit = RateLimit::per_second(5, 5).unwrap();
    // Two "processes": each its own in-process registry and its own Redis connection.
    let a = Arc::new(SharedRateLimiter::new(&redis_url(), &prefix, Arc::new(RateLimiterRegistry::new())).unwrap());
    let b = Arc::new(SharedRateLimiter::new(&redis_url(), &prefix, Arc::new(RateLimiterRegistry::new())).unwrap());
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..30 {
        let l = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.spawn(async move { l.acquire("https://api.example.com", limit).await });
    }
    while tasks.join_next().await.is_some() {}
    let took = start.elapsed();
    // 30 requests at 5/s in total fill six one-second windows: at least five window changes
    // (> 4 s). Each process on its own limit would let its 15 through in about 2 s.
    assert!(took >= Duration::from_millis(4000), "30 requests passed in {took:?}");
    assert!(took < Duration::from_secs(10), "took {took:?}");

    // Another upstream has its own limit.
    let start = Instant::now();
    for _ in 0..3 {
        a.acquire("https://other.example.com", limit).await;
    }
    assert!(start.elapsed() < Duration::from_millis(900));
}

#[tokio::test]
async fn without_redis_each_process_still_limits_itself() {
    let limit = RateLimit::per_second(4, 2).unwrap();
    let l = SharedRateLimiter::new("redis://127.0.0.1:1", "rmm-test:", Arc::new(RateLimiterRegistry::new())).unwrap();
    let start = Instant::now();
    for _ in 0..6 {
        l.acquire("https://api.example.com", limit).await;
    }
    // Burst 2, then 4/s: the last of 6 waits about one second; Redis being down blocks nothing.
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(800) && took < Duration::from_secs(5), "{took:?}");
}
