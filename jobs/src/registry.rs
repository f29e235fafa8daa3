//! The job kinds that exist. A kind whose handler does not exist yet is not here, so neither the
//! workers nor the API know it.

use std::collections::BTreeMap;
use std::sync::Arc;

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

    /// The kinds of the service. Adding a kind = a module + one line here.
    pub fn builtin() -> Registry {
        let mut r = Registry::empty();
        r.register::<crate::maintenance::Maintenance>();
        r.register::<crate::tactical::SyncOrg>();
        r.register::<crate::tactical::SyncDevices>();
        r.register::<crate::tactical::SyncDevicesUnit>();
        r.register::<crate::tactical::SyncAgent>();
        r.register::<crate::forward::ForwardAlert>();
        r.register::<crate::tactical::BackfillAlerts>();
        r.register::<crate::tactical::IngestSoftware>();
        r.register::<crate::tanium::TaniumFullSync>();
        #[cfg(feature = "test-jobs")]
        if std::env::var("RMM_SYNC_TEST_JOBS").is_ok_and(|v| v == "1") {
            crate::testing::register(&mut r);
        }
        r
    }

    pub fn register<K: JobKind>(&mut self) -> &mut Self {
        let entry = KindEntry::of::<K>();
        assert!(entry.policy.max_attempts >= 1, "{}: max_attempts must be at least 1", K::NAME);
        assert!(self.kinds.insert(K::NAME, Arc::new(entry)).is_none(), "job kind {} registered twice", K::NAME);
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
}
