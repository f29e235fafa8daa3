//! `PUT /tenants/{tenant}` and `PUT /tenants/{tenant}/clients/{client_id}` (standalone mode).

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use rmm_shared::integrations as svc;
use serde_json::json;
use uuid::Uuid;

use super::{AdminAuth, ApiError, R, body, ok, standalone, tenant_write};
use crate::AppState;

/// Body of `PUT /tenants/{tenant}` and `PUT /tenants/{tenant}/clients/{client_id}`.
#[derive(Object)]
pub struct NameBody {
    pub name: String,
    /// Tenant contact e-mail (tenants only; default `admin@<tenant>.invalid`).
    pub email: Option<String>,
}

pub struct TenantsApi;

#[OpenApi]
impl TenantsApi {
    /// Create or rename a tenant (standalone mode only).
    #[oai(path = "/tenants/:tenant", method = "put")]
    async fn put_tenant(
        &self,
        auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        tenant: Path<Uuid>,
        b: Json<NameBody>,
    ) -> R {
        standalone(&state)?;
        if !auth.0.is_global() || !auth.0.write {
            return Err(ApiError::Forbidden(body("creating tenants needs a global read-write key")));
        }
        let name = svc::put_tenant(&state.rt.db, tenant.0, &b.name, b.email.as_deref()).await?;
        ok(json!({ "tenant": tenant.0, "name": name }))
    }

    /// Create or rename a client of a tenant (standalone mode only).
    #[oai(path = "/tenants/:tenant/clients/:client_id", method = "put")]
    async fn put_client(
        &self,
        auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        tenant: Path<Uuid>,
        client_id: Path<Uuid>,
        b: Json<NameBody>,
    ) -> R {
        standalone(&state)?;
        tenant_write(&auth.0, tenant.0)?;
        let name = svc::put_client(&state.rt.db, tenant.0, client_id.0, &b.name).await?;
        ok(json!({ "tenant": tenant.0, "client_id": client_id.0, "name": name }))
    }
}
