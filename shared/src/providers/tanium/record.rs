//! What the Gateway says about an endpoint, normalised, and the parsers
//! of Tanium's text values: sizes (`48 GB`), percentages (`39%`), reboot times (RFC 2822 or
//! RFC 3339) and criticality readings.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::ingest::DiskUsage;

/// One endpoint (AlgaPSA's `TaniumEndpointRecord`).
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct EndpointRecord {
    pub id: String,
    pub name: String,
    /// The group the endpoint was read from.
    pub computer_group_id: Option<String>,
    pub serial_number: Option<String>,
    /// `eidLastSeen` as sent.
    pub last_seen: Option<String>,
    /// Always `None` from the Gateway; Asset API rows may say.
    pub online: Option<bool>,
    pub os_name: Option<String>,
    pub os_version: Option<String>,
    pub current_user: Option<String>,
    pub ip_address: Option<String>,
    pub wan_ip_address: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub cpu_model: Option<String>,
    pub cpu_logical_processors: Option<i64>,
    pub memory_total_gb: Option<f64>,
    pub disk_usage: Vec<DiskUsage>,
    pub installed_applications: Vec<InstalledApplication>,
    /// The "Last Reboot" sensor value, raw.
    pub last_reboot_at: Option<String>,
    /// `{manufacturer, model, chassisType, …}` (+ `uptimeSeconds`), camelCase keys as AlgaPSA keeps them.
    pub metadata: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstalledApplication {
    pub name: String,
    pub version: Option<String>,
    pub uninstallable: Option<bool>,
}

/// `primaryUser.name` unless it is empty or an `Error: …` text, else `lastLoggedInUser`.
pub fn current_user(primary: Option<&str>, last_logged_in: Option<&str>) -> Option<String> {
    let usable = |s: Option<&str>| s.map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
    match usable(primary) {
        Some(p) if !p.to_ascii_lowercase().starts_with("error:") => Some(p),
        _ => usable(last_logged_in),
    }
}

/// `48 GB` → 48, `995G` → 995, `512 MB` → 0.5, `2 TB` → 2048. A number without a unit is read as
/// GB (AlgaPSA's rule). `GiB`-style units are read as their decimal-prefixed counterparts
/// (AlgaPSA does not parse them at all). `None` when the text is not a size.
pub fn parse_size_gb(raw: &str) -> Option<f64> {
    let s = raw.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, rest) = s.split_at(split);
    let n: f64 = num.parse().ok().filter(|n: &f64| n.is_finite())?;
    let unit = rest.trim().to_ascii_uppercase();
    let unit = unit.strip_suffix('B').unwrap_or(&unit);
    let unit = unit.strip_suffix('I').unwrap_or(unit);
    let (value, dp) = match unit {
        "T" => (n * 1024.0, 2),
        "G" | "" => (n, 2),
        "M" => (n / 1024.0, 2),
        "K" => (n / (1024.0 * 1024.0), 4),
        _ => return None,
    };
    let f = 10f64.powi(dp);
    Some((value * f).round() / f)
}

/// `39%` → 39; text without `%` is not a percentage.
pub fn parse_percent(raw: &str) -> Option<f64> {
    let s = raw.trim().strip_suffix('%')?.trim();
    s.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// A disk is kept only with a name and parseable total, free and used percentage.
pub fn parse_disk(
    name: Option<&str>,
    free: Option<&str>,
    total: Option<&str>,
    used: Option<&str>,
) -> Option<DiskUsage> {
    let name = name.map(str::trim).filter(|n| !n.is_empty())?;
    Some(DiskUsage {
        name: name.to_owned(),
        total_gb: Some(parse_size_gb(total?)?),
        free_gb: Some(parse_size_gb(free?)?),
        utilization_percent: Some(parse_percent(used?)?),
    })
}

/// A reboot (or any) time: RFC 2822 (`Sat, 11 Apr 2026 21:50:13 -0400`, what the sensor sends) or
/// RFC 3339.
pub fn parse_time(raw: &str) -> Option<DateTime<Utc>> {
    let s = raw.trim();
    DateTime::parse_from_rfc2822(s).or_else(|_| DateTime::parse_from_rfc3339(s)).ok().map(|t| t.with_timezone(&Utc))
}

/// Seconds since the reboot, or `None` when the time is unknown or in the future.
pub fn uptime_seconds(last_reboot: Option<&str>, now: DateTime<Utc>) -> Option<i64> {
    let t = parse_time(last_reboot?)?;
    let secs = (now - t).num_seconds();
    (secs >= 0).then_some(secs)
}

/// A trimmed list without empty entries.
pub fn clean_strings(values: Option<Vec<Option<String>>>) -> Vec<String> {
    values.unwrap_or_default().into_iter().flatten().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect()
}

/// The criticality sensor's name.
pub const CRITICALITY_SENSOR: &str = "Endpoint Criticality with Level";

/// One endpoint's criticality reading.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Criticality {
    pub label: Option<String>,
    pub multiplier: Option<f64>,
    pub is_available: bool,
    /// The columns as read: `[{name, values}]`.
    pub columns: Vec<(String, Vec<String>)>,
}

/// Reads a criticality reading. Column names are compared trimmed, lower-cased and with spaces
/// as underscores (AlgaPSA does not turn spaces into underscores, so a column literally named
/// "Criticality Level" would not match there).
pub fn parse_criticality(columns: Vec<(String, Vec<String>)>) -> Criticality {
    let mut by_name: std::collections::HashMap<String, &Vec<String>> = std::collections::HashMap::new();
    for (name, values) in &columns {
        by_name.insert(name.trim().to_ascii_lowercase().replace([' ', '-'], "_"), values);
    }
    let first = |keys: &[&str]| {
        keys.iter().find_map(|k| {
            by_name.get(*k).and_then(|v| v.first()).map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
        })
    };
    let label = first(&["criticality_level", "level", "criticality_text", "criticality"]);
    let multiplier = first(&["criticality_value", "multiplier", "criticality_multiplier"])
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|n| n.is_finite())
        .or_else(|| match label.as_deref().map(str::to_ascii_lowercase).as_deref() {
            Some("low") => Some(1.0),
            Some("medium") => Some(1.33),
            Some("high") => Some(1.67),
            Some("critical") => Some(2.0),
            _ => None,
        });
    let is_available = label.is_some() || multiplier.is_some();
    Criticality { label, multiplier, is_available, columns }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn sizes_and_percentages() {
        assert_eq!(parse_size_gb("48 GB"), Some(48.0));
        assert_eq!(parse_size_gb("995G"), Some(995.0));
        assert_eq!(parse_size_gb("20G"), Some(20.0));
        assert_eq!(parse_size_gb("48"), Some(48.0));
        assert_eq!(parse_size_gb("512 MB"), Some(0.5));
        assert_eq!(parse_size_gb("2 TB"), Some(2048.0));
        assert_eq!(parse_size_gb("16 GiB"), Some(16.0));
        assert_eq!(parse_size_gb("1048576 KB"), Some(1.0));
        assert_eq!(parse_size_gb("lots"), None);
        assert_eq!(parse_size_gb(""), None);
        assert_eq!(parse_size_gb("12 PB"), None);
        assert_eq!(parse_percent("39%"), Some(39.0));
        assert_eq!(parse_percent(" 12.5 % "), Some(12.5));
        assert_eq!(parse_percent("39"), None);
    }

    #[test]
    fn disks_need_every_value() {
        let d = parse_disk(Some("/"), Some("20G"), Some("995G"), Some("39%")).unwrap();
        assert_eq!(
            (d.name.as_str(), d.free_gb, d.total_gb, d.utilization_percent),
            ("/", Some(20.0), Some(995.0), Some(39.0))
        );
        assert!(parse_disk(Some(" "), Some("20G"), Some("995G"), Some("39%")).is_none());
        assert!(parse_disk(Some("C:"), Some("20G"), Some("995G"), Some("39")).is_none());
        assert!(parse_disk(Some("C:"), None, Some("995G"), Some("39%")).is_none());
    }

    #[test]
    fn current_user_skips_error_texts() {
        assert_eq!(
            current_user(Some("Error: No inventory has been collected"), Some(" roberisaacs ")),
            Some("roberisaacs".into())
        );
        assert_eq!(current_user(Some("  "), None), None);
        assert_eq!(current_user(Some("alice"), Some("bob")), Some("alice".into()));
    }

    #[test]
    fn reboot_times_in_both_formats() {
        let now = Utc.with_ymd_and_hms(2026, 4, 12, 1, 50, 13).unwrap();
        assert_eq!(uptime_seconds(Some("Sat, 11 Apr 2026 21:50:13 -0400"), now), Some(0));
        assert_eq!(uptime_seconds(Some("2026-04-11T01:50:13Z"), now), Some(86_400));
        assert_eq!(uptime_seconds(Some("2026-04-13T00:00:00Z"), now), None);
        assert_eq!(uptime_seconds(Some("yesterday"), now), None);
        assert_eq!(uptime_seconds(None, now), None);
    }

    #[test]
    fn criticality_readings() {
        let c = parse_criticality(vec![("criticality_level".into(), vec!["High".into()])]);
        assert_eq!((c.label.as_deref(), c.multiplier, c.is_available), (Some("High"), Some(1.67), true));
        let c = parse_criticality(vec![("mystery_col".into(), vec!["strange".into()])]);
        assert_eq!((c.label, c.multiplier, c.is_available), (None, None, false));
        assert_eq!(c.columns[0].0, "mystery_col");
        let c = parse_criticality(vec![
            ("Criticality Level".into(), vec!["Critical".into()]),
            ("Criticality Value".into(), vec!["2.5".into()]),
        ]);
        assert_eq!((c.label.as_deref(), c.multiplier), (Some("Critical"), Some(2.5)));
        let c = parse_criticality(vec![("level".into(), vec!["Unknown".into()])]);
        assert_eq!((c.label.as_deref(), c.multiplier, c.is_available), (Some("Unknown"), None, true));
    }
}
