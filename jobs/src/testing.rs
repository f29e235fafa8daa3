//! Job kinds that exist only for the runtime's own tests (feature `test-jobs` and
//! `RMM_SYNC_TEST_JOBS=1`): a job that sleeps, and one that fails a given number of times.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::kind::{JobKind, JobOutcome, Policy, Scope};
use crate::registry::Registry;
use crate::{JobCtx, JobError};

pub fn register(r: &mut Registry) {
    r.register::<TestSleep>();
    r.register::<TestFail>();
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SleepArgs {
    /// Total sleep, reported as progress in ten steps.
    pub ms: u64,
}

/// `test-sleep`: sleeps `ms`, reporting progress; global.
pub struct TestSleep;

impl JobKind for TestSleep {
    const NAME: &'static str = "test-sleep";
    const SCOPE: Scope = Scope::Global;
    type Args = SleepArgs;

    fn policy() -> Policy {
        Policy {
            max_attempts: 3,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(2),
            timeout: Duration::from_secs(60),
            ..Policy::standard()
        }
    }

    async fn run(ctx: JobCtx, args: SleepArgs) -> Result<JobOutcome, JobError> {
        for i in 0..10u64 {
            ctx.progress(i, Some(10)).await?;
            tokio::time::sleep(Duration::from_millis(args.ms / 10)).await;
        }
        ctx.progress(10, Some(10)).await?;
        Ok(JobOutcome::default().count("attempt", u64::from(ctx.attempt())))
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailArgs {
    /// Attempts that fail before one succeeds.
    pub fail_times: u32,
    /// Fail with a non-retryable error instead.
    #[serde(default)]
    pub permanent: bool,
    /// Fail with an upstream `Retry-After` of this many seconds instead.
    #[serde(default)]
    pub retry_after_secs: Option<u64>,
    /// The error message of a permanent failure.
    #[serde(default)]
    pub message: Option<String>,
    /// Panic (instead of returning an error) in the failing attempts.
    #[serde(default)]
    pub panic: bool,
}

/// `test-fail`: fails `fail_times` attempts (1 s → 2 s backoff, 3 attempts), then succeeds.
pub struct TestFail;

impl JobKind for TestFail {
    const NAME: &'static str = "test-fail";
    const SCOPE: Scope = Scope::Global;
    type Args = FailArgs;

    fn policy() -> Policy {
        Policy {
            max_attempts: 3,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(2),
            timeout: Duration::from_secs(30),
            inline_retry_after: Duration::from_millis(0),
            max_deferrals: 2,
            ..Policy::standard()
        }
    }

    async fn run(ctx: JobCtx, args: FailArgs) -> Result<JobOutcome, JobError> {
        if let Some(secs) = args.retry_after_secs
            && ctx.envelope().deferrals < args.fail_times
        {
            return Err(JobError::RetryAfter { after: Duration::from_secs(secs), message: "429 from the test".into() });
        }
        if args.permanent {
            return Err(JobError::Permanent(args.message.unwrap_or_else(|| "permanent failure from the test".into())));
        }
        if ctx.attempt() <= args.fail_times {
            if args.panic {
                panic!("panic {} from the test", ctx.attempt());
            }
            return Err(JobError::Transient(format!("failure {} from the test", ctx.attempt())));
        }
        Ok(JobOutcome::default().count("attempt", u64::from(ctx.attempt())))
    }
}
