//! NinjaOne: the public API v2 client (OAuth 2 with rotating refresh tokens, or the
//! client-credentials grant of an API-service app), the shapes the API sends, the mapping of
//! devices to device snapshots, and the syncs. See docs/ninjaone-setup.md.

pub mod alerts;
pub mod client;
pub mod connect;
pub mod error;
pub mod integration;
pub mod mapping;
pub mod model;
pub mod patches;
pub mod software;
pub mod sync;
pub mod token;

use super::Provider;

/// This provider.
pub const PROVIDER: Provider = Provider::NinjaOne;

/// NinjaOne's webhook: the tenant's webhook secret in `X-Alga-Webhook-Secret` (the header
/// `register-webhook` asks NinjaOne to send), or an `X-Ninja-Signature` HMAC of the body under it.
pub const WEBHOOK: super::WebhookSpec = super::WebhookSpec {
    secret: secrets::WEBHOOK,
    signature_header: Some("x-ninja-signature"),
    parse: alerts::parse_webhook,
};

/// The tenant secrets of a NinjaOne integration (AlgaPSA's names).
pub mod secrets {
    /// The OAuth app's client id.
    pub const CLIENT_ID: &str = "ninjaone_client_id";
    /// The OAuth app's client secret.
    pub const CLIENT_SECRET: &str = "ninjaone_client_secret";
    /// `{access_token, refresh_token, expires_at (ms), instance_url}`, as AlgaPSA stores it.
    pub const CREDENTIALS: &str = "ninjaone_credentials";
    /// The webhook secret (AlgaPSA keeps it in `settings.webhook_secret`; rmm-sync in the secret
    /// chain, like Tactical's).
    pub const WEBHOOK: &str = "ninjaone_webhook_secret";
}

/// NinjaOne's regions and their base URLs (each region is its own instance).
pub const REGIONS: [(&str, &str); 5] = [
    ("US", "https://app.ninjarmm.com"),
    ("US2", "https://us2.ninjarmm.com"),
    ("EU", "https://eu.ninjarmm.com"),
    ("OC", "https://oc.ninjarmm.com"),
    ("CA", "https://ca.ninjarmm.com"),
];

/// The base URL of a region (`US`, `us2`, …), `None` for an unknown one.
pub fn region_url(region: &str) -> Option<&'static str> {
    REGIONS.iter().find(|(r, _)| r.eq_ignore_ascii_case(region.trim())).map(|(_, u)| *u)
}

/// The scopes rmm-sync asks for (AlgaPSA's, less `control`: rmm-sync runs no scripts).
pub const SCOPES: &str = "monitoring management offline_access";

pub use client::{NinjaClient, NinjaConfig, normalize_base_url};
pub use error::NinjaError;
