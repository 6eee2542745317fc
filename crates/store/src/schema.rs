//! The schema, as an append-only list of migrations numbered by `PRAGMA user_version`.
//!
//! Never edit a migration that has shipped: append a new one. Timestamps are INTEGER
//! microseconds since the epoch (UTC); ids are TEXT. The SQL sticks to what PostgreSQL also
//! accepts, except `WITHOUT ROWID` and the partial index syntax, which both have equivalents.

use rusqlite::Connection;

use crate::StoreError;
use crate::error::SqliteOp;

/// Migration `i` moves the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: teams, API keys, sandboxes and their metadata.
    "CREATE TABLE teams (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        team_id TEXT NOT NULL REFERENCES teams(id),
        name TEXT NOT NULL,
        prefix TEXT NOT NULL,
        secret_sha256 BLOB NOT NULL UNIQUE,
        created_at INTEGER NOT NULL,
        last_used_at INTEGER,
        revoked_at INTEGER
    );
    CREATE TABLE sandboxes (
        sandbox_id TEXT PRIMARY KEY,
        team_id TEXT NOT NULL REFERENCES teams(id),
        template_id TEXT NOT NULL,
        alias TEXT,
        started_at INTEGER NOT NULL,
        end_at INTEGER NOT NULL,
        state TEXT NOT NULL,
        envd_access_token TEXT NOT NULL,
        cpu_count INTEGER NOT NULL,
        memory_mb INTEGER NOT NULL,
        disk_mb INTEGER NOT NULL,
        idempotency_key TEXT
    );
    CREATE UNIQUE INDEX sandboxes_idempotency ON sandboxes(team_id, idempotency_key)
        WHERE idempotency_key IS NOT NULL;
    CREATE INDEX sandboxes_team_started ON sandboxes(team_id, started_at, sandbox_id);
    CREATE TABLE sandbox_metadata (
        sandbox_id TEXT NOT NULL REFERENCES sandboxes(sandbox_id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (sandbox_id, key)
    ) WITHOUT ROWID;
    CREATE INDEX sandbox_metadata_kv ON sandbox_metadata(key, value);",
    // 2: whether a sandbox pauses instead of dying at its timeout. Rows written before it
    // existed were never auto-pause ones (the flag was not kept), so 0 is their truth.
    "ALTER TABLE sandboxes ADD COLUMN auto_pause INTEGER NOT NULL DEFAULT 0;",
    // 3: whether that pause keeps memory (the freezer) or only the filesystem. Rows written
    // before it paused with the freezer, so 1 is their truth.
    "ALTER TABLE sandboxes ADD COLUMN auto_pause_memory INTEGER NOT NULL DEFAULT 1;",
];

/// The schema version this build writes.
pub(crate) const LATEST: i64 = MIGRATIONS.len() as i64;

/// Brings the schema up to [`LATEST`], one transaction per migration.
///
/// # Errors
/// [`StoreError::SchemaTooNew`] when a newer build wrote the file; nothing is changed then.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let found: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .op("read the schema version")?;
    if found > LATEST {
        return Err(StoreError::SchemaTooNew {
            found,
            supported: LATEST,
        });
    }
    for (version, sql) in (1..)
        .zip(MIGRATIONS)
        .skip(usize::try_from(found).unwrap_or(0))
    {
        let tx = conn.transaction().op("begin a migration")?;
        tx.execute_batch(sql).op("apply a migration")?;
        tx.pragma_update(None, "user_version", version)
            .op("record the schema version")?;
        tx.commit().op("commit a migration")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database written by a build that knew only migration 1 opens, keeps its rows and
    /// reads them as not auto-pausing.
    #[test]
    fn a_version_1_database_migrates_and_keeps_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.execute_batch(
                "INSERT INTO teams VALUES ('t1', 'default', 0);
                 INSERT INTO sandboxes VALUES ('sbx1', 't1', 'base', NULL, 1000000, 2000000,
                     'running', 'tok', 1, 512, 1024, 'key-1');
                 INSERT INTO sandbox_metadata VALUES ('sbx1', 'k', 'v');",
            )
            .unwrap();
        }
        let store = crate::Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), LATEST);
        let rec = store.get_sandbox("sbx1").unwrap().unwrap();
        assert!(!rec.auto_pause);
        assert_eq!(rec.idempotency_key.as_deref(), Some("key-1"));
        assert_eq!(rec.metadata.get("k").map(String::as_str), Some("v"));
        assert_eq!(rec.envd_access_token.expose(), "tok");
    }
}
