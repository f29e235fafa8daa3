//! An integration's token lifecycle, as AlgaPSA keeps it: `settings.tokenLifecycle.status`.
//!
//! `reconnect_required` means the provider refused the integration's credentials for good (NinjaOne
//! sets it when a refresh token is refused; AlgaPSA or an operator may set it for any provider).
//! Such an integration is not called by scheduled or admin jobs of any provider: the job gate
//! (`rmm_jobs::dispatch::integration_gate`) skips them with the reason [`RECONNECT_REQUIRED`], and
//! webhook jobs record their alerts but leave the RMM alone. A new authorization (NinjaOne) or a
//! successful connection test (every provider) clears it.

use serde_json::Value;
use uuid::Uuid;

use crate::db::sql::ColType;
use crate::db::{Db, DbError, Dialect};

/// `settings.tokenLifecycle.status` of an integration that must be reconnected; also the skip
/// reason of its jobs and schedules.
pub const RECONNECT_REQUIRED: &str = "reconnect_required";

/// `settings.tokenLifecycle.status`, if set.
pub fn token_status(settings: &Value) -> Option<&str> {
    settings.pointer("/tokenLifecycle/status").and_then(Value::as_str)
}

/// Whether `settings` say the integration must be reconnected before it is called again.
pub fn needs_reconnect(settings: &Value) -> bool {
    token_status(settings) == Some(RECONNECT_REQUIRED)
}

/// [`needs_reconnect`] of a settings column read as text (`None` or unparsable: no).
pub fn needs_reconnect_text(settings: Option<&str>) -> bool {
    settings.and_then(|s| serde_json::from_str::<Value>(s).ok()).is_some_and(|s| needs_reconnect(&s))
}

/// An SQL expression for `settings.tokenLifecycle.status` of the `settings` column `col`.
pub fn token_status_sql(d: Dialect, col: &str) -> String {
    match d {
        Dialect::Postgres => format!("({col}->'tokenLifecycle'->>'status')"),
        Dialect::Sqlite => format!("json_extract({col}, '$.tokenLifecycle.status')"),
    }
}

/// After a successful connection test: an integration marked `reconnect_required` is `active`
/// again (the other lifecycle keys are kept). Returns whether it was marked.
pub(crate) async fn clear_reconnect_required(db: &Db, tenant: Uuid, integration: Uuid) -> Result<bool, DbError> {
    let d = db.dialect();
    let set = match d {
        Dialect::Postgres => "jsonb_set(settings, '{tokenLifecycle,status}', '\"active\"')",
        Dialect::Sqlite => "json_set(settings, '$.tokenLifecycle.status', 'active')",
    };
    let sql = format!(
        "UPDATE rmm_integrations SET settings = {set} WHERE tenant = {} AND integration_id = {} AND {} = '{RECONNECT_REQUIRED}'",
        d.param(1, ColType::Uuid),
        d.param(2, ColType::Uuid),
        token_status_sql(d, "settings"),
    );
    Ok(db.execute(&sql, &[&tenant.to_string(), &integration.to_string()]).await? > 0)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_the_reconnect_required_status_needs_a_reconnect() {
        assert!(needs_reconnect(&json!({"tokenLifecycle": {"status": "reconnect_required"}})));
        assert!(!needs_reconnect(&json!({"tokenLifecycle": {"status": "active"}})));
        assert!(!needs_reconnect(&json!({"tokenLifecycle": {"reconnectRequired": true}})));
        assert!(!needs_reconnect(&json!({})));
        assert!(needs_reconnect_text(Some(r#"{"tokenLifecycle":{"status":"reconnect_required"}}"#)));
        assert!(!needs_reconnect_text(Some("not json")));
        assert!(!needs_reconnect_text(None));
    }
}
