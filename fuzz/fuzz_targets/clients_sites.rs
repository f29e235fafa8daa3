//! The client list (`GET /beta/v1/client/`) and site pages (`GET /beta/v1/site/`), and the site
//! index the sync builds from them to place agents.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rmm_shared::providers::tactical::mapping::SiteIndex;
use rmm_shared::providers::tactical::model::{Agent, Client, RawRecord, Site};
use rmm_shared::providers::tactical::parse;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    if let Ok((clients, _)) = parse::records::<Client>(value.clone()) {
        for c in &clients {
            let _ = (c.id.to_string(), c.name.trim(), &c.raw);
        }
    }
    if let Ok((sites, _)) = parse::records::<Site>(value) {
        let ids: Vec<i64> = sites.iter().map(|s| s.id).collect();
        let index = SiteIndex::new(sites);
        for id in ids {
            let agent = Agent::from_value(serde_json::json!({ "agent_id": "a", "site": id })).expect("agent");
            assert!(index.scope_for(&agent, None).is_some());
        }
    }
});
