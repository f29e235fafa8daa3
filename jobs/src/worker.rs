//! The worker process: one apalis worker per registered job kind on the configured backend, the
//! schedule runner, and a clean stop on a shutdown signal.
//!
//! * Worker names are `<kind>-<host>-<pid>-<ulid>`: unique per process start, so the jobs of a
//!   worker that died are handed to another one after `heartbeat_secs × missed_heartbeats`
//!   (a name re-used after a crash would keep them `Running` for ever).
//! * Postgres: kinds whose policy says `listen` wake on LISTEN/NOTIFY (one connection each, of the
//!   queue's own pool: listeners + 5) and also poll every `poll_interval_ms` (delayed tasks are
//!   never notified); the other kinds, and SQLite and Redis, poll. The poll timer is [`Ticker`],
//!   not apalis's `poll_with_interval`, whose timer stops after a fetch slower than the interval.
//! * Each job runs in a tokio task of its own: the queue consumers of a process share one task
//!   (apalis's monitor), and a job run inside it would hold up every consumer's polling and
//!   heartbeat while it computes, and keep the process's jobs on one core.
//! * Attempts, backoff and timeouts are the kind's [`crate::Policy`], applied by
//!   [`crate::dispatch::run_task`]; the backend's own attempt limit only bounds crash loops.
//! * On shutdown the running jobs get `worker.shutdown_timeout_secs` to finish; tasks fetched but
//!   not started go back to the queue.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use apalis::prelude::{Monitor, ParallelizeExt, WorkerBuilder, WorkerBuilderExt};
use apalis_core::backend::ext::poll_strategy::{PollSnapshot, PollStrategy, PollWith};
use apalis_postgres::PostgresStorage;
use apalis_redis::RedisStorage;
use apalis_sqlite::SqliteStorage;
use tokio_util::sync::CancellationToken;

use crate::envelope::JobEnvelope;
use crate::error::RuntimeError;
use crate::queue::{Backend, redis_config};
use crate::{Runtime, dispatch};

/// A worker name unique to this process start.
pub fn worker_name(kind: &str) -> String {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let host: String = host.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(40).collect();
    format!("{kind}-{host}-{}-{}", std::process::id(), ulid::Ulid::generate())
}

fn runtime_err(e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Queue(e.to_string())
}

/// Runs the workers of every registered kind (and, when enabled, the schedule runner) until
/// `shutdown` is cancelled; then lets running jobs finish within the shutdown timeout.
pub async fn run(rt: Runtime, shutdown: CancellationToken) -> Result<(), RuntimeError> {
    let settings = rt.settings.clone();
    let q = &settings.queue;
    let poll = Duration::from_millis(q.poll_interval_ms);
    let heartbeat = Duration::from_secs(q.heartbeat_secs);
    let missed = q.missed_heartbeats as usize;
    let gave_up = Arc::new(AtomicBool::new(false));
    let max_restarts = settings.worker.max_restarts;

    let mut monitor = Monitor::new();
    for entry in rt.registry.entries() {
        let kind = entry.name;
        let concurrency = entry.policy.concurrency.unwrap_or(q.concurrency).max(1);
        // One task per fetch. apalis fetches whenever one slot is free; with a larger batch the
        // tasks it cannot start yet wait in the consumer's buffer, and while anything is buffered
        // apalis 1.0 neither heartbeats nor records that the started task is running: after
        // `heartbeat × missed` another replica takes the worker for dead and runs its tasks a
        // second time (tests/tests/it/runtime.rs checks the heartbeat with every slot busy).
        let batch = 1;
        let data = rt.clone();
        // One consumer of `kind` on the given backend stream (the stream types differ per backend).
        macro_rules! register {
            ($backend:expr) => {
                monitor.register(move |_| {
                    WorkerBuilder::new(worker_name(kind))
                        .backend($backend)
                        .concurrency(concurrency)
                        .parallelize(tokio::spawn)
                        .data(data.clone())
                        .build(dispatch::run_task)
                })
            };
        }
        monitor = match &rt.queue.backend {
            Backend::Postgres(pool) => {
                let storage = PostgresStorage::<JobEnvelope>::new(pool).with_config(
                    apalis_postgres::Config::default()
                        .queue(kind)
                        .batch_size(batch)
                        .heartbeat_interval(heartbeat)
                        .missed_heartbeats(missed),
                );
                if entry.policy.listen {
                    register!(PollWith::new(storage.clone().with_pubsub(), Ticker::new(poll)))
                } else {
                    register!(PollWith::new(storage.clone(), Ticker::new(poll)))
                }
            }
            Backend::Sqlite(pool) => {
                let storage = SqliteStorage::<JobEnvelope>::new(pool).with_config(
                    apalis_sqlite::Config::default()
                        .queue(kind)
                        .batch_size(batch)
                        .heartbeat_interval(heartbeat)
                        .missed_heartbeats(missed),
                );
                register!(PollWith::new(storage.clone(), Ticker::new(poll)))
            }
            Backend::Redis(conn) => {
                let storage = RedisStorage::<JobEnvelope>::new(conn.clone()).with_config(
                    redis_config(&rt.queue.redis_ns, kind)
                        .batch_size(batch)
                        .heartbeat_interval(heartbeat)
                        .missed_heartbeats(missed),
                );
                register!(PollWith::new(storage.clone(), Ticker::new(poll)))
            }
        };
    }
    let flag = gave_up.clone();
    let give_up = shutdown.clone();
    let monitor = monitor
        .should_restart(move |ctx, err| {
            // Counted per consumer: one database blip fails every consumer of the process once.
            let n = ctx.restarts() + 1;
            if n > max_restarts {
                // One consumer less would leave its queue unserved (and its orphans unrecovered)
                // in a process that still looks alive: stop them all, so that the process exits
                // non-zero and its supervisor starts a fresh one.
                tracing::error!(worker = ctx.name(), error = %err, restarts = n, "queue consumer failed too often; stopping the workers");
                flag.store(true, Ordering::SeqCst);
                give_up.cancel();
                false
            } else {
                tracing::warn!(worker = ctx.name(), error = %err, restarts = n, "queue consumer failed; restarting it");
                true
            }
        })
        .shutdown_timeout(Duration::from_secs(settings.worker.shutdown_timeout_secs));

    let scheduler =
        if settings.scheduler.enabled { Some(tokio::spawn(run_scheduler(rt.clone(), shutdown.clone()))) } else { None };
    let signal = {
        let shutdown = shutdown.clone();
        async move {
            shutdown.cancelled().await;
            tracing::info!("stopping workers: running jobs may finish, unstarted ones go back to the queue");
            Ok(())
        }
    };
    let result = monitor.run_with_signal(signal).await;
    shutdown.cancel();
    if let Some(s) = scheduler {
        let _ = s.await;
    }
    match result {
        _ if gave_up.load(Ordering::SeqCst) => {
            Err(RuntimeError::Queue("a queue consumer failed more than worker.max_restarts times".into()))
        }
        Ok(()) => Ok(()),
        Err(e) => Err(runtime_err(e)),
    }
}

/// Wakes a queue consumer every `interval` to fetch (delayed and retried tasks are never
/// notified, and SQLite and Redis have no notifications at all).
///
/// apalis 1.0's `IntervalStrategy` (`poll_with_interval`) re-arms its timer when it fires but does
/// not poll the new one, so nothing is registered to wake the consumer at the next tick. The chain
/// survives only while the consumer happens to be polled again before that tick; once a fetch takes
/// longer than the interval (a busy database or machine), the consumer sleeps until its next
/// heartbeat, and a job enqueued meanwhile waits up to `heartbeat_secs` instead of
/// `poll_interval_ms`. This one polls the re-armed timer at once, which registers the waker.
pub struct Ticker {
    interval: Duration,
    /// Created on the first poll (inside the runtime).
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Ticker {
    pub fn new(interval: Duration) -> Ticker {
        Ticker { interval: interval.max(Duration::from_millis(1)), sleep: None }
    }
}

impl PollStrategy for Ticker {
    fn poll_drive(&mut self, cx: &mut Context<'_>, _: &PollSnapshot) -> Poll<Option<()>> {
        let interval = self.interval;
        let sleep = self.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(interval)));
        if sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        // Fired: the next tick counts from now, and polling it registers the waker for it.
        sleep.as_mut().reset(tokio::time::Instant::now() + interval);
        let _ = sleep.as_mut().poll(cx);
        Poll::Ready(Some(()))
    }
}

/// Enqueues due schedules every `scheduler.tick_ms` and hands outbox jobs to Redis, until
/// `shutdown`. Safe in every replica: each slot is claimed by one.
pub async fn run_scheduler(rt: Runtime, shutdown: CancellationToken) {
    let tick = Duration::from_millis(rt.settings.scheduler.tick_ms);
    let store = crate::schedules::ScheduleStore::new(rt.db.clone());
    if rt.registry.get("maintenance").is_some()
        && let Err(e) = store.ensure_global("maintenance", rt.settings.retention.maintenance_interval_minutes).await
    {
        tracing::warn!(error = %e, "could not set up the maintenance schedule");
    }
    loop {
        if let Err(e) = crate::schedules::tick(&rt.queue).await {
            tracing::warn!(error = %e, "scheduler tick failed; will retry");
        }
        if sleep_or_cancel(tick, &shutdown).await {
            return;
        }
    }
}

/// Sleeps `d`; `true` when `token` was cancelled meanwhile.
pub async fn sleep_or_cancel(d: Duration, token: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = token.cancelled() => true,
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn termination_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {},
            _ = tokio::signal::ctrl_c() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::task::{Wake, Waker};

    use apalis_core::backend::ext::poll_strategy::IntervalStrategy;

    use super::*;

    #[derive(Default)]
    struct Wakes(AtomicUsize);

    impl Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Polls `strategy` once its first tick is due, as a consumer starting a fetch does, then
    /// leaves it alone for three intervals, as a fetch slower than the interval does; returns how
    /// often the consumer was woken meanwhile.
    async fn wakes_after_a_tick(strategy: &mut impl PollStrategy) -> usize {
        let wakes = Arc::new(Wakes::default());
        let waker = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        let snapshot = PollSnapshot::default();
        assert!(strategy.poll_drive(&mut cx, &snapshot).is_pending(), "no tick before the interval");
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(strategy.poll_drive(&mut cx, &snapshot).is_ready(), "a tick after the interval");
        let before = wakes.0.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(60)).await;
        wakes.0.load(Ordering::SeqCst) - before
    }

    #[tokio::test]
    async fn the_poll_timer_wakes_the_consumer_at_the_next_tick_even_if_it_is_not_polled_meanwhile() {
        assert!(wakes_after_a_tick(&mut Ticker::new(Duration::from_millis(20))).await > 0);
    }

    /// Why [`Ticker`] exists: apalis 1.0's interval strategy arms its next timer without polling
    /// it, so nothing wakes a consumer that is not polled for another reason. When this fails after
    /// an apalis upgrade, `poll_with_interval` can be used again.
    #[tokio::test]
    async fn apalis_interval_strategy_wakes_nobody_after_a_tick() {
        assert_eq!(wakes_after_a_tick(&mut IntervalStrategy::new(Duration::from_millis(20))).await, 0);
    }
}
