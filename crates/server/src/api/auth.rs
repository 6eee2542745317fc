//! API-key authentication: `X-API-KEY` → team.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::error::ApiError;
use crate::state::AppState;

/// Checks API keys. Implemented over the metadata store by the binary; tests use a map.
pub trait Authenticator: Send + Sync + 'static {
    /// The team a key belongs to, `Ok(None)` for an unknown or revoked key, `Err` when the
    /// key could not be checked (the request then fails with 503, not 401).
    fn team_for(&self, key: &str) -> Result<Option<String>, String>;
}

impl Authenticator for std::collections::HashMap<String, String> {
    fn team_for(&self, key: &str) -> Result<Option<String>, String> {
        Ok(self.get(key).cloned())
    }
}

impl Authenticator for bulkhead_store::Store {
    fn team_for(&self, key: &str) -> Result<Option<String>, String> {
        match self.authenticate(key) {
            Ok(info) => Ok(info.map(|i| i.team_id.as_str().to_string())),
            Err(e) => {
                let chain =
                    std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source())
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(": ");
                tracing::error!(error = %chain, "API key lookup failed");
                Err(chain)
            }
        }
    }
}

/// The authenticated team of a request.
#[derive(Debug, Clone)]
pub struct Team(pub String);

impl FromRequestParts<AppState> for Team {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
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
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .map_err(|_| ApiError::Busy("API keys cannot be checked right now".into()))?;
        team.map(Team)
            .ok_or(ApiError::Unauthorized("invalid API key"))
    }
}
