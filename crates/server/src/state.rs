//! Shared state of the HTTP handlers.

use std::sync::Arc;

use crate::api::auth::Authenticator;
use crate::manager::Manager;

/// Everything a handler may need; cheap to clone. `B` is what runs sandboxes: the
/// [`Manager`] when serving, a stand-in in the API's own tests (the edge proxy needs the
/// manager itself).
pub struct AppState<B = Manager> {
    /// Sandboxes.
    pub manager: Arc<B>,
    /// API keys.
    pub auth: Arc<dyn Authenticator>,
    /// Domain for host routing (`<port>-<id>.<domain>`) and reported to clients.
    pub domain: String,
    /// Built templates and the builder; `None` = this server builds none.
    pub templates: Option<Arc<crate::templates::Templates>>,
}

// Not derived: a derive would require `B: Clone`, and only the `Arc` is cloned.
impl<B> Clone for AppState<B> {
    fn clone(&self) -> Self {
        Self {
            manager: Arc::clone(&self.manager),
            auth: Arc::clone(&self.auth),
            domain: self.domain.clone(),
            templates: self.templates.clone(),
        }
    }
}
