//! Teams and API keys: creation, authentication, listing, revocation.
//!
//! A key's secret is `e2b_` followed by 40 random lowercase hex digits (160 bits), the format
//! E2B's own keys have and the one older E2B SDKs check on the client before sending anything.
//! Keys made before this format (`bk_` + 40 `[a-z0-9]`) keep working: authentication looks the
//! secret's SHA-256 up whatever its form. Only that hash is stored, plus a short display prefix
//! (the first 12 characters, e.g. `e2b_` and the next 8) so people can tell keys apart.

use rand::Rng;
use rusqlite::{OptionalExtension, Row, params};
use sha2::{Digest, Sha256};

use crate::error::SqliteOp;
use crate::timestamp::{from_micros, now, to_micros};
use crate::{Secret, Store, StoreError, Timestamp};

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const HEX: &[u8] = b"0123456789abcdef";
/// Prefix of every new API key secret (E2B's format: `e2b_` + 40 hex digits).
pub const SECRET_PREFIX: &str = "e2b_";
/// Prefix of the keys made before E2B's format was adopted; they still authenticate.
const LEGACY_SECRET_PREFIX: &str = "bk_";
const SECRET_RANDOM_LEN: usize = 40;
const DISPLAY_PREFIX_LEN: usize = SECRET_PREFIX.len() + 8;
/// `last_used_at` is rewritten at most this often per key, so authentication is a read in
/// the common case.
const LAST_USED_GRANULARITY_MICROS: i64 = 60_000_000;

/// A team's id (a random UUID string, as the E2B API shows team ids).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TeamId(String);

impl TeamId {
    /// Wraps an id read from elsewhere (e.g. a request). It is not checked for existence.
    pub fn new(id: impl Into<String>) -> TeamId {
        TeamId(id.into())
    }

    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TeamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What is known about an API key; never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyInfo {
    /// Stable id (`key_` + 12 `[a-z0-9]`), used to revoke it.
    pub id: String,
    /// The team the key acts for.
    pub team_id: TeamId,
    /// That team's name.
    pub team_name: String,
    /// A human label.
    pub name: String,
    /// The first characters of the secret (`e2b_` + 8), safe to show.
    pub prefix: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last authenticated a request, to within a minute; `None` if never.
    pub last_used_at: Option<Timestamp>,
    /// When it was revoked; a revoked key never authenticates again.
    pub revoked_at: Option<Timestamp>,
}

/// A key just created: the only time its secret is available.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    /// The stored description.
    pub info: ApiKeyInfo,
    /// The secret to hand to the user; the store keeps only its hash.
    pub secret: Secret,
}

fn random_string(len: usize) -> String {
    random_from(ALPHABET, len)
}

fn random_from(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
        .collect()
}

fn random_uuid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Whether `secret` has the shape of a key this store makes (`e2b_` + 40) or made before
/// (`bk_` + 40), so junk never reaches SQLite.
fn plausible_secret(secret: &str) -> bool {
    [SECRET_PREFIX, LEGACY_SECRET_PREFIX]
        .iter()
        .any(|p| secret.len() == p.len() + SECRET_RANDOM_LEN && secret.starts_with(p))
}

fn sha256(secret: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(Sha256::digest(secret.as_bytes()).as_slice());
    out
}

/// Equality whose running time does not depend on where the inputs differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// The columns [`key_from_row`] reads, and the join they come from.
const KEY_COLUMNS: &str = "k.id, k.team_id, t.name, k.name, k.prefix, k.created_at, \
     k.last_used_at, k.revoked_at";
const KEY_FROM: &str = "FROM api_keys k JOIN teams t ON t.id = k.team_id";

/// One `api_keys` row as SQLite returns it, before its timestamps are checked.
struct RawKey {
    id: String,
    team_id: String,
    team_name: String,
    name: String,
    prefix: String,
    created_at: i64,
    last_used_at: Option<i64>,
    revoked_at: Option<i64>,
}

fn key_from_row(row: &Row<'_>) -> rusqlite::Result<RawKey> {
    Ok(RawKey {
        id: row.get(0)?,
        team_id: row.get(1)?,
        team_name: row.get(2)?,
        name: row.get(3)?,
        prefix: row.get(4)?,
        created_at: row.get(5)?,
        last_used_at: row.get(6)?,
        revoked_at: row.get(7)?,
    })
}

impl RawKey {
    fn decode(self) -> Result<ApiKeyInfo, StoreError> {
        let time = |m: i64| {
            from_micros(m).ok_or_else(|| StoreError::Corrupt {
                table: "api_keys",
                key: self.id.clone(),
                reason: format!("timestamp {m} out of range"),
            })
        };
        Ok(ApiKeyInfo {
            created_at: time(self.created_at)?,
            last_used_at: self.last_used_at.map(time).transpose()?,
            revoked_at: self.revoked_at.map(time).transpose()?,
            team_id: TeamId(self.team_id),
            team_name: self.team_name,
            name: self.name,
            prefix: self.prefix,
            id: self.id,
        })
    }
}

impl Store {
    /// The id of the team called `name`, creating it first if there is none. Idempotent:
    /// concurrent calls with one name return one id.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`] only.
    pub fn ensure_team(&self, name: &str) -> Result<TeamId, StoreError> {
        let conn = self.conn();
        let find = || {
            conn.query_row("SELECT id FROM teams WHERE name = ?1", [name], |r| r.get(0))
                .optional()
                .op("look up a team")
        };
        // Read first: the common case (the team exists) then takes no write lock.
        if let Some(id) = find()? {
            return Ok(TeamId(id));
        }
        conn.execute(
            "INSERT INTO teams (id, name, created_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (name) DO NOTHING",
            params![random_uuid(), name, to_micros(&now())],
        )
        .op("create a team")?;
        // Another process may have created it meanwhile; either way the row exists now.
        find()?.map(TeamId).ok_or_else(|| StoreError::Corrupt {
            table: "teams",
            key: name.to_owned(),
            reason: "missing right after insertion".into(),
        })
    }

    /// The name of team `team`, or `None` if it does not exist.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`] only.
    pub fn team_name(&self, team: &TeamId) -> Result<Option<String>, StoreError> {
        self.conn()
            .query_row("SELECT name FROM teams WHERE id = ?1", [&team.0], |r| {
                r.get(0)
            })
            .optional()
            .op("look up a team")
    }

    /// Creates a key for `team` labelled `name` and returns its secret, which is not stored
    /// and cannot be shown again.
    ///
    /// # Errors
    /// [`StoreError::UnknownTeam`] if the team does not exist.
    pub fn create_api_key(&self, team: &TeamId, name: &str) -> Result<NewApiKey, StoreError> {
        let secret = format!("{SECRET_PREFIX}{}", random_from(HEX, SECRET_RANDOM_LEN));
        let id = format!("key_{}", random_string(12));
        let prefix = secret[..DISPLAY_PREFIX_LEN].to_owned();
        let created_at = now();
        let conn = self.conn();
        let team_name: Option<String> = conn
            .query_row("SELECT name FROM teams WHERE id = ?1", [&team.0], |r| {
                r.get(0)
            })
            .optional()
            .op("look up a team")?;
        let Some(team_name) = team_name else {
            return Err(StoreError::UnknownTeam { team: team.clone() });
        };
        conn.execute(
            "INSERT INTO api_keys (id, team_id, name, prefix, secret_sha256, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                id,
                team.0,
                name,
                prefix,
                &sha256(&secret)[..],
                to_micros(&created_at)
            ],
        )
        .op("insert an API key")?;
        Ok(NewApiKey {
            info: ApiKeyInfo {
                id,
                team_id: team.clone(),
                team_name,
                name: name.to_owned(),
                prefix,
                created_at,
                last_used_at: None,
                revoked_at: None,
            },
            secret: Secret::new(secret),
        })
    }

    /// The key whose secret is `secret`, or `None` if there is none or it is revoked. Any
    /// string is accepted (no panic on junk). Records the use in `last_used_at`, writing at
    /// most once a minute per key.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`] (e.g. the database is locked for longer than the busy timeout).
    pub fn authenticate(&self, secret: &str) -> Result<Option<ApiKeyInfo>, StoreError> {
        // Cheap rejection of anything that cannot be a key, before touching SQLite.
        if !plausible_secret(secret) {
            return Ok(None);
        }
        let hash = sha256(secret);
        let conn = self.conn();
        // The lookup is by hash, so its timing tells nothing about the secret; the final
        // comparison is constant-time anyway.
        let found = conn
            .query_row(
                &format!(
                    "SELECT {KEY_COLUMNS}, k.secret_sha256 {KEY_FROM} WHERE k.secret_sha256 = ?1"
                ),
                [&hash[..]],
                |row| Ok((key_from_row(row)?, row.get::<_, Vec<u8>>(8)?)),
            )
            .optional()
            .op("look up an API key")?;
        let Some((info, stored)) = found else {
            return Ok(None);
        };
        let mut info = info.decode()?;
        if !constant_time_eq(&stored, &hash) || info.revoked_at.is_some() {
            return Ok(None);
        }
        let t = now();
        let updated = conn
            .execute(
                "UPDATE api_keys SET last_used_at = ?1 WHERE id = ?2 \
                 AND (last_used_at IS NULL OR last_used_at <= ?1 - ?3)",
                params![to_micros(&t), info.id, LAST_USED_GRANULARITY_MICROS],
            )
            .op("record API key use")?;
        if updated == 1 {
            info.last_used_at = Some(t);
        }
        Ok(Some(info))
    }

    /// Every key, revoked ones included, oldest first.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`], or [`StoreError::Corrupt`] for an unreadable row.
    pub fn list_api_keys(&self) -> Result<Vec<ApiKeyInfo>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {KEY_COLUMNS} {KEY_FROM} ORDER BY k.created_at, k.id"
            ))
            .op("list API keys")?;
        let rows = stmt.query_map([], key_from_row).op("list API keys")?;
        let mut keys = Vec::new();
        for row in rows {
            keys.push(row.op("list API keys")?.decode()?);
        }
        Ok(keys)
    }

    /// Revokes the key identified by `id_or_prefix`: its full id, its display prefix
    /// (`e2b_xxxxxxxx`, or `bk_xxxxxxxx` for older keys), or an unambiguous beginning of its id (at least `key_` + 4).
    /// Returns `false` when nothing matches; revoking a revoked key returns `true` and keeps
    /// the first revocation time.
    ///
    /// # Errors
    /// [`StoreError::Ambiguous`] if it matches several keys (nothing is revoked).
    pub fn revoke_api_key(&self, id_or_prefix: &str) -> Result<bool, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT id FROM api_keys WHERE id = ?1 OR prefix = ?1 \
                 OR (length(?1) >= 8 AND substr(id, 1, length(?1)) = ?1)",
            )
            .op("find an API key")?;
        let ids = stmt
            .query_map([id_or_prefix], |r| r.get::<_, String>(0))
            .op("find an API key")?
            .collect::<Result<Vec<_>, _>>()
            .op("find an API key")?;
        // An exact id wins over prefixes that happen to match others.
        let id = match ids
            .iter()
            .find(|id| *id == id_or_prefix)
            .or(match &ids[..] {
                [one] => Some(one),
                _ => None,
            }) {
            Some(id) => id,
            None if ids.is_empty() => return Ok(false),
            None => {
                return Err(StoreError::Ambiguous {
                    prefix: id_or_prefix.to_owned(),
                    matches: ids.len(),
                });
            }
        };
        conn.execute(
            "UPDATE api_keys SET revoked_at = ?1 WHERE id = ?2 AND revoked_at IS NULL",
            params![to_micros(&now()), id],
        )
        .op("revoke an API key")?;
        Ok(true)
    }

    /// Whether any key that is not revoked exists: `false` on a first start (and after
    /// every key was revoked), when the server creates one.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`] only.
    pub fn has_api_keys(&self) -> Result<bool, StoreError> {
        self.conn()
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM api_keys WHERE revoked_at IS NULL)",
                [],
                |r| r.get(0),
            )
            .op("count API keys")
    }

    /// The number of teams.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`] only.
    pub fn team_count(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn()
            .query_row("SELECT count(*) FROM teams", [], |r| r.get(0))
            .op("count teams")?;
        Ok(n.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ensure_team_is_idempotent_by_name() {
        let s = Store::open_in_memory().unwrap();
        let a = s.ensure_team("default").unwrap();
        assert_eq!(s.ensure_team("default").unwrap(), a);
        assert_ne!(s.ensure_team("other").unwrap(), a);
        assert_eq!(s.team_count().unwrap(), 2);
        assert_eq!(s.team_name(&a).unwrap().as_deref(), Some("default"));
        assert_eq!(a.as_str().len(), 36);
    }

    #[test]
    fn created_key_authenticates_and_only_its_hash_is_stored() {
        let s = Store::open_in_memory().unwrap();
        assert!(!s.has_api_keys().unwrap());
        let team = s.ensure_team("default").unwrap();
        let key = s.create_api_key(&team, "ci").unwrap();
        let secret = key.secret.expose();
        // E2B's format, which SDK 2.45 checks on the client: `e2b_` + 40 lowercase hex.
        assert_eq!(secret.len(), 44, "{secret}");
        assert!(secret.starts_with("e2b_"));
        assert!(
            secret[4..]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{secret}"
        );
        assert!(secret.starts_with(&key.info.prefix));
        assert!(s.has_api_keys().unwrap());

        let info = s.authenticate(secret).unwrap().unwrap();
        assert_eq!(info.id, key.info.id);
        assert_eq!(info.team_id, team);
        assert_eq!(info.team_name, "default");
        assert!(info.last_used_at.is_some());

        let stored: i64 = s
            .conn()
            .query_row(
                "SELECT count(*) FROM api_keys WHERE instr(secret_sha256, ?1) OR name = ?1",
                [secret],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(stored, 0, "the secret itself must not be stored");
    }

    #[test]
    fn keys_in_the_earlier_bk_format_still_authenticate() {
        let s = Store::open_in_memory().unwrap();
        let team = s.ensure_team("default").unwrap();
        let legacy = format!("bk_{}", random_string(SECRET_RANDOM_LEN));
        s.conn()
            .execute(
                "INSERT INTO api_keys (id, team_id, name, prefix, secret_sha256, created_at) \
                 VALUES ('key_legacy00000', ?1, 'old', ?2, ?3, 0)",
                params![team.0, &legacy[..11], &sha256(&legacy)[..]],
            )
            .unwrap();
        let info = s.authenticate(&legacy).unwrap().unwrap();
        assert_eq!(info.id, "key_legacy00000");
        assert!(s.revoke_api_key(&legacy[..11]).unwrap());
        assert_eq!(s.authenticate(&legacy).unwrap(), None);
    }

    #[test]
    fn wrong_or_junk_secrets_do_not_authenticate() {
        let s = Store::open_in_memory().unwrap();
        let team = s.ensure_team("default").unwrap();
        let key = s.create_api_key(&team, "k").unwrap();
        let mut wrong = key.secret.expose().to_owned();
        wrong.pop();
        wrong.push(if key.secret.expose().ends_with('a') {
            'b'
        } else {
            'a'
        });
        for junk in [
            "",
            "bk_",
            "e2b_",
            "x",
            &wrong,
            "bk_\u{1F600}\u{0}",
            &"a".repeat(10_000),
        ] {
            assert_eq!(s.authenticate(junk).unwrap(), None, "{junk:?}");
        }
    }

    #[test]
    fn revoked_keys_fail_authentication() {
        let s = Store::open_in_memory().unwrap();
        let team = s.ensure_team("default").unwrap();
        let a = s.create_api_key(&team, "a").unwrap();
        let b = s.create_api_key(&team, "b").unwrap();
        assert!(s.revoke_api_key(&a.info.id).unwrap());
        assert_eq!(s.authenticate(a.secret.expose()).unwrap(), None);
        assert!(s.authenticate(b.secret.expose()).unwrap().is_some());
        // Idempotent, and the first revocation time is kept.
        let first = s.list_api_keys().unwrap()[0].revoked_at;
        assert!(first.is_some());
        assert!(s.revoke_api_key(&a.info.id).unwrap());
        assert_eq!(s.list_api_keys().unwrap()[0].revoked_at, first);
        // By display prefix.
        assert!(s.revoke_api_key(&b.info.prefix).unwrap());
        assert_eq!(s.authenticate(b.secret.expose()).unwrap(), None);
        assert!(!s.has_api_keys().unwrap());
    }

    #[test]
    fn revoke_unknown_or_ambiguous() {
        let s = Store::open_in_memory().unwrap();
        let team = s.ensure_team("default").unwrap();
        assert!(!s.revoke_api_key("key_nope").unwrap());
        assert!(!s.revoke_api_key("").unwrap());
        assert!(!s.revoke_api_key("%").unwrap());
        let a = s.create_api_key(&team, "a").unwrap();
        // Short prefixes never match.
        assert!(!s.revoke_api_key("key_").unwrap());
        // A unique id prefix of 8+ characters does.
        assert!(s.revoke_api_key(&a.info.id[..9]).unwrap());
        // Force two keys to share a prefix.
        s.conn()
            .execute_batch(
                "INSERT INTO api_keys VALUES ('key_same0001', (SELECT id FROM teams), 'x', 'p1', x'01', 0, NULL, NULL);
                 INSERT INTO api_keys VALUES ('key_same0002', (SELECT id FROM teams), 'y', 'p2', x'02', 0, NULL, NULL);",
            )
            .unwrap();
        let err = s.revoke_api_key("key_same").unwrap_err();
        assert!(
            matches!(err, StoreError::Ambiguous { matches: 2, .. }),
            "{err:?}"
        );
        assert!(s.revoke_api_key("key_same0001").unwrap());
    }

    #[test]
    fn list_shows_every_key_oldest_first_without_secrets() {
        let s = Store::open_in_memory().unwrap();
        let t1 = s.ensure_team("one").unwrap();
        let t2 = s.ensure_team("two").unwrap();
        let a = s.create_api_key(&t1, "a").unwrap();
        let b = s.create_api_key(&t2, "b").unwrap();
        let keys = s.list_api_keys().unwrap();
        assert_eq!(keys.len(), 2);
        assert!(keys.contains(&a.info) && keys.contains(&b.info));
        assert!(!format!("{keys:?}").contains(a.secret.expose()));
        assert!(!format!("{a:?}").contains(a.secret.expose()));
    }

    #[test]
    fn last_used_is_written_at_most_once_a_minute() {
        let s = Store::open_in_memory().unwrap();
        let team = s.ensure_team("default").unwrap();
        let key = s.create_api_key(&team, "k").unwrap();
        let first = s.authenticate(key.secret.expose()).unwrap().unwrap();
        let second = s.authenticate(key.secret.expose()).unwrap().unwrap();
        assert_eq!(first.last_used_at, second.last_used_at);
        assert_eq!(s.conn().changes(), 0, "the second use must not write");
    }

    #[test]
    fn key_for_unknown_team_is_refused() {
        let s = Store::open_in_memory().unwrap();
        let err = s.create_api_key(&TeamId::new("nope"), "k").unwrap_err();
        assert!(matches!(err, StoreError::UnknownTeam { .. }), "{err:?}");
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
