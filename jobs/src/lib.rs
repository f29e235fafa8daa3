//! Job kinds of rmm-sync and the runtime pieces every process shares.
//!
//! * A **job kind** is a module with a payload type and a handler implementing [`JobKind`]
//!   (`maintenance.rs`, later `sync_agent.rs`, …). Its [`Policy`] says how often it may be
//!   attempted, the backoff between attempts, its timeout and its concurrency. A kind exists only
//!   once it is registered in [`Registry::builtin`] (one line); the API refuses every other name.
//! * Every job travels in a [`JobEnvelope`]: tenant, provider, integration, [`Trigger`] and a
//!   correlation id (logged in the job's tracing span), plus the kind's own arguments.
//! * [`Queue`] enqueues jobs on the configured backend (Postgres, SQLite or Redis), also inside a
//!   caller's transaction ([`Queue::enqueue_in_tx`]), and [`JobStore`] keeps the status the API
//!   reports (`rmm_sync.job_runs`: progress, counts, last error).
//! * [`dispatch::run_task`] is the one handler the workers run: it looks the kind up, checks the
//!   tenant and integration, runs the handler under its timeout and records the outcome.
#![forbid(unsafe_code)]

pub mod apalis_tables;
pub mod context;
pub mod deliveries;
pub mod device_sync;
pub mod dispatch;
pub mod envelope;
pub mod error;
pub mod kind;
pub mod maintenance;
pub mod org_sync;
pub mod providers;
pub mod queue;
pub mod reconnect;
pub mod registry;
pub mod run;
pub mod schedules;
pub mod store;
#[cfg(feature = "test-jobs")]
pub mod testing;
pub mod units;
pub mod webhook_batch;
pub mod webhooks;
pub mod worker;

pub use context::JobCtx;
pub use envelope::{JobEnvelope, JobRequest, Trigger};
pub use error::{JobError, RuntimeError};
pub use kind::{JobKind, JobOutcome, Policy, Scope};
pub use queue::{Queue, QueueKind};
pub use registry::Registry;
pub use store::{JobFilter, JobStatus, JobStore, JobView};

use std::sync::Arc;

use rmm_shared::config::Settings;
use rmm_shared::db::Db;
use rmm_shared::events::EventBus;
use rmm_shared::secrets::SecretStore;
use rmm_shared::upstream_calls::CallLog;

/// Everything a running job may need: the store, the queue (to enqueue follow-up jobs), the
/// registry and the settings. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    pub db: Db,
    pub queue: Queue,
    pub registry: Arc<Registry>,
    pub settings: Arc<Settings>,
    /// Tenant secrets (provider credentials, webhook secrets).
    pub secrets: SecretStore,
    /// AlgaPSA's event streams (best effort; disabled when no Redis is configured).
    pub events: Arc<EventBus>,
    /// Upstream calls per minute, written to the store every few seconds (the status page).
    pub calls: CallLog,
    /// Writes webhook accepts together (PostgreSQL with the PostgreSQL queue; see
    /// [`webhook_batch`]).
    pub(crate) webhook_batcher: Option<webhook_batch::Batcher>,
}

impl Runtime {
    /// Opens the queue on `db` and puts the runtime together. Creates the backend's own tables.
    pub async fn open(
        db: Db,
        settings: Arc<Settings>,
        registry: Arc<Registry>,
        secrets: SecretStore,
        events: Arc<EventBus>,
    ) -> Result<Runtime, RuntimeError> {
        let queue = Queue::connect(&db, &settings, registry.clone()).await?;
        queue.setup().await?;
        let calls = CallLog::start(db.clone());
        let webhook_batcher = match &db {
            Db::Postgres(pool) if queue.kind() == QueueKind::Postgres => {
                Some(webhook_batch::Batcher::start(pool.clone(), settings.http.webhook_batch_statements))
            }
            _ => None,
        };
        Ok(Runtime { db, queue, registry, settings, secrets, events, calls, webhook_batcher })
    }

    /// What the integrations service's connection tests run with (`rmm_shared::integrations`).
    pub fn integrations(&self) -> rmm_shared::integrations::Connection<'_> {
        rmm_shared::integrations::Connection {
            db: &self.db,
            secrets: &self.secrets,
            upstream: &self.settings.upstream,
            calls: &self.calls,
        }
    }

    pub fn store(&self) -> JobStore {
        JobStore::new(self.db.clone())
    }

    /// Statements and webhook accepts the group commit has written in this process, when it is
    /// in use ([`webhook_batch`]).
    pub fn webhook_batches(&self) -> Option<(u64, u64)> {
        self.webhook_batcher.as_ref().map(|b| b.counts.get())
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("queue", &self.queue.kind()).finish_non_exhaustive()
    }
}
