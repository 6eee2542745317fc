//! Filtering and cursor pagination of the sandbox list (`GET /v2/sandboxes`): the one list
//! engine. It works on rows, so every backend of the API pages the same way.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bulkhead_store::{SandboxRecord, SandboxStatus};

use super::ManagerError;
use crate::clock::{self, Timestamp};

/// Largest and default page size.
pub const MAX_PAGE: usize = 100;

/// A list request after parsing.
#[derive(Debug, Clone)]
pub struct ListQuery {
    /// All pairs must match.
    pub metadata: BTreeMap<String, String>,
    /// Allowed states; empty = all.
    pub states: Vec<SandboxStatus>,
    /// Template id or alias.
    pub template: Option<String>,
    /// Only sandboxes started strictly after this instant.
    pub started_after: Option<Timestamp>,
    /// Oldest first instead of newest first.
    pub ascending: bool,
    /// Page size, clamped to 1..=[`MAX_PAGE`].
    pub limit: usize,
    /// The cursor of the previous page (`X-Next-Token`), with the same filters and order.
    pub next_token: Option<String>,
}

impl Default for ListQuery {
    /// Everything, newest first, one full page.
    fn default() -> Self {
        Self {
            metadata: BTreeMap::new(),
            states: Vec::new(),
            template: None,
            started_after: None,
            ascending: false,
            limit: MAX_PAGE,
            next_token: None,
        }
    }
}

/// One page.
#[derive(Debug)]
pub struct ListPage {
    /// The sandboxes, in the requested order.
    pub items: Vec<SandboxRecord>,
    /// Cursor for the next page, present iff more rows follow.
    pub next_token: Option<String>,
}

/// The sort key, and what a cursor holds: `(started_at in ns, sandbox_id)`.
fn cursor_key(r: &SandboxRecord) -> (i128, &str) {
    (clock::nanos(r.started_at), r.sandbox_id.as_str())
}

/// Cursor text: base64url (unpadded) of `"<started_at ns>__<sandbox_id>"`.
fn encode(key: (i128, &str)) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}__{}", key.0, key.1))
}

fn decode(token: &str) -> Result<(i128, String), ManagerError> {
    let bad = || ManagerError::InvalidCursor;
    let raw = URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let (ts, id) = text.split_once("__").ok_or_else(bad)?;
    Ok((ts.parse().map_err(|_| bad())?, id.to_string()))
}

impl ListQuery {
    /// The page of `rows` (one team's sandboxes, in any order) this query asks for. Rows
    /// are ordered by `(started_at, sandbox_id)`; a cursor names the last row of its page,
    /// so rows added or removed between calls never make a later page repeat or skip a row
    /// that existed throughout.
    ///
    /// # Errors
    /// [`ManagerError::InvalidCursor`] for a `next_token` this engine did not produce.
    pub fn page(&self, mut rows: Vec<SandboxRecord>) -> Result<ListPage, ManagerError> {
        let after = self.next_token.as_deref().map(decode).transpose()?;
        rows.retain(|r| {
            self.metadata
                .iter()
                .all(|(k, v)| r.metadata.get(k) == Some(v))
                && (self.states.is_empty() || self.states.contains(&r.status))
                && self
                    .template
                    .as_ref()
                    .is_none_or(|t| &r.template_id == t || r.alias.as_ref() == Some(t))
                && self.started_after.is_none_or(|s| r.started_at > s)
        });
        rows.sort_by(|a, b| cursor_key(a).cmp(&cursor_key(b)));
        if !self.ascending {
            rows.reverse();
        }
        if let Some((ts, id)) = &after {
            let after = (*ts, id.as_str());
            rows.retain(|r| {
                if self.ascending {
                    cursor_key(r) > after
                } else {
                    cursor_key(r) < after
                }
            });
        }
        let limit = self.limit.clamp(1, MAX_PAGE);
        let next_token = (rows.len() > limit).then(|| encode(cursor_key(&rows[limit - 1])));
        rows.truncate(limit);
        Ok(ListPage {
            items: rows,
            next_token,
        })
    }
}

#[cfg(test)]
mod tests {
    use bulkhead_store::{Secret, TeamId};

    use super::*;

    fn row(id: &str, started: &str) -> SandboxRecord {
        let started_at = bulkhead_store::parse_rfc3339(started).unwrap();
        SandboxRecord {
            sandbox_id: id.into(),
            team_id: TeamId::new("t"),
            template_id: "base".into(),
            alias: None,
            started_at,
            end_at: started_at,
            status: SandboxStatus::Running,
            metadata: BTreeMap::new(),
            envd_access_token: Secret::new("tok"),
            cpu_count: 1,
            memory_mb: 0,
            disk_mb: 0,
            idempotency_key: None,
            auto_pause: false,
            auto_pause_memory: true,
        }
    }

    fn walk(rows: &[SandboxRecord], mut q: ListQuery) -> Vec<String> {
        let mut all = Vec::new();
        loop {
            let page = q.page(rows.to_vec()).unwrap();
            assert!(page.items.len() <= q.limit);
            all.extend(page.items.iter().map(|r| r.sandbox_id.clone()));
            match page.next_token {
                Some(t) => q.next_token = Some(t),
                None => return all,
            }
        }
    }

    #[test]
    fn pages_cover_everything_once_with_equal_start_times() {
        let rows: Vec<_> = [
            ("e", "2026-01-01T00:00:01Z"),
            ("b", "2026-01-01T00:00:01Z"),
            ("z", "2026-01-01T00:00:00Z"),
            ("d", "2026-01-01T00:00:01Z"),
            ("a", "2026-01-01T00:00:01Z"),
            ("y", "2026-01-01T00:00:02Z"),
        ]
        .iter()
        .map(|(id, t)| row(id, t))
        .collect();
        for limit in 1..=7 {
            let q = ListQuery {
                limit,
                ascending: true,
                ..Default::default()
            };
            assert_eq!(walk(&rows, q.clone()), ["z", "a", "b", "d", "e", "y"]);
            let q = ListQuery {
                ascending: false,
                ..q
            };
            assert_eq!(walk(&rows, q), ["y", "e", "d", "b", "a", "z"]);
        }
        // An exactly full last page has no token.
        let q = ListQuery {
            limit: 6,
            ..Default::default()
        };
        assert_eq!(q.page(rows).unwrap().next_token, None);
    }

    #[test]
    fn a_cursor_survives_rows_changing_between_pages() {
        let mut rows: Vec<_> = ["a", "b", "c", "d"]
            .iter()
            .map(|id| row(id, "2026-01-01T00:00:00Z"))
            .collect();
        let mut q = ListQuery {
            limit: 2,
            ascending: true,
            ..Default::default()
        };
        let first = q.page(rows.clone()).unwrap();
        rows.retain(|r| r.sandbox_id != "b");
        rows.push(row("aa", "2026-01-01T00:00:00Z"));
        q.next_token = first.next_token;
        let second = q.page(rows).unwrap();
        let ids: Vec<_> = second.items.iter().map(|r| r.sandbox_id.as_str()).collect();
        assert_eq!(ids, ["c", "d"]);
    }

    #[test]
    fn filters_combine() {
        let mut a = row("a", "2026-01-01T00:00:00Z");
        a.metadata.insert("user".into(), "a b".into());
        let mut b = row("b", "2026-01-02T00:00:00Z");
        b.status = SandboxStatus::Paused;
        b.alias = Some("python".into());
        b.metadata.insert("user".into(), "a b".into());
        let c = row("c", "2026-01-03T00:00:00Z");
        let rows = vec![a, b, c];
        let ids = |q: ListQuery| -> Vec<String> {
            let q = ListQuery {
                ascending: true,
                ..q
            };
            walk(&rows, q)
        };
        let user: BTreeMap<_, _> = [("user".to_string(), "a b".to_string())].into();
        assert_eq!(
            ids(ListQuery {
                metadata: user.clone(),
                ..Default::default()
            }),
            ["a", "b"]
        );
        assert_eq!(
            ids(ListQuery {
                metadata: user,
                states: vec![SandboxStatus::Running],
                ..Default::default()
            }),
            ["a"]
        );
        assert_eq!(
            ids(ListQuery {
                template: Some("python".into()),
                ..Default::default()
            }),
            ["b"]
        );
        assert_eq!(
            ids(ListQuery {
                started_after: bulkhead_store::parse_rfc3339("2026-01-02T00:00:00Z").ok(),
                ..Default::default()
            }),
            ["c"]
        );
    }

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        let key = (1_700_000_000_000_000_000i128, "abc");
        let (ts, id) = decode(&encode(key)).unwrap();
        assert_eq!((ts, id.as_str()), key);
        for junk in ["!!!", &URL_SAFE_NO_PAD.encode("no-separator"), "AAAA"] {
            assert!(
                matches!(decode(junk), Err(ManagerError::InvalidCursor)),
                "{junk}"
            );
        }
    }
}
