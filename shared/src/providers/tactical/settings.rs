//! The Tactical-specific integration settings: how the alerts its webhooks deliver are handled.
//!
//! `alert_mode` (`record`, the default, or `forward`) and `alert_forward_url` (AlgaPSA's
//! `…/api/webhooks/tacticalrmm?tenant=<uuid>`). The admin API refuses to save settings this
//! module does not accept; the jobs read the mode with the same function.

use serde_json::Value;

/// How a Tactical integration handles the alerts its webhooks deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertMode {
    /// Write `rmm_alerts` (AlgaPSA's recording rules).
    Record,
    /// Post each delivery to AlgaPSA's webhook URL.
    Forward { url: String },
}

impl AlertMode {
    /// The mode of an integration's settings. `forward` without a usable URL is an error the
    /// admin API refuses to save; met by a job, it is reported rather than guessed.
    pub fn from_settings(settings: &Value) -> Result<AlertMode, String> {
        match settings.get("alert_mode").and_then(Value::as_str).unwrap_or("record") {
            "record" => Ok(AlertMode::Record),
            "forward" => match settings.get("alert_forward_url").and_then(Value::as_str).map(str::trim) {
                Some(u) if is_http_url(u) => Ok(AlertMode::Forward { url: u.to_owned() }),
                _ => Err("alert_mode is forward but alert_forward_url is not an http(s) URL".into()),
            },
            other => Err(format!("alert_mode must be record or forward, not {other:?}")),
        }
    }
}

/// Is `u` an absolute http(s) URL with a host?
pub fn is_http_url(u: &str) -> bool {
    url::Url::parse(u).is_ok_and(|p| matches!(p.scheme(), "http" | "https") && p.host().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn alert_mode_defaults_to_record_and_forward_needs_an_http_url() {
        assert_eq!(AlertMode::from_settings(&json!({})), Ok(AlertMode::Record));
        assert_eq!(
            AlertMode::from_settings(&json!({"alert_mode": "forward", "alert_forward_url": " https://a.test/x "})),
            Ok(AlertMode::Forward { url: "https://a.test/x".into() })
        );
        assert!(AlertMode::from_settings(&json!({"alert_mode": "forward", "alert_forward_url": "ftp://a"})).is_err());
        assert_eq!(
            AlertMode::from_settings(&json!({"alert_mode": "drop"})),
            Err("alert_mode must be record or forward, not \"drop\"".into())
        );
    }
}
