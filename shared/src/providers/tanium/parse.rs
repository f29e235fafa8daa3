//! What the service reads from the Gateway's answers, as pure functions of an answer's bytes (and
//! its media type): the client posts and pages with them, and the property tests and fuzz targets
//! call them directly with hostile input. None of them panics or allocates beyond the answer's
//! own size (which [`crate::http::HttpConfig::max_body_bytes`] bounds).

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::client::{ComputerGroup, SensorInfo};
use super::error::TaniumError;
use super::ops::*;
use super::record::{self, Criticality, EndpointRecord, InstalledApplication};

/// A GraphQL answer, parsed straight into the operation's types.
#[derive(Deserialize)]
#[serde(bound(deserialize = "D: Deserialize<'de>"))]
struct GraphQlAnswer<D> {
    #[serde(default, deserialize_with = "present")]
    data: Option<Option<D>>,
    #[serde(default)]
    errors: Option<Vec<Value>>,
}

fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// The `data` of a 2xx answer to `operation` (what is not data, in this order: GraphQL errors
/// with their own text, no `data` key, `data: null`, a body that is not GraphQL).
pub fn answer<D: DeserializeOwned>(
    operation: &'static str,
    body: &[u8],
    content_type: Option<String>,
) -> Result<D, TaniumError> {
    match serde_json::from_slice::<GraphQlAnswer<D>>(body) {
        Ok(answer) => {
            if let Some(errors) = answer.errors.filter(|e| !e.is_empty()) {
                return Err(TaniumError::graphql(operation, &errors));
            }
            match answer.data {
                None => Err(TaniumError::InvalidPayload { operation, reason: "no data key".into() }),
                Some(None) => Err(TaniumError::EmptyPayload),
                Some(Some(d)) => Ok(d),
            }
        }
        Err(e) => match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(obj)) => {
                if let Some(errors) = obj.get("errors").and_then(Value::as_array).filter(|e| !e.is_empty()) {
                    return Err(TaniumError::graphql(operation, errors));
                }
                Err(TaniumError::InvalidPayload { operation, reason: e.to_string() })
            }
            _ => Err(TaniumError::NotGraphQl { content_type: content_type.unwrap_or_else(|| "unknown".into()) }),
        },
    }
}

/// One page of a Relay connection.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_next_page: bool,
    pub end_cursor: Option<String>,
}

/// The connection probe: how many computer groups came back (0 or 1). An answer without
/// `computerGroups` fails the probe.
pub fn probe(body: &[u8], content_type: Option<String>) -> Result<usize, TaniumError> {
    match answer::<tanium_connection_probe::ResponseData>("TaniumConnectionProbe", body, content_type) {
        Ok(data) => Ok(data.computer_groups.edges.len()),
        Err(TaniumError::InvalidPayload { .. } | TaniumError::EmptyPayload) => Err(TaniumError::ProbeFailed),
        Err(e) => Err(e),
    }
}

/// A page of computer groups (nodes without an id skipped; a blank name becomes the id).
pub fn computer_groups(body: &[u8], content_type: Option<String>) -> Result<Page<ComputerGroup>, TaniumError> {
    let data: tanium_computer_groups::ResponseData = answer("TaniumComputerGroups", body, content_type)?;
    let conn = data.computer_groups;
    let items = conn
        .edges
        .into_iter()
        .filter_map(|e| e.node)
        .filter(|n| !n.id.is_empty())
        .map(|n| {
            let name = n.name.filter(|x| !x.trim().is_empty()).unwrap_or_else(|| n.id.clone());
            ComputerGroup { id: n.id, name }
        })
        .collect();
    Ok(Page { items, has_next_page: conn.page_info.has_next_page, end_cursor: conn.page_info.end_cursor })
}

/// A page of endpoint ids (empty ids skipped).
pub fn endpoint_ids(body: &[u8], content_type: Option<String>) -> Result<Page<String>, TaniumError> {
    let data: tanium_endpoint_ids::ResponseData = answer("TaniumEndpointIds", body, content_type)?;
    let conn = data.endpoints;
    let items = conn.edges.into_iter().filter_map(|e| e.node).map(|n| n.id).filter(|id| !id.is_empty()).collect();
    Ok(Page { items, has_next_page: conn.page_info.has_next_page, end_cursor: conn.page_info.end_cursor })
}

/// A page of inventory: every endpoint with an id, as an [`EndpointRecord`] of `group`.
pub fn endpoints(
    body: &[u8],
    content_type: Option<String>,
    group: Option<&str>,
) -> Result<Page<EndpointRecord>, TaniumError> {
    let data: tanium_endpoints::ResponseData = answer("TaniumEndpoints", body, content_type)?;
    let conn = data.endpoints;
    let items = conn
        .edges
        .into_iter()
        .filter_map(|e| e.node)
        .filter(|n| !n.id.is_empty())
        .map(|n| endpoint_record(n, group))
        .collect();
    Ok(Page { items, has_next_page: conn.page_info.has_next_page, end_cursor: conn.page_info.end_cursor })
}

/// A page of "Last Reboot" readings: endpoint id → the first value, trimmed (empty skipped).
pub fn last_reboot(body: &[u8], content_type: Option<String>) -> Result<Page<(String, String)>, TaniumError> {
    let data: tanium_endpoint_last_reboot::ResponseData = answer("TaniumEndpointLastReboot", body, content_type)?;
    let conn = data.endpoints;
    let items = conn
        .edges
        .into_iter()
        .filter_map(|e| e.node)
        .filter_map(|node| {
            let value = node
                .last_reboot
                .and_then(|r| r.values)
                .and_then(|v| v.into_iter().next().flatten())
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())?;
            Some((node.id, value))
        })
        .collect();
    Ok(Page { items, has_next_page: conn.page_info.has_next_page, end_cursor: conn.page_info.end_cursor })
}

/// A page of criticality readings: endpoint id → [`Criticality`].
pub fn criticality(body: &[u8], content_type: Option<String>) -> Result<Page<(String, Criticality)>, TaniumError> {
    let data: tanium_endpoint_criticality::ResponseData = answer("TaniumEndpointCriticality", body, content_type)?;
    let conn = data.endpoints;
    let items = conn
        .edges
        .into_iter()
        .filter_map(|e| e.node)
        .map(|node| {
            let columns: Vec<(String, Vec<String>)> = node
                .criticality
                .and_then(|c| c.columns)
                .unwrap_or_default()
                .into_iter()
                .flatten()
                .filter_map(|c| Some((c.name?, c.values.unwrap_or_default().into_iter().flatten().collect())))
                .collect();
            (node.id, record::parse_criticality(columns))
        })
        .collect();
    Ok(Page { items, has_next_page: conn.page_info.has_next_page, end_cursor: conn.page_info.end_cursor })
}

/// The criticality sensor's registration (sensors without a name skipped).
pub fn sensors(body: &[u8], content_type: Option<String>) -> Result<Vec<SensorInfo>, TaniumError> {
    let data: tanium_criticality_sensor_metadata::ResponseData =
        answer("TaniumCriticalitySensorMetadata", body, content_type)?;
    Ok(data
        .sensors
        .edges
        .into_iter()
        .filter_map(|e| e.node)
        .filter_map(|n| {
            Some(SensorInfo {
                name: n.name.filter(|s| !s.trim().is_empty())?,
                value_type: n.value_type,
                harvested: n.harvested,
                columns: n.columns.unwrap_or_default().into_iter().flatten().filter_map(|c| c.name).collect(),
            })
        })
        .collect())
}

fn opt_json<T: serde::Serialize>(v: &Option<T>) -> Value {
    v.as_ref().map(|x| json!(x)).unwrap_or(Value::Null)
}

/// A Gateway node → [`EndpointRecord`].
fn endpoint_record(n: tanium_endpoints::TaniumEndpointsEndpointsEdgesNode, group: Option<&str>) -> EndpointRecord {
    let ip_addresses = record::clean_strings(n.ip_addresses.clone());
    let mac_addresses = record::clean_strings(n.mac_addresses.clone());
    let (dns, adapters, wireless) = match &n.networking {
        Some(net) => {
            let adapters: Vec<Value> = net
                .adapters
                .iter()
                .flatten()
                .flatten()
                .map(|a| {
                    json!({
                        "name": a.name, "manufacturer": a.manufacturer, "type": a.type_,
                        "macAddress": a.mac_address, "speed": a.speed, "connectionId": a.connection_id,
                    })
                })
                .collect();
            let wireless: Vec<Value> = net
                .wireless_adapters
                .iter()
                .flatten()
                .flatten()
                .map(|w| json!({ "ssid": w.ssid, "state": w.state }))
                .collect();
            (record::clean_strings(net.dns_servers.clone()), adapters, wireless)
        }
        None => (Vec::new(), Vec::new(), Vec::new()),
    };
    let mut metadata = Map::new();
    metadata.insert("manufacturer".into(), opt_json(&n.manufacturer));
    metadata.insert("model".into(), opt_json(&n.model));
    metadata.insert("chassisType".into(), opt_json(&n.chassis_type));
    metadata.insert("domainName".into(), opt_json(&n.domain_name));
    metadata.insert("reportingConsoleURL".into(), opt_json(&n.reporting_console_url));
    metadata.insert("isVirtual".into(), opt_json(&n.is_virtual));
    metadata.insert("isEncrypted".into(), opt_json(&n.is_encrypted));
    metadata.insert("ipAddresses".into(), json!(ip_addresses));
    metadata.insert("macAddresses".into(), json!(mac_addresses));
    metadata.insert("dnsServers".into(), json!(dns));
    metadata.insert("networkAdapters".into(), Value::Array(adapters));
    metadata.insert("wirelessAdapters".into(), Value::Array(wireless));
    let (os_name, os_version) = match &n.os {
        Some(os) => (os.name.clone(), os.generation.clone().or_else(|| os.platform.clone())),
        None => (None, None),
    };
    EndpointRecord {
        name: n.name.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| n.id.clone()),
        computer_group_id: group.map(str::to_owned),
        serial_number: n.serial_number.clone(),
        last_seen: n.eid_last_seen.clone(),
        online: None,
        os_name,
        os_version,
        current_user: record::current_user(
            n.primary_user.as_ref().and_then(|u| u.name.as_deref()),
            n.last_logged_in_user.as_deref(),
        ),
        ip_address: n.ip_address.clone(),
        wan_ip_address: n.discover.as_ref().and_then(|d| d.nat_ip_address.clone()),
        manufacturer: n.manufacturer.clone(),
        model: n.model.clone(),
        cpu_model: n.processor.as_ref().and_then(|p| p.cpu.clone()),
        cpu_logical_processors: n.processor.as_ref().and_then(|p| p.logical_processors),
        memory_total_gb: n.memory.as_ref().and_then(|m| m.total.as_deref()).and_then(record::parse_size_gb),
        disk_usage: n
            .disks
            .iter()
            .flatten()
            .flatten()
            .filter_map(|d| {
                record::parse_disk(
                    d.name.as_deref(),
                    d.free.as_deref(),
                    d.total.as_deref(),
                    d.used_percentage.as_deref(),
                )
            })
            .collect(),
        installed_applications: n
            .installed_applications
            .iter()
            .flatten()
            .flatten()
            .filter_map(|a| {
                let name = a.name.as_deref().map(str::trim).filter(|s| !s.is_empty())?.to_owned();
                Some(InstalledApplication { name, version: a.version.clone(), uninstallable: a.uninstallable })
            })
            .collect(),
        last_reboot_at: None,
        metadata,
        id: n.id,
    }
}
