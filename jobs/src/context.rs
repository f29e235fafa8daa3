//! What a handler gets besides its arguments, and how it reports progress.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmm_shared::db::Db;
use uuid::Uuid;

use crate::envelope::JobEnvelope;
use crate::{JobError, Queue, Runtime};

/// Progress is written at most this often (the last report of a job is always written).
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// The context of one attempt of one job.
#[derive(Clone)]
pub struct JobCtx {
    env: Arc<JobEnvelope>,
    attempt: u32,
    max_attempts: u32,
    rt: Runtime,
    last_progress: Arc<Mutex<Option<Instant>>>,
}

impl std::fmt::Debug for JobCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobCtx").field("job_id", &self.env.job_id).field("attempt", &self.attempt).finish()
    }
}

impl JobCtx {
    pub(crate) fn new(env: Arc<JobEnvelope>, attempt: u32, max_attempts: u32, rt: Runtime) -> JobCtx {
        JobCtx { env, attempt, max_attempts, rt, last_progress: Arc::new(Mutex::new(None)) }
    }

    pub fn envelope(&self) -> &JobEnvelope {
        &self.env
    }
    pub fn job_id(&self) -> &str {
        &self.env.job_id
    }
    pub fn correlation_id(&self) -> &str {
        &self.env.correlation_id
    }
    pub fn tenant(&self) -> Option<Uuid> {
        self.env.tenant
    }
    pub fn provider(&self) -> Option<&str> {
        self.env.provider.as_deref()
    }
    pub fn integration_id(&self) -> Option<Uuid> {
        self.env.integration_id
    }
    /// 1-based attempt number.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }
    pub fn db(&self) -> &Db {
        &self.rt.db
    }
    /// To enqueue follow-up jobs (fan-out), with this job's correlation id.
    pub fn queue(&self) -> &Queue {
        &self.rt.queue
    }
    pub fn runtime(&self) -> &Runtime {
        &self.rt
    }

    /// Reports progress (`processed` of `total` items). Written at most twice a second; returns
    /// [`JobError::Cancelled`] when the job was cancelled meanwhile, which the handler should
    /// return (`ctx.progress(n, total).await?`).
    pub async fn progress(&self, processed: u64, total: Option<u64>) -> Result<(), JobError> {
        let due = {
            let mut last = self.last_progress.lock().unwrap_or_else(|e| e.into_inner());
            let due = last.is_none_or(|t| t.elapsed() >= PROGRESS_EVERY) || total == Some(processed);
            if due {
                *last = Some(Instant::now());
            }
            due
        };
        if !due {
            return Ok(());
        }
        let cancelled = self.rt.store().progress(&self.env.job_id, processed, total).await?;
        if cancelled { Err(JobError::Cancelled) } else { Ok(()) }
    }

    /// [`JobError::Cancelled`] when the job was cancelled through the API.
    pub async fn check_cancelled(&self) -> Result<(), JobError> {
        match self.rt.store().status(&self.env.job_id).await? {
            Some(crate::JobStatus::Cancelled) => Err(JobError::Cancelled),
            _ => Ok(()),
        }
    }
}
