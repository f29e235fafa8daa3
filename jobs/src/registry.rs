//! The job kinds that exist. A kind whose handler does not exist yet is not here, so neither the
//! workers nor the API know it.

use std::collections::BTreeMap;
use std::sync::Arc;

use rmm_shared::providers::Provider;

use crate::error::RuntimeError;
use crate::kind::{JobKind, KindEntry};

#[derive(Debug, Default)]
pub struct Registry {
    kinds: BTreeMap<&'static str, Arc<KindEntry>>,
}

impl Registry {
    /// An empty registry (tests add their own kinds).
    pub fn empty() -> Registry {
        Registry::default()
    }

    /// The kinds of the service: the global ones, `sync-org` for every provider, and each
    /// provider's own (see [`crate::providers`]).
    pub fn builtin() -> Registry {
        let mut r = Registry::empty();
        r.register::<crate::maintenance::Maintenance>();
        let providers = crate::providers::ALL.iter().map(|p| p.provider()).collect();
        r.register_for::<crate::org_sync::SyncOrg>(providers);
        for p in crate::providers::ALL {
            p.register(&mut r);
        }
        #[cfg(feature = "test-jobs")]
        if std::env::var("RMM_SYNC_TEST_JOBS").is_ok_and(|v| v == "1") {
            crate::testing::register(&mut r);
        }
        r
    }

    pub fn register<K: JobKind>(&mut self) -> &mut Self {
        self.insert(KindEntry::of::<K>())
    }

    /// [`Registry::register`] for a kind that applies to `providers` (a provider-neutral kind).
    pub fn register_for<K: JobKind>(&mut self, providers: Vec<Provider>) -> &mut Self {
        self.insert(KindEntry { providers, ..KindEntry::of::<K>() })
    }

    fn insert(&mut self, entry: KindEntry) -> &mut Self {
        let name = entry.name;
        assert!(entry.policy.max_attempts >= 1, "{name}: max_attempts must be at least 1");
        assert!(self.kinds.insert(name, Arc::new(entry)).is_none(), "job kind {name} registered twice");
        self
    }

    pub fn get(&self, name: &str) -> Option<&Arc<KindEntry>> {
        self.kinds.get(name)
    }

    /// The kind, or an error listing the kinds that exist (shown to API users as is).
    pub fn require(&self, name: &str) -> Result<&Arc<KindEntry>, RuntimeError> {
        self.get(name)
            .ok_or_else(|| RuntimeError::UnknownKind { kind: name.to_owned(), known: self.names().join(", ") })
    }

    /// Like [`Registry::require`], for kinds a user may enqueue or schedule: internal kinds (the
    /// units of a split job) are refused and not listed.
    pub fn require_public(&self, name: &str) -> Result<&Arc<KindEntry>, RuntimeError> {
        match self.get(name) {
            Some(e) if !e.internal => Ok(e),
            _ => Err(RuntimeError::UnknownKind { kind: name.to_owned(), known: self.public_names().join(", ") }),
        }
    }

    /// [`Registry::require_public`] for an integration of `provider` (global kinds with `None`):
    /// a kind that does not apply to the provider is refused with the kinds that do.
    pub fn require_for(&self, name: &str, provider: Option<&str>) -> Result<&Arc<KindEntry>, RuntimeError> {
        let entry = self.require_public(name)?;
        match provider {
            Some(p) if !entry.providers.iter().any(|x| x.slug() == p) => {
                let fits: Vec<&str> = self
                    .kinds
                    .values()
                    .filter(|e| !e.internal && e.providers.iter().any(|x| x.slug() == p))
                    .map(|e| e.name)
                    .collect();
                Err(RuntimeError::Invalid(format!(
                    "job kind {name} does not apply to {p}; job kinds for {p}: {}",
                    fits.join(", ")
                )))
            }
            _ => Ok(entry),
        }
    }

    /// The kinds a user may enqueue.
    pub fn public_names(&self) -> Vec<&'static str> {
        self.kinds.values().filter(|e| !e.internal).map(|e| e.name).collect()
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.kinds.keys().copied().collect()
    }

    pub fn entries(&self) -> impl Iterator<Item = &Arc<KindEntry>> {
        self.kinds.values()
    }

    /// `args` of a dry run of `entry` (`"dry_run": true` added); an error naming the kinds that
    /// have one when `entry` has none, or when `args` is not an object.
    pub fn dry_run_args(&self, entry: &KindEntry, mut args: serde_json::Value) -> Result<serde_json::Value, String> {
        if !entry.dry_run {
            let planning: Vec<&str> = self.kinds.values().filter(|e| e.dry_run).map(|e| e.name).collect();
            return Err(format!(
                "{} has no dry run; dry runs exist for the device syncs ({})",
                entry.name,
                planning.join(", ")
            ));
        }
        let Some(object) = args.as_object_mut() else {
            return Err("args must be a JSON object".into());
        };
        object.insert("dry_run".into(), serde_json::Value::Bool(true));
        Ok(args)
    }
}
