//! Shared library of rmm-sync: configuration, telemetry, the stores and their migrations, the
//! normalized device snapshot contract and the ingestion pipeline that writes AlgaPSA's tables.
#![forbid(unsafe_code)]

pub mod alerts;
pub mod config;
pub mod db;
pub mod events;
pub mod facts;
pub mod history;
pub mod http;
pub mod ingest;
pub mod integrations;
pub mod providers;
pub mod ratelimit;
pub mod runs;
pub mod secrets;
pub mod software;
pub mod telemetry;
pub mod upstream_calls;
