//! Signed `/files` URLs that name no sandbox: the SDKs build them on `E2B_SANDBOX_URL`, a
//! shared base URL, so a plain `GET`/`POST` of such a link (a browser, `curl`, another
//! service) carries neither routing headers nor a `<port>-<id>` host. The sandbox is the one
//! whose envd token the signature verifies with.
//!
//! Cost: one SHA-256 of a short string per registered sandbox (about a microsecond each),
//! only for `/files` requests that carry a signature and no route. Every candidate is
//! computed and compared in constant time, without stopping at a match, so the time taken
//! depends on the number of sandboxes, not on any token.

use std::sync::Arc;

use axum::extract::Query;
use axum::http::{Method, Uri};
use serde::Deserialize;

use crate::manager::{Entry, Manager};

/// The query fields that make up a signature (as envd reads them: raw `path`, empty
/// `username` when absent).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SignedQuery {
    path: Option<String>,
    username: Option<String>,
    signature: Option<String>,
    signature_expiration: Option<String>,
}

/// What a signed-URL request resolves to.
#[derive(Debug)]
pub enum Resolution {
    /// Not a signed `/files` request: the API router answers it.
    NotSigned,
    /// The one sandbox whose token the signature verifies with. Its envd checks the
    /// signature again, and the expiry.
    Sandbox(Arc<Entry>),
    /// A signature that verifies with no live sandbox's token (a tampered path, user or
    /// expiry, a made-up signature, or a sandbox that is gone: they cannot be told apart).
    Invalid,
}

/// Resolves a `/files` request without a route to the sandbox that signed it.
pub fn resolve(manager: &Manager, method: &Method, uri: &Uri) -> Resolution {
    if uri.path() != "/files" {
        return Resolution::NotSigned;
    }
    let op = match *method {
        Method::GET | Method::HEAD => "read",
        Method::POST => "write",
        _ => return Resolution::NotSigned,
    };
    let Ok(Query(q)) = Query::<SignedQuery>::try_from_uri(uri) else {
        return Resolution::NotSigned;
    };
    let Some(signature) = q.signature else {
        return Resolution::NotSigned;
    };
    let expiration = match q.signature_expiration.as_deref() {
        None => None,
        Some(s) => match s.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => return Resolution::Invalid,
        },
    };
    let path = q.path.as_deref().unwrap_or("");
    let user = q.username.as_deref().unwrap_or("");
    let mut found: Option<Arc<Entry>> = None;
    let mut matches = 0usize;
    for entry in manager.entries() {
        let expected = entry.with(|r| {
            bulkhead_envd::file_signature(path, op, user, r.envd_access_token.expose(), expiration)
        });
        if ct_eq(expected.as_bytes(), signature.as_bytes()) {
            matches += 1;
            found = Some(entry);
        }
    }
    match (matches, found) {
        (1, Some(entry)) => Resolution::Sandbox(entry),
        // Two sandboxes with one token would take a 40-character collision; refuse rather
        // than guess.
        _ => Resolution::Invalid,
    }
}

/// Constant-time equality for equal lengths (the length of a signature is public).
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_equality() {
        assert!(ct_eq(b"v1_abc", b"v1_abc"));
        assert!(!ct_eq(b"v1_abc", b"v1_abd"));
        assert!(!ct_eq(b"v1_abc", b"v1_ab"));
    }
}
