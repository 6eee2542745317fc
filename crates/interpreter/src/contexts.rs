//! The registry of contexts: created ones by id, and one lazily created default context per
//! language.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::context::{Context, Shared};

/// Why a context cannot be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CreateError {
    /// No kernel is configured for the language.
    #[error("Language '{0}' is not supported: no kernel is installed for it")]
    UnknownLanguage(String),
    /// The working directory is not an existing absolute directory.
    #[error("cwd {0:?} is not an existing absolute directory")]
    BadCwd(String),
}

/// See the module docs.
pub(crate) struct Contexts {
    shared: Arc<Shared>,
    by_id: Mutex<HashMap<String, Arc<Context>>>,
    defaults: Mutex<HashMap<String, String>>,
    order: Mutex<Vec<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Contexts {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            by_id: Mutex::new(HashMap::new()),
            defaults: Mutex::new(HashMap::new()),
            order: Mutex::new(Vec::new()),
        }
    }

    /// Registers a new context (its kernel is started by the caller or on first use).
    pub fn create(&self, language: &str, cwd: Option<&str>) -> Result<Arc<Context>, CreateError> {
        if !self.shared.config.kernels.contains_key(language) {
            return Err(CreateError::UnknownLanguage(language.to_owned()));
        }
        let cwd = match cwd.filter(|c| !c.is_empty()) {
            Some(c) => {
                let p = PathBuf::from(c);
                if !p.is_absolute() || !p.is_dir() {
                    return Err(CreateError::BadCwd(c.to_owned()));
                }
                p
            }
            None => self.shared.config.default_cwd.clone(),
        };
        let ctx = Arc::new(Context::new(
            new_id(),
            language.to_owned(),
            cwd,
            self.shared.clone(),
        ));
        lock(&self.by_id).insert(ctx.id.clone(), ctx.clone());
        lock(&self.order).push(ctx.id.clone());
        Ok(ctx)
    }

    /// The context with this id.
    pub fn get(&self, id: &str) -> Option<Arc<Context>> {
        lock(&self.by_id).get(id).cloned()
    }

    /// The default context of `language`, created on first use.
    pub fn default_for(&self, language: &str) -> Result<Arc<Context>, CreateError> {
        let mut defaults = lock(&self.defaults);
        if let Some(ctx) = defaults.get(language).and_then(|id| self.get(id)) {
            return Ok(ctx);
        }
        let ctx = self.create(language, None)?;
        defaults.insert(language.to_owned(), ctx.id.clone());
        Ok(ctx)
    }

    /// Every context, oldest first (default contexts included under their ids).
    pub fn list(&self) -> Vec<Arc<Context>> {
        let by_id = lock(&self.by_id);
        lock(&self.order)
            .iter()
            .filter_map(|id| by_id.get(id).cloned())
            .collect()
    }

    /// Removes a context and kills its kernel. False when there was none.
    pub fn remove(&self, id: &str) -> bool {
        let Some(ctx) = lock(&self.by_id).remove(id) else {
            return false;
        };
        lock(&self.order).retain(|i| i != id);
        lock(&self.defaults).retain(|_, i| i != id);
        ctx.remove();
        true
    }
}

/// A fresh id in UUID form, as E2B's are (Jupyter kernel ids).
fn new_id() -> String {
    let h = crate::kernel::random_hex(16);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}
