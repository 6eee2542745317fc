//! Request headers the API reads besides the API key.

use axum::http::HeaderMap;

use super::ApiError;

/// The longest `Idempotency-Key` accepted.
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// The `Idempotency-Key` header: absent, or 1-255 characters of `[a-z0-9-]`.
///
/// # Errors
/// [`ApiError::BadRequest`] for a value that is not UTF-8 or breaks the syntax.
pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .map_err(|_| ApiError::BadRequest("invalid Idempotency-Key".into()))?;
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY
        || !key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(ApiError::BadRequest(
            "Idempotency-Key must be 1-255 characters of [a-z0-9-]".into(),
        ));
    }
    Ok(Some(key.to_string()))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn with(value: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("idempotency-key", HeaderValue::from_bytes(value).unwrap());
        h
    }

    #[test]
    fn keys_are_checked_for_their_syntax() {
        assert_eq!(idempotency_key(&HeaderMap::new()).unwrap(), None);
        assert_eq!(
            idempotency_key(&with(b"retry-1")).unwrap().as_deref(),
            Some("retry-1")
        );
        assert!(idempotency_key(&with(&[b'a'; 255])).is_ok());
        for bad in [
            &b""[..],
            b"Bad Key!",
            b"UPPER",
            &[b'a'; 256],
            b"caf\xc3\xa9",
        ] {
            assert!(idempotency_key(&with(bad)).is_err(), "{bad:?}");
        }
    }
}
