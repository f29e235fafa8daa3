//! Errors of job handlers and of the runtime.

use std::time::Duration;

/// How a job handler failed; decides what the runtime does next.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Worth another attempt (network error, 5xx, lock timeout): retried with backoff until the
    /// kind's attempt limit.
    #[error("{0}")]
    Transient(String),
    /// Retrying cannot help (bad arguments, missing integration, 4xx): the job fails now.
    #[error("{0}")]
    Permanent(String),
    /// The upstream asked us to come back later (HTTP 429 `Retry-After`). Short waits are slept
    /// in place; longer ones end this run and enqueue a delayed continuation of the same job.
    #[error("rate limited upstream, retry after {after:?}: {message}")]
    RetryAfter { after: Duration, message: String },
    /// The job was cancelled through the API while it ran.
    #[error("cancelled")]
    Cancelled,
}

impl JobError {
    pub fn transient(e: impl std::fmt::Display) -> Self {
        JobError::Transient(e.to_string())
    }
    pub fn permanent(e: impl std::fmt::Display) -> Self {
        JobError::Permanent(e.to_string())
    }
}

impl From<rmm_shared::db::DbError> for JobError {
    fn from(e: rmm_shared::db::DbError) -> Self {
        JobError::Transient(e.to_string())
    }
}

/// Errors of the runtime itself (enqueueing, status queries, backend set-up).
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Db(#[from] rmm_shared::db::DbError),
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("queue error: {0}")]
    Queue(String),
    #[error("unknown job kind {kind:?}; job kinds that exist: {known}")]
    UnknownKind { kind: String, known: String },
    #[error("{0}")]
    Invalid(String),
    #[error("job {0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
}
