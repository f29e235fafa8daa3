//! An agent list page (`GET /beta/v1/agent/`, `GET /agents/`) or one agent's detail, read from
//! the bytes and from a parsed value, and everything the sync derives from each agent: its scope,
//! status and device snapshot.
#![no_main]

use chrono::Utc;
use libfuzzer_sys::fuzz_target;
use rmm_shared::providers::tactical::mapping::{MappingContext, SiteIndex, agent_snapshot};
use rmm_shared::providers::tactical::model::Agent;
use rmm_shared::providers::tactical::parse;

fn derive(agent: &Agent) {
    let _ = (agent.local_ips(), agent.serial_number(), agent.make_model(), agent.cpu_models());
    let _ = (agent.cpu_cores(), agent.disks(), agent.last_seen_at(), agent.boot_time_at());
    let ctx = MappingContext { integration_id: uuid::Uuid::nil(), now: Utc::now() };
    if let Some(scope) = SiteIndex::default().scope_for(agent, Some("1")) {
        let _ = agent_snapshot(agent, &scope, &ctx);
    }
}

fuzz_target!(|data: &[u8]| {
    // As the client reads them: from the bytes, each agent in its compact form.
    if let Ok(page) = parse::read_agent_page(data) {
        page.items.iter().for_each(derive);
    }
    if let Ok(agent) = parse::agent_detail_from_slice(data) {
        derive(&agent);
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    if let Ok((agents, _)) = parse::records::<Agent>(value.clone()) {
        agents.iter().for_each(derive);
    }
    if let Ok(agent) = parse::agent_detail(value) {
        derive(&agent);
    }
});
