//! The Tanium Asset API listing, for the fallback of an empty group.
//!
//! Tanium documents `GET {asset}/v1/assets` as a cursor-paginated listing: `limit` rows per call
//! and `minimumAssetId` to continue, with `meta.nextAssetId` and `meta.endOfReader` in the answer
//! envelope (`{"data": [...], "meta": {...}}`). AlgaPSA calls an unpaginated `/v2/assets` with a
//! `computerGroupId` parameter that is not documented; we page the documented listing instead.

use serde::Deserialize;
use serde_json::Value;

use super::client::TaniumClient;
use super::error::TaniumError;
use crate::http::UpstreamRequest;

/// Rows asked per call.
pub const ASSET_PAGE: u32 = 500;
/// Where the Asset API lives on a Tanium host.
pub const ASSET_PATH: &str = "/plugin/products/asset";

/// One asset row, as far as the fallback uses it.
#[derive(Debug, Clone, PartialEq)]
pub struct AssetRow {
    pub id: String,
    pub name: Option<String>,
    pub last_seen: Option<String>,
    pub online: Option<bool>,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    data: Vec<Value>,
    #[serde(default)]
    meta: Meta,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Meta {
    next_asset_id: Option<Value>,
    end_of_reader: Option<bool>,
}

fn text(v: &Value, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| match v.get(*k)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// One page of the listing.
#[derive(Debug, Clone, PartialEq)]
pub struct AssetPage {
    /// The rows with an id.
    pub rows: Vec<AssetRow>,
    /// `meta.nextAssetId`, as text.
    pub next: Option<String>,
    /// Whether to ask again: the page had rows and `meta.endOfReader` is not `true`.
    pub more: bool,
}

/// Reads one answer of the listing (`{"data": [...], "meta": {...}}`).
pub fn parse_page(body: &[u8]) -> Result<AssetPage, TaniumError> {
    let env: Envelope = serde_json::from_slice(body)
        .map_err(|e| TaniumError::AssetApi(format!("the asset listing is not the documented JSON: {e}")))?;
    let next = env.meta.next_asset_id.and_then(|v| match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s),
        _ => None,
    });
    let more = !env.data.is_empty() && env.meta.end_of_reader != Some(true);
    Ok(AssetPage { rows: env.data.iter().filter_map(parse_row).collect(), next, more })
}

/// Reads one row: `id` (or `assetId`), name, last seen, online.
pub fn parse_row(v: &Value) -> Option<AssetRow> {
    Some(AssetRow {
        id: text(v, &["id", "assetId", "asset_id"])?,
        name: text(v, &["name", "hostname", "computerName", "computer_name"]),
        last_seen: text(v, &["lastSeen", "last_seen", "lastSeenAt", "updatedAt", "updated_at"]),
        online: v.get("online").and_then(Value::as_bool),
    })
}

/// Every asset of the listing, page by page (page guard: the client's).
pub async fn list_assets(client: &TaniumClient) -> Result<Vec<AssetRow>, TaniumError> {
    let Some(base) = client.asset_api.clone() else { return Ok(Vec::new()) };
    let base = if base.path().trim_end_matches('/').is_empty() {
        format!("{}{ASSET_PATH}", base.as_str().trim_end_matches('/'))
    } else {
        base.as_str().trim_end_matches('/').to_owned()
    };
    let mut out = Vec::new();
    let mut minimum: Option<String> = None;
    for _ in 0..client.max_pages {
        let mut url = url::Url::parse(&format!("{base}/v1/assets")).map_err(|_| TaniumError::AssetUrlInvalid)?;
        url.query_pairs_mut().append_pair("limit", &ASSET_PAGE.to_string());
        if let Some(m) = &minimum {
            url.query_pairs_mut().append_pair("minimumAssetId", m);
        }
        let req = UpstreamRequest::get(url)
            .secret_header("session", &client.token)
            .map_err(|e| TaniumError::AssetApi(e.to_string()))?;
        let resp = client.http.send(req).await.map_err(|e| TaniumError::AssetApi(e.to_string()))?;
        let page = parse_page(&resp.body)?;
        out.extend(page.rows);
        match page.next {
            Some(next) if page.more && minimum.as_deref() != Some(next.as_str()) => minimum = Some(next),
            _ => return Ok(out),
        }
    }
    Err(TaniumError::AssetApi(format!("the asset listing kept returning pages past the limit ({})", client.max_pages)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows() {
        let r =
            parse_row(&json!({"assetId": 42, "hostname": "pc", "online": false, "lastSeen": "2026-01-01T00:00:00Z"}))
                .unwrap();
        assert_eq!(r.id, "42");
        assert_eq!(r.name.as_deref(), Some("pc"));
        assert_eq!(r.online, Some(false));
        assert!(parse_row(&json!({"name": "no id"})).is_none());
    }
}
