//! The 10-minute soak, marked long: `cargo test -p rmm-tests --test it -- --ignored soak::`. The
//! `soak` program runs the same and prints every sample (results in BENCHMARKS.md).

use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "long: a 10-minute soak; run with --ignored"]
async fn ten_minutes_of_mixed_load_grow_neither_memory_nor_connections() {
    let r = rmm_tests::soak::run(Duration::from_secs(600), Duration::from_secs(10), 20).await.unwrap();
    assert!(r.webhooks > 10_000 && r.jobs_done > 100, "{r:?}");
    assert!(r.passed(), "RSS {:+.1} %, sockets {:+.1} %: {r:?}", r.rss_growth() * 100.0, r.socket_growth() * 100.0);
}
