//! `Retry-After` values: delay-seconds or an HTTP-date.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// Parses a `Retry-After` value: delay-seconds or an HTTP-date in one of the three formats of
/// RFC 9110 (IMF-fixdate, RFC 850 or asctime). A date in the past gives zero. Unparseable values
/// give `None`.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let v = value.trim();
    if v.is_empty() {
        return None;
    }
    if v.bytes().all(|b| b.is_ascii_digit()) {
        return v.parse::<u64>().ok().map(Duration::from_secs);
    }
    let at = DateTime::<Utc>::from(httpdate::parse_http_date(v).ok()?);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn retry_after_seconds() {
        let now = Utc::now();
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("1.5", now), None);
    }

    #[test]
    fn retry_after_http_dates() {
        let now = Utc.with_ymd_and_hms(1994, 11, 6, 8, 49, 0).unwrap();
        let expect = Some(Duration::from_secs(37));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), expect);
        assert_eq!(parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now), expect);
        assert_eq!(parse_retry_after("Sun Nov  6 08:49:37 1994", now), expect);
        // In the past: retry now.
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("  Sun, 06 Nov 1994 08:49:37 GMT  ", now), expect);
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 25:49:37 GMT", now), None);
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994", now), None);
    }
}
