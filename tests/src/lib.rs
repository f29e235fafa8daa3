//! Test support: fresh stores for every test and the RMM simulators.
#![forbid(unsafe_code)]

pub mod bench;
pub mod runtime;
pub mod sim;
pub mod stores;
