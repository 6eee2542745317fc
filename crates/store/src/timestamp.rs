//! Timestamps: UTC instants stored as microseconds since the Unix epoch, shown as RFC 3339.

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};

/// A UTC instant. The store keeps microsecond precision: finer digits are dropped on write,
/// so use [`now`] to get a value that reads back unchanged.
pub type Timestamp = DateTime<Utc>;

/// The current time, truncated to the microsecond precision the store keeps.
pub fn now() -> Timestamp {
    Utc::now().trunc_subsecs(6)
}

/// RFC 3339 in UTC with a `Z` suffix and only as many fraction digits as needed
/// (`2026-01-01T00:00:00Z`, `2026-01-01T00:00:00.250Z`).
pub fn format_rfc3339(ts: &Timestamp) -> String {
    ts.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Parses RFC 3339 with any offset (`Z`, `+00:00`, `+02:00`) into UTC.
///
/// # Errors
/// The text is not RFC 3339.
pub fn parse_rfc3339(text: &str) -> Result<Timestamp, chrono::ParseError> {
    DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc))
}

/// The stored form: microseconds since the epoch.
pub(crate) fn to_micros(ts: &Timestamp) -> i64 {
    ts.timestamp_micros()
}

/// The inverse of [`to_micros`]; `None` when out of chrono's range.
pub(crate) fn from_micros(micros: i64) -> Option<Timestamp> {
    DateTime::from_timestamp_micros(micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_with_z() {
        let t = parse_rfc3339("2026-01-01T02:00:00.250+02:00").unwrap();
        assert_eq!(format_rfc3339(&t), "2026-01-01T00:00:00.250Z");
        let t = parse_rfc3339("2026-01-01T00:00:00+00:00").unwrap();
        assert_eq!(format_rfc3339(&t), "2026-01-01T00:00:00Z");
        assert!(parse_rfc3339("yesterday").is_err());
    }

    #[test]
    fn now_survives_the_stored_form() {
        let t = now();
        assert_eq!(from_micros(to_micros(&t)), Some(t));
    }
}
