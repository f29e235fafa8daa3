//! Level (level.io): the v2 REST client, the shapes its API sends, the group tree, the mapping of
//! devices to device snapshots, the syncs, and the webhook a Level automation posts.
//! See docs/level-setup.md.

pub mod alerts;
pub mod client;
pub mod connect;
pub mod error;
pub mod integration;
pub mod mapping;
pub mod model;
pub mod sync;

use super::Provider;

/// This provider.
pub const PROVIDER: Provider = Provider::LevelIo;

/// Level's API host; an integration without an instance URL talks to it.
pub const DEFAULT_BASE_URL: &str = "https://api.level.io";

/// The tenant secrets of a Level integration (AlgaPSA's names).
pub mod secrets {
    pub const API_KEY: &str = "levelio_api_key";
    /// rmm-sync's own, optional: the API URL when the integration row has none (AlgaPSA reads
    /// `LEVELIO_API_BASE_URL` from its environment instead). Unset: `https://api.level.io`.
    pub const INSTANCE_URL: &str = "levelio_instance_url";
    pub const WEBHOOK: &str = "levelio_webhook_secret";
}

/// The HTTP POST step of a Level automation.
pub const WEBHOOK: super::WebhookSpec =
    super::WebhookSpec { secret: secrets::WEBHOOK, signature_header: None, parse: parse_webhook_delivery };

fn parse_webhook_delivery(body: &[u8]) -> Result<super::ParsedWebhook, String> {
    let hook = alerts::parse_webhook(body).map_err(|e| e.to_string())?;
    let event = hook.event();
    Ok(super::ParsedWebhook { device_id: hook.device_id, fields: hook.fields, event })
}

pub use client::{LevelClient, LevelConfig, PAGE_LIMIT};
pub use error::LevelError;
pub use mapping::{GroupTree, device_snapshot};
pub use model::{Alert, Device, Group, Update};
