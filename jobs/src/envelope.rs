//! What every job carries, whatever its kind.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why a job was enqueued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Webhook,
    Admin,
    Schedule,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Webhook => "webhook",
            Trigger::Admin => "admin",
            Trigger::Schedule => "schedule",
        }
    }

    pub fn parse(s: &str) -> Option<Trigger> {
        match s {
            "webhook" => Some(Trigger::Webhook),
            "admin" => Some(Trigger::Admin),
            "schedule" => Some(Trigger::Schedule),
            _ => None,
        }
    }
}

/// The payload stored in the queue for every job: common fields plus the kind's own `args`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobEnvelope {
    /// Our job id (ULID), the one the API returns. Stays the same across delayed retries.
    pub job_id: String,
    pub kind: String,
    /// `None` for internal jobs that are not about one tenant (maintenance).
    pub tenant: Option<Uuid>,
    pub provider: Option<String>,
    pub integration_id: Option<Uuid>,
    pub trigger: Trigger,
    /// Ties log lines, traces and follow-up jobs to what caused them (e.g. a webhook delivery).
    pub correlation_id: String,
    /// The kind's own arguments.
    #[serde(default)]
    pub args: serde_json::Value,
    /// How many times this job was put off by an upstream `Retry-After`.
    #[serde(default)]
    pub deferrals: u32,
    /// Attempts this job made before the task carrying it now (a retry after a backoff is a new,
    /// delayed task; the backend counts attempts per task).
    #[serde(default)]
    pub attempts_before: u32,
    /// W3C trace context (`traceparent`) of the span that enqueued the job, when traces are
    /// exported: the job's span continues that trace in whichever process runs it. Absent from
    /// the stored payload otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

/// A request to enqueue a job, before it has an id.
#[derive(Debug, Clone)]
pub struct JobRequest {
    pub kind: String,
    pub tenant: Option<Uuid>,
    pub provider: Option<String>,
    pub integration_id: Option<Uuid>,
    pub trigger: Trigger,
    /// `None`: a new one is made (the job id).
    pub correlation_id: Option<String>,
    pub args: serde_json::Value,
    /// Run no earlier than this many seconds from now.
    pub delay_secs: u64,
    /// The schedule that made this job, if any.
    pub schedule_id: Option<String>,
    /// The failed job this one re-runs, if any.
    pub retry_of: Option<String>,
}

impl JobRequest {
    /// An internal job with no tenant (e.g. `maintenance`).
    pub fn global(kind: impl Into<String>, trigger: Trigger) -> Self {
        JobRequest {
            kind: kind.into(),
            tenant: None,
            provider: None,
            integration_id: None,
            trigger,
            correlation_id: None,
            args: serde_json::Value::Object(Default::default()),
            delay_secs: 0,
            schedule_id: None,
            retry_of: None,
        }
    }

    /// A job about one tenant's integration.
    pub fn for_integration(
        kind: impl Into<String>,
        tenant: Uuid,
        provider: impl Into<String>,
        integration_id: Uuid,
        trigger: Trigger,
    ) -> Self {
        JobRequest {
            tenant: Some(tenant),
            provider: Some(provider.into()),
            integration_id: Some(integration_id),
            ..JobRequest::global(kind, trigger)
        }
    }

    pub fn args(mut self, args: serde_json::Value) -> Self {
        self.args = args;
        self
    }

    pub fn correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    pub fn delay_secs(mut self, secs: u64) -> Self {
        self.delay_secs = secs;
        self
    }
}
