//! Tactical RMM: the REST client, the shapes the real server sends, and the mapping of agents to
//! device snapshots. See docs/tactical-setup.md.

pub mod alerts;
pub mod client;
pub mod connect;
pub mod error;
pub mod integration;
pub mod mapping;
pub mod model;
pub mod parse;
pub mod settings;
pub mod sync;

use super::Provider;

/// This provider.
pub const PROVIDER: Provider = Provider::TacticalRmm;

/// Tactical's alert-action webhook.
pub const WEBHOOK: super::WebhookSpec =
    super::WebhookSpec { secret: secrets::WEBHOOK, signature_header: None, parse: parse_webhook_delivery };

fn parse_webhook_delivery(body: &[u8]) -> Result<super::ParsedWebhook, String> {
    let hook = alerts::parse_webhook(body).map_err(|e| e.to_string())?;
    let event = hook.fields.get("event").and_then(serde_json::Value::as_str).unwrap_or("trigger").to_lowercase();
    Ok(super::ParsedWebhook { device_id: hook.agent_id, fields: hook.fields, event })
}

/// The tenant secrets of a Tactical integration (AlgaPSA's names).
pub mod secrets {
    pub const API_KEY: &str = "tacticalrmm_api_key";
    pub const USERNAME: &str = "tacticalrmm_username";
    pub const PASSWORD: &str = "tacticalrmm_password";
    pub const KNOX_TOKEN: &str = "tacticalrmm_knox_token";
    pub const INSTANCE_URL: &str = "tacticalrmm_instance_url";
    pub const WEBHOOK: &str = "tacticalrmm_webhook_secret";
}

pub use client::{
    AgentPager, AgentQuery, BetaPager, CheckCreds, FnTokenSink, LOGIN_THROTTLE_DEFAULT_WAIT, LoginGate, MAX_PAGE_SIZE,
    SoftwareStream, TacticalAuth, TacticalClient, TacticalConfig, TokenSink, normalize_base_url,
};
pub use error::TacticalError;
pub use mapping::{
    AgentScope, MappingContext, MappingError, SiteIndex, agent_snapshot, agent_status, compute_agent_status,
};
pub use model::{Agent, Alert, Client, Page, RawRecord, Site, SoftwareItem, SoftwareRow};
