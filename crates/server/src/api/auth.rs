//! API-key authentication: `X-API-KEY` → team.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use bulkhead_store::TeamId;

use super::ApiError;
use crate::report::chain;
use crate::state::AppState;

/// Keys could not be checked (the store failed); the request fails with 503, not 401.
#[derive(Debug, thiserror::Error)]
#[error("API keys cannot be checked")]
pub struct KeyCheckFailed(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// Checks API keys. Implemented over the metadata store; tests use a map.
pub trait Authenticator: Send + Sync + 'static {
    /// The team a key belongs to, `Ok(None)` for an unknown or revoked key. Blocking (it is
    /// called on the blocking pool).
    ///
    /// # Errors
    /// [`KeyCheckFailed`] when the key could not be checked.
    fn team_for(&self, key: &str) -> Result<Option<TeamId>, KeyCheckFailed>;
}

impl Authenticator for std::collections::HashMap<String, TeamId> {
    fn team_for(&self, key: &str) -> Result<Option<TeamId>, KeyCheckFailed> {
        Ok(self.get(key).cloned())
    }
}

impl Authenticator for bulkhead_store::Store {
    fn team_for(&self, key: &str) -> Result<Option<TeamId>, KeyCheckFailed> {
        self.authenticate(key)
            .map(|info| info.map(|i| i.team_id))
            .map_err(|e| KeyCheckFailed(Box::new(e)))
    }
}

/// The authenticated team of a request.
#[derive(Debug, Clone)]
pub struct Team(pub TeamId);

impl<B: Send + Sync + 'static> FromRequestParts<AppState<B>> for Team {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState<B>,
    ) -> Result<Self, Self::Rejection> {
        let key = parts
            .headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or(ApiError::Unauthorized("missing X-API-KEY header"))?;
        let auth = state.auth.clone();
        let key = key.to_string();
        let team = tokio::task::spawn_blocking(move || auth.team_for(&key))
            .await
            .map_err(|e| ApiError::Internal(Box::new(e)))?
            .map_err(|e| {
                tracing::error!(error = %chain(&e), "API key lookup failed");
                ApiError::Unavailable("API keys cannot be checked right now".into())
            })?;
        team.map(Team)
            .ok_or(ApiError::Unauthorized("invalid API key"))
    }
}
