//! Test support: fresh stores for every test and the RMM simulators.
#![forbid(unsafe_code)]

pub mod bench;
pub mod runtime;

/// The bytes of a recorded Tactical RMM 1.5.1 answer (`tests/fixtures/tactical-rmm-1.5.1/`).
pub fn tactical_fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/fixtures/tactical-rmm-1.5.1/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}
pub mod services;
pub mod soak;
pub mod stores;

/// The RMM simulators (crate `rmm-sim`, in `tests/sim/`).
pub use rmm_sim as sim;
