//! Assets: the history of the changes rmm-sync made to one asset.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::OpenApi;
use poem_openapi::param::{Path, Query};
use rmm_shared::history::{self, HistoryQuery, MAX_LIMIT};
use serde_json::json;
use uuid::Uuid;

use super::{AdminAuth, ApiError, R, body, ok, tenant_read};
use crate::AppState;

/// Entries a history read returns when `limit` is not given.
const DEFAULT_LIMIT: u32 = 50;

pub struct AssetsApi;

#[OpenApi]
impl AssetsApi {
    /// The changes rmm-sync made to an asset, newest first: `created`, `updated` (tracked fields
    /// from → to), `moved` (another client) and `tombstoned`, each with its sync run and job.
    /// Page with `before` = the last entry's `seq` (`next_before`). An asset with no recorded
    /// change answers an empty list.
    #[oai(path = "/tenants/:tenant/assets/:asset_id/history", method = "get")]
    async fn asset_history(
        &self,
        auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        tenant: Path<Uuid>,
        asset_id: Path<Uuid>,
        /// Entries to return, 1-500 (default 50).
        limit: Query<Option<u32>>,
        /// Only entries older than this `seq`.
        before: Query<Option<i64>>,
    ) -> R {
        tenant_read(&auth.0, tenant.0)?;
        let limit = limit.0.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::BadRequest(body(format!("limit must be between 1 and {MAX_LIMIT}"))));
        }
        let q = HistoryQuery { tenant: Some(tenant.0), asset_id: Some(asset_id.0), before: before.0, limit };
        let entries = history::read(&state.rt.db, q).await?;
        let next_before = (entries.len() == limit as usize).then(|| entries.last().map(|e| e.seq)).flatten();
        ok(json!({ "asset_id": asset_id.0, "history": entries, "next_before": next_before }))
    }
}
