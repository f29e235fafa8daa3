//! The job-kind trait and the per-kind policy.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use futures::future::BoxFuture;
use rmm_shared::providers::Provider;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{JobCtx, JobError};

/// Who a kind is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// One tenant's integration with one provider (all provider jobs). Enqueued through
    /// `POST /api/v1/tenants/{tenant}/integrations/{provider}/jobs/{kind}`.
    Integration,
    /// The whole service (internal jobs such as `maintenance`). Enqueued through
    /// `POST /api/v1/jobs/{kind}` with a global key, or by the scheduler.
    Global,
}

/// Attempts, backoff, timeout and concurrency of one kind. Every field is explicit per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Attempts in total (first run included). Stored on every queued task, so neither the
    /// worker's in-process retries nor the backend's re-fetch can go past it.
    pub max_attempts: u32,
    /// Wait before the second attempt; doubled for each later one, up to `backoff_max`.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Longest one attempt may run; an attempt that takes longer fails (and may be retried).
    pub timeout: Duration,
    /// Jobs of this kind one worker process runs at once (`None`: `queue.concurrency`).
    pub concurrency: Option<usize>,
    /// Higher runs first among due jobs of the same kind.
    pub priority: u32,
    /// `Retry-After` up to this long is slept in place; longer ones become a delayed
    /// continuation in the queue.
    pub inline_retry_after: Duration,
    /// Delayed continuations (upstream 429) allowed before the job fails.
    pub max_deferrals: u32,
    /// Postgres queue: wake the kind's workers by LISTEN/NOTIFY as soon as a job is pushed (for
    /// kinds whose latency matters: webhook jobs, the units of a split job). Each such kind holds
    /// one pooled connection per process; the others poll every `queue.poll_interval_ms`.
    pub listen: bool,
}

impl Policy {
    /// A reasonable start for a new kind: 3 attempts, 5 s → 60 s backoff, 10-minute timeout.
    pub const fn standard() -> Policy {
        Policy {
            max_attempts: 3,
            backoff_initial: Duration::from_secs(5),
            backoff_max: Duration::from_secs(60),
            timeout: Duration::from_secs(600),
            concurrency: None,
            priority: 0,
            inline_retry_after: Duration::from_secs(5),
            max_deferrals: 20,
            listen: false,
        }
    }

    /// The backoff before attempt `next_attempt` (2-based: the wait after the first failure).
    pub fn backoff_before(&self, next_attempt: u32) -> Duration {
        rmm_shared::http::backoff::exponential(self.backoff_initial, self.backoff_max, next_attempt.saturating_sub(2))
    }
}

/// What a successful handler reports: counts (`processed`, `created`, …) and free detail.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct JobOutcome {
    pub counts: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub detail: serde_json::Value,
}

impl JobOutcome {
    pub fn count(mut self, name: &str, n: u64) -> Self {
        self.counts.insert(name.to_owned(), n);
        self
    }

    /// Sets `detail.<key>`, keeping the detail's other keys.
    pub fn with_detail(mut self, key: &str, value: serde_json::Value) -> Self {
        if !self.detail.is_object() {
            self.detail = serde_json::Value::Object(Default::default());
        }
        self.detail[key] = value;
        self
    }
}

/// A job kind: a name, a payload, a policy and a handler. Implement it in a module of its own and
/// add one line to [`crate::Registry::builtin`].
pub trait JobKind: Send + Sync + 'static {
    /// Queue and API name, e.g. `sync-agent`. Stable: it names the queue in the backend.
    const NAME: &'static str;
    const SCOPE: Scope;
    /// Enqueued only by other jobs (the units of a split job); the API and the scheduler refuse it.
    const INTERNAL: bool = false;
    /// The providers an integration job applies to (`Scope::Integration` kinds); empty for global
    /// kinds. The API, the scheduler and the CLI refuse a kind for any other provider.
    const PROVIDERS: &'static [Provider] = &[];
    /// The kind can run as a dry run: its arguments take `"dry_run": true` (plan only, nothing
    /// written; `?dry_run=true` on the API, `--dry-run` on the command line).
    const DRY_RUN: bool = false;
    /// The kind's own arguments (`args` of the envelope).
    type Args: Serialize + DeserializeOwned + Send + 'static;

    fn policy() -> Policy;

    /// Runs one attempt. Must be idempotent: a job may run again after a crash or a lost ack.
    fn run(ctx: JobCtx, args: Self::Args) -> impl Future<Output = Result<JobOutcome, JobError>> + Send;
}

/// A registered kind with its types erased, as the registry stores it.
pub struct KindEntry {
    pub name: &'static str,
    pub scope: Scope,
    /// See [`JobKind::INTERNAL`].
    pub internal: bool,
    /// See [`JobKind::PROVIDERS`].
    pub providers: Vec<Provider>,
    /// See [`JobKind::DRY_RUN`].
    pub dry_run: bool,
    pub policy: Policy,
    pub(crate) run: fn(JobCtx, serde_json::Value) -> BoxFuture<'static, Result<JobOutcome, JobError>>,
    pub(crate) check_args: fn(&serde_json::Value) -> Result<(), String>,
}

impl std::fmt::Debug for KindEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KindEntry").field("name", &self.name).field("policy", &self.policy).finish()
    }
}

impl KindEntry {
    pub fn of<K: JobKind>() -> KindEntry {
        fn run<K: JobKind>(ctx: JobCtx, args: serde_json::Value) -> BoxFuture<'static, Result<JobOutcome, JobError>> {
            Box::pin(async move {
                let args: K::Args = serde_json::from_value(args)
                    .map_err(|e| JobError::Permanent(format!("invalid arguments for {}: {e}", K::NAME)))?;
                K::run(ctx, args).await
            })
        }
        fn check<K: JobKind>(args: &serde_json::Value) -> Result<(), String> {
            serde_json::from_value::<K::Args>(args.clone()).map(|_| ()).map_err(|e| e.to_string())
        }
        KindEntry {
            name: K::NAME,
            scope: K::SCOPE,
            internal: K::INTERNAL,
            providers: K::PROVIDERS.to_vec(),
            dry_run: K::DRY_RUN,
            policy: K::policy(),
            run: run::<K>,
            check_args: check::<K>,
        }
    }

    /// Checks that `args` parse as this kind's arguments (the API answers 400 otherwise).
    pub fn check_args(&self, args: &serde_json::Value) -> Result<(), String> {
        (self.check_args)(args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = Policy {
            backoff_initial: Duration::from_secs(2),
            backoff_max: Duration::from_secs(10),
            ..Policy::standard()
        };
        assert_eq!(p.backoff_before(2), Duration::from_secs(2));
        assert_eq!(p.backoff_before(3), Duration::from_secs(4));
        assert_eq!(p.backoff_before(4), Duration::from_secs(8));
        assert_eq!(p.backoff_before(5), Duration::from_secs(10));
        assert_eq!(p.backoff_before(60), Duration::from_secs(10));
    }
}
