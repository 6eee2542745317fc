//! The [`Store`] handle: opening the database, connection settings, and the lock.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::Connection;

use crate::StoreError;
use crate::error::SqliteOp;
use crate::schema;

/// How long a statement waits for another process (e.g. `bulkhead key create` while the
/// server runs) to release the write lock before failing with `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A handle on the metadata database. Cheap to clone; all clones share one connection.
///
/// Threading: `Send + Sync`. Every call takes the connection's lock and blocks on SQLite
/// (milliseconds; up to [`BUSY_TIMEOUT`] if another process holds the write lock), so async
/// callers run it in `spawn_blocking`. One writer connection serialises all access in this
/// process; WAL lets other processes read meanwhile.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the database at `path`, creating the file with mode 0600 if it does not exist
    /// (its directory must exist), switches it to WAL and migrates the schema to the latest
    /// version. An existing file keeps its permissions.
    ///
    /// # Errors
    /// [`StoreError::Open`] if the file cannot be created, [`StoreError::SchemaTooNew`] if a
    /// newer build wrote it, [`StoreError::Sqlite`] if it is not a SQLite database.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        // Create the file ourselves so that the mode is 0600 from the first byte; SQLite
        // gives its -wal and -shm files the same mode as the database.
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|source| StoreError::Open {
                path: path.to_owned(),
                source,
            })?;
        let conn = Connection::open(path).op("open the database")?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .op("switch to WAL")?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Corrupt {
                table: "(database)",
                key: path.display().to_string(),
                reason: format!("journal mode stayed {mode}"),
            });
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .op("set synchronous")?;
        Store::setup(conn)
    }

    /// A private in-memory database, gone when the last clone is dropped. For tests.
    ///
    /// # Errors
    /// Only if SQLite cannot allocate it.
    pub fn open_in_memory() -> Result<Store, StoreError> {
        Store::setup(Connection::open_in_memory().op("open an in-memory database")?)
    }

    fn setup(mut conn: Connection) -> Result<Store, StoreError> {
        conn.busy_timeout(BUSY_TIMEOUT).op("set the busy timeout")?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .op("enable foreign keys")?;
        schema::migrate(&mut conn)?;
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// The connection. A panic in another thread while it held the lock leaves SQLite
    /// consistent (an unfinished transaction rolls back when dropped), so poison is ignored.
    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The schema version of the open database.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`] only.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.conn()
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .op("read the schema version")
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn open_creates_a_private_wal_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), schema::LATEST);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let jm: String = store
            .conn()
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(jm, "wal");
    }

    #[test]
    fn open_refuses_a_missing_directory_and_a_non_database() {
        let dir = tempfile::tempdir().unwrap();
        let err = Store::open(&dir.path().join("no/such/db.sqlite")).unwrap_err();
        assert!(matches!(err, StoreError::Open { .. }), "{err:?}");

        let junk = dir.path().join("junk");
        std::fs::write(&junk, vec![b'x'; 4096]).unwrap();
        let err = Store::open(&junk).unwrap_err();
        assert!(matches!(err, StoreError::Sqlite { .. }), "{err:?}");
    }

    #[test]
    fn open_refuses_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        drop(Store::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", schema::LATEST + 1)
            .unwrap();
        drop(conn);
        let err = Store::open(&path).unwrap_err();
        assert!(matches!(err, StoreError::SchemaTooNew { .. }), "{err:?}");
    }

    #[test]
    fn a_write_waits_for_another_connection_holding_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let store = Store::open(&path).unwrap();
        // Stand-in for another process (the CLI) in the middle of a write transaction.
        let holder = Connection::open(&path).unwrap();
        holder
            .execute_batch("BEGIN IMMEDIATE; CREATE TABLE other_process (x);")
            .unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            holder.execute_batch("COMMIT").unwrap();
        });
        // Waits for the commit instead of failing with SQLITE_BUSY.
        store.ensure_team("late").unwrap();
        release.join().unwrap();
    }

    #[test]
    fn store_is_send_sync_clone() {
        fn check<T: Send + Sync + Clone + 'static>() {}
        check::<Store>();
    }
}
