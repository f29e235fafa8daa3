//! The shapes Level's v2 API sends (as AlgaPSA's client reads them). Every field but the id is
//! optional and unknown fields are ignored, so a field Level adds or drops never fails a page.

use serde::{Deserialize, Deserializer, Serialize};

/// A list answer: `{"data": [...], "has_more": bool}`.
#[derive(Debug, Clone, Deserialize)]
pub struct ListPage<T> {
    #[serde(default = "Vec::new")]
    pub data: Vec<T>,
    #[serde(default)]
    pub has_more: bool,
}

/// Absent and `null` are both "none".
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A group (`GET /v2/groups`): groups nest through `parent_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub id: String,
    #[serde(default)]
    pub parent_id: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    #[serde(default)]
    pub device_count: Option<i64>,
    #[serde(default)]
    pub descendent_device_count: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OperatingSystem {
    #[serde(default)]
    pub full_operating_system: Option<String>,
    #[serde(default)]
    pub major_version: Option<String>,
    #[serde(default)]
    pub minor_version: Option<String>,
    #[serde(default)]
    pub architecture: Option<String>,
    #[serde(default)]
    pub end_of_life: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cpu {
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub clock_speed: Option<f64>,
    #[serde(default)]
    pub cores: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DiskPartition {
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub mount_point: Option<String>,
    #[serde(default)]
    pub encrypted: Option<bool>,
    #[serde(default)]
    pub primary: Option<bool>,
    /// Bytes.
    #[serde(default)]
    pub size: Option<f64>,
    /// Bytes.
    #[serde(default)]
    pub free_space: Option<f64>,
    #[serde(default)]
    pub file_system: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkInterface {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub interface: Option<String>,
    #[serde(default)]
    pub mac_address: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub ip_addresses: Vec<String>,
    #[serde(default)]
    pub gateway: Option<String>,
    #[serde(default)]
    pub label: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Security {
    #[serde(default)]
    pub score: Option<f64>,
    #[serde(default)]
    pub risk: Option<String>,
    #[serde(default)]
    pub patch_compliance: Option<bool>,
    #[serde(default)]
    pub patch_security_risk: Option<String>,
    #[serde(default)]
    pub os_end_of_life: Option<bool>,
    #[serde(default)]
    pub primary_partition_encrypted: Option<bool>,
    #[serde(default)]
    pub firewall_provider: Option<String>,
    #[serde(default)]
    pub firewall_enabled: Option<bool>,
    #[serde(default)]
    pub antivirus_provider: Option<String>,
    #[serde(default)]
    pub antivirus_status: Option<String>,
}

/// A device (`GET /v2/devices`, `GET /v2/devices/{id}`), with the `include_*` parts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Device {
    pub id: String,
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub nickname: Option<String>,
    /// `workstation`, `server`, `domain_controller`.
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub group_id: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub tags: Vec<String>,
    #[serde(default)]
    pub flag: Option<String>,
    #[serde(default)]
    pub maintenance_mode: Option<bool>,
    #[serde(default)]
    pub online: Option<bool>,
    #[serde(default)]
    pub manufacturer: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub architecture: Option<String>,
    #[serde(default)]
    pub serial_number: Option<String>,
    /// Bytes.
    #[serde(default)]
    pub total_memory: Option<f64>,
    #[serde(default)]
    pub cpu_cores: Option<f64>,
    #[serde(default)]
    pub last_logged_in_user: Option<String>,
    #[serde(default)]
    pub last_reboot_time: Option<String>,
    #[serde(default)]
    pub last_seen_at: Option<String>,
    #[serde(default)]
    pub city: Option<String>,
    #[serde(default)]
    pub country: Option<String>,
    #[serde(default)]
    pub security_score: Option<f64>,
    /// `Windows`, `Mac`, `Linux`.
    #[serde(default)]
    pub platform: Option<String>,
    #[serde(default)]
    pub operating_system: Option<OperatingSystem>,
    #[serde(default, deserialize_with = "nullable")]
    pub cpus: Vec<Cpu>,
    #[serde(default, deserialize_with = "nullable")]
    pub disk_partitions: Vec<DiskPartition>,
    #[serde(default, deserialize_with = "nullable")]
    pub network_interfaces: Vec<NetworkInterface>,
    #[serde(default)]
    pub security: Option<Security>,
}

/// An alert (`GET /v2/alerts`). Severities: `information`, `warning`, `critical`, `emergency`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub id: String,
    #[serde(default)]
    pub device_id: Option<String>,
    #[serde(default)]
    pub device_hostname: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub payload: Option<String>,
    #[serde(default)]
    pub severity: Option<String>,
    #[serde(default)]
    pub is_resolved: Option<bool>,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub resolved_at: Option<String>,
}

/// An OS or software update of one device (`GET /v2/updates`). `category` is free text.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Update {
    pub id: String,
    #[serde(default)]
    pub device_id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub is_available: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nulls_and_unknown_fields_are_tolerated() {
        let d: Device = serde_json::from_str(
            r#"{"id":"d1","hostname":null,"tags":null,"cpus":null,"disk_partitions":[{"size":1.5e11}],"new_field":{"x":1},
                "security":{"score":82,"antivirus_provider":"Defender"}}"#,
        )
        .unwrap();
        assert_eq!(d.id, "d1");
        assert!(d.tags.is_empty() && d.cpus.is_empty());
        assert_eq!(d.disk_partitions[0].size, Some(1.5e11));
        assert_eq!(d.security.unwrap().score, Some(82.0));
        let p: ListPage<Group> = serde_json::from_str(r#"{"data":[{"id":"g","name":null}]}"#).unwrap();
        assert!(!p.has_more);
        assert_eq!(p.data[0].name, "");
    }
}
