//! Property tests: the parsers that take outside input never panic, whatever they are given.

use chrono::Utc;
use proptest::prelude::*;
use rmm_shared::providers::tactical::alerts::{parse_alert_time, parse_webhook};
use rmm_shared::providers::tactical::mapping::{MappingContext, SiteIndex, agent_snapshot};
use rmm_shared::providers::tactical::model::{Agent, Alert, RawRecord};
use serde_json::Value;
use uuid::Uuid;

/// Arbitrary JSON, a few levels deep, with the keys Tactical bodies use mixed in.
fn json_value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("agent_id".to_owned()),
        Just("alert_id".to_owned()),
        Just("event".to_owned()),
        Just("severity".to_owned()),
        Just("alert_time".to_owned()),
        Just("last_seen".to_owned()),
        Just("boot_time".to_owned()),
        Just("wmi_detail".to_owned()),
        Just("monitoring_type".to_owned()),
        Just("local_ips".to_owned()),
        Just("id".to_owned()),
        "[a-z_]{1,12}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null)),
        ".{0,40}".prop_map(Value::String),
        Just(Value::String("None".into())),
        Just(Value::String("2026-02-13 18:25:43.511000+00:00".into())),
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..8).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn webhook_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_webhook(&body);
    }

    #[test]
    fn webhook_json_never_panics_and_normalizes_within_limits(v in json_value(), wrap in any::<bool>()) {
        let body = if wrap { serde_json::to_vec(&Value::String(v.to_string())).unwrap() } else { serde_json::to_vec(&v).unwrap() };
        if let Ok(parsed) = parse_webhook(&body) {
            prop_assert!(!parsed.agent_id.is_empty());
            let alert = parsed.to_alert(Uuid::nil(), Utc::now());
            prop_assert!(!alert.external_alert_id.is_empty());
            prop_assert!(alert.dedup_key().chars().count() <= 255);
            prop_assert!(["critical", "major", "moderate", "minor", "none"].contains(&alert.severity.as_str()));
        }
    }

    #[test]
    fn alert_times_never_panic(s in ".{0,64}") {
        let _ = parse_alert_time(&s);
    }

    #[test]
    fn agents_and_alerts_never_panic(v in json_value()) {
        if let Ok(agent) = Agent::from_value(v.clone()) {
            let sites = SiteIndex::default();
            if let Some(scope) = sites.scope_for(&agent, Some("1")) {
                let _ = agent_snapshot(&agent, &scope, &MappingContext { integration_id: Uuid::nil(), now: Utc::now() });
            }
        }
        let _ = Alert::from_value(v);
    }
}
