//! Shared state of the HTTP handlers.

use std::sync::Arc;

use crate::api::auth::Authenticator;
use crate::manager::Manager;

/// Everything a handler may need; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// Sandboxes.
    pub manager: Arc<Manager>,
    /// API keys.
    pub auth: Arc<dyn Authenticator>,
    /// Domain for host routing (`<port>-<id>.<domain>`) and reported to clients.
    pub domain: String,
}
