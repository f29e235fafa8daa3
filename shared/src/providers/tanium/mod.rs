//! Tanium: the API Gateway GraphQL client (operations generated from the schema subset in
//! `shared/graphql/tanium/`), the mapping of endpoints to device snapshots, and the syncs.
//! See docs/tanium-setup.md.

pub mod asset_api;
pub mod client;
pub mod connect;
pub mod error;
pub mod integration;
pub mod mapping;
pub mod ops;
pub mod parse;
pub mod record;
pub mod sync;

use super::Provider;

/// This provider.
pub const PROVIDER: Provider = Provider::Tanium;

/// The tenant secrets of a Tanium integration (AlgaPSA's names).
pub mod secrets {
    pub const GATEWAY_URL: &str = "tanium_gateway_url";
    pub const API_TOKEN: &str = "tanium_api_token";
    pub const ASSET_API_URL: &str = "tanium_asset_api_url";
}

pub use client::{
    ComputerGroup, TaniumClient, TaniumConfig, asset_api_base_url, check_token, gateway_base_url, normalize_url,
};
pub use error::TaniumError;
pub use record::EndpointRecord;
pub use sync::{DeviceSyncReport, SyncError, SyncMode, SyncOptions};
