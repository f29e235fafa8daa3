//! Test support: fresh stores for every test and the RMM simulators.
#![forbid(unsafe_code)]

pub mod bench;
pub mod runtime;
pub mod services;
pub mod soak;
pub mod stores;

/// The RMM simulators (crate `rmm-sim`, in `tests/sim/`).
pub use rmm_sim as sim;
