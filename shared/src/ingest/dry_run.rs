//! A dry run: a sync taken through the plan step only. Each page is read and planned in a read-only
//! transaction and nothing is written; what the run would do is gathered here, per RMM organisation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::changes::{AssetChange, ChangeAction};
use super::plan::Item;
use super::snapshot::{IngestAction, IngestOutcome};

/// How many changes a dry run lists per organisation; the counts cover every device.
pub const CHANGES_LISTED: usize = 500;

/// What a dry run would do, per RMM organisation (`external_organization_id`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DryRun {
    pub organizations: BTreeMap<String, OrganizationPlan>,
}

/// What a dry run would do in one organisation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrganizationPlan {
    /// Devices that would get a new asset.
    pub create: u64,
    /// Existing assets whose tracked fields would change (moves included).
    pub update: u64,
    /// Existing assets that would move to another client.
    #[serde(rename = "move")]
    pub moves: u64,
    /// Assets that would be tombstoned.
    pub tombstone: u64,
    /// Existing assets only refreshed (last seen, status and the other volatile values).
    pub unchanged: u64,
    /// Devices that would be skipped (no mapped client, nothing to delete).
    pub skip: u64,
    /// Devices that could not be planned.
    pub fail: u64,
    /// The changes, the first [`CHANGES_LISTED`] of them.
    pub changes: Vec<AssetChange>,
    /// Changes counted but not listed.
    pub changes_not_listed: u64,
    /// Why devices were skipped or failed, the first few.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub errors: Vec<String>,
}

impl DryRun {
    /// Records a planned page: its outcomes (in item order) and its changes.
    pub fn record(&mut self, items: &[Item<'_>], outcomes: &[IngestOutcome], changes: Vec<AssetChange>) {
        let mut changed = std::collections::HashSet::new();
        for c in changes {
            changed.insert(c.asset_id);
            let org = self.organizations.entry(c.external_organization_id.clone()).or_default();
            match c.action {
                ChangeAction::Created => org.create += 1,
                ChangeAction::Updated => org.update += 1,
                ChangeAction::Moved => {
                    org.update += 1;
                    org.moves += 1;
                }
                ChangeAction::Tombstoned => org.tombstone += 1,
            }
            org.list(c);
        }
        for (item, outcome) in items.iter().zip(outcomes) {
            let org = self.organizations.entry(item.snapshot.external_scope_id.clone()).or_default();
            match outcome.action {
                IngestAction::Updated | IngestAction::MarkedDeleted
                    if !outcome.asset_id.is_some_and(|id| changed.contains(&id)) =>
                {
                    org.unchanged += 1
                }
                IngestAction::Skipped => {
                    org.skip += 1;
                    org.note(outcome);
                }
                IngestAction::Failed => {
                    org.fail += 1;
                    org.note(outcome);
                }
                _ => {}
            }
        }
    }

    /// Adds another dry run's organisations (a unit's) to this one.
    pub fn absorb(&mut self, other: DryRun) {
        for (key, plan) in other.organizations {
            let org = self.organizations.entry(key).or_default();
            org.create += plan.create;
            org.update += plan.update;
            org.moves += plan.moves;
            org.tombstone += plan.tombstone;
            org.unchanged += plan.unchanged;
            org.skip += plan.skip;
            org.fail += plan.fail;
            org.changes_not_listed += plan.changes_not_listed;
            for c in plan.changes {
                org.list(c);
            }
            for e in plan.errors {
                if org.errors.len() < crate::runs::SYNC_ERROR_LIMIT {
                    org.errors.push(e);
                }
            }
        }
    }
}

impl OrganizationPlan {
    fn list(&mut self, change: AssetChange) {
        if self.changes.len() < CHANGES_LISTED {
            self.changes.push(change);
        } else {
            self.changes_not_listed += 1;
        }
    }

    fn note(&mut self, outcome: &IngestOutcome) {
        if let Some(e) = &outcome.error
            && self.errors.len() < crate::runs::SYNC_ERROR_LIMIT
        {
            self.errors.push(format!("{}: {e}", outcome.external_device_id));
        }
    }
}
