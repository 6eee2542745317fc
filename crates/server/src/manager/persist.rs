//! The registry on disk: every handed-out sandbox has a row in the store, so a restarted
//! server finds it again. Store calls block on SQLite and run on the blocking pool.

use bulkhead_store::{Store, StoreError};

use super::ManagerError;
use super::error::StoreOp;

/// Runs `f` against the store on the blocking pool; `op` names what the manager was doing.
pub(crate) async fn db<T: Send + 'static>(
    store: &Store,
    op: &'static str,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ManagerError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(&store))
        .await?
        .store(op)
}
