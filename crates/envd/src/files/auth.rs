//! Authorisation of `/files`: the `X-Access-Token` header, else a signed URL.

use axum::http::HeaderMap;

use super::FilesQuery;
use super::error::FilesError;
use crate::auth::{TokenCheck, UNAUTHORIZED, check_token, ct_eq, file_signature};
use crate::state::SharedState;
use crate::users::{User, UserError};

/// Accepts the request when no token is configured, when the header matches, or (without a
/// header) when the signature over the raw `path` query value is valid and unexpired. A
/// wrong header is refused even with a valid signature.
pub fn authorize(
    state: &SharedState,
    headers: &HeaderMap,
    q: &FilesQuery,
    op: &str,
) -> Result<(), FilesError> {
    let token = state.access_token();
    match check_token(token.as_ref(), headers) {
        TokenCheck::Open | TokenCheck::Valid => Ok(()),
        TokenCheck::Invalid => Err(FilesError::Unauthorized(UNAUTHORIZED)),
        TokenCheck::Missing => {
            let (Some(token), Some(sig)) = (token, q.signature.as_deref()) else {
                return Err(FilesError::Unauthorized(UNAUTHORIZED));
            };
            if let Some(exp) = q.signature_expiration {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(0);
                if exp < now {
                    return Err(FilesError::SignatureExpired);
                }
            }
            let path = q.path.as_deref().unwrap_or("");
            let user = q.username.as_deref().unwrap_or("");
            let expected = file_signature(path, op, user, token.expose(), q.signature_expiration);
            if ct_eq(expected.as_bytes(), sig.as_bytes()) {
                Ok(())
            } else {
                Err(FilesError::Unauthorized("invalid signature"))
            }
        }
    }
}

/// The `username` query user, else the default user.
pub fn files_user(state: &SharedState, q: &FilesQuery) -> Result<User, FilesError> {
    let name = q
        .username
        .clone()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| state.default_user());
    state.users.lookup(&name).map_err(|e| match e {
        UserError::Unknown(n) => FilesError::UnknownUser(n),
        UserError::Read { path, source } => FilesError::Io {
            op: "read user database",
            path,
            source,
        },
    })
}
