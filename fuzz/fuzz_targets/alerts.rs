//! The active-alert list (`PATCH /alerts/`) and the normalized events the backfill records.
#![no_main]

use chrono::Utc;
use libfuzzer_sys::fuzz_target;
use rmm_shared::providers::tactical::alerts::polled_alert;
use rmm_shared::providers::tactical::parse;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    if let Ok(alerts) = parse::active_alerts(value) {
        for a in &alerts {
            let n = polled_alert(a, uuid::Uuid::nil(), Utc::now());
            assert!(n.dedup_key().chars().count() <= 255);
            let _ = a.alert_time_at();
        }
    }
});
