//! What Tactical RMM 1.5.1 really sends (see `tests/fixtures/tactical-rmm-1.5.1/`).
//!
//! Agent-shaped records come from four endpoints with different field sets:
//! - `GET /beta/v1/agent/` list rows: model fields only (`id`, `site` pk, raw `wmi_detail`), no
//!   `status`, no computed `local_ips`/`serial_number`/`make_model`;
//! - `GET /beta/v1/agent/<pk>/`: model fields plus `status`, `local_ips` (comma-joined),
//!   `serial_number`, `make_model`, `cpu_model`; no `id`, no client;
//! - `GET /agents/<agent_id>/`: like the beta detail, plus `client` (a name) and `site_name`;
//! - `GET /agents/` table rows: `site_name`, `client_name`, `status`, `logged_username`, `italic`,
//!   the computed fields; no `id`, no thresholds, no `wmi_detail`.
//!
//! [`Agent`] reads all of them leniently (a field of an unexpected type is treated as absent) and
//! keeps the object in [`Agent::raw`], without its two inventory blobs ([`NOT_KEPT`]): `services`
//! is skipped unread and `wmi_detail` (20–100 KB per agent on real servers) is read into
//! [`WmiFacts`] as it is parsed, so its tree is never built. [`WmiFacts`] are the computed
//! properties Tactical derives from `wmi_detail` (`local_ips`, `serial_number`, `make_model`,
//! `cpu_model`), reproduced here so the list rows give the same values as the detail endpoints.

use std::fmt;
use std::net::Ipv4Addr;

use chrono::{DateTime, NaiveDateTime, Utc};
use secrecy::SecretString;
use serde::de::{self, DeserializeOwned, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A field that is absent, null, or of an unexpected type reads as `None`.
fn lenient<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let v = Value::deserialize(d)?;
    if v.is_null() {
        return Ok(None);
    }
    Ok(serde_json::from_value(v).ok())
}

/// A boolean that may be null or absent (false).
fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(matches!(Value::deserialize(d)?, Value::Bool(true)))
}

/// A DRF page (`StandardResultsSetPagination`).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Page<T> {
    pub count: u64,
    #[serde(default)]
    pub next: Option<String>,
    #[serde(default)]
    pub previous: Option<String>,
    pub results: Vec<T>,
}

/// Either an integer pk or a name: `site` is a pk on most endpoints and a name on
/// `GET /agents/?detail=false`; `client` is a name on `/agents/<agent_id>/` and alerts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum IdOrName {
    Id(i64),
    Name(String),
}

impl IdOrName {
    pub fn id(&self) -> Option<i64> {
        match self {
            IdOrName::Id(id) => Some(*id),
            IdOrName::Name(_) => None,
        }
    }

    pub fn name(&self) -> Option<&str> {
        match self {
            IdOrName::Name(n) => Some(n),
            IdOrName::Id(_) => None,
        }
    }
}

/// `failing_checks` on clients and sites.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct FailingChecks {
    #[serde(default)]
    pub error: bool,
    #[serde(default)]
    pub warning: bool,
}

/// `GET /beta/v1/client/` element (the list is a bare array).
#[derive(Debug, Clone, Deserialize)]
pub struct Client {
    pub id: i64,
    #[serde(default)]
    pub name: String,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub block_policy_inheritance: bool,
    #[serde(default, deserialize_with = "lenient")]
    pub failing_checks: Option<FailingChecks>,
    #[serde(default, deserialize_with = "lenient")]
    pub workstation_policy: Option<i64>,
    #[serde(default, deserialize_with = "lenient")]
    pub server_policy: Option<i64>,
    #[serde(default, deserialize_with = "lenient")]
    pub alert_template: Option<i64>,
    #[serde(default, deserialize_with = "lenient")]
    pub created_by: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub created_time: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub modified_by: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub modified_time: Option<String>,
    /// The whole object as received (AlgaPSA stores it as the org mapping's `metadata`).
    #[serde(skip)]
    pub raw: Value,
}

/// `GET /beta/v1/site/` element.
#[derive(Debug, Clone, Deserialize)]
pub struct Site {
    pub id: i64,
    /// The client pk.
    pub client: i64,
    #[serde(default)]
    pub name: String,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub block_policy_inheritance: bool,
    #[serde(default, deserialize_with = "lenient")]
    pub failing_checks: Option<FailingChecks>,
    #[serde(default, deserialize_with = "lenient")]
    pub workstation_policy: Option<i64>,
    #[serde(default, deserialize_with = "lenient")]
    pub server_policy: Option<i64>,
    #[serde(default, deserialize_with = "lenient")]
    pub alert_template: Option<i64>,
    #[serde(skip)]
    pub raw: Value,
}

/// An agent from any of the agent endpoints (see the module docs).
#[derive(Debug, Clone, Deserialize)]
pub struct Agent {
    /// Integer pk: beta list rows and `?detail=false` rows only.
    #[serde(default, deserialize_with = "lenient")]
    pub id: Option<i64>,
    /// The string agent id used by webhooks and the non-beta endpoints.
    #[serde(default, deserialize_with = "lenient")]
    pub agent_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub hostname: Option<String>,
    /// Agent version.
    #[serde(default, deserialize_with = "lenient")]
    pub version: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub operating_system: Option<String>,
    /// `windows` | `linux` | `darwin`.
    #[serde(default, deserialize_with = "lenient")]
    pub plat: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub goarch: Option<String>,
    /// ISO datetime.
    #[serde(default, deserialize_with = "lenient")]
    pub last_seen: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub public_ip: Option<String>,
    /// Whole GB.
    #[serde(default, deserialize_with = "lenient")]
    pub total_ram: Option<f64>,
    /// Epoch seconds (float).
    #[serde(default, deserialize_with = "lenient")]
    pub boot_time: Option<f64>,
    /// The literal string `"None"` when nobody is logged in.
    #[serde(default, deserialize_with = "lenient")]
    pub logged_in_username: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub last_logged_in_user: Option<String>,
    /// Table rows: the user to display (`"-"` for none; the last user when `italic`).
    #[serde(default, deserialize_with = "lenient")]
    pub logged_username: Option<String>,
    /// Table rows: `logged_username` is the last logged-in user, not a current one.
    #[serde(default, deserialize_with = "lenient")]
    pub italic: Option<bool>,
    /// `server` | `workstation`.
    #[serde(default, deserialize_with = "lenient")]
    pub monitoring_type: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub description: Option<String>,
    /// Minutes (default 4).
    #[serde(default, deserialize_with = "lenient")]
    pub offline_time: Option<i64>,
    /// Minutes (default 30).
    #[serde(default, deserialize_with = "lenient")]
    pub overdue_time: Option<i64>,
    #[serde(default, deserialize_with = "lenient")]
    pub needs_reboot: Option<bool>,
    #[serde(default, deserialize_with = "lenient")]
    pub maintenance_mode: Option<bool>,
    #[serde(default, deserialize_with = "lenient")]
    pub time_zone: Option<String>,
    /// Site pk (a name on `?detail=false` rows).
    #[serde(default, deserialize_with = "lenient")]
    pub site: Option<IdOrName>,
    #[serde(default, deserialize_with = "lenient")]
    pub site_name: Option<String>,
    /// A client name on `/agents/<agent_id>/` and `?detail=false` rows.
    #[serde(default, deserialize_with = "lenient")]
    pub client: Option<IdOrName>,
    #[serde(default, deserialize_with = "lenient")]
    pub client_name: Option<String>,
    /// Tactical's own `online|offline|overdue` (detail and table only).
    #[serde(default, deserialize_with = "lenient")]
    pub status: Option<String>,
    /// Comma-joined (detail and table only).
    #[serde(default, deserialize_with = "lenient")]
    pub local_ips: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub make_model: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub serial_number: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub cpu_model: Option<Vec<String>>,
    /// What the mapping reads from `wmi_detail`, when the record has a `wmi_detail` object.
    #[serde(skip)]
    pub wmi: Option<WmiFacts>,
    /// The object as received, without the keys in [`NOT_KEPT`].
    #[serde(skip)]
    pub raw: Value,
}

/// Keys of an agent record that [`Agent::raw`] (and so the mapping's `metadata.raw`) leaves out:
/// the inventory blobs, tens of kilobytes each on real agents. `wmi_detail` is read into
/// [`Agent::wmi`]; `services` is not read.
pub const NOT_KEPT: [&str; 2] = ["wmi_detail", "services"];

/// The top-level `wmi_detail` keys [`WmiFacts`] are derived from: Windows WMI sections, then the
/// flat keys of posix agents. Every other key (`os`, `mem`, `usb`, `disk`, `graphics`, …) is skipped
/// unread.
const WMI_KEYS: [&str; 10] = [
    "cpu",
    "bios",
    "comp_sys",
    "comp_sys_prod",
    "base_board",
    "network_config",
    "local_ips",
    "serialnumber",
    "make_model",
    "cpus",
];

/// The WMI object properties [`WmiFacts`] are derived from; the other properties of the objects of
/// the [`WMI_KEYS`] sections are skipped unread.
const WMI_PROPERTIES: [&str; 11] = [
    "Name",
    "NumberOfCores",
    "NumberOfLogicalProcessors",
    "SerialNumber",
    "Vendor",
    "Version",
    "Model",
    "SystemFamily",
    "Manufacturer",
    "Product",
    "IPAddress",
];

/// Tactical's properties computed from `wmi_detail`, derived once when the agent is read (the
/// tree itself is not kept).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WmiFacts {
    /// Posix: `local_ips` as reported (with prefix lengths); Windows: the IPv4 addresses of
    /// `network_config`.
    pub local_ips: Vec<String>,
    /// Posix: `serialnumber`; Windows: the BIOS `SerialNumber`. Tactical's placeholders are `None`.
    pub serial_number: Option<String>,
    pub make_model: Option<String>,
    /// One entry per CPU (Windows adds `, <cores>C/<threads>T`).
    pub cpu_models: Vec<String>,
    /// Physical cores, `NumberOfCores` summed over the `cpu` section (Windows).
    pub cpu_cores: Option<u32>,
}

/// Records that keep the object they were read from.
pub trait RawRecord: Sized {
    /// Reads the typed fields from `value` and keeps the object as `raw`.
    fn from_value(value: Value) -> Result<Self, serde_json::Error>;
}

/// The typed fields of `value`, with `value` itself kept in the record's `raw`.
fn keeping_raw<T: DeserializeOwned>(
    value: Value,
    raw: impl FnOnce(&mut T) -> &mut Value,
) -> Result<T, serde_json::Error> {
    let mut rec = T::deserialize(&value)?;
    *raw(&mut rec) = value;
    Ok(rec)
}

impl RawRecord for Client {
    fn from_value(value: Value) -> Result<Self, serde_json::Error> {
        keeping_raw(value, |r: &mut Self| &mut r.raw)
    }
}

impl RawRecord for Site {
    fn from_value(value: Value) -> Result<Self, serde_json::Error> {
        keeping_raw(value, |r: &mut Self| &mut r.raw)
    }
}

impl RawRecord for Alert {
    fn from_value(value: Value) -> Result<Self, serde_json::Error> {
        keeping_raw(value, |r: &mut Self| &mut r.raw)
    }
}

/// Agents are read as [`AgentRecord`]s: `raw` without [`NOT_KEPT`], `wmi_detail` into [`WmiFacts`].
impl RawRecord for Agent {
    fn from_value(value: Value) -> Result<Self, serde_json::Error> {
        AgentRecord::deserialize(value).map(|r| r.0)
    }
}

/// An [`Agent`] read from any JSON source (a byte stream, a slice, a [`Value`]) without building
/// the trees of [`NOT_KEPT`]: `services` is skipped, `wmi_detail` is read keeping only
/// [`WMI_KEYS`] and, inside them, [`WMI_PROPERTIES`] (a few hundred bytes), from which the
/// agent's [`WmiFacts`] are derived once the whole object (and so its platform) is known. A
/// duplicated key counts once, the last one wins, as in a [`Value`].
#[derive(Debug, Clone)]
pub struct AgentRecord(pub Agent);

impl<'de> Deserialize<'de> for AgentRecord {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(AgentVisitor).map(AgentRecord)
    }
}

struct AgentVisitor;

impl<'de> Visitor<'de> for AgentVisitor {
    type Value = Agent;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an agent object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Agent, A::Error> {
        let mut raw = Map::new();
        let mut wmi = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "wmi_detail" => {
                    wmi = Some(map.next_value_seed(Pruned { keep: &WMI_KEYS, inner: &WMI_PROPERTIES })?);
                }
                "services" => {
                    map.next_value::<IgnoredAny>()?;
                }
                _ => {
                    let value = map.next_value::<Value>()?;
                    raw.insert(key, value);
                }
            }
        }
        let raw = Value::Object(raw);
        let mut agent = Agent::deserialize(&raw).map_err(de::Error::custom)?;
        agent.wmi = wmi.filter(Value::is_object).map(|w| WmiFacts::from_wmi_detail(&w, agent.is_posix()));
        agent.raw = raw;
        Ok(agent)
    }
}

/// Reads any JSON value, keeping of each object only the keys in `keep` (the keys of nested
/// objects: `inner`) and skipping the rest unread.
#[derive(Clone, Copy)]
struct Pruned {
    keep: &'static [&'static str],
    inner: &'static [&'static str],
}

impl<'de> DeserializeSeed<'de> for Pruned {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Pruned {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let nested = Pruned { keep: self.inner, ..self };
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(nested)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let nested = Pruned { keep: self.inner, ..self };
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if self.keep.contains(&key.as_str()) {
                let v = map.next_value_seed(nested)?;
                out.insert(key, v);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Value::Object(out))
    }
}

/// Tactical's texts for a computed value it could not compute.
fn is_tactical_placeholder(s: &str) -> bool {
    let l = s.trim().to_ascii_lowercase();
    l.is_empty() || l.starts_with("error getting") || l == "unknown make/model" || l == "none"
}

fn non_placeholder(s: Option<&str>) -> Option<String> {
    s.filter(|s| !is_tactical_placeholder(s)).map(|s| s.trim().to_owned())
}

/// Parses Tactical datetimes: ISO 8601 with an offset, Python's `str(datetime)`
/// (`2026-02-13 18:25:43.511000+00:00`), or a naive value taken as UTC.
pub fn parse_tactical_datetime(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.with_timezone(&Utc));
    }
    let t = s.replacen(' ', "T", 1);
    if let Ok(d) = DateTime::parse_from_rfc3339(&t) {
        return Some(d.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(&t, "%Y-%m-%dT%H:%M:%S%.f").ok().map(|n| n.and_utc())
}

/// An epoch-seconds float as a UTC datetime.
pub fn epoch_to_datetime(secs: f64) -> Option<DateTime<Utc>> {
    if !secs.is_finite() || secs <= 0.0 {
        return None;
    }
    let whole = secs.floor();
    let nanos = ((secs - whole) * 1e9).round().clamp(0.0, 999_999_999.0) as u32;
    DateTime::from_timestamp(whole as i64, nanos)
}

/// `wmi_detail[key][0]`: Windows WMI sections are lists of lists of objects.
fn wmi_section<'a>(wmi: &'a Value, key: &str) -> Option<&'a Vec<Value>> {
    wmi.get(key)?.as_array()?.first()?.as_array()
}

/// The first string value of `field` among the objects of a WMI section.
fn wmi_field<'a>(section: &'a [Value], field: &str) -> Option<&'a str> {
    section.iter().find_map(|o| o.get(field)).and_then(Value::as_str)
}

/// The strings of an array (other elements are skipped); empty when `v` is not an array.
fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
}

impl WmiFacts {
    /// Tactical's computed properties from a `wmi_detail` object: the flat shape of `linux` and
    /// `darwin` agents when `posix`, else WMI sections.
    pub fn from_wmi_detail(wmi: &Value, posix: bool) -> WmiFacts {
        let cpu_cores = wmi.get("cpu").and_then(Value::as_array).and_then(|cpus| {
            let total: u64 = cpus
                .iter()
                .filter_map(|c| c.as_array())
                .filter_map(|objs| objs.iter().find_map(|o| o.get("NumberOfCores")).and_then(Value::as_u64))
                .sum();
            u32::try_from(total).ok().filter(|n| *n > 0)
        });
        if posix {
            return WmiFacts {
                local_ips: strings(wmi.get("local_ips")),
                serial_number: non_placeholder(wmi.get("serialnumber").and_then(Value::as_str)),
                make_model: non_placeholder(wmi.get("make_model").and_then(Value::as_str)),
                cpu_models: strings(wmi.get("cpus")),
                cpu_cores,
            };
        }
        WmiFacts {
            local_ips: windows_ipv4(wmi),
            serial_number: non_placeholder(wmi_section(wmi, "bios").and_then(|b| wmi_field(b, "SerialNumber"))),
            make_model: windows_make_model(wmi),
            cpu_models: windows_cpus(wmi),
            cpu_cores,
        }
    }
}

/// The IPv4 addresses of `network_config`.
fn windows_ipv4(wmi: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for adapter in wmi.get("network_config").and_then(Value::as_array).into_iter().flatten() {
        let Some(objs) = adapter.as_array() else { continue };
        let Some(addrs) = objs.iter().find_map(|o| o.get("IPAddress")).and_then(Value::as_array) else {
            continue;
        };
        for ip in addrs.iter().filter_map(Value::as_str) {
            if ip.parse::<Ipv4Addr>().is_ok() {
                out.push(ip.to_owned());
            }
        }
    }
    out
}

/// Tactical's `Agent.make_model` on Windows.
fn windows_make_model(wmi: &Value) -> Option<String> {
    let windows = || -> Option<String> {
        let comp_sys = wmi_section(wmi, "comp_sys")?;
        let comp_sys_prod = wmi_section(wmi, "comp_sys_prod")?;
        let mut make = wmi_field(comp_sys_prod, "Vendor")?.to_owned();
        let mut model = wmi_field(comp_sys, "Model")?.to_owned();
        if model.to_lowercase().contains("to be filled") {
            let board = wmi_section(wmi, "base_board")?;
            make = wmi_field(board, "Manufacturer")?.to_owned();
            model = wmi_field(board, "Product")?.to_owned();
        }
        if make.eq_ignore_ascii_case("lenovo")
            && let Some(family) = wmi_field(comp_sys, "SystemFamily")
            && !family.to_lowercase().contains("to be filled")
        {
            model = family.to_owned();
        }
        Some(format!("{make} {model}"))
    };
    windows()
        .or_else(|| wmi_section(wmi, "comp_sys_prod").and_then(|s| wmi_field(s, "Version")).map(str::to_owned))
        .and_then(|s| non_placeholder(Some(&s)))
}

/// Windows: `"<Name>, <cores>C/<threads>T"` per CPU when both counts are known, else the name.
fn windows_cpus(wmi: &Value) -> Vec<String> {
    let describe = |objs: &Vec<Value>| -> Option<String> {
        let name = wmi_field(objs, "Name")?;
        let count = |k: &str| objs.iter().find_map(|o| o.get(k)).and_then(Value::as_u64).filter(|n| *n > 0);
        Some(match (count("NumberOfCores"), count("NumberOfLogicalProcessors")) {
            (Some(cores), Some(threads)) => format!("{name}, {cores}C/{threads}T"),
            _ => name.to_owned(),
        })
    };
    wmi.get("cpu")
        .and_then(Value::as_array)
        .map(|cpus| cpus.iter().filter_map(|c| c.as_array().and_then(describe)).collect())
        .unwrap_or_default()
}

impl Agent {
    /// `windows` agents report WMI data; `linux`/`darwin` report a flat `wmi_detail`.
    pub fn is_posix(&self) -> bool {
        matches!(self.plat.as_deref(), Some("linux") | Some("darwin"))
    }

    pub fn raw(&self) -> &Value {
        &self.raw
    }

    /// The parsed `last_seen`.
    pub fn last_seen_at(&self) -> Option<DateTime<Utc>> {
        self.last_seen.as_deref().and_then(parse_tactical_datetime)
    }

    /// The parsed `boot_time`.
    pub fn boot_time_at(&self) -> Option<DateTime<Utc>> {
        self.boot_time.and_then(epoch_to_datetime)
    }

    /// The site pk, when the record carries it.
    pub fn site_id(&self) -> Option<i64> {
        self.site.as_ref().and_then(IdOrName::id)
    }

    /// The site name, when the record carries it (`site_name`, or `site` on `?detail=false` rows).
    pub fn site_name(&self) -> Option<&str> {
        self.site_name.as_deref().or_else(|| self.site.as_ref().and_then(IdOrName::name))
    }

    /// The client name, when the record carries it.
    pub fn client_name(&self) -> Option<&str> {
        self.client_name.as_deref().or_else(|| self.client.as_ref().and_then(IdOrName::name))
    }

    /// Tactical's `Agent.local_ips`: the computed field when present, else from `wmi_detail`
    /// ([`WmiFacts::local_ips`]). Empty when unknown.
    pub fn local_ips(&self) -> Vec<String> {
        if let Some(s) = non_placeholder(self.local_ips.as_deref()) {
            return s.split(',').map(|p| p.trim().to_owned()).filter(|p| !p.is_empty()).collect();
        }
        self.wmi.as_ref().map(|w| w.local_ips.clone()).unwrap_or_default()
    }

    /// Tactical's `Agent.serial_number`: the computed field, else from `wmi_detail`.
    pub fn serial_number(&self) -> Option<String> {
        non_placeholder(self.serial_number.as_deref()).or_else(|| self.wmi.as_ref()?.serial_number.clone())
    }

    /// Tactical's `Agent.make_model`: the computed field, else from `wmi_detail`.
    pub fn make_model(&self) -> Option<String> {
        non_placeholder(self.make_model.as_deref()).or_else(|| self.wmi.as_ref()?.make_model.clone())
    }

    /// Tactical's `Agent.cpu_model`: one entry per CPU (Windows adds `, <cores>C/<threads>T`).
    pub fn cpu_models(&self) -> Vec<String> {
        if let Some(c) = &self.cpu_model {
            return c.iter().filter(|s| !is_tactical_placeholder(s)).cloned().collect();
        }
        self.wmi.as_ref().map(|w| w.cpu_models.clone()).unwrap_or_default()
    }

    /// Physical cores from WMI (`NumberOfCores` summed over CPUs); Windows only.
    pub fn cpu_cores(&self) -> Option<u32> {
        self.wmi.as_ref()?.cpu_cores
    }

    /// `disks` as reported: `[{device, fstype, total, used, free, percent}]`.
    pub fn disks(&self) -> Vec<Disk> {
        self.raw
            .get("disks")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|d| serde_json::from_value(d.clone()).ok()).collect())
            .unwrap_or_default()
    }
}

/// One entry of an agent's `disks`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Disk {
    #[serde(default)]
    pub device: Option<String>,
    #[serde(default)]
    pub fstype: Option<String>,
    /// Human-readable (`"196.7 GB"`, `"237.9G"`).
    #[serde(default)]
    pub total: Option<String>,
    #[serde(default)]
    pub used: Option<String>,
    #[serde(default)]
    pub free: Option<String>,
    #[serde(default)]
    pub percent: Option<f64>,
}

/// `POST /v2/checkcreds/`: `{"totp": true}` for TOTP users, else a usable 180-second token.
#[derive(Debug, Deserialize)]
pub struct CheckCredsResponse {
    /// `true` only for users with a TOTP key (older servers sent a string here).
    #[serde(default, deserialize_with = "lenient_bool")]
    pub totp: bool,
    #[serde(default, alias = "auth_token", alias = "key")]
    pub token: Option<SecretString>,
    #[serde(default)]
    pub expiry: Option<String>,
}

/// `POST /v2/login/` success.
#[derive(Debug, Deserialize)]
pub struct LoginResponse {
    #[serde(default, alias = "auth_token", alias = "key")]
    pub token: Option<SecretString>,
    #[serde(default)]
    pub expiry: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

/// An element of `PATCH /alerts/` (`AlertSerializer`).
#[derive(Debug, Clone, Deserialize)]
pub struct Alert {
    pub id: i64,
    /// Integer agent pk.
    #[serde(default, deserialize_with = "lenient")]
    pub agent: Option<i64>,
    /// String agent id.
    #[serde(default, deserialize_with = "lenient")]
    pub agent_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub hostname: Option<String>,
    /// Client name (not a pk).
    #[serde(default, deserialize_with = "lenient")]
    pub client: Option<String>,
    /// Site name (not a pk).
    #[serde(default, deserialize_with = "lenient")]
    pub site: Option<String>,
    /// `availability|check|task|custom`.
    #[serde(default, deserialize_with = "lenient")]
    pub alert_type: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub message: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub alert_time: Option<String>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub snoozed: bool,
    #[serde(default, deserialize_with = "lenient")]
    pub snooze_until: Option<String>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub resolved: bool,
    #[serde(default, deserialize_with = "lenient")]
    pub resolved_on: Option<String>,
    /// `info|warning|error`.
    #[serde(default, deserialize_with = "lenient")]
    pub severity: Option<String>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub hidden: bool,
    #[serde(default, deserialize_with = "lenient")]
    pub assigned_check: Option<i64>,
    #[serde(default, deserialize_with = "lenient")]
    pub assigned_task: Option<i64>,
    #[serde(skip)]
    pub raw: Value,
}

impl Alert {
    pub fn alert_time_at(&self) -> Option<DateTime<Utc>> {
        self.alert_time.as_deref().and_then(parse_tactical_datetime)
    }
}

/// The body that asks `PATCH /alerts/` for unresolved, unsnoozed alerts (a filtered array).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ActiveAlertsFilter {
    #[serde(rename = "resolvedFilter")]
    pub resolved_filter: bool,
    #[serde(rename = "snoozedFilter")]
    pub snoozed_filter: bool,
}

/// `PATCH /alerts/` with `{"top": N}`.
#[derive(Debug, Clone, Deserialize)]
pub struct TopAlerts {
    pub alerts_count: u64,
    pub alerts: Vec<Value>,
}

/// One row of `GET /software/`: every installed program of one agent.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct SoftwareRow {
    pub id: i64,
    /// The INTEGER agent pk (not the string `agent_id`).
    pub agent: i64,
    #[serde(default)]
    pub software: Vec<SoftwareItem>,
}

/// One installed program. Some rows carry only `name` and `version`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct SoftwareItem {
    #[serde(default, deserialize_with = "lenient")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub version: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub publisher: Option<String>,
    /// Human-readable (`"5.2 MB"`).
    #[serde(default, deserialize_with = "lenient")]
    pub size: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub source: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub location: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub uninstall: Option<String>,
    /// `"2019-06-09 00:00:00 +0000 UTC"`.
    #[serde(default, deserialize_with = "lenient")]
    pub install_date: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tactical_datetimes() {
        let a = parse_tactical_datetime("2026-11-22T07:27:20.689898Z").unwrap();
        assert_eq!(a.timestamp(), 1_795_332_440);
        let b = parse_tactical_datetime("2026-02-13 18:25:43.511000+00:00").unwrap();
        assert_eq!(b.to_rfc3339(), "2026-02-13T18:25:43.511+00:00");
        assert!(parse_tactical_datetime("not a date").is_none());
        assert!(parse_tactical_datetime("2026-02-13T18:25:43").is_some());
    }

    #[test]
    fn epoch_floats() {
        let d = epoch_to_datetime(1_793_320_045.689898).unwrap();
        assert_eq!(d.timestamp(), 1_793_320_045);
        assert!(epoch_to_datetime(0.0).is_none());
        assert!(epoch_to_datetime(f64::NAN).is_none());
    }

    #[test]
    fn lenient_fields_ignore_wrong_types() {
        let v = serde_json::json!({"agent_id": "x", "offline_time": "four", "site": "Warehouse", "client": 3});
        let a = Agent::from_value(v).unwrap();
        assert_eq!(a.offline_time, None);
        assert_eq!(a.site_name(), Some("Warehouse"));
        assert_eq!(a.site_id(), None);
        assert_eq!(a.client, Some(IdOrName::Id(3)));
        assert_eq!(a.raw["offline_time"], "four");
    }

    #[test]
    fn checkcreds_shapes() {
        let t: CheckCredsResponse = serde_json::from_str(r#"{"totp":true}"#).unwrap();
        assert!(t.totp && t.token.is_none());
        let t: CheckCredsResponse = serde_json::from_str(r#"{"expiry":"x","token":"abc","totp":false}"#).unwrap();
        assert!(!t.totp && t.token.is_some());
        let t: CheckCredsResponse = serde_json::from_str(r#"{"totp":"totp not set"}"#).unwrap();
        assert!(!t.totp);
    }
}
