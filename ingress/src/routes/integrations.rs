//! A tenant's integration: settings and credentials, the view, the connection test, disconnect,
//! organisation mappings, and the webhook set-up (Tactical's alert action, Level's automation step).

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use rmm_shared::integrations::{self as svc, IntegrationInput};
use secrecy::SecretString;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{AdminAuth, R, Reply, ok, provider_of, tenant_read, tenant_write};
use crate::AppState;

/// Body of `PUT /tenants/{tenant}/integrations/{provider}`: every field optional; what is given
/// is merged into what is saved.
#[derive(Object, Default)]
pub struct IntegrationBody {
    /// Tactical: the API host. Tanium: the Gateway URL. Level: the API URL, only when it is not
    /// `https://api.level.io`.
    pub instance_url: Option<String>,
    /// Tactical: `api_key` or `knox`. NinjaOne: `authorization_code` or `client_credentials`.
    pub auth_mode: Option<String>,
    /// Tactical or Level: the API key.
    pub api_key: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Merged key by key into the integration's settings (`null` removes a key).
    pub settings: Option<Value>,
    /// Tanium: the API Gateway token (`token-…`).
    pub api_token: Option<String>,
    /// Tanium: the Asset API base URL for the fallback (`""` removes it).
    pub asset_api_url: Option<String>,
    /// Tanium: refresh assets of an empty computer group from the Asset API.
    pub use_asset_api_fallback: Option<bool>,
    /// NinjaOne: the OAuth app's client id.
    pub client_id: Option<String>,
    /// NinjaOne: the OAuth app's client secret.
    pub client_secret: Option<String>,
    /// NinjaOne: `US`, `US2`, `EU`, `OC` or `CA`.
    pub region: Option<String>,
}

impl From<IntegrationBody> for IntegrationInput {
    fn from(b: IntegrationBody) -> Self {
        IntegrationInput {
            instance_url: b.instance_url,
            auth_mode: b.auth_mode,
            api_key: b.api_key.map(SecretString::from),
            username: b.username,
            password: b.password.map(SecretString::from),
            settings: b.settings,
            api_token: b.api_token.map(SecretString::from),
            asset_api_url: b.asset_api_url,
            use_asset_api_fallback: b.use_asset_api_fallback,
            client_id: b.client_id,
            client_secret: b.client_secret.map(SecretString::from),
            region: b.region,
        }
    }
}

#[derive(Object, Default)]
pub struct TestBody {
    pub totp_code: Option<String>,
}

#[derive(Object, Default)]
pub struct MappingPatch {
    /// The AlgaPSA client the remote scope (Tactical client, Tanium or Level group) maps to
    /// (`null` unassigns).
    pub client_id: Option<Option<Uuid>>,
    pub auto_sync_assets: Option<bool>,
    pub default_contact_id: Option<Option<Uuid>>,
}

pub struct IntegrationsApi;

#[OpenApi]
impl IntegrationsApi {
    /// Save integration settings and credentials (merged with what is saved).
    #[oai(path = "/tenants/:tenant/integrations/:provider", method = "put")]
    async fn put_integration(
        &self,
        auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        tenant: Path<Uuid>,
        provider: Path<String>,
        b: Json<IntegrationBody>,
    ) -> R {
        tenant_write(&auth.0, tenant.0)?;
        let provider = provider_of(&provider)?;
        let input = IntegrationInput::from(b.0);
        ok(svc::save(&state.rt.db, &state.rt.secrets, tenant.0, provider, &input).await?)
    }

    /// Settings (secrets masked) and the connection summary.
    #[oai(path = "/tenants/:tenant/integrations/:provider", method = "get")]
    async fn get_integration(
        &self,
        auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        tenant: Path<Uuid>,
        provider: Path<String>,
    ) -> R {
        tenant_read(&auth.0, tenant.0)?;
        let provider = provider_of(&provider)?;
        ok(svc::view(&state.rt.db, &state.rt.secrets, tenant.0, provider).await?)
    }

    /// Disconnect: credentials deleted (the webhook secret is kept), integration inactive.
    #[oai(path = "/tenants/:tenant/integrations/:provider", method = "delete")]
    async fn delete_integration(
        &self,
        auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        tenant: Path<Uuid>,
        provider: Path<String>,
    ) -> R {
        tenant_write(&auth.0, tenant.0)?;
        let provider = provider_of(&provider)?;
        svc::disconnect(&state.rt.db, &state.rt.secrets, tenant.0, provider).await?;
        Ok(Reply::NoContent)
    }

    /// Connection test; on success the integration becomes active.
    #[oai(path = "/tenants/:tenant/integrations/:provider/test", method = "post")]
    async fn test_integration(
        &self,
        auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        tenant: Path<Uuid>,
        provider: Path<String>,
        b: Json<TestBody>,
    ) -> R {
        tenant_write(&auth.0, tenant.0)?;
        let provider = provider_of(&provider)?;
        let outcome = svc::test(&state.rt.integrations(), tenant.0, provider, b.totp_code.as_deref()).await?;
        ok(outcome.to_json())
    }

    /// Organisation mappings of the integration.
    #[oai(path = "/tenants/:tenant/integrations/:provider/mappings", method = "get")]
    async fn list_mappings(
        &self,
        auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        tenant: Path<Uuid>,
        provider: Path<String>,
    ) -> R {
        tenant_read(&auth.0, tenant.0)?;
        let provider = provider_of(&provider)?;
        let list = svc::mappings(&state.rt.db, tenant.0, provider).await?;
        ok(json!({ "mappings": list }))
    }

    /// Change one organisation mapping.
    #[oai(path = "/tenants/:tenant/integrations/:provider/mappings/:mapping_id", method = "patch")]
    async fn patch_mapping(
        &self,
        auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        tenant: Path<Uuid>,
        provider: Path<String>,
        mapping_id: Path<Uuid>,
        b: Json<MappingPatch>,
    ) -> R {
        tenant_write(&auth.0, tenant.0)?;
        let provider = provider_of(&provider)?;
        let patch = svc::MappingPatch {
            client_id: b.client_id,
            auto_sync_assets: b.auto_sync_assets,
            default_contact_id: b.default_contact_id,
        };
        svc::patch_mapping(&state.rt.db, tenant.0, provider, mapping_id.0, &patch).await?;
        ok(json!({ "mapping_id": mapping_id.0, "updated": true }))
    }

    /// OAuth providers (NinjaOne): the provider's authorize URL for the tenant, with a signed
    /// `state`; the admin's browser goes there, consents, and comes back to
    /// `/api/integrations/{provider}/callback`, which stores the tokens.
    #[oai(path = "/tenants/:tenant/integrations/:provider/authorize", method = "get")]
    async fn authorize(
        &self,
        auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        tenant: Path<Uuid>,
        provider: Path<String>,
    ) -> R {
        tenant_write(&auth.0, tenant.0)?;
        let p = provider_of(&provider)?;
        let conn = state.rt.integrations();
        let url = svc::oauth_authorize(&conn, tenant.0, p, &state.rt.settings.http).await?;
        ok(json!({ "url": url, "redirectUri": svc::oauth_redirect_uri(&state.rt.settings.http, p) }))
    }

    /// What to paste into the RMM to send its webhooks here (Tactical: the alert action's URL,
    /// headers and bodies; Level: the HTTP POST step of an automation, the same with a resolve body
    /// and what each field carries); creates the tenant's webhook secret on first use.
    #[oai(path = "/tenants/:tenant/integrations/:provider/webhook", method = "get")]
    async fn webhook_info(
        &self,
        auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        tenant: Path<Uuid>,
        provider: Path<String>,
    ) -> R {
        tenant_write(&auth.0, tenant.0)?;
        let p = provider_of(&provider)?;
        ok(svc::webhook_setup(&state.rt.secrets, tenant.0, p, &state.rt.settings.http).await?)
    }
}
