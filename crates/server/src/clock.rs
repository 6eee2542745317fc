//! Time as the server uses it: UTC timestamps shared with the store, RFC 3339 on the wire.

use std::time::Duration;

pub use bulkhead_store::Timestamp;

/// Now.
pub fn now() -> Timestamp {
    bulkhead_store::now()
}

/// `t + d`, saturating far in the future.
pub fn plus(t: Timestamp, d: Duration) -> Timestamp {
    chrono::TimeDelta::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(t)
}

/// RFC 3339 with a `Z` suffix, whole seconds.
pub fn rfc3339(t: Timestamp) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Parses RFC 3339 (any offset).
pub fn parse(raw: &str) -> Option<Timestamp> {
    bulkhead_store::parse_rfc3339(raw).ok()
}

/// Nanoseconds since the epoch (for cursor ordering).
pub fn nanos(t: Timestamp) -> i128 {
    i128::from(t.timestamp()) * 1_000_000_000 + i128::from(t.timestamp_subsec_nanos())
}
