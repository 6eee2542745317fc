//! proto3-JSON helpers: base64 `bytes`, lenient integers, enums by name or number, timestamps.
//!
//! Requests are parsed leniently (both SDKs' spellings, numbers as strings, URL-safe base64),
//! responses are written in canonical form.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serializer};

/// Decodes proto3-JSON `bytes`: standard or URL-safe base64, padded or not.
pub fn decode_b64(s: &str) -> Option<Vec<u8>> {
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|e| e.decode(s).ok())
}

/// `bytes` request fields: `#[serde(deserialize_with = "b64_opt::deserialize")]` for
/// `Option<Vec<u8>>`.
pub mod b64_opt {
    use super::*;

    /// Reads any base64 flavour; `null` is absent.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(s) => decode_b64(&s)
                .map(Some)
                .ok_or_else(|| D::Error::custom("invalid base64")),
            None => Ok(None),
        }
    }
}

/// A JSON number or numeric string as `u32` (`null` → 0).
pub fn de_u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    match &v {
        serde_json::Value::Null => Ok(0),
        serde_json::Value::Number(n) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| D::Error::custom("expected a uint32")),
        serde_json::Value::String(s) => {
            s.parse().map_err(|_| D::Error::custom("expected a uint32"))
        }
        _ => Err(D::Error::custom("expected a uint32")),
    }
}

/// Like [`de_u32`] for an optional field.
pub fn de_opt_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    if v.is_null() {
        return Ok(None);
    }
    de_u32(v).map(Some).map_err(D::Error::custom)
}

/// Writes an `int64` as a JSON string (proto3 canonical form).
pub fn ser_i64_str<S: Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&v.to_string())
}

/// Reads an enum given by name (`"SIGNAL_SIGKILL"`) or number (`9`); `null` → 0.
pub fn enum_value(v: &serde_json::Value, names: &[(&str, i32)]) -> Option<i32> {
    match v {
        serde_json::Value::Null => Some(0),
        serde_json::Value::String(s) => names.iter().find(|(n, _)| n == s).map(|(_, i)| *i),
        serde_json::Value::Number(n) => n.as_i64().and_then(|n| i32::try_from(n).ok()),
        _ => None,
    }
}

/// Formats seconds + nanoseconds since the Unix epoch as RFC 3339 UTC (`2026-01-01T00:00:00Z`,
/// with a fractional part when `nanos` is non-zero).
pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let base = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    );
    if nanos == 0 {
        format!("{base}Z")
    } else {
        let frac = format!("{nanos:09}");
        format!("{base}.{}Z", frac.trim_end_matches('0'))
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_767_225_600, 0), "2026-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400, 500_000_000), "2000-02-29T00:00:00.5Z");
    }

    #[test]
    fn base64_flavours() {
        assert_eq!(decode_b64("aGkK"), Some(b"hi\n".to_vec()));
        assert_eq!(decode_b64("-_8"), Some(vec![0xfb, 0xff]));
        assert_eq!(decode_b64("+/8="), Some(vec![0xfb, 0xff]));
        assert_eq!(decode_b64("!!"), None);
    }

    #[test]
    fn enums_by_name_or_number() {
        let names = [("SIGNAL_SIGKILL", 9)];
        assert_eq!(
            enum_value(&serde_json::json!("SIGNAL_SIGKILL"), &names),
            Some(9)
        );
        assert_eq!(enum_value(&serde_json::json!(15), &names), Some(15));
        assert_eq!(enum_value(&serde_json::json!("NOPE"), &names), None);
    }
}
