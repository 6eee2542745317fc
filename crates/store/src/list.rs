//! Listing a team's sandboxes: filters, order and keyset pagination with opaque cursors.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rusqlite::ToSql;
use rusqlite::types::Value;

use crate::sandbox::query_sandboxes;
use crate::timestamp::to_micros;
use crate::{SandboxRecord, SandboxStatus, Store, StoreError, TeamId, Timestamp};

/// The largest page [`Store::list_sandboxes`] returns, and the default.
pub const MAX_PAGE: u32 = 100;

/// Sort order by `(started_at, sandbox_id)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Oldest first.
    Asc,
    /// Newest first (the E2B default).
    #[default]
    Desc,
}

impl Order {
    fn as_str(self) -> &'static str {
        match self {
            Order::Asc => "asc",
            Order::Desc => "desc",
        }
    }
}

/// A [`Store::list_sandboxes`] request. Build it with [`SandboxQuery::new`] and set fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxQuery {
    /// Only this team's sandboxes (required).
    pub team: TeamId,
    /// Only these states; empty means running and paused.
    pub states: BTreeSet<SandboxStatus>,
    /// Only sandboxes whose template id or alias equals this.
    pub template: Option<String>,
    /// Only sandboxes whose metadata contains every one of these pairs.
    pub metadata: BTreeMap<String, String>,
    /// Only sandboxes started strictly after this instant.
    pub started_after: Option<Timestamp>,
    /// Sort order.
    pub order: Order,
    /// Page size, 1..=[`MAX_PAGE`].
    pub limit: u32,
    /// The `next_token` of the previous page, with the same filters and order.
    pub cursor: Option<String>,
}

impl SandboxQuery {
    /// All of `team`'s sandboxes, newest first, [`MAX_PAGE`] per page.
    pub fn new(team: TeamId) -> SandboxQuery {
        SandboxQuery {
            team,
            states: BTreeSet::new(),
            template: None,
            metadata: BTreeMap::new(),
            started_after: None,
            order: Order::Desc,
            limit: MAX_PAGE,
            cursor: None,
        }
    }
}

/// One page of sandboxes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxPage {
    /// At most `limit` sandboxes in the requested order.
    pub items: Vec<SandboxRecord>,
    /// Present iff more sandboxes may follow: pass it as the next query's `cursor`
    /// (the `X-Next-Token` header). Opaque base64url text.
    pub next_token: Option<String>,
}

/// Cursor text: base64url("v1|<order>|<started_at micros>|<sandbox_id>"). The order is in it
/// so that a token cannot be replayed against the opposite order and skip rows.
fn encode_cursor(order: Order, last: &SandboxRecord) -> String {
    let raw = format!(
        "v1|{}|{}|{}",
        order.as_str(),
        to_micros(&last.started_at),
        last.sandbox_id
    );
    URL_SAFE_NO_PAD.encode(raw)
}

fn decode_cursor(order: Order, token: &str) -> Result<(i64, String), StoreError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|_| StoreError::InvalidCursor)?;
    let text = String::from_utf8(bytes).map_err(|_| StoreError::InvalidCursor)?;
    let mut parts = text.splitn(4, '|');
    let (Some("v1"), Some(o), Some(micros), Some(id)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(StoreError::InvalidCursor);
    };
    if o != order.as_str() || id.is_empty() {
        return Err(StoreError::InvalidCursor);
    }
    let micros = micros.parse().map_err(|_| StoreError::InvalidCursor)?;
    Ok((micros, id.to_owned()))
}

impl Store {
    /// One page of the team's sandboxes matching every filter in `q`, ordered by
    /// `(started_at, sandbox_id)`. Pages are keyset-based: rows inserted or deleted between
    /// calls never make a later page repeat or skip a row that existed throughout.
    ///
    /// # Errors
    /// [`StoreError::InvalidLimit`] for a limit outside 1..=100; [`StoreError::InvalidCursor`]
    /// for a cursor this store did not produce for this order; otherwise
    /// [`StoreError::Sqlite`] or [`StoreError::Corrupt`].
    pub fn list_sandboxes(&self, q: &SandboxQuery) -> Result<SandboxPage, StoreError> {
        if q.limit == 0 || q.limit > MAX_PAGE {
            return Err(StoreError::InvalidLimit { limit: q.limit });
        }
        let cursor = q
            .cursor
            .as_deref()
            .map(|c| decode_cursor(q.order, c))
            .transpose()?;

        let mut args: Vec<Value> = vec![Value::Text(q.team.as_str().to_owned())];
        let mut arg = |v: Value| {
            args.push(v);
            format!("?{}", args.len())
        };
        let mut sql = String::from("WHERE s.team_id = ?1");
        if !q.states.is_empty() {
            let marks: Vec<String> = q
                .states
                .iter()
                .map(|s| arg(Value::Text(s.as_str().to_owned())))
                .collect();
            sql += &format!(" AND s.state IN ({})", marks.join(", "));
        }
        if let Some(t) = &q.template {
            let m = arg(Value::Text(t.clone()));
            sql += &format!(" AND (s.template_id = {m} OR s.alias = {m})");
        }
        for (k, v) in &q.metadata {
            let (mk, mv) = (arg(Value::Text(k.clone())), arg(Value::Text(v.clone())));
            sql += &format!(
                " AND EXISTS (SELECT 1 FROM sandbox_metadata m WHERE m.sandbox_id = s.sandbox_id \
                 AND m.key = {mk} AND m.value = {mv})"
            );
        }
        if let Some(t) = &q.started_after {
            sql += &format!(" AND s.started_at > {}", arg(Value::Integer(to_micros(t))));
        }
        let (cmp, dir) = match q.order {
            Order::Asc => (">", "ASC"),
            Order::Desc => ("<", "DESC"),
        };
        if let Some((micros, id)) = cursor {
            let (mt, mi) = (arg(Value::Integer(micros)), arg(Value::Text(id)));
            sql += &format!(
                " AND (s.started_at {cmp} {mt} OR (s.started_at = {mt} AND s.sandbox_id {cmp} {mi}))"
            );
        }
        // One extra row tells whether another page follows.
        let limit = arg(Value::Integer(i64::from(q.limit) + 1));
        sql += &format!(" ORDER BY s.started_at {dir}, s.sandbox_id {dir} LIMIT {limit}");

        let refs: Vec<&dyn ToSql> = args.iter().map(|v| v as &dyn ToSql).collect();
        let mut items = query_sandboxes(&self.conn(), &sql, &refs)?;
        let more = items.len() > q.limit as usize;
        items.truncate(q.limit as usize);
        let next_token = match items.last() {
            Some(last) if more => Some(encode_cursor(q.order, last)),
            _ => None,
        };
        Ok(SandboxPage { items, next_token })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::tests::record;
    use crate::timestamp::parse_rfc3339;

    fn ids(page: &SandboxPage) -> Vec<&str> {
        page.items.iter().map(|r| r.sandbox_id.as_str()).collect()
    }

    /// Walks every page of `q` and returns all ids in order.
    fn walk(s: &Store, mut q: SandboxQuery) -> Vec<String> {
        let mut all = Vec::new();
        loop {
            let page = s.list_sandboxes(&q).unwrap();
            assert!(page.items.len() <= q.limit as usize);
            all.extend(page.items.iter().map(|r| r.sandbox_id.clone()));
            match page.next_token {
                Some(t) => q.cursor = Some(t),
                None => return all,
            }
        }
    }

    #[test]
    fn pages_cover_everything_once_with_equal_timestamps() {
        let s = Store::open_in_memory().unwrap();
        let team = s.ensure_team("default").unwrap();
        let other = s.ensure_team("other").unwrap();
        // Seven sandboxes, five sharing one start time, inserted out of order.
        for (id, t) in [
            ("e", "2026-01-01T00:00:01Z"),
            ("b", "2026-01-01T00:00:01Z"),
            ("z", "2026-01-01T00:00:00Z"),
            ("d", "2026-01-01T00:00:01Z"),
            ("a", "2026-01-01T00:00:01Z"),
            ("c", "2026-01-01T00:00:01Z"),
            ("y", "2026-01-01T00:00:02Z"),
        ] {
            s.insert_sandbox(&record(&team, id, t)).unwrap();
        }
        s.insert_sandbox(&record(&other, "o", "2026-01-01T00:00:01Z"))
            .unwrap();

        for limit in 1..=8 {
            let mut q = SandboxQuery::new(team.clone());
            q.limit = limit;
            q.order = Order::Asc;
            assert_eq!(
                walk(&s, q.clone()),
                ["z", "a", "b", "c", "d", "e", "y"],
                "{limit}"
            );
            q.order = Order::Desc;
            assert_eq!(walk(&s, q), ["y", "e", "d", "c", "b", "a", "z"], "{limit}");
        }

        // The last page has no token; an exactly full page followed by nothing has none.
        let mut q = SandboxQuery::new(team.clone());
        q.limit = 7;
        let page = s.list_sandboxes(&q).unwrap();
        assert_eq!(page.items.len(), 7);
        assert_eq!(page.next_token, None);
    }

    #[test]
    fn pages_stay_consistent_when_rows_change_between_calls() {
        let s = Store::open_in_memory().unwrap();
        let team = s.ensure_team("default").unwrap();
        for id in ["a", "b", "c", "d"] {
            s.insert_sandbox(&record(&team, id, "2026-01-01T00:00:00Z"))
                .unwrap();
        }
        let mut q = SandboxQuery::new(team.clone());
        q.order = Order::Asc;
        q.limit = 2;
        let first = s.list_sandboxes(&q).unwrap();
        assert_eq!(ids(&first), ["a", "b"]);
        s.delete_sandbox("b").unwrap();
        s.insert_sandbox(&record(&team, "aa", "2026-01-01T00:00:00Z"))
            .unwrap();
        q.cursor = first.next_token;
        assert_eq!(ids(&s.list_sandboxes(&q).unwrap()), ["c", "d"]);
    }

    #[test]
    fn filters_combine() {
        let s = Store::open_in_memory().unwrap();
        let team = s.ensure_team("default").unwrap();
        let mut a = record(&team, "a", "2026-01-01T00:00:00Z");
        a.metadata = [("user", "a b"), ("app", "x/y")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into();
        let mut b = record(&team, "b", "2026-01-02T00:00:00Z");
        b.metadata = [("user", "a b")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into();
        b.status = SandboxStatus::Paused;
        b.template_id = "tpl_123".into();
        b.alias = Some("python".into());
        let mut c = record(&team, "c", "2026-01-03T00:00:00Z");
        c.metadata = [("user", "someone")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into();
        for r in [&a, &b, &c] {
            s.insert_sandbox(r).unwrap();
        }
        let list = |f: &dyn Fn(&mut SandboxQuery)| {
            let mut q = SandboxQuery::new(team.clone());
            q.order = Order::Asc;
            f(&mut q);
            ids(&s.list_sandboxes(&q).unwrap())
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(list(&|_| {}), ["a", "b", "c"]);
        assert_eq!(
            list(&|q| {
                q.metadata.insert("user".into(), "a b".into());
            }),
            ["a", "b"]
        );
        assert_eq!(
            list(&|q| {
                q.metadata.insert("user".into(), "a b".into());
                q.metadata.insert("app".into(), "x/y".into());
            }),
            ["a"]
        );
        assert_eq!(
            list(&|q| {
                q.metadata.insert("app".into(), "nope".into());
            }),
            Vec::<String>::new()
        );
        assert_eq!(
            list(&|q| {
                q.states.insert(SandboxStatus::Paused);
            }),
            ["b"]
        );
        assert_eq!(
            list(&|q| {
                q.states.insert(SandboxStatus::Running);
            }),
            ["a", "c"]
        );
        assert_eq!(
            list(&|q| {
                q.states.insert(SandboxStatus::Running);
                q.states.insert(SandboxStatus::Paused);
            }),
            ["a", "b", "c"]
        );
        assert_eq!(list(&|q| q.template = Some("python".into())), ["b"]);
        assert_eq!(list(&|q| q.template = Some("tpl_123".into())), ["b"]);
        assert_eq!(list(&|q| q.template = Some("base".into())), ["a", "c"]);
        let after = parse_rfc3339("2026-01-02T00:00:00Z").unwrap();
        assert_eq!(list(&|q| q.started_after = Some(after)), ["c"]);
    }

    /// Random registries and queries: every page walk equals filtering and sorting a plain
    /// vector (the model), for both orders and several page sizes.
    #[test]
    fn pagination_matches_a_model() {
        use rand::rngs::StdRng;
        use rand::{Rng, SeedableRng};

        let mut rng = StdRng::seed_from_u64(7);
        for round in 0..20 {
            let s = Store::open_in_memory().unwrap();
            let team = s.ensure_team("default").unwrap();
            let other = s.ensure_team("other").unwrap();
            let mut all = Vec::new();
            for i in 0..rng.random_range(0..40) {
                let owner = if rng.random_bool(0.2) { &other } else { &team };
                // Few distinct start times, so ties are common.
                let t = format!("2026-01-01T00:00:0{}Z", rng.random_range(0..4));
                let mut r = record(owner, &format!("s{:02}{}", rng.random_range(0..100), i), &t);
                if rng.random_bool(0.5) {
                    r.status = SandboxStatus::Paused;
                }
                if rng.random_bool(0.5) {
                    r.metadata
                        .insert("k".into(), format!("{}", rng.random_range(0..2)));
                }
                s.insert_sandbox(&r).unwrap();
                all.push(r);
            }
            let mut q = SandboxQuery::new(team.clone());
            q.limit = rng.random_range(1..6);
            q.order = if rng.random_bool(0.5) {
                Order::Asc
            } else {
                Order::Desc
            };
            if rng.random_bool(0.5) {
                q.states.insert(SandboxStatus::Paused);
            }
            if rng.random_bool(0.5) {
                q.metadata.insert("k".into(), "1".into());
            }
            if rng.random_bool(0.3) {
                q.started_after = Some(parse_rfc3339("2026-01-01T00:00:01Z").unwrap());
            }
            let mut want: Vec<&SandboxRecord> = all
                .iter()
                .filter(|r| r.team_id == team)
                .filter(|r| q.states.is_empty() || q.states.contains(&r.status))
                .filter(|r| q.metadata.iter().all(|(k, v)| r.metadata.get(k) == Some(v)))
                .filter(|r| q.started_after.is_none_or(|t| r.started_at > t))
                .collect();
            want.sort_by(|a, b| (a.started_at, &a.sandbox_id).cmp(&(b.started_at, &b.sandbox_id)));
            if q.order == Order::Desc {
                want.reverse();
            }
            let want: Vec<String> = want.iter().map(|r| r.sandbox_id.clone()).collect();
            assert_eq!(walk(&s, q.clone()), want, "round {round}: {q:?}");
        }
    }

    #[test]
    fn bad_cursors_and_limits_are_refused() {
        let s = Store::open_in_memory().unwrap();
        let team = s.ensure_team("default").unwrap();
        for id in ["a", "b", "c"] {
            s.insert_sandbox(&record(&team, id, "2026-01-01T00:00:00Z"))
                .unwrap();
        }
        let mut q = SandboxQuery::new(team.clone());
        q.limit = 1;
        let token = s.list_sandboxes(&q).unwrap().next_token.unwrap();

        let junk = [
            "",
            "!!!",
            "not base64 at all",
            &URL_SAFE_NO_PAD.encode("v2|desc|0|a"),
            &URL_SAFE_NO_PAD.encode("v1|desc|zero|a"),
            &URL_SAFE_NO_PAD.encode("v1|desc|0|"),
            &URL_SAFE_NO_PAD.encode("v1|desc"),
            &URL_SAFE_NO_PAD.encode([0xff, 0xfe]),
        ];
        for cursor in junk {
            let mut q = q.clone();
            q.cursor = Some(cursor.to_owned());
            assert!(
                matches!(s.list_sandboxes(&q), Err(StoreError::InvalidCursor)),
                "{cursor:?}"
            );
        }
        // A token from a descending walk does not work for an ascending one.
        let mut asc = q.clone();
        asc.order = Order::Asc;
        asc.cursor = Some(token.clone());
        assert!(matches!(
            s.list_sandboxes(&asc),
            Err(StoreError::InvalidCursor)
        ));
        // A token naming a row that no longer exists still works (keyset).
        s.delete_sandbox("c").unwrap();
        q.cursor = Some(token);
        assert_eq!(ids(&s.list_sandboxes(&q).unwrap()), ["b"]);

        for limit in [0, 101, u32::MAX] {
            let mut q = SandboxQuery::new(team.clone());
            q.limit = limit;
            assert!(matches!(
                s.list_sandboxes(&q),
                Err(StoreError::InvalidLimit { .. })
            ));
        }
    }
}
