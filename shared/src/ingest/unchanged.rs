//! Finding rows that a write would leave as they are.
//!
//! A resync mostly rewrites rows with the values they already hold. The writer reads the current
//! values of the rows a page updates and, where every written column already holds the value it
//! would write, replaces the full update by a narrow one that only refreshes the sync timestamps
//! (or, for extension rows, by nothing). The rows end exactly as a full write would leave them.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::db::sql::{ColType, Tx};
use crate::db::{DbError, Dialect};

/// Reads `cols` of the rows of `table` whose `key` column is in `ids`, as JSON objects keyed by id.
pub(super) async fn current_rows(
    tx: &mut Tx,
    tenant: Uuid,
    table: &str,
    key: &str,
    ids: &[Uuid],
    cols: &[(&str, ColType)],
) -> Result<HashMap<Uuid, Map<String, Value>>, DbError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let d = tx.dialect();
    let pairs: Vec<String> = cols
        .iter()
        .map(|(c, t)| match (d, t) {
            (Dialect::Sqlite, ColType::Json) => format!("'{c}', json(\"{c}\")"),
            _ => format!("'{c}', \"{c}\""),
        })
        .collect();
    let object = match d {
        Dialect::Postgres => format!("CAST(json_build_object({}) AS TEXT)", pairs.join(", ")),
        Dialect::Sqlite => format!("json_object({})", pairs.join(", ")),
    };
    let ids_j = serde_json::to_string(&ids.iter().map(Uuid::to_string).collect::<Vec<_>>()).expect("json");
    let rows: Vec<(String, String)> = tx
        .fetch(
            &format!(
                "SELECT {}, {object} FROM {table} WHERE tenant = {} AND {key} {}",
                d.text(key),
                d.param(1, ColType::Uuid),
                d.in_json(2, ColType::Uuid)
            ),
            &[&tenant.to_string(), &ids_j],
        )
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, json)| {
            let id = Uuid::parse_str(&id).ok()?;
            match serde_json::from_str(&json).ok()? {
                Value::Object(m) => Some((id, m)),
                _ => None,
            }
        })
        .collect())
}

/// Does `current` already hold `desired` in every column of `cols` that `desired` has?
pub(super) fn holds(current: &Map<String, Value>, desired: &Map<String, Value>, cols: &[(&str, ColType)]) -> bool {
    cols.iter().all(|(c, t)| match desired.get(*c) {
        None => true,
        Some(want) => same(*t, current.get(*c).unwrap_or(&Value::Null), want),
    })
}

fn same(ty: ColType, have: &Value, want: &Value) -> bool {
    match (have, want) {
        (Value::Null, Value::Null) => true,
        (Value::Null, _) | (_, Value::Null) => false,
        _ => match ty {
            ColType::Timestamp => ts(have).is_some() && ts(have) == ts(want),
            ColType::Int | ColType::BigInt => num(have).is_some() && num(have) == num(want),
            ColType::Bool => truthy(have) == truthy(want),
            ColType::Json => json_eq(have, want),
            ColType::Uuid | ColType::Text => have.as_str().is_some() && have.as_str() == want.as_str(),
        },
    }
}

fn ts(v: &Value) -> Option<DateTime<Utc>> {
    let s = v.as_str()?;
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%#z"))
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%#z"))
        .ok()
        .map(|t| t.with_timezone(&Utc))
        // Compare at the millisecond precision the SQLite store keeps.
        .map(|t| t - chrono::Duration::nanoseconds(i64::from(t.timestamp_subsec_nanos() % 1_000_000)))
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

fn truthy(v: &Value) -> Option<bool> {
    v.as_bool().or_else(|| v.as_i64().map(|i| i != 0))
}

/// JSON equality where numbers compare by value (`16` equals `16.0`).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_compare_across_representations() {
        assert!(same(ColType::Timestamp, &json!("2026-11-01T10:00:00+00:00"), &json!("2026-11-01T10:00:00.000Z")));
        assert!(same(
            ColType::Timestamp,
            &json!("2026-11-01T10:00:00.123456+00:00"),
            &json!("2026-11-01T10:00:00.123Z")
        ));
        assert!(!same(ColType::Timestamp, &json!("2026-11-01T10:00:01+00:00"), &json!("2026-11-01T10:00:00.000Z")));
        assert!(same(ColType::Int, &json!(16), &json!(16)));
        assert!(same(ColType::Json, &json!({"a": [1.0, {"b": null}]}), &json!({"a": [1, {"b": null}]})));
        assert!(!same(ColType::Json, &json!({"a": 1}), &json!({"a": 1, "b": 2})));
        assert!(!same(ColType::Text, &Value::Null, &json!("x")));
        assert!(same(ColType::Bool, &json!(1), &json!(true)));
    }

    #[test]
    fn only_written_columns_count() {
        let cols = [("a", ColType::Text), ("b", ColType::Text)];
        let have = json!({"a": "x", "b": "old"});
        let want = json!({"a": "x"});
        assert!(holds(have.as_object().unwrap(), want.as_object().unwrap(), &cols));
        let want = json!({"a": "x", "b": null});
        assert!(!holds(have.as_object().unwrap(), want.as_object().unwrap(), &cols));
    }
}
