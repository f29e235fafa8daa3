//! The webhook request as the ingress reads it: the query string (up to the first newline of the
//! input) for the tenant, the rest as the body; then the normalized alert a stored delivery
//! becomes.
#![no_main]

use chrono::Utc;
use libfuzzer_sys::fuzz_target;
use rmm_shared::providers::tactical::alerts::parse_webhook;
use rmm_shared::providers::webhook_tenant;

fuzz_target!(|data: &[u8]| {
    let (query, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b""[..], data),
    };
    if let Ok(q) = std::str::from_utf8(query) {
        let _ = webhook_tenant(Some(q));
    }
    if let Ok(hook) = parse_webhook(body) {
        assert!(!hook.agent_id.is_empty());
        let alert = hook.to_alert(uuid::Uuid::nil(), Utc::now());
        assert!(!alert.external_alert_id.is_empty());
        assert!(alert.dedup_key().chars().count() <= 255);
    }
});
