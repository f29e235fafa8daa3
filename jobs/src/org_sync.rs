//! `sync-org` for every provider: the provider's remote scopes (Tactical clients, Tanium computer
//! groups, …) → organisation mappings, recorded as an `organizations` run.

use std::future::Future;

use rmm_shared::ingest::IngestCounts;
use rmm_shared::providers::OrgUpsert;
use rmm_shared::runs::{RunKind, RunOutcome};

use crate::kind::{JobKind, JobOutcome, Policy, Scope};
use crate::run::{NoArgs, counts_outcome, provider_policy, recorded};
use crate::{JobCtx, JobError};

/// `sync-org`: runs the [`crate::providers::ProviderJobs::sync_org`] of the job's provider.
/// Registered for every provider (see [`crate::providers`]).
pub struct SyncOrg;

impl JobKind for SyncOrg {
    const NAME: &'static str = "sync-org";
    const SCOPE: Scope = Scope::Integration;
    type Args = NoArgs;

    fn policy() -> Policy {
        provider_policy(300)
    }

    async fn run(ctx: JobCtx, _args: NoArgs) -> Result<JobOutcome, JobError> {
        let provider = ctx.provider().unwrap_or_default();
        let Some(module) = crate::providers::by_slug(provider) else {
            return Err(JobError::Permanent(format!("sync-org does not apply to provider {provider:?}")));
        };
        module.sync_org(&ctx).await
    }
}

/// A provider's organisation sync as a recorded `organizations` run.
pub async fn recorded_org_sync<E>(
    ctx: &JobCtx,
    sync: impl Future<Output = Result<OrgUpsert, E>>,
) -> Result<JobOutcome, JobError>
where
    JobError: From<E>,
{
    recorded(ctx, "organizations", RunKind::Other, async {
        let r = sync.await?;
        let counts =
            IngestCounts { processed: r.processed, created: r.created, updated: r.updated, ..Default::default() };
        Ok((RunOutcome { counts, ..Default::default() }, counts_outcome(&counts)))
    })
    .await
}
