//! Recording RMM alerts in `rmm_alerts` with AlgaPSA's rules: redelivery of an open alert only touches `updated_at`; a resolved alert that
//! triggers again is reopened (ticket, resolution and window cleared); a reset resolves an open
//! alert. Ticket rules and maintenance windows stay with AlgaPSA.
//!
//! One deliberate addition: a reset that arrives without the provider's alert id (so with a
//! synthesized one) resolves the newest open alert of the same device and condition (dedup key),
//! where AlgaPSA would look for the synthesized id and find nothing.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::db::sql::{ColType, Tx, fmt_ts};
use crate::db::{Db, DbError};
use crate::ingest::plan::truncate;

/// The marker AlgaPSA's reconciliation puts in an alert's metadata (`__alga_ingest_source`).
pub const POLL_MARKER: &str = "reconciliation";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    Triggered,
    Reset,
}

/// A provider's alert event in AlgaPSA's normalized shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NormalizedAlert {
    pub integration_id: Uuid,
    pub provider: String,
    pub kind: AlertKind,
    pub external_alert_id: String,
    /// True when the provider sent no alert id and `external_alert_id` was made up.
    pub synthesized_id: bool,
    pub external_device_id: Option<String>,
    pub external_organization_id: Option<String>,
    pub condition_identity: Option<String>,
    pub activity_type: String,
    pub source_type: String,
    pub alert_class: Option<String>,
    /// `critical|major|moderate|minor|none`.
    pub severity: String,
    pub message: Option<String>,
    pub device_name: Option<String>,
    pub occurred_at: DateTime<Utc>,
    pub raw: Value,
}

impl NormalizedAlert {
    /// `<device|'no-device'>|<condition ?? class ?? activity ?? source ?? 'unknown'>`, ≤ 255 chars.
    pub fn dedup_key(&self) -> String {
        let device = self.external_device_id.as_deref().unwrap_or("no-device");
        let condition = self
            .condition_identity
            .as_deref()
            .or(self.alert_class.as_deref())
            .or(Some(self.activity_type.as_str()).filter(|s| !s.is_empty()))
            .or(Some(self.source_type.as_str()).filter(|s| !s.is_empty()))
            .unwrap_or("unknown");
        truncate(&format!("{device}|{condition}"), 255)
    }
}

/// What recording an alert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum AlertOutcome {
    /// Inserted, or reopened.
    Recorded {
        alert_id: Uuid,
    },
    /// A redelivery of an open alert, or a reset of an unknown or already resolved one.
    Skipped {
        alert_id: Option<Uuid>,
    },
    Resolved {
        alert_id: Uuid,
    },
}

/// Records one alert event in its own transaction.
pub async fn record_alert(
    db: &Db,
    tenant: Uuid,
    alert: &NormalizedAlert,
    reprocess_suppressed: bool,
) -> Result<AlertOutcome, DbError> {
    db.in_write_tx(async |tx| record_alert_in(tx, tenant, alert, reprocess_suppressed).await).await
}

/// Records one alert event inside the caller's transaction, for writes that must stand or fall
/// with it (e.g. marking the webhook delivery it came from processed).
pub async fn record_alert_in(
    tx: &mut Tx,
    tenant: Uuid,
    alert: &NormalizedAlert,
    reprocess_suppressed: bool,
) -> Result<AlertOutcome, DbError> {
    match alert.kind {
        AlertKind::Triggered => trigger(tx, tenant, alert, reprocess_suppressed).await,
        AlertKind::Reset => reset(tx, tenant, alert).await,
    }
}

type Existing = (String, String);

async fn find(tx: &mut Tx, tenant: Uuid, alert: &NormalizedAlert) -> Result<Option<(Uuid, String)>, DbError> {
    let d = tx.dialect();
    let rows: Vec<Existing> = tx
        .fetch(
            &format!(
                "SELECT {}, status FROM rmm_alerts WHERE tenant = {} AND integration_id = {} AND external_alert_id = {}",
                d.text("alert_id"),
                d.param(1, ColType::Uuid),
                d.param(2, ColType::Uuid),
                d.param(3, ColType::Text)
            ),
            &[&tenant.to_string(), &alert.integration_id.to_string(), &truncate(&alert.external_alert_id, 255)],
        )
        .await?;
    Ok(rows.into_iter().find_map(|(id, status)| Some((Uuid::parse_str(&id).ok()?, status))))
}

async fn trigger(
    tx: &mut Tx,
    tenant: Uuid,
    alert: &NormalizedAlert,
    reprocess_suppressed: bool,
) -> Result<AlertOutcome, DbError> {
    let d = tx.dialect();
    let now = fmt_ts(Utc::now());
    if let Some((id, status)) = find(tx, tenant, alert).await? {
        let open =
            matches!(status.as_str(), "active" | "acknowledged") || (status == "suppressed" && !reprocess_suppressed);
        if open {
            tx.execute(
                &format!(
                    "UPDATE rmm_alerts SET updated_at = {} WHERE tenant = {} AND alert_id = {}",
                    d.param(1, ColType::Timestamp),
                    d.param(2, ColType::Uuid),
                    d.param(3, ColType::Uuid)
                ),
                &[&now, &tenant.to_string(), &id.to_string()],
            )
            .await?;
            return Ok(AlertOutcome::Skipped { alert_id: Some(id) });
        }
    }
    // The asset, through the device's mapping (any realm), if it still exists.
    let asset: Option<String> = match &alert.external_device_id {
        None => None,
        Some(device) => tx
            .fetch::<(String,)>(
                &format!(
                    "SELECT {} FROM tenant_external_entity_mappings m JOIN assets a \
                     ON a.tenant = m.tenant AND {} = m.alga_entity_id \
                     WHERE m.tenant = {} AND m.integration_type = {} AND m.alga_entity_type = 'asset' \
                     AND m.external_entity_id = {} ORDER BY m.created_at LIMIT 1",
                    d.text("a.asset_id"),
                    d.text("a.asset_id"),
                    d.param(1, ColType::Uuid),
                    d.param(2, ColType::Text),
                    d.param(3, ColType::Text)
                ),
                &[&tenant.to_string(), &alert.provider, device],
            )
            .await?
            .into_iter()
            .next()
            .map(|(a,)| a),
    };
    let row = serde_json::json!({
        "alert_id": Uuid::new_v4(),
        "external_alert_id": truncate(&alert.external_alert_id, 255),
        "external_device_id": alert.external_device_id.as_deref().map(|s| truncate(s, 255)),
        "asset_id": asset,
        "severity": truncate(&alert.severity, 20),
        "source_type": truncate(&alert.source_type, 50),
        "alert_class": alert.alert_class.as_deref().map(|s| truncate(s, 100)),
        "activity_type": truncate(&alert.activity_type, 100),
        "message": alert.message,
        "device_name": alert.device_name,
        "dedup_key": alert.dedup_key(),
        "occurred_at": fmt_ts(alert.occurred_at),
        "metadata": alert.raw,
    });
    let cols = [
        ("alert_id", ColType::Uuid),
        ("external_alert_id", ColType::Text),
        ("external_device_id", ColType::Text),
        ("asset_id", ColType::Uuid),
        ("severity", ColType::Text),
        ("source_type", ColType::Text),
        ("alert_class", ColType::Text),
        ("activity_type", ColType::Text),
        ("message", ColType::Text),
        ("device_name", ColType::Text),
        ("dedup_key", ColType::Text),
        ("occurred_at", ColType::Timestamp),
        ("metadata", ColType::Json),
    ];
    let ids: Vec<(String,)> = tx
        .fetch(
            &format!(
                "INSERT INTO rmm_alerts (tenant, alert_id, integration_id, external_alert_id, external_device_id, asset_id, \
                 severity, status, source_type, alert_class, activity_type, message, device_name, dedup_key, triggered_at, \
                 last_occurrence_at, metadata, created_at, updated_at) \
                 SELECT {t}, r.alert_id, {i}, r.external_alert_id, r.external_device_id, r.asset_id, r.severity, 'active', \
                 r.source_type, r.alert_class, r.activity_type, r.message, r.device_name, r.dedup_key, r.occurred_at, \
                 r.occurred_at, r.metadata, {n}, {n} FROM {rs} WHERE true \
                 ON CONFLICT (tenant, integration_id, external_alert_id) DO UPDATE SET \
                 external_device_id = excluded.external_device_id, asset_id = excluded.asset_id, severity = excluded.severity, \
                 status = 'active', source_type = excluded.source_type, alert_class = excluded.alert_class, \
                 activity_type = excluded.activity_type, message = excluded.message, device_name = excluded.device_name, \
                 dedup_key = excluded.dedup_key, triggered_at = excluded.triggered_at, \
                 last_occurrence_at = excluded.last_occurrence_at, metadata = excluded.metadata, \
                 updated_at = excluded.updated_at, ticket_id = NULL, resolved_at = NULL, suppressed_by_window_id = NULL \
                 RETURNING {id}",
                t = d.param(1, ColType::Uuid),
                i = d.param(2, ColType::Uuid),
                n = d.param(3, ColType::Timestamp),
                rs = d.recordset(4, &cols),
                id = d.text("alert_id"),
            ),
            &[&tenant.to_string(), &alert.integration_id.to_string(), &now, &Value::Array(vec![row]).to_string()],
        )
        .await?;
    let id = ids.into_iter().next().and_then(|(id,)| Uuid::parse_str(&id).ok()).unwrap_or_default();
    Ok(AlertOutcome::Recorded { alert_id: id })
}

async fn reset(tx: &mut Tx, tenant: Uuid, alert: &NormalizedAlert) -> Result<AlertOutcome, DbError> {
    let d = tx.dialect();
    let target = match find(tx, tenant, alert).await? {
        Some(found) => Some(found),
        None if alert.synthesized_id => tx
            .fetch::<(String, String)>(
                &format!(
                    "SELECT {}, status FROM rmm_alerts WHERE tenant = {} AND integration_id = {} AND dedup_key = {} \
                     AND status IN ('active', 'acknowledged', 'suppressed') ORDER BY triggered_at DESC LIMIT 1",
                    d.text("alert_id"),
                    d.param(1, ColType::Uuid),
                    d.param(2, ColType::Uuid),
                    d.param(3, ColType::Text)
                ),
                &[&tenant.to_string(), &alert.integration_id.to_string(), &alert.dedup_key()],
            )
            .await?
            .into_iter()
            .find_map(|(id, status)| Some((Uuid::parse_str(&id).ok()?, status))),
        None => None,
    };
    let Some((id, status)) = target else { return Ok(AlertOutcome::Skipped { alert_id: None }) };
    if matches!(status.as_str(), "resolved" | "auto_resolved") {
        return Ok(AlertOutcome::Skipped { alert_id: Some(id) });
    }
    tx.execute(
        &format!(
            "UPDATE rmm_alerts SET status = 'resolved', resolved_at = {}, updated_at = {} WHERE tenant = {} AND alert_id = {}",
            d.param(1, ColType::Timestamp),
            d.param(2, ColType::Timestamp),
            d.param(3, ColType::Uuid),
            d.param(4, ColType::Uuid)
        ),
        &[&fmt_ts(alert.occurred_at), &fmt_ts(Utc::now()), &tenant.to_string(), &id.to_string()],
    )
    .await?;
    Ok(AlertOutcome::Resolved { alert_id: id })
}

/// Open alerts of an integration that a poll recorded (`__alga_ingest_source = 'reconciliation'`):
/// `(alert_id, external_alert_id)`.
pub async fn open_polled_alerts(db: &Db, tenant: Uuid, integration_id: Uuid) -> Result<Vec<(Uuid, String)>, DbError> {
    let d = db.dialect();
    let marker = match d {
        crate::db::Dialect::Postgres => "metadata->>'__alga_ingest_source'",
        crate::db::Dialect::Sqlite => "json_extract(metadata, '$.__alga_ingest_source')",
    };
    let rows: Vec<(String, String)> = db
        .fetch(
            &format!(
                "SELECT {}, external_alert_id FROM rmm_alerts WHERE tenant = {} AND integration_id = {} \
                 AND status IN ('active', 'acknowledged', 'suppressed') AND {marker} = '{POLL_MARKER}'",
                d.text("alert_id"),
                d.param(1, ColType::Uuid),
                d.param(2, ColType::Uuid)
            ),
            &[&tenant.to_string(), &integration_id.to_string()],
        )
        .await?;
    Ok(rows.into_iter().filter_map(|(id, ext)| Some((Uuid::parse_str(&id).ok()?, ext))).collect())
}
