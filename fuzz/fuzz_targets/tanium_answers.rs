//! Every answer of the Tanium API Gateway the client reads (probe, computer groups, endpoint ids,
//! inventory pages, Last Reboot and criticality readings, sensor metadata) and the Asset API
//! listing, and what the sync derives from them: snapshots, uptime and criticality facts.
#![no_main]

use chrono::Utc;
use libfuzzer_sys::fuzz_target;
use rmm_shared::providers::tanium::asset_api;
use rmm_shared::providers::tanium::mapping::endpoint_snapshot;
use rmm_shared::providers::tanium::parse;
use rmm_shared::providers::tanium::record::uptime_seconds;
use rmm_shared::providers::tanium::sync::criticality_fact;
use uuid::Uuid;

fuzz_target!(|data: &[u8]| {
    let ct = || Some("application/json".to_owned());
    let _ = parse::probe(data, ct());
    let _ = parse::computer_groups(data, ct());
    let _ = parse::endpoint_ids(data, ct());
    let _ = parse::sensors(data, ct());
    let _ = asset_api::parse_page(data);
    if let Ok(page) = parse::endpoints(data, ct(), Some("1")) {
        for r in &page.items {
            let s = endpoint_snapshot(r, Uuid::nil(), "1", Utc::now());
            assert_eq!(s.external_device_id, r.id);
        }
    }
    if let Ok(page) = parse::last_reboot(data, ct()) {
        for (_, v) in &page.items {
            let _ = uptime_seconds(Some(v), Utc::now());
        }
    }
    if let Ok(page) = parse::criticality(data, ct()) {
        for (_, c) in &page.items {
            let _ = criticality_fact(Uuid::nil(), Uuid::nil(), Some(c), Utc::now());
        }
    }
});
