//! RMM provider clients and their mapping to device snapshots.

pub mod tactical;
