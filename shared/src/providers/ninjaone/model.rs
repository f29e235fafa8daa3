//! The shapes NinjaOne's API v2 sends, read leniently: every field optional, `null` read as
//! absent, timestamps as epoch seconds (NinjaOne's form, fractional) or ISO-8601 text, and the
//! field names of both the detailed device listing (`ipAddress`, `numCores`, top-level `memory`)
//! and the older forms AlgaPSA reads (`ipAddresses`, `cores`, `system.memory`).

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// `null` → the type's default.
fn null_default<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A NinjaOne timestamp: epoch seconds (a number, possibly fractional, or its text) or ISO-8601
/// text. Anything outside 2000–2100 or unreadable is absent (AlgaPSA's rule).
fn timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    Ok(Option::<Value>::deserialize(d)?.as_ref().and_then(parse_timestamp))
}

/// See [`timestamp`].
pub fn parse_timestamp(v: &Value) -> Option<DateTime<Utc>> {
    let t = match v {
        Value::Number(n) => from_epoch(n.as_f64()?),
        Value::String(s) => match s.trim().parse::<f64>() {
            Ok(n) => from_epoch(n),
            Err(_) => DateTime::parse_from_rfc3339(s.trim()).ok().map(|t| t.with_timezone(&Utc)),
        },
        _ => None,
    }?;
    let year = chrono::Datelike::year(&t);
    (2000..=2100).contains(&year).then_some(t)
}

fn from_epoch(secs: f64) -> Option<DateTime<Utc>> {
    if !secs.is_finite() {
        return None;
    }
    // Milliseconds sneak in on some routes: anything past year 5000 in seconds is read as ms.
    let secs = if secs > 1e11 { secs / 1000.0 } else { secs };
    Utc.timestamp_millis_opt((secs * 1000.0).round() as i64).single()
}

/// An organisation (`GET /v2/organizations`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Organization {
    #[serde(deserialize_with = "null_default")]
    pub id: i64,
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    pub description: Option<String>,
    pub node_approval_mode: Option<String>,
}

/// A device of the detailed listing (`GET /v2/devices-detailed`) or the detail route
/// (`GET /v2/device/{id}`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Device {
    #[serde(deserialize_with = "null_default")]
    pub id: i64,
    pub organization_id: Option<i64>,
    pub location_id: Option<i64>,
    pub policy_id: Option<i64>,
    pub node_class: Option<String>,
    pub approval_status: Option<String>,
    pub offline: Option<bool>,
    pub display_name: Option<String>,
    pub system_name: Option<String>,
    pub dns_name: Option<String>,
    pub netbios_name: Option<String>,
    #[serde(deserialize_with = "timestamp")]
    pub created: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "timestamp")]
    pub last_contact: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "timestamp")]
    pub last_update: Option<DateTime<Utc>>,
    #[serde(rename = "publicIP")]
    pub public_ip: Option<String>,
    #[serde(deserialize_with = "null_default")]
    pub ip_addresses: Vec<String>,
    pub last_logged_in_user: Option<String>,
    pub references: Option<References>,
    pub os: Option<Os>,
    pub system: Option<System>,
    pub memory: Option<Memory>,
    #[serde(deserialize_with = "null_default")]
    pub processors: Vec<Processor>,
    #[serde(deserialize_with = "null_default")]
    pub volumes: Vec<Volume>,
    #[serde(deserialize_with = "null_default")]
    pub network_interfaces: Vec<NetworkInterface>,
    #[serde(deserialize_with = "null_default")]
    pub antivirus: Vec<Antivirus>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct References {
    pub organization: Option<Named>,
    pub location: Option<Named>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Named {
    pub id: Option<i64>,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Os {
    pub manufacturer: Option<String>,
    pub name: Option<String>,
    pub version: Option<String>,
    pub build_number: Option<String>,
    pub release_id: Option<String>,
    pub architecture: Option<String>,
    #[serde(deserialize_with = "timestamp")]
    pub last_boot_time: Option<DateTime<Utc>>,
    pub locale: Option<String>,
    pub needs_reboot: Option<bool>,
    pub timezone: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct System {
    pub name: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub serial_number: Option<String>,
    pub bios_serial_number: Option<String>,
    pub domain: Option<String>,
    pub chassis_type: Option<String>,
    pub virtual_machine: Option<bool>,
    pub total_physical_memory: Option<f64>,
    pub memory: Option<Memory>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Memory {
    pub capacity: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Processor {
    pub name: Option<String>,
    #[serde(alias = "cores")]
    pub num_cores: Option<f64>,
    #[serde(alias = "logicalCores")]
    pub num_logical_cores: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Volume {
    pub name: Option<String>,
    pub label: Option<String>,
    pub file_system: Option<String>,
    pub capacity: Option<f64>,
    pub free_space: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NetworkInterface {
    #[serde(alias = "name")]
    pub interface_name: Option<String>,
    #[serde(alias = "ipAddresses", deserialize_with = "null_default")]
    pub ip_address: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Antivirus {
    #[serde(alias = "productName")]
    pub name: Option<String>,
    #[serde(alias = "productState")]
    pub state: Option<String>,
    pub definition_status: Option<String>,
}

/// An active alert (triggered condition) of `GET /v2/alerts`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Alert {
    #[serde(deserialize_with = "null_default")]
    pub uid: String,
    pub device_id: Option<i64>,
    pub message: Option<String>,
    pub severity: Option<String>,
    pub priority: Option<String>,
    pub source_type: Option<String>,
    pub source_name: Option<String>,
    pub status_code: Option<String>,
    #[serde(deserialize_with = "timestamp")]
    pub create_time: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "timestamp")]
    pub update_time: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn devices_read_both_field_forms_and_nulls() {
        let d: Device = serde_json::from_value(json!({
            "id": 7, "organizationId": 2, "nodeClass": "WINDOWS_SERVER", "offline": null,
            "lastContact": 1_764_000_000.512, "created": "2025-01-02T03:04:05Z", "ipAddresses": null,
            "processors": [{"name": "Xeon", "cores": 8}],
            "networkInterfaces": [{"interfaceName": "eth0", "ipAddress": ["10.0.0.5"]}, {"name": "x", "ipAddresses": ["10.0.0.6"]}],
            "os": {"lastBootTime": "1764000000"}, "system": {"memory": {"capacity": 17179869184u64}}
        }))
        .unwrap();
        assert_eq!(d.id, 7);
        assert_eq!(d.last_contact.unwrap().timestamp_millis(), 1_764_000_000_512);
        assert_eq!(d.created.unwrap().to_rfc3339(), "2025-01-02T03:04:05+00:00");
        assert!(d.ip_addresses.is_empty());
        assert_eq!(d.processors[0].num_cores, Some(8.0));
        assert_eq!(d.network_interfaces[1].ip_address, vec!["10.0.0.6"]);
        assert_eq!(d.os.unwrap().last_boot_time.unwrap().timestamp(), 1_764_000_000);
        assert_eq!(parse_timestamp(&json!(0)), None, "1970 is not a real contact time");
        assert_eq!(parse_timestamp(&json!(1_764_000_000_000i64)).unwrap().timestamp(), 1_764_000_000);
    }
}
