//! Test support: fresh stores for every test and the RMM simulators.
#![forbid(unsafe_code)]

pub mod sim;
pub mod stores;
