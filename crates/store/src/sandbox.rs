//! The sandbox registry: one row per sandbox the server runs or keeps paused, so that state
//! survives a server restart.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, Row, ToSql, params};

use crate::error::{SqliteOp, Violation, violation};
use crate::timestamp::{from_micros, to_micros};
use crate::{ConflictKind, Secret, Store, StoreError, TeamId, Timestamp};

/// A sandbox's lifecycle state as the E2B API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SandboxStatus {
    /// Processes are running.
    Running,
    /// Frozen or stopped; it can be resumed.
    Paused,
}

impl SandboxStatus {
    /// The wire and stored form: `"running"` or `"paused"`.
    pub fn as_str(self) -> &'static str {
        match self {
            SandboxStatus::Running => "running",
            SandboxStatus::Paused => "paused",
        }
    }

    /// Parses [`as_str`](Self::as_str)'s output; `None` for anything else.
    pub fn parse(text: &str) -> Option<SandboxStatus> {
        match text {
            "running" => Some(SandboxStatus::Running),
            "paused" => Some(SandboxStatus::Paused),
            _ => None,
        }
    }
}

/// Everything the registry knows about one sandbox (ListedSandbox / SandboxDetail in the
/// E2B API, minus what the server derives: clientID, envdVersion, domain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxRecord {
    /// Unique id, `[a-z0-9]+` by the server's choice.
    pub sandbox_id: String,
    /// The owning team; it must exist.
    pub team_id: TeamId,
    /// The template's id.
    pub template_id: String,
    /// The template alias it was created from, if any.
    pub alias: Option<String>,
    /// When it started (the pagination order).
    pub started_at: Timestamp,
    /// When it times out.
    pub end_at: Timestamp,
    /// Running or paused.
    pub status: SandboxStatus,
    /// User metadata; list filters match on it.
    pub metadata: BTreeMap<String, String>,
    /// The token envd requires (`X-Access-Token`).
    pub envd_access_token: Secret,
    /// vCPUs.
    pub cpu_count: u32,
    /// Memory limit in MiB.
    pub memory_mb: u32,
    /// Disk size in MiB.
    pub disk_mb: u32,
    /// The `Idempotency-Key` it was created with; unique per team.
    pub idempotency_key: Option<String>,
    /// Paused instead of killed when `end_at` passes.
    pub auto_pause: bool,
    /// That pause keeps memory (frozen processes); `false` = filesystem only (the processes
    /// end, the files stay).
    pub auto_pause_memory: bool,
}

/// The column list every sandbox query selects, in [`raw_from_row`]'s order.
pub(crate) const SANDBOX_COLUMNS: &str = "s.sandbox_id, s.team_id, s.template_id, s.alias, \
     s.started_at, s.end_at, s.state, s.envd_access_token, s.cpu_count, s.memory_mb, \
     s.disk_mb, s.idempotency_key, s.auto_pause, s.auto_pause_memory";

/// One `sandboxes` row as SQLite returns it, before its values are checked.
struct RawSandbox {
    sandbox_id: String,
    team_id: String,
    template_id: String,
    alias: Option<String>,
    started_at: i64,
    end_at: i64,
    state: String,
    envd_access_token: String,
    cpu_count: i64,
    memory_mb: i64,
    disk_mb: i64,
    idempotency_key: Option<String>,
    auto_pause: bool,
    auto_pause_memory: bool,
}

fn raw_from_row(row: &Row<'_>) -> rusqlite::Result<RawSandbox> {
    Ok(RawSandbox {
        sandbox_id: row.get(0)?,
        team_id: row.get(1)?,
        template_id: row.get(2)?,
        alias: row.get(3)?,
        started_at: row.get(4)?,
        end_at: row.get(5)?,
        state: row.get(6)?,
        envd_access_token: row.get(7)?,
        cpu_count: row.get(8)?,
        memory_mb: row.get(9)?,
        disk_mb: row.get(10)?,
        idempotency_key: row.get(11)?,
        auto_pause: row.get(12)?,
        auto_pause_memory: row.get(13)?,
    })
}

impl RawSandbox {
    /// The record, without metadata; [`StoreError::Corrupt`] for values out of range.
    fn decode(self) -> Result<SandboxRecord, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            table: "sandboxes",
            key: self.sandbox_id.clone(),
            reason,
        };
        let time =
            |m: i64| from_micros(m).ok_or_else(|| corrupt(format!("timestamp {m} out of range")));
        let size =
            |v: i64, what: &str| u32::try_from(v).map_err(|_| corrupt(format!("{what} {v}")));
        Ok(SandboxRecord {
            started_at: time(self.started_at)?,
            end_at: time(self.end_at)?,
            status: SandboxStatus::parse(&self.state)
                .ok_or_else(|| corrupt(format!("state {:?}", self.state)))?,
            cpu_count: size(self.cpu_count, "cpu_count")?,
            memory_mb: size(self.memory_mb, "memory_mb")?,
            disk_mb: size(self.disk_mb, "disk_mb")?,
            team_id: TeamId::new(self.team_id),
            template_id: self.template_id,
            alias: self.alias,
            metadata: BTreeMap::new(),
            envd_access_token: Secret::new(self.envd_access_token),
            idempotency_key: self.idempotency_key,
            auto_pause: self.auto_pause,
            auto_pause_memory: self.auto_pause_memory,
            sandbox_id: self.sandbox_id,
        })
    }
}

/// Runs `SELECT {SANDBOX_COLUMNS} FROM sandboxes s {tail}` and fills in each row's metadata.
fn query_sandboxes(
    conn: &Connection,
    tail: &str,
    args: &[&dyn ToSql],
) -> Result<Vec<SandboxRecord>, StoreError> {
    let sql = format!("SELECT {SANDBOX_COLUMNS} FROM sandboxes s {tail}");
    let mut stmt = conn.prepare_cached(&sql).op("query sandboxes")?;
    let raws = stmt
        .query_map(args, raw_from_row)
        .op("query sandboxes")?
        .collect::<Result<Vec<_>, _>>()
        .op("read sandboxes")?;
    let mut meta = conn
        .prepare_cached("SELECT key, value FROM sandbox_metadata WHERE sandbox_id = ?1")
        .op("query sandbox metadata")?;
    let mut out = Vec::with_capacity(raws.len());
    for raw in raws {
        let mut rec = raw.decode()?;
        rec.metadata = meta
            .query_map([&rec.sandbox_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .op("query sandbox metadata")?
            .collect::<Result<_, _>>()
            .op("read sandbox metadata")?;
        out.push(rec);
    }
    Ok(out)
}

impl Store {
    /// Registers a sandbox with its metadata, atomically.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] if `sandbox_id` is taken ([`ConflictKind::SandboxId`]) or the
    /// team already used `idempotency_key` ([`ConflictKind::IdempotencyKey`]);
    /// [`StoreError::UnknownTeam`] if the team does not exist. Nothing is written then.
    pub fn insert_sandbox(&self, rec: &SandboxRecord) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().op("begin inserting a sandbox")?;
        tx.execute(
            "INSERT INTO sandboxes (sandbox_id, team_id, template_id, alias, started_at, \
             end_at, state, envd_access_token, cpu_count, memory_mb, disk_mb, idempotency_key, \
             auto_pause, auto_pause_memory) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            params![
                rec.sandbox_id,
                rec.team_id.as_str(),
                rec.template_id,
                rec.alias,
                to_micros(&rec.started_at),
                to_micros(&rec.end_at),
                rec.status.as_str(),
                rec.envd_access_token.expose(),
                rec.cpu_count,
                rec.memory_mb,
                rec.disk_mb,
                rec.idempotency_key,
                rec.auto_pause,
                rec.auto_pause_memory,
            ],
        )
        .map_err(|e| match violation(&e) {
            Some(Violation::PrimaryKey) => StoreError::Conflict {
                what: ConflictKind::SandboxId,
            },
            Some(Violation::Unique) => StoreError::Conflict {
                what: ConflictKind::IdempotencyKey,
            },
            Some(Violation::ForeignKey) => StoreError::UnknownTeam {
                team: rec.team_id.clone(),
            },
            None => StoreError::Sqlite {
                op: "insert a sandbox",
                source: e,
            },
        })?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO sandbox_metadata (sandbox_id, key, value) VALUES (?1, ?2, ?3)",
                )
                .op("insert sandbox metadata")?;
            for (k, v) in &rec.metadata {
                stmt.execute(params![rec.sandbox_id, k, v])
                    .op("insert sandbox metadata")?;
            }
        }
        tx.commit().op("commit a sandbox")
    }

    /// The team's sandbox created with idempotency key `key`, if it is still registered.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`] or [`StoreError::Corrupt`].
    pub fn find_by_idempotency_key(
        &self,
        team: &TeamId,
        key: &str,
    ) -> Result<Option<SandboxRecord>, StoreError> {
        let conn = self.conn();
        let found = query_sandboxes(
            &conn,
            "WHERE s.team_id = ?1 AND s.idempotency_key = ?2",
            &[&team.as_str(), &key],
        )?;
        Ok(found.into_iter().next())
    }

    /// The sandbox `id`, whatever its team (the caller checks ownership).
    ///
    /// # Errors
    /// [`StoreError::Sqlite`] or [`StoreError::Corrupt`].
    pub fn get_sandbox(&self, id: &str) -> Result<Option<SandboxRecord>, StoreError> {
        let conn = self.conn();
        let found = query_sandboxes(&conn, "WHERE s.sandbox_id = ?1", &[&id])?;
        Ok(found.into_iter().next())
    }

    /// Sets the state of sandbox `id`; `false` if there is no such sandbox.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`] only.
    pub fn set_sandbox_state(&self, id: &str, state: SandboxStatus) -> Result<bool, StoreError> {
        let n = self
            .conn()
            .execute(
                "UPDATE sandboxes SET state = ?1 WHERE sandbox_id = ?2",
                params![state.as_str(), id],
            )
            .op("update a sandbox's state")?;
        Ok(n == 1)
    }

    /// Sets when sandbox `id` times out; `false` if there is no such sandbox. The store
    /// does not check that it moves forward: that is the server's rule.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`] only.
    pub fn set_sandbox_end(&self, id: &str, end_at: Timestamp) -> Result<bool, StoreError> {
        let n = self
            .conn()
            .execute(
                "UPDATE sandboxes SET end_at = ?1 WHERE sandbox_id = ?2",
                params![to_micros(&end_at), id],
            )
            .op("update a sandbox's end time")?;
        Ok(n == 1)
    }

    /// Removes sandbox `id` and its metadata; `false` if there was none. Its idempotency
    /// key becomes free again.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`] only.
    pub fn delete_sandbox(&self, id: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().op("begin deleting a sandbox")?;
        // Explicit rather than relying on ON DELETE CASCADE, which needs foreign_keys on.
        tx.execute("DELETE FROM sandbox_metadata WHERE sandbox_id = ?1", [id])
            .op("delete sandbox metadata")?;
        let n = tx
            .execute("DELETE FROM sandboxes WHERE sandbox_id = ?1", [id])
            .op("delete a sandbox")?;
        tx.commit().op("commit deleting a sandbox")?;
        Ok(n == 1)
    }

    /// Every registered sandbox of every team, oldest first: what the server re-adopts or
    /// cleans up at startup.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`] or [`StoreError::Corrupt`] (one bad row fails the call).
    pub fn all_sandboxes(&self) -> Result<Vec<SandboxRecord>, StoreError> {
        let conn = self.conn();
        query_sandboxes(&conn, "ORDER BY s.started_at, s.sandbox_id", &[])
    }

    /// How many of the team's sandboxes are in `state`, or in any state for `None`
    /// (e.g. the optional `X-Total-Running` header).
    ///
    /// # Errors
    /// [`StoreError::Sqlite`] only.
    pub fn count_sandboxes(
        &self,
        team: &TeamId,
        state: Option<SandboxStatus>,
    ) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn()
            .query_row(
                "SELECT count(*) FROM sandboxes WHERE team_id = ?1 AND (?2 IS NULL OR state = ?2)",
                params![team.as_str(), state.map(SandboxStatus::as_str)],
                |r| r.get(0),
            )
            .op("count sandboxes")?;
        Ok(n.unsigned_abs())
    }

    /// Whether sandbox `id` is registered (cheaper than [`get_sandbox`](Self::get_sandbox)).
    ///
    /// # Errors
    /// [`StoreError::Sqlite`] only.
    pub fn sandbox_exists(&self, id: &str) -> Result<bool, StoreError> {
        self.conn()
            .query_row(
                "SELECT sandbox_id FROM sandboxes WHERE sandbox_id = ?1",
                [id],
                |_| Ok(()),
            )
            .optional()
            .op("look up a sandbox")
            .map(|o| o.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timestamp::parse_rfc3339;

    /// A running sandbox of `team` started at `started` (RFC 3339).
    fn record(team: &TeamId, id: &str, started: &str) -> SandboxRecord {
        let started_at = parse_rfc3339(started).unwrap();
        SandboxRecord {
            sandbox_id: id.to_owned(),
            team_id: team.clone(),
            template_id: "base".to_owned(),
            alias: None,
            started_at,
            end_at: started_at + chrono::Duration::seconds(300),
            status: SandboxStatus::Running,
            metadata: BTreeMap::new(),
            envd_access_token: Secret::new(format!("tok-{id}")),
            cpu_count: 2,
            memory_mb: 512,
            disk_mb: 1024,
            idempotency_key: None,
            auto_pause: false,
            auto_pause_memory: true,
        }
    }

    #[test]
    fn insert_get_update_delete_round_trip() {
        let s = Store::open_in_memory().unwrap();
        let team = s.ensure_team("default").unwrap();
        let mut rec = record(&team, "sbx1", "2026-01-01T00:00:00.123456Z");
        rec.alias = Some("python".into());
        rec.metadata.insert("user".into(), "a b".into());
        rec.metadata.insert("app".into(), "x/y".into());
        rec.idempotency_key = Some("idem".into());
        rec.cpu_count = u32::MAX;
        rec.auto_pause = true;
        s.insert_sandbox(&rec).unwrap();
        assert_eq!(s.get_sandbox("sbx1").unwrap(), Some(rec.clone()));
        assert!(s.sandbox_exists("sbx1").unwrap());
        assert_eq!(s.get_sandbox("nope").unwrap(), None);

        assert!(s.set_sandbox_state("sbx1", SandboxStatus::Paused).unwrap());
        let end = parse_rfc3339("2026-01-02T00:00:00Z").unwrap();
        assert!(s.set_sandbox_end("sbx1", end).unwrap());
        let got = s.get_sandbox("sbx1").unwrap().unwrap();
        assert_eq!(got.status, SandboxStatus::Paused);
        assert_eq!(got.end_at, end);
        assert!(!s.set_sandbox_state("nope", SandboxStatus::Running).unwrap());
        assert!(!s.set_sandbox_end("nope", end).unwrap());

        assert_eq!(s.all_sandboxes().unwrap().len(), 1);
        assert_eq!(s.count_sandboxes(&team, None).unwrap(), 1);
        assert_eq!(
            s.count_sandboxes(&team, Some(SandboxStatus::Paused))
                .unwrap(),
            1
        );
        assert_eq!(
            s.count_sandboxes(&team, Some(SandboxStatus::Running))
                .unwrap(),
            0
        );
        let other = s.ensure_team("other").unwrap();
        assert_eq!(s.count_sandboxes(&other, None).unwrap(), 0);
        assert!(s.delete_sandbox("sbx1").unwrap());
        assert!(!s.delete_sandbox("sbx1").unwrap());
        assert_eq!(s.get_sandbox("sbx1").unwrap(), None);
        let left: i64 = s
            .conn()
            .query_row("SELECT count(*) FROM sandbox_metadata", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0);
    }

    #[test]
    fn duplicate_ids_and_idempotency_keys_conflict() {
        let s = Store::open_in_memory().unwrap();
        let t1 = s.ensure_team("one").unwrap();
        let t2 = s.ensure_team("two").unwrap();
        let mut a = record(&t1, "a", "2026-01-01T00:00:00Z");
        a.idempotency_key = Some("k".into());
        s.insert_sandbox(&a).unwrap();

        let err = s.insert_sandbox(&record(&t1, "a", "2026-01-01T00:00:00Z"));
        assert!(matches!(
            err,
            Err(StoreError::Conflict {
                what: ConflictKind::SandboxId
            })
        ));
        let mut b = record(&t1, "b", "2026-01-01T00:00:00Z");
        b.idempotency_key = Some("k".into());
        b.metadata.insert("m".into(), "v".into());
        let err = s.insert_sandbox(&b);
        assert!(matches!(
            err,
            Err(StoreError::Conflict {
                what: ConflictKind::IdempotencyKey
            })
        ));
        assert_eq!(s.get_sandbox("b").unwrap(), None, "nothing half-written");
        assert_eq!(s.find_by_idempotency_key(&t1, "k").unwrap(), Some(a));
        assert_eq!(s.find_by_idempotency_key(&t2, "k").unwrap(), None);

        // Another team may use the same key; sandboxes without a key never collide.
        b.team_id = t2.clone();
        s.insert_sandbox(&b).unwrap();
        s.insert_sandbox(&record(&t1, "c", "2026-01-01T00:00:00Z"))
            .unwrap();
        s.insert_sandbox(&record(&t1, "d", "2026-01-01T00:00:00Z"))
            .unwrap();

        // Deleting frees the key.
        assert!(s.delete_sandbox("a").unwrap());
        let mut e = record(&t1, "e", "2026-01-01T00:00:00Z");
        e.idempotency_key = Some("k".into());
        s.insert_sandbox(&e).unwrap();
    }

    #[test]
    fn unknown_team_is_refused() {
        let s = Store::open_in_memory().unwrap();
        let err = s
            .insert_sandbox(&record(&TeamId::new("ghost"), "a", "2026-01-01T00:00:00Z"))
            .unwrap_err();
        assert!(matches!(err, StoreError::UnknownTeam { .. }), "{err:?}");
    }

    #[test]
    fn corrupt_rows_are_reported_not_panicked_on() {
        let s = Store::open_in_memory().unwrap();
        let team = s.ensure_team("default").unwrap();
        s.insert_sandbox(&record(&team, "a", "2026-01-01T00:00:00Z"))
            .unwrap();
        s.conn()
            .execute("UPDATE sandboxes SET state = 'exploded'", [])
            .unwrap();
        let err = s.get_sandbox("a").unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        s.conn()
            .execute("UPDATE sandboxes SET state = 'running', cpu_count = -1", [])
            .unwrap();
        assert!(matches!(s.all_sandboxes(), Err(StoreError::Corrupt { .. })));
    }

    #[test]
    fn debug_hides_the_envd_token() {
        let s = format!(
            "{:?}",
            record(&TeamId::new("t"), "a", "2026-01-01T00:00:00Z")
        );
        assert!(!s.contains("tok-a"), "{s}");
    }

    #[test]
    fn status_strings() {
        for st in [SandboxStatus::Running, SandboxStatus::Paused] {
            assert_eq!(SandboxStatus::parse(st.as_str()), Some(st));
        }
        assert_eq!(SandboxStatus::parse("Running"), None);
    }
}
