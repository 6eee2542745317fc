//! Plain-HTTP file transfer: `GET /files` (download) and `POST /files` (multipart or raw
//! upload), authorised by the access token or a signed URL.

pub mod auth;
pub mod download;
pub mod error;
pub mod upload;

use serde::Deserialize;

/// Query parameters of `/files`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FilesQuery {
    /// Target path (raw, as signed).
    pub path: Option<String>,
    /// User whose home relative paths resolve against and who owns written files.
    pub username: Option<String>,
    /// `v1_...` signature, when no access token header is sent.
    pub signature: Option<String>,
    /// Unix seconds after which the signature is refused.
    pub signature_expiration: Option<i64>,
}
