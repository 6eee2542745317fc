//! Access control: the `X-Access-Token` check in front of every route except the
//! self-authenticating ones, user selection by `Authorization: Basic`, and `/files` URL
//! signatures.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::config::AccessToken;
use crate::connect::{Code, ConnectError};
use crate::state::SharedState;
use crate::users::{User, UserError};

/// The message of every 401 for a missing or wrong token (as the reference envd words it).
pub const UNAUTHORIZED: &str =
    "unauthorized access, please provide a valid access token or method signing if supported";

/// Outcome of comparing the request's `X-Access-Token` with the configured token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenCheck {
    /// No token is configured: everything is open.
    Open,
    /// The header matches.
    Valid,
    /// The header is absent.
    Missing,
    /// The header is present and wrong.
    Invalid,
}

/// Compares the header with `token` in constant time.
pub fn check_token(token: Option<&AccessToken>, headers: &HeaderMap) -> TokenCheck {
    let Some(token) = token else {
        return TokenCheck::Open;
    };
    match headers.get("x-access-token") {
        None => TokenCheck::Missing,
        Some(v) if ct_eq(v.as_bytes(), token.expose().as_bytes()) => TokenCheck::Valid,
        Some(_) => TokenCheck::Invalid,
    }
}

/// Constant-time equality (for equal lengths; the length itself is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The plain-HTTP 401 `{"code":401,"message":..}`.
pub fn unauthorized(message: &str) -> Response {
    let body = serde_json::json!({ "code": 401, "message": message }).to_string();
    let mut res = (StatusCode::UNAUTHORIZED, body).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    res
}

/// Middleware: requires the access token on every path except `/health`, `/files` (which
/// also accept signatures) and `/init` (which authenticates itself).
pub async fn require_token(State(state): State<SharedState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if matches!(path, "/health" | "/files" | "/init") {
        return next.run(req).await;
    }
    let token = state.access_token();
    match check_token(token.as_ref(), req.headers()) {
        TokenCheck::Open | TokenCheck::Valid => next.run(req).await,
        TokenCheck::Missing | TokenCheck::Invalid => {
            tracing::debug!(path, "request refused: missing or wrong access token");
            unauthorized(UNAUTHORIZED)
        }
    }
}

/// The user named by `Authorization: Basic base64("<name>:")`, else the default user.
pub fn rpc_user(state: &SharedState, headers: &HeaderMap) -> Result<User, ConnectError> {
    let name = match headers.get(header::AUTHORIZATION) {
        Some(v) => basic_username(v).ok_or_else(|| {
            ConnectError::new(Code::Unauthenticated, "invalid authorization header")
        })?,
        None => state.default_user(),
    };
    lookup_user(state, &name)
}

/// Looks a user up, mapping failures to Connect errors (unknown → `unauthenticated`).
pub fn lookup_user(state: &SharedState, name: &str) -> Result<User, ConnectError> {
    state.users.lookup(name).map_err(|e| match e {
        UserError::Unknown(_) => ConnectError::new(Code::Unauthenticated, e.to_string()),
        UserError::Read { .. } => {
            tracing::error!(error = %crate::error_chain(&e), "user database unreadable");
            ConnectError::new(
                Code::Internal,
                format!("looking up user '{name}': {}", crate::error_chain(&e)),
            )
        }
    })
}

fn basic_username(v: &HeaderValue) -> Option<String> {
    let v = v.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let name = decoded.split_once(':').map_or(decoded.as_str(), |(n, _)| n);
    (!name.is_empty()).then(|| name.to_owned())
}

/// The `/files` signature: `"v1_" + base64_nopad(sha256(path:op:username:token[:exp]))`.
pub fn file_signature(
    path: &str,
    op: &str,
    username: &str,
    token: &str,
    exp: Option<i64>,
) -> String {
    let mut text = format!("{path}:{op}:{username}:{token}");
    if let Some(exp) = exp {
        text.push_str(&format!(":{exp}"));
    }
    let digest = Sha256::digest(text.as_bytes());
    format!(
        "v1_{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_sdk_vector() {
        let sig = file_signature("/home/user/a.txt", "read", "", "envd-secret-token", None);
        assert_eq!(sig, "v1_piWtEbpvBY62FdSSgQjTXQuc0lfUCeLYckWpDW+Rn+8");
    }

    #[test]
    fn basic_auth_parsing() {
        assert_eq!(
            basic_username(&HeaderValue::from_static("Basic dXNlcjo=")),
            Some("user".into())
        );
        assert_eq!(basic_username(&HeaderValue::from_static("Bearer x")), None);
        assert_eq!(basic_username(&HeaderValue::from_static("Basic !!!")), None);
    }

    #[test]
    fn token_checks() {
        let t = AccessToken::new("tok");
        let mut h = HeaderMap::new();
        assert_eq!(check_token(None, &h), TokenCheck::Open);
        assert_eq!(check_token(Some(&t), &h), TokenCheck::Missing);
        h.insert("x-access-token", HeaderValue::from_static("nope"));
        assert_eq!(check_token(Some(&t), &h), TokenCheck::Invalid);
        h.insert("x-access-token", HeaderValue::from_static("tok"));
        assert_eq!(check_token(Some(&t), &h), TokenCheck::Valid);
    }
}
