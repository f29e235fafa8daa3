//! The providers rmm-sync runs jobs for. Each one is a module here (`tactical/`, `tanium/`) with
//! its job kinds and a [`ProviderJobs`] value; [`ALL`] is the one place that lists them. The
//! provider's client, mapping and syncs live in `rmm_shared::providers::<provider>`. Nothing
//! outside a provider's module names it: the neutral jobs (`sync-org`, device sync fan-out,
//! webhooks, run recording) ask this registry. What adding a provider takes: docs/providers.md.

pub mod levelio;
pub mod ninjaone;
pub mod tactical;
pub mod tanium;

use futures::future::BoxFuture;
use rmm_shared::providers::Provider;

use crate::kind::JobOutcome;
use crate::{JobCtx, JobError, Registry};

/// What a provider gives the job runtime.
pub trait ProviderJobs: Send + Sync + 'static {
    fn provider(&self) -> Provider;

    /// Registers the provider's own job kinds (`sync-org` is registered for every provider).
    fn register(&self, registry: &mut Registry);

    /// `sync-org`: the provider's remote scopes → organisation mappings, as a recorded run
    /// ([`crate::org_sync::recorded_org_sync`]).
    fn sync_org<'a>(&'a self, ctx: &'a JobCtx) -> BoxFuture<'a, Result<JobOutcome, JobError>>;

    /// The kind AlgaPSA's sync route (`POST /api/v1/integrations/rmm/{provider}/sync`) enqueues.
    fn device_sync_kind(&self) -> &'static str;

    /// The kind a webhook delivery enqueues to refresh its device (`{"agent_id": …}`), for a
    /// provider whose webhooks rmm-sync takes.
    fn webhook_refresh_kind(&self) -> Option<&'static str> {
        None
    }

    /// The kind that refreshes one device (`{"agent_id": <the RMM's device id>}`), which an
    /// asset's refresh (`POST /api/v1/assets/{asset_id}/rmm/refresh`) enqueues. The webhook
    /// refresh kind unless the provider has another one.
    fn device_refresh_kind(&self) -> Option<&'static str> {
        self.webhook_refresh_kind()
    }

    /// The kind that reconciles the RMM's active alerts with the recorded ones, which AlgaPSA's
    /// alert polling schedule (`alertPolling`) runs; `None` for a provider without alerts.
    fn alert_poll_kind(&self) -> Option<&'static str> {
        None
    }
}

/// Every provider rmm-sync runs, in the order the API lists them.
pub static ALL: &[&dyn ProviderJobs] = &[&tactical::Tactical, &tanium::Tanium, &ninjaone::NinjaOne, &levelio::Level];

/// The provider's jobs, when rmm-sync runs that provider.
pub fn get(provider: Provider) -> Option<&'static dyn ProviderJobs> {
    ALL.iter().copied().find(|p| p.provider() == provider)
}

/// [`get`] by slug (`tacticalrmm`, `tanium`).
pub fn by_slug(slug: &str) -> Option<&'static dyn ProviderJobs> {
    Provider::from_slug(slug).and_then(get)
}

/// The slugs of [`ALL`].
pub fn slugs() -> Vec<&'static str> {
    ALL.iter().map(|p| p.provider().slug()).collect()
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// A provider's code is its own folder: no module outside `providers/<p>/` (in this crate and
    /// in the shared crate) names a provider module, and no provider module names another one.
    /// The registries (`providers/mod.rs` of both crates) are the only places that list them.
    #[test]
    fn no_module_reaches_into_a_provider_it_does_not_belong_to() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let slugs: Vec<&str> = ALL.iter().map(|p| module_name(p.provider())).collect();
        let mut offenders = Vec::new();
        for krate in ["jobs/src", "shared/src", "ingress/src", "worker/src"] {
            let base = root.join(krate);
            let mut files = Vec::new();
            rust_files(&base, &mut files);
            for file in files {
                let rel = file.strip_prefix(&base).unwrap().to_string_lossy().replace('\\', "/");
                if rel == "providers/mod.rs" {
                    continue;
                }
                let own = slugs.iter().find(|s| rel.starts_with(&format!("providers/{s}/")));
                let text = std::fs::read_to_string(&file).unwrap();
                for s in &slugs {
                    if Some(s) == own {
                        continue;
                    }
                    for needle in [format!("providers::{s}"), format!("crate::{s}::")] {
                        if text.contains(&needle) {
                            offenders.push(format!("{krate}/{rel} names {needle}"));
                        }
                    }
                }
            }
        }
        assert!(offenders.is_empty(), "modules reaching into a provider:\n{}", offenders.join("\n"));
    }

    fn module_name(p: Provider) -> &'static str {
        match p {
            Provider::TacticalRmm => "tactical",
            Provider::Tanium => "tanium",
            Provider::NinjaOne => "ninjaone",
            Provider::LevelIo => "levelio",
        }
    }

    #[test]
    fn every_provider_is_listed_once_and_found_by_slug() {
        let mut seen = std::collections::BTreeSet::new();
        for p in ALL {
            assert!(seen.insert(p.provider()), "{} listed twice", p.provider());
            assert_eq!(by_slug(p.provider().slug()).map(|m| m.provider()), Some(p.provider()));
        }
        assert!(by_slug("nope").is_none());
    }

    /// The job runtime and the integrations service know the same providers.
    #[test]
    fn the_integrations_service_knows_the_same_providers() {
        let jobs: Vec<Provider> = ALL.iter().map(|p| p.provider()).collect();
        assert_eq!(jobs, rmm_shared::integrations::providers());
    }
}
