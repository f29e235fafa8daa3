//! `GET /software/` read as a stream (one row at a time, as the sync reads it), one agent's
//! `GET /software/<agent_id>/`, and the programs the software writer gets from each row.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rmm_shared::providers::tactical::parse;
use rmm_shared::providers::tactical::sync::software_items;
use rmm_shared::software::normalize_name;

fn take(row: rmm_shared::providers::tactical::model::SoftwareRow) {
    for item in software_items(row.software) {
        let _ = normalize_name(&item.name);
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = parse::read_software_rows(data, |row| {
        take(row);
        true
    });
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data)
        && let Ok(Some(row)) = parse::agent_software(value)
    {
        take(row);
    }
});
