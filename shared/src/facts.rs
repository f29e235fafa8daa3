//! The `asset_facts` writer, with AlgaPSA's upsert contract:
//! insert, or on `(tenant, asset_id, source_type, namespace, fact_key)` merge provider,
//! integration, label, values, source, source time, `last_synced_at`, availability and
//! `updated_at`. An unavailable fact stores no text, number or boolean value.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::db::sql::{ColType, fmt_ts};
use crate::db::{Db, DbError, Dialect};

/// One fact about an asset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AssetFact {
    pub asset_id: Uuid,
    /// `integration`, `manual` or `system`.
    pub source_type: String,
    pub provider: Option<String>,
    pub integration_id: Option<Uuid>,
    pub namespace: String,
    pub fact_key: String,
    pub label: String,
    pub value_text: Option<String>,
    /// Stored as `numeric(12,4)`.
    pub value_number: Option<f64>,
    pub value_bool: Option<bool>,
    /// `{}` when there is nothing structured to keep.
    pub value_json: Value,
    pub source: String,
    pub source_updated_at: Option<DateTime<Utc>>,
    /// Defaults to the write time.
    pub last_synced_at: Option<DateTime<Utc>>,
    pub is_available: bool,
}

/// Upserts facts in one statement; returns the number of rows written.
pub async fn upsert_facts(db: &Db, tenant: Uuid, facts: &[AssetFact], now: DateTime<Utc>) -> Result<u64, DbError> {
    if facts.is_empty() {
        return Ok(0);
    }
    let d = db.dialect();
    let rows: Vec<Value> = facts
        .iter()
        .map(|f| {
            let (text, number, boolean) =
                if f.is_available { (f.value_text.clone(), f.value_number, f.value_bool) } else { (None, None, None) };
            json!({
                "asset_fact_id": Uuid::new_v4(),
                "asset_id": f.asset_id,
                "source_type": f.source_type,
                "provider": f.provider,
                "integration_id": f.integration_id,
                "namespace": f.namespace,
                "fact_key": f.fact_key,
                "label": f.label,
                "value_text": text,
                "value_number": number.map(|n| (n * 10_000.0).round() / 10_000.0),
                "value_bool": boolean,
                "value_json": if f.value_json.is_null() { json!({}) } else { f.value_json.clone() },
                "source": f.source,
                "source_updated_at": f.source_updated_at.map(fmt_ts),
                "last_synced_at": fmt_ts(f.last_synced_at.unwrap_or(now)),
                "is_available": f.is_available,
            })
        })
        .collect();
    let cols = [
        ("asset_fact_id", ColType::Uuid),
        ("asset_id", ColType::Uuid),
        ("source_type", ColType::Text),
        ("provider", ColType::Text),
        ("integration_id", ColType::Uuid),
        ("namespace", ColType::Text),
        ("fact_key", ColType::Text),
        ("label", ColType::Text),
        ("value_text", ColType::Text),
        ("value_number", ColType::Text),
        ("value_bool", ColType::Bool),
        ("value_json", ColType::Json),
        ("source", ColType::Text),
        ("source_updated_at", ColType::Timestamp),
        ("last_synced_at", ColType::Timestamp),
        ("is_available", ColType::Bool),
    ];
    let names: Vec<&str> = cols.iter().map(|(c, _)| *c).collect();
    let select: Vec<String> = names
        .iter()
        .map(|c| match (*c, d) {
            ("value_number", Dialect::Postgres) => "CAST(r.value_number AS numeric(12,4))".to_owned(),
            _ => format!("r.{c}"),
        })
        .collect();
    let merged = [
        "provider",
        "integration_id",
        "label",
        "value_text",
        "value_number",
        "value_bool",
        "value_json",
        "source",
        "source_updated_at",
        "last_synced_at",
        "is_available",
    ];
    let sets: Vec<String> = merged.iter().map(|c| format!("{c} = excluded.{c}")).collect();
    let sql = format!(
        "INSERT INTO asset_facts (tenant, {names}, created_at, updated_at) SELECT {t}, {select}, {n}, {n} FROM {rs} WHERE true \
         ON CONFLICT (tenant, asset_id, source_type, namespace, fact_key) DO UPDATE SET {sets}, updated_at = excluded.updated_at",
        names = names.join(", "),
        select = select.join(", "),
        sets = sets.join(", "),
        t = d.param(1, ColType::Uuid),
        n = d.param(2, ColType::Timestamp),
        rs = d.recordset(3, &cols),
    );
    db.execute(&sql, &[&tenant.to_string(), &fmt_ts(now), &Value::Array(rows).to_string()]).await
}
